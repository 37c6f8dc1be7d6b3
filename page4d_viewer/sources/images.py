"""Still and animated images -> 8-bit RGB frames, with header checks before any decoding.

Used by `page4d_viewer.sources.clip`; the policies (what is skipped, what is refused) are documented
on `load_clip`.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from page4d_viewer import settings
from page4d_viewer.errors import ClipError
from page4d_viewer.sources.confine import open_file
from page4d_viewer.sources.naming import natural_key

logger = logging.getLogger(__name__)

T = TypeVar("T")

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})
ANIMATION_EXTENSIONS = frozenset({".gif"})
MIN_FRAME_SIDE = 14  # one encoder patch; anything smaller cannot be fed to the model
# settings.MAX_FRAME_PIXELS (default 4096 x 4096), checked from the header before decoding, so
# an 8192 x 8192 PNG of a few KB costs nothing; PIL's own decompression-bomb guard sits above
# it and is also mapped to ClipError.
MAX_FRAME_PIXELS = settings.MAX_FRAME_PIXELS
MAX_IMAGE_FILE_BYTES = 512 * 1024**2  # one image file inside a zip, uncompressed
DEFAULT_FRAME_SECONDS = 0.1  # browsers show GIF frames without a delay at 10 fps

# What PIL raises on broken files: it has no single error class.
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    RuntimeError,  # zipfile: encrypted entry
)


def check_frame_size(width: int, height: int, name: str) -> None:
    """Refuse frames smaller than one patch or larger than MAX_FRAME_PIXELS (header sizes)."""
    if width < MIN_FRAME_SIDE or height < MIN_FRAME_SIDE:
        raise ClipError(
            f"{name} is {width}x{height}: frames must be at least {MIN_FRAME_SIDE} px on each side"
        )
    if width * height > MAX_FRAME_PIXELS.value():
        raise ClipError(MAX_FRAME_PIXELS.message(f"{name} ({width}x{height})", width * height))


def open_image(file: BinaryIO | Path, name: str) -> Image.Image:
    """Open an image lazily (header only); a decompression bomb becomes a ClipError."""
    with warnings.catch_warnings():
        # Large-but-allowed images warn; our own limit decides, right after this.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except Image.DecompressionBombError:
            raise ClipError(
                f"{name} is over the MP limit of PIL's decompression-bomb guard (and of"
                f" {MAX_FRAME_PIXELS.env}); downscale it first"
            ) from None
    check_frame_size(*image.size, name)
    return image


def to_rgb8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """Any PIL image -> (H, W, 3) uint8 RGB.

    EXIF orientation is applied; alpha (RGBA, LA, palette transparency) is composited on
    white, as the authors do; grayscale, palette, CMYK, YCbCr and LAB are converted by PIL;
    16-bit and 32-bit integer grayscale are scaled from the 16-bit range (value / 257),
    float grayscale is taken as [0, 1].
    """
    try:
        image = ImageOps.exif_transpose(image)
    except DECODE_ERRORS as error:
        # A damaged EXIF block should not cost the picture: show it as stored.
        logger.debug("ignoring unreadable EXIF orientation: %s", error)
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_gray_to_rgb8(image)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _high_depth_gray_to_rgb8(image: Image.Image) -> npt.NDArray[np.uint8]:
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        gray = values * 255.0
    elif values.size and values.max() > 255:
        gray = values / 257.0  # 65535 -> 255 exactly
    else:
        gray = values  # an "I" image holding 8-bit values
    gray8 = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return np.repeat(gray8[:, :, None], 3, axis=2)


def fit_to_size(frame: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.uint8]:
    """Letterbox a frame into (height, width): bicubic resize keeping aspect, white padding.

    Args:
        frame: (h, w, 3) uint8.
        height: Output height, pixels.
        width: Output width, pixels.

    Returns:
        (height, width, 3) uint8, the frame centred.
    """
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    new_w = min(width, max(1, round(w * scale)))
    new_h = min(height, max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BICUBIC))
    out = np.full((height, width, 3), 255, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


@dataclass(frozen=True)
class ImageItem:
    """One image file of a folder, zip or list: a display name and a way to read its bytes."""

    name: str
    open: Callable[[], BinaryIO]


def folder_items(folder: Path) -> tuple[list[ImageItem], list[str]]:
    """Image files directly inside a folder, natural-sorted; returns (items, notes)."""
    skipped: list[str] = []
    items: list[ImageItem] = []
    for path in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if path.name.startswith(".") or path.is_dir():
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(path.name)
            continue
        items.append(path_item(path, path.name))
    return items, _skipped_note(skipped, "non-image file")


def list_items(paths: list[Path]) -> list[ImageItem]:
    """An explicit list of image paths, kept in the given order; each must exist and be an image."""
    items = []
    for path in paths:
        if not path.is_file():
            raise ClipError(f"image not found: {path}")
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ClipError(
                f"{path.name} is not a supported image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        items.append(path_item(path, str(path)))
    return items


def path_item(path: Path, name: str) -> ImageItem:
    """An ImageItem reading a file on disk, shown as `name` in notes."""
    return ImageItem(name, lambda: open_file(path))


def zip_items(archive: zipfile.ZipFile) -> tuple[list[ImageItem], list[str]]:
    """Image entries of a zip (nested folders allowed), natural-sorted by their path.

    Skips folders, `__MACOSX/`, dotfiles and non-images (with a note). Refuses the whole
    archive when any entry name is absolute or climbs out with '..' (zip-slip), even though
    we read entries in memory and never extract: such an archive is hostile or broken.
    """
    skipped: list[str] = []
    items: list[ImageItem] = []
    for info in archive.infolist():
        parts = _safe_zip_parts(info.filename)
        if info.is_dir() or not parts:
            continue
        if parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
            continue
        name = "/".join(parts)
        if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(name)
            continue
        items.append(ImageItem(name, _zip_opener(archive, info)))
    items.sort(key=lambda item: [natural_key(part) for part in item.name.split("/")])
    return items, _skipped_note(skipped, "non-image entry")


def _safe_zip_parts(filename: str) -> list[str]:
    normalised = filename.replace("\\", "/")
    parts = [part for part in normalised.split("/") if part not in ("", ".")]
    if normalised.startswith("/") or re.match(r"^[A-Za-z]:", normalised) or ".." in parts:
        raise ClipError(f"zip entry {filename!r} would escape the extraction folder; refusing")
    return parts


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], BinaryIO]:
    def read() -> BinaryIO:
        if info.file_size > MAX_IMAGE_FILE_BYTES:
            raise ClipError(f"zip entry {info.filename!r} is larger than 512 MiB; refusing")
        with archive.open(info) as entry:
            # The directory's size can lie (zip bomb), so the read is bounded by it: the
            # archive-wide budget checked on the directory then holds for what is inflated.
            data = entry.read(info.file_size + 1)
        if len(data) > info.file_size:
            raise ClipError(f"zip entry {info.filename!r} is larger than its directory says")
        return io.BytesIO(data)

    return read


def _skipped_note(names: list[str], what: str) -> list[str]:
    if not names:
        return []
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    plural = "s" if len(names) > 1 else ""
    return [f"skipped {len(names)} {what}{plural}: {shown}"]


def read_or_skip(item: ImageItem, read: Callable[[ImageItem], T], broken: list[str]) -> T | None:
    """``read(item)``, or None for a broken image (one of DECODE_ERRORS): its name is appended
    to ``broken`` so the caller can note it. ClipError (a size limit, an unsafe zip) passes.
    """
    try:
        return read(item)
    except ClipError:
        raise  # a ValueError, so one of DECODE_ERRORS, but it must reach the user
    except DECODE_ERRORS as error:
        logger.debug("cannot read %s: %s", item.name, error)
        broken.append(item.name)
        return None


def probe_items(items: list[ImageItem], notes: list[str]) -> list[tuple[ImageItem, int, int]]:
    """Read every item's header; returns (item, width, height) for the readable ones.

    Unreadable headers are skipped with a note naming them; sizes outside the limits raise.
    """
    readable = []
    broken: list[str] = []
    for item in items:
        size = read_or_skip(item, _stored_size, broken)
        if size is not None:
            readable.append((item, *size))
    notes.extend(_skipped_note(broken, "unreadable image"))
    return readable


def _stored_size(item: ImageItem) -> tuple[int, int]:
    """(width, height) from the image's header."""
    with item.open() as file, open_image(file, item.name) as image:
        # Stored size: the limits and the memory estimate do not care about
        # orientation, and reading EXIF here would make PIL decode PNGs fully.
        return image.size


