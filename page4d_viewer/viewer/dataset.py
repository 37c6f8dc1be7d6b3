"""The Dataset view without Gradio: a batch index as a sorted, filtered table, and its runs.

`page4d-viewer batch` writes `DIR/index.sqlite` (see `evaluation.index`); the panel's Dataset
tab lists it here (`list_table`, sortable by the camera head's and the geometric cameras' ATE
and by how far the two disagree), shows their masked-vs-unmasked ATE scatters (`ate_scatters`,
drawn by `evaluation.report_plots`) and opens a row's result through the
controller's "open a result" path (`open_row`), so the status line, 2-D panels, plots and
downloads follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.index import (
    ATE_DIFFERENCE,
    GEOMETRY_ATE_DIFFERENCE,
    INDEX_NAME,
    RunIndexError,
    RunRow,
    get_run,
    list_runs,
)
from page4d_viewer.evaluation.report_plots import (
    GEOMETRY_ATES,
    HEAD_ATES,
    ate_axis_limit,
    ate_scatter_figure,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.figure import Figure

    from page4d_viewer.viewer.comparison import Comparer, SecondRun
    from page4d_viewer.viewer.controller import Shown, ViewerController
    from page4d_viewer.viewer.paths import DataRoots

HEADERS = [
    "#", "clip", "checkpoint", "α", "frames", "ATE masked", "ATE unmasked",
    "ATE masked − unmasked", "ATE geometry masked", "ATE geometry unmasked",
    "ATE geometry masked − unmasked", "head vs geometry (deg)", "head vs geometry (path)",
    "RPE masked", "AbsRel", "mask AP", "seconds", "status",
]  # fmt: skip
"""Columns of the table; "#" is the row's place in the list (a click finds it by this).
"head vs geometry" is how far the camera head's masked cameras are from the geometric masked
ones: the mean rotation angle, and the aligned path's distance as a share of the geometric
path's spread (see `evaluation.disagreement`)."""

SORT_OPTIONS: dict[str, str] = {
    "ATE masked − unmasked": ATE_DIFFERENCE,
    "ATE masked": "ate_masked",
    "ATE unmasked": "ate_unmasked",
    "ATE geometry masked − unmasked": GEOMETRY_ATE_DIFFERENCE,
    "ATE geometry masked": "ate_geometry_masked",
    "ATE geometry unmasked": "ate_geometry_unmasked",
    "head vs geometry rotation": "head_geometry_rot_deg",
    "head vs geometry path": "head_geometry_trans",
    "RPE masked": "rpe_t_masked",
    "AbsRel": "abs_rel",
    "mask AP": "mask_ap",
    "clip": "clip",
    "checkpoint": "checkpoint_name",
    "mask strength": "mask_strength",
    "frames": "frames",
    "seconds": "seconds",
    "status": "status",
}
"""Sort choices of the panel: label -> `evaluation.index.list_runs` sort key."""
DEFAULT_SORT = "ATE masked − unmasked"

RowKey = tuple[str, str, str]
"""(clip, checkpoint, settings_hash): what identifies an index row."""


@dataclass(frozen=True)
class DatasetTable:
    """An index's rows as listed: sorted and filtered as asked.

    Attributes:
        index: The index file.
        rows: The rows, in table order.
    """

    index: Path
    rows: list[RunRow]

    def table(self) -> list[list[str | int]]:
        """The rows as `HEADERS` columns (empty cells where a metric is unknown)."""
        return [
            [
                position,
                row.clip,
                row.checkpoint_name,
                _number(row.mask_strength, "g"),
                "" if row.frames is None else row.frames,
                _number(row.ate_masked),
                _number(row.ate_unmasked),
                _number(row.ate_difference, "+.4f"),
                _number(row.ate_geometry_masked),
                _number(row.ate_geometry_unmasked),
                _number(row.geometry_ate_difference, "+.4f"),
                _number(row.head_geometry_rot_deg, ".2f"),
                _number(row.head_geometry_trans, ".3f"),
                _number(row.rpe_t_masked),
                _number(row.abs_rel),
                _number(row.mask_ap, ".3f"),
                _number(row.seconds, ".1f"),
                row.status,
            ]  # fmt: skip
            for position, row in enumerate(self.rows)
        ]

    def row_keys(self) -> list[RowKey]:
        """Each row's key, in table order."""
        return [row.key for row in self.rows]

    def row_choices(self) -> list[tuple[str, str]]:
        """(label, encoded key) of each row with a result, for the panel's drop-downs."""
        return [(row_label(row), encode_key(row.key)) for row in self.rows if row.ok]


