"""Readers for ground-truth cameras, depth and dynamic masks, in one GroundTruth dataclass.

Supported layouts (``load_ground_truth`` detects which from the path), one module each:

* ``tum``: **TUM RGB-D / Bonn RGB-D Dynamic** ``groundtruth.txt`` (poses by nearest
  timestamp), with depth PNGs when ``depth.txt`` matches;
* ``sintel``: **MPI Sintel** ``.cam`` / ``.dpt`` folders, with MonST3R's dynamic masks;
* ``synthetic``: **page4d_viewer synthetic scenes**, a folder holding ``groundtruth.npz``
  (read by ``page4d_viewer.sources.synthetic.load_synthetic_clip``).

Whatever the source, ``GroundTruth.extrinsics`` are camera-from-world (OpenCV, as in
``geometry.py``): TUM poses are inverted, Sintel's are already world-to-camera.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from page4d_viewer.sources.groundtruth.base import GroundTruth, GroundTruthError
from page4d_viewer.sources.groundtruth.sintel import (
    SINTEL_TAG,
    load_sintel,
    looks_like_sintel,
    read_sintel_cam,
    read_sintel_depth,
)
from page4d_viewer.sources.groundtruth.synthetic import GROUND_TRUTH_NAME, load_synthetic
from page4d_viewer.sources.groundtruth.tum import (
    DEFAULT_MAX_TIME_DIFFERENCE,
    TUM_DEPTH_SCALE,
    TUM_TRAJECTORY,
    associate_timestamps,
    load_tum,
    read_tum_trajectory,
)

__all__ = [
    "DEFAULT_MAX_TIME_DIFFERENCE",
    "SINTEL_TAG",
    "GROUND_TRUTH_NAME",
    "TUM_DEPTH_SCALE",
    "TUM_TRAJECTORY",
    "GroundTruth",
    "GroundTruthError",
    "associate_timestamps",
    "load_ground_truth",
    "read_sintel_cam",
    "read_sintel_depth",
    "read_tum_trajectory",
]

logger = logging.getLogger(__name__)


def load_ground_truth(
    path: str | Path,
    *,
    frame_indices: Sequence[int] | npt.NDArray[np.integer] | None = None,
    timestamps: Sequence[float] | npt.NDArray[np.floating] | None = None,
    image_hw: tuple[int, int] | None = None,
    max_time_difference: float = DEFAULT_MAX_TIME_DIFFERENCE,
) -> GroundTruth:
    """Read ground truth for the frames of a clip; the format is detected from ``path``.

    Frames are chosen by ``frame_indices`` (positions in the sequence's natural-sorted image
    list: Sintel files, TUM ``rgb.txt``/``rgb/`` names, synthetic frames) or, for TUM/Bonn,
    by ``timestamps``. TUM uses ``timestamps`` when given and inside the trajectory's time
    span (e.g. a clip read from a TUM ``rgb`` folder, whose file names are times); otherwise
    it takes the frame times from ``rgb.txt`` (or the ``rgb/`` file names) and picks
    ``frame_indices`` from them.

    Args:
        path: a ``groundtruth.txt``, a TUM/Bonn sequence folder, a Sintel ``camdata_left`` or
            ``depth`` scene folder, or a synthetic scene folder (with ``groundtruth.npz``).
        frame_indices: which frames of the sequence the clip holds, length S; all when None.
        timestamps: TUM/Bonn: time of each clip frame in seconds, length S.
        image_hw: (H, W) of the clip frames: depth and masks are resized to it (nearest
            neighbour) and intrinsics scaled; a different aspect ratio is an error.
        max_time_difference: TUM/Bonn: largest allowed |frame time - pose time|, seconds.

    Returns:
        GroundTruth with camera-from-world extrinsics.

    Raises:
        GroundTruthError: missing or malformed files, wrong tags, counts that do not match,
            or a frame without a pose within ``max_time_difference``.
    """
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(f"ground truth not found: {path}")
    indices = None if frame_indices is None else np.asarray(frame_indices, dtype=np.int64)
    if path.is_dir() and (path / GROUND_TRUTH_NAME).is_file():
        truth = load_synthetic(path, indices)
    elif (path.is_file() and path.suffix.lower() == ".txt") or (path / TUM_TRAJECTORY).is_file():
        truth = load_tum(path, indices, timestamps, max_time_difference)
    elif path.is_dir() and looks_like_sintel(path):
        truth = load_sintel(path, indices)
    else:
        raise GroundTruthError(
            f"{path} is not a known ground-truth layout (groundtruth.txt, Sintel .cam/.dpt "
            f"folder, or a synthetic scene with {GROUND_TRUTH_NAME})"
        )
    if image_hw is not None:
        truth = truth.resized((int(image_hw[0]), int(image_hw[1])))
    logger.info(
        "read %s ground truth for %d frames from %s", truth.source_format, truth.num_frames, path
    )
    return truth
