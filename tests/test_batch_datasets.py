"""`sources.datasets`: each dataset layout yields the right clip names and ground truth."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from page4d_viewer.sources.datasets import (
    DatasetClip,
    DatasetError,
    discover_clips,
    synthetic_clips,
)
from page4d_viewer.sources.groundtruth import SINTEL_TAG, load_ground_truth


def _write_images(folder: Path, names: list[str], size: tuple[int, int] = (32, 24)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(names))
    for name in names:
        pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)


def _write_sintel_cam(path: Path, tx: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    intrinsics = [20.0, 0, 16, 0, 20.0, 12, 0, 0, 1]
    extrinsics = [1.0, 0, 0, tx, 0, 1, 0, 0, 0, 0, 1, 0]
    path.write_bytes(struct.pack("<f", SINTEL_TAG) + struct.pack("<21d", *intrinsics, *extrinsics))


def _by_name(clips: list[DatasetClip]) -> dict[str, DatasetClip]:
    return {clip.name: clip for clip in clips}


def test_sintel_layout(tmp_path: Path) -> None:
    training = tmp_path / "MPI-Sintel" / "training"
    for sequence, count in (("alley_1", 3), ("market_2", 2)):
        frames = [f"frame_{i:04d}.png" for i in range(1, count + 1)]
        _write_images(training / "final" / sequence, frames)
        _write_images(training / "clean" / sequence, frames)
        for i in range(1, count + 1):
            _write_sintel_cam(training / "camdata_left" / sequence / f"frame_{i:04d}.cam", i)
    for root in (training, training.parent):  # the training folder, or the folder above
        clips = _by_name(discover_clips(root))
        assert sorted(clips) == ["alley_1", "market_2"]
        alley = clips["alley_1"]
        assert alley.layout == "sintel"
        assert alley.source == training / "final" / "alley_1"  # final before clean
        assert alley.ground_truth == training / "camdata_left" / "alley_1"
        assert alley.frame_count == 3
    truth = load_ground_truth(clips["alley_1"].ground_truth)
    assert truth.num_frames == 3
    np.testing.assert_allclose(truth.extrinsics[:, 0, 3], [1, 2, 3])


def test_sintel_clean_only(tmp_path: Path) -> None:
    _write_images(tmp_path / "clean" / "cave_2", ["frame_0001.png", "frame_0002.png"])
    _write_sintel_cam(tmp_path / "camdata_left" / "cave_2" / "frame_0001.cam", 0)
    _write_sintel_cam(tmp_path / "camdata_left" / "cave_2" / "frame_0002.cam", 1)
    (clip,) = discover_clips(tmp_path)
    assert (clip.name, clip.source.parent.name) == ("cave_2", "clean")


def _write_tum_sequence(folder: Path, times: list[float]) -> None:
    _write_images(folder / "rgb", [f"{t:.6f}.png" for t in times])
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    lines += [f"{t:.6f} {0.1 * i} 0 0 0 0 0 1" for i, t in enumerate(times)]
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")


def test_tum_and_bonn_layouts(tmp_path: Path) -> None:
    _write_tum_sequence(tmp_path / "rgbd_bonn_balloon", [1.0, 1.1, 1.2])
    _write_tum_sequence(tmp_path / "rgbd_dataset_freiburg3_walking_xyz", [5.0, 5.1])
    (tmp_path / "notes").mkdir()  # neither images nor a sequence: not a clip
    clips = _by_name(discover_clips(tmp_path))
    assert sorted(clips) == ["rgbd_bonn_balloon", "rgbd_dataset_freiburg3_walking_xyz"]
    balloon = clips["rgbd_bonn_balloon"]
    assert (balloon.layout, balloon.frame_count) == ("tum", 3)
    assert balloon.source == tmp_path / "rgbd_bonn_balloon" / "rgb"
    assert balloon.ground_truth == tmp_path / "rgbd_bonn_balloon"
    assert load_ground_truth(balloon.ground_truth, frame_indices=[0, 2]).num_frames == 2
    # One sequence given directly is a dataset of one clip.
    (single,) = discover_clips(tmp_path / "rgbd_bonn_balloon")
    assert single == balloon


def test_davis_layout(tmp_path: Path) -> None:
    root = tmp_path / "DAVIS"
    _write_images(root / "JPEGImages" / "480p" / "bear", ["00000.jpg", "00001.jpg"])
    _write_images(root / "JPEGImages" / "480p" / "blackswan", ["00000.jpg"])
    _write_images(root / "JPEGImages" / "Full-Resolution" / "bear", ["00000.jpg"])
    clips = _by_name(discover_clips(root))
    assert sorted(clips) == ["bear", "blackswan"]
    assert clips["bear"].source == root / "JPEGImages" / "480p" / "bear"
    assert clips["bear"].ground_truth is None
    assert (clips["bear"].layout, clips["bear"].frame_count) == ("davis", 2)


def test_folder_of_image_folders_videos_and_samples(tmp_path: Path) -> None:
    from page4d_viewer.sources.synthetic import make_clip, save_ground_truth

    _write_images(tmp_path / "walk10", ["a.png", "b.png"])
    _write_images(tmp_path / "walk2", ["a.png"])
    sample = save_ground_truth(make_clip(5, num_frames=3, width=64, height=48), tmp_path / "s")
    shutil.copy(sample / "clip.mp4", tmp_path / "street.mp4")
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "readme.txt").write_text("ignored")
    clips = discover_clips(tmp_path)
    assert [clip.name for clip in clips] == ["broken", "s", "street", "walk2", "walk10"]
    named = _by_name(clips)
    assert (named["s"].layout, named["s"].ground_truth, named["s"].frame_count) == (
        "synthetic",
        sample,
        3,
    )
    assert (named["street"].layout, named["street"].ground_truth) == ("video", None)
    assert named["street"].frame_count == 3
    # Listed, so that the batch records why it fails; its length is unknown.
    assert (named["broken"].layout, named["broken"].frame_count) == ("video", 0)
    assert named["walk10"].layout == "images"
    # One video is a dataset of one clip.
    assert [clip.name for clip in discover_clips(tmp_path / "street.mp4")] == ["street"]


def test_synthetic_set_renders_on_demand(tmp_path: Path) -> None:
    clips = synthetic_clips([7, 8], tmp_path / "cache", num_frames=3, width=64, height=48)
    assert [clip.name for clip in clips] == ["synthetic-7", "synthetic-8"]
    assert not clips[0].source.exists()
    clips[0].prepare()
    assert clips[0].source.is_file()
    truth = load_ground_truth(clips[0].ground_truth)
    assert (truth.num_frames, truth.image_hw) == (3, (48, 64))
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary folder left behind
    mtime = clips[0].source.stat().st_mtime_ns
    clips[0].prepare()  # already there: not rendered again
    assert clips[0].source.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("make", ["missing", "empty", "text file"])
def test_no_dataset_is_one_clear_error(tmp_path: Path, make: str) -> None:
    path = tmp_path / "data"
    if make == "empty":
        path.mkdir()
    elif make == "text file":
        path = tmp_path / "data.txt"
        path.write_text("x")
    with pytest.raises(DatasetError, match="not found|no clip found|neither"):
        discover_clips(path)