def ate_scatters(rows: Sequence[RunRow]) -> tuple[Figure, Figure]:
    """The camera head's and the geometric cameras' masked-vs-unmasked ATE scatters of the
    listed rows, on one scale so the two compare at a glance."""

    limit = ate_axis_limit(rows, (HEAD_ATES, GEOMETRY_ATES))
    return (
        ate_scatter_figure(rows, pair=HEAD_ATES, limit=limit),
        ate_scatter_figure(rows, pair=GEOMETRY_ATES, limit=limit),
    )


def resolve_index(data_roots: DataRoots, text: str) -> Path:
    """The index file of a typed path (a batch folder or its index.sqlite) in the data roots.

    Raises:
        PathNotAllowedError: empty, outside the data roots, or missing.
        RunIndexError: no index there, or not an index.
    """
    return index_file(data_roots.resolve(text))


def index_file(path: str | Path) -> Path:
    """The index of a batch folder (or the index file itself), checked to be readable.

    Raises:
        RunIndexError: no index there, or not an index.
    """
    path = Path(path)
    list_runs(path)  # reads it once: a folder without an index or a broken file fails here
    return path / INDEX_NAME if path.is_dir() else path


def list_table(
    index: Path, sort_label: str = DEFAULT_SORT, descending: bool = True, filter_text: str = ""
) -> DatasetTable:
    """The index's rows sorted by a `SORT_OPTIONS` label and filtered by text.

    Raises:
        RunIndexError: the index cannot be read, or an unknown sort label.
    """
    sort_by = SORT_OPTIONS.get(sort_label)
    if sort_by is None:
        raise RunIndexError(f"cannot sort by {sort_label!r}; use one of {', '.join(SORT_OPTIONS)}")
    rows = list_runs(index, sort_by=sort_by, descending=descending, filter_text=filter_text)
    return DatasetTable(index, rows)


def row_result_file(index: Path, row: RunRow) -> Path:
    """The result file of a row, which must lie in the index's folder.

    Raises:
        Page4DError: the run failed, its file is missing, or its path leaves the folder.
    """
    if not row.ok:
        reason = " ".join((row.error or "no reason recorded").split())
        raise Page4DError(f"{row.clip} failed in the batch, there is no result: {reason}")
    path = row.result_file(index)
    folder = index.parent.resolve()
    if path is None or not path.resolve().is_relative_to(folder):
        raise Page4DError(f"the index names no result file of {row.clip} inside {folder}")
    if not path.is_file():
        raise Page4DError(f"the result file of {row.clip} is missing: {path.name}")
    return path


def open_row(controller: ViewerController, index: Path, key: RowKey) -> Shown:
    """Show an index row's result, as "Open a result" would.

    Raises:
        RunIndexError: no such row. Page4DError: failed run or missing file.
        ResultFileError: the file is damaged.
    """
    row = get_run(index, key)
    return controller.open_result(row_result_file(index, row))


def row_label(row: RunRow) -> str:
    """One line naming a row: clip, checkpoint, mask strength."""
    strength = "" if row.mask_strength is None else f" · α {row.mask_strength:g}"
    return f"{row.clip} · {row.checkpoint_name}{strength}"


def encode_key(key: RowKey) -> str:
    """A row key as one string (drop-down values are strings)."""
    return json.dumps(list(key))


def decode_key(text: str) -> RowKey:
    """The row key of `encode_key`'s string.

    Raises:
        RunIndexError: not such a string.
    """
    try:
        clip, checkpoint, digest = json.loads(text)
        return str(clip), str(checkpoint), str(digest)
    except (ValueError, TypeError) as error:
        raise RunIndexError(f"not an index row: {text!r}") from error


def compare_with_row(comparer: Comparer, index: Path, key: RowKey) -> SecondRun:
    """Lay an index row's result over the shown result (see `viewer.comparison`).

    Raises:
        RunIndexError, Page4DError, ResultFileError, ComparisonError.
    """
    return comparer.compare_with_file(row_result_file(index, get_run(index, key)))


def _number(value: float | None, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)
