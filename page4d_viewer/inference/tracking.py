"""Point tracks for a Reconstruction: seed query pixels, run the track head, keep the tracks.

Used by `predict(..., tracks=N)` (automatic seeds where the mask most expects motion) and by the
viewer's click seeding (`add_tracks` on a result already open). The track head runs only
here, so a plain reconstruction never pays for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.tracks import with_ground_truth_tracks
from page4d_viewer.result.tracks import Seeds, Tracks, seed_queries
from page4d_viewer.settings import MAX_TRACKS

if TYPE_CHECKING:
    import torch

    from page4d_viewer.model.network import Page4D
    from page4d_viewer.result.reconstruction import Reconstruction


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
    import torch

    require_track_head(model)

    from page4d_viewer.inference.predictor import MODEL_STAGE_WEIGHTS

    finished: dict[str, float] = {}

    def on_step(stage: str, done: int, total: int) -> None:
        finished[stage] = done / max(total, 1)
        if progress is not None:
            fraction = sum(
                MODEL_STAGE_WEIGHTS.get(name, 0.0) * part for name, part in finished.items()
            )
            progress(fraction, f"tracking: {stage} ({done}/{total})")

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
    (``evaluation/tracks.py``). The tracker reads the result's own model-input frames at its
    mask strength, so the new tracks match its geometry pixel for pixel.

    Raises:
        Page4DError: no track head, a frame or pixel outside the result, or the model's input
            size differs from the result's.
    """
    import torch

    from page4d_viewer.inference import device as devices

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
