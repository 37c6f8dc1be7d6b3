"""What `SceneView` lays over the shown result: a second run's cameras, the points' colouring,
the probe, what clicks do, and the point tracks.

`SceneOverlays` holds these setters for `SceneView` (its only subclass), which provides the
state they use (see the annotations below); they take the scene's lock like its other setters.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result import points
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.legend import LegendContent
from page4d_viewer.viewer.scene.picking import Pixel, pick_pixel

if TYPE_CHECKING:
    import threading

    import viser

    from page4d_viewer.result.cameras import Cameras
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.viewer.scene.clicks import ClickCallback, ClickRouter
    from page4d_viewer.viewer.scene.colouring import ProbeMarker
    from page4d_viewer.viewer.scene.comparison import ComparisonLayer
    from page4d_viewer.viewer.scene.controls import SceneControls
    from page4d_viewer.viewer.scene.layers import PointLayer
    from page4d_viewer.viewer.scene.legend import SceneLegend
    from page4d_viewer.viewer.scene.nodes import ShownClip
    from page4d_viewer.viewer.scene.state import DisplaySettings
    from page4d_viewer.viewer.scene.timeline import Timeline
    from page4d_viewer.viewer.scene.tracks import TrackLayer


class SceneOverlays:
    """The overlay setters of `SceneView` (see the module docstring)."""

    # Provided by SceneView.
    _lock: threading.RLock
    _server: viser.ViserServer
    _clip: ShownClip | None
    _settings: DisplaySettings
    timeline: Timeline
    controls: SceneControls
    point_layer: PointLayer
    comparison_layer: ComparisonLayer
    track_layer: TrackLayer
    clicks: ClickRouter
    probe_marker: ProbeMarker
    legend: SceneLegend

    def _apply_visibility(self) -> None:
        raise NotImplementedError  # SceneView's

    def _has_mask(self) -> bool:
        raise NotImplementedError  # SceneView's

    def show_comparison(self, title: str, cameras: Mapping[str, Cameras]) -> None:
        """Lay a second run's cameras over the shown result's, replacing any earlier one.

        Args:
            title: names the second run (SceneState.comparison).
            cameras: variant -> (S,) cameras already in the shown result's world (see
                `viewer.comparison.align_second_run`), S = the shown result's frames.

        Raises:
            DisplayError: nothing is shown, or the frame counts differ.
        """
        with self._lock, self._server.atomic():
            clip = self._clip
            if clip is None:
                raise DisplayError("show a result before comparing another one with it")
            self.comparison_layer.show(
                title, cameras, clip.recon.image_hw, clip.frustum_length, clip.recon.num_frames
            )
            self._show_legend()

    def set_comparison_visible(self, visible: bool) -> None:
        """Show or hide the second run's cameras (nothing is re-sent)."""
        with self._lock, self._server.atomic():
            self.comparison_layer.set_visible(visible)

    def clear_comparison(self) -> None:
        """Remove the second run's cameras; the shown result stays."""
        with self._lock, self._server.atomic():
            self.comparison_layer.remove_all()
            self._show_legend()

    # ------------------------------------------------------------------ inside the model

    def set_point_colouring(
        self,
        mode: str,
        heat: np.ndarray | None = None,
        colormap: str = display.DEFAULT_COLORMAP,
        key: Hashable = None,
    ) -> None:
        """Colour the points by "image", "mask" (the overlay) or "attention" (`heat`, (S, h, w)
        in [0, 1] per key-frame patch; `key` names it). Re-sends colours of the frames on
        screen only, never positions."""
        with self._lock, self._server.atomic():
            image_hw = (1, 1) if self._clip is None else self._clip.recon.image_hw
            self.point_layer.colouring.set(mode, heat, image_hw, colormap, key)
            self._apply_visibility()

    def pick_pixel(self, origin: np.ndarray, direction: np.ndarray) -> Pixel | None:
        """The pixel whose point on screen is nearest to a click ray (None: nothing there)."""
        with self._lock:
            clip, frames = self._clip, self.point_layer.on_screen(self._has_mask()).frames
            first_bin = self._settings.confidence_bin
        if clip is None:
            return None
        cut = points.edge_threshold(clip.confidence_edges, first_bin)  # as the scene shows
        return pick_pixel(
            clip.recon, frames, origin, direction, threshold=cut,
            source=clip.source, rows=clip.rows, cols=clip.cols,
        )  # fmt: skip

    def show_probe(self, position: np.ndarray | None) -> None:
        """Mark a probed point with a small sphere (None removes it)."""
        with self._lock, self._server.atomic():
            radius = 2.5 * self._settings.point_size
            self.probe_marker.show(self._server, position, radius)

    def on_scene_click(self, callback: ClickCallback, mode: str = "probe") -> None:
        """Register `callback(ray_origin, ray_direction)` for clicks in the scene made while
        the click mode is `mode` ("probe", the default, or "track": see `set_click_mode`)."""
        self.clicks.add(callback, mode)

    def set_click_mode(self, mode: str) -> None:
        """What a click in the scene does: "probe" its point or seed a point "track" there."""
        self.clicks.set_mode(mode)

    # ------------------------------------------------------------------ point tracks

    def set_tracks(
        self,
        visible: bool | None = None,
        max_count: int | None = None,
        trail: int | None = None,
        which: str | None = None,
        truth: bool | None = None,
    ) -> None:
        """Point tracks: drawn or not, at most `max_count`, each a trail of `trail` frames
        ending at the current one, "moving", "static" or "both" (moving: seeded where the
        mask's dynamic probability is at least its threshold), with their ground truth or
        not. None keeps a setting. Only the tracks are redrawn."""
        with self._lock, self._server.atomic():
            self.track_layer.configure(visible, max_count, trail, which, truth)
            self._show_track_controls()
            self._draw_tracks()

    def _show_track_controls(self) -> None:
        layer = self.track_layer
        self.controls.show_tracks(layer.settings, layer.count > 0, layer.has_truth)
        self._show_legend()

    def _show_legend(self) -> None:
        """Describe the colours now on screen in the sidebar's Legend. Holds the lock."""
        clip, settings, tracks = self._clip, self._settings, self.track_layer
        self.legend.show(
            LegendContent(
                variants=() if clip is None else tuple(clip.cameras),
                mask_top=clip.mask_top if clip is not None and clip.has_mask else None,
                overlay=settings.overlay,
                threshold=settings.threshold,
                tracks=tracks.count > 0,
                truth_tracks=tracks.has_truth,
                comparison=tuple(self.comparison_layer.nodes),
            )
        )

    def update_tracks(self, recon: Reconstruction) -> None:
        """Draw the tracks of `recon`, the shown result with tracks added (`add_tracks`): same
        frames and geometry, so nothing but the tracks is sent again."""
        with self._lock, self._server.atomic():
            clip = self._clip
            if clip is None or recon.points.shape != clip.recon.points.shape:
                raise DisplayError("tracks can only be added to the result on screen")
            self.track_layer.show(recon)
            self._show_track_controls()
            self._draw_tracks()

    def _draw_tracks(self) -> None:
        """Redraw the tracks for the frame, point source and mask threshold (sends nothing
        when none of them changed). Holds the lock and an atomic block."""
        settings = self._settings
        self.track_layer.draw(
            self.timeline.frame, settings.source, settings.threshold, settings.point_size
        )
