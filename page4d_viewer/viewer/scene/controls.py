"""The scene's own controls in the Viser sidebar: Timeline, Points, Mask overlay, Cameras,
Tracks.

Each control calls one scene setter (`ControlTarget`); the setters write the applied value
back into the controls. Those writes happen inside `SceneControls.writing()`, which the
callbacks recognise and ignore, so nothing echoes or loops; a value the scene refuses is put
back by `refresh_controls()`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from page4d_viewer.result import points
from page4d_viewer.settings import (
    DEFAULT_CONF_PERCENTILE,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
    MASK_OVERLAYS,
)
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.state import DEFAULT_FPS, DEFAULT_POINT_SIZE, MAX_DOWNSAMPLE
from page4d_viewer.viewer.scene.tracks import (
    MAX_TRACK_TRAIL,
    MAX_TRACKS_SHOWN,
    TRACK_CHOICES,
    TrackSettings,
)

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.scene.state import DisplaySettings
    from page4d_viewer.viewer.scene.timeline import Timeline

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ControlTarget(Protocol):
    """The scene setters the controls call (`SceneView` implements them)."""

    def user_moved_frame(self, frame: int) -> None: ...
    def set_playing(self, playing: bool) -> None: ...
    def set_fps(self, fps: float) -> None: ...
    def set_loop(self, loop: bool) -> None: ...
    def set_display(self, mode: str, trail: int | None = None) -> None: ...
    def set_point_source(self, source: str) -> None: ...
    def set_confidence_percentile(self, percentile: float) -> None: ...
    def set_point_size(self, size: float) -> None: ...
    def set_downsample(self, stride: int) -> None: ...
    def set_mask_overlay(
        self, opacity: float, threshold: float, overlay: str | None = None
    ) -> None: ...
    def set_variant_visible(self, name: str, visible: bool) -> None: ...
    def set_tracks(
        self,
        visible: bool | None = None,
        max_count: int | None = None,
        trail: int | None = None,
        which: str | None = None,
        truth: bool | None = None,
    ) -> None: ...
    def refresh_controls(self) -> None: ...


@dataclass
class TrackControls:
    """The Tracks folder: the point tracks' settings (`scene.tracks.TrackSettings`)."""

    visible: viser.GuiCheckboxHandle
    max_count: viser.GuiSliderHandle[int]
    trail: viser.GuiSliderHandle[int]
    which: viser.GuiDropdownHandle[str]
    truth: viser.GuiCheckboxHandle

    def handles(self) -> tuple[viser.GuiInputHandle[Any], ...]:
        """Every control of the folder."""
        return (self.visible, self.max_count, self.trail, self.which, self.truth)


