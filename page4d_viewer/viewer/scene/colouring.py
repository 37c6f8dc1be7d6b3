"""What colours the points ("colour points by": image, mask, attention) and the probe marker.

`PointLayer` asks `PointColouring` for each bin's colours when it sends a frame and, on its
recolour path, re-sends colours only (never positions) when a bin's `stamp` differs from the
one its colours on screen were made with. The attention mode colours each key frame's points
by the heat of the attention they received (`viewer.inside_views.attention_heat`), one
colour per patch, looked up from the point's pixel.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.mask import DisplayError, heat_colors, patch_index
from page4d_viewer.settings import DEFAULT_COLORMAP
from page4d_viewer.viewer.scene.nodes import overlay_colors

if TYPE_CHECKING:
    import viser

COLOUR_MODES: tuple[str, ...] = ("image", "mask", "attention")
"""Colour the points with their image colour, the mask overlay (the default) or attention."""
DEFAULT_COLOUR_MODE = "mask"
PROBE_NODE = "/probe"
PROBE_COLOR = (255, 0, 255)


@dataclass
class PointColouring:
    """The colouring mode and, for "attention", the heat per key-frame patch.

    Attributes:
        mode: one of COLOUR_MODES.
        heat: (S, h, w) heat in [0, 1] per frame and patch, or None (attention mode then
            shows image colours).
        image_hw: (H, W) pixels of the frames `heat` belongs to.
        colormap: matplotlib colormap of the heat.
        key: names the attention selection; a new key recolours.
    """

    mode: str = DEFAULT_COLOUR_MODE
    heat: np.ndarray | None = None
    image_hw: tuple[int, int] = (1, 1)
    colormap: str = DEFAULT_COLORMAP
    key: Hashable = None
    mask_top: float = 1.0  # the shown clip's result.mask.mask_scale (set by the point layer)

    def set(
        self,
        mode: str,
        heat: np.ndarray | None = None,
        image_hw: tuple[int, int] = (1, 1),
        colormap: str = DEFAULT_COLORMAP,
        key: Hashable = None,
    ) -> None:
        """Choose the mode (and the attention heat); the layer recolours on its next pass.

        Raises:
            DisplayError: an unknown mode, or heat that is not (S, h, w).
        """
        if mode not in COLOUR_MODES:
            raise DisplayError(f"colour points by one of {', '.join(COLOUR_MODES)}, got {mode!r}")
        if heat is not None and np.ndim(heat) != 3:
            raise DisplayError(f"attention heat must be (S, h, w), got {np.shape(heat)}")
        self.mode, self.heat = mode, heat
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.colormap, self.key = colormap, key

    def reset(self) -> None:
        """Back to the default mode, no attention (a new result is shown)."""
        self.set(DEFAULT_COLOUR_MODE)

    def stamp(self, weight: float) -> tuple[Hashable, ...]:
        """What a bin's colours depend on: equal stamps, equal colours."""
        if self.mode == "mask":
            return ("mask", weight, self.mask_top)
        if self.mode == "attention" and self.heat is not None:
            return ("attention", self.key)
        return ("image",)

    def colors(
        self,
        image_colors: np.ndarray,
        probability: np.ndarray,
        pixel_index: np.ndarray | None,
        frame: int,
        weight: float,
    ) -> np.ndarray:
        """(N, 3) uint8 colours of one bin's points.

        Args:
            image_colors: (N, 3) uint8 image colours.
            probability: (N,) dynamic probability.
            pixel_index: (N,) flat pixel index `row * W + col` of each point, or None.
            frame: the frame the points belong to.
            weight: the mask overlay's blend weight of this bin.
        """
        stamp = self.stamp(weight)
        if stamp[0] == "mask":
            return overlay_colors(image_colors, probability, weight, self.mask_top)
        if stamp[0] == "image" or pixel_index is None or self.heat is None:
            return image_colors
        return heat_colors(self.point_heat(pixel_index, frame), self.colormap)

    def point_heat(self, pixel_index: np.ndarray, frame: int) -> np.ndarray:
        """(N,) heat of the patch each point's pixel lies in (attention mode)."""
        if self.heat is None:
            return np.zeros(len(pixel_index), dtype=np.float32)
        height, width = self.image_hw
        grid_h, grid_w = self.heat.shape[1:]
        pixel_index = np.asarray(pixel_index, dtype=np.int64)
        rows = patch_index(pixel_index // width, height, grid_h)
        cols = patch_index(pixel_index % width, width, grid_w)
        return self.heat[frame][rows, cols]


@dataclass
class ProbeMarker:
    """A small sphere at the probed point (`/probe`), moved rather than re-added."""

    handle: viser.IcosphereHandle | None = None
    position: tuple[float, float, float] | None = field(default=None)

    def show(self, server: viser.ViserServer, position: np.ndarray | None, radius: float) -> None:
        """Put the marker at `position` (None: remove it)."""
        if position is None or not np.isfinite(position).all():
            self.remove()
            return
        position = np.asarray(position, dtype=np.float64)
        if self.handle is None:
            self.handle = server.scene.add_icosphere(
                PROBE_NODE, radius=float(radius), color=PROBE_COLOR, position=position,
                cast_shadow=False, receive_shadow=False,
            )  # fmt: skip
        else:
            self.handle.position = position
        self.position = (float(position[0]), float(position[1]), float(position[2]))

    def remove(self) -> None:
        """Remove the marker, if shown."""
        if self.handle is not None:
            self.handle.remove()
        self.handle, self.position = None, None
