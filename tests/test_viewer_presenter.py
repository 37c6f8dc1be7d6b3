"""Presenter mode's follow of the scene's timeline, without a browser: what the page's slow
poll and the fast follow timer send as playback starts and stops."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from page4d_viewer.viewer.presenter import PresenterCallbacks, clock_html


class Timeline:
    """A scene's timeline stand-in: `state()` as `SceneView.state` gives it."""

    def __init__(self, frame: int, playing: bool) -> None:
        self.frame, self.playing = frame, playing

    def state(self) -> SimpleNamespace:
        return SimpleNamespace(
            frame=self.frame, playing=self.playing, fps=10.0, num_frames=12, loop=True
        )


@pytest.fixture
def follow():
    """(the presenter's callbacks, the timeline of the one page's scene, its widgets)."""
    timeline = Timeline(frame=0, playing=False)
    session = SimpleNamespace(controller=SimpleNamespace(scene=timeline))
    callbacks = SimpleNamespace(session_of=lambda request: session)
    widgets = SimpleNamespace(frame="frame")
    controls = SimpleNamespace(
        follow_timer="timer", following="following", play="play", clock="clock"
    )
    return PresenterCallbacks(callbacks, widgets, controls), timeline, controls  # type: ignore[arg-type]


def _poll(events: PresenterCallbacks, following: bool) -> dict:
    return events.on_poll({events.controls.following: following}, None)


def test_the_poll_starts_the_follow_when_the_scene_plays(follow) -> None:
    events, timeline, controls = follow
    timeline.playing = True
    updates = _poll(events, following=False)
    assert updates[controls.following] is True
    assert updates[controls.follow_timer].active is True
    assert _poll(events, following=True) == {}  # already on: nothing to send


def test_a_poll_that_sees_playback_stopped_sends_the_stopped_frame(follow) -> None:
    """The poll can turn the follow off before the fast tick sees the stop: it then sends the
    frame itself, or the page's slider stays on the frame it predicted last."""
    events, timeline, controls = follow
    timeline.frame, timeline.playing = 7, False
    updates = _poll(events, following=True)
    assert updates[controls.following] is False
    assert updates[controls.follow_timer].active is False
    assert updates[events.widgets.frame] == 7
    assert 'data-frame="7"' in updates[controls.clock]
    assert 'data-playing="0"' in updates[controls.clock]
    assert _poll(events, following=False) == {}  # stopped and known stopped: nothing


def test_the_fast_tick_reads_the_clock_and_stops_with_the_scene(follow) -> None:
    events, timeline, controls = follow
    timeline.frame, timeline.playing = 3, True
    updates = events.on_follow(123.5, None)
    assert set(updates) == {controls.clock}
    assert 'data-playing="1"' in updates[controls.clock]
    assert 'data-sent="123.5000"' in updates[controls.clock]
    timeline.frame, timeline.playing = 5, False
    stopped = events.on_follow(124.0, None)
    assert stopped[events.widgets.frame] == 5
    assert stopped[controls.following] is False


def test_the_clock_reading_is_plain_data_attributes() -> None:
    from page4d_viewer.viewer.presenter import ClockReading

    html = clock_html(ClockReading(4, 10.0, 9.5, 8.0, 12, False, True))
    for attribute in ('data-frame="4"', 'data-fps="8"', 'data-loop="0"', 'data-frames="12"'):
        assert attribute in html
