"""Ground-truth readers: small hand-made files of each format, read back with conventions."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from page4d_viewer.errors import Page4DError
from page4d_viewer.sources import synthetic
from page4d_viewer.sources.groundtruth import (
    SINTEL_TAG,
    GroundTruth,
    GroundTruthError,
    associate_timestamps,
    load_ground_truth,
    read_sintel_cam,
    read_sintel_depth,
    read_tum_trajectory,
)

# Quaternion (x, y, z, w) of a 90 degree turn about z: camera x axis -> world y axis.
QUARTER_TURN_Z = (0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4))


def write_tum_sequence(folder: Path, pose_times, frame_times, centers=None, quats=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# ground truth trajectory", "# timestamp tx ty tz qx qy qz qw", ""]
    for i, time in enumerate(pose_times):
        center = centers[i] if centers is not None else (0.1 * i, 0.0, 0.0)
        quat = quats[i] if quats is not None else (0.0, 0.0, 0.0, 1.0)
        lines.append(f"{time:.4f} " + " ".join(f"{v:.6f}" for v in (*center, *quat)))
    (folder / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    rgb = ["# color images"] + [f"{t:.6f} rgb/{t:.6f}.png" for t in frame_times]
    (folder / "rgb.txt").write_text("\n".join(rgb) + "\n")
    return folder


def test_tum_pose_is_inverted_to_camera_from_world(tmp_path):
    folder = write_tum_sequence(
        tmp_path / "seq",
        [100.0, 100.01],
        [100.0],
        centers=[(1, 2, 3), (1, 2, 3)],
        quats=[QUARTER_TURN_Z, QUARTER_TURN_Z],
    )
    truth = load_ground_truth(folder)
    assert truth.source_format == "tum"
    extrinsic = truth.extrinsics[0]
    # The camera centre maps to the camera origin ...
    np.testing.assert_allclose(extrinsic @ [1, 2, 3, 1], 0, atol=1e-12)
    # ... and a point one unit along world +y lies on the camera's +x axis.
    np.testing.assert_allclose(extrinsic @ [1, 3, 3, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(extrinsic[:, :3], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_tum_frames_are_associated_to_the_nearest_pose(tmp_path):
    pose_times = 1000.0 + 0.01 * np.arange(50)  # 100 Hz
    frame_times = 1000.0 + np.array([0.0004, 0.0333, 0.0667, 0.1, 0.1333])
    folder = write_tum_sequence(tmp_path / "seq", pose_times, frame_times)
    truth = load_ground_truth(folder / "groundtruth.txt", frame_indices=[1, 3, 4])
    np.testing.assert_allclose(truth.timestamps, [1000.03, 1000.10, 1000.13])
    np.testing.assert_allclose(truth.extrinsics[:, 0, 3], [-0.3, -1.0, -1.3], atol=1e-9)
    assert truth.depth is None and truth.intrinsics is None

    # Absolute timestamps from the caller win; relative ones (a video's) fall back to rgb.txt.
    direct = load_ground_truth(folder, timestamps=[1000.2, 1000.205], frame_indices=[0, 1])
    np.testing.assert_allclose(direct.timestamps, [1000.2, 1000.2])
    relative = load_ground_truth(folder, timestamps=[0.0, 0.033], frame_indices=[0, 1])
    np.testing.assert_allclose(relative.timestamps, [1000.0, 1000.03])


def test_tum_frame_times_come_from_rgb_file_names_without_rgb_txt(tmp_path):
    folder = write_tum_sequence(tmp_path / "seq", 5.0 + 0.01 * np.arange(20), [])
    (folder / "rgb.txt").unlink()
    (folder / "rgb").mkdir()
    for name in ("5.100000.png", "5.050000.png", "notes.png"):
        (folder / "rgb" / name).write_bytes(b"")
    truth = load_ground_truth(folder)
    np.testing.assert_allclose(truth.timestamps, [5.05, 5.10])


def test_tum_depth_pngs_are_read_in_metres(tmp_path):
    folder = write_tum_sequence(tmp_path / "seq", 7.0 + 0.01 * np.arange(10), [7.0, 7.05])
    (folder / "depth").mkdir()
    listing = ["# depth maps"]
    for i, time in enumerate((7.001, 7.049)):
        raw = np.full((3, 4), 5000 * (i + 1), dtype=np.uint16)
        raw[0, 0] = 0
        Image.fromarray(raw).save(folder / "depth" / f"{time}.png")
        listing.append(f"{time} depth/{time}.png")
    (folder / "depth.txt").write_text("\n".join(listing) + "\n")
    truth = load_ground_truth(folder)
    assert truth.depth.shape == (2, 3, 4)
    assert truth.depth[1, 1, 1] == pytest.approx(2.0)
    assert truth.depth[0, 0, 0] == 0.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1.0 0 0 0 0 0 0 1\n2.0 0 0 zero 0 0 0 1\n", "line 2"),
        ("1.0 0 0 0 0 0 1\n", "8 finite numbers"),
        ("1.0 0 0 0 0 0 0 0\n", "zero-length quaternion"),
        ("# only a comment\n", "no pose"),
    ],
)
def test_malformed_tum_files_are_rejected(tmp_path, content, message):
    path = tmp_path / "groundtruth.txt"
    path.write_text(content)
    with pytest.raises(GroundTruthError, match=message) as info:
        read_tum_trajectory(path)
    assert "\n" not in str(info.value)


def test_a_frame_without_a_close_pose_is_an_error(tmp_path):
    folder = write_tum_sequence(tmp_path / "seq", [1.0, 1.01, 1.5], [1.0, 1.25])
    with pytest.raises(GroundTruthError, match=r"frame 1 .* no ground-truth pose within 0\.02"):
        load_ground_truth(folder)
    assert load_ground_truth(folder, max_time_difference=0.3).num_frames == 2
    with pytest.raises(GroundTruthError, match="out of range"):
        load_ground_truth(folder, frame_indices=[5])


def test_tum_without_frame_times_asks_for_them(tmp_path):
    path = tmp_path / "groundtruth.txt"
    path.write_text("1.0 0 0 0 0 0 0 1\n")
    with pytest.raises(GroundTruthError, match="pass timestamps"):
        load_ground_truth(path)


def test_associate_picks_the_nearest_time_on_either_side():
    reference = np.array([0.0, 0.1, 0.2])
    np.testing.assert_array_equal(
        associate_timestamps(np.array([-0.01, 0.04, 0.06, 0.21]), reference, 0.05), [0, 0, 1, 2]
    )
    np.testing.assert_array_equal(associate_timestamps(np.array([3.0]), np.array([3.0]), 0), [0])


# ------------------------------------------------------------------------------ Sintel


def write_cam(path: Path, intrinsics: np.ndarray, extrinsics: np.ndarray) -> None:
    data = struct.pack("<f", SINTEL_TAG) + struct.pack("<9d", *intrinsics.ravel())
    path.write_bytes(data + struct.pack("<12d", *extrinsics.ravel()))


def write_dpt(path: Path, depth: np.ndarray) -> None:
    header = struct.pack("<fii", SINTEL_TAG, depth.shape[1], depth.shape[0])
    path.write_bytes(header + depth.astype("<f4").tobytes())


def sintel_extrinsic(index: int) -> np.ndarray:
    return np.array([[0.0, -1, 0, index], [1, 0, 0, 2], [0, 0, 1, 3]])


def write_sintel_scene(root: Path, frames: int = 12, with_masks: bool = False) -> Path:
    cams, depths = root / "camdata_left" / "alley_1", root / "depth" / "alley_1"
    cams.mkdir(parents=True)
    depths.mkdir(parents=True)
    intrinsics = np.array([[1120.0, 0, 511.5], [0, 1120, 217.5], [0, 0, 1]])
    for i in range(1, frames + 1):
        write_cam(cams / f"frame_{i}.cam", intrinsics, sintel_extrinsic(i))
        write_dpt(depths / f"frame_{i}.dpt", np.full((2, 3), float(i), np.float32))
    if with_masks:
        masks = root / "dynamic_label_perfect" / "alley_1"
        masks.mkdir(parents=True)
        for i in range(1, frames + 1):
            label = np.zeros((2, 3), np.uint8)
            label[0, i % 3] = 255
            Image.fromarray(label).save(masks / f"frame_{i}.png")
    return cams


def test_sintel_cam_and_dpt_round_trip(tmp_path):
    intrinsics = np.array([[1.0, 0, 2], [0, 3, 4], [0, 0, 1]])
    write_cam(tmp_path / "a.cam", intrinsics, sintel_extrinsic(7))
    read_k, read_e = read_sintel_cam(tmp_path / "a.cam")
    np.testing.assert_array_equal(read_k, intrinsics)
    np.testing.assert_array_equal(read_e, sintel_extrinsic(7))  # already world-to-camera
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_dpt(tmp_path / "a.dpt", depth)
    np.testing.assert_array_equal(read_sintel_depth(tmp_path / "a.dpt"), depth)


def test_sintel_scene_folders_are_natural_sorted_and_matched(tmp_path):
    cams = write_sintel_scene(tmp_path, frames=12, with_masks=True)
    truth = load_ground_truth(cams, frame_indices=[0, 1, 9], image_hw=None)
    assert truth.source_format == "sintel"
    # frame_2 comes second, not frame_10.
    np.testing.assert_array_equal(truth.extrinsics[:, 0, 3], [1, 2, 10])
    np.testing.assert_array_equal(truth.depth[:, 0, 0], [1, 2, 10])
    assert truth.intrinsics.shape == (3, 3, 3)
    np.testing.assert_array_equal(truth.dynamic_mask[1, 0], [False, False, True])
    # The depth folder finds its camera folder too.
    from_depth = load_ground_truth(tmp_path / "depth" / "alley_1")
    assert from_depth.num_frames == 12 and from_depth.extrinsics is not None


def test_sintel_maps_are_resized_to_the_frames(tmp_path):
    cams = write_sintel_scene(tmp_path, frames=2)
    truth = load_ground_truth(cams, image_hw=(4, 6))
    assert truth.depth.shape == (2, 4, 6)
    np.testing.assert_allclose(truth.intrinsics[0, 0], [2240.0, 0, 1023.5])
    with pytest.raises(GroundTruthError, match="aspect ratio"):
        load_ground_truth(cams, image_hw=(4, 4))


@pytest.mark.parametrize(
    ("data", "suffix", "message"),
    [
        (struct.pack("<f", 1.0) + bytes(168), ".cam", "wrong tag"),
        (struct.pack("<f", SINTEL_TAG) + bytes(20), ".cam", "truncated"),
        (struct.pack("<fii", SINTEL_TAG, 3, 2) + bytes(8), ".dpt", "a 3x2 .dpt file has 36"),
        (struct.pack("<fii", SINTEL_TAG, -3, 2), ".dpt", "impossible size"),
        (b"PI", ".dpt", "wrong tag"),
    ],
)
def test_broken_sintel_files_are_rejected(tmp_path, data, suffix, message):
    path = tmp_path / f"frame_0001{suffix}"
    path.write_bytes(data)
    reader = read_sintel_cam if suffix == ".cam" else read_sintel_depth
    with pytest.raises(GroundTruthError, match=message):
        reader(path)


def test_sintel_count_mismatch_is_rejected(tmp_path):
    cams = write_sintel_scene(tmp_path, frames=3)
    (tmp_path / "depth" / "alley_1" / "frame_3.dpt").unlink()
    with pytest.raises(GroundTruthError, match="3 .cam but 2 .dpt"):
        load_ground_truth(cams)


# ------------------------------------------------------------------------------ synthetic


def test_synthetic_folder_is_delegated_and_frames_selected(tmp_path):
    clip = synthetic.make_clip(3, num_frames=4, width=56, height=42)
    synthetic.save_ground_truth(clip, tmp_path / "scene")
    truth = load_ground_truth(tmp_path / "scene", frame_indices=[1, 3])
    assert truth.source_format == "synthetic"
    np.testing.assert_array_equal(truth.extrinsics, clip.extrinsics[[1, 3]])
    np.testing.assert_array_equal(truth.dynamic_mask, clip.dynamic_mask[[1, 3]])
    expected_depth = np.where(clip.valid, clip.depth, 0)[[1, 3]]
    np.testing.assert_allclose(truth.depth, expected_depth, rtol=1e-3)  # stored as float16
    np.testing.assert_allclose(truth.timestamps, clip.timestamps[[1, 3]])


# ------------------------------------------------------------------------------ general


def test_unknown_or_missing_paths_are_one_line_errors(tmp_path):
    with pytest.raises(GroundTruthError, match="not found"):
        load_ground_truth(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Page4DError, match="not a known ground-truth layout"):
        load_ground_truth(tmp_path / "empty")


def test_to_model_input_follows_a_pad_mapping():
    # A 2 x 4 clip padded to a 4 x 4 model input: one white row above and below.
    depth = np.arange(1, 9, dtype=np.float32).reshape(1, 2, 4)
    mask = depth > 4
    intrinsics = np.array([[[10.0, 0, 2], [0, 10, 1], [0, 0, 1]]])
    truth = GroundTruth(None, intrinsics, depth, mask, "sintel")
    mapping = {"model_size": [4, 4], "scale_x": 1.0, "scale_y": 1.0, "offset_x": 0, "offset_y": 1}
    placed = truth.to_model_input(mapping)
    np.testing.assert_array_equal(placed.depth[0, :, 0], [0, 1, 5, 0])
    np.testing.assert_array_equal(placed.dynamic_mask[0, :, 0], [False, False, True, False])
    np.testing.assert_array_equal(placed.valid_region[:, 0], [False, True, True, False])
    np.testing.assert_allclose(placed.intrinsics[0, 1, 2], 2.0)
    # Halving the size: each model pixel centre lands on a clip pixel corner and takes the
    # pixel below-right of it; the focal length halves and, with integer pixel centres,
    # cx -> 0.5 * cx + 0.5 * (0.5 - 1) = 0.75.
    cropped = truth.to_model_input(
        {"model_size": [1, 2], "scale_x": 0.5, "scale_y": 0.5, "offset_x": 0, "offset_y": 0}
    )
    np.testing.assert_array_equal(cropped.depth, [[[6, 8]]])
    np.testing.assert_allclose(cropped.intrinsics[0, 0, [0, 2]], [5.0, 0.75])
    with pytest.raises(GroundTruthError, match="malformed"):
        truth.to_model_input({"model_size": [4]})
