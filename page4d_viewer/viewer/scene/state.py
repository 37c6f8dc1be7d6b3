"""The scene's send counters and its snapshot, `SceneState`: the host's own fields (timeline,
stream) plus one slice per layer, keyed by the layer's name.

Nothing here talks to Viser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from page4d_viewer.viewer.scene.cameras import CameraState
from page4d_viewer.viewer.scene.comparison import ComparisonState
from page4d_viewer.viewer.scene.mask_overlay import MaskState
from page4d_viewer.viewer.scene.points import PointsState
from page4d_viewer.viewer.scene.tracks import TrackState

if TYPE_CHECKING:
    from page4d_viewer.viewer.scene.clicks import ClickMode


@dataclass
class SendCounters:
    """What the scene sent since the last `show()` (tests and benchmarks read them).

    Attributes:
        geometry: per frame, how many times its points (positions) were sent, over all
            point sources and strides.
        colors: per frame, how many times its colours alone were re-sent.
        bytes: bytes of the arrays handed to Viser: points (float16 positions, uint8
            colours), re-sent colours and the frustum thumbnails (uint8, before Viser
            compresses them to JPEG).
    """

    geometry: list[int] = field(default_factory=list)
    colors: list[int] = field(default_factory=list)
    bytes: int = 0

    def reset(self, num_frames: int) -> None:
        """Start counting afresh for a clip of `num_frames` frames."""
        self.geometry = [0] * num_frames
        self.colors = [0] * num_frames
        self.bytes = 0


@dataclass(frozen=True)
class SceneState:
    """A snapshot of what the scene holds and shows (for tests, benchmarks and the panel).

    Attributes:
        num_frames: S of the Reconstruction shown (0 when empty).
        frame: the current frame.
        streaming: whether frames are still being sent in the background.
        playing: whether the timeline is playing.
        fps: playback speed in frames per second.
        loop: whether playback wraps around at the end.
        click_mode: what a click in the scene does: "probe" or "track" (seed a track).
        geometry_sends: per frame, how many times its points (positions) were sent.
        color_sends: per frame, how many times its colours alone were re-sent.
        bytes_sent: bytes handed to Viser since `show()` (`SendCounters.bytes`).
        layers: layer name -> that layer's slice (`Layer.state`), in layer order.
        loading: what the viewers are told is loading (`SceneView.set_loading`), or None.
    """

    num_frames: int
    frame: int
    streaming: bool
    playing: bool
    fps: float
    loop: bool
    click_mode: ClickMode
    geometry_sends: tuple[int, ...]
    color_sends: tuple[int, ...]
    bytes_sent: int
    layers: Mapping[str, Any]
    loading: str | None = None

    @property
    def points(self) -> PointsState:
        """The points layer's slice."""
        return self.layers["points"]

    @property
    def mask(self) -> MaskState:
        """The mask overlay's slice."""
        return self.layers["mask"]

    @property
    def comparison(self) -> ComparisonState:
        """The compared run's slice."""
        return self.layers["comparison"]

    @property
    def tracks(self) -> TrackState:
        """The point tracks' slice."""
        return self.layers["tracks"]

    @property
    def cameras(self) -> CameraState:
        """Every camera layer's slices merged: the variants in the scene (in layer order),
        their visibility, and the frustum nodes on screen."""
        slices = [s for s in self.layers.values() if isinstance(s, CameraState)]
        visible: dict[str, bool] = {}
        for camera_slice in slices:
            visible.update(camera_slice.variant_visible or {})
        return CameraState(
            variants=tuple(v for s in slices for v in s.variants),
            variant_visible=visible,
            visible_nodes=tuple(sorted(n for s in slices for n in s.visible_nodes)),
        )
