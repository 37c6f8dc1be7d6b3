"""The run index (evaluation.index), the clip split over ranks, and the Markdown report."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from page4d_viewer.cli import main
from page4d_viewer.evaluation import index as run_index
from page4d_viewer.evaluation.batch_report import write_report
from page4d_viewer.orchestration.batch import BatchSummary, assign_clips, index_metrics
from page4d_viewer.sources.datasets import DatasetClip
from page4d_viewer.sources.sampling import FrameSampling


def _row(clip: str, ate_masked: float | None, ate_unmasked: float | None, **extra: Any) -> dict:
    return {
        "clip": clip,
        "checkpoint": "sha256:abc",
        "settings_hash": "s1",
        "checkpoint_name": "small.safetensors",
        "status": run_index.STATUS_OK,
        "ate_masked": ate_masked,
        "ate_unmasked": ate_unmasked,
        "frames": 8,
        "result_path": f"results/x/{clip}.npz",
        "created_at": "2026-01-01T00:00:00",
    } | extra


def _write(path: Path, rows: list[dict]) -> None:
    with contextlib.closing(run_index.connect(path)) as connection:
        for row in rows:
            run_index.write_row(connection, run_index.RunRow(**row))


@pytest.fixture
def index_folder(tmp_path: Path) -> Path:
    _write(
        tmp_path / run_index.INDEX_NAME,
        [
            _row("alley_1", 0.30, 0.10, abs_rel=0.2, mask_ap=0.5),  # mask hurts: +0.20
            _row("bear", None, None),  # no ground truth
            _row("cave_2", 0.05, 0.15),  # mask helps: -0.10
            _row("market_5", 0.20, 0.19),  # +0.01
            _row(
                "broken",
                None,
                None,
                status=run_index.STATUS_FAILED,
                error="ClipError: broken.mp4 is not a video",
                result_path=None,
            ),
        ],
    )
    return tmp_path


def test_schema_has_the_promised_columns_and_unique_key(index_folder: Path) -> None:
    connection = sqlite3.connect(index_folder / run_index.INDEX_NAME)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    assert {
        "clip", "checkpoint", "mask_strength", "frames", "ate_masked", "ate_unmasked",
        "rpe_t_masked", "rpe_r_masked", "abs_rel", "mask_ap", "seconds", "result_path",
        "settings_hash", "settings_json", "status", "error",
    } <= columns  # fmt: skip
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(
            "INSERT INTO runs (clip, checkpoint, settings_hash, status, created_at) "
            "VALUES ('bear', 'sha256:abc', 's1', 'ok', 'now')"
        )


def test_list_runs_sorts_filters_and_gets(index_folder: Path) -> None:
    rows = run_index.list_runs(index_folder)
    # Largest masked-minus-unmasked ATE first; rows without both ATEs last, by name.
    assert [row.clip for row in rows] == ["alley_1", "market_5", "cave_2", "bear", "broken"]
    assert rows[0].ate_difference == pytest.approx(0.20)
    ascending = run_index.list_runs(index_folder, sort_by="ate_masked", descending=False)
    assert [row.clip for row in ascending][:3] == ["cave_2", "market_5", "alley_1"]
    assert [row.clip for row in run_index.list_runs(index_folder, filter_text="NOT A VID")] == [
        "broken"
    ]
    failed = run_index.list_runs(index_folder, status=run_index.STATUS_FAILED)
    assert [(row.clip, row.ok, row.result_path) for row in failed] == [("broken", False, None)]
    row = run_index.get_run(index_folder / run_index.INDEX_NAME, rows[0].key)
    assert row == rows[0]
    assert row.result_file(index_folder / run_index.INDEX_NAME) == (
        index_folder / "results" / "x" / "alley_1.npz"
    )
    with pytest.raises(run_index.RunIndexError, match="no run of clip"):
        run_index.get_run(index_folder, ("nope", "sha256:abc", "s1"))
    with pytest.raises(run_index.RunIndexError, match="cannot sort by"):
        run_index.list_runs(index_folder, sort_by="drop table")


# The index as schema version 1 wrote it: no geometric ATEs, no head-vs-geometry columns.
VERSION_1_SCHEMA = """
PRAGMA user_version = 1;
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    clip TEXT NOT NULL, checkpoint TEXT NOT NULL, settings_hash TEXT NOT NULL,
    checkpoint_name TEXT NOT NULL DEFAULT '', settings_json TEXT NOT NULL DEFAULT '{}',
    source TEXT NOT NULL DEFAULT '', layout TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    error TEXT, mask_strength REAL, frames INTEGER, ate_masked REAL, ate_unmasked REAL,
    rpe_t_masked REAL, rpe_r_masked REAL, rpe_t_unmasked REAL, rpe_r_unmasked REAL,
    abs_rel REAL, delta_1_25 REAL, mask_ap REAL, mask_iou REAL, seconds REAL,
    result_path TEXT, device TEXT NOT NULL DEFAULT '', rank INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, UNIQUE (clip, checkpoint, settings_hash)
);
INSERT INTO runs (clip, checkpoint, settings_hash, status, ate_masked, ate_unmasked,
                  result_path, created_at)
