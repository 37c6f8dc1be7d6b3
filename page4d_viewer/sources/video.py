"""Video files -> 8-bit RGB frames with PyAV, decoding only what the sampling asks for.

A first pass demuxes packets without decoding them (cheap) to learn every frame's
presentation time and where the keyframes are; sampling then picks frame indices, and a
second pass decodes forward, seeking to the nearest keyframe when the next wanted frame is
far ahead. Only the wanted frames are converted to RGB and kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from av.container import InputContainer
from av.error import FFmpegError

from page4d_viewer.errors import ClipError
from page4d_viewer.sources.confine import open_file
from page4d_viewer.sources.images import check_frame_size

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"})
# Seek only when it skips at least this many frames: a seek costs a demuxer reset and a
# decode from the keyframe, which is not worth it for short gaps.
SEEK_MIN_GAP = 16


@dataclass(frozen=True)
class VideoInfo:
    """What the demux pass learned about the first video stream.

    Attributes:
        count: Frames the stream holds (packets that carry a picture).
        timestamps: (count,) float64 seconds from the first frame, increasing.
        fps: Frames per second the container reports (or the median spacing), None if unknown.
        width: Coded frame width, pixels.
        height: Coded frame height, pixels.
        pts: (count,) int64 presentation timestamps in stream time base, increasing; valid
            only when `exact_pts` (some containers give packets only a decode timestamp).
        exact_pts: Whether every packet had a presentation timestamp (enables seeking).
        keyframes: Sorted frame indices of keyframes.
        notes: One-line messages (e.g. the file ends early).
    """

    count: int
    timestamps: npt.NDArray[np.float64]
    fps: float | None
    width: int
    height: int
    pts: npt.NDArray[np.int64]
    exact_pts: bool
    keyframes: npt.NDArray[np.int64]
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _open_video(path: Path) -> Iterator[tuple[InputContainer, av.VideoStream]]:
    file = open_file(path)  # the resolved, checked regular file: the decoder reads only it
    if os.fstat(file.fileno()).st_size == 0:
        file.close()
        raise ClipError(f"{path.name} is empty (0 bytes), not a video")
    try:
        container = av.open(file, mode="r")
    except (FFmpegError, OSError, UnicodeDecodeError) as error:
        file.close()
        raise ClipError(
            f"{path.name} is not a readable video ({_reason(error)}); is it damaged or truncated?"
        ) from None
    try:
        if not container.streams.video:
            raise ClipError(f"{path.name} has no video stream")
        yield container, container.streams.video[0]
    finally:
        container.close()
        file.close()


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split()) or type(error).__name__


def probe_video(path: Path) -> VideoInfo:
    """Demux (without decoding) the first video stream of a file; see VideoInfo.

    Raises:
        ClipError: empty file, not a video, no video stream, no frames, bad frame size.
    """
    with _open_video(path) as (container, stream):
        width, height = stream.codec_context.width, stream.codec_context.height
        if width and height:
            check_frame_size(width, height, path.name)
        stamps: list[int | None] = []
        keyframe_stamps: list[int | None] = []
        notes: list[str] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet at the end carries no picture
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                stamps.append(stamp)
                if packet.is_keyframe:
                    keyframe_stamps.append(stamp)
        except (FFmpegError, EOFError) as error:
            notes.append(f"the video is damaged after {len(stamps)} frames ({_reason(error)})")
        declared = stream.frames
        duration = _declared_seconds(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        time_base = float(stream.time_base) if stream.time_base else None
    if not stamps:
        raise ClipError(f"{path.name} contains no video frames (empty or truncated file)")
    if declared and len(stamps) < declared and not notes:
        notes.append(f"the video header promises {declared} frames but only {len(stamps)} exist")
    if not (width and height):
        raise ClipError(f"{path.name} does not state its frame size; it is probably damaged")
    info = _video_info(stamps, keyframe_stamps, time_base, rate, width, height, notes)
    if not notes and duration and info.fps and info.exact_pts:
        shown_until = info.timestamps[-1] + 1.0 / info.fps
        if shown_until < duration - 1.5 / info.fps:  # more than a frame or so is missing
            notes.append(
                f"the video header says {duration:.2f} s but frames stop at {shown_until:.2f} s"
                " (truncated?)"
            )
    return info


def _declared_seconds(container: InputContainer, stream: av.VideoStream) -> float:
    """Duration the header claims (stream, else container), seconds; 0 when unknown."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _video_info(
    stamps: list[int | None],
    keyframe_stamps: list[int | None],
    time_base: float | None,
    rate: Fraction | None,
    width: int,
    height: int,
    notes: list[str],
) -> VideoInfo:
    count = len(stamps)
    fps = float(rate) if rate else None
    exact = time_base is not None and all(stamp is not None for stamp in stamps)
    if exact:
        pts = np.sort(np.asarray(stamps, dtype=np.int64))
        exact = bool(np.all(np.diff(pts) > 0))  # duplicate stamps cannot index frames
    if exact:
        timestamps = (pts - pts[0]).astype(np.float64) * time_base
        position = {int(stamp): index for index, stamp in enumerate(pts)}
        keyframes = sorted(position[s] for s in keyframe_stamps if s is not None)
        keyframes = np.asarray(keyframes, dtype=np.int64)
        if fps is None and count > 1:
            fps = float(1.0 / np.median(np.diff(timestamps)))
    else:
        pts = np.arange(count, dtype=np.int64)
        keyframes = np.zeros(0, dtype=np.int64)
        timestamps = np.arange(count, dtype=np.float64) / fps if fps else np.full(count, np.nan)
        notes.append("the video lacks presentation timestamps; frames are timed by the frame rate")
    return VideoInfo(count, timestamps, fps, width, height, pts, exact, keyframes, notes)


