"""Plots of a batch index: masked vs unmasked ATE per clip, and the spread of their difference.

Torch-free and headless (matplotlib's Agg backend); the viewer's Dataset view reuses
:func:`ate_scatter_figure`. Each function returns a Figure; :func:`save_figure` writes it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from page4d_viewer.evaluation.index import RunRow


def _with_both_ates(rows: Sequence[RunRow]) -> list[RunRow]:
    return [row for row in rows if row.ate_masked is not None and row.ate_unmasked is not None]


def ate_scatter_figure(rows: Sequence[RunRow], *, label_worst: int = 5) -> Figure:
    """Masked ATE (y) against unmasked ATE (x), one point per clip, with the diagonal.

    Points above the diagonal are clips where the mask made the cameras worse. The
    ``label_worst`` clips farthest from the diagonal, either way, are named.
    """
    from matplotlib.figure import Figure

    rows = _with_both_ates(rows)
    figure = Figure(figsize=(4.5, 4.5), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    unmasked = np.array([row.ate_unmasked for row in rows], dtype=float)
    masked = np.array([row.ate_masked for row in rows], dtype=float)
    top = float(max(unmasked.max(initial=0.0), masked.max(initial=0.0))) * 1.05 or 1.0
    axes.plot([0, top], [0, top], color="0.6", linewidth=1, linestyle="--", label="equal")
    worse = masked > unmasked
    axes.scatter(unmasked[~worse], masked[~worse], s=14, color="tab:blue", label="mask helps")
    axes.scatter(unmasked[worse], masked[worse], s=14, color="tab:red", label="mask hurts")
    for i in np.argsort(-np.abs(masked - unmasked))[:label_worst]:
        axes.annotate(
            rows[i].clip,
            (unmasked[i], masked[i]),
            fontsize=6,
            xytext=(3, 3),
            textcoords="offset points",
        )
    axes.set(xlim=(0, top), ylim=(0, top), aspect="equal")
    axes.set_xlabel("ATE, unmasked cameras")
    axes.set_ylabel("ATE, masked cameras")
    axes.set_title(f"{len(rows)} clips", fontsize=9)
    axes.legend(fontsize=7, loc="upper left")
    return figure


def ate_difference_histogram(rows: Sequence[RunRow], *, bins: int = 20) -> Figure:
    """Histogram of masked minus unmasked ATE over the clips (right of 0: the mask hurt)."""
    from matplotlib.figure import Figure

    differences = np.array(
        [row.ate_masked - row.ate_unmasked for row in _with_both_ates(rows)], dtype=float
    )
    figure = Figure(figsize=(5, 3.2), dpi=150, layout="constrained")
    axes = figure.add_subplot()
    if differences.size:
        axes.hist(differences, bins=min(bins, max(differences.size, 1)), color="tab:gray")
        axes.axvline(0.0, color="black", linewidth=1)
        axes.axvline(
            float(differences.mean()),
            color="tab:red",
            linewidth=1,
            linestyle="--",
            label=f"mean {differences.mean():+.4f}",
        )
        axes.legend(fontsize=7)
    axes.set_xlabel("ATE masked - ATE unmasked")
    axes.set_ylabel("clips")
    return figure


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """Write a figure as PNG (Agg, no display needed); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png")
    return path


__all__ = ["ate_difference_histogram", "ate_scatter_figure", "save_figure"]
