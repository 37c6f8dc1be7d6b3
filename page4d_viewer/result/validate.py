"""The schema of a result file, in one place, and its reading under a memory budget.

`ARRAYS` lists every array a result file may hold: its dtype kind, its shape in the symbols
S (frames), H, W (image pixels), h, w (mask patches), whether it is required, and whether its
values must be finite. An optional array added later (tracks, attention maps) is one entry.
`read_arrays` reads each npy header inside the npz before any array is allocated, so a file
claiming 10^12 elements is refused for the cost of its header; `check_metadata` checks the
type of every metadata field. Every problem is one `ResultFileError` line naming the file.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from page4d_viewer import settings
from page4d_viewer.errors import ResultFileError
from page4d_viewer.result.cameras import MASKED, VARIANTS
from page4d_viewer.result.inspection import ATTENTION_VARIANTS

MAX_MEMBERS = 64
"""A result file holds a dozen arrays; more entries than this is not one."""


@dataclass(frozen=True)
class ArraySpec:
    """What one array of a result file must be.

    Attributes:
        kinds: allowed numpy dtype kinds ("u" unsigned, "i" signed, "f" float, "b" bool, "U").
        shape: dimensions, each a symbol ("S", "H", "W", "h", "w") or a fixed size.
        required: the file is refused without it.
        finite: every value must be finite. Extrinsics are: NaN poses break the alignment's
            SVD and every camera centre. Intrinsics are not: an untrained checkpoint predicts
            a zero field of view (an infinite focal length), and its results must still open.
    """

    kinds: str
    shape: tuple[str | int, ...]
    required: bool = False
    finite: bool = False


ARRAYS: dict[str, ArraySpec] = {
    "format_version": ArraySpec("iu", (), required=True),
    "metadata_json": ArraySpec("U", (), required=True),
    "images": ArraySpec("u", ("S", "H", "W", 3), required=True),
    "depth": ArraySpec("f", ("S", "H", "W"), required=True),
    "depth_conf": ArraySpec("f", ("S", "H", "W"), required=True),
    "points": ArraySpec("f", ("S", "H", "W", 3), required=True),
    "points_conf": ArraySpec("f", ("S", "H", "W"), required=True),
    "mask_score": ArraySpec("f", ("S", "h", "w")),
    "gt_depth": ArraySpec("f", ("S", "H", "W")),
    "gt_dynamic_mask": ArraySpec("b", ("S", "H", "W")),
    **{
        f"cameras.{variant}.{part}": ArraySpec(
            "f", ("S", 3, size), required=variant == MASKED, finite=part == "extrinsics"
        )
        for variant in VARIANTS
        for part, size in (("extrinsics", 4), ("intrinsics", 3))
    },
    # Inside the model (result/inspection.py): L attention layers, Q query frames, F feature
    # layers; values are checked by Inside once read.
    **{
        f"{prefix}.{variant}": ArraySpec("f", shape)
        for variant in ATTENTION_VARIANTS
        for prefix, shape in (
            ("attention", ("L", "Q", "S", "h", "w")),
            ("attention_special", ("L", "Q", "S")),
        )
    },
    "attention_layers": ArraySpec("iu", ("L",)),
    "attention_query_frames": ArraySpec("iu", ("Q",)),
    "feature_pca": ArraySpec("u", ("F", "S", "h", "w", 3)),
    "feature_layers": ArraySpec("iu", ("F",)),
    # Point tracks (result/tracks.py): N tracks, predicted and (same queries) ground truth;
    # each four present together, checked by Tracks once read.
    **{
        f"{prefix}_{part}": ArraySpec(kinds, shape, finite=part == "xy")
        for prefix in ("track", "gt_track")
        for part, kinds, shape in (
            ("xy", "f", ("S", "N", 2)),
            ("visibility", "f", ("S", "N")),
            ("confidence", "f", ("S", "N")),
            ("query_frame", "iu", ("N",)),
        )
    },
}
"""Every array a result file may hold. Unknown names (a newer writer's) are read and ignored."""


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read a result file's arrays after checking every npy header against `ARRAYS`.

    Raises:
        ResultFileError: not a zip of npy arrays, too many entries, a header that is not a
            plain array or does not fit the schema, more than settings.MAX_RESULT_BYTES of
            arrays, a truncated or damaged member, or a missing required array.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            if len(archive.infolist()) > MAX_MEMBERS:
                raise ResultFileError(f"{path} has {len(archive.infolist())} entries; refused")
            headers = {info.filename[:-4]: _header(archive, info, path) for info in entries}
            missing = [name for name, spec in ARRAYS.items() if spec.required]
            missing = [name for name in missing if name not in headers]
            if "format_version" in missing:
                raise ResultFileError(
                    f"{path} is not a page4d_viewer result file (no format_version)"
                )
            if missing:
                raise ResultFileError(f"{path} is missing arrays: {', '.join(missing)}")
            _check_shapes(headers, path)
            total = sum(_nbytes(shape, dtype) for shape, dtype in headers.values())
            if total > settings.MAX_RESULT_BYTES.value():
                raise ResultFileError(settings.MAX_RESULT_BYTES.message(str(path), total))
            return {info.filename[:-4]: _read(archive, info, path) for info in entries}
    except zipfile.BadZipFile as error:
        raise ResultFileError(
            f"{path} is not a readable page4d_viewer result file ({error})"
        ) from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise ResultFileError(f"{path} is damaged or truncated ({detail})") from None


def _header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path
) -> tuple[tuple[int, ...], np.dtype]:
    try:
        with archive.open(info) as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(file)
    except (ValueError, TypeError, SyntaxError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        detail = " ".join(str(error).split())[:120] or type(error).__name__
        raise ResultFileError(f"{path}: {info.filename} has a damaged header ({detail})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise ResultFileError(f"{path}: {info.filename} is not a plain numeric array; refused")
    return tuple(int(side) for side in shape), dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def _check_shapes(headers: dict[str, tuple[tuple[int, ...], np.dtype]], path: Path) -> None:
    """Each known array's dtype kind and shape, with the symbols equal across arrays."""
    sizes: dict[str, int] = {}
    for name, spec in ARRAYS.items():
        if name not in headers:
            continue
        shape, dtype = headers[name]
        wanted = "x".join(str(side) for side in spec.shape) or "a scalar"
        if dtype.kind not in spec.kinds or len(shape) != len(spec.shape):
            raise ResultFileError(
                f"{path}: {name} must be {wanted} of kind {spec.kinds!r}, got {shape} {dtype.str}"
            )
        for symbol, side in zip(spec.shape, shape, strict=True):
            expected = sizes.setdefault(symbol, side) if isinstance(symbol, str) else symbol
            if side != expected:
                raise ResultFileError(
                    f"{path}: {name} must be {wanted} ({symbol} = {expected}), got {shape}"
                )
    if sizes.get("S", 0) < 1 or sizes.get("H", 0) < 1 or sizes.get("W", 0) < 1:
        raise ResultFileError(f"{path} holds no frames (images are {headers['images'][0]})")


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    name = info.filename[:-4]
    try:
        with archive.open(info) as file:
            array = np.lib.format.read_array(file, allow_pickle=False)
    except (ValueError, TypeError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        detail = " ".join(str(error).split())[:120] or type(error).__name__
        raise ResultFileError(f"{path}: {name} is damaged or truncated ({detail})") from None
    spec = ARRAYS.get(name)
    if spec is not None and spec.finite and not np.all(np.isfinite(array)):
        raise ResultFileError(f"{path}: {name} holds NaN or infinite values; refused")
    return array


# --------------------------------------------------------------------------------- metadata

_NUMBER = (int, float)
_STRING_FIELDS = (
    "checkpoint_name",
    "checkpoint_hash",
    "model_variant",
    "source",
    "device",
    "precision",
    "created_at",
    "package_version",
)


def check_metadata(data: Any, frames: int, path: Path) -> dict[str, Any]:
    """Check the type of every metadata field (as written by `Metadata.to_dict`).

    Returns:
        The metadata dict, unchanged.

    Raises:
        ResultFileError: not an object, or a field of the wrong type or length.
    """

    def bad(field: str, wanted: str) -> ResultFileError:
        value = repr(data.get(field))[:60]
        return ResultFileError(f"{path}: metadata {field} must be {wanted}, got {value}")

    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: metadata must be a JSON object")
    for field in _STRING_FIELDS:
        if field in data and not isinstance(data[field], str):
            raise bad(field, "text")
    strength = data.get("mask_strength", 0.0)
    if not _is_number(strength) or not math.isfinite(strength):
        raise bad("mask_strength", "a finite number")
    if not isinstance(data.get("mask_available", False), bool):
        raise bad("mask_available", "true or false")
    indices = data.get("frame_indices", [])
    if not _list_of(indices, int, frames):
        raise bad("frame_indices", f"a list of {frames} whole numbers (or empty)")
    times = data.get("timestamps", [])
    if not _list_of(times, _NUMBER, frames) or not all(math.isfinite(t) for t in times):
        raise bad("timestamps", f"a list of {frames} finite numbers of seconds (or empty)")
    timings = data.get("timings", {})
    if not isinstance(timings, dict) or not all(
        isinstance(key, str) and _is_number(value) and math.isfinite(value)
        for key, value in timings.items()
    ):
        raise bad("timings", "an object of stage -> finite seconds")
    _check_preprocessing(data.get("preprocessing", {}), bad)
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise bad("extra", "an object")
    _check_extra_records(extra, path)
    return data


def _check_extra_records(extra: dict[str, Any], path: Path) -> None:
    """The typed records a file keeps in its metadata's ``extra`` (see ``Metadata``)."""

    def bad(name: str, expected: str) -> ResultFileError:
        return ResultFileError(f"{path}: metadata extra.{name} must be {expected}")

    notes = extra.get("clip_notes", [])
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise bad("clip_notes", "a list of text")
    for name in ("ground_truth", "batch_clip"):
        if not isinstance(extra.get(name, ""), str):
            raise bad(name, "text")
    poses = extra.get("geometric_poses")
    if poses is None:
        return
    unsolved = poses.get("unsolved", {}) if isinstance(poses, dict) else None
    if (
        not isinstance(poses, dict)
        or not isinstance(poses.get("source"), str)
        or not isinstance(unsolved, dict)
        or not all(
            isinstance(frames, list) and _list_of(frames, int, len(frames))
            for frames in unsolved.values()
        )
    ):
        raise bad("geometric_poses", "an object with a text source and lists of frames")


def _check_preprocessing(value: Any, bad: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise bad("preprocessing", "an object")
    if not isinstance(value.get("mode", "crop"), str):
        raise bad("preprocessing", "an object whose mode is text")
    size = value.get("target_size", 518)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise bad("preprocessing", "an object whose target_size is a positive whole number")
    if not isinstance(value.get("mapping", {}), dict):
        raise bad("preprocessing", "an object whose mapping is an object")


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def _list_of(value: Any, kind: type | tuple[type, ...], length: int) -> bool:
    if not isinstance(value, list) or len(value) not in (0, length):
        return False
    return all(isinstance(item, kind) and not isinstance(item, bool) for item in value)
