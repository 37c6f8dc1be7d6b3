"""`page4d-viewer batch` end to end with a random tiny model: failures, resuming after
`kill -9`, and two torchrun ranks writing the same rows as one process."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from page4d_viewer.cli import main
from page4d_viewer.evaluation import index as run_index

pytestmark = pytest.mark.slow

SYNTHETIC = ["--synthetic-frames", "4", "--synthetic-size", "128x96", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from page4d_viewer.model import build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    # With a match head, as the shipped preset has: its geometric poses match in a fraction of
    # a pass (a network without one would track every keyframe pair instead).
    save_checkpoint(build_model("tiny", img_size=112, has_match_head=True), path)
    return path


def _batch_command(source: str, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    return ["batch", source, "--out", str(out), "--checkpoint", str(checkpoint), *extra]


def _environment() -> dict[str, str]:
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)
    return environment


def _rows(out: Path) -> dict[str, sqlite3.Row]:
    with sqlite3.connect(out / run_index.INDEX_NAME) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM runs").fetchall()
    names = [row["clip"] for row in rows]
    assert len(names) == len(set(names)), f"a clip is listed twice: {names}"
    return {row["clip"]: row for row in rows}


def test_a_failing_clip_is_one_line_and_the_batch_goes_on(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from page4d_viewer.sources.synthetic import make_clip, save_ground_truth

    data = tmp_path / "data"
    sample = save_ground_truth(make_clip(3, num_frames=4, width=128, height=96), data / "room")
    shutil.copy(sample / "clip.mp4", data / "street.mp4")
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    out = tmp_path / "out"
    command = _batch_command(str(data), out, tiny_checkpoint, "--threads", "1")
    assert main(command) == 0
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if line.startswith("failed:")]
    assert len(failures) == 1 and failures[0].startswith("failed: broken: ClipError: ")
    # stderr is no terminal here: one plain progress line per clip instead of a silent bar.
    progress = [line for line in captured.err.splitlines() if line.startswith("batch: ")]
    assert [line.split(" (")[0] for line in progress] == [f"batch: {n}/3 clips" for n in (1, 2, 3)]
    assert "2 done, 1 failed" in captured.out
    rows = _rows(out)
    assert rows["broken"]["status"] == "failed" and "ClipError" in rows["broken"]["error"]
    assert rows["broken"]["result_path"] is None
    room, street = rows["room"], rows["street"]
    assert room["status"] == street["status"] == "ok"
    assert room["ate_masked"] > 0 and room["ate_unmasked"] > 0 and room["abs_rel"] > 0
    assert street["ate_masked"] is None and street["abs_rel"] is None  # no ground truth
    assert room["ate_geometry_masked"] > 0 and room["ate_geometry_unmasked"] > 0
    assert street["ate_geometry_masked"] is None
    for row in (room, street):  # how far the head is from the geometry needs no ground truth
        assert 0 <= row["head_geometry_rot_deg"] <= 180
        # None where the random stand-in's geometric cameras do not move (tests/
        # test_disagreement.py checks the value itself).
        assert row["head_geometry_trans"] is None or 0 <= row["head_geometry_trans"] <= 1
    assert room["frames"] == 4 and room["mask_strength"] == 64
    assert (out / room["result_path"]).is_file()

    # A result file whose row was lost (killed between the two) is evaluated, not recomputed.
    result = out / room["result_path"]
    mtime = result.stat().st_mtime_ns
    with sqlite3.connect(out / run_index.INDEX_NAME) as connection:
        connection.execute("DELETE FROM runs WHERE clip = 'room'")
    assert main(command) == 0
    captured = capsys.readouterr()
    assert "1 done, 1 failed, 1 already in the index" in captured.out  # failures are retried
    again = _rows(out)
    assert result.stat().st_mtime_ns == mtime
    assert again["room"]["ate_masked"] == pytest.approx(room["ate_masked"], abs=1e-6)
    assert again["street"]["created_at"] == street["created_at"]


def test_bad_arguments_are_one_error_line(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for source, extra, message in (
        (str(tmp_path / "nothing"), [], "dataset not found"),
        ("synthetic:one-two", [], "cannot read seeds"),
        ("synthetic:1-2", ["--synthetic-size", "big"], "--synthetic-size must be WxH"),
        ("synthetic:1-2", ["--stride", "0"], "stride"),
    ):
        assert main(_batch_command(source, tmp_path / "out", tiny_checkpoint, *extra)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_two_torchrun_ranks_write_the_same_rows_as_one_process(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    source = "synthetic:11-15"
    single, double = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "page4d_viewer", *_batch_command(source, single, tiny_checkpoint),
         *SYNTHETIC],
        check=True, env=_environment(), capture_output=True, timeout=120,
    )  # fmt: skip
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "page4d_viewer", *_batch_command(source, double, tiny_checkpoint), *SYNTHETIC],
        env=_environment(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("batch: 5 done, 0 failed") == 1  # rank 0 reports, once
    one, two = _rows(single), _rows(double)
    assert sorted(one) == sorted(two) == [f"synthetic-{seed}" for seed in range(11, 16)]
    assert {row["rank"] for row in two.values()} == {0, 1}
    assert not list(double.glob("index.rank*"))  # shards merged and removed
    for clip, row in one.items():
        other = two[clip]
        assert other["status"] == row["status"] == "ok"
        for name in ("checkpoint", "settings_hash", "frames", "mask_strength"):
            assert other[name] == row[name], name
        for name in (*run_index.METRIC_COLUMNS, *run_index.DISAGREEMENT_COLUMNS):
            assert other[name] == pytest.approx(row[name], abs=1e-6), (clip, name)


def test_killed_batch_resumes_without_recomputing(tmp_path: Path, tiny_checkpoint: Path) -> None:
    out, seeds = tmp_path / "out", range(21, 27)
    command = [sys.executable, "-m", "page4d_viewer",
               *_batch_command("synthetic:21-26", out, tiny_checkpoint), *SYNTHETIC]  # fmt: skip
    process = subprocess.Popen(
        command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    finished: dict[str, sqlite3.Row] = {}
    deadline = time.monotonic() + 120
    try:
        while not finished and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
            try:
                finished = {clip: row for clip, row in _rows(out).items() if row["status"] == "ok"}
            except sqlite3.Error:  # not created yet, or being written
                continue
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert finished, "no clip finished before the deadline"
    assert len(finished) < len(seeds), "the batch finished before it could be killed"
    before = {
        clip: (row["created_at"], (out / row["result_path"]).stat().st_mtime_ns)
        for clip, row in finished.items()
    }
    rerun = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = _rows(out)
    assert sorted(rows) == [f"synthetic-{seed}" for seed in seeds]
    assert all(row["status"] == "ok" for row in rows.values())
    for clip, (created_at, mtime) in before.items():
        assert rows[clip]["created_at"] == created_at, clip
        assert (out / rows[clip]["result_path"]).stat().st_mtime_ns == mtime, clip
    results = sorted(p.name for p in (out / "results").rglob("*") if p.is_file())
    assert results == sorted(f"synthetic-{seed}.npz" for seed in seeds)  # no temporary left
