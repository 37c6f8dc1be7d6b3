"""'Safe to share': confinement of every file read, budgets before work, damaged results, the
runs folder, and CLI arguments checked before the model loads."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeScene, png_header
from PIL import Image

from page4d_viewer.cli import main
from page4d_viewer.errors import Page4DError, ResultFileError
from page4d_viewer.model.config import ModelConfig, check_budget
from page4d_viewer.result.reconstruction import Cameras, Reconstruction
from page4d_viewer.sources.clip import load_clip
from page4d_viewer.sources.confine import SourceNotAllowedError
from page4d_viewer.sources.sampling import FrameSampling
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore


def small_recon(frames: int = 3, size: tuple[int, int] = (28, 42)) -> Reconstruction:
    height, width = size
    extrinsics = np.tile(np.eye(3, 4), (frames, 1, 1))
    extrinsics[:, 0, 3] = np.arange(frames) * 0.1
    intrinsics = np.tile(
        np.array([[30.0, 0, width / 2], [0, 30.0, height / 2], [0, 0, 1]]), (frames, 1, 1)
    )
    rng = np.random.default_rng(1)
    depth = rng.uniform(1, 2, (frames, height, width)).astype(np.float32)
    return Reconstruction(
        images=np.full((frames, height, width, 3), 90, np.uint8),
        depth=depth,
        depth_conf=np.ones_like(depth) * 2,
        points=rng.normal(size=(frames, height, width, 3)).astype(np.float32),
        points_conf=np.ones_like(depth) * 2,
        cameras={"masked": Cameras(extrinsics, intrinsics)},
        mask_score=np.zeros((frames, 2, 3), np.float32),
    )


def rewrite(path: Path, **arrays: np.ndarray) -> None:
    with np.load(path) as archive:
        content = {name: archive[name] for name in archive.files}
    content.update(arrays)
    np.savez_compressed(path, **content)


def png(path: Path, size: int = 32) -> Path:
    Image.new("RGB", (size, size), (10, 200, 30)).save(path)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- confinement


def test_a_folder_of_links_to_images_elsewhere_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tmp_path / "data" / "clip"
    data.mkdir(parents=True)
    for index in range(2):
        (data / f"{index}.png").symlink_to(png(outside / f"{index}.png"))
    roots = [tmp_path / "data"]
    with pytest.raises(SourceNotAllowedError, match="outside the allowed"):
        load_clip(data, roots=roots)
    load_clip(data)  # the command line (no roots) may read anywhere
    controller = ViewerController(FakeScene(), RunStore(tmp_path / "runs"), DataRoots(roots))
    with pytest.raises(Page4DError, match="outside the allowed"):
        controller.resolve_source("path", None, None, "clip")


def test_a_fifo_in_a_data_root_is_refused_without_blocking(tmp_path: Path) -> None:
    (tmp_path / "clip").mkdir()
    png(tmp_path / "clip" / "0.png")
    os.mkfifo(tmp_path / "clip" / "1.png")
    os.mkfifo(tmp_path / "pipe.mp4")
    with pytest.raises(SourceNotAllowedError, match="not a regular file"):
        load_clip(tmp_path / "clip")
    with pytest.raises(SourceNotAllowedError, match="not a regular file"):
        load_clip(tmp_path / "pipe.mp4", roots=[tmp_path])


def test_a_zip_member_climbing_out_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buffer, "PNG")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as archive:
        archive.writestr("../../etc/0.png", buffer.getvalue())
    with pytest.raises(Page4DError, match="escape"):
        load_clip(tmp_path / "bad.zip", roots=[tmp_path])


# --------------------------------------------------------------------------------- budgets


def test_huge_frames_are_refused_from_their_headers(tmp_path: Path) -> None:
    for index in range(4):
        (tmp_path / f"{index}.png").write_bytes(png_header(8192, 8192))
    with pytest.raises(Page4DError, match="PAGE4D_MAX_FRAME_PIXELS"):
        load_clip(tmp_path)


def test_clip_pixels_and_frame_count_are_budgeted(tmp_path: Path, monkeypatch) -> None:
    for index in range(3):
        png(tmp_path / f"{index}.png")
    monkeypatch.setenv("PAGE4D_MAX_FRAMES", "2")
    with pytest.raises(Page4DError, match="PAGE4D_MAX_FRAMES"):
        load_clip(tmp_path)
    monkeypatch.setenv("PAGE4D_MAX_FRAMES", "10")
    monkeypatch.setenv("PAGE4D_MAX_CLIP_PIXELS", str(2 * 32 * 32))
    with pytest.raises(Page4DError, match="PAGE4D_MAX_CLIP_PIXELS"):
        load_clip(tmp_path)
    assert load_clip(tmp_path, FrameSampling(max_frames=2)).num_frames == 2


def test_a_zip_bomb_is_refused_from_its_directory(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"{index}.png", b"\0" * (400 * 1024**2))
    with pytest.raises(Page4DError, match="PAGE4D_MAX_ZIP_BYTES"):
        load_clip(tmp_path / "bomb.zip")


def test_zip_member_count_is_budgeted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PAGE4D_MAX_ZIP_MEMBERS", "5")
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as archive:
        for index in range(6):
            archive.writestr(f"{index}.txt", b"x")
    with pytest.raises(Page4DError, match="PAGE4D_MAX_ZIP_MEMBERS"):
        load_clip(tmp_path / "many.zip")


@pytest.mark.parametrize("fps", [1e308, 1e20, 1e7, float("inf")])
def test_fps_has_an_upper_bound(fps: float) -> None:
    with pytest.raises(Page4DError, match="fps"):
        FrameSampling(fps=fps)


@pytest.mark.parametrize("fps", ["1e308", "1e20", "1e7"])
def test_cli_refuses_a_huge_fps_in_one_line(tmp_path, fps, capsys) -> None:
    png(tmp_path / "a.png")
    code = main(["infer", str(tmp_path / "a.png"), "--out", str(tmp_path / "r.npz"), "--fps", fps])
    assert code == 2
    assert "fps" in one_error_line(capsys)


def test_an_upload_over_the_budget_is_refused(tmp_path: Path, monkeypatch) -> None:
    upload = tmp_path / "clip.mp4"
    upload.write_bytes(b"\0" * 2048)
    monkeypatch.setenv("PAGE4D_MAX_UPLOAD_BYTES", "1024")
    controller = ViewerController(FakeScene(), RunStore(tmp_path / "runs"), DataRoots([tmp_path]))
    with pytest.raises(Page4DError, match="PAGE4D_MAX_UPLOAD_BYTES"):
        controller.resolve_source("upload", None, [str(upload)], None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"depth": 100000},
        {"embed_dim": 65536, "num_heads": 16, "encoder_heads": 16},
        {"track_iterations": 10**9},
    ],
)
def test_a_hostile_model_config_is_refused_before_building(overrides) -> None:
    config = ModelConfig.from_name("tiny", **overrides)
    with pytest.raises(Page4DError, match="PAGE4D_MAX_MODEL"):
        check_budget(config)
    check_budget(ModelConfig.from_name("official"))


def test_a_checkpoint_with_a_hostile_config_is_refused_before_its_tensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from page4d_viewer.errors import CheckpointError
    from page4d_viewer.model.checkpoint import FORMAT_NAME, FORMAT_VERSION, load_checkpoint

    config = ModelConfig.from_name("tiny", depth=200000).to_json()
    path = tmp_path / "evil.safetensors"
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config}
    save_file({"x": np.zeros(2, np.float32)}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="PAGE4D_MAX_MODEL_BLOCKS"):
        load_checkpoint(path)


# ------------------------------------------------------------------------- damaged results


def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path: Path) -> None:
    path = small_recon().save(tmp_path / "r.npz")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((3, 28, 42), np.float16))
    header["shape"] = (10**6, 10**3, 10**3)
    raw = io.BytesIO()
    np.lib.format.write_array_header_1_0(raw, header)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("gt_depth.npy", raw.getvalue())
    with pytest.raises(ResultFileError, match="gt_depth"):
        Reconstruction.load(path)


def test_nan_cameras_are_refused_and_nan_geometry_is_flagged(tmp_path: Path, capsys) -> None:
    path = small_recon().save(tmp_path / "r.npz")
    extrinsics = np.tile(np.eye(3, 4), (3, 1, 1))
    extrinsics[1] = np.nan
    rewrite(path, **{"cameras.masked.extrinsics": extrinsics})
    with pytest.raises(ResultFileError, match="NaN"):
        Reconstruction.load(path)
    assert main(["export", str(path), "--tum", str(tmp_path / "t.txt")]) == 2
    assert "NaN" in one_error_line(capsys)

    path = small_recon().save(tmp_path / "g.npz")
    points = np.full((3, 28, 42, 3), np.nan, np.float16)
    rewrite(path, points=points, depth=np.full((3, 28, 42), np.nan, np.float16))
    recon = Reconstruction.load(path)
    assert recon.bad_frames == (0, 1, 2)
    assert main(["export", str(path), "--glb", str(tmp_path / "s.glb")]) == 2
    assert "NaN" in one_error_line(capsys)
    assert main(["evaluate", str(path), "--gt", str(tmp_path)]) == 2
    assert "NaN" in one_error_line(capsys)


def test_some_nan_frames_are_skipped_by_export(tmp_path: Path, capsys) -> None:
    path = small_recon().save(tmp_path / "g.npz")
    depth = np.ones((3, 28, 42), np.float16)
    depth[1] = np.nan
    rewrite(path, depth=depth)
    assert Reconstruction.load(path).bad_frames == (1,)
    assert main(["export", str(path), "--ply", str(tmp_path / "ply")]) == 0
    assert "skipped 1 frame" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("preprocessing", "crop"),
        ("timings", [1, 2]),
        ("timings", {"model": "fast"}),
        ("timestamps", ["0", "1", "2"]),
        ("timestamps", [0.0, float("nan"), 1.0]),
        ("mask_strength", "64"),
        ("mask_strength", None),
        ("frame_indices", [0.5, 1, 2]),
        ("extra", {"clip_notes": 5}),
        ("source", 12),
    ],
)
def test_metadata_of_the_wrong_type_is_one_error(tmp_path: Path, field: str, value) -> None:
    path = small_recon().save(tmp_path / "r.npz")
    metadata = small_recon().metadata.to_dict()
    metadata[field] = value
    rewrite(path, metadata_json=np.asarray(json.dumps(metadata)))
    with pytest.raises(ResultFileError, match=field):
        Reconstruction.load(path)


def test_a_non_integer_format_version_is_one_error(tmp_path: Path) -> None:
    path = small_recon().save(tmp_path / "r.npz")
    rewrite(path, format_version=np.asarray(1.5))
    with pytest.raises(ResultFileError, match="format_version"):
        Reconstruction.load(path)


def test_a_failed_open_leaves_the_shown_result(tmp_path: Path) -> None:
    scene = FakeScene()
    controller = ViewerController(scene, RunStore(tmp_path / "runs"), DataRoots([tmp_path]))
    good = controller.open_result(small_recon().save(tmp_path / "good.npz"))
    bad = small_recon().save(tmp_path / "bad.npz")
    rewrite(bad, format_version=np.asarray("one"))
    with pytest.raises(ResultFileError):
        controller.open_result(bad)
    assert controller.current is good and controller.version == 1
    # The scene took it down to say what loads, then showed it again when loading failed.
    assert scene.shown == [good.recon, good.recon]


# ----------------------------------------------------------------------------- runs folder


def test_a_read_only_runs_folder_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs").chmod(0o500)
    try:
        if os.access(tmp_path / "runs", os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(Page4DError, match="not writable"):
            RunStore(tmp_path / "runs").prepare()
    finally:
        (tmp_path / "runs").chmod(0o700)


def test_a_read_only_runs_folder_in_the_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    from page4d_viewer.cli.serving import prepare_runs_folder

    monkeypatch.setenv("GRADIO_TEMP_DIR", "placeholder")
    monkeypatch.delenv("GRADIO_TEMP_DIR")  # recorded, so restored after the test
    with pytest.raises(Page4DError, match="runs folder"):
        prepare_runs_folder(tmp_path / "file" / "runs")
    assert "GRADIO_TEMP_DIR" not in os.environ


def test_stale_staging_and_uploads_are_cleaned_at_start(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    old, fresh = store.root / ".staging-old", store.root / ".staging-fresh"
    upload = store.uploads_dir / "abc" / "clip.mp4"
    for folder in (old, fresh, upload.parent):
        folder.mkdir(parents=True)
    upload.write_bytes(b"x")
    os.utime(old, (0, 0))
    os.utime(upload.parent, (0, 0))
    store.prepare()
    assert not old.exists() and fresh.exists() and not upload.exists()


def test_runs_can_be_paged_searched_pinned_and_budgeted(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    store = RunStore(tmp_path / "runs")
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def write(path: Path) -> None:
        path.write_bytes(b"\0" * 1000)

    ids = [
        store.save(
            write, f"clip{index}.mp4 · 3 frames", now=start + timedelta(minutes=index)
        ).run_id
        for index in range(60)
    ]
    assert len(store.list(limit=50)) == 50
    assert [r.run_id for r in store.list(limit=10, offset=50)] == ids[9::-1]
    assert [r.run_id for r in store.list(query="CLIP7.mp4")] == [ids[7]]
    store.pin(ids[0])
    budgeted = RunStore(tmp_path / "runs", max_bytes=5 * 1500)
    removed = budgeted.prune()
    left = {record.run_id for record in budgeted.list(limit=None)}
    assert ids[0] in left and ids[-1] in left and ids[1] in removed
    assert sum(f.stat().st_size for f in budgeted.root.rglob("*") if f.is_file()) <= 5 * 1500


# ---------------------------------------------------------------------------------- the CLI


def test_infer_checks_gt_and_out_before_the_model(tmp_path: Path, capsys, monkeypatch) -> None:
    from page4d_viewer.inference import predictor

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(predictor, "load_model", no_model)
    png(tmp_path / "a.png")
    (tmp_path / "out.npz").mkdir()
    assert main(["infer", str(tmp_path / "a.png"), "--out", str(tmp_path / "out.npz")]) == 2
    line = one_error_line(capsys)
    assert "existing folder" in line and ".tmp" not in line
    code = main(
        [
            "infer",
            str(tmp_path / "a.png"),
            "--out",
            str(tmp_path / "r.npz"),
            "--gt",
            str(tmp_path / "no"),
        ]
    )
    assert code == 2 and "--gt" in one_error_line(capsys)


def test_a_raw_pickle_checkpoint_is_refused_without_torch_warnings(tmp_path: Path) -> None:
    """Issue 21, finding 11: a raw pickle printed two torch warnings before its error line."""
    import pickle
    import warnings

    from page4d_viewer.errors import CheckpointError
    from page4d_viewer.model.checkpoint import load_checkpoint

    path = tmp_path / "raw.pt"
    path.write_bytes(pickle.dumps({"model": FakeScene}, protocol=4))  # a class: code on load
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="holds more than weights"):
            load_checkpoint(path)
    assert [str(warning.message) for warning in caught] == []
