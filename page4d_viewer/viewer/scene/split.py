"""Two scenes side by side, locked together: masked | unmasked.

Each side is a `SceneView` (its own Viser server) showing the same result, with only its
side's pose variants drawn (the head's and the geometric one of that side, plus the ground
truth) and its points unprojected from depth with its own cameras, so the two pose estimates
and what they do to the geometry sit next to each other instead of on top of each other.

What is locked, and how:

* **Time.** A frame change on either side (slider, playback, a click on a frustum) moves the
  other (`on_frame_change` -> `set_frame`, which does not fire callbacks, so nothing loops);
  starting playback on one side stops it on the other, so one clock drives both.
* **Viewpoint.** Moving the camera of a browser on one side moves the cameras of the other
  side's browsers (Viser's per-client `camera.on_update`); a pose already there is not set
  again, which ends the echo of the other side's own report.
* **Settings.** Every change of a shared setting (display mode, trail, confidence, point size,
  stride, the mask overlay, tracks, which variant kinds are shown) is copied to the other side
  by a small watcher thread, outside both scenes' locks, so neither ever waits on the other's
  lock while holding its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import viser

from page4d_viewer.result.cameras import GEOMETRY_MASKED, GEOMETRY_UNMASKED, MASKED, UNMASKED
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer.scene.cameras import CameraLayer
from page4d_viewer.viewer.scene.display import PointSource
from page4d_viewer.viewer.scene.view import SceneView

logger = logging.getLogger(__name__)

SETTINGS_POLL_SECONDS = 0.1  # how soon a setting changed on one side reaches the other
CAMERA_TOLERANCE = 1e-4  # viewpoints closer than this (scene units, radians) are the same


@dataclass(frozen=True)
class Side:
    """What one side of the split view draws.

    Attributes:
        name: "masked" or "unmasked": the label above it.
        variants: the camera variants it draws (the ground truth is drawn on both sides).
        source: the point source it unprojects with ("points" when the result lacks it).
    """

    name: str
    variants: tuple[str, ...]
    source: PointSource


SIDES: tuple[Side, Side] = (
    Side("masked", (MASKED, GEOMETRY_MASKED), "depth_masked"),
    Side("unmasked", (UNMASKED, GEOMETRY_UNMASKED), "depth_unmasked"),
)
SIDED_VARIANTS = frozenset(v for side in SIDES for v in side.variants)


@dataclass(frozen=True)
class SharedSettings:
    """The settings both sides share (a snapshot; equal snapshots need no copying)."""

    mode: str
    trail: int
    percentile: float
    point_size: float
    downsample: int
    opacity: float
    threshold: float
    overlay: str
    tracks: Any


def shared_settings(scene: SceneView) -> SharedSettings:
    """Read a scene's shared settings (under its lock)."""
    with scene.lock:
        points, mask = scene.points.settings, scene.mask.settings
        return SharedSettings(
            points.mode, points.trail, points.percentile, points.point_size,
            points.downsample, mask.opacity, mask.threshold, mask.overlay,
            scene.tracks.settings,
        )  # fmt: skip


def merged_settings(
    last: SharedSettings, left: SharedSettings, right: SharedSettings
) -> SharedSettings:
    """Per setting, the side that changed it since `last` wins (the left, when both did).

    Per setting, not per snapshot: a new result changes some settings on both sides at once
    (the point size fits the result), and a whole-snapshot "left wins" would then undo a
    setting changed on the right meanwhile."""
    changed = {}
    for field in fields(SharedSettings):
        on_left = getattr(left, field.name)
        changed[field.name] = (
            on_left if on_left != getattr(last, field.name) else getattr(right, field.name)
        )
    return replace(last, **changed)


def apply_settings(scene: SceneView, wanted: SharedSettings) -> None:
    """Give a scene these shared settings (each setter takes the scene's lock itself)."""
    have = shared_settings(scene)
    if (have.mode, have.trail) != (wanted.mode, wanted.trail):
        scene.points.set_display(wanted.mode, wanted.trail)
    if have.percentile != wanted.percentile:
        scene.points.set_confidence_percentile(wanted.percentile)
    if have.point_size != wanted.point_size:
        scene.points.set_point_size(wanted.point_size)
    if have.downsample != wanted.downsample:
        scene.points.set_downsample(wanted.downsample)
    if (have.opacity, have.threshold, have.overlay) != (
        wanted.opacity, wanted.threshold, wanted.overlay,
    ):  # fmt: skip
        scene.set_mask_overlay(wanted.opacity, wanted.threshold, wanted.overlay)
    if have.tracks != wanted.tracks:
        t = wanted.tracks
        scene.tracks.set(t.visible, t.max_count, t.trail, t.which, t.truth)


