"""Readers for ground-truth cameras, depth and dynamic masks, in one GroundTruth dataclass.

Supported layouts (``load_ground_truth`` detects which from the path):

* **TUM RGB-D / Bonn RGB-D Dynamic**: ``groundtruth.txt`` with lines
  ``timestamp tx ty tz qx qy qz qw`` (camera-to-world, ``#`` comments), associated to the
  frames by nearest timestamp as TUM's ``associate.py`` does. The path may be the text file or
  the sequence folder. Depth PNGs (16-bit, 5000 units per metre) are read when the folder has a
  ``depth.txt`` and every frame has a depth image close enough in time.
* **MPI Sintel**: a folder of ``.cam`` files (``camdata_left/<scene>``) and/or ``.dpt`` depth
  files (``depth/<scene>``); the sibling folder of the other kind, and MonST3R's
  ``dynamic_label_perfect/<scene>`` PNG masks, are picked up when present. Files are matched
  to frames by natural sort order.
* **page4d_viewer synthetic scenes**: a folder holding ``groundtruth.npz``; read by
  ``page4d_viewer.sources.synthetic.load_synthetic_clip``.

Whatever the source, ``GroundTruth.extrinsics`` are camera-from-world (OpenCV, as in
``geometry.py``): TUM poses are inverted here, Sintel's are already world-to-camera.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from page4d_viewer.errors import Page4DError
from page4d_viewer.geometry import invert_rigid, quaternion_to_rotation

logger = logging.getLogger(__name__)

# TUM's associate.py default: a frame and a pose more than 20 ms apart do not match.
DEFAULT_MAX_TIME_DIFFERENCE = 0.02
# TUM RGB-D and Bonn store depth as 16-bit PNG in units of 1/5000 m (0 = no measurement).
TUM_DEPTH_SCALE = 5000.0
# Sintel's binary files start with this float32 tag (the bytes "PIEH").
SINTEL_TAG = 202021.25
_SINTEL_CAM_BYTES = 4 + 9 * 8 + 12 * 8
_SINTEL_MAX_SIDE = 100_000
# When GT maps are resized to the frames, a larger aspect change means a crop we cannot undo.
_ASPECT_TOLERANCE = 0.01

SYNTHETIC_MARKER = "groundtruth.npz"
TUM_TRAJECTORY = "groundtruth.txt"


class GroundTruthError(Page4DError):
    """A ground-truth file or folder is missing, malformed, or does not match the frames."""


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth for the S frames of a clip; any part may be missing.

    Attributes:
        extrinsics: (S, 3, 4) float64 camera-from-world ``T_cam_world`` (OpenCV), or None.
        intrinsics: (S, 3, 3) float64 pinhole matrices in pixels of ``depth``/the frames, or None.
        depth: (S, H, W) float32 depth along the optical axis, 0 where unknown, or None.
        dynamic_mask: (S, H, W) bool, True on moving pixels, or None.
        source_format: "tum", "sintel" or "synthetic".
        timestamps: (S,) float64 times of the matched poses in seconds (TUM), or None.
        path: where it was read from.
        valid_region: (H, W) bool, pixels that show the clip after ``to_model_input`` (False on
            padding or cropped-away areas), or None when every pixel does.
    """

    extrinsics: np.ndarray | None
    intrinsics: np.ndarray | None
    depth: np.ndarray | None
    dynamic_mask: np.ndarray | None
    source_format: str
    timestamps: np.ndarray | None = None
    path: str = ""
    valid_region: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames S (0 if nothing is known)."""
        for array in (self.extrinsics, self.intrinsics, self.depth, self.dynamic_mask):
            if array is not None:
                return int(array.shape[0])
        return 0

    @property
    def image_hw(self) -> tuple[int, int] | None:
        """(H, W) of the depth / mask maps, or None when there are none."""
        for array in (self.depth, self.dynamic_mask):
            if array is not None:
                return int(array.shape[1]), int(array.shape[2])
        return None

    def to_model_input(self, mapping: dict[str, Any]) -> GroundTruth:
        """The same ground truth in model-input pixels, following the clip's crop or pad.

        Each model-input pixel centre is mapped back to the clip frame with
        ``clip = (model - offset) / scale`` (``page4d_viewer.model.preprocess`` mapping,
        continuous pixel coordinates with the corner at 0) and takes the nearest GT pixel;
        pixels outside the frame (padding, or cropped away) get depth 0 and mask False.
        Intrinsics follow the same affine map (shifted by half a pixel: they use integer
        pixel centres).

        Args:
            mapping: the ``PreprocessMapping.to_dict()`` record (``Reconstruction.metadata.
                preprocessing.mapping``): model_size, scale_x/y, offset_x/y, original_size.

        Returns:
            A GroundTruth whose maps are (S, model_h, model_w).
        """
        try:
            model_h, model_w = (int(v) for v in mapping["model_size"])
            scale_x, scale_y = float(mapping["scale_x"]), float(mapping["scale_y"])
            offset_x, offset_y = float(mapping["offset_x"]), float(mapping["offset_y"])
        except (KeyError, TypeError, ValueError) as error:
            raise GroundTruthError(f"malformed preprocessing mapping: {error!r}") from None
        intrinsics = self.intrinsics
        if intrinsics is not None:
            # The mapping uses corner-at-0 pixel coordinates, intrinsics integer pixel centres
            # (geometry.py), hence the half-pixel terms.
            shift_x = offset_x + 0.5 * (scale_x - 1)
            shift_y = offset_y + 0.5 * (scale_y - 1)
            affine = np.array([[scale_x, 0, shift_x], [0, scale_y, shift_y], [0, 0, 1]])
            intrinsics = affine @ intrinsics
        source_hw = self.image_hw
        if source_hw is None:
            return replace(self, intrinsics=intrinsics)
        rows = _nearest_source_index(model_h, scale_y, offset_y, source_hw[0])
        cols = _nearest_source_index(model_w, scale_x, offset_x, source_hw[1])
        inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
        rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)
        depth = self.depth
        if depth is not None:
            depth = np.where(inside, depth[:, rows][:, :, cols], 0).astype(np.float32)
        mask = self.dynamic_mask
        if mask is not None:
            mask = mask[:, rows][:, :, cols] & inside
        if self.valid_region is not None:
            inside &= self.valid_region[rows][:, cols]
        return replace(
            self, intrinsics=intrinsics, depth=depth, dynamic_mask=mask, valid_region=inside
        )

    def resized(self, image_hw: tuple[int, int]) -> GroundTruth:
        """GT maps resized (nearest neighbour) to frames of ``image_hw``, intrinsics scaled.

        Raises:
            GroundTruthError: when the aspect ratio differs by more than 1 % (a crop).
        """
        source_hw = self.image_hw
        if source_hw is None or tuple(source_hw) == tuple(image_hw):
            return self
        height, width = image_hw
        scale_y, scale_x = height / source_hw[0], width / source_hw[1]
        if abs(scale_x / scale_y - 1) > _ASPECT_TOLERANCE:
            raise GroundTruthError(
                f"ground-truth maps are {source_hw[1]}x{source_hw[0]} but frames are "
                f"{width}x{height}: a different aspect ratio cannot be matched"
            )
        mapping = {
            "model_size": [height, width],
            "scale_x": scale_x,
            "scale_y": scale_y,
            "offset_x": 0,
            "offset_y": 0,
        }
        return self.to_model_input(mapping)

    def select(self, frames: Sequence[int] | np.ndarray) -> GroundTruth:
        """The ground truth of the given frame positions (0-based)."""
        frames = np.asarray(frames, dtype=np.int64)
        count = self.num_frames
        if frames.size and (frames.min() < -count or frames.max() >= count):
            raise GroundTruthError(
                f"frame index {int(frames.max())} is out of range: ground truth has {count} frames"
            )

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[frames]

        return replace(
            self,
            extrinsics=pick(self.extrinsics),
            intrinsics=pick(self.intrinsics),
            depth=pick(self.depth),
            dynamic_mask=pick(self.dynamic_mask),
            timestamps=pick(self.timestamps),
        )


def _nearest_source_index(size: int, scale: float, offset: float, source_size: int) -> np.ndarray:
    """Source pixel under each target pixel centre along one axis; -1 when outside."""
    centres = (np.arange(size) + 0.5 - offset) / scale
    index = np.floor(centres).astype(np.int64)
    return np.where((index >= 0) & (index < source_size), index, -1)


def load_ground_truth(
    path: str | Path,
    *,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    timestamps: Sequence[float] | np.ndarray | None = None,
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
    if path.is_dir() and (path / SYNTHETIC_MARKER).is_file():
        truth = _load_synthetic(path, indices)
    elif (path.is_file() and path.suffix.lower() == ".txt") or (path / TUM_TRAJECTORY).is_file():
        truth = _load_tum(path, indices, timestamps, max_time_difference)
    elif path.is_dir() and _sintel_files(path, ".cam") + _sintel_files(path, ".dpt"):
        truth = _load_sintel(path, indices)
    else:
        raise GroundTruthError(
            f"{path} is not a known ground-truth layout (groundtruth.txt, Sintel .cam/.dpt "
            f"folder, or a synthetic scene with {SYNTHETIC_MARKER})"
        )
    if image_hw is not None:
        truth = truth.resized((int(image_hw[0]), int(image_hw[1])))
    logger.info(
        "read %s ground truth for %d frames from %s", truth.source_format, truth.num_frames, path
    )
    return truth


# --------------------------------------------------------------------------------------------
# Synthetic scenes
# --------------------------------------------------------------------------------------------


def _load_synthetic(folder: Path, indices: np.ndarray | None) -> GroundTruth:
    # Imported here: only synthetic folders need the scene generator.
    from page4d_viewer.sources import synthetic

    scene = synthetic.load_synthetic_clip(folder)

    def optional(name: str, dtype: type) -> np.ndarray | None:
        value = getattr(scene, name, None)
        return None if value is None else np.asarray(value, dtype=dtype)

    depth = optional("depth", np.float32)
    valid = optional("valid", bool)
    if depth is not None and valid is not None:
        # Pixels that see no surface carry no depth: 0 is this module's "unknown".
        depth = np.where(valid, depth, 0).astype(np.float32)
    truth = GroundTruth(
        extrinsics=optional("extrinsics", np.float64),
        intrinsics=optional("intrinsics", np.float64),
        depth=depth,
        dynamic_mask=optional("dynamic_mask", bool),
        source_format="synthetic",
        timestamps=optional("timestamps", np.float64),
        path=str(folder),
    )
    return truth if indices is None else truth.select(indices)


# --------------------------------------------------------------------------------------------
# TUM RGB-D and Bonn
# --------------------------------------------------------------------------------------------


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


def read_tum_trajectory(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
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


def _load_tum(
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
    from PIL import Image  # only needed when a sequence has depth images

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


# --------------------------------------------------------------------------------------------
# MPI Sintel
# --------------------------------------------------------------------------------------------


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _sintel_files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix]
    return sorted(files, key=lambda p: natural_key(p.name))


def _read_sintel_tag(data: bytes, path: Path) -> None:
    if len(data) < 4 or struct.unpack("<f", data[:4])[0] != SINTEL_TAG:
        raise GroundTruthError(f"{path.name} is not a Sintel file (wrong tag; expected 'PIEH')")


def read_sintel_cam(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a Sintel ``.cam`` file.

    Layout: float32 tag 202021.25, then float64 row-major 3x3 intrinsics and 3x4 extrinsics
    (world-to-camera: ``x = K [R | t] X``), little-endian.

    Returns:
        (intrinsics (3, 3), extrinsics (3, 4) camera-from-world), float64.
    """
    path = Path(path)
    data = _read_bytes(path)
    _read_sintel_tag(data, path)
    if len(data) < _SINTEL_CAM_BYTES:
        raise GroundTruthError(
            f"{path.name} is truncated: {len(data)} bytes, a .cam file has {_SINTEL_CAM_BYTES}"
        )
    values = np.frombuffer(data, dtype="<f8", count=21, offset=4)
    if not np.isfinite(values).all():
        raise GroundTruthError(f"{path.name} holds NaN or infinite camera values")
    return values[:9].reshape(3, 3).copy(), values[9:].reshape(3, 4).copy()


