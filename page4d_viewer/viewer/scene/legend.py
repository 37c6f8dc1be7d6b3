"""The scene's legend: what each colour in the 3-D view means, in one place of its sidebar.

The camera colours come from `result.cameras.VARIANT_COLORS` and their names from
`display.VARIANT_LABELS`, the track colours from `result.tracks.track_colors`, and the mask
scale from `result.mask` (`heat_colors` over [0, the clip's `mask_scale`]): the legend reads
the same sources the layers draw with, so it cannot drift from them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.tracks import track_colors
from page4d_viewer.settings import MASK_SCALE_PERCENTILE
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.tracks import TRUTH_COLOR

if TYPE_CHECKING:
    import viser

GRADIENT_STOPS = 11


@dataclass(frozen=True)
class LegendContent:
    """What the scene shows, as far as its colours go.

    Attributes:
        variants: camera variants drawn (frusta and trajectories).
        mask_top: dynamic probability at the heat map's last colour, or None without a mask.
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).
        threshold: the threshold applied, in [0, 1].
        tracks: whether the result has point tracks.
        truth_tracks: whether it has ground-truth tracks.
        comparison: the camera variants of a second run ("B") laid over the result.
    """

    variants: tuple[str, ...] = ()
    mask_top: float | None = None
    overlay: str = "continuous"
    threshold: float = 0.5
    tracks: bool = False
    truth_tracks: bool = False
    comparison: tuple[str, ...] = ()


def _hex(rgb: tuple[int, int, int] | np.ndarray) -> str:
    red, green, blue = (int(c) for c in rgb)
    return f"#{red:02x}{green:02x}{blue:02x}"


def _swatch(rgb: tuple[int, int, int] | np.ndarray, label: str) -> str:
    return (
        '<span style="display:inline-flex;align-items:center;margin-right:0.8em">'
        f'<span style="display:inline-block;width:0.9em;height:0.9em;border-radius:2px;'
        f'margin-right:0.3em;background:{_hex(rgb)}"></span>{html.escape(label)}</span>'
    )


def mask_gradient_css(top: float) -> str:
    """A CSS gradient of the mask's heat map from probability 0 to `top`."""
    stops = display.heat_colors(np.linspace(0.0, top, GRADIENT_STOPS), top=top)
    return "linear-gradient(to right, " + ", ".join(_hex(c) for c in stops) + ")"


def legend_html(content: LegendContent) -> str:
    """The legend as HTML: camera swatches, the mask's colour bar with its scale, tracks."""
    parts = ['<div class="page4d-legend" style="font-size:0.85em;line-height:1.6">']
    if content.variants:
        swatches = "".join(
            _swatch(display.VARIANT_COLORS[name], display.VARIANT_LABELS[name])
            for name in content.variants
        )
        parts.append(f"<div><b>Cameras</b><br>{swatches}</div>")
    if content.comparison:
        swatches = "".join(
            _swatch(
                display.comparison_color(name),
                display.COMPARISON_PREFIX + display.VARIANT_LABELS[name],
            )
            for name in content.comparison
        )
        parts.append(f"<div><b>B</b>, the run compared (lighter, thinner)<br>{swatches}</div>")
    if content.mask_top is not None:
        top = content.mask_top
        if content.overlay == "continuous":
            how = "every point is tinted by its value"
        else:
            how = f"only points at or above {content.threshold:.2f} are tinted"
        parts.append(
            "<div><b>Mask: dynamic probability</b> (the model's values; " + how + ")"
            f'<div style="height:0.8em;border-radius:2px;background:{mask_gradient_css(top)}">'
            "</div>"
            '<div style="display:flex;justify-content:space-between">'
            f"<span>0</span><span>{top / 2:.2f}</span><span>&ge; {top:.2f}</span></div>"
            f"<div>Scale tops out at the clip's {MASK_SCALE_PERCENTILE:g}th percentile, "
            f"{top:.2f}.</div></div>"
        )
    if content.tracks:
        moving, static = track_colors(np.array([True, False]))
        swatches = _swatch(moving, "moving track") + _swatch(static, "static track")
        if content.truth_tracks:
            swatches += _swatch(TRUTH_COLOR, "ground truth")
        parts.append(f"<div><b>Tracks</b> (warm: moving, cool: static)<br>{swatches}</div>")
    if len(parts) == 1:
        parts.append("<div>Nothing shown yet.</div>")
    parts.append("</div>")
    return "".join(parts)


class SceneLegend:
    """The sidebar's Legend folder (one HTML block), rewritten when what is shown changes."""

    def __init__(self, server: viser.ViserServer) -> None:
        with server.gui.add_folder("Legend"):
            self._handle = server.gui.add_html(legend_html(LegendContent()))
        self.content = LegendContent()

    @property
    def html(self) -> str:
        """The legend as shown in the sidebar."""
        return self._handle.content

    def show(self, content: LegendContent) -> None:
        """Describe `content` (a no-op when nothing changed)."""
        if content != self.content:
            self.content = content
            self._handle.content = legend_html(content)
