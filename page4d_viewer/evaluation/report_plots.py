"""Plots of a batch index: masked vs unmasked ATE per clip, and the spread of their difference.

Each plot covers the camera head's cameras and, where the index has them, the cameras solved
from the network's own depth and matches (:data:`GEOMETRY_ATES`).

Torch-free and headless (matplotlib's Agg backend); the viewer's Dataset view reuses
:func:`ate_scatter_figure`. Each function returns a Figure; :func:`save_figure` writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from page4d_viewer.evaluation.index import RunRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class AtePair:
    """A masked/unmasked pair of camera estimates whose ATEs a plot sets against each other.

    Attributes:
        masked: the RunRow attribute of the masked variant's ATE.
        unmasked: the RunRow attribute of the unmasked variant's ATE.
        name: what the pair is, in the plots' words.
    """

    masked: str
    unmasked: str
    name: str

    def values(self, rows: Sequence[RunRow]) -> tuple[list[RunRow], np.ndarray, np.ndarray]:
        """(rows with both ATEs, their masked ATEs, their unmasked ATEs)."""
        kept = [
            row
            for row in rows
            if getattr(row, self.masked) is not None and getattr(row, self.unmasked) is not None
        ]
        masked = np.array([getattr(row, self.masked) for row in kept], dtype=float)
        unmasked = np.array([getattr(row, self.unmasked) for row in kept], dtype=float)
        return kept, masked, unmasked


HEAD_ATES = AtePair("ate_masked", "ate_unmasked", "camera head")
GEOMETRY_ATES = AtePair("ate_geometry_masked", "ate_geometry_unmasked", "geometry")
"""The camera head's cameras, and those solved from the network's depth and matches."""

# Outline colour of each pair in the histogram, in the order the pairs are given.
_PAIR_COLOURS = ("tab:gray", "tab:purple")


def ate_axis_limit(rows: Sequence[RunRow], pairs: Sequence[AtePair] = (HEAD_ATES,)) -> float:
    """One axis limit for the ATE scatters of ``pairs``, so plots side by side share a scale."""
    largest = 0.0
    for pair in pairs:
        _, masked, unmasked = pair.values(rows)
        largest = max(largest, float(masked.max(initial=0.0)), float(unmasked.max(initial=0.0)))
    return largest * 1.05 or 1.0


def ate_scatter_figure(
    rows: Sequence[RunRow],
    *,
    pair: AtePair = HEAD_ATES,
    label_worst: int = 5,
    limit: float | None = None,
) -> Figure:
    """Masked ATE (y) against unmasked ATE (x), one point per clip, with the diagonal.

    Points above the diagonal are clips where the mask made the cameras worse. The
    ``label_worst`` clips farthest from the diagonal, either way, are named.

    Args:
        rows: index rows; those without both ATEs of ``pair`` are left out.
        pair: which cameras: the camera head's (default) or the geometric ones.
        label_worst: how many clips to name.
        limit: both axes' upper limit; None fits these rows (see :func:`ate_axis_limit`).
    """
    kept, masked, unmasked = pair.values(rows)
    top = ate_axis_limit(rows, (pair,)) if limit is None else limit
    figure = Figure(figsize=(4.5, 4.5), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    axes.plot([0, top], [0, top], color="0.6", linewidth=1, linestyle="--", label="equal")
    worse = masked > unmasked
    axes.scatter(unmasked[~worse], masked[~worse], s=14, color="tab:blue", label="mask helps")
    axes.scatter(unmasked[worse], masked[worse], s=14, color="tab:red", label="mask hurts")
    for i in np.argsort(-np.abs(masked - unmasked))[:label_worst]:
        _label_point(axes, kept[i].clip, float(unmasked[i]), float(masked[i]), top)
    axes.set(xlim=(0, top), ylim=(0, top), aspect="equal")
    axes.set_xlabel(f"ATE, {pair.name}, unmasked")
    axes.set_ylabel(f"ATE, {pair.name}, masked")
    axes.set_title(f"{pair.name}: {len(kept)} clips", fontsize=9)
    axes.legend(fontsize=7, loc="best")
    return figure


def _label_point(axes: Axes, text: str, x: float, y: float, top: float) -> None:
    # A name written right of (or above) a point near the right (top) edge would reach past
    # the axes, and the constrained layout would shrink the whole plot to make room for it:
    # write it on the side facing the middle instead.
    right, upper = x > top / 2, y > top / 2
    axes.annotate(
        text,
        (x, y),
        fontsize=6,
        xytext=(-3 if right else 3, -3 if upper else 3),
        textcoords="offset points",
        horizontalalignment="right" if right else "left",
        verticalalignment="top" if upper else "bottom",
    )


def ate_difference_histogram(
    rows: Sequence[RunRow],
    *,
    bins: int = 20,
    pairs: Sequence[AtePair] = (HEAD_ATES, GEOMETRY_ATES),
) -> Figure:
    """Histogram of masked minus unmasked ATE over the clips (right of 0: the mask hurt).

    One outline per pair with any clip (the camera head's, the geometric cameras'), on shared
    bins so their spreads compare; the y axis counts clips in whole numbers.
    """
    differences: dict[AtePair, np.ndarray] = {}
    for pair in pairs:
        _, masked, unmasked = pair.values(rows)
        if masked.size:
            differences[pair] = masked - unmasked
    figure = Figure(figsize=(5, 3.2), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    if differences:
        everything = np.concatenate(list(differences.values()))
        edges = np.histogram_bin_edges(everything, bins=min(bins, everything.size))
        for (pair, values), colour in zip(differences.items(), _PAIR_COLOURS, strict=False):
            label = f"{pair.name}: {values.size} clips, mean {values.mean():+.4f}"
            axes.hist(
                values,
                bins=edges.tolist(),
                histtype="step",
                linewidth=1.5,
                color=colour,
                label=label,
            )
            axes.axvline(float(values.mean()), color=colour, linewidth=1, linestyle="--")
        axes.axvline(0.0, color="black", linewidth=1)
        # Above the plot: inside, it would hide the tallest bars, which sit near 0.
        figure.legend(fontsize=7, loc="outside upper center", ncols=len(differences))
    # Counts of clips: a tick at 0.5 clips would be meaningless.
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("ATE masked - ATE unmasked")
    axes.set_ylabel("clips")
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure as PNG (Agg, no display needed); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png")
    return path


__all__ = [
    "GEOMETRY_ATES",
    "HEAD_ATES",
    "AtePair",
    "ate_axis_limit",
    "ate_difference_histogram",
    "ate_scatter_figure",
    "save_figure",
]
