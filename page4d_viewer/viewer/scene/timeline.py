"""The scene's timeline: the current frame, playback speed and looping, and the thread that plays.

The timeline only keeps time; moving to a frame (which toggles what is visible) is the
scene's job, handed in as `advance` when playback starts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from page4d_viewer.viewer.scene.controls import DEFAULT_FPS

logger = logging.getLogger(__name__)

FrameCallback = Callable[[int], Any]


class Timeline:
    """Frame, fps, loop and the playing flag of one scene; guarded by the scene's lock."""

    def __init__(self) -> None:
        self.frame = 0
        self.fps = float(DEFAULT_FPS)
        self.loop = True
        self.playing = threading.Event()
        self.closed = threading.Event()
        self._callbacks: list[FrameCallback] = []
        self._thread: threading.Thread | None = None

    @property
    def is_playing(self) -> bool:
        """Whether playback runs (False once closed)."""
        return self.playing.is_set() and not self.closed.is_set()

    @property
    def playback_alive(self) -> bool:
        """Whether the playback thread runs (False before its start and after `join`)."""
        return self._thread is not None and self._thread.is_alive()

    def start_playback_thread(self, advance: Callable[[], None]) -> None:
        """Start the daemon thread that calls `advance()` once per 1/fps s while playing."""
        self._thread = threading.Thread(
            target=self._playback_loop, args=(advance,), name="scene-playback", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Tell the playback thread to end (it is joined by `join`)."""
        self.closed.set()
        self.playing.set()  # wakes the playback thread, which then sees `closed` and ends

    def join(self) -> None:
        """Wait (briefly) for the playback thread to end after `close`."""
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def next_frame(self, num_frames: int) -> int | None:
        """The frame playback moves to next; None with one frame, or at the end unlooped."""
        if num_frames <= 1:
            return None
        following = self.frame + 1
        if following >= num_frames:
            return 0 if self.loop else None
        return following

    def add_callback(self, callback: FrameCallback) -> None:
        """Register `callback(frame)` for moves made in the Viser scene."""
        self._callbacks.append(callback)

    def callbacks(self) -> list[FrameCallback]:
        """A copy of the frame-change callbacks (to call outside the lock)."""
        return list(self._callbacks)

    def _playback_loop(self, advance: Callable[[], None]) -> None:
        """Advance one frame per 1/fps seconds while playing, until closed."""
        while not self.closed.is_set():
            if not self.playing.wait(timeout=1.0) or self.closed.is_set():
                continue
            started = time.monotonic()
            advance()
            self.closed.wait(max(0.0, 1.0 / self.fps - (time.monotonic() - started)))


def notify_frame_change(callbacks: list[FrameCallback], frame: int) -> None:
    """Call each frame-change callback; one that raises is logged, the others still run."""
    for callback in callbacks:
        try:
            callback(frame)
        except Exception:
            logger.exception("a frame-change callback failed")