@dataclass
class SceneControls:
    """The scene's controls in the Viser sidebar, and the guard against echoing own writes."""

    frame: viser.GuiSliderHandle[int]
    playing: viser.GuiCheckboxHandle
    fps: viser.GuiSliderHandle[int]
    loop: viser.GuiCheckboxHandle
    mode: viser.GuiDropdownHandle[str]
    trail: viser.GuiSliderHandle[int]
    source: viser.GuiDropdownHandle[str]
    percentile: viser.GuiSliderHandle[float]
    point_size: viser.GuiSliderHandle[float]
    downsample: viser.GuiSliderHandle[int]
    opacity: viser.GuiSliderHandle[float]
    threshold: viser.GuiSliderHandle[float]
    overlay: viser.GuiDropdownHandle[str]
    variants: dict[str, viser.GuiCheckboxHandle]
    tracks: TrackControls
    # Set while a thread writes the controls, so their callbacks do not echo back.
    _writer: threading.local = field(default_factory=threading.local)

    def set(self, handle: viser.GuiInputHandle[T], value: T) -> None:
        """Show a value in one control without running its callback."""
        with self.writing():
            handle.value = value

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Within this block, this thread's writes to the controls are not user edits."""
        previous = getattr(self._writer, "active", False)
        self._writer.active = True
        try:
            yield
        finally:
            self._writer.active = previous

    def scene_is_writing(self) -> bool:
        """Whether the current thread is inside `writing()`."""
        return bool(getattr(self._writer, "active", False))

    def show(
        self,
        settings: DisplaySettings,
        timeline: Timeline,
        num_frames: int,
        variants: tuple[str, ...],
        has_mask: bool,
    ) -> None:
        """Write every setting of the scene into its controls (no callbacks run)."""
        with self.writing():
            self._show_timeline(timeline, num_frames)
            self._show_points(settings, num_frames)
            self.opacity.value = settings.opacity
            self.threshold.value = settings.threshold
            self.overlay.value = settings.overlay
            for name, checkbox in self.variants.items():
                checkbox.disabled = name not in variants
                checkbox.value = settings.variant_visible[name]
            self.opacity.disabled = not has_mask
            self.threshold.disabled = not has_mask
            self.overlay.disabled = not has_mask

    def show_tracks(self, settings: TrackSettings, has_tracks: bool, has_truth: bool) -> None:
        """Write the track settings into the Tracks folder; disabled without tracks (and the
        ground-truth toggle without ground-truth tracks)."""
        tracks = self.tracks
        with self.writing():
            tracks.visible.value = settings.visible
            tracks.max_count.value = settings.max_count
            tracks.trail.value = settings.trail
            tracks.which.value = settings.which
            tracks.truth.value = settings.truth
            for handle in tracks.handles():
                handle.disabled = not has_tracks
            tracks.truth.disabled = not has_truth

    def _show_timeline(self, timeline: Timeline, num_frames: int) -> None:
        self.frame.max = max(num_frames - 1, 1)
        self.frame.value = timeline.frame
        self.frame.disabled = num_frames <= 1
        self.playing.value = timeline.playing.is_set()
        self.fps.value = fps_control_value(timeline.fps)
        self.loop.value = timeline.loop

    def _show_points(self, settings: DisplaySettings, num_frames: int) -> None:
        self.trail.max = max(num_frames, 2)
        self.trail.value = min(settings.trail, int(self.trail.max))
        self.downsample.value = settings.downsample
        self.mode.value = settings.mode
        self.source.value = settings.source
        self.percentile.value = settings.percentile
        self.point_size.min = settings.point_size / 10
        self.point_size.max = settings.point_size * 10
        self.point_size.step = settings.point_size / 10
        self.point_size.value = settings.point_size


def fps_control_value(fps: float) -> int:
    """The FPS slider's value for a playback speed (whole numbers, 1 to 60)."""
    return int(np.clip(round(fps), 1, 60))


def build_controls(server: viser.ViserServer, target: ControlTarget) -> SceneControls:
    """Add the timeline, display, mask and camera controls, wired to the target's setters."""
    gui = server.gui
    # Embedded beside the panel the sidebar would cover the points: start it minimized (one
    # click on its bar opens it), for every client that connects later too.
    gui.main_panel.minimize()
    with gui.add_folder("Timeline"):
        frame = gui.add_slider("Frame", min=0, max=1, step=1, initial_value=0, disabled=True)
        playing = gui.add_checkbox("Play", False)
        fps = gui.add_slider("FPS", min=1, max=60, step=1, initial_value=DEFAULT_FPS)
        loop = gui.add_checkbox("Loop", True)
    with gui.add_folder("Points"):
        mode = gui.add_dropdown("Display", display.DISPLAY_MODES, initial_value="current")
        trail = gui.add_slider("Trail (frames)", min=1, max=2, step=1, initial_value=1)
        source = gui.add_dropdown("Point source", display.POINT_SOURCES, initial_value="points")
        step = points.CONFIDENCE_STEP
        percentile = gui.add_slider(
            f"Confidence drop % (steps of {step:g})",
            min=0,
            max=100 - step,
            step=step,
            initial_value=points.snap_percentile(DEFAULT_CONF_PERCENTILE),
        )
        point_size = gui.add_slider(
            "Point size", min=0.001, max=0.1, step=0.001, initial_value=DEFAULT_POINT_SIZE
        )
        downsample = gui.add_slider(
            "Downsample", min=1, max=MAX_DOWNSAMPLE, step=1, initial_value=1
        )
    opacity, threshold, overlay = _mask_controls(server)
    with gui.add_folder("Cameras"):
        variants = {
            name: gui.add_checkbox(display.VARIANT_LABELS[name], True) for name in display.VARIANTS
        }
    controls = SceneControls(
        frame, playing, fps, loop, mode, trail, source, percentile, point_size, downsample,
        opacity, threshold, overlay, variants, _track_controls(server),
    )  # fmt: skip
    _wire(controls, target)
    return controls


