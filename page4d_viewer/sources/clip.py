"""Sources (video, GIF, image, folder, zip, list of images) -> a `Clip` of uint8 RGB frames.

`load_clip` reads a source, samples frames (a `FrameSampling`: range, target fps, stride,
max_frames; see `sources.sampling`) and decodes only the frames it keeps. `inference.preprocess`
turns a clip into the model input exactly as the authors do. Policies, in one place:

- Timestamps: videos use the stream's presentation times, GIFs their frame delays, both in
  seconds from the first frame. Still images have no timing: their timestamps are NaN,
  `source_fps` is None, and the time-based options (fps, start_time, end_time) are refused.
- Frame sizes: every frame of a clip has the first kept frame's size; a frame of another
  size is letterboxed into it (bicubic resize keeping aspect, centred, white padding) and a
  note says how many were. `original_sizes` keeps each frame's size in the source.
- Broken images in a folder, zip or list are skipped with a note naming them; when nothing
  readable is left the load fails. A single broken image file fails.
- Broken videos: a file that does not open, or yields no frame, fails; a truncated video
  returns the wanted frames that decoded, with a note, when at least one did.
- Limits (settings.py, each raised by its PAGE4D_MAX_* environment variable): frames must be
  at least 14 px on each side and at most MAX_FRAME_PIXELS (checked from the header, before
  decoding); a clip of more than MAX_FRAMES frames or MAX_CLIP_PIXELS decoded pixels is refused
  before decoding (use stride or max_frames); a zip of more than MAX_ZIP_MEMBERS entries or
  MAX_ZIP_BYTES uncompressed (from its directory) is refused before inflating anything.
- Files: only regular files are read (FIFOs and devices are refused); with `roots` (or inside
  `sources.confine.confined`) every file read, folder members and link targets included,
  must resolve inside them.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import numpy.typing as npt

from page4d_viewer import settings
from page4d_viewer.errors import ClipError
from page4d_viewer.sources.confine import check_path, confined, open_file
from page4d_viewer.sources.images import (
    ANIMATION_EXTENSIONS,
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    MAX_FRAME_PIXELS,
    MIN_FRAME_SIDE,
    ImageItem,
    decode_animation,
    decode_item,
    fit_to_size,
    folder_items,
    list_items,
    path_item,
    probe_animation,
    probe_items,
    read_or_skip,
    zip_items,
)
from page4d_viewer.sources.sampling import ALL_FRAMES, FrameSampling, select_frame_indices
from page4d_viewer.sources.video import VIDEO_EXTENSIONS, decode_video, probe_video

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_CLIP_BYTES",
    "MAX_FRAME_PIXELS",
    "MIN_FRAME_SIDE",
    "VIDEO_EXTENSIONS",
    "Clip",
    "FrameSampling",
    "load_clip",
    "select_frame_indices",
]

logger = logging.getLogger(__name__)

MAX_CLIP_BYTES = 4 * 1024**3  # decoded uint8 frames of one clip; beyond this, sample harder
MAX_CLIP_PIXELS = settings.MAX_CLIP_PIXELS
MAX_FRAMES = settings.MAX_FRAMES
MAX_ZIP_MEMBERS = settings.MAX_ZIP_MEMBERS
MAX_ZIP_BYTES = settings.MAX_ZIP_BYTES
ZIP_EXTENSIONS = frozenset({".zip"})
Progress = Callable[[int, int], None]
SourceLike = str | PathLike | Sequence[str | PathLike]


@dataclass
class Clip:
    """Frames sampled from one source, ready for `preprocess`.

    Attributes:
        frames: (S, H, W, 3) uint8 RGB; all frames share the first kept frame's size.
        frame_indices: (S,) int64, each frame's index in the source (video frame number,
            GIF frame number, or position in the sorted image list).
        timestamps: (S,) float64 seconds from the source's first frame; NaN for still images.
        source: The path the frames came from (the common folder for a list of images).
        source_fps: The source's frame rate in frames per second; None for still images.
        original_sizes: (S, 2) int64 (height, width) of each frame as stored in the source,
            before any letterboxing.
        frame_names: (S,) names: file names (relative paths in a zip) for image sources,
            'frame 12'-style labels for videos and GIFs.
        kind: "video", "animation", "image", "folder", "zip" or "list".
        source_frame_count: Frames (or readable images) the source holds before sampling.
        notes: One-line messages for the user (skipped files, truncation, letterboxing).
    """

    frames: npt.NDArray[np.uint8]
    frame_indices: npt.NDArray[np.int64]
    timestamps: npt.NDArray[np.float64]
    source: str
    source_fps: float | None
    original_sizes: npt.NDArray[np.int64]
    frame_names: list[str]
    kind: str
    source_frame_count: int
    notes: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        """S, the number of frames."""
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        """H, frame height in pixels."""
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        """W, frame width in pixels."""
        return int(self.frames.shape[2])


def load_clip(
    source: SourceLike,
    sampling: FrameSampling = ALL_FRAMES,
    progress: Progress | None = None,
    *,
    roots: Sequence[str | PathLike] | None = None,
) -> Clip:
    """Read and sample frames from a video, GIF, image, folder, zip or list of images.

    Args:
        source: A video (mp4, mov, m4v, webm, mkv, avi), an animated GIF or a still image
            (png, jpg, jpeg, webp, bmp, tif, tiff), a folder of images (natural sort:
            frame2 before frame10; dotfiles and non-images skipped), a folder holding no
            images and exactly one video (a sample folder: that video), a zip of images
            (nested folders fine; __MACOSX, dotfiles and non-images skipped), or a list of
            image paths (kept in the given order).
        sampling: Which frames to keep (range -> fps -> stride -> max_frames); its options
            were validated when it was made, so bad ones fail before any file is read.
        progress: Called as progress(frames_done, frames_total) while frames decode.
        roots: When given, every file read (members and link targets too) must resolve
            inside one of these folders; the app passes its data roots.

    Returns:
        A Clip; see the module docstring for the timing, size and broken-file policies.

    Raises:
        ClipError: with one line, for every bad source or option.
    """
    if not isinstance(sampling, FrameSampling):
        raise ClipError(f"sampling must be a FrameSampling, got {type(sampling).__name__}")
    with confined(roots):
        return _load_any(source, sampling, progress)


def _load_any(source: SourceLike, sampling: FrameSampling, progress: Progress | None) -> Clip:
    if isinstance(source, (list, tuple)):
        return _load_image_list([Path(item) for item in source], sampling, progress)
    if not isinstance(source, (str, PathLike)):
        raise ClipError(f"a clip source is a path or a list of paths, got {type(source).__name__}")
    path = Path(source).expanduser()
    if not path.exists():
        raise ClipError(f"source not found: {path}")
    path = check_path(path, folder=True)
    if path.is_dir():
        items, notes = folder_items(path)
        video = _only_video(path) if not items else None
        if video is not None:
            # A sample folder (clip.mp4 beside groundtruth.npz): its video is the clip.
            return _load_video(video, sampling, progress)
        if not items:
            what = "is empty" if not any(path.iterdir()) else "has no images"
            raise ClipError(f"folder {path} {what} ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        return _load_images(items, notes, str(path), "folder", sampling, progress)
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return _load_video(path, sampling, progress)
    if suffix in ZIP_EXTENSIONS:
        return _load_zip(path, sampling, progress)
    if suffix in ANIMATION_EXTENSIONS or suffix in IMAGE_EXTENSIONS:
        return _load_image_file(path, sampling, progress)
    supported = sorted(VIDEO_EXTENSIONS | ANIMATION_EXTENSIONS | IMAGE_EXTENSIONS | ZIP_EXTENSIONS)
    raise ClipError(
        f"unsupported file type {suffix or '(none)'!r}; use one of {' '.join(supported)}"
    )


def _only_video(folder: Path) -> Path | None:
    """The one video directly inside a folder, or None when it holds none or several."""
    videos = [
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".")
        and path.suffix.lower() in VIDEO_EXTENSIONS
    ]  # fmt: skip
    return videos[0] if len(videos) == 1 else None


def _load_video(path: Path, sampling: FrameSampling, progress: Progress | None) -> Clip:
    info = probe_video(path)
    notes = list(info.notes)
    indices = select_frame_indices(info.count, info.timestamps, sampling)
    _check_clip_bytes(len(indices), info.height, info.width)
    frames = decode_video(path, info, indices, notes)
    clip = _collect(frames, indices, progress, notes, path.name)
    return _finish(
        clip,
        timestamps=info.timestamps,
        names=[f"frame {index}" for index in range(info.count)],
        source=str(path),
        source_fps=info.fps,
        kind="video",
        count=info.count,
    )


def _load_image_file(path: Path, sampling: FrameSampling, progress: Progress | None) -> Clip:
    try:
        info = probe_animation(path)
    except ClipError:
        raise
    except DECODE_ERRORS as error:
        raise ClipError(f"{path.name} is not a readable image ({error})") from None
    if info.count == 1:
        # A still image: one frame, no timing; the list reader has the skip/limit logic.
        return _load_images(
            [path_item(path, path.name)], [], str(path), "image", sampling, progress
        )
    notes = list(info.notes)
    indices = select_frame_indices(info.count, info.timestamps, sampling)
    _check_clip_bytes(len(indices), info.height, info.width)
    try:
        clip = _collect(decode_animation(path, indices), indices, progress, notes, path.name)
    except ClipError:
        raise
    except DECODE_ERRORS as error:
        raise ClipError(f"{path.name} is damaged ({error})") from None
    duration = float(np.diff(info.timestamps).mean()) if info.count > 1 else 0.0
    return _finish(
        clip,
        timestamps=info.timestamps,
        names=[f"frame {index}" for index in range(info.count)],
        source=str(path),
        source_fps=1.0 / duration if duration > 0 else None,
        kind="animation",
        count=info.count,
    )


def _load_zip(path: Path, sampling: FrameSampling, progress: Progress | None) -> Clip:
    try:
        with open_file(path) as file, zipfile.ZipFile(file) as archive:
            _check_zip_directory(archive, path.name)
            items, notes = zip_items(archive)
            if not items:
                raise ClipError(f"zip {path.name} holds no images")
            return _load_images(items, notes, str(path), "zip", sampling, progress)
    except (zipfile.BadZipFile, OSError) as error:
        raise ClipError(f"{path.name} is not a readable zip ({error})") from None


def _load_image_list(paths: list[Path], sampling: FrameSampling, progress: Progress | None) -> Clip:
    if not paths:
        raise ClipError("the list of images is empty")
    items = list_items(paths)
    try:
        source = os.path.commonpath([str(path.resolve().parent) for path in paths])
    except ValueError:  # paths on different drives
        source = f"list of {len(paths)} images"
    return _load_images(items, [], source, "list", sampling, progress)


def _load_images(
    items: list[ImageItem],
    notes: list[str],
    source: str,
    kind: str,
    sampling: FrameSampling,
    progress: Progress | None,
) -> Clip:
    readable = probe_items(items, notes)
    if not readable:
        what = "image" if kind == "image" else f"image in {source}"
        raise ClipError(f"no readable {what}: {notes[-1] if notes else 'nothing to read'}")
    indices = select_frame_indices(len(readable), None, sampling)
    _, first_w, first_h = readable[int(indices[0])]
    _check_clip_bytes(len(indices), first_h, first_w)
    clip = _collect(_decode_items(readable, indices, notes), indices, progress, notes, source)
    return _finish(
        clip,
        timestamps=np.full(len(readable), np.nan),
        names=[item.name for item, _, _ in readable],
        source=source,
        source_fps=None,
        kind=kind,
        count=len(readable),
    )


def _decode_items(
    readable: list[tuple[ImageItem, int, int]], indices: np.ndarray, notes: list[str]
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Decode the wanted images; ones that fail now (e.g. truncated data) are skipped."""
    broken: list[str] = []
    for index in indices:
        frame = read_or_skip(readable[int(index)][0], decode_item, broken)
        if frame is not None:
            yield int(index), frame
    if broken:
        notes.append(f"skipped {len(broken)} damaged image(s): {', '.join(broken[:5])}")


