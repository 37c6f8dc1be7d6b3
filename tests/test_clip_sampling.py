"""Frame selection: range, target fps, stride and max_frames, and the option checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from page4d_viewer.errors import ClipError
from page4d_viewer.sources.sampling import FrameSampling, select_frame_indices


def times(count: int, fps: float = 30.0) -> np.ndarray:
    return np.arange(count) / fps


def test_frame_sampling_stores_plain_numbers_and_is_frozen() -> None:
    sampling = FrameSampling(stride=np.int64(2), fps=np.float32(5.0), start=np.int32(1))
    assert sampling == FrameSampling(stride=2, fps=5.0, start=1)
    assert type(sampling.stride) is int and type(sampling.fps) is float
    with pytest.raises(AttributeError):
        sampling.stride = 3  # type: ignore[misc]


def test_defaults_keep_every_frame() -> None:
    assert select_frame_indices(5).tolist() == [0, 1, 2, 3, 4]


def test_stride_keeps_every_kth_frame() -> None:
    assert select_frame_indices(10, None, FrameSampling(stride=3)).tolist() == [0, 3, 6, 9]


def test_start_is_inclusive_and_end_exclusive() -> None:
    assert select_frame_indices(10, None, FrameSampling(start=2, end=5)).tolist() == [2, 3, 4]
    assert select_frame_indices(10, None, FrameSampling(start=7, end=100)).tolist() == [7, 8, 9]


def test_max_frames_spreads_evenly_and_keeps_both_ends() -> None:
    assert select_frame_indices(65, None, FrameSampling(max_frames=5)).tolist() == [
        0,
        16,
        32,
        48,
        64,
    ]
    assert select_frame_indices(10, None, FrameSampling(max_frames=3)).tolist() == [
        0,
        4,
        9,
    ]  # 4.5 rounds to even


def test_max_frames_larger_than_range_keeps_all() -> None:
    assert select_frame_indices(4, None, FrameSampling(max_frames=16)).tolist() == [0, 1, 2, 3]


def test_max_frames_applies_after_stride_and_range() -> None:
    # range 10..29, stride 2 -> 10, 12, ..., 28 (10 frames); 4 of them evenly: 0, 3, 6, 9
    picked = select_frame_indices(40, None, FrameSampling(start=10, end=30, stride=2, max_frames=4))
    assert picked.tolist() == [10, 16, 22, 28]


def test_time_range_is_half_open() -> None:
    picked = select_frame_indices(30, times(30, 10.0), FrameSampling(start_time=0.5, end_time=1.0))
    assert picked.tolist() == [5, 6, 7, 8, 9]


def test_target_fps_picks_nearest_frames() -> None:
    assert select_frame_indices(30, times(30), FrameSampling(fps=10)).tolist() == list(
        range(0, 30, 3)
    )
    # 12 fps from 30: targets every 2.5 frames; ties go to the earlier frame
    assert select_frame_indices(11, times(11), FrameSampling(fps=12)).tolist() == [0, 2, 5, 7, 10]


def test_target_fps_above_source_rate_keeps_every_frame() -> None:
    assert select_frame_indices(6, times(6, 5.0), FrameSampling(fps=60)).tolist() == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]


def test_target_fps_follows_uneven_timestamps() -> None:
    stamps = np.array([0.0, 0.1, 0.15, 0.2, 0.7, 0.72, 1.0])
    # targets 0, 0.5, 1.0 -> nearest 0.0, 0.7 (0.2 is 0.3 away, 0.7 is 0.2 away), 1.0
    assert select_frame_indices(7, stamps, FrameSampling(fps=2)).tolist() == [0, 4, 6]


def test_fps_then_stride() -> None:
    assert select_frame_indices(30, times(30), FrameSampling(fps=10, stride=2)).tolist() == [
        0,
        6,
        12,
        18,
        24,
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stride": 0}, "stride must be a whole number >= 1, got 0"),
        ({"stride": 1.5}, "stride must be a whole number >= 1, got 1.5"),
        ({"stride": True}, "stride must be a whole number"),
        ({"max_frames": 0}, "max_frames must be a whole number >= 1, got 0"),
        ({"fps": 0}, "fps must be a finite number > 0, got 0"),
        ({"fps": -2.0}, "fps must be a finite number > 0"),
        ({"fps": math.nan}, "fps must be a finite number > 0"),
        ({"fps": "ten"}, "fps must be a finite number > 0, got 'ten'"),
        ({"start": -1}, "start must be a whole number >= 0, got -1"),
        ({"start": 5, "end": 2}, "start (5) is after end (2)"),
        ({"start_time": 2.0, "end_time": 1.0}, "start_time (2 s) is after end_time (1 s)"),
        ({"start": 1, "start_time": 0.5}, "give start (a frame index) or start_time"),
        ({"end": 3, "end_time": 0.5}, "give end (a frame index) or end_time"),
        ({"start": 10}, "start (10) is past the last frame (the source has 10)"),
        ({"start": 3, "end": 3}, "no frames left after sampling"),
        ({"start_time": 5.0}, "no frames left after sampling (the source has 10)"),
    ],
)
def test_bad_options_are_refused_with_one_line(options: dict, message: str) -> None:
    with pytest.raises(ClipError) as caught:
        select_frame_indices(10, times(10), FrameSampling(**options))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("option", [{"fps": 5.0}, {"start_time": 0.0}, {"end_time": 1.0}])
def test_time_options_need_timestamps(option: dict) -> None:
    with pytest.raises(ClipError, match="need a source with timing"):
        select_frame_indices(10, None, FrameSampling(**option))


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 300),
    stride=st.integers(1, 7),
    max_frames=st.none() | st.integers(1, 40),
    fps=st.none() | st.floats(0.5, 90.0),
    start=st.none() | st.integers(0, 50),
    length=st.none() | st.integers(1, 400),
)
def test_selection_properties(
    count: int,
    stride: int,
    max_frames: int | None,
    fps: float | None,
    start: int | None,
    length: int | None,
) -> None:
    end = None if length is None else (start or 0) + length
    if start is not None and start >= count:
        with pytest.raises(ClipError):
            select_frame_indices(count, times(count), FrameSampling(start=start, end=end))
        return
    picked = select_frame_indices(
        count,
        times(count),
        FrameSampling(stride=stride, max_frames=max_frames, fps=fps, start=start, end=end),
    )
    first = start or 0
    last = min(count, end if end is not None else count) - 1
    assert len(picked) >= 1
    assert np.all(np.diff(picked) > 0)
    assert picked[0] == first  # every rule keeps the first frame of the range
    assert picked[-1] <= last
    if max_frames is not None:
        assert len(picked) <= max_frames
    if fps is None and max_frames is None:
        assert picked.tolist() == list(range(first, last + 1, stride))
