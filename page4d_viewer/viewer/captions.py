"""Captions under the panel's 2-D pictures: what the picture is, which frame, and a colour bar.

A caption is a strip appended *below* a picture, so a click on the picture still lands on the
same picture pixel (clicks on the strip clamp to the bottom row). The bar's colours come from
`result.mask.heat_colors`, the function that coloured the picture, over the same range, and
its tick labels are the picture's own values (never rescaled): what the bar says is what the
model produced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

from page4d_viewer.result.mask import heat_colors
from page4d_viewer.settings import DEFAULT_COLORMAP

MIN_FONT_SIZE = 14  # pixels
WIDTH_PER_FONT_PIXEL = 24  # the text grows with the picture: the panel shrinks both alike
MARGIN = 8  # pixels left and right of the bar
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)


@dataclass(frozen=True)
class ColourBar:
    """How a picture's colours read as values.

    Attributes:
        colormap: the matplotlib colormap the picture was drawn with.
        low: the value at the first colour.
        high: the value at the last colour (values beyond it take that colour).
        log: the colours are spaced by log(value) (ticks still show values).
        above: write ">=" before the top tick (values above `high` take the last colour).
        note: a few words on the scale (e.g. where `high` comes from), under the ticks.
    """

    colormap: str = DEFAULT_COLORMAP
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    above: bool = False
    note: str = ""

    def tick_values(self) -> list[float]:
        """The three values labelled: both ends and the middle colour's value."""
        if self.log and self.low > 0 and self.high > 0:
            middle = math.exp((math.log(self.low) + math.log(self.high)) / 2)
        else:
            middle = (self.low + self.high) / 2
        return [self.low, middle, self.high]


def format_value(value: float) -> str:
    """A tick label: 3 significant digits, no exponent for everyday magnitudes."""
    if not math.isfinite(value):
        return "?"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.3g}"


@lru_cache(maxsize=4)
def _font(size: int):  # noqa: ANN202  (PIL's font types differ by build)
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


# Characters the bundled font draws as an empty box, and what it draws instead.
_PLAIN: Final = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "x"})


def plain_text(text: str) -> str:
    """`text` in characters the bundled font has (a minus sign becomes "-")."""
    return text.translate(_PLAIN)


def caption_strip(width: int, title: str, bar: ColourBar | None = None) -> np.ndarray:
    """A white strip `width` pixels wide: the title, then (optionally) a colour bar with ticks.

    Args:
        width: the picture's width in pixels.
        title: one line, e.g. "frame 3 · depth".
        bar: the colour bar, or None for a title only.

    Returns:
        (h, width, 3) uint8.
    """
    from PIL import Image, ImageDraw

    size = max(MIN_FONT_SIZE, int(width) // WIDTH_PER_FONT_PIXEL)
    font = _font(size)
    line, bar_height = size + 6, size
    notes = 1 if bar is not None and bar.note else 0
    height = line + (bar_height + line * (1 + notes) + 4 if bar is not None else 0)
    strip = Image.new("RGB", (int(width), height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    draw.text((MARGIN, 3), plain_text(title), fill=INK, font=font)
    if bar is not None:
        inner = max(int(width) - 2 * MARGIN, 2)
        colours = heat_colors(np.linspace(0.0, 1.0, inner), bar.colormap)
        gradient = np.broadcast_to(colours[None], (bar_height, inner, 3))
        strip.paste(Image.fromarray(np.ascontiguousarray(gradient)), (MARGIN, line))
        labels = [format_value(value) for value in bar.tick_values()]
        if bar.above:
            labels[-1] = ">= " + labels[-1]  # the bundled font has no "≥"
        top = line + bar_height + 2
        anchors = (("la", MARGIN), ("ma", MARGIN + inner // 2), ("ra", MARGIN + inner))
        for label, (anchor, x) in zip(labels, anchors, strict=True):
            draw.text((x, top), label, fill=INK, font=font, anchor=anchor)
        if bar.note:
            draw.text((MARGIN, top + line), plain_text(bar.note), fill=INK, font=font)
    return np.asarray(strip)


def captioned(picture: np.ndarray, title: str, bar: ColourBar | None = None) -> np.ndarray:
    """`picture` with its caption strip below it (the picture's pixels keep their place).

    Args:
        picture: (H, W, 3) uint8.
        title: the caption's first line.
        bar: the colour bar that reads the picture's colours, or None.

    Returns:
        (H + h, W, 3) uint8.
    """
    strip = caption_strip(picture.shape[1], title, bar)
    return np.concatenate([np.asarray(picture, dtype=np.uint8), strip], axis=0)
