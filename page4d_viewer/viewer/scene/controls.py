"""The scene's controls in the Viser sidebar: the Timeline folder, and how every layer's
controls are wired.

Each layer builds its own folder (`Layer.add_controls`) and binds each control to one of its
setters with `bind`. Setters write the applied value back into the controls inside
`ControlWriter.writing()`, which the bound callbacks recognise and ignore, so nothing echoes
or loops; a value a setter refuses (DisplayError) is put back by re-writing the controls.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from page4d_viewer.viewer.scene.display import DisplayError

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.scene.timeline import Timeline

logger = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_FPS = 10


class ControlWriter:
    """The guard against echoing the scene's own writes to its controls."""

    def __init__(self) -> None:
        self._local = threading.local()  # per thread: inside `writing()` or not

    def set(self, handle: viser.GuiInputHandle[T], value: T) -> None:
        """Show a value in one control without running its callback."""
        with self.writing():
            handle.value = value

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Within this block, this thread's writes to the controls are not user edits."""
        previous = getattr(self._local, "active", False)
        self._local.active = True
        try:
            yield
        finally:
            self._local.active = previous

    def is_writing(self) -> bool:
        """Whether the current thread is inside `writing()`."""
        return bool(getattr(self._local, "active", False))

    def bind(
        self,
        handle: viser.GuiInputHandle[Any],
        apply: Callable[[], None],
        on_refused: Callable[[], None],
    ) -> None:
        """Run `apply()` on each user edit of `handle`; on a refused value (DisplayError) log
        it and call `on_refused()` (which writes the kept value back)."""

        def callback(_event: viser.GuiEvent[Any]) -> None:
            if self.is_writing():
                return
            try:
                apply()
            except DisplayError as error:
                logger.warning("%s", error)
                on_refused()

        handle.on_update(callback)


@dataclass
class SettingsControls:
    """A layer's folder of controls: a dataclass whose every field is the control of the
    setting of the same name (`TrackControls` shows `TrackSettings`)."""

    def handles(self) -> tuple[viser.GuiInputHandle[Any], ...]:
        """Every control of the folder, in field order."""
        return tuple(getattr(self, control.name) for control in fields(self))

    def show(self, writer: ControlWriter, settings: object, enabled: bool) -> None:
        """Write each setting into its control (no callbacks run); greyed out unless
        `enabled`."""
        with writer.writing():
            for control in fields(self):
                handle = getattr(self, control.name)
                handle.value = getattr(settings, control.name)
                handle.disabled = not enabled


@dataclass
class TimelineControls:
    """The Timeline folder: frame, play, speed and loop."""

    frame: viser.GuiSliderHandle[int]
    playing: viser.GuiCheckboxHandle
    fps: viser.GuiSliderHandle[int]
    loop: viser.GuiCheckboxHandle

    def show(self, writer: ControlWriter, timeline: Timeline, num_frames: int) -> None:
        """Write the timeline into its controls (no callbacks run)."""
        with writer.writing():
            self.frame.max = max(num_frames - 1, 1)
            self.frame.value = timeline.frame
            self.frame.disabled = num_frames <= 1
            self.playing.value = timeline.playing.is_set()
            self.fps.value = fps_control_value(timeline.fps)
            self.loop.value = timeline.loop


def fps_control_value(fps: float) -> int:
    """The FPS slider's value for a playback speed (whole numbers, 1 to 60)."""
    return int(np.clip(round(fps), 1, 60))


def add_timeline_controls(server: viser.ViserServer) -> TimelineControls:
    """Add the Timeline folder (wired by the scene, which owns the timeline)."""
    gui = server.gui
    with gui.add_folder("Timeline"):
        frame = gui.add_slider("Frame", min=0, max=1, step=1, initial_value=0, disabled=True)
        playing = gui.add_checkbox("Play", False)
        fps = gui.add_slider("FPS", min=1, max=60, step=1, initial_value=DEFAULT_FPS)
        loop = gui.add_checkbox("Loop", True)
    return TimelineControls(frame, playing, fps, loop)
