"""TUM RGB-D and Bonn RGB-D Dynamic ground truth.

``groundtruth.txt`` holds lines ``timestamp tx ty tz qx qy qz qw`` (camera-to-world, ``#``
comments), associated to the frames by nearest timestamp as TUM's ``associate.py`` does. The
path may be the text file or the sequence folder. Depth PNGs (16-bit, 5000 units per metre)
are read when the folder has a ``depth.txt`` and every frame has a depth image close enough
in time. Poses are inverted here to camera-from-world.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from page4d_viewer.geometry import invert_rigid, quaternion_to_rotation
from page4d_viewer.sources.groundtruth.base import GroundTruth, GroundTruthError

logger = logging.getLogger(__name__)

# TUM's associate.py default: a frame and a pose more than 20 ms apart do not match.
DEFAULT_MAX_TIME_DIFFERENCE = 0.02
# TUM RGB-D and Bonn store depth as 16-bit PNG in units of 1/5000 m (0 = no measurement).
TUM_DEPTH_SCALE = 5000.0
TUM_TRAJECTORY = "groundtruth.txt"


def _data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of the non-empty, non-comment lines of a TUM text file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise GroundTruthError(f"cannot read {path}: {error.strerror}") from None
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((number, stripped.replace(",", " ").split()))
    return lines


def read_tum_trajectory(
    path: str | Path,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Read a TUM trajectory file (``timestamp tx ty tz qx qy qz qw``, camera-to-world).

    Args:
        path: the text file.

    Returns:
        (timestamps (N,) float64 seconds, sorted; extrinsics (N, 3, 4) camera-from-world).

    Raises:
        GroundTruthError: a line without 8 numbers, a zero quaternion, or no pose at all.
    """
    path = Path(path)
    rows = []
    for number, fields in _data_lines(path):
        try:
            values = [float(field) for field in fields]
        except ValueError:
            raise GroundTruthError(
                f"{path.name} line {number}: expected 8 numbers 'timestamp tx ty tz qx qy qz qw'"
            ) from None
        if len(values) != 8 or not np.isfinite(values).all():
            raise GroundTruthError(
                f"{path.name} line {number}: expected 8 finite numbers "
                f"'timestamp tx ty tz qx qy qz qw', got {len(values)}"
            )
        if np.linalg.norm(values[4:]) < 1e-6:
            raise GroundTruthError(f"{path.name} line {number}: zero-length quaternion")
        rows.append(values)
    if not rows:
        raise GroundTruthError(f"{path.name} holds no pose")
    table = np.array(rows, dtype=np.float64)
    table = table[np.argsort(table[:, 0], kind="stable")]
    T_world_cam = np.concatenate(
        [quaternion_to_rotation(table[:, 4:8]), table[:, 1:4, None]], axis=-1
    )
    return table[:, 0], invert_rigid(T_world_cam)


def _read_tum_file_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """(timestamps, relative file names) of a TUM ``rgb.txt`` / ``depth.txt``."""
    times, names = [], []
    for number, fields in _data_lines(path):
        try:
            times.append(float(fields[0]))
            names.append(fields[1])
        except (ValueError, IndexError):
            raise GroundTruthError(
                f"{path.name} line {number}: expected 'timestamp filename'"
            ) from None
    return np.array(times, dtype=np.float64), names


def _frame_times_from_folder(folder: Path) -> np.ndarray | None:
    """TUM/Bonn frame times of a sequence: ``rgb.txt``, else the ``rgb/`` file names."""
    if (folder / "rgb.txt").is_file():
        return _read_tum_file_list(folder / "rgb.txt")[0]
    if (folder / "rgb").is_dir():
        times = []
        for image in sorted((folder / "rgb").iterdir()):
            try:
                times.append(float(image.stem))
            except ValueError:
                continue
        if times:
            return np.sort(np.array(times, dtype=np.float64))
    return None


