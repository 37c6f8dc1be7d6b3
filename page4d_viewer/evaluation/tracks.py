"""Point tracks against ground truth: exact tracks for synthetic scenes, and their errors.

A result made from a synthetic sample records the sample folder as its ground truth
(``metadata.extra["ground_truth"]``); with the folder's ``scene.json`` the exact track of every
query pixel can be computed (``sources.synthetic.correspondence``). The queries are mapped
from model-input pixels to the clip's pixels and the tracks back, through the clip's
preprocessing (crop or pad and resize), on the clip frames the result kept.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.tracks import VISIBLE_THRESHOLD, Tracks

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.sources.framing import PreprocessMapping
    from page4d_viewer.sources.synthetic.clip import SyntheticClip

logger = logging.getLogger(__name__)

WITHIN_PIXELS = 2.0
"""The "within" share counts end points at most this many model-input pixels off."""


def with_ground_truth_tracks(recon: Reconstruction) -> Reconstruction:
    """The result with ``gt_tracks`` for its tracks, when its ground truth is a synthetic scene.

    Unchanged (``gt_tracks`` None) without tracks, without a synthetic scene beside the
    source, or when the scene cannot be read (logged). In a confined run (the app) the folder
    is checked against the data roots before anything in it is read.
    """
    folder = _scene_folder(recon)
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
    from page4d_viewer.sources.confine import check_tree, current_roots
    from page4d_viewer.sources.framing import PreprocessMapping
    from page4d_viewer.sources.synthetic.correspondence import track_ground_truth
    from page4d_viewer.sources.synthetic.files import load_synthetic_clip

    tracks = recon.tracks
    if tracks is None:
        raise Page4DError("this result has no point tracks")
    if current_roots() is not None:
        check_tree(folder)
    clip = load_synthetic_clip(folder)
    frames = _source_frames(recon, clip)
    mapping = PreprocessMapping.from_dict(recon.metadata.preprocessing.mapping)
    xy = np.zeros(tracks.xy.shape, dtype=np.float64)
    visible = np.zeros(tracks.visibility.shape, dtype=bool)
    for query_frame in np.unique(tracks.query_frame):
        columns = np.flatnonzero(tracks.query_frame == query_frame)
        queries = _to_clip_pixels(tracks.query_xy[columns], mapping, clip)
        truth = track_ground_truth(clip, int(frames[query_frame]), queries)
        model_xy = _to_model_pixels(truth.tracks[frames], mapping, clip)
        defined = np.isfinite(model_xy).all(axis=-1)
        xy[:, columns] = np.where(defined[..., None], model_xy, 0.0)
        visible[:, columns] = truth.visible[frames] & defined & _inside(model_xy, recon.image_hw)
    ones = np.ones(visible.shape, dtype=np.float32)
    return Tracks(xy, visible.astype(np.float32), ones, tracks.query_frame)


def track_errors(recon: Reconstruction) -> dict[str, float] | None:
    """The predicted tracks against ``gt_tracks``; None without them.

    End-point errors count the points the truth sees in frames other than the track's query
    frame; "no motion" is the error of guessing that every point stays at its query pixel.

    Returns:
        ``median_px``, ``mean_px``, ``within_2px`` (share), the same three for no motion
        (``still_median_px``, ...), ``visibility_accuracy`` (share of all non-query points
        where "visibility >= 0.5" agrees with the truth), ``points`` (how many were scored).
    """
    predicted, truth = recon.tracks, recon.gt_tracks
    if predicted is None or truth is None:
        return None
    frames = np.arange(predicted.num_frames)[:, None]
    scored = frames != predicted.query_frame[None]  # the query frame is given, not predicted
    seen = scored & truth.visible()
    if not seen.any():
        return None
    error = np.linalg.norm(predicted.xy - truth.xy, axis=-1)[seen]
    still = np.linalg.norm(predicted.query_xy[None] - truth.xy, axis=-1)[seen]
    agree = (predicted.visibility >= VISIBLE_THRESHOLD) == truth.visible()
    return {
        "median_px": float(np.median(error)),
        "mean_px": float(error.mean()),
        "within_2px": float((error <= WITHIN_PIXELS).mean()),
        "still_median_px": float(np.median(still)),
        "still_mean_px": float(still.mean()),
        "still_within_2px": float((still <= WITHIN_PIXELS).mean()),
        "visibility_accuracy": float(agree[scored].mean()),
        "points": float(seen.sum()),
    }


def _scene_folder(recon: Reconstruction) -> Path | None:
    """The synthetic sample folder recorded as the result's ground truth, if it has a scene."""
    from page4d_viewer.sources.synthetic.files import SCENE_NAME

    recorded = recon.metadata.extra.get("ground_truth")
    if not isinstance(recorded, str) or not recorded:
        return None
    folder = Path(recorded)
    return folder if (folder / SCENE_NAME).is_file() else None


def _source_frames(recon: Reconstruction, clip: SyntheticClip) -> np.ndarray:
    """(S,) clip frame index of each result frame, checked against the clip."""
    frames = np.asarray(recon.metadata.frame_indices or range(recon.num_frames), dtype=np.int64)
    if clip.scene is None:
        raise Page4DError("the synthetic sample has no scene.json to compute tracks from")
    if len(frames) != recon.num_frames or frames.min() < 0 or frames.max() >= clip.num_frames:
        raise Page4DError(
            f"the result's frames {frames.tolist()[:5]}... do not fit the sample's "
            f"{clip.num_frames} frames"
        )
    return frames


def _clip_scale(mapping: PreprocessMapping, clip: SyntheticClip) -> np.ndarray:
    """(2,) clip-truth pixels per video pixel (1 unless the truth has another resolution)."""
    height, width = clip.image_hw
    original_h, original_w = mapping.original_size
    return np.array([width / original_w, height / original_h])


def _to_clip_pixels(xy: np.ndarray, mapping: PreprocessMapping, clip: SyntheticClip) -> np.ndarray:
    """(N, 2) model-input pixel centres -> the synthetic clip's pixel centres."""
    # The mapping uses corner-at-0 coordinates; tracks put pixel centres at integers.
    original = mapping.to_original(np.asarray(xy, dtype=np.float64) + 0.5)
    height, width = clip.image_hw
    clip_xy = original * _clip_scale(mapping, clip) - 0.5
    # A query on the last half pixel may map a hair outside the clip's image.
    return np.clip(clip_xy, -0.5, np.array([width, height]) - 0.5 - 1e-9)


def _to_model_pixels(xy: np.ndarray, mapping: PreprocessMapping, clip: SyntheticClip) -> np.ndarray:
    """(..., 2) the synthetic clip's pixel centres -> model-input pixel centres."""
    original = (np.asarray(xy, dtype=np.float64) + 0.5) / _clip_scale(mapping, clip)
    return mapping.from_original(original) - 0.5


def _inside(xy: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    height, width = image_hw
    x, y = xy[..., 0], xy[..., 1]
    with np.errstate(invalid="ignore"):
        return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