VALUES ('old_clip', 'sha256:abc', 's1', 'ok', 0.4, 0.1, 'results/x/old_clip.npz', 'then');
"""

GEOMETRY = ("ate_geometry_masked", "ate_geometry_unmasked", "head_geometry_rot_deg",
            "head_geometry_trans")  # fmt: skip


def _version_1_index(folder: Path) -> Path:
    path = folder / run_index.INDEX_NAME
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.executescript(VERSION_1_SCHEMA)
    return path


def _user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("PRAGMA user_version").fetchone()[0]


def _columns(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return {row[1] for row in connection.execute("PRAGMA table_info(runs)")}


def test_geometry_columns_are_written_read_and_sorted(tmp_path: Path) -> None:
    assert run_index.SCHEMA_VERSION == 2
    _write(tmp_path / run_index.INDEX_NAME, [
        _row("a", 0.3, 0.1, ate_geometry_masked=0.05, ate_geometry_unmasked=0.20,
             head_geometry_rot_deg=12.5, head_geometry_trans=0.9),
        _row("b", 0.2, 0.2, ate_geometry_masked=0.10, ate_geometry_unmasked=0.08,
             head_geometry_rot_deg=3.0, head_geometry_trans=0.2),
        _row("c", 0.1, 0.3, ate_geometry_masked=0.30, ate_geometry_unmasked=0.10,
             head_geometry_rot_deg=40.0, head_geometry_trans=None),
        _row("d", 0.1, 0.1),  # a result without geometric cameras
    ])  # fmt: skip
    assert set(GEOMETRY) <= _columns(tmp_path / run_index.INDEX_NAME)
    assert _user_version(tmp_path / run_index.INDEX_NAME) == 2
    rows = {row.clip: row for row in run_index.list_runs(tmp_path)}
    a = rows["a"]
    assert (a.ate_geometry_masked, a.ate_geometry_unmasked) == (0.05, 0.20)
    assert (a.head_geometry_rot_deg, a.head_geometry_trans) == (12.5, 0.9)
    assert a.geometry_ate_difference == pytest.approx(-0.15)
    assert all(getattr(rows["d"], name) is None for name in GEOMETRY)
    assert rows["d"].geometry_ate_difference is None

    def order(sort_by: str, descending: bool = True) -> list[str]:
        listed = run_index.list_runs(tmp_path, sort_by=sort_by, descending=descending)
        return [row.clip for row in listed]

    # Geometric masked minus unmasked: c +0.20, b +0.02, a -0.15; d has none and comes last.
    assert order(run_index.GEOMETRY_ATE_DIFFERENCE) == ["c", "b", "a", "d"]
    assert order(run_index.GEOMETRY_ATE_DIFFERENCE, False) == ["a", "b", "c", "d"]
    assert order("ate_geometry_masked", False) == ["a", "b", "c", "d"]
    assert order("ate_geometry_unmasked") == ["a", "c", "b", "d"]
    assert order("head_geometry_rot_deg") == ["c", "a", "b", "d"]
    assert order("head_geometry_trans", False) == ["b", "a", "c", "d"]


def test_a_version_1_index_lists_read_only_and_migrates_to_append(tmp_path: Path) -> None:
    path = _version_1_index(tmp_path)
    # Listing and reading a row leave the file as it was (a viewer may only read it).
    (old,) = run_index.list_runs(tmp_path, sort_by=run_index.GEOMETRY_ATE_DIFFERENCE)
    assert old.clip == "old_clip" and old.ate_difference == pytest.approx(0.3)
    assert all(getattr(old, name) is None for name in GEOMETRY)
    assert run_index.get_run(path, old.key) == old
    assert run_index.finished_keys(path) == {old.key: "results/x/old_clip.npz"}
    assert _user_version(path) == 1 and not set(GEOMETRY) & _columns(path)
    # A batch appending to it adds the new columns first; the old row keeps its values.
    _write(path, [_row("new_clip", 0.2, 0.1, ate_geometry_masked=0.05, head_geometry_rot_deg=7.0)])
    assert _user_version(path) == run_index.SCHEMA_VERSION and set(GEOMETRY) <= _columns(path)
    rows = {row.clip: row for row in run_index.list_runs(path)}
    assert rows["old_clip"] == old
    assert (rows["new_clip"].ate_geometry_masked, rows["new_clip"].head_geometry_rot_deg) == (
        0.05, 7.0,
    )  # fmt: skip
    run_index.connect(path).close()  # a second migration finds nothing to add
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 7")  # as a later version would leave it
    run_index.connect(path).close()
    assert _user_version(path) == 7


def test_shards_merge_into_a_version_1_index(tmp_path: Path) -> None:
    _version_1_index(tmp_path)
    _write(run_index.shard_path(tmp_path, 0), [_row("b", 0.3, 0.3, ate_geometry_unmasked=0.4)])
    assert run_index.merge_shards(tmp_path) == 1
    rows = {row.clip: row for row in run_index.list_runs(tmp_path)}
    assert sorted(rows) == ["b", "old_clip"] and rows["b"].ate_geometry_unmasked == 0.4


def test_a_table_missing_an_original_column_is_not_an_index(tmp_path: Path) -> None:
    with contextlib.closing(sqlite3.connect(tmp_path / run_index.INDEX_NAME)) as connection:
        connection.execute("CREATE TABLE runs (clip TEXT)")
        connection.execute("INSERT INTO runs VALUES ('x')")
        connection.commit()
    with pytest.raises(run_index.RunIndexError, match="not a batch index .*checkpoint"):
        run_index.list_runs(tmp_path)


def test_open_index_refuses_a_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(run_index.RunIndexError, match="no batch index"):
        run_index.open_index(tmp_path)
    (tmp_path / run_index.INDEX_NAME).write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(run_index.RunIndexError, match="not a batch index"):
        run_index.list_runs(tmp_path)


def test_merge_shards_keeps_successes_and_removes_shards(tmp_path: Path) -> None:
    _write(tmp_path / run_index.INDEX_NAME, [_row("a", 0.1, 0.2)])
    failed_a = _row("a", None, None, status=run_index.STATUS_FAILED, error="OOM")
    _write(run_index.shard_path(tmp_path, 0), [failed_a, _row("b", 0.3, 0.3)])
    _write(run_index.shard_path(tmp_path, 1), [_row("c", 0.5, 0.4)])
    run_index.merge_shards(tmp_path)
    rows = {row.clip: row for row in run_index.list_runs(tmp_path)}
    assert sorted(rows) == ["a", "b", "c"]
    assert rows["a"].ok and rows["a"].ate_masked == 0.1  # a later failure never hides a success
    assert not list(tmp_path.glob("index.rank*"))


def test_index_metrics_score_the_geometric_cameras(make_reconstruction, tmp_path: Path) -> None:
    from page4d_viewer import geometry

    truth = make_reconstruction(frames=5).cameras["masked"]
    off = make_reconstruction(frames=5).cameras["unmasked"]
    elsewhere = geometry.Similarity(3.0, np.eye(3)[[1, 2, 0]], np.array([1.0, 2.0, 3.0]))
    cameras = {
        "masked": truth,
        "unmasked": off,
        "geometry_masked": truth.transformed(elsewhere),  # the truth in another world and scale
        "geometry_unmasked": off,
    }
    with_truth = cameras | {"ground_truth": truth}
    recon = make_reconstruction(frames=5, ground_truth=True, cameras=with_truth)
    values = index_metrics(recon)
    assert values["ate_geometry_masked"] == pytest.approx(0.0, abs=1e-9)
    assert values["ate_geometry_unmasked"] == pytest.approx(values["ate_unmasked"])
    assert values["ate_geometry_unmasked"] > 1e-5
    assert values["head_geometry_rot_deg"] == pytest.approx(0.0, abs=1e-6)
    assert values["head_geometry_trans"] == pytest.approx(0.0, abs=1e-9)
    # Every key is an index column: the row goes in and reads back.
    _write(tmp_path / run_index.INDEX_NAME, [_row("clip", None, None) | values])
    (row,) = run_index.list_runs(tmp_path)
    assert row.ate_geometry_unmasked == pytest.approx(values["ate_geometry_unmasked"])
    # Without ground truth only the disagreement, which needs none, is filled.
    unscored = index_metrics(make_reconstruction(frames=5, cameras=cameras))
    assert sorted(unscored) == ["head_geometry_rot_deg", "head_geometry_trans"]
    # Without geometric cameras (a result saved before they existed), neither.
    assert "ate_geometry_masked" not in index_metrics(make_reconstruction(5, ground_truth=True))
    assert index_metrics(make_reconstruction(5)) == {}


def _clip(name: str, frames: int) -> DatasetClip:
    return DatasetClip(name, Path(name), None, "images", frames)


def test_assign_clips_longest_first_to_the_least_loaded_rank() -> None:
    clips = [_clip(f"c{frames}", frames) for frames in (10, 80, 30, 50, 20, 40)]
    shares = assign_clips(clips, 2)
    assert [[clip.name for clip in share] for share in shares] == [
        ["c80", "c30", "c10"],  # loads 80, 110, 120
        ["c50", "c40", "c20"],  # loads 50, 90, 110
    ]
    assert sorted(clip.name for share in shares for clip in share) == sorted(c.name for c in clips)
    # A frame cap changes the weights: every clip is then 16 frames, dealt in name order.
    capped = assign_clips(clips, 3, FrameSampling(max_frames=16))
    assert [len(share) for share in capped] == [2, 2, 2]
    assert assign_clips([], 4) == [[], [], [], []]


@pytest.mark.parametrize(
    ("succeeded", "failed", "already_done", "code"),
    [(3, 1, 0, 0), (0, 2, 0, 1), (0, 2, 1, 0), (0, 0, 5, 0), (0, 0, 0, 0)],
)
def test_exit_code_policy(succeeded: int, failed: int, already_done: int, code: int) -> None:
    summary = BatchSummary(succeeded + failed + already_done, succeeded, failed, already_done,
                           Path("index.sqlite"))  # fmt: skip
    assert summary.exit_code == code


def test_report_writes_markdown_and_plots(
    index_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(index_folder)]) == 0
    report = index_folder / "report"
    markdown = (report / "report.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "|" in line[2:]]
    clips = [line.split("|")[1].strip() for line in table]
    # Means table, then the clips sorted by ATE difference (largest first), then failures.
    ordered = [name for name in clips if name in {"alley_1", "market_5", "cave_2", "bear"}]
    assert ordered == ["alley_1", "market_5", "cave_2", "bear"]
    assert "| broken | ClipError: broken.mp4 is not a video |" in markdown
    assert "| ate_masked | 0.1833 |" in markdown  # mean over the three clips with cameras
    assert "| ate_difference | 0.0367 |" in markdown
    for name in ("ate_scatter.png", "ate_difference.png"):
        with Image.open(report / name) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert "wrote" in capsys.readouterr().out
    files = write_report(index_folder, tmp_path / "elsewhere", filter_text="cave")
    assert files.rows == 1


def _geometry_rows() -> list[dict]:
    return [
        _row("alley_1", 0.30, 0.10, ate_geometry_masked=0.02, ate_geometry_unmasked=0.06,
             head_geometry_rot_deg=20.0, head_geometry_trans=0.95),
        _row("cave_2", 0.05, 0.15, ate_geometry_masked=0.09, ate_geometry_unmasked=0.04,
             head_geometry_rot_deg=2.0, head_geometry_trans=0.25),
        _row("market_5", 0.20, 0.19, ate_geometry_masked=0.04, ate_geometry_unmasked=0.08,
             head_geometry_rot_deg=6.0, head_geometry_trans=0.5),
        _row("zoo_very_long_clip_name_at_the_edge", 0.01, 0.30, ate_geometry_masked=0.29,
             ate_geometry_unmasked=0.01),
    ]  # fmt: skip


def test_report_shows_the_geometric_cameras(tmp_path: Path) -> None:
    _write(tmp_path / run_index.INDEX_NAME, _geometry_rows())
    files = write_report(tmp_path, tmp_path / "report")
    markdown = files.markdown.read_text()
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| clip |"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    for title in ("ATE geo masked", "ATE geo unmasked", "ATE geo diff", "head vs geo (deg)",
                  "head vs geo (path)"):  # fmt: skip
        assert title in titles
    alley = next(line for line in lines if line.startswith("| alley_1 |"))
    cells = dict(zip(titles, (cell.strip() for cell in alley.strip("|").split("|")), strict=True))
    assert (cells["ATE geo masked"], cells["ATE geo unmasked"]) == ("0.0200", "0.0600")
    assert (cells["ATE geo diff"], cells["head vs geo (deg)"]) == ("-0.0400", "20.0000")
    assert cells["head vs geo (path)"] == "0.9500"
    assert "| ate_geometry_masked | 0.1100 |" in markdown  # (0.02 + 0.09 + 0.04 + 0.29) / 4
    assert "| head_geometry_rot_deg | 9.3333 |" in markdown  # over the three rows with it
    assert "4 with geometric cameras scored, of which the mask's weights raised their ATE on 2" in (
        markdown
    )
    # The two scatters are on one line, so they sit side by side.
    (scatters,) = [line for line in lines if "ate_scatter.png" in line]
    assert "](ate_scatter.png)" in scatters and "](geometry_ate_scatter.png)" in scatters
    assert files.geometry_scatter == tmp_path / "report" / "geometry_ate_scatter.png"
    for path in (files.scatter, files.geometry_scatter, files.histogram):
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 100


def test_report_of_a_version_1_index_leaves_the_geometry_blank(tmp_path: Path) -> None:
    _version_1_index(tmp_path)
    files = write_report(tmp_path, tmp_path / "report")
    markdown = files.markdown.read_text()
    old_clip = next(line for line in markdown.splitlines() if line.startswith("| old_clip |"))
    assert old_clip.count("| - |") >= 5  # five geometry cells, among others
    assert "| ate_geometry_masked | - |" in markdown
    assert files.geometry_scatter.is_file()


def _sticks_out(figure) -> bool:
    """Whether anything drawn (labels, clip names, legend) reaches past the figure's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    drawn = figure.get_tightbbox(canvas.get_renderer())
    page = figure.bbox_inches
    tolerance = 0.01  # inches
    return bool(
        drawn.x0 < page.x0 - tolerance
        or drawn.y0 < page.y0 - tolerance
        or drawn.x1 > page.x1 + tolerance
        or drawn.y1 > page.y1 + tolerance
    )