def _mask_controls(
    server: viser.ViserServer,
) -> tuple[
    viser.GuiSliderHandle[float], viser.GuiSliderHandle[float], viser.GuiDropdownHandle[str]
]:
    """The Mask overlay folder: how the mask is drawn, opacity and threshold."""
    gui = server.gui
    with gui.add_folder("Mask overlay"):
        overlay = gui.add_dropdown("Draw", MASK_OVERLAYS, initial_value=DEFAULT_MASK_OVERLAY)
        step = 1.0 / display.MASK_BINS
        opacity = gui.add_slider(
            "Opacity", min=0.0, max=1.0, step=0.05, initial_value=DEFAULT_MASK_OPACITY
        )
        threshold = gui.add_slider(
            "Threshold", min=0.0, max=1.0, step=step, initial_value=DEFAULT_MASK_THRESHOLD
        )
    return opacity, threshold, overlay


def _track_controls(server: viser.ViserServer) -> TrackControls:
    """The Tracks folder (disabled until a result with tracks is shown)."""
    gui, defaults = server.gui, TrackSettings()
    with gui.add_folder("Tracks"):
        visible = gui.add_checkbox("Show tracks", defaults.visible, disabled=True)
        max_count = gui.add_slider(
            "Tracks shown (at most)", min=1, max=MAX_TRACKS_SHOWN, step=1,
            initial_value=defaults.max_count, disabled=True,
        )  # fmt: skip
        trail = gui.add_slider(
            "Track trail (frames)", min=1, max=MAX_TRACK_TRAIL, step=1,
            initial_value=defaults.trail, disabled=True,
        )  # fmt: skip
        which = gui.add_dropdown(
            "Which tracks", TRACK_CHOICES, initial_value=defaults.which, disabled=True
        )
        truth = gui.add_checkbox("Ground-truth tracks", defaults.truth, disabled=True)
    return TrackControls(visible, max_count, trail, which, truth)


def _wire(controls: SceneControls, target: ControlTarget) -> None:
    """Each control calls one scene setter; setters write back to the controls, which is a
    no-op when the value is unchanged, so nothing loops."""
    c = controls

    def set_display() -> None:
        target.set_display(str(c.mode.value), int(c.trail.value))

    def set_overlay() -> None:
        target.set_mask_overlay(
            float(c.opacity.value), float(c.threshold.value), str(c.overlay.value)
        )

    def set_tracks() -> None:
        t = c.tracks
        target.set_tracks(
            bool(t.visible.value), int(t.max_count.value), int(t.trail.value),
            str(t.which.value), bool(t.truth.value),
        )  # fmt: skip

    bindings: list[tuple[viser.GuiInputHandle[Any], Callable[[], None]]] = [
        (c.frame, lambda: target.user_moved_frame(int(c.frame.value))),
        (c.playing, lambda: target.set_playing(bool(c.playing.value))),
        (c.fps, lambda: target.set_fps(float(c.fps.value))),
        (c.loop, lambda: target.set_loop(bool(c.loop.value))),
        (c.mode, set_display),
        (c.trail, set_display),
        (c.source, lambda: target.set_point_source(str(c.source.value))),
        (c.percentile, lambda: target.set_confidence_percentile(float(c.percentile.value))),
        (c.point_size, lambda: target.set_point_size(float(c.point_size.value))),
        (c.downsample, lambda: target.set_downsample(int(c.downsample.value))),
        (c.opacity, set_overlay),
        (c.threshold, set_overlay),
        (c.overlay, set_overlay),
    ]
    for name, checkbox in c.variants.items():
        bindings.append((checkbox, _variant_setter(target, name, checkbox)))
    for handle in c.tracks.handles():
        bindings.append((handle, set_tracks))
    for handle, apply in bindings:
        handle.on_update(_from_user(controls, target, apply))


def _variant_setter(
    target: ControlTarget, name: str, checkbox: viser.GuiCheckboxHandle
) -> Callable[[], None]:
    return lambda: target.set_variant_visible(name, bool(checkbox.value))


def _from_user(
    controls: SceneControls, target: ControlTarget, apply: Callable[[], None]
) -> Callable[[viser.GuiEvent[Any]], None]:
    """A control callback that acts on user edits and ignores the scene's own writes."""

    def callback(_event: viser.GuiEvent[Any]) -> None:
        if controls.scene_is_writing():
            return
        try:
            apply()
        except DisplayError as error:
            logger.warning("%s", error)
            target.refresh_controls()  # put the refused value back

    return callback
