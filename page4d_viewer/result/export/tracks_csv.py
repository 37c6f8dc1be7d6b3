"""CSV export of point tracks: one row per (track, frame), the pixel and its lifted 3-D point.

Columns (a header line first, rows track by track, frames in order):

- ``track``: 0-based track index; ``frame``: 0-based frame position; ``query_frame``: the
  frame position the track was seeded on.
- ``moving``: 1 when the track was seeded on a patch the mask calls moving (`moving_tracks`
  at the given dynamic-probability threshold), else 0.
- ``x``, ``y``: model-input pixel, pixel centres at whole numbers (``result/tracks.py``).
- ``visibility``, ``confidence``: the track head's probabilities; ``visible``: 1 when the
  visibility is at least `VISIBLE_THRESHOLD`.
- ``X``, ``Y``, ``Z``: the world point at that pixel from the chosen point source (`lift`);
  empty where there is none (the track left the image, no depth, damaged geometry).
- ``gt_x``, ``gt_y``, ``gt_visible``: the exact track of the same query and whether the
  point is seen there, when the result has ground-truth tracks (a synthetic scene); the
  columns are left out otherwise.

Numbers are written as the shortest text that reads back to the same float32.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from page4d_viewer.result.export.common import atomic_write, prepare_output
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import VISIBLE_THRESHOLD, lift, moving_tracks, require_tracks
from page4d_viewer.settings import DEFAULT_MASK_THRESHOLD

logger = logging.getLogger(__name__)

COLUMNS = (
    "track",
    "frame",
    "query_frame",
    "moving",
    "x",
    "y",
    "visibility",
    "confidence",
    "visible",
    "X",
    "Y",
    "Z",
)
GT_COLUMNS = ("gt_x", "gt_y", "gt_visible")


def export_tracks_csv(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    source: str = "points",
    threshold: float = DEFAULT_MASK_THRESHOLD,
) -> Path:
    """Write the result's point tracks as CSV (see the module docstring), atomically.

    Args:
        recon: a reconstruction with tracks (S frames, N tracks).
        path: output ``.csv`` file.
        source: point source the 3-D points are read from (`result.points.POINT_SOURCES`).
        threshold: dynamic probability at which a track's query patch counts as moving.

    Returns:
        The path written (S * N rows after the header).

    Raises:
        Page4DError: the result has no tracks, an unknown source, or a bad output name.
    """
    tracks = require_tracks(recon)
    world = lift(recon, source)
    moving = moving_tracks(recon, threshold)
    path = prepare_output(path, ".csv")
    frames, count = tracks.num_frames, tracks.num_tracks
    # (N, S) grids, raveled track by track
    track_ids, frame_ids = np.meshgrid(np.arange(count), np.arange(frames), indexing="ij")
    columns = [
        _whole(track_ids),
        _whole(frame_ids),
        _whole(np.broadcast_to(tracks.query_frame[:, None], (count, frames))),
        _whole(np.broadcast_to(moving[:, None], (count, frames))),
        _floats(tracks.xy[..., 0].T),
        _floats(tracks.xy[..., 1].T),
        _floats(tracks.visibility.T),
        _floats(tracks.confidence.T),
        _whole(tracks.visible(VISIBLE_THRESHOLD).T),
        *(_floats(world[..., axis].T) for axis in range(3)),
    ]
    header = COLUMNS
    if recon.gt_tracks is not None:
        truth = recon.gt_tracks
        header += GT_COLUMNS
        columns += [
            _floats(truth.xy[..., 0].T),
            _floats(truth.xy[..., 1].T),
            _whole(truth.visible().T),
        ]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(zip(*columns, strict=True))
    atomic_write(path, text.getvalue().encode("utf-8"))
    logger.info("wrote %s (%d tracks over %d frames, source %s)", path, count, frames, source)
    return path


def _whole(values: np.ndarray) -> list[str]:
    """Integers or booleans (as 0/1), raveled, as text."""
    return [str(value) for value in np.asarray(values).astype(np.int64).ravel().tolist()]


def _floats(values: np.ndarray) -> list[str]:
    """float32 values, raveled, as their shortest round-trip text; NaN as an empty field."""
    texts = map(str, np.asarray(values, dtype=np.float32).ravel())
    return ["" if text == "nan" else text for text in texts]