def test_report_plots_count_whole_clips_and_keep_labels_inside() -> None:
    from page4d_viewer.evaluation.report_plots import (
        GEOMETRY_ATES,
        HEAD_ATES,
        ate_axis_limit,
        ate_difference_histogram,
        ate_scatter_figure,
    )

    rows = [run_index.RunRow(**values) for values in _geometry_rows()]
    limit = ate_axis_limit(rows, (HEAD_ATES, GEOMETRY_ATES))
    assert limit == pytest.approx(0.30 * 1.05)
    for pair in (HEAD_ATES, GEOMETRY_ATES):
        figure = ate_scatter_figure(rows, pair=pair, limit=limit)
        (axes,) = figure.axes
        assert axes.get_xlim() == axes.get_ylim() == pytest.approx((0.0, limit))
        names = [text.get_text() for text in axes.texts]
        # The clip at the plot's corner is named, inside the figure.
        assert "zoo_very_long_clip_name_at_the_edge" in names
        assert not _sticks_out(figure)
    histogram = ate_difference_histogram(rows)
    (axes,) = histogram.axes
    assert len(axes.patches) == 2  # one outline per pair: camera head and geometry
    histogram.canvas.draw()
    ticks = [tick for tick in axes.get_yticks() if axes.get_ylim()[0] <= tick <= axes.get_ylim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks)
    assert not _sticks_out(histogram)
    # Without geometric ATEs, only the head's outline is drawn.
    head_only = [run_index.RunRow(**_row("a", 0.1, 0.2))]
    assert len(ate_difference_histogram(head_only).axes[0].patches) == 1


def test_report_without_an_index_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no batch index at {tmp_path / 'index.sqlite'}"
    ]
