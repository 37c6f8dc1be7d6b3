"""A batch index as Markdown (and PNG plots) for a paper's supplement.

``write_report(index, folder)`` writes ``report.md``, ``ate_scatter.png`` (the camera head's
masked vs unmasked ATE), ``geometry_ate_scatter.png`` (the same for the cameras solved from
the network's depth and matches, on the same scale, shown beside it) and
``ate_difference.png`` (both pairs' masked minus unmasked ATE): one table row per successful
clip, sorted by masked minus unmasked ATE (the clips where masking hurts most first), with the
geometric ATEs and how far the head disagrees with the geometry; the means over clips with
ground truth; and the failed clips with their errors. Torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from page4d_viewer.evaluation.index import (
    ATE_DIFFERENCE,
    DISAGREEMENT_COLUMNS,
    GEOMETRY_ATE_DIFFERENCE,
    RPE_COLUMNS,
    STATUS_FAILED,
    STATUS_OK,
    RunRow,
    list_runs,
)
from page4d_viewer.evaluation.report_plots import (
    GEOMETRY_ATES,
    HEAD_ATES,
    ate_axis_limit,
    ate_difference_histogram,
    ate_scatter_figure,
    save_figure,
)

REPORT_NAME = "report.md"
SCATTER_NAME = "ate_scatter.png"
GEOMETRY_SCATTER_NAME = "geometry_ate_scatter.png"
HISTOGRAM_NAME = "ate_difference.png"

# (column title, RunRow attribute) of the per-clip table.
_TABLE = (
    ("clip", "clip"),
    ("frames", "frames"),
    ("ATE masked", "ate_masked"),
    ("ATE unmasked", "ate_unmasked"),
    ("ATE diff", ATE_DIFFERENCE),
    ("ATE geo masked", "ate_geometry_masked"),
    ("ATE geo unmasked", "ate_geometry_unmasked"),
    ("ATE geo diff", GEOMETRY_ATE_DIFFERENCE),
    ("head vs geo (deg)", "head_geometry_rot_deg"),
    ("head vs geo (path)", "head_geometry_trans"),
    ("RPE t masked", "rpe_t_masked"),
    ("RPE r masked (deg)", "rpe_r_masked"),
    ("AbsRel", "abs_rel"),
    ("mask AP", "mask_ap"),
    ("s", "seconds"),
)
_MEANS = (
    "ate_masked",
    "ate_unmasked",
    ATE_DIFFERENCE,
    "ate_geometry_masked",
    "ate_geometry_unmasked",
    GEOMETRY_ATE_DIFFERENCE,
    *DISAGREEMENT_COLUMNS,
    *RPE_COLUMNS,
    "abs_rel",
    "delta_1_25",
    "mask_ap",
    "seconds",
)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote."""

    markdown: Path
    scatter: Path
    geometry_scatter: Path
    histogram: Path
    rows: int


def means(rows: Sequence[RunRow]) -> dict[str, float | None]:
    """Mean of each metric over the rows that have it (None where none has)."""
    result: dict[str, float | None] = {}
    for name in _MEANS:
        values = [getattr(row, name) for row in rows if getattr(row, name) is not None]
        result[name] = math.fsum(values) / len(values) if values else None
    return result


def format_markdown(rows: Sequence[RunRow], failed: Sequence[RunRow], title: str) -> str:
    """The report's Markdown: summary, means, per-clip table, failed clips."""
    head = [row.ate_difference for row in rows if row.ate_difference is not None]
    geometric = [
        row.geometry_ate_difference for row in rows if row.geometry_ate_difference is not None
    ]
    lines = [
        f"# {title}",
        "",
        f"{len(rows)} clips run, {len(failed)} failed; {len(head)} with ground-truth "
        f"cameras, of which masking raised the camera head's ATE on "
        f"{sum(1 for value in head if value > 0)}; {len(geometric)} with geometric cameras "
        f"scored, of which the mask's weights raised their ATE on "
        f"{sum(1 for value in geometric if value > 0)}.",
        "Rows are sorted by ATE masked minus unmasked, largest (masking hurts most) first. ATE "
        "and RPE after Sim(3) alignment; AbsRel after per-clip median scaling. 'geo': the "
        "cameras solved from the network's own depth and matches. 'head vs geo': how far "
        "the camera head's masked cameras are from the geometric masked ones, as the mean "
        "per-frame rotation angle (each relative to its first camera) and as the RMS distance "
        "of the Sim(3)-aligned camera centres over the geometric path's RMS spread (0: the "
        "same path, 1: nothing in common).",
        "",
        "## Means",
        "",
        "| metric | mean |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_cell(value)} |" for name, value in means(rows).items()]
    lines += [
        "",
        # Two images on one line sit side by side.
        f"![camera head: masked vs unmasked ATE]({SCATTER_NAME}) "
        f"![geometry: masked vs unmasked ATE]({GEOMETRY_SCATTER_NAME})",
        "",
        f"![ATE difference]({HISTOGRAM_NAME})",
        "",
        "## Clips",
        "",
    ]
    # One index may hold several checkpoints or settings: then each row says which.
    columns = list(_TABLE)
    if len({(row.checkpoint, row.settings_hash) for row in rows}) > 1:
        columns.insert(1, ("checkpoint / settings", "run_label"))
    lines.append("| " + " | ".join(title for title, _ in columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            f"{row.checkpoint_name} / {row.settings_hash[:8]}"
            if attribute == "run_label"
            else _cell(getattr(row, attribute))
            for _, attribute in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if failed:
        lines += ["", "## Failed clips", "", "| clip | error |", "|---|---|"]
        lines += [f"| {row.clip} | {_escape(row.error or '')} |" for row in failed]
    return "\n".join(lines) + "\n"


def write_report(
    index: str | os.PathLike[str], folder: str | os.PathLike[str], *, filter_text: str = ""
) -> ReportFiles:
    """Write the Markdown report and its three plots for an index into ``folder``.

    Args:
        index: ``DIR/index.sqlite`` or ``DIR``.
        folder: where ``report.md`` and the PNGs go (created).
        filter_text: keep only rows whose clip, checkpoint or layout contains it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = list_runs(index, sort_by=ATE_DIFFERENCE, filter_text=filter_text, status=STATUS_OK)
    failed = list_runs(
        index, sort_by="clip", descending=False, filter_text=filter_text, status=STATUS_FAILED
    )
    markdown = folder / REPORT_NAME
    title = f"Batch report: {_batch_name(index)}"
    markdown.write_text(format_markdown(rows, failed, title))
    limit = ate_axis_limit(rows, (HEAD_ATES, GEOMETRY_ATES))
    scatter, geometry_scatter = (
        save_figure(ate_scatter_figure(rows, pair=pair, limit=limit), folder / name)
        for pair, name in ((HEAD_ATES, SCATTER_NAME), (GEOMETRY_ATES, GEOMETRY_SCATTER_NAME))
    )
    histogram = save_figure(ate_difference_histogram(rows), folder / HISTOGRAM_NAME)
    return ReportFiles(markdown, scatter, geometry_scatter, histogram, len(rows))


def _batch_name(index: str | os.PathLike[str]) -> str:
    path = Path(index).resolve()
    return path.name if path.is_dir() else path.parent.name


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return _escape(str(value))


def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


__all__ = ["ReportFiles", "format_markdown", "means", "write_report"]