def read_sintel_depth(path: str | Path) -> np.ndarray:
    """Read a Sintel ``.dpt`` depth file.

    Layout: float32 tag 202021.25, int32 width, int32 height, then height*width float32
    depths in row-major order, little-endian.

    Returns:
        (H, W) float32 depth along the optical axis.
    """
    path = Path(path)
    data = _read_bytes(path)
    _read_sintel_tag(data, path)
    if len(data) < 12:
        raise GroundTruthError(f"{path.name} is truncated: no width/height header")
    width, height = struct.unpack("<ii", data[4:12])
    if not (0 < width < _SINTEL_MAX_SIDE and 0 < height < _SINTEL_MAX_SIDE):
        raise GroundTruthError(f"{path.name} has an impossible size {width}x{height}")
    expected = 12 + 4 * width * height
    if len(data) != expected:
        raise GroundTruthError(
            f"{path.name} has {len(data)} bytes, a {width}x{height} .dpt file has {expected}"
        )
    return np.frombuffer(data, dtype="<f4", offset=12).reshape(height, width).astype(np.float32)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise GroundTruthError(f"cannot read {path}: {error.strerror}") from None


def _sintel_sibling(folder: Path, kind: str) -> Path:
    """``training/<kind>/<scene>`` beside ``training/<other kind>/<scene>``."""
    return folder.parent.parent / kind / folder.name


