"""The 3-D scene in Viser: a host for its layers, with one timeline and one frame stream.

`SceneView` owns the timeline (frame, playback thread), the frame stream, the lock and the
current clip; everything drawn or set belongs to a layer (`scene.layer` has the contract,
`scene.layers.LAYERS` the list): the points (first, built here: they decide the clip and the
frames on screen), the mask overlay, the cameras, a compared run, the point tracks. The host
calls every layer in order when a result is shown, a frame streams in, the frame or a setting
changes, and when the scene is read (`state()`).

How the scene stays fast: each frame's points and frusta are sent ONCE; moving the timeline,
playing and most settings only toggle `.visible` of nodes, the mask overlay re-sends colours
of the frames on screen only, and a new point source or stride sends its points once and
keeps them (see `scene.points`).

Threads: `show()` sends the first frame before returning and streams the rest from a
background thread; a daemon playback thread advances the frame while playing. All state is
guarded by one re-entrant lock; user callbacks run outside it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import viser

from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.cameras import look_through, move_view
from page4d_viewer.viewer.scene.clicks import ClickRouter
from page4d_viewer.viewer.scene.comparison import ComparisonLayer
from page4d_viewer.viewer.scene.controls import (
    ControlWriter,
    TimelineControls,
    add_timeline_controls,
    fps_control_value,
)
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.layer import CameraPose, FrameView, Layer
from page4d_viewer.viewer.scene.layers import LAYERS, LayerFactory
from page4d_viewer.viewer.scene.legend import SceneLegend
from page4d_viewer.viewer.scene.loading import LoadingNotice
from page4d_viewer.viewer.scene.mask_overlay import MaskOverlayLayer
from page4d_viewer.viewer.scene.nodes import (
    FrameStream,
    PreparedResult,
    ProgressCallback,
    send_order,
    share_prop_hints,
    skip_unchanged_poses_quickly,
    warm_up_encoders,
)
from page4d_viewer.viewer.scene.points import DEFAULT_MAX_POINTS, PointLayer
from page4d_viewer.viewer.scene.state import SceneState, SendCounters
from page4d_viewer.viewer.scene.timeline import FrameCallback, Timeline, notify_frame_change
from page4d_viewer.viewer.scene.tracks import TrackLayer

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

logger = logging.getLogger(__name__)

L = TypeVar("L")


class SceneView:
    """The Viser scene of one Reconstruction, with its own timeline and layers.

    Args:
        server: a running `viser.ViserServer`; the scene adds its GUI and nodes to it and never
            stops it.
        max_points: point budget that picks the automatic downsampling in `show()`.
        layers: the layers after the points (default `scene.layers.LAYERS`).

    Attributes:
        server: the Viser server the scene draws in (its browsers render recordings).
        lock: the lock guarding every layer's state.
        writer: the guard that keeps the scene's own writes to its controls from echoing.
        counters: what was sent since the last `show()`.
        layers: every layer, the points first, in drawing order.
        points: the points layer (display mode, point source, colouring, probe).
        mask: the mask overlay layer (opacity, threshold).
        comparison: a second run's cameras laid over the shown one's.
        tracks: the shown result's point tracks.
        clicks: what a click in the scene does ("probe" or "track") and whom it calls.
        timeline: the frame, fps, loop and playback thread.
        legend: the sidebar's Legend folder.

    Read these (tests, benchmarks); change the scene through the setters, here and on the
    layers, which take its lock.
    """

    def __init__(
        self,
        server: viser.ViserServer,
        max_points: int = DEFAULT_MAX_POINTS,
        layers: tuple[LayerFactory, ...] = LAYERS,
    ) -> None:
        self.server = server
        self.lock = threading.RLock()
        self._clip: PreparedResult | None = None
        # The camera a viewer flew into (variant, frame): its image would sit right in front
        # of the view and hide the points, so that one frustum is drawn without it.
        self._looked_through: tuple[str, int] | None = None
        self.writer = ControlWriter()
        self.counters = SendCounters()
        self.timeline = Timeline()
        self._stream = FrameStream(self._send_frame, self.timeline.closed)
        self.clicks = ClickRouter(server)
        server.scene.set_up_direction("-y")  # OpenCV world: y points down
        warm_up_encoders()
        share_prop_hints()
        skip_unchanged_poses_quickly()
        # The legend first: the first thing a newcomer to the scene needs is what its colours mean.
        self.legend = SceneLegend(server)
        self.loading = LoadingNotice(server)
        # Embedded beside the panel the sidebar would cover the points: start it minimized (one
        # click on its bar opens it), for every client that connects later too.
        server.gui.main_panel.minimize()
        self.timeline_controls: TimelineControls = add_timeline_controls(server)
        self._wire_timeline()
        self._add_view_controls()
        self.points = PointLayer(self, max_points)
        self.layers: list[Layer] = [self.points, *(make(self) for make in layers)]
        for layer in self.layers:
            layer.add_controls()
        self.mask = self.layer(MaskOverlayLayer)
        self.comparison = self.layer(ComparisonLayer)
        self.tracks = self.layer(TrackLayer)
        self.timeline.start_playback_thread(self._advance)

    def layer(self, kind: type[L]) -> L:
        """The first layer of a type (raises LookupError when the scene has none)."""
        for layer in self.layers:
            if isinstance(layer, kind):
                return layer
        raise LookupError(f"the scene has no {kind.__name__}")

    # ------------------------------------------------------------------ what layers use

    def view(self) -> FrameView:
        """The current frame, clip and shared settings (call holding the lock)."""
        settings = self.points.settings
        num_frames = self.num_frames
        frames = display.frames_to_show(
            settings.mode, self.timeline.frame, num_frames, settings.trail
        )
        return FrameView(
            clip=self._clip,
            frame=self.timeline.frame,
            num_frames=num_frames,
            shown_frames=frozenset(frames.tolist()),
            points=settings,
            mask=self.mask.settings,
            looked_through=self._looked_through,
        )

    def redraw(self) -> None:
        """Apply every layer to the current view and refresh the legend. Holds the lock and
        an atomic block: layers only toggle visibility and recolour what changed."""
        view = self.view()
        for layer in self.layers:
            layer.apply(view)
        self.legend.show([layer.legend(view) for layer in self.layers])

    def switch_points(self) -> None:
        """Show the point set of the current source and stride: a kept one is shown again
        (visibility only), a new one streams in; frames already sent are not sent again."""
        self._stream.cancel()
        with self.lock, self.server.atomic():
            if self._clip is None:
                return
            self._clip = self.points.activate(self._clip.recon).clip
            self.redraw()
            self._sync_controls()
        self._start_stream(progress=None)

    def fly_into(
        self, client: viser.ClientHandle, camera: tuple[str, int], pose: CameraPose
    ) -> None:
        """Put a client's viewpoint at a camera (variant, frame) and hide that camera's image,
        which would cover the view."""
        with self.lock, self.server.atomic():
            self._looked_through = camera
            self.redraw()
        look_through(client, *pose)

    def reset_view(self, client: viser.ClientHandle | None = None) -> None:
        """Put a client's viewpoint (every client's when None) back behind the first camera,
        as a new result starts, and show the image of a camera flown into again."""
        with self.lock, self.server.atomic():
            self._looked_through = None
            self.redraw()
            clip = self._clip
        if clip is None:
            return
        position, look_at, up = display.initial_view(
            clip.cameras["masked"].extrinsics[0], clip.scene_depth
        )
        clients = self.server.get_clients().values() if client is None else (client,)
        for each in clients:
            move_view(each, position, look_at, up)

    # ------------------------------------------------------------------ showing a result

    def show(self, recon: Reconstruction, progress: ProgressCallback | None = None) -> None:
        """Show a Reconstruction: replaces what was shown.

        The first frame's points, every camera trajectory and the first frame's frusta are
        sent before this returns; the other frames stream in from a background thread (see
        `wait_until_sent`).

        Args:
            recon: the result to show.
            progress: called as `progress(fraction, description)` while frames are sent
                (from the streaming thread).
        """
        self._stream.cancel()
        with self.lock, self.server.atomic():
            self._remove_nodes()
            self.timeline.frame = 0
            self.counters.reset(recon.num_frames)
            self._clip = clip = self.points.load(recon)
            view = self.view()
            for layer in self.layers[1:]:
                layer.show(clip, view)
            self._set_initial_view(clip)
            self.redraw()
            self._sync_controls()
        self._start_stream(progress)
        self.loading.clear()  # the first frame is sent: what loads is now on screen

    def set_loading(self, message: str) -> None:
        """A new result was chosen: take the old one down now and show every viewer a spinner
        naming `message` until `show()` has sent the new result's first frame."""
        self.clear()
        self.loading.show(message)

    def stop_loading(self) -> None:
        """What was loading failed to come: take the notice down (the scene stays as it is)."""
        self.loading.clear()

    def clear(self) -> None:
        """Remove everything shown; the scene's controls stay."""
        self._stream.cancel()
        with self.lock, self.server.atomic():
            self._remove_nodes()
            self._clip = None
            self.timeline.frame = 0
            self.counters.reset(0)
            self.redraw()
            self._sync_controls()

    def wait_until_sent(self, timeout: float | None = None) -> bool:
        """Block until every frame has been sent; returns False on timeout."""
        return self._stream.wait(timeout)

    def close(self) -> None:
        """Stop the playback and streaming threads (the server is left running)."""
        self.timeline.close()
        self._stream.cancel()
        self.timeline.join()

    # ------------------------------------------------------------------ the panel's contract

    def set_mask_overlay(
        self, opacity: float, threshold: float, overlay: str | None = None
    ) -> None:
        """The mask overlay's settings (`MaskOverlayLayer.set_overlay`)."""
        self.mask.set_overlay(opacity, threshold, overlay)

    def update_tracks(self, recon: Reconstruction) -> None:
        """Draw the tracks added to the shown result (`TrackLayer.update`)."""
        self.tracks.update(recon)

    # ------------------------------------------------------------------ timeline

    @property
    def num_frames(self) -> int:
        """Number of frames of the Reconstruction shown (0 when empty)."""
        with self.lock:
            return 0 if self._clip is None else self._clip.recon.num_frames

    @property
    def frame(self) -> int:
        """The current frame."""
        with self.lock:
            return self.timeline.frame

    def set_frame(self, frame: int) -> None:
        """Move to a frame (clamped to the clip); toggles visibility only.

        Frame-change callbacks are NOT fired for this call: they report moves made in the
        Viser scene, so a caller that mirrors them does not loop.
        """
        self._move_to_frame(int(frame), notify=False)

    def user_moved_frame(self, frame: int) -> None:
        """Move to a frame chosen in the Viser scene, and fire the frame-change callbacks."""
        self._move_to_frame(int(frame), notify=True)

    def on_frame_change(self, callback: FrameCallback) -> FrameCallback:
        """Register `callback(frame)`, fired when the Viser timeline moves (slider, playback,
        a click on a frustum). Returns the callback, so it can be used as a decorator."""
        with self.lock:
            self.timeline.add_callback(callback)
        return callback

    def set_playing(self, playing: bool) -> None:
        """Start or stop playback (from the first frame when stopped at the end)."""
        timeline = self.timeline
        with self.lock:
            at_end = self.num_frames > 1 and timeline.frame >= self.num_frames - 1
            restart = playing and at_end and not timeline.loop and not timeline.playing.is_set()
        if restart:
            self._move_to_frame(0, notify=True)
        with self.lock:
            if playing:
                timeline.playing.set()
            else:
                timeline.playing.clear()
            self.writer.set(self.timeline_controls.playing, bool(playing))

    def set_fps(self, fps: float) -> None:
        """Playback speed in frames per second (0 < fps <= 120)."""
        if not np.isfinite(fps) or not 0 < fps <= 120:
            raise DisplayError(f"playback speed must be in (0, 120] fps, got {fps}")
        with self.lock:
            self.timeline.fps = float(fps)
            self.writer.set(self.timeline_controls.fps, fps_control_value(fps))

    def set_loop(self, loop: bool) -> None:
        """Whether playback wraps around at the last frame (else it stops there)."""
        with self.lock:
            self.timeline.loop = bool(loop)
            self.writer.set(self.timeline_controls.loop, self.timeline.loop)

    def refresh_controls(self) -> None:
        """Write the scene's settings into its controls (e.g. to put back a refused value)."""
        with self.lock:
            self._sync_controls()

    # ------------------------------------------------------------------ state

    def state(self) -> SceneState:
        """A snapshot of the scene: the timeline and stream, and each layer's slice."""
        with self.lock:
            view = self.view()
            counters, timeline = self.counters, self.timeline
            return SceneState(
                num_frames=view.num_frames,
                frame=timeline.frame,
                streaming=self._stream.streaming,
                playing=timeline.is_playing,
                fps=timeline.fps,
                loop=timeline.loop,
                click_mode=self.clicks.mode,
                geometry_sends=tuple(counters.geometry),
                color_sends=tuple(counters.colors),
                bytes_sent=counters.bytes,
                layers={layer.name: layer.state(view) for layer in self.layers},
                loading=self.loading.message,
            )

    # ------------------------------------------------------------------ internals

    def _start_stream(self, progress: ProgressCallback | None) -> None:
        """Send the current frame now, then the others from a background thread."""
        with self.lock:
            clip = self._clip
            if clip is None:
                return
            view = self.view()
            sent = self.points.frames
            order = send_order(clip.recon.num_frames, view.shown_frames, view.frame)
            order = [index for index in order if index not in sent]
            if not order:
                return
            cancel = self._stream.begin()
        self._stream.run(clip, order, cancel, progress)

    def _send_frame(self, clip: PreparedResult, index: int) -> None:
        """Send one frame of every layer: the pure work first, outside the lock."""
        prepared = [layer.prepare_frame(clip, index) for layer in self.layers]
        with self.lock, self.server.atomic():
            if self._clip is not clip:
                return  # a newer show() or point set replaced this clip
            view = self.view()
            for layer, work in zip(self.layers, prepared, strict=True):
                layer.add_frame(clip, index, work, view)

    def _remove_nodes(self) -> None:
        """Remove every layer's nodes. Holds the lock."""
        self._looked_through = None
        for layer in self.layers:
            layer.remove()

    def _move_to_frame(self, frame: int, notify: bool) -> None:
        with self.lock:
            num_frames = self.num_frames
            frame = int(np.clip(frame, 0, max(num_frames - 1, 0)))
            if frame == self.timeline.frame:
                return
            with self.server.atomic():
                self.timeline.frame = frame
                self.redraw()
                self.writer.set(self.timeline_controls.frame, frame)
            callbacks = self.timeline.callbacks()
        if notify:
            notify_frame_change(callbacks, frame)

    def _sync_controls(self) -> None:
        """Write the timeline and every layer's settings into the controls. Holds the lock."""
        view = self.view()
        self.timeline_controls.show(self.writer, self.timeline, view.num_frames)
        for layer in self.layers:
            layer.sync_controls(view)

    def _set_initial_view(self, clip: PreparedResult) -> None:
        """Start every viewer (new and connected) behind the first camera."""
        position, look_at, up = display.initial_view(
            clip.cameras["masked"].extrinsics[0], clip.scene_depth
        )
        initial = self.server.initial_camera
        initial.position, initial.look_at, initial.up = position, look_at, up
        for client in self.server.get_clients().values():
            move_view(client, position, look_at, up)

    def _wire_timeline(self) -> None:
        """Each Timeline control calls one scene setter; the setters write back (no echo)."""
        controls, bind = self.timeline_controls, self.writer.bind
        bind(controls.frame, lambda: self.user_moved_frame(int(controls.frame.value)),
             self.refresh_controls)  # fmt: skip
        bind(controls.playing, lambda: self.set_playing(bool(controls.playing.value)),
             self.refresh_controls)  # fmt: skip
        bind(controls.fps, lambda: self.set_fps(float(controls.fps.value)), self.refresh_controls)
        bind(controls.loop, lambda: self.set_loop(bool(controls.loop.value)), self.refresh_controls)

    def _add_view_controls(self) -> None:
        """The View folder: one button back to the starting viewpoint."""
        with self.server.gui.add_folder("View"):
            reset = self.server.gui.add_button("Reset view", icon=viser.Icon.HOME)

        def reset_view(event: viser.GuiEvent[viser.GuiButtonHandle]) -> None:
            self.reset_view(event.client)

        reset.on_click(reset_view)

    def _advance(self) -> None:
        """One playback step: the next frame, or stop at the end when not looping."""
        with self.lock:
            num_frames = self.num_frames
            following = self.timeline.next_frame(num_frames)
            if following is None:
                if num_frames > 1:
                    self.set_playing(False)
                return
        self._move_to_frame(following, notify=True)
