"""The mask overlay layer: how the learned dynamic mask tints the points, and its legend.

It draws no node of its own: its settings (`MaskSettings`: opacity, threshold, continuous or
thresholded) reach the points and the tracks through the host's `FrameView`, and a change
re-sends the colours of the frames on screen only. The legend's colour bar reads the same
heat map (`result.mask.heat_colors` over [0, the clip's `mask_scale`]) the points are drawn
with, so it cannot drift from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from page4d_viewer.settings import (
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
    MASK_OVERLAYS,
    MASK_SCALE_PERCENTILE,
    MaskOverlay,
)
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.controls import SettingsControls
from page4d_viewer.viewer.scene.layer import FrameView, SceneHost, SceneLayer
from page4d_viewer.viewer.scene.legend import hex_colour
from page4d_viewer.viewer.scene.settings import MaskSettings

if TYPE_CHECKING:
    import viser

GRADIENT_STOPS = 11


@dataclass(frozen=True)
class MaskState:
    """What the mask overlay applies (its slice of `SceneState`).

    Attributes:
        has_mask: whether the result shown has a dynamic mask.
        opacity: overlay opacity in [0, 1].
        threshold: dynamic-probability threshold in [0, 1], as applied (snapped).
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).
        top: the dynamic probability drawn in the heat map's last colour (the clip's
            result.mask.mask_scale; 1 without a mask).
    """

    has_mask: bool = False
    opacity: float = DEFAULT_MASK_OPACITY
    threshold: float = DEFAULT_MASK_THRESHOLD
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY
    top: float = 1.0


@dataclass
class MaskControls(SettingsControls):
    """The Mask overlay folder: the mask overlay's settings (`MaskSettings`)."""

    overlay: viser.GuiDropdownHandle[MaskOverlay]
    opacity: viser.GuiSliderHandle[float]
    threshold: viser.GuiSliderHandle[float]


def mask_gradient_css(top: float) -> str:
    """A CSS gradient of the mask's heat map from probability 0 to `top`."""
    stops = display.heat_colors(np.linspace(0.0, top, GRADIENT_STOPS), top=top)
    return "linear-gradient(to right, " + ", ".join(hex_colour(c) for c in stops) + ")"


def mask_legend_html(top: float, overlay: str, threshold: float) -> str:
    """The legend's colour bar of the dynamic probability, with its scale."""
    if overlay == "continuous":
        how = "every point is tinted by its value"
    else:
        how = f"only points at or above {threshold:.2f} are tinted"
    return (
        "<div><b>Mask: dynamic probability</b> (the model's values; " + how + ")"
        f'<div style="height:0.8em;border-radius:2px;background:{mask_gradient_css(top)}">'
        "</div>"
        '<div style="display:flex;justify-content:space-between">'
        f"<span>0</span><span>{top / 2:.2f}</span><span>&ge; {top:.2f}</span></div>"
        f"<div>Scale tops out at the clip's {MASK_SCALE_PERCENTILE:g}th percentile, "
        f"{top:.2f}.</div></div>"
    )


class MaskOverlayLayer(SceneLayer):
    """The Mask overlay controls and settings (see the module docstring)."""

    name = "mask"

    def __init__(self, host: SceneHost) -> None:
        super().__init__(host)
        self.settings = MaskSettings()
        self.controls: MaskControls | None = None

    def add_controls(self) -> None:
        gui, writer = self.host.server.gui, self.host.writer
        with gui.add_folder("Mask overlay"):
            overlay = gui.add_dropdown("Draw", MASK_OVERLAYS, initial_value=DEFAULT_MASK_OVERLAY)
            opacity = gui.add_slider(
                "Opacity", min=0.0, max=1.0, step=0.05, initial_value=DEFAULT_MASK_OPACITY
            )
            threshold = gui.add_slider(
                "Threshold", min=0.0, max=1.0, step=1.0 / display.MASK_BINS,
                initial_value=DEFAULT_MASK_THRESHOLD,
            )  # fmt: skip
        self.controls = MaskControls(overlay, opacity, threshold)

        def apply() -> None:
            self.set_overlay(float(opacity.value), float(threshold.value), str(overlay.value))

        for handle in self.controls.handles():
            writer.bind(handle, apply, self._refresh_controls)

    def sync_controls(self, view: FrameView) -> None:
        if self.controls is not None:
            self.controls.show(self.host.writer, self.settings, enabled=view.has_mask)

    def legend(self, view: FrameView) -> str:
        if view.clip is None or not view.has_mask:
            return ""
        return mask_legend_html(view.clip.mask_top, self.settings.overlay, self.settings.threshold)

    def state(self, view: FrameView) -> MaskState:
        settings = self.settings
        return MaskState(
            has_mask=view.has_mask,
            opacity=settings.opacity,
            threshold=settings.threshold,
            overlay=settings.overlay,
            top=1.0 if view.clip is None else view.clip.mask_top,
        )

    def set_overlay(self, opacity: float, threshold: float, overlay: str | None = None) -> None:
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
        settings = self.settings
        with self.host.lock, self.host.server.atomic():
            settings.opacity = float(opacity)
            settings.threshold_bin = display.threshold_bin(threshold)
            if overlay is not None:
                settings.overlay = cast("MaskOverlay", overlay)  # checked just above
            self.sync_controls(self.host.view())
            self.host.redraw()

    def _refresh_controls(self) -> None:
        with self.host.lock:
            self.sync_controls(self.host.view())
