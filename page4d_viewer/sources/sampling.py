"""Which frames of a source a clip keeps: the `FrameSampling` options and `select_frame_indices`.

The options apply in one order: range (start/end or start_time/end_time) -> target fps ->
stride -> max_frames. Every bad option is refused when a `FrameSampling` is made, with one
line naming the option and the bad value, so a load fails before touching any file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from page4d_viewer import settings
from page4d_viewer.errors import ClipError

__all__ = ["ALL_FRAMES", "FrameSampling", "select_frame_indices"]


@dataclass(frozen=True)
class FrameSampling:
    """How to sample the frames of a source; validated (and normalised) on creation.

    Attributes:
        stride: Keep every stride-th frame of the range (after fps resampling), >= 1.
        max_frames: At most this many frames, spread evenly over what is left (first and
            last kept; rounding picks the nearest frame); None for no limit.
        fps: Target frame rate: for each time start + k / fps the nearest frame is kept
            (no frame twice), so fps at or above the source rate keeps every frame.
        start: First frame index (inclusive).
        end: Frame index to stop before (exclusive, like a Python slice); clamped to count.
        start_time: Keep frames with timestamp >= start_time (seconds).
        end_time: Keep frames with timestamp < end_time (seconds).

    fps, start_time and end_time need a source with timing (a video or GIF).

    Raises:
        ClipError: an option of the wrong type or out of range, start and start_time (or
            end and end_time) both given, or a range that ends before it starts.
    """

    stride: int = 1
    max_frames: int | None = None
    fps: float | None = None
    start: int | None = None
    end: int | None = None
    start_time: float | None = None
    end_time: float | None = None

    def __post_init__(self) -> None:
        # Validated in the order the options are listed; stored as plain int / float.
        stride = _whole(self.stride, "stride", minimum=1)
        max_frames = None if self.max_frames is None else _whole(self.max_frames, "max_frames", 1)
        start = None if self.start is None else _whole(self.start, "start", minimum=0)
        end = None if self.end is None else _whole(self.end, "end", minimum=0)
        fps = None if self.fps is None else _seconds(self.fps, "fps", allow_zero=False)
        if fps is not None and fps > settings.MAX_FPS.value():
            raise ClipError(settings.MAX_FPS.message("fps", fps))
        start_time = None if self.start_time is None else _seconds(self.start_time, "start_time")
        end_time = None if self.end_time is None else _seconds(self.end_time, "end_time")
        for name, value in (
            ("stride", stride),
            ("max_frames", max_frames),
            ("fps", fps),
            ("start", start),
            ("end", end),
            ("start_time", start_time),
            ("end_time", end_time),
        ):
            object.__setattr__(self, name, value)
        if self.start is not None and self.start_time is not None:
            raise ClipError("give start (a frame index) or start_time (seconds), not both")
        if self.end is not None and self.end_time is not None:
            raise ClipError("give end (a frame index) or end_time (seconds), not both")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ClipError(f"start ({self.start}) is after end ({self.end})")
        if (
            self.start_time is not None
            and self.end_time is not None
            and self.start_time > self.end_time
        ):
            raise ClipError(
                f"start_time ({self.start_time:g} s) is after end_time ({self.end_time:g} s)"
            )

    @property
    def uses_time(self) -> bool:
        """Whether an option needs timestamps (fps, start_time or end_time)."""
        return any(value is not None for value in (self.fps, self.start_time, self.end_time))


def _whole(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ClipError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _seconds(value: object, name: str, allow_zero: bool = True) -> float:
    number = math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ClipError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


ALL_FRAMES = FrameSampling()  # no option set: every frame, in order


def select_frame_indices(
    count: int,
    timestamps: npt.ArrayLike | None = None,
    sampling: FrameSampling = ALL_FRAMES,
) -> npt.NDArray[np.int64]:
    """Which source frames a clip keeps, in this order: range, target fps, stride, max_frames.

    Args:
        count: Frames in the source.
        timestamps: (count,) increasing seconds, or None when the source has no timing
            (then fps, start_time and end_time are refused).
        sampling: The options; see `FrameSampling`.

    Returns:
        (S,) int64 increasing frame indices, S >= 1.

    Raises:
        ClipError: time-based options without timestamps, a start past the end, or no
            frame left.
    """
    if sampling.uses_time and timestamps is None:
        raise ClipError(
            "fps, start_time and end_time need a source with timing (a video or GIF);"
            " use start, end and stride for images"
        )
    indices = np.arange(count, dtype=np.int64)
    if sampling.start is not None and sampling.start >= count:
        raise ClipError(f"start ({sampling.start}) is past the last frame (the source has {count})")
    indices = indices[sampling.start : sampling.end]
    if timestamps is not None:
        times = np.asarray(timestamps, dtype=np.float64)[indices]
        keep = np.ones(len(indices), dtype=bool)
        if sampling.start_time is not None:
            keep &= times >= sampling.start_time
        if sampling.end_time is not None:
            keep &= times < sampling.end_time
        indices = indices[keep]
        if sampling.fps is not None and len(indices):
            indices = _resample_to_fps(indices, np.asarray(timestamps)[indices], sampling.fps)
    indices = indices[:: sampling.stride]
    if sampling.max_frames is not None and len(indices) > sampling.max_frames:
        # With max_frames <= len, linspace steps are >= 1, so rounding never repeats a frame.
        spread = np.rint(np.linspace(0, len(indices) - 1, sampling.max_frames)).astype(np.int64)
        indices = indices[spread]
    if len(indices) == 0:
        raise ClipError(f"no frames left after sampling (the source has {count})")
    return indices


def _resample_to_fps(indices: np.ndarray, times: np.ndarray, fps: float) -> np.ndarray:
    """For target times t0 + k / fps up to the last frame, the nearest frame of each (unique)."""
    if len(times) == 1:
        return indices
    targets = times[0] + np.arange(math.floor((times[-1] - times[0]) * fps + 1e-9) + 1) / fps
    right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
    left = right - 1
    # Ties go to the earlier frame; a tiny tolerance keeps float noise from flipping them.
    nearest = np.where(times[right] - targets < targets - times[left] - 1e-9, right, left)
    return indices[np.unique(nearest)]