def decode_video(
    path: Path, info: VideoInfo, indices: npt.ArrayLike, notes: list[str]
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """Yield (index, (H, W, 3) uint8 RGB) for each wanted frame, in increasing index order.

    Frames that cannot be decoded (a truncated or damaged file) are not yielded; a note says
    how far decoding got. The caller decides whether what came back is enough.
    """
    wanted = [int(index) for index in np.unique(indices)]
    with _open_video(path) as (container, stream):
        stream.thread_type = "AUTO"
        frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        current: tuple[int, av.VideoFrame] | None = None  # the last frame decoded
        for target in wanted:
            position = current[0] if current else -1
            seek = _should_seek(info, position, target)
            if frames is None or seek:
                seek_to = _keyframe_before(info, target) if seek else None
                frames = _indexed_frames(container, stream, info, seek_to, notes)
                current = None
            if current is None or current[0] < target:
                current = next(((i, f) for i, f in frames if i >= target), None)
                if current is None:
                    return  # the stream ended (or broke) before this frame
            if current[0] == target:
                yield target, _to_rgb(current[1], notes)


def _should_seek(info: VideoInfo, position: int, target: int) -> bool:
    if not info.exact_pts or target <= position:
        return False
    keyframe = _keyframe_before(info, target)
    return keyframe is not None and keyframe - position > SEEK_MIN_GAP


def _keyframe_before(info: VideoInfo, target: int) -> int | None:
    at = int(np.searchsorted(info.keyframes, target, side="right")) - 1
    return int(info.keyframes[at]) if at >= 0 else None


def _indexed_frames(
    container: InputContainer,
    stream: av.VideoStream,
    info: VideoInfo,
    seek_to: int | None,
    notes: list[str],
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode onwards (from keyframe `seek_to` when given), yielding (frame index, frame).

    A frame's index comes from its presentation timestamp when the container has exact ones
    (so it stays right after a seek); otherwise frames are counted from the start.
    """
    if seek_to is not None:
        container.seek(int(info.pts[seek_to]), stream=stream, backward=True)
    index_of = {int(stamp): index for index, stamp in enumerate(info.pts)}
    counter = -1 if seek_to is None else seek_to - 1
    try:
        for frame in container.decode(stream):
            stamp = frame.pts if info.exact_pts else None
            counter = counter + 1 if stamp is None else index_of.get(stamp, counter + 1)
            yield counter, frame
    except (FFmpegError, EOFError) as error:
        notes.append(f"decoding stopped after frame {counter} ({_reason(error)})")


def _to_rgb(frame: av.VideoFrame, notes: list[str]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a frame, turned upright as the video's display matrix asks.

    Phones store portrait video as landscape pixels plus a display rotation; players turn it
    on screen, and so do we, so the model sees the scene the way the user filmed it (height
    and width swap for a quarter turn). Only whole quarter turns are applied.
    """
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = upright_quarter_turns(getattr(frame, "rotation", 0) or 0)
    if not quarter_turns:
        return rgb
    if not any("rotation" in note for note in notes):
        notes.append(
            f"frames turned upright (the video asks for a {frame.rotation} degree rotation)"
        )
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))


def upright_quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0-3, for `np.rot90`) that show a frame upright.

    Args:
        rotation: the display matrix's rotation, degrees counter-clockwise, as FFmpeg's
            `av_display_rotation_get` (and PyAV's `VideoFrame.rotation`) report it: a phone's
            portrait clip reads -90 (turn the stored picture a quarter clockwise).
    """
    return int(round(float(rotation) / 90.0)) % 4
