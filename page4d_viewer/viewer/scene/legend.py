"""The scene's legend: what each colour in the 3-D view means, in one place of its sidebar.

Each layer writes its own part (`Layer.legend`) from the same sources it draws with (camera
colours from `result.cameras.VARIANT_COLORS`, the mask's heat map from `result.mask`, track
colours from `result.tracks`), so the legend cannot drift from the scene; this module joins
the parts, in layer order, into one HTML block.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import viser

EMPTY = "<div>Nothing shown yet.</div>"


def hex_colour(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """'#rrggbb' of an RGB colour (0-255)."""
    red, green, blue = (int(c) for c in rgb)
    return f"#{red:02x}{green:02x}{blue:02x}"


def swatch(rgb: tuple[int, int, int] | np.ndarray, label: str) -> str:
    """A small square of a colour followed by its label (HTML)."""
    return (
        '<span style="display:inline-flex;align-items:center;margin-right:0.8em">'
        f'<span style="display:inline-block;width:0.9em;height:0.9em;border-radius:2px;'
        f'margin-right:0.3em;background:{hex_colour(rgb)}"></span>{html.escape(label)}</span>'
    )


def legend_html(parts: Sequence[str]) -> str:
    """The legend as HTML: the layers' parts in order ("Nothing shown yet." when none)."""
    body = "".join(part for part in parts if part) or EMPTY
    return f'<div class="page4d-legend" style="font-size:0.85em;line-height:1.6">{body}</div>'


class SceneLegend:
    """The sidebar's Legend folder (one HTML block), rewritten when what is shown changes."""

    def __init__(self, server: viser.ViserServer) -> None:
        with server.gui.add_folder("Legend"):
            self._handle = server.gui.add_html(legend_html(()))

    @property
    def html(self) -> str:
        """The legend as shown in the sidebar."""
        return self._handle.content

    def show(self, parts: Sequence[str]) -> None:
        """Describe the layers' parts (a no-op when nothing changed)."""
        content = legend_html(parts)
        if content != self._handle.content:
            self._handle.content = content