@dataclass
class _Collected:
    frames: np.ndarray
    indices: np.ndarray
    sizes: np.ndarray
    notes: list[str]


def _collect(
    frames: Iterator[tuple[int, np.ndarray]],
    indices: np.ndarray,
    progress: Progress | None,
    notes: list[str],
    name: str,
) -> _Collected:
    """Gather decoded frames into one array, letterboxing any frame of a different size."""
    # Filled in place (allocated once the first frame gives the size): stacking a list
    # would hold every frame twice at the end.
    out: np.ndarray | None = None
    kept_indices: list[int] = []
    sizes: list[tuple[int, int]] = []
    letterboxed = 0
    for index, frame in frames:
        sizes.append((frame.shape[0], frame.shape[1]))
        if out is None:
            out = np.empty((len(indices), *frame.shape), dtype=np.uint8)
        elif frame.shape != out.shape[1:]:
            frame = fit_to_size(frame, out.shape[1], out.shape[2])
            letterboxed += 1
        out[len(kept_indices)] = frame
        kept_indices.append(index)
        if progress is not None:
            progress(len(kept_indices), len(indices))
    if out is None:
        detail = f": {notes[-1]}" if notes else ""
        raise ClipError(f"no frame of {name} could be decoded{detail}")
    if len(kept_indices) < len(indices):
        notes.append(
            f"{len(indices) - len(kept_indices)} of {len(indices)} wanted frames could not be read"
        )
        out = out[: len(kept_indices)].copy()
    if letterboxed:
        notes.append(
            f"{letterboxed} frame(s) of another size were fitted into the first frame's"
            f" {out.shape[2]}x{out.shape[1]} (aspect kept, white padding)"
        )
    return _Collected(
        frames=out,
        indices=np.asarray(kept_indices, dtype=np.int64),
        sizes=np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
        notes=notes,
    )


