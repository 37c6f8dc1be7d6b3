"""The recent-runs store and the data-root path policy of the viewer."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.paths import DataRoots, PathNotAllowedError
from page4d_viewer.viewer.runs import RunDetails, RunNotFoundError, RunStore
from page4d_viewer.viewer.titles import source_name


def _writer(payload: bytes = b"result"):
    def write(path: Path) -> None:
        path.write_bytes(payload)

    return write


def test_saved_run_is_listed_and_found(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    record = store.save(_writer(b"abc"), "clip.mp4 · 4 frames", RunDetails(mask_strength=64.0))
    assert record.result_path.read_bytes() == b"abc"
    assert [r.run_id for r in store.list()] == [record.run_id]
    found = store.get(record.run_id)
    assert found.title == "clip.mp4 · 4 frames"
    assert found.details == RunDetails(mask_strength=64.0)
    assert "clip.mp4 · 4 frames" in found.label()


def test_runs_are_listed_newest_first_and_limited(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    times = [datetime(2026, 1, day, 12, tzinfo=timezone.utc) for day in (3, 1, 2)]
    for index, when in enumerate(times):
        store.save(_writer(), f"run {index}", now=when)
    assert [r.title for r in store.list()] == ["run 0", "run 2", "run 1"]
    assert [r.title for r in store.list(limit=1)] == ["run 0"]


def test_same_second_runs_get_distinct_ids(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = {store.save(_writer(), "same", now=when).run_id for _ in range(5)}
    assert len(ids) == 5


def test_failed_write_leaves_no_run_behind(tmp_path: Path) -> None:
    store = RunStore(tmp_path)

    def broken(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.save(broken, "broken")
    assert store.list() == []
    assert list(tmp_path.iterdir()) == []


def test_unfinished_and_damaged_folders_are_skipped(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    good = store.save(_writer(), "good")
    (tmp_path / ".staging-20260101-000000-x-abcd").mkdir()  # a crash's leftover
    no_record = tmp_path / "20260101-000000-norecord-abcd"
    no_record.mkdir()
    (no_record / "result.npz").write_bytes(b"x")
    damaged = tmp_path / "20260101-000000-damaged-abcd"
    damaged.mkdir()
    (damaged / "result.npz").write_bytes(b"x")
    (damaged / "run.json").write_text("{not json")
    assert [r.run_id for r in store.list()] == [good.run_id]


def test_record_without_timezone_is_read_as_utc(tmp_path: Path) -> None:
    folder = tmp_path / "20260101-000000-old-abcd"
    folder.mkdir()
    (folder / "result.npz").write_bytes(b"x")
    (folder / "run.json").write_text(json.dumps({"created": "2026-01-01T00:00:00", "title": "t"}))
    (record,) = RunStore(tmp_path).list()
    assert record.created.tzinfo is not None
    assert record.details == RunDetails()  # no details at all: every field unset


def test_details_saved_by_older_versions_still_load(tmp_path: Path) -> None:
    folder = tmp_path / "20260101-000000-old-abcd"
    folder.mkdir()
    (folder / "result.npz").write_bytes(b"x")
    details = {
        "checkpoint": "page4d.pt", "variant": "page4d", "mask_strength": 64, "device": "cpu",
        "precision": "float32", "seconds": 1.5, "session": "0123abcd", "retired": [1, 2],
    }  # fmt: skip
    record = {"version": 1, "created": "2026-01-01T00:00:00", "title": "t", "details": details}
    (folder / "run.json").write_text(json.dumps(record))
    (loaded,) = RunStore(tmp_path).list()
    assert loaded.details == RunDetails(
        "page4d.pt", "page4d", 64.0, "cpu", "float32", 1.5, owner="0123abcd"
    )  # the unknown key is dropped
    assert loaded.details.to_json() == {key: details[key] for key in list(details)[:-1]}
    wrong = {"mask_strength": "64", "checkpoint": 7, "session": None, "seconds": True}
    assert RunDetails.from_json(wrong) == RunDetails()  # wrong types read as unset
    assert RunDetails.from_json(["not", "a", "mapping"]) == RunDetails()


@pytest.mark.parametrize("run_id", ["../etc", "", "20260101-000000-nope-abcd", "a/b"])
def test_bad_run_ids_are_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(RunNotFoundError):
        RunStore(tmp_path).get(run_id)


def test_listing_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert RunStore(tmp_path / "nowhere").list() == []


# --- data roots -----------------------------------------------------------------------------


@pytest.fixture()
def roots(tmp_path: Path) -> DataRoots:
    data = tmp_path / "data"
    (data / "clips").mkdir(parents=True)
    (data / "clips" / "walk.mp4").write_bytes(b"v")
    assets = tmp_path / "assets"
    (assets / "samples" / "a").mkdir(parents=True)
    (assets / "samples" / "a" / "clip.mp4").write_bytes(b"v")
    (tmp_path / "secret.txt").write_text("no")
    return DataRoots([data, assets])


def test_absolute_path_inside_a_root_is_allowed(roots: DataRoots, tmp_path: Path) -> None:
    path = tmp_path / "data" / "clips" / "walk.mp4"
    assert roots.resolve(str(path)) == path.resolve()


def test_relative_path_is_tried_under_each_root(roots: DataRoots, tmp_path: Path) -> None:
    found = roots.resolve("samples/a/clip.mp4")
    assert found == (tmp_path / "assets" / "samples" / "a" / "clip.mp4").resolve()


@pytest.mark.parametrize("typed", ["{tmp}/secret.txt", "../secret.txt", "clips/../../secret.txt"])
def test_paths_outside_the_roots_are_refused(roots: DataRoots, tmp_path: Path, typed: str) -> None:
    with pytest.raises(PathNotAllowedError, match="outside the allowed data folders"):
        roots.resolve(typed.format(tmp=tmp_path))


def test_outside_path_is_refused_whether_or_not_it_exists(roots: DataRoots) -> None:
    with pytest.raises(PathNotAllowedError, match="outside") as missing:
        roots.resolve("/definitely/not/here.mp4")
    with pytest.raises(PathNotAllowedError, match="outside") as existing:
        roots.resolve("/etc/hostname")
    assert "does not exist" not in str(missing.value) + str(existing.value)


def test_symlink_leading_outside_is_refused(roots: DataRoots, tmp_path: Path) -> None:
    link = tmp_path / "data" / "clips" / "sneaky.txt"
    os.symlink(tmp_path / "secret.txt", link)
    with pytest.raises(PathNotAllowedError, match="outside"):
        roots.resolve(str(link))


def test_missing_file_inside_a_root_says_so(roots: DataRoots) -> None:
    with pytest.raises(PathNotAllowedError, match="does not exist"):
        roots.resolve("clips/nope.mp4")


def test_empty_path_is_refused_with_a_page4d_error(roots: DataRoots) -> None:
    with pytest.raises(Page4DError, match="no server path"):
        roots.resolve("   ")


def test_root_itself_is_allowed(roots: DataRoots, tmp_path: Path) -> None:
    assert roots.allows(tmp_path / "data")
    assert not roots.allows(tmp_path)


def test_run_label_shows_mask_strength_and_checkpoint(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    details = RunDetails(mask_strength=128.0, checkpoint="/models/page4d_v2.pt")
    record = store.save(_writer(), "walk.mp4 · 4 frames", details)
    assert record.label().endswith("walk.mp4 · 4 frames · α 128 · page4d_v2.pt")
    assert store.save(_writer(), "old run").label().endswith(" · old run")


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("/data/walk.mp4", "walk.mp4"),
        ("assets/samples/orbit_movers/clip.mp4", "orbit_movers/clip.mp4"),
        ("assets/samples/orbit_movers", "orbit_movers"),
        (["/tmp/gradio/a1/run-01.jpg", "/tmp/gradio/b2/run-02.jpg"], "run_*.jpg (2 images)"),
        (["/tmp/gradio/a1/cat.png", "/tmp/gradio/b2/dog.png"], "cat.png … dog.png (2 images)"),
        (["/tmp/gradio/a1/only.png"], "only.png"),
        ("", "clip"),
    ],
)
def test_runs_are_named_by_the_files_not_the_upload_cache(source, name: str) -> None:
    assert source_name(source) == name
