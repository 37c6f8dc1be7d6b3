"""The 3-D scene in Viser: per-frame point clouds, camera frusta per variant, a timeline.

`SceneView` composes the parts of this package: the layers that draw (`layers.py`: points,
cameras; `comparison.py`; `tracks.py`: point tracks), what was sent (`nodes.py`), the timeline
and its playback thread (`timeline.py`), what clicks do (`clicks.py`) and the scene's own
sidebar controls (`controls.py`). The rules for what is shown (colours, frame
selection, the static/dynamic split, frustum shapes) are pure functions in `display.py`.

How the scene stays fast: each frame's points are sent ONCE, as their own node
`/frames/t{i:04d}/points`, itself split into children `.../m{b:02d}c{c}`, one per cell of
(bin of dynamic probability, display.MASK_BINS bins; bin of the clip's confidence,
result.points.CONFIDENCE_BINS quantile bins). Then

* moving the timeline, playing, the display mode, the confidence percentile (snapped to
  result.points.CONFIDENCE_STEP) and the mask threshold in split mode only toggle `.visible`
  of frame nodes and cells (no point is sent again);
* the mask overlay opacity/threshold re-send colours only (positions stay), and only for the
  frames on screen: hidden frames are recoloured when they next appear;
* the point size is a per-node property (a few bytes per node);
* the point tracks are three small nodes whose points and colours are re-sent on each frame;
* the point source and the downsampling change the points' positions: the first switch to a
  source/stride sends its points (counted per frame in `SceneState.geometry_sends`); the
  previous set stays in the browser, hidden, while all sets fit in the point budget, so
  switching back only toggles visibility.

Threads: `show()` sends the first frame before returning and streams the rest from a
background thread; a daemon playback thread advances the frame while playing. All state is
guarded by one re-entrant lock; user callbacks run outside it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result import points
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.clicks import ClickRouter
from page4d_viewer.viewer.scene.colouring import ProbeMarker
from page4d_viewer.viewer.scene.comparison import ComparisonLayer
from page4d_viewer.viewer.scene.controls import SceneControls, build_controls, fps_control_value
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.layers import CameraLayer, PointLayer, look_through
from page4d_viewer.viewer.scene.legend import SceneLegend
from page4d_viewer.viewer.scene.nodes import (
    FrameStream,
    ProgressCallback,
    ShownClip,
    auto_point_size,
    prepare_clip,
    send_order,
    source_variant,
    warm_up_encoders,
)
from page4d_viewer.viewer.scene.overlays import SceneOverlays
from page4d_viewer.viewer.scene.state import (
    DEFAULT_MAX_POINTS,
    MAX_DOWNSAMPLE,
    DisplaySettings,
    SceneState,
    SendCounters,
)
from page4d_viewer.viewer.scene.timeline import FrameCallback, Timeline, notify_frame_change
from page4d_viewer.viewer.scene.tracks import TrackLayer

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Reconstruction

logger = logging.getLogger(__name__)


class SceneView(SceneOverlays):
    """The Viser scene of one Reconstruction, with its own timeline and display controls.

    Args:
        server: a running `viser.ViserServer`; the scene adds its GUI and nodes to it and never
            stops it.
        max_points: point budget that picks the automatic downsampling in `show()`.

    Attributes:
        controls: the scene's controls in the Viser sidebar.
        point_layer: the frames' point nodes.
        camera_layer: the camera variants' frusta and trajectories.
        comparison_layer: a second run's cameras laid over the shown one's (`/compare`).
        track_layer: the shown result's point tracks (`/tracks`).
        clicks: what a click in the scene does ("probe" or "track") and whom it calls.
        timeline: the frame, fps, loop and playback thread.

    Read these (tests, benchmarks); change the scene through its setters, which take its lock.
    """

    def __init__(self, server: viser.ViserServer, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self._server = server
        self._max_points = int(max_points)
        self._lock = threading.RLock()
        self._clip: ShownClip | None = None
        self._settings = DisplaySettings()
        self._counters = SendCounters()
        self.timeline = Timeline()
        self._stream = FrameStream(self._send_frame, self.timeline.closed)
        self.point_layer = PointLayer(server, self._settings, self._counters, self._max_points)
        self.camera_layer = CameraLayer(server, self._settings, self._counters)
        self.comparison_layer = ComparisonLayer(server)
        self.track_layer = TrackLayer(server)
        self.clicks = ClickRouter(server)
        self.probe_marker = ProbeMarker()
        server.scene.set_up_direction("-y")  # OpenCV world: y points down
        warm_up_encoders()
        # The legend first: the first thing a newcomer to the scene needs is what its colours mean.
        self.legend = SceneLegend(server)
        self.controls: SceneControls = build_controls(server, self)
        self.timeline.start_playback_thread(self._advance)

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
        settings = self._settings
        with self._lock, self._server.atomic():
            self._remove_nodes()
            num_frames = recon.num_frames
            height, width = recon.image_hw
            if not settings.downsample_fixed:
                settings.downsample = display.auto_stride(
                    num_frames, height, width, self._max_points
                )
            self.timeline.frame = 0
            if source_variant(settings.source) not in (None, *recon.cameras):
                logger.warning(
                    "this result has no %s cameras: showing the point map", settings.source
                )
                settings.source = "points"
            self._counters.reset(num_frames)
            self._clip = self.point_layer.activate(
                (settings.source, settings.downsample), lambda: prepare_clip(recon, settings)
            ).clip
            settings.point_size = auto_point_size(self._clip)
            self.camera_layer.add_trajectories(self._clip)
            self.camera_layer.set_initial_view(self._clip)
            self.track_layer.show(recon)
            self._draw_tracks()
            self._sync_gui()
        self._start_stream(progress)

    def clear(self) -> None:
        """Remove everything shown; the scene's controls stay."""
        self._stream.cancel()
        with self._lock, self._server.atomic():
            self._remove_nodes()
            self._clip = None
            self.timeline.frame = 0
            self._counters.reset(0)
            self._sync_gui()

    def wait_until_sent(self, timeout: float | None = None) -> bool:
        """Block until every frame has been sent; returns False on timeout."""
        return self._stream.wait(timeout)

    def close(self) -> None:
        """Stop the playback and streaming threads (the server is left running)."""
        self.timeline.close()
        self._stream.cancel()
        self.timeline.join()

    @property
    def server(self) -> viser.ViserServer:
        """The Viser server the scene draws in (its browsers render recordings)."""
        return self._server

    # ------------------------------------------------------------------ timeline

    @property
    def num_frames(self) -> int:
        """Number of frames of the Reconstruction shown (0 when empty)."""
        with self._lock:
            return 0 if self._clip is None else self._clip.recon.num_frames

    @property
    def frame(self) -> int:
        """The current frame."""
        with self._lock:
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
        with self._lock:
            self.timeline.add_callback(callback)
        return callback

    def set_playing(self, playing: bool) -> None:
        """Start or stop playback (from the first frame when stopped at the end)."""
        timeline = self.timeline
        with self._lock:
            at_end = self.num_frames > 1 and timeline.frame >= self.num_frames - 1
            restart = playing and at_end and not timeline.loop and not timeline.playing.is_set()
        if restart:
            self._move_to_frame(0, notify=True)
        with self._lock:
            if playing:
                timeline.playing.set()
            else:
                timeline.playing.clear()
            self.controls.set(self.controls.playing, bool(playing))

    def set_fps(self, fps: float) -> None:
        """Playback speed in frames per second (0 < fps <= 120)."""
        if not np.isfinite(fps) or not 0 < fps <= 120:
            raise DisplayError(f"playback speed must be in (0, 120] fps, got {fps}")
        with self._lock:
            self.timeline.fps = float(fps)
            self.controls.set(self.controls.fps, fps_control_value(fps))

    def set_loop(self, loop: bool) -> None:
        """Whether playback wraps around at the last frame (else it stops there)."""
        with self._lock:
            self.timeline.loop = bool(loop)
            self.controls.set(self.controls.loop, self.timeline.loop)

    # ------------------------------------------------------------------ display settings

    def set_mask_overlay(
        self, opacity: float, threshold: float, overlay: str | None = None
    ) -> None:
        """Blend the mask's heat map into the point colours.

        "continuous": every point gets `(1 - opacity) * image + opacity * heat(p)`, the heat
        map spanning [0, the clip's result.mask.mask_scale]. "threshold": only points whose
        dynamic probability is at or above `threshold` do. Either way the threshold (snapped
        to steps of 1/display.MASK_BINS) splits static from dynamic in split mode and for the
        tracks. Re-sends colours of the frames on screen.

        Args:
            opacity: in [0, 1]; 0 shows plain image colours.
            threshold: dynamic probability in [0, 1].
            overlay: one of settings.MASK_OVERLAYS (None: keep the current one).
        """
        display.check_overlay(opacity, threshold)
        if overlay is not None:
            display.check_overlay_mode(overlay)
        settings, controls = self._settings, self.controls
        with self._lock, self._server.atomic():
            settings.opacity = float(opacity)
            settings.threshold_bin = display.threshold_bin(threshold)
            settings.overlay = settings.overlay if overlay is None else str(overlay)
            controls.set(controls.opacity, settings.opacity)
            controls.set(controls.threshold, settings.threshold)
            controls.set(controls.overlay, settings.overlay)
            self._apply_visibility()
            self._show_legend()

    def set_display(self, mode: str, trail: int | None = None) -> None:
        """Choose what is drawn: "current", "trail" (last `trail` frames), "all" or "split".

        "split" draws the static points of every frame as a background and the dynamic points
        only at their own time. Toggles visibility only.
        """
        settings, controls = self._settings, self.controls
        trail = settings.trail if trail is None else int(trail)
        display.check_display(mode, trail)
        with self._lock, self._server.atomic():
            settings.mode = mode
            settings.trail = trail
            controls.set(controls.mode, mode)
            controls.set(controls.trail, min(trail, int(controls.trail.max)))
            self._apply_visibility()

    def set_point_source(self, source: str) -> None:
        """Points from the point head ("points") or depth unprojected with a variant's cameras
        ("depth_masked", "depth_unmasked"). The first switch to a source sends its points
        (counted); a source sent before is shown again without resending (`_switch_points`)."""
        if source not in display.POINT_SOURCES:
            raise DisplayError(
                f"point source must be one of {', '.join(display.POINT_SOURCES)}, got {source!r}"
            )
        with self._lock:
            if source == self._settings.source:
                return
            variant = source_variant(source)
            if self._clip is not None and variant not in (None, *self._clip.cameras):
                raise DisplayError(f"this result has no {variant} cameras to unproject depth with")
            self._settings.source = source
            self.controls.set(self.controls.source, source)
        self._switch_points()

    def set_confidence_percentile(self, percentile: float) -> None:
        """Drop the least confident `percentile` % of points (over the whole clip); 0 keeps all.

        The percentile snaps to steps of result.points.CONFIDENCE_STEP (`snap_percentile`, as
        the exports apply it); a change toggles confidence bins, no point is re-sent."""
        snapped = points.snap_percentile(percentile)
        with self._lock, self._server.atomic():
            self._settings.percentile = snapped
            self.controls.set(self.controls.percentile, snapped)
            self._apply_visibility()

    def set_downsample(self, stride: int) -> None:
        """Keep every `stride`-th pixel along each axis. Sends the points of a stride not
        shown before (a stride sent before is shown again without resending)."""
        if not 1 <= int(stride) <= MAX_DOWNSAMPLE:
            raise DisplayError(f"downsampling must be between 1 and {MAX_DOWNSAMPLE}, got {stride}")
        settings = self._settings
        with self._lock:
            settings.downsample_fixed = True
            if int(stride) == settings.downsample:
                return
            settings.downsample = int(stride)
            self.controls.set(self.controls.downsample, settings.downsample)
        self._switch_points()

    def set_point_size(self, size: float) -> None:
        """Point size in scene units (> 0); a property update, no points re-sent."""
        if not np.isfinite(size) or size <= 0:
            raise DisplayError(f"point size must be positive, got {size}")
        slider = self.controls.point_size
        with self._lock, self._server.atomic():
            self._settings.point_size = float(size)
            self.point_layer.set_point_size(self._settings.point_size)
            slider.max = max(float(slider.max), float(size))
            slider.min = min(float(slider.min), float(size))
            self.controls.set(slider, self._settings.point_size)

    def set_variant_visible(self, name: str, visible: bool) -> None:
        """Show or hide one camera variant's frusta and trajectory ("masked", "unmasked",
        "ground_truth")."""
        if name not in display.VARIANTS:
            raise DisplayError(
                f"camera variant must be one of {', '.join(display.VARIANTS)}, got {name!r}"
            )
        with self._lock, self._server.atomic():
            self._settings.variant_visible[name] = bool(visible)
            self.camera_layer.set_variant_visible(name, bool(visible))
            self.controls.variants[name].value = bool(visible)

    def frustum_clicked(self, client: viser.ClientHandle, variant: str, index: int) -> None:
        """A click on a frustum: put the client's viewpoint at that camera (pose and field of
        view), hide that frustum's image, and move the timeline to its frame, firing the
        frame-change callbacks. Ground truth is flown to at its pose aligned onto the
        prediction (`prepare_clip`), where the points are."""
        self._move_to_frame(index, notify=True)
        with self._lock, self._server.atomic():
            pose = self.camera_layer.camera_pose(variant, index)
            if pose is not None:
                self.camera_layer.look_through(variant, index, self.timeline.frame)
        if pose is not None:
            look_through(client, *pose)

    def refresh_controls(self) -> None:
        """Write the scene's settings into its controls (e.g. to put back a refused value)."""
        with self._lock:
            self._sync_gui()

    # ------------------------------------------------------------------ state

    def state(self) -> SceneState:
        """A snapshot of the scene (what was sent, what is visible, the settings)."""
        with self._lock:
            num_frames = self.num_frames
            settings, counters, timeline = self._settings, self._counters, self.timeline
            on_screen = self.point_layer.on_screen(self._has_mask())
            return SceneState(
                num_frames=num_frames,
                frame=timeline.frame,
                frames_sent=len(self.point_layer.frames),
                streaming=self._stream.streaming,
                frame_nodes=self.point_layer.node_names(),
                visible_frames=on_screen.frames,
                visible_nodes=on_screen.nodes,
                visible_camera_nodes=self.camera_layer.visible_nodes(),
                point_counts=self.point_layer.point_counts(num_frames),
                visible_points=on_screen.points,
                visible_dynamic_points=on_screen.dynamic_points,
                geometry_sends=tuple(counters.geometry),
                color_sends=tuple(counters.colors),
                bytes_sent=counters.bytes,
                display_mode=settings.mode,
                trail=settings.trail,
                point_source=settings.source,
                confidence_percentile=settings.percentile,
                point_size=settings.point_size,
                downsample=settings.downsample,
                mask_opacity=settings.opacity,
                mask_threshold=settings.threshold,
                has_mask=self._has_mask(),
                variants=tuple(self.camera_layer.frusta),
                variant_visible=dict(settings.variant_visible),
                playing=timeline.is_playing,
                fps=timeline.fps,
                loop=timeline.loop,
                comparison=self.comparison_layer.title,
                comparison_variants=tuple(self.comparison_layer.nodes),
                comparison_visible=self.comparison_layer.visible,
                comparison_camera_nodes=self.comparison_layer.visible_nodes(),
                point_colouring=self.point_layer.colouring.mode,
                probe_point=self.probe_marker.position,
                tracks=self.track_layer.state(),
                click_mode=self.clicks.mode,
                mask_overlay=settings.overlay,
                mask_top=1.0 if self._clip is None else self._clip.mask_top,
            )

    # ------------------------------------------------------------------ internals: sending

    def _start_stream(self, progress: ProgressCallback | None) -> None:
        """Send the current frame now, then the others from a background thread."""
        with self._lock:
            clip = self._clip
            if clip is None:
                return
            sent = self.point_layer.frames
            order = send_order(
                clip.recon.num_frames, self._visible_frame_indices(), self.timeline.frame
            )
            order = [index for index in order if index not in sent]
            if not order:
                return
            cancel = self._stream.begin()
        self._stream.run(clip, order, cancel, progress)

    def _send_frame(self, clip: ShownClip, index: int) -> None:
        """Send one frame's points (one node per (mask bin, confidence bin) cell) and, once,
        its frusta."""
        binned = self.point_layer.binned_points(clip, index)
        with self._lock, self._server.atomic():
            if self._clip is not clip or index in self.point_layer.frames:
                return  # a newer show() or point set replaced this clip
            frame = self.timeline.frame
            visible = index in self._visible_frame_indices()
            self.point_layer.add_frame(index, binned, frame, visible, clip.has_mask)
            if not self.camera_layer.has_frame(index):
                self.camera_layer.add_frusta(clip, index, frame, self.frustum_clicked)

    def _switch_points(self) -> None:
        """Show the point set of the current source and stride: a kept one is shown again
        (visibility only), a new one streams in; frames already sent are not sent again."""
        self._stream.cancel()
        settings = self._settings
        with self._lock, self._server.atomic():
            if self._clip is None:
                return
            recon = self._clip.recon
            self._clip = self.point_layer.activate(
                (settings.source, settings.downsample), lambda: prepare_clip(recon, settings)
            ).clip
            self._apply_visibility()
            self._sync_gui()
        self._start_stream(progress=None)

    def _remove_nodes(self) -> None:
        """Remove every point and camera node, and the comparison. Holds the lock."""
        self.point_layer.remove_all()
        self.camera_layer.remove_all()
        self.comparison_layer.remove_all()
        self.track_layer.remove()
        self.probe_marker.remove()
        self.point_layer.colouring.reset()

    # ------------------------------------------------------------------ internals: showing

    def _move_to_frame(self, frame: int, notify: bool) -> None:
        with self._lock:
            num_frames = self.num_frames
            frame = int(np.clip(frame, 0, max(num_frames - 1, 0)))
            if frame == self.timeline.frame:
                return
            with self._server.atomic():
                self.timeline.frame = frame
                self._apply_visibility()
                self.controls.set(self.controls.frame, frame)
            callbacks = self.timeline.callbacks()
        if notify:
            notify_frame_change(callbacks, frame)

    def _has_mask(self) -> bool:
        return self._clip is not None and self._clip.has_mask

    def _visible_frame_indices(self) -> set[int]:
        settings = self._settings
        frames = display.frames_to_show(
            settings.mode, self.timeline.frame, self.num_frames, settings.trail
        )
        return set(frames.tolist())

    def _apply_visibility(self) -> None:
        """Make nodes match the frame, mode, threshold and overlay. Holds the lock and an
        atomic block. Only toggles visibility, plus colours of frames on screen whose
        overlay changed."""
        frame = self.timeline.frame
        self.point_layer.apply_visibility(self._visible_frame_indices(), frame, self._has_mask())
        self.camera_layer.apply_visibility(frame)
        self._draw_tracks()

    def _sync_gui(self) -> None:
        """Write the scene's settings into its Viser controls. Holds the lock."""
        variants = () if self._clip is None else tuple(self._clip.cameras)
        self.controls.show(
            self._settings, self.timeline, self.num_frames, variants, self._has_mask()
        )
        self._show_track_controls()

    def _advance(self) -> None:
        """One playback step: the next frame, or stop at the end when not looping."""
        with self._lock:
            num_frames = self.num_frames
            following = self.timeline.next_frame(num_frames)
            if following is None:
                if num_frames > 1:
                    self.set_playing(False)
                return
        self._move_to_frame(following, notify=True)
