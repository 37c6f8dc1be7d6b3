"""`page4d-viewer infer | export | evaluate`: in-process through cli.main, once as a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from page4d_viewer import settings
from page4d_viewer.cli import main
from page4d_viewer.geometry import Similarity, quaternion_to_rotation
from page4d_viewer.inference import predictor
from page4d_viewer.result import export
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import MAX_TRACKS


@pytest.fixture
def result_path(make_reconstruction, tmp_path: Path) -> Path:
    return make_reconstruction(frames=4).save(tmp_path / "result.npz")


def _single_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_export_everything(
    tmp_path: Path, result_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(
        [
            "export",
            str(result_path),
            "--glb",
            str(out / "scene.glb"),
            "--ply",
            str(out / "ply"),
            "--tum",
            str(out / "traj.txt"),
            "--mp4",
            str(out / "mask.mp4"),
            "--frames",
            "1-2",
            "--conf-percentile",
            "0",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert printed.count("wrote ") == 1 + 2 + 2 + 1
    assert f"wrote {out / 'traj_masked.txt'}\n" in printed
    assert "2 camera variants" in captured.err and "--tum-variant" in captured.err
    scene = trimesh.load(out / "scene.glb", file_type="glb")
    assert sorted(n for n in scene.geometry if n.startswith("points")) == [
        "points_frame_0001",
        "points_frame_0002",
    ]
    assert sorted(p.name for p in (out / "ply").iterdir()) == ["frame_0001.ply", "frame_0002.ply"]
    assert (out / "traj_masked.txt").is_file() and (out / "traj_unmasked.txt").is_file()
    assert (out / "mask.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "nothing to export"),
        (["--glb", "x.glb", "--frames", "7"], "outside 0..3"),
        (["--glb", "x.obj"], r"end in \.glb"),
        (["--tum", "t.txt", "--tum-variant", "ground_truth"], "no 'ground_truth' cameras"),
    ],
)
def test_export_bad_input_is_one_error_line(
    tmp_path: Path,
    result_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    extra = [str(tmp_path / item) if "." in item and item[0] != "-" else item for item in extra]
    assert main(["export", str(result_path), *extra]) == 2
    line = _single_error_line(capsys.readouterr().err)
    assert re.search(message, line), line


def test_export_of_a_damaged_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["export", str(damaged), "--glb", str(tmp_path / "a.glb")]) == 2
    assert "not a readable page4d_viewer result file" in _single_error_line(capsys.readouterr().err)


def _result_with_ground_truth(make_reconstruction, tmp_path: Path) -> tuple[Reconstruction, Path]:
    """A result whose masked cameras are a similarity transform of the ground truth."""
    recon = make_reconstruction(frames=6)
    angles = np.linspace(0, 1.0, 6)
    centres = np.stack([np.cos(angles), np.sin(angles), 0.3 * angles], axis=-1) * 2.0
    extrinsics = np.tile(np.eye(4)[:3], (6, 1, 1))
    extrinsics[:, :, 3] = -centres
    recon.cameras["masked"].extrinsics[:] = extrinsics
    truth = recon.cameras["masked"].transformed(
        Similarity(0.5, quaternion_to_rotation(np.array([0.2, 0.1, 0.0, 1.0])), np.ones(3))
    )
    recon.cameras["unmasked"].extrinsics[:, :, 3] += np.random.default_rng(0).normal(0, 0.3, (6, 3))
    (gt_file,) = export.export_tum(
        Reconstruction(**{**vars(recon), "cameras": {"masked": truth}}),
        tmp_path / "groundtruth.txt",
        variant="masked",
    )
    return recon, gt_file


def test_evaluate_with_tum_ground_truth(
    make_reconstruction, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recon, gt_file = _result_with_ground_truth(make_reconstruction, tmp_path)
    result = recon.save(tmp_path / "result.npz")
    code = main(["evaluate", str(result), "--gt", str(gt_file), "--json", str(tmp_path / "m.json")])
    assert code == 0
    table = capsys.readouterr().out
    assert "masked" in table and "unmasked" in table
    rows = {row["variant"]: row for row in json.loads((tmp_path / "m.json").read_text())["rows"]}
    assert rows["masked"]["ate"] == pytest.approx(0.0, abs=1e-5)  # exact up to Sim(3)
    assert rows["unmasked"]["ate"] > 0.01


def test_evaluate_uses_stored_ground_truth(
    make_reconstruction, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recon, _ = _result_with_ground_truth(make_reconstruction, tmp_path)
    recon.cameras["ground_truth"] = recon.cameras["masked"]
    assert main(["evaluate", str(recon.save(tmp_path / "r.npz"))]) == 0
    assert "masked" in capsys.readouterr().out


def test_evaluate_without_ground_truth_is_an_error(
    result_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(result_path)]) == 2
    assert "--gt" in _single_error_line(capsys.readouterr().err)


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    from page4d_viewer.model import build_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(build_model("tiny", img_size=56), tmp_path / "tiny.safetensors")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for index in range(5):
        image = rng.integers(0, 256, size=(45, 60, 3), dtype=np.uint8)
        Image.fromarray(image).save(folder / f"{index:03d}.png")
    return folder


@pytest.mark.slow
def test_infer_with_a_checkpoint(
    tmp_path: Path,
    tiny_checkpoint: Path,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run" / "result.npz"
    code = main(
        [
            "infer",
            str(image_folder),
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
            "--max-frames",
            "2",
            "--mask-strength",
            "32",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    recon = Reconstruction.load(out)
    assert recon.num_frames == 2 and recon.image_hw == (42, 56)
    assert recon.metadata.frame_indices == [0, 4]
    assert recon.metadata.mask_strength == 32.0
    assert recon.metadata.checkpoint_name == "tiny.safetensors"
    assert recon.metadata.checkpoint_hash.startswith("sha256:")
    assert recon.metadata.timings["read"] > 0
    assert recon.variants == ("masked", "unmasked", "geometry_masked", "geometry_unmasked")
    poses = recon.metadata.geometric_poses
    assert poses is not None and poses.source == "track_head"  # tiny has one


@pytest.mark.slow
def test_infer_with_attention(
    tmp_path: Path, tiny_checkpoint: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inside.npz"
    arguments = ["infer", str(image_folder), "--out", str(out), "--checkpoint"]
    arguments += [str(tiny_checkpoint), "--max-frames", "2", "--device", "cpu", "--attention"]
    assert main(arguments) == 0
    inside = Reconstruction.load(out).inside
    assert inside is not None and inside.attention is not None
    assert inside.attention_layers == (10, 15, 19) and inside.feature_layers == (9, 19)
    assert inside.attention["masked"].shape == (3, 2, 2, 3, 4)


def test_load_model_reads_our_checkpoint(tiny_checkpoint: Path) -> None:
    model, info = predictor.load_model(tiny_checkpoint)
    assert info.name == "tiny.safetensors"
    assert info.content_hash.startswith("sha256:")
    assert info.mask_available and info.default_mask_strength == 64.0
    assert model.config.img_size == 56


def test_infer_bad_source_fails_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_model(*args: object) -> None:
        raise AssertionError("the model must not be loaded for a bad source")

    monkeypatch.setattr(predictor, "load_model", no_model)
    missing = tmp_path / "missing.mp4"
    assert main(["infer", str(missing), "--out", str(tmp_path / "r.npz")]) == 2
    assert "missing.mp4" in _single_error_line(capsys.readouterr().err)


def test_infer_without_default_model_says_pass_checkpoint(
    tmp_path: Path,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(settings.DEFAULT_CHECKPOINT_ENV, str(tmp_path / "none.safetensors"))
    assert main(["infer", str(image_folder), "--out", str(tmp_path / "r.npz")]) == 2
    line = _single_error_line(capsys.readouterr().err)
    assert "no default model is shipped" in line and "--checkpoint" in line


def test_infer_rejects_wrong_output_suffix(
    tmp_path: Path, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["infer", str(image_folder), "--out", str(tmp_path / "r.json")]) == 2
    assert "--out must end in .npz" in _single_error_line(capsys.readouterr().err)


def test_subprocess_exit_codes(tmp_path: Path, result_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "page4d_viewer.cli"]
    bad = subprocess.run(
        [*command, "export", str(tmp_path / "absent.npz"), "--glb", str(tmp_path / "a.glb")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr == f"error: no result file at {tmp_path / 'absent.npz'}\n"
    good = subprocess.run(
        [*command, "export", str(result_path), "--tum", str(tmp_path / "t.txt")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "t_masked.txt").is_file()


@pytest.mark.slow
def test_infer_then_evaluate_a_synthetic_sample(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from page4d_viewer.sources import synthetic

    clip = synthetic.make_clip(5, num_frames=3, width=80, height=60, camera="orbit")
    sample = synthetic.save_ground_truth(clip, tmp_path / "sample")
    out = tmp_path / "result.npz"
    args = ["infer", str(sample / "clip.mp4"), "--out", str(out), "--checkpoint"]
    assert main([*args, str(tiny_checkpoint), "--device", "cpu"]) == 0
    assert Reconstruction.load(out).variants == (
        "masked",
        "unmasked",
        "geometry_masked",
        "geometry_unmasked",
        "ground_truth",
    )
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json", str(tmp_path / "m.json")]) == 0
    table = capsys.readouterr().out
    assert "masked" in table and "AbsRel" in table and "mask IoU" in table
    report = json.loads((tmp_path / "m.json").read_text())
    assert {row["variant"] for row in report["rows"]} == {
        "masked",
        "unmasked",
        "geometry_masked",
        "geometry_unmasked",
    }


def test_an_unwritable_output_path_is_one_error_line(
    tmp_path: Path, result_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["export", str(result_path), "--tum", str(blocker / "sub" / "traj.txt")]) == 2
    line = _single_error_line(capsys.readouterr().err)
    assert "a-file" in line, line


def test_infer_refuses_an_unwritable_output_before_loading_a_model(
    tmp_path: Path,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not be loaded for an unwritable --out")

    monkeypatch.setattr(predictor, "load_model", no_model)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "sub" / "r.npz"
    assert main(["infer", str(image_folder), "--out", str(out)]) == 2
    assert "cannot create the output folder" in _single_error_line(capsys.readouterr().err)


def test_export_tum_variant_uses_exactly_the_given_name(
    tmp_path: Path, result_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "traj.txt"
    assert (
        main(["export", str(result_path), "--tum", str(target), "--tum-variant", "unmasked"]) == 0
    )
    captured = capsys.readouterr()
    assert captured.out == f"wrote {target}\n" and captured.err == ""
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".txt") == ["traj.txt"]


# ------------------------------------------------------------------------------ point tracks


def _infer_tracks(
    few_layer_model,
    image_folder: Path,
    tmp_path: Path,
    *,
    track_head: bool,
    frames: int,
    tracks: int,
) -> tuple[int, Path]:
    """`infer` on the CPU with a saved few-layer checkpoint (with or without its track head),
    `frames` frames of `image_folder` and `tracks` point tracks: (exit code, result path)."""
    from page4d_viewer.model import save_checkpoint

    model = few_layer_model(has_track_head=track_head)
    checkpoint = save_checkpoint(model, tmp_path / "few_layers.safetensors")
    out = tmp_path / "r.npz"
    arguments = ["infer", str(image_folder), "--out", str(out), "--checkpoint", str(checkpoint)]
    arguments += ["--max-frames", str(frames), "--device", "cpu", "--tracks", str(tracks)]
    return main(arguments), out


@pytest.mark.parametrize("count", ["-1", str(MAX_TRACKS + 1)])
def test_infer_refuses_a_track_count_before_loading_a_model(
    tmp_path: Path,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    count: str,
) -> None:
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not be loaded for a bad --tracks")

    monkeypatch.setattr(predictor, "load_model", no_model)
    out = tmp_path / "r.npz"
    assert main(["infer", str(image_folder), "--out", str(out), "--tracks", count]) == 2
    line = _single_error_line(capsys.readouterr().err)
    assert "--tracks" in line and f"0..{MAX_TRACKS}" in line and count in line
    assert not out.exists()


def test_infer_tracks_with_a_checkpoint_without_track_head_is_one_error_line(
    tmp_path: Path, few_layer_model, image_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _infer_tracks(
        few_layer_model, image_folder, tmp_path, track_head=False, frames=2, tracks=4
    )
    assert code == 2
    assert "no track head" in _single_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_infer_with_tracks(
    tmp_path: Path,
    few_layer_model,
    image_folder: Path,
    capsys: pytest.CaptureFixture[str],
    one_torch_thread: None,
) -> None:
    code, out = _infer_tracks(
        few_layer_model, image_folder, tmp_path, track_head=True, frames=3, tracks=5
    )
    assert code == 0
    assert "5 point tracks" in capsys.readouterr().out
    recon = Reconstruction.load(out)
    assert recon.tracks is not None and recon.tracks.num_tracks == 5
    assert recon.tracks.xy.shape == (3, 5, 2)
    # automatic seeds sit on one frame, at patch centres inside the 56 x 42 input
    assert len(set(recon.tracks.query_frame.tolist())) == 1
    query = recon.tracks.query_xy
    assert (query >= 0).all() and (query[:, 0] < 56).all() and (query[:, 1] < 42).all()


def _tracked_result(make_reconstruction, tmp_path: Path) -> Path:
    from page4d_viewer.result.tracks import Tracks

    xy = np.array([[[3, 4], [40, 1]], [[4, 5], [-2, 1]], [[5, 5], [41, 27]]], dtype=np.float32)
    tracks = Tracks(xy, np.full((3, 2), 0.9), np.full((3, 2), 0.8), np.array([0, 2]))
    return make_reconstruction(frames=3, tracks=tracks).save(tmp_path / "tracked.npz")


def test_export_tracks_csv_and_glb(
    make_reconstruction, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv

    from page4d_viewer.result.tracks import lift

    result = _tracked_result(make_reconstruction, tmp_path)
    csv_path, glb_path = tmp_path / "out" / "tracks.csv", tmp_path / "out" / "scene.glb"
    arguments = ["export", str(result), "--tracks-csv", str(csv_path), "--glb", str(glb_path)]
    assert main([*arguments, "--tracks-source", "depth_unmasked"]) == 0
    assert f"wrote {csv_path}\n" in capsys.readouterr().out
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = lift(Reconstruction.load(result), "depth_unmasked")
    assert len(rows) == 2 * 3
    for row in rows:
        values = [float(row[axis]) if row[axis] else np.nan for axis in "XYZ"]
        np.testing.assert_array_equal(
            np.float32(values), expected[int(row["frame"]), int(row["track"])]
        )
    # track 0 joins frames 0-1-2, track 1 is off the image on frame 1: two segments
    tracks = trimesh.load(glb_path, file_type="glb").geometry["tracks"]
    assert len(tracks.vertices) == 2 * 2
    assert main([*arguments, "--no-tracks"]) == 0
    assert "tracks" not in trimesh.load(glb_path, file_type="glb").geometry


def test_export_tracks_csv_of_a_result_without_tracks_writes_nothing(
    tmp_path: Path, result_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    glb = tmp_path / "scene.glb"
    arguments = ["export", str(result_path), "--glb", str(glb), "--tracks-csv"]
    assert main([*arguments, str(tmp_path / "t.csv")]) == 2
    assert "has no point tracks" in _single_error_line(capsys.readouterr().err)
    assert not glb.exists()
    assert main([*arguments, str(tmp_path / "t.txt")]) == 2
    assert "--tracks-csv must end in .csv" in _single_error_line(capsys.readouterr().err)
