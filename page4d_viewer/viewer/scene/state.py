"""The scene's defaults, the settings its controls change, its send counters and its snapshot.

Nothing here talks to Viser: these are the plain values the layers, the controls and the
timeline share through `SceneView`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from page4d_viewer.result import points
from page4d_viewer.settings import (
    DEFAULT_CONF_PERCENTILE,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
)
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.tracks import TrackState

# Largest number of points the scene sends by default: sets the automatic downsampling.
DEFAULT_MAX_POINTS = 4_000_000
DEFAULT_FPS = 10
DEFAULT_TRAIL = 5
DEFAULT_POINT_SIZE = 0.01  # scene units, until a result sets its own (`auto_point_size`)
MAX_DOWNSAMPLE = 8


@dataclass
class DisplaySettings:
    """What is drawn and how: the values of the Points, Mask overlay and Cameras controls.

    Attributes:
        mode: "current", "trail", "all" or "split".
        trail: trail length in frames.
        source: one of display.POINT_SOURCES.
        percentile: lowest-confidence percent of points dropped, snapped to steps of
            result.points.CONFIDENCE_STEP.
        point_size: point size in scene units.
        downsample: pixel stride of the points sent.
        downsample_fixed: True once the user picked a stride (no more automatic choice).
        opacity: mask overlay opacity in [0, 1].
        threshold_bin: the dynamic-probability threshold, as a mask bin.
        overlay: how the overlay draws the mask (settings.MASK_OVERLAYS): every point in
            the heat colour of its probability ("continuous"), or only dynamic points.
        variant_visible: camera variant -> whether its frusta and trajectory are shown.
    """

    mode: str = "current"
    trail: int = DEFAULT_TRAIL
    source: str = "points"
    percentile: float = DEFAULT_CONF_PERCENTILE
    point_size: float = DEFAULT_POINT_SIZE
    downsample: int = 1
    downsample_fixed: bool = False
    opacity: float = DEFAULT_MASK_OPACITY
    threshold_bin: int = field(
        default_factory=lambda: display.threshold_bin(DEFAULT_MASK_THRESHOLD)
    )
    overlay: str = DEFAULT_MASK_OVERLAY
    variant_visible: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(display.VARIANTS, True)
    )

    @property
    def confidence_bin(self) -> int:
        """First confidence bin shown (result.points.percentile_bin of the percentile)."""
        return points.percentile_bin(self.percentile)

    @property
    def threshold(self) -> float:
        """The dynamic-probability threshold in [0, 1], as applied (snapped to a bin edge)."""
        return self.threshold_bin / display.MASK_BINS

    def is_dynamic(self, bin_id: int, has_mask: bool) -> bool:
        """Whether points of a mask bin count as dynamic (never without a mask)."""
        return has_mask and bin_id >= self.threshold_bin

    def bin_weight(self, bin_id: int, has_mask: bool) -> float:
        """The overlay blend weight of a mask bin's colours: the opacity for dynamic bins, or
        for every bin of a mask drawn "continuous"."""
        if has_mask and self.overlay == "continuous":
            return self.opacity
        return self.opacity if self.is_dynamic(bin_id, has_mask) else 0.0


@dataclass
class SendCounters:
    """What the scene sent since the last `show()` (tests and benchmarks read them).

    Attributes:
        geometry: per frame, how many times its points (positions) were sent, over all
            point sources and strides.
        colors: per frame, how many times its colours alone were re-sent.
        bytes: bytes of the arrays handed to Viser (see `SceneState.bytes_sent`).
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
        frames_sent: how many frames' points have been sent (reaches S when streaming ends).
        streaming: whether frames are still being sent in the background.
        frame_nodes: scene node of each sent frame's points, `/frames/t{i:04d}/points`.
        visible_frames: frames with at least some points on screen.
        visible_nodes: point nodes (per-bin leaves) on screen.
        visible_camera_nodes: frustum nodes on screen (hidden variants excluded).
        point_counts: points sent per frame, length S (0 for frames not sent yet).
        visible_points: points on screen in total.
        visible_dynamic_points: of those, points in dynamic bins (at or above the threshold).
        geometry_sends: per frame, how many times its points (positions) were sent.
        color_sends: per frame, how many times its colours alone were re-sent.
        bytes_sent: bytes of the arrays handed to Viser since `show()`: points (float16
            positions, uint8 colours), re-sent colours and the frustum thumbnails (uint8,
            before Viser compresses them to JPEG).
        display_mode: "current", "trail", "all" or "split".
        trail: trail length in frames.
        point_source: "points", "depth_masked" or "depth_unmasked".
        confidence_percentile: lowest-confidence percent of points dropped (snapped to
            steps of result.points.CONFIDENCE_STEP, as applied).
        point_size: point size in scene units.
        downsample: pixel stride of the points sent.
        mask_opacity: overlay opacity in [0, 1].
        mask_threshold: dynamic-probability threshold in [0, 1], as applied (snapped).
        mask_overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).
        mask_top: the dynamic probability drawn in the heat map's last colour (the clip's
            result.mask.mask_scale; 1 without a mask).
        has_mask: whether the Reconstruction has a dynamic mask score.
        variants: camera variants in the scene.
        variant_visible: variant -> whether its frusta and trajectory are shown.
        playing: whether the timeline is playing.
        fps: playback speed in frames per second.
        loop: whether playback wraps around at the end.
        comparison: title of the second run laid over this one ("B"), or None.
        comparison_variants: the second run's camera variants in the scene (`/compare/...`).
        comparison_visible: whether the comparison is shown (False when there is none).
        comparison_camera_nodes: the second run's frustum nodes on screen.
        point_colouring: what colours the points: "image", "mask" or "attention".
        probe_point: where the probe marker is (world), or None when nothing is probed.
        tracks: what is drawn of the point tracks, and the Tracks controls' values.
        click_mode: what a click in the scene does: "probe" or "track" (seed a track).
    """

    num_frames: int
    frame: int
    frames_sent: int
    streaming: bool
    frame_nodes: tuple[str, ...]
    visible_frames: tuple[int, ...]
    visible_nodes: tuple[str, ...]
    visible_camera_nodes: tuple[str, ...]
    point_counts: tuple[int, ...]
    visible_points: int
    visible_dynamic_points: int
    geometry_sends: tuple[int, ...]
    color_sends: tuple[int, ...]
    bytes_sent: int
    display_mode: str
    trail: int
    point_source: str
    confidence_percentile: float
    point_size: float
    downsample: int
    mask_opacity: float
    mask_threshold: float
    has_mask: bool
    variants: tuple[str, ...]
    variant_visible: dict[str, bool]
    playing: bool
    fps: float
    loop: bool
    comparison: str | None = None
    comparison_variants: tuple[str, ...] = ()
    comparison_visible: bool = False
    comparison_camera_nodes: tuple[str, ...] = ()
    point_colouring: str = "mask"
    probe_point: tuple[float, float, float] | None = None
    tracks: TrackState = field(default_factory=TrackState)
    click_mode: str = "probe"
    mask_overlay: str = DEFAULT_MASK_OVERLAY
    mask_top: float = 1.0
