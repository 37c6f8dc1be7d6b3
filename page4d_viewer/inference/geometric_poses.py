"""The geometric pose variants: cameras solved from the network's own depth and matches.

Next to the camera head's "masked" and "unmasked" cameras, every run gets two more:

* ``geometry_masked``: each match weighted by the depth confidence and by the mask's keep
  probability (1 - dynamic probability) at both of its pixels, so what the mask calls
  moving drops out of the pose;
* ``geometry_unmasked``: the same matches and depth, without the mask's weight.

Both use the masked run's depth (the one a Reconstruction keeps) and the masked camera head's
intrinsics, so they differ only by the mask. Where the camera head and the geometry disagree,
or where the mask changes the geometric pose, is what a researcher looks for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from page4d_viewer.inference import matching
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs, solve_poses
from page4d_viewer.result.cameras import GEOMETRY_MASKED, GEOMETRY_UNMASKED, Cameras
from page4d_viewer.result.mask import dynamic_probability, upsample_mask
from page4d_viewer.result.reconstruction import GeometricPosesRecord

if TYPE_CHECKING:
    from page4d_viewer.model.match_head import MatchFeatures
    from page4d_viewer.model.network import Page4D

logger = logging.getLogger(__name__)


@dataclass
class GeometricPoses:
    """The two geometric variants of one run and how they were made.

    Attributes:
        cameras: "geometry_masked" / "geometry_unmasked" -> Cameras of the S frames.
        source: the match source ("match_head", "track_head" or "optical_flow").
        unsolved: variant -> frame positions that had too few matches and kept the pose of
            the frame before them.
    """

    cameras: dict[str, Cameras]
    source: str
    unsolved: dict[str, list[int]] = field(default_factory=dict)

    def record(self) -> GeometricPosesRecord:
        """What a Reconstruction's metadata keeps about them."""
        return GeometricPosesRecord(self.source, {k: list(v) for k, v in self.unsolved.items()})


def confidence_weight(depth_conf: np.ndarray) -> np.ndarray:
    """(S, H, W) weight in [0, 1) from the network's depth confidence (>= 1): ``1 - 1/c``.

    A confidence of 1 (the network's floor, "no idea") gives 0; 2 gives 0.5; 10 gives 0.9.
    """
    return 1.0 - 1.0 / np.maximum(np.asarray(depth_conf, dtype=np.float64), 1.0)


def keep_probability(mask_score: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(S, H, W) probability that each pixel is static, from the (S, h, w) mask score."""
    dynamic = upsample_mask(dynamic_probability(mask_score), *image_hw)
    return 1.0 - dynamic


def find_matches(
    images: np.ndarray,
    model: Page4D | None = None,
    images_tensor: torch.Tensor | None = None,
    mask_strength: float = 0.0,
    match_features: MatchFeatures | None = None,
) -> Matches:
    """Matches for the keyframe pairs, from the best source the network has.

    Args:
        images: (S, H, W, 3) uint8 model-input frames.
        model: the network that made the result; None (a result replayed without its
            checkpoint) or a network without a match or track head uses optical flow.
        images_tensor: (S, 3, H, W) the same frames in [0, 1] on the model's device (needed
            with a model that has a track head).
        mask_strength: alpha of the tracking pass.
        match_features: the match head's features of this clip (``ModelOutput.
            match_features`` of the masked run), when the model has a match head.
    """
    pairs = keyframe_pairs(int(images.shape[0]))
    image_hw = (int(images.shape[1]), int(images.shape[2]))
    if match_features is not None and getattr(model, "match_available", False):
        return model.match_head.match(match_features.clip(0), pairs, image_hw)  # type: ignore[union-attr]
    if images_tensor is not None and getattr(model, "track_available", False):
        return matching.track_head_matches(model, images_tensor, pairs, mask_strength)  # type: ignore[arg-type]
    return matching.flow_matches(images, pairs)


def solve_geometric_poses(
    depth: np.ndarray,
    depth_conf: np.ndarray,
    intrinsics: np.ndarray,
    mask_score: np.ndarray | None,
    matches: Matches,
) -> GeometricPoses:
    """Both geometric variants from depth, intrinsics, the mask and matches.

    Args:
        depth: (S, H, W) depth of the masked run.
        depth_conf: (S, H, W) its confidence (>= 1).
        intrinsics: (S, 3, 3) the masked camera head's intrinsics.
        mask_score: (S, h, w) the mask score, or None without a mask head (then both variants
            are the same solve).
        matches: from :func:`find_matches`.

    Returns:
        The two variants, the match source and the frames that could not be solved.
    """
    image_hw = (int(depth.shape[1]), int(depth.shape[2]))
    confidence = confidence_weight(depth_conf)
    weights = {GEOMETRY_UNMASKED: confidence}
    if mask_score is not None:
        weights[GEOMETRY_MASKED] = confidence * keep_probability(mask_score, image_hw)
    depth_t = torch.as_tensor(np.asarray(depth, dtype=np.float64))
    intrinsics_t = torch.as_tensor(np.asarray(intrinsics, dtype=np.float64))
    cameras: dict[str, Cameras] = {}
    unsolved: dict[str, list[int]] = {}
    with torch.no_grad():
        for variant, weight in weights.items():
            solved = solve_poses(depth_t, intrinsics_t, matches, torch.as_tensor(weight))
            cameras[variant] = Cameras(solved.extrinsics.numpy(), intrinsics)
            unsolved[variant] = [int(i) for i in np.flatnonzero(~solved.solved.numpy())]
    if GEOMETRY_MASKED not in cameras:
        cameras[GEOMETRY_MASKED] = cameras[GEOMETRY_UNMASKED]
        unsolved[GEOMETRY_MASKED] = unsolved[GEOMETRY_UNMASKED]
    for variant, frames in unsolved.items():
        if frames:
            logger.warning("%s: too few matches to solve frames %s", variant, frames)
    return GeometricPoses(cameras, matches.source, unsolved)
