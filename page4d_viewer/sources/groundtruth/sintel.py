"""MPI Sintel ground truth.

A folder of ``.cam`` files (``camdata_left/<scene>``) and/or ``.dpt`` depth files
(``depth/<scene>``); the sibling folder of the other kind, and MonST3R's
``dynamic_label_perfect/<scene>`` PNG masks, are picked up when present. Files are matched to
frames by natural sort order. Sintel's extrinsics are already world-to-camera.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from page4d_viewer.sources.groundtruth.base import GroundTruth, GroundTruthError
from page4d_viewer.sources.naming import natural_key

# Sintel's binary files start with this float32 tag (the bytes "PIEH").
SINTEL_TAG = 202021.25
_SINTEL_CAM_BYTES = 4 + 9 * 8 + 12 * 8
_SINTEL_MAX_SIDE = 100_000


def looks_like_sintel(folder: Path) -> bool:
    """Whether ``folder`` holds Sintel ``.cam`` or ``.dpt`` files."""
    return bool(_sintel_files(folder, ".cam") + _sintel_files(folder, ".dpt"))


def _sintel_files(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == suffix]
    return sorted(files, key=lambda p: natural_key(p.name))


def _read_sintel_tag(data: bytes, path: Path) -> None:
    if len(data) < 4 or struct.unpack("<f", data[:4])[0] != SINTEL_TAG:
        raise GroundTruthError(f"{path.name} is not a Sintel file (wrong tag; expected 'PIEH')")


def read_sintel_cam(path: str | Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
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


def read_sintel_depth(path: str | Path) -> npt.NDArray[np.float32]:
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


def load_sintel(folder: Path, indices: npt.NDArray[np.integer] | None) -> GroundTruth:
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