class SplitScenes:
    """Two `SceneView`s, masked | unmasked, locked in time, viewpoint and settings.

    Args:
        left: the masked side's scene.
        right: the unmasked side's scene.
    """

    def __init__(self, left: SceneView, right: SceneView) -> None:
        self.scenes = (left, right)
        self._settings = shared_settings(left)
        self._closed = threading.Event()
        self._camera_lock = threading.Lock()
        # One pass at a time: two passes at once (the watcher and a caller) could each see
        # the other's half-copied settings as a change and copy them back.
        self._sync_lock = threading.Lock()
        for this, other in ((left, right), (right, left)):
            this.on_frame_change(_follow_frame(other))
            this.timeline_controls.playing.on_update(_one_clock(this, other))
            this.server.on_client_connect(self._lock_viewpoint(this, other))
        self._watcher = threading.Thread(
            target=self._watch_settings, name="split-settings", daemon=True
        )
        self._watcher.start()

    def show(self, recon: Reconstruction) -> None:
        """Show a result on both sides, each with its own variants and point source."""
        for scene, side in zip(self.scenes, SIDES, strict=True):
            _choose_side(scene, side, recon)
            scene.show(recon)

    def set_frame(self, frame: int) -> None:
        """Move both sides to a frame."""
        for scene in self.scenes:
            scene.set_frame(frame)

    def close(self) -> None:
        """Stop the settings watcher (the scenes are their owner's to close)."""
        self._closed.set()
        self._watcher.join(timeout=1.0)

    # ------------------------------------------------------------------ locking

    def _watch_settings(self) -> None:
        """Copy a shared setting changed on one side to the other, outside both locks."""
        while not self._closed.wait(SETTINGS_POLL_SECONDS):
            try:
                self.sync_settings()
            except Exception:
                logger.exception("copying the split view's settings failed")

    def sync_settings(self) -> None:
        """One pass of the watcher: per setting, the side that changed it wins."""
        left, right = self.scenes
        with self._sync_lock:
            now = (shared_settings(left), shared_settings(right))
            wanted = merged_settings(self._settings, *now)
            for scene, have in zip(self.scenes, now, strict=True):
                if have != wanted:
                    apply_settings(scene, wanted)
            self._settings = wanted

    def _lock_viewpoint(
        self, this: SceneView, other: SceneView
    ) -> Callable[[viser.ClientHandle], None]:
        """A connect callback: this client's camera moves drive the other side's clients."""

        def connected(client: viser.ClientHandle) -> None:
            @client.camera.on_update
            def moved(camera: viser.CameraHandle) -> None:
                self._copy_viewpoint(camera, other)

        return connected

    def _copy_viewpoint(self, camera: viser.CameraHandle, other: SceneView) -> None:
        with self._camera_lock:
            viewpoint = Viewpoint.of(camera)
            for client in other.server.get_clients().values():
                copy_viewpoint(viewpoint, client)

    def set_playing(self, playing: bool) -> None:
        """Play (or stop) the left side's clock; the right side follows its frames."""
        self.scenes[1].set_playing(False)
        self.scenes[0].set_playing(playing)


@dataclass(frozen=True)
class Viewpoint:
    """Where a browser's camera is: position, the point it orbits, up, vertical fov."""

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov: float

    @classmethod
    def of(cls, camera: viser.CameraHandle) -> Viewpoint:
        return cls(
            np.asarray(camera.position, dtype=np.float64),
            np.asarray(camera.look_at, dtype=np.float64),
            np.asarray(camera.up_direction, dtype=np.float64),
            float(camera.fov),
        )

    def near(self, other: Viewpoint) -> bool:
        """Whether two viewpoints are the same, up to CAMERA_TOLERANCE."""
        return (
            np.allclose(self.position, other.position, atol=CAMERA_TOLERANCE)
            and np.allclose(self.look_at, other.look_at, atol=CAMERA_TOLERANCE)
            and np.allclose(self.up, other.up, atol=CAMERA_TOLERANCE)
            and abs(self.fov - other.fov) < CAMERA_TOLERANCE
        )


def copy_viewpoint(viewpoint: Viewpoint, client: viser.ClientHandle) -> bool:
    """Put a client's camera at a viewpoint unless it is already there (which ends the echo
    of the other side's report); returns whether it moved. A client that has not reported
    its camera yet is left alone."""
    try:
        camera = client.camera
        if Viewpoint.of(camera).near(viewpoint):
            return False
        with client.atomic():
            camera.position = viewpoint.position  # first: setting it drags look_at along
            camera.look_at = viewpoint.look_at
            camera.up_direction = viewpoint.up
            camera.fov = viewpoint.fov
        return True
    except AssertionError:
        return False  # Viser asserts for a client whose camera has not been reported yet


def _choose_side(scene: SceneView, side: Side, recon: Reconstruction) -> None:
    """Draw only this side's variants (and the ground truth), with its point source."""
    for layer in scene.layers:
        if isinstance(layer, CameraLayer):
            for variant in layer.variants:
                visible = variant in side.variants or variant not in SIDED_VARIANTS
                layer.set_variant_visible(variant, visible)
    camera = {"depth_masked": MASKED, "depth_unmasked": UNMASKED}[side.source]
    source: PointSource = side.source if camera in recon.cameras else "points"
    if scene.points.settings.source != source:
        with scene.lock:
            scene.points.settings.source = source  # show() prepares its points


def _follow_frame(other: SceneView) -> Callable[[int], None]:
    def follow(frame: int) -> None:
        if other.frame != frame:
            other.set_frame(frame)

    return follow


def _one_clock(this: SceneView, other: SceneView) -> Callable[[Any], None]:
    """Play pressed on one side: the other side stops its own playback and follows."""

    def pressed(_event: Any) -> None:
        if this.timeline.playing.is_set() and other.timeline.playing.is_set():
            other.set_playing(False)

    return pressed
