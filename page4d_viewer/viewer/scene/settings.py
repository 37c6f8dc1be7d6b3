"""The settings every layer reads: what the Points and Mask overlay controls set.

`PointLayer` owns `PointSettings` and `MaskOverlayLayer` owns `MaskSettings`; the host hands
both to every layer in its `FrameView`, since the display mode decides which frames are on
screen and the mask threshold splits the points and the tracks into static and dynamic.
Nothing here talks to Viser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from page4d_viewer.result import points
from page4d_viewer.settings import (
    DEFAULT_CONF_PERCENTILE,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
    MaskOverlay,
)
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import DisplayMode, PointSource

DEFAULT_TRAIL = 5
DEFAULT_POINT_SIZE = 0.01  # scene units, until a result sets its own (`auto_point_size`)
MAX_DOWNSAMPLE = 8


@dataclass
class PointSettings:
    """The values of the Points controls.

    Attributes:
        mode: which frames' points are drawn (display.DISPLAY_MODES).
        trail: trail length in frames.
        source: one of display.POINT_SOURCES.
        percentile: lowest-confidence percent of points dropped, snapped to steps of
            result.points.CONFIDENCE_STEP.
        point_size: point size in scene units.
        downsample: pixel stride of the points sent.
        downsample_fixed: True once the user picked a stride (no more automatic choice).
    """

    mode: DisplayMode = "current"
    trail: int = DEFAULT_TRAIL
    source: PointSource = "points"
    percentile: float = DEFAULT_CONF_PERCENTILE
    point_size: float = DEFAULT_POINT_SIZE
    downsample: int = 1
    downsample_fixed: bool = False

    @property
    def confidence_bin(self) -> int:
        """First confidence bin shown (result.points.percentile_bin of the percentile)."""
        return points.percentile_bin(self.percentile)


@dataclass
class MaskSettings:
    """The values of the Mask overlay controls.

    Attributes:
        opacity: overlay opacity in [0, 1].
        threshold_bin: the dynamic-probability threshold, as a mask bin.
        overlay: how the overlay draws the mask (settings.MASK_OVERLAYS): every point in
            the heat colour of its probability ("continuous"), or only dynamic points.
    """

    opacity: float = DEFAULT_MASK_OPACITY
    threshold_bin: int = field(
        default_factory=lambda: display.threshold_bin(DEFAULT_MASK_THRESHOLD)
    )
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY

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
