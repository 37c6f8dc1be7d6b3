"""Ground-truth tracks of model-input query pixels in the synthetic sample a result came from.

A result made from a synthetic sample records the sample folder as its ground truth
(``metadata.extra["ground_truth"]``); with the folder's ``scene.json`` the exact track of every
query pixel can be computed (``correspondence.track_ground_truth``). The queries are mapped
from model-input pixels to the clip's pixels and the tracks back, through the clip's
preprocessing (crop or pad and resize), on the clip frames the result kept.

Arrays in, arrays out: ``inference/tracking.py`` wraps them in the result's ``Tracks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError
from page4d_viewer.sources.confine import check_tree, current_roots
from page4d_viewer.sources.framing import PreprocessMapping
from page4d_viewer.sources.synthetic.clip import SyntheticClip
from page4d_viewer.sources.synthetic.correspondence import track_ground_truth
from page4d_viewer.sources.synthetic.files import SCENE_NAME, load_synthetic_clip


class InputTracks(NamedTuple):
    """Exact tracks of N queries through a result's S frames, in model-input pixels.

    Attributes:
        xy: (S, N, 2) float64 pixel centres (0 where the point is undefined).
        visible: (S, N) bool, True where the point is seen inside the model input and not
            occluded.
    """

    xy: npt.NDArray[np.float64]
    visible: npt.NDArray[np.bool_]


def scene_folder(recorded: object) -> Path | None:
    """The synthetic sample folder a result recorded as its ground truth, if it has a scene."""
    if not isinstance(recorded, str) or not recorded:
        return None
    folder = Path(recorded)
    return folder if (folder / SCENE_NAME).is_file() else None


def ground_truth_input_tracks(
    folder: Path,
    query_xy: npt.ArrayLike,
    query_frame: npt.ArrayLike,
    frame_indices: Sequence[int],
    mapping: PreprocessMapping,
    image_hw: tuple[int, int],
) -> InputTracks:
    """The exact tracks of model-input queries in the synthetic sample at ``folder``.

    Args:
        folder: The sample folder (with its ``scene.json``). In a confined run (the app) it
            is checked against the data roots before anything in it is read.
        query_xy: (N, 2) query pixel centres in model-input pixels.
        query_frame: (N,) int, the result frame each query was picked in.
        frame_indices: (S,) the clip frame of each result frame.
        mapping: How model-input pixels relate to the clip's pixels.
        image_hw: (height, width) of the model input.

    Raises:
        Page4DError: the folder is not a synthetic sample with its scene, or does not match
            the result (frame indices or sizes).
    """
    if current_roots() is not None:
        check_tree(folder)
    clip = load_synthetic_clip(folder)
    frames = _source_frames(frame_indices, clip)
    query_frame = np.asarray(query_frame, dtype=np.int64)
    num_queries = len(query_frame)
    xy = np.zeros((len(frames), num_queries, 2), dtype=np.float64)
    visible = np.zeros((len(frames), num_queries), dtype=bool)
    for frame in np.unique(query_frame):
        columns = np.flatnonzero(query_frame == frame)
        queries = _to_clip_pixels(np.asarray(query_xy)[columns], mapping, clip)
        truth = track_ground_truth(clip, int(frames[frame]), queries)
        model_xy = _to_model_pixels(truth.tracks[frames], mapping, clip)
        defined = np.asarray(np.isfinite(model_xy).all(axis=-1))
        xy[:, columns] = np.where(defined[..., None], model_xy, 0.0)
        visible[:, columns] = truth.visible[frames] & defined & _inside(model_xy, image_hw)
    return InputTracks(xy, visible)


def _source_frames(frame_indices: Sequence[int], clip: SyntheticClip) -> np.ndarray:
    """(S,) clip frame index of each result frame, checked against the clip."""
    frames = np.asarray(frame_indices, dtype=np.int64)
    if clip.scene is None:
        raise Page4DError("the synthetic sample has no scene.json to compute tracks from")
    if len(frames) == 0 or frames.min() < 0 or frames.max() >= clip.num_frames:
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