def _pick(files: list[Path], indices: np.ndarray | None, what: str) -> list[Path]:
    if indices is None:
        return files
    if indices.size and (indices.min() < 0 or indices.max() >= len(files)):
        raise GroundTruthError(
            f"frame index {int(indices.max())} is out of range: found {len(files)} {what}"
        )
    return [files[i] for i in indices]


def _load_sintel(folder: Path, indices: np.ndarray | None) -> GroundTruth:
    cams = _sintel_files(folder, ".cam") or _sintel_files(
        _sintel_sibling(folder, "camdata_left"), ".cam"
    )
    depths = _sintel_files(folder, ".dpt") or _sintel_files(
        _sintel_sibling(folder, "depth"), ".dpt"
    )
    masks = _sintel_files(_sintel_sibling(folder, "dynamic_label_perfect"), ".png")
    counts = {name: len(files) for name, files in (("cam", cams), ("dpt", depths)) if files}
    if len(set(counts.values())) > 1:
        raise GroundTruthError(
            f"Sintel scene {folder.name} has {counts['cam']} .cam but {counts['dpt']} .dpt files"
        )
    intrinsics = extrinsics = depth = mask = None
    if cams:
        read = [read_sintel_cam(p) for p in _pick(cams, indices, ".cam files")]
        intrinsics = np.stack([k for k, _ in read])
        extrinsics = np.stack([e for _, e in read])
    if depths:
        frames = [read_sintel_depth(p) for p in _pick(depths, indices, ".dpt files")]
        if len({frame.shape for frame in frames}) != 1:
            raise GroundTruthError(f"Sintel depth maps of {folder.name} differ in size")
        depth = np.stack(frames)
    if masks and len(masks) == max(counts.values()):
        mask = _read_masks(_pick(masks, indices, "mask images"))
    return GroundTruth(
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        depth=depth,
        dynamic_mask=mask,
        source_format="sintel",
        path=str(folder),
    )


def _read_masks(files: list[Path]) -> np.ndarray:
    """(S, H, W) bool: non-zero pixels of single-channel PNGs are dynamic."""
    from PIL import Image  # only needed when a scene has mask images

    frames = []
    for file in files:
        try:
            with Image.open(file) as image:
                frames.append(np.asarray(image.convert("L")) > 0)
        except OSError as error:
            raise GroundTruthError(f"cannot read mask image {file}: {error}") from None
    if len({frame.shape for frame in frames}) != 1:
        raise GroundTruthError("dynamic mask images differ in size")
    return np.stack(frames)
