"""Point tracks for a Reconstruction: seed query pixels, run the track head, keep the tracks.

Used by `predict(..., tracks=N)` (automatic seeds where the mask most expects motion) and by the
viewer's click seeding (`add_tracks` on a result already open). The track head runs only
here, so a plain reconstruction never pays for it. When the result's clip is a synthetic
scene, its exact tracks come along (`with_ground_truth_tracks`, through
`sources/synthetic/input_tracks.py`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.inference import device as devices
from page4d_viewer.inference.progress import network_fraction
from page4d_viewer.model.network import Page4D
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import Seeds, Tracks, seed_queries
from page4d_viewer.settings import MAX_TRACKS
from page4d_viewer.sources.framing import PreprocessMapping
from page4d_viewer.sources.synthetic.input_tracks import ground_truth_input_tracks, scene_folder

logger = logging.getLogger(__name__)


TrackProgress = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)`` while the tracker's forward pass runs."""


def check_track_count(count: int) -> int:
    """The number of tracks asked for, checked (0 = none)."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)):
        raise Page4DError(f"the number of tracks must be a whole number, got {count!r}")
    if not 0 <= int(count) <= MAX_TRACKS:
        raise Page4DError(f"the number of tracks must be in 0..{MAX_TRACKS}, got {count}")
    return int(count)


def require_track_head(model: Page4D) -> None:
    """A one-line Page4DError when the model cannot track points."""
    if not model.track_available:
        raise Page4DError(
            "this checkpoint has no track head, so it cannot track points; use one with "
            "tracker weights (the authors' checkpoints have them)"
        )


def run_tracker(
    model: Page4D,
    images: torch.Tensor,
    seeds: Seeds,
    mask_strength: float,
    progress: TrackProgress | None = None,
) -> Tracks:
    """Track ``seeds`` through (S, 3, H, W) images already on the model's device and dtype.

    Runs under ``torch.inference_mode``; the caller chooses device and autocast.
    """
    require_track_head(model)
    finished: dict[str, float] = {}

    def on_step(stage: str, done: int, total: int) -> None:
        finished[stage] = done / max(total, 1)
        if progress is not None:
            progress(network_fraction(finished), f"tracking: {stage} ({done}/{total})")

    queries = torch.as_tensor(seeds.xy, dtype=torch.float32, device=images.device)
    with torch.inference_mode():
        xy, visibility, confidence = model.track(
            images, queries, seeds.frame, mask_strength, on_step
        )

    def numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor[0].float().cpu().numpy()

    count = len(seeds.xy)
    return Tracks(
        numpy(xy),
        numpy(visibility),
        numpy(confidence),
        np.full(count, seeds.frame, dtype=np.int64),
    )


def add_tracks(
    model: Page4D,
    recon: Reconstruction,
    seeds: Seeds,
    *,
    device: str | None = None,
    precision: str | None = None,
    progress: TrackProgress | None = None,
) -> Reconstruction:
    """A copy of ``recon`` with the tracks of ``seeds`` added to the ones it has.

    Their ground truth comes along when the result's clip is a synthetic scene
    (``with_ground_truth_tracks``). The tracker reads the result's own model-input frames at its
    mask strength, so the new tracks match its geometry pixel for pixel.

    Raises:
        Page4DError: no track head, a frame or pixel outside the result, or the model's input
            size differs from the result's.
    """
    require_track_head(model)
    _check_seeds(seeds, recon)
    torch_device = devices.choose_device(device)
    dtype = devices.choose_precision(torch_device, precision)
    model.eval()
    model.to(torch_device)
    images = torch.from_numpy(recon.images).permute(0, 3, 1, 2).float().div(255.0)
    started = time.perf_counter()
    with devices.autocast_for(torch_device, dtype):
        tracks = run_tracker(
            model, images.to(torch_device), seeds, recon.metadata.mask_strength, progress
        )
    combined = tracks if recon.tracks is None else recon.tracks.concat(tracks)
    timings = dict(recon.metadata.timings)
    timings["tracks"] = timings.get("tracks", 0.0) + time.perf_counter() - started
    metadata = dataclasses.replace(recon.metadata, timings=timings)
    updated = dataclasses.replace(recon, tracks=combined, gt_tracks=None, metadata=metadata)
    # The truth of every query, old and new, when the clip is a synthetic scene.
    return with_ground_truth_tracks(updated)


def with_ground_truth_tracks(recon: Reconstruction) -> Reconstruction:
    """The result with ``gt_tracks`` for its tracks, when its ground truth is a synthetic scene.

    Unchanged (``gt_tracks`` None) without tracks, without a synthetic scene beside the
    source, or when the scene cannot be read (logged). In a confined run (the app) the folder
    is checked against the data roots before anything in it is read.
    """
    folder = scene_folder(recon.metadata.ground_truth)
    if recon.tracks is None or folder is None:
        return dataclasses.replace(recon, gt_tracks=None)
    try:
        truth = ground_truth_tracks(recon, folder)
    except Page4DError as error:
        logger.warning("no ground-truth tracks: %s", error)
        return dataclasses.replace(recon, gt_tracks=None)
    return dataclasses.replace(recon, gt_tracks=truth)


def ground_truth_tracks(recon: Reconstruction, folder: Path) -> Tracks:
    """The exact tracks of ``recon.tracks``' queries in the synthetic sample at ``folder``.

    Returns:
        Tracks with the same queries: xy (S, N, 2) model-input pixels (0 where the point is
        undefined), visibility 1 where the point is seen inside the model input and not
        occluded, else 0; confidence 1.

    Raises:
        Page4DError: the folder is not a synthetic sample with its scene, or does not match
            the result (frame indices or sizes).
    """
    tracks = recon.tracks
    if tracks is None:
        raise Page4DError("this result has no point tracks")
    frames = recon.metadata.frame_indices or list(range(recon.num_frames))
    if len(frames) != recon.num_frames:
        raise Page4DError(
            f"the result's frames {frames[:5]}... do not fit its {recon.num_frames} frames"
        )
    truth = ground_truth_input_tracks(
        folder,
        tracks.query_xy,
        tracks.query_frame,
        frames,
        PreprocessMapping.from_dict(recon.metadata.preprocessing.mapping),
        recon.image_hw,
    )
    ones = np.ones(truth.visible.shape, dtype=np.float32)
    xy = truth.xy.astype(np.float32)
    return Tracks(xy, truth.visible.astype(np.float32), ones, tracks.query_frame)


def automatic_seeds(recon: Reconstruction, count: int) -> Seeds:
    """`count` query pixels where the result's mask most expects motion (see `seed_queries`)."""
    return seed_queries(recon.mask_score, recon.image_hw, count)


def _check_seeds(seeds: Seeds, recon: Reconstruction) -> None:
    height, width = recon.image_hw
    if not 0 <= seeds.frame < recon.num_frames:
        raise Page4DError(
            f"track seed frame {seeds.frame} is out of range (0..{recon.num_frames - 1})"
        )
    xy = np.asarray(seeds.xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[-1] != 2 or len(xy) == 0:
        raise Page4DError(f"track seeds must be (N, 2) pixels with N >= 1, got {xy.shape}")
    check_track_count(len(xy))
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= width - 0.5)
    inside &= (xy[:, 1] >= -0.5) & (xy[:, 1] <= height - 0.5)
    if not (np.isfinite(xy).all() and inside.all()):
        raise Page4DError(f"track seeds must lie inside the {width}x{height} model-input frame")