def _finish(
    collected: _Collected,
    *,
    timestamps: np.ndarray,
    names: list[str],
    source: str,
    source_fps: float | None,
    kind: str,
    count: int,
) -> Clip:
    indices = collected.indices
    for note in collected.notes:
        logger.debug("%s: %s", Path(source).name or source, note)  # callers show notes
    return Clip(
        frames=collected.frames,
        frame_indices=indices,
        timestamps=np.asarray(timestamps, dtype=np.float64)[indices],
        source=source,
        source_fps=source_fps,
        original_sizes=collected.sizes,
        frame_names=[names[int(index)] for index in indices],
        kind=kind,
        source_frame_count=count,
        notes=collected.notes,
    )


def _check_zip_directory(archive: zipfile.ZipFile, name: str) -> None:
    """Refuse a zip by its directory alone: too many entries or too much to inflate."""
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_MEMBERS.value():
        raise ClipError(MAX_ZIP_MEMBERS.message(f"zip {name}", len(entries)))
    inflated = sum(entry.file_size for entry in entries)
    if inflated > MAX_ZIP_BYTES.value():
        raise ClipError(MAX_ZIP_BYTES.message(f"zip {name} (uncompressed)", inflated))


def _check_clip_bytes(count: int, height: int, width: int) -> None:
    if count > MAX_FRAMES.value():
        raise ClipError(
            MAX_FRAMES.message(f"{count} frames selected", count) + "; or use stride or max_frames"
        )
    pixels = count * height * width
    if pixels > MAX_CLIP_PIXELS.value():
        raise ClipError(
            MAX_CLIP_PIXELS.message(f"{count} frames of {width}x{height}", pixels)
            + "; or use stride or max_frames"
        )
    needed = count * height * width * 3
    if needed > MAX_CLIP_BYTES:
        raise ClipError(
            f"{count} frames of {width}x{height} need {needed / 1024**3:.1f} GiB, more than the"
            f" {MAX_CLIP_BYTES / 1024**3:.0f} GiB limit; use stride or max_frames"
        )
