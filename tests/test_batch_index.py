"""The run index (evaluation.index), the clip split over ranks, and the Markdown report."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from page4d_viewer.cli import main
from page4d_viewer.evaluation import index as run_index
from page4d_viewer.evaluation.batch_report import write_report
from page4d_viewer.inference.batch import BatchSummary, assign_clips
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
            run_index.write_row(connection, row)


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


def test_report_without_an_index_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no batch index at {tmp_path / 'index.sqlite'}"
    ]


def test_index_report_and_datasets_import_no_torch(imports_among) -> None:
    modules = (
        "page4d_viewer.evaluation.index",
        "page4d_viewer.evaluation.batch_report",
        "page4d_viewer.evaluation.report_plots",
        "page4d_viewer.sources.datasets",
    )
    assert imports_among(modules, ("torch", "gradio", "viser")) == []