def associate_timestamps(
    frame_times: np.ndarray, reference_times: np.ndarray, max_difference: float
) -> np.ndarray:
    """Index of the nearest reference time for each frame, like TUM's ``associate.py``.

    Args:
        frame_times: (S,) seconds.
        reference_times: (N,) seconds, sorted ascending.
        max_difference: largest allowed |difference|, seconds.

    Returns:
        (S,) int64 indices into ``reference_times``.

    Raises:
        GroundTruthError: some frame has no reference time within ``max_difference``.
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    reference_times = np.asarray(reference_times, dtype=np.float64)
    # Candidates: the reference time just before and just after each frame time.
    after = np.clip(np.searchsorted(reference_times, frame_times), 0, len(reference_times) - 1)
    before = np.maximum(after - 1, 0)
    closer_before = np.abs(frame_times - reference_times[before]) <= np.abs(
        reference_times[after] - frame_times
    )
    nearest = np.where(closer_before, before, after)
    gap = np.abs(reference_times[nearest] - frame_times)
    if (gap > max_difference).any():
        worst = int(np.argmax(gap > max_difference))
        raise GroundTruthError(
            f"frame {worst} (t = {frame_times[worst]:.6f} s) has no ground-truth pose within "
            f"{max_difference} s (poses cover {reference_times[0]:.6f} to "
            f"{reference_times[-1]:.6f} s)"
        )
    return nearest


def _tum_frame_times(
    folder: Path,
    indices: np.ndarray | None,
    timestamps: Sequence[float] | np.ndarray | None,
    pose_times: np.ndarray,
    max_difference: float,
) -> np.ndarray:
    """The time of each clip frame, from the caller or from the sequence's image list."""
    if timestamps is not None:
        times = np.asarray(timestamps, dtype=np.float64).ravel()
        if indices is not None and len(indices) != len(times):
            raise GroundTruthError(
                f"{len(times)} timestamps but {len(indices)} frame indices were given"
            )
        inside = (times >= pose_times[0] - max_difference) & (
            times <= pose_times[-1] + max_difference
        )
        if inside.all():
            return times
        logger.info("frame timestamps lie outside the trajectory; using the sequence's rgb list")
    listed = _frame_times_from_folder(folder)
    if listed is None:
        if timestamps is not None:
            return np.asarray(timestamps, dtype=np.float64).ravel()
        raise GroundTruthError(
            f"no frame times: pass timestamps, or keep rgb.txt or rgb/ beside {TUM_TRAJECTORY}"
        )
    if indices is None:
        return listed
    if indices.size and (indices.min() < 0 or indices.max() >= len(listed)):
        raise GroundTruthError(
            f"frame index {int(indices.max())} is out of range: the sequence has "
            f"{len(listed)} frames"
        )
    return listed[indices]


def load_tum(
    path: Path,
    indices: np.ndarray | None,
    timestamps: Sequence[float] | np.ndarray | None,
    max_difference: float,
) -> GroundTruth:
    trajectory_file = path if path.is_file() else path / TUM_TRAJECTORY
    folder = trajectory_file.parent
    pose_times, extrinsics = read_tum_trajectory(trajectory_file)
    frame_times = _tum_frame_times(folder, indices, timestamps, pose_times, max_difference)
    matched = associate_timestamps(frame_times, pose_times, max_difference)
    return GroundTruth(
        extrinsics=extrinsics[matched],
        intrinsics=None,
        depth=_tum_depth(folder, frame_times, max_difference),
        dynamic_mask=None,
        source_format="tum",
        timestamps=pose_times[matched],
        path=str(trajectory_file),
    )


def _tum_depth(folder: Path, frame_times: np.ndarray, max_difference: float) -> np.ndarray | None:
    """Depth in metres for each frame from ``depth.txt``, or None when it cannot be matched."""
    listing = folder / "depth.txt"
    if not listing.is_file():
        return None
    depth_times, names = _read_tum_file_list(listing)
    if not names:
        return None
    order = np.argsort(depth_times, kind="stable")
    try:
        matched = associate_timestamps(frame_times, depth_times[order], max_difference)
    except GroundTruthError as error:
        logger.warning("depth images not used: %s", error)
        return None

    frames = []
    for index in order[matched]:
        file = folder / names[index]
        try:
            with Image.open(file) as image:
                raw = np.asarray(image)
        except OSError as error:
            raise GroundTruthError(f"cannot read depth image {file}: {error}") from None
        if raw.ndim != 2:
            raise GroundTruthError(f"depth image {file} is not single-channel")
        frames.append(raw.astype(np.float32) / TUM_DEPTH_SCALE)
    if len({frame.shape for frame in frames}) != 1:
        raise GroundTruthError(f"depth images in {folder} differ in size")
    return np.stack(frames)
