"""Correspondence supervision: ground-truth point tracks and VGGT's track loss.

The track head follows query points of the **first input frame** through the clip. For a
training clip whose frames are ``frames`` (possibly strided and played backwards), the queries
are drawn on source frame ``frames[0]`` (a share on moving objects) and their exact tracks come
from :func:`page4d_viewer.sources.synthetic.correspondence.track_ground_truth`.

Pixel convention: the ground truth puts pixel (row i, column j) at ``(u, v) = (j, i)``; the
tracker samples its feature maps with ``align_corners=True`` at ``query / stride``, so its
``(x, y)`` also has pixel centres at integers, ``(0, 0)`` being the first pixel's centre. The
two agree; no half-pixel shift is applied.

Loss (after VGGT): a Huber loss on the predicted positions after every refinement step of the
tracker, step ``k`` of ``n`` weighted ``gamma ** (n - 1 - k)`` like the camera loss, over the
points visible in each frame (frame 0 is the query itself and is left out), plus binary
cross-entropy on the visibility. The model returns only the last step (``ModelOutput.track``);
:class:`TrackCapture` reads every step from the track head's own output with a forward hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from page4d_viewer.sources.synthetic.correspondence import (
    sample_query_pixels,
    track_ground_truth,
)

if TYPE_CHECKING:
    from page4d_viewer.model.network import Page4D
    from page4d_viewer.model.track_head import TrackPredictions
    from page4d_viewer.sources.synthetic import SyntheticClip
    from page4d_viewer.training.losses import LossWeights, Targets

# Keeps the visibility BCE finite when the head saturates.
_PROBABILITY_EPS = 1e-6
# Mixed into the per-step seed of the query draw (independent of the clip/frame draw).
_QUERY_STREAM = 104_729


def clip_tracks(
    clip: SyntheticClip,
    frames: Sequence[int] | npt.NDArray[np.integer],
    count: int,
    moving_fraction: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Queries on ``frames[0]`` and their ground-truth tracks through ``frames``.

    Args:
        clip: a synthetic clip with its scene.
        frames: the source-frame indices of the training sample, in input order.
        count: number of query points.
        moving_fraction: share of queries drawn on moving pixels (when there are enough).
        rng: the random stream of this sample.

    Returns:
        query_points (N, 2) float32 pixel (x, y) in the first input frame;
        tracks (S, N, 2) float32 pixel positions in every input frame (0 where undefined);
        visible (S, N) bool (False where undefined).
    """
    frames = np.asarray(frames, dtype=np.int64)
    query_frame = int(frames[0])
    queries = sample_query_pixels(clip, query_frame, count, rng, moving_fraction)
    truth = track_ground_truth(clip, query_frame, queries)
    tracks = truth.tracks[frames]
    defined = np.asarray(np.isfinite(tracks).all(axis=-1))
    visible = truth.visible[frames] & defined
    tracks = np.where(defined[..., None], tracks, 0.0)
    return queries.astype(np.float32), tracks.astype(np.float32), visible


def query_rng(seed: int, step: int, index: int) -> np.random.Generator:
    """The query draw of batch item ``index`` at ``step``: a pure function of (seed, step)."""
    return np.random.default_rng([seed, step, index, _QUERY_STREAM])


class TrackCapture:
    """Context manager that records the track head's full output (every refinement step).

    ``Page4D.forward`` keeps only the last step in ``ModelOutput.track``; the loss needs all of
    them, so a forward hook on ``model.track_head`` stores its :class:`TrackPredictions` in
    ``.tracks``.
    """

    def __init__(self, model: Page4D) -> None:
        self.head = model.track_head
        self.tracks: TrackPredictions | None = None
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> TrackCapture:
        if self.head is not None:
            self._handle = self.head.register_forward_hook(self._store)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()

    def _store(self, module: torch.nn.Module, inputs: object, output: TrackPredictions) -> None:
        self.tracks = output


def track_loss(
    steps: Sequence[torch.Tensor],
    visibility: torch.Tensor,
    targets: Targets,
    weights: LossWeights,
) -> torch.Tensor:
    """Huber on visible positions over the tracker's steps plus visibility BCE (unweighted).

    Args:
        steps: n tensors (B, S, N, 2), the tracker's positions after each refinement step.
        visibility: (B, S, N) predicted visibility probability.
        targets: ground truth with ``tracks`` (B, S, N, 2) and ``track_visible`` (B, S, N).
        weights: ``camera_step_gamma``, ``track_huber_delta`` (pixels), ``track_visibility``.

    Returns:
        Scalar: position term + ``track_visibility`` * BCE.
    """
    if targets.track_visible is None or targets.tracks is None:
        raise ValueError("track_loss needs targets with tracks and track_visible")
    visible = targets.track_visible[:, 1:].to(visibility.dtype)
    target = targets.tracks[:, 1:]
    count = visible.sum().clamp(min=1)
    position = visibility.new_zeros(())
    for index, pred in enumerate(steps):
        step_weight = weights.camera_step_gamma ** (len(steps) - 1 - index)
        huber = F.huber_loss(
            pred[:, 1:], target, delta=weights.track_huber_delta, reduction="none"
        ).sum(dim=-1)
        position = position + step_weight * (huber * visible).sum() / count
    probability = visibility[:, 1:].clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS)
    bce = F.binary_cross_entropy(probability, visible)
    return position + weights.track_visibility * bce


def track_errors(prediction: torch.Tensor, targets: Targets) -> tuple[float, float]:
    """Mean end-point error (pixels) over visible points of frames 1.., and of a still guess.

    Args:
        prediction: (B, S, N, 2) predicted positions.
        targets: ground truth tracks, visibility and query points.

    Returns:
        (predicted tracks' error, error of predicting that nothing moves), in pixels.
    """
    if targets.track_visible is None or targets.tracks is None or targets.query_points is None:
        raise ValueError("track_errors needs targets with queries, tracks and track_visible")
    with torch.no_grad():
        visible = targets.track_visible[:, 1:]
        target = targets.tracks[:, 1:]
        still = targets.query_points[:, None].expand_as(target)
        predicted = (prediction[:, 1:] - target).norm(dim=-1)[visible]
        stationary = (still - target).norm(dim=-1)[visible]
        if predicted.numel() == 0:
            return 0.0, 0.0
        return float(predicted.mean()), float(stationary.mean())