def decode_item(item: ImageItem) -> npt.NDArray[np.uint8]:
    """Fully decode one image to (H, W, 3) uint8; raises one of DECODE_ERRORS when broken."""
    with item.open() as file, open_image(file, item.name) as image:
        image.load()
        return to_rgb8(image)


@dataclass(frozen=True)
class AnimationInfo:
    """Header facts of an animated image: frame count, per-frame start times, frame size."""

    count: int
    timestamps: npt.NDArray[np.float64]  # (N,) seconds from the first frame
    width: int
    height: int
    notes: list[str]


def probe_animation(path: Path) -> AnimationInfo:
    """Frame count and timing of a GIF (or any multi-frame image PIL reads).

    Frame delays come from each frame's `duration` (ms); missing or zero delays count as
    0.1 s, as browsers show them, with a note.
    """
    durations = []
    with open_file(path) as file, open_image(file, path.name) as image:
        count = getattr(image, "n_frames", 1)
        width, height = image.size
        for index in range(count):
            image.seek(index)  # reads that frame's header and delay
            durations.append(float(image.info.get("duration") or 0.0) / 1000.0)
    seconds = np.asarray(durations, dtype=np.float64)
    notes = []
    if count > 1 and np.any(seconds <= 0):
        notes.append(f"some frame delays are missing; assumed {DEFAULT_FRAME_SECONDS:g} s")
        seconds = np.where(seconds > 0, seconds, DEFAULT_FRAME_SECONDS)
    starts = np.concatenate([[0.0], np.cumsum(seconds)[:-1]])
    return AnimationInfo(count, starts, width, height, notes)


def decode_animation(
    path: Path, indices: npt.ArrayLike
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Yield (index, (H, W, 3) uint8) for the wanted frames, seeking forward only."""
    with open_file(path) as file, open_image(file, path.name) as image:
        for index in np.sort(indices):
            image.seek(int(index))
            image.load()
            yield int(index), to_rgb8(image)
