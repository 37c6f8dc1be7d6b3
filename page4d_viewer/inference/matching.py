"""Pixel matches between frames of a result, from the best source the checkpoint has.

The geometric poses (``inference/geometric_poses.py``) are solved from these. Sources, best
first:

* ``"match_head"``: the network's own match head (the small preset can have one);
* ``"track_head"``: the track head (the authors' checkpoints have one), following a grid of
  the first frame's pixels through the clip; any two frames where a track is visible in both
  make a match;
* ``"optical_flow"``: OpenCV's DIS optical flow between the model-input images, kept where
  the forward and backward flow agree. It needs no network at all, so a checkpoint without
  either head (the shipped default model) still gets geometric poses.

Every source returns :class:`page4d_viewer.model.pose_solver.Matches` for the keyframe pairs
of :func:`page4d_viewer.model.pose_solver.keyframe_pairs`, with its name in ``source``.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from page4d_viewer import geometry
from page4d_viewer.model.pose_solver import Matches

if TYPE_CHECKING:
    from page4d_viewer.model.network import Page4D

MatchSource = Literal["match_head", "track_head", "optical_flow"]

GRID_POINTS_ACROSS = 48
"""Matches are sought on a grid this many points across the image (about 1300 per pair on
16:9 frames): dense enough for a robust solve, cheap next to the network."""

FLOW_CONSISTENCY_PX = 1.0
"""Forward-backward flow disagreement (pixels) at which a match's weight falls to 1/e."""


def grid_step(image_hw: tuple[int, int]) -> int:
    """Grid spacing in pixels for images of ``image_hw``: :data:`GRID_POINTS_ACROSS` across."""
    return max(2, round(image_hw[1] / GRID_POINTS_ACROSS))


def flow_matches(images: np.ndarray, pairs: list[tuple[int, int]]) -> Matches:
    """Matches from dense optical flow, weighted by forward-backward consistency.

    Args:
        images: (S, H, W, 3) uint8 RGB frames.
        pairs: (reference, target) frame indices.

    Returns:
        Matches of a pixel grid of each reference frame, ``source="optical_flow"``.
    """
    cv2 = _opencv()
    image_hw = (int(images.shape[1]), int(images.shape[2]))
    grid = geometry.sparse_pixel_grid(image_hw, grid_step(image_hw))
    gray = [cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY) for image in images]
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    target_xy, weight = [], []
    for reference, target in pairs:
        forward = flow.calc(gray[reference], gray[target], None)
        backward = flow.calc(gray[target], gray[reference], None)
        xy, consistency = _follow_flow(grid, forward, backward)
        target_xy.append(xy)
        weight.append(consistency)
    return Matches.from_arrays(
        reference=[reference for reference, _ in pairs],
        target=[target for _, target in pairs],
        reference_xy=np.repeat(grid[None], len(pairs), axis=0),
        target_xy=np.stack(target_xy) if pairs else np.zeros((0, len(grid), 2)),
        weight=np.stack(weight) if pairs else np.zeros((0, len(grid))),
        source="optical_flow",
    )


def _opencv() -> ModuleType:
    """OpenCV, imported on first use, single-threaded.

    Imported here rather than at the top because only the optical-flow source needs it (a
    checkpoint with a match or track head never does). Its own thread pool is turned off:
    these are a few small images, and a process that ends with OpenCV's worker threads
    still alive can abort on exit (seen once under torchrun: "terminate called without an
    active exception").
    """
    # Optional: only the optical-flow match source needs OpenCV.
    import cv2

    cv2.setNumThreads(0)
    return cv2


def _follow_flow(
    grid: np.ndarray, forward: np.ndarray, backward: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where grid pixels land under ``forward`` flow, and how well ``backward`` brings them back.

    Args:
        grid: (N, 2) integer-valued pixel centres (x, y).
        forward, backward: (H, W, 2) flow fields between the two frames, in pixels.

    Returns:
        (N, 2) target positions and (N,) weights in [0, 1]; 0 where the target leaves the image.
    """
    height, width = forward.shape[:2]
    columns, rows = grid[:, 0].astype(np.int64), grid[:, 1].astype(np.int64)
    landed = grid + forward[rows, columns]
    inside = (
        (landed[:, 0] >= 0)
        & (landed[:, 0] <= width - 1)
        & (landed[:, 1] >= 0)
        & (landed[:, 1] <= height - 1)
    )
    cv2 = _opencv()
    back = cv2.remap(
        backward,
        landed[:, 0].astype(np.float32)[None],
        landed[:, 1].astype(np.float32)[None],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )[0]
    disagreement = np.linalg.norm(forward[rows, columns] + back, axis=-1)
    weight = np.exp(-((disagreement / FLOW_CONSISTENCY_PX) ** 2)) * inside
    return landed, weight


def track_head_matches(
    model: Page4D,
    images: torch.Tensor,
    pairs: list[tuple[int, int]],
    mask_strength: float,
) -> Matches:
    """Matches from the track head following a grid of the first frame's pixels.

    Args:
        model: a network with a track head (``model.track_available``).
        images: (S, 3, H, W) model-input images in [0, 1], on the model's device.
        pairs: (reference, target) frame indices.
        mask_strength: alpha of the tracking pass (the masked run's).

    Returns:
        Matches with weight = visibility x confidence at both ends, ``source="track_head"``.
    """
    image_hw = (int(images.shape[-2]), int(images.shape[-1]))
    grid = geometry.sparse_pixel_grid(image_hw, grid_step(image_hw))
    queries = torch.as_tensor(grid, dtype=images.dtype, device=images.device)
    xy, visibility, confidence = model.track(images, queries, 0, mask_strength)
    xy = xy[0].double().cpu()  # (S, N, 2)
    trust = (visibility[0] * confidence[0]).double().cpu()  # (S, N)
    reference = torch.tensor([reference for reference, _ in pairs], dtype=torch.int64)
    target = torch.tensor([target for _, target in pairs], dtype=torch.int64)
    return Matches(
        reference=reference,
        target=target,
        reference_xy=xy[reference],
        target_xy=xy[target],
        weight=trust[reference] * trust[target],
        source="track_head",
    )
