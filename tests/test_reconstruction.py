"""Reconstruction: validation, views for the viewer, and the single-file save/load."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError, ResultFileError
from page4d_viewer.result.reconstruction import (
    FORMAT_VERSION,
    Cameras,
    GeometricPosesRecord,
    Metadata,
    Reconstruction,
)


def assert_equal_within_float16(loaded: Reconstruction, original: Reconstruction) -> None:
    np.testing.assert_array_equal(loaded.images, original.images)
    for name in ("depth", "depth_conf", "points", "points_conf", "mask_score"):
        expected = getattr(original, name)
        if expected is None:
            assert getattr(loaded, name) is None
            continue
        np.testing.assert_allclose(getattr(loaded, name), expected, rtol=1e-3, atol=1e-4)
    assert loaded.variants == original.variants
    for name in original.variants:
        np.testing.assert_array_equal(
            loaded.cameras[name].extrinsics, original.cameras[name].extrinsics
        )
        np.testing.assert_array_equal(
            loaded.cameras[name].intrinsics, original.cameras[name].intrinsics
        )
    assert loaded.metadata == original.metadata


def test_round_trip_equal_within_float16(make_reconstruction, tmp_path: Path) -> None:
    original = make_reconstruction()
    written = original.save(tmp_path / "run.npz")
    assert written == tmp_path / "run.npz"
    loaded = Reconstruction.load(written)
    assert_equal_within_float16(loaded, original)
    assert loaded.depth.dtype == np.float32
    assert list(tmp_path.iterdir()) == [written]  # no temporary left behind


def test_round_trip_without_mask_with_ground_truth(make_reconstruction, tmp_path: Path) -> None:
    original = make_reconstruction(with_mask=False)
    original.cameras["ground_truth"] = original.cameras["masked"]
    original.gt_depth = original.depth * 2
    original.gt_dynamic_mask = original.depth > 2
    loaded = Reconstruction.load(original.save(tmp_path / "gt.npz"))
    assert_equal_within_float16(loaded, original)
    assert loaded.variants == ("masked", "unmasked", "ground_truth")
    np.testing.assert_array_equal(loaded.gt_depth, original.gt_depth)
    np.testing.assert_array_equal(loaded.gt_dynamic_mask, original.gt_dynamic_mask)
    assert not loaded.has_mask


def test_file_stores_float16_and_version(make_reconstruction, tmp_path: Path) -> None:
    path = make_reconstruction().save(tmp_path / "run.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert int(archive["format_version"]) == FORMAT_VERSION
        assert archive["points"].dtype == np.float16
        assert archive["images"].dtype == np.uint8
        assert archive["cameras.masked.extrinsics"].dtype == np.float64
        assert json.loads(str(archive["metadata_json"]))["checkpoint_hash"] == "abc123"


def test_huge_confidence_is_clipped_not_infinite(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction()
    recon.points_conf[0, 0, 0] = 1e9
    loaded = Reconstruction.load(recon.save(tmp_path / "run.npz"))
    assert np.isfinite(loaded.points_conf).all()
    assert loaded.points_conf[0, 0, 0] == pytest.approx(65504.0)


def test_save_overwrites_atomically(make_reconstruction, tmp_path: Path) -> None:
    path = tmp_path / "nested" / "run.npz"
    make_reconstruction(seed=1).save(path)
    second = make_reconstruction(seed=2)
    second.save(path)
    np.testing.assert_array_equal(Reconstruction.load(path).images, second.images)
    assert [p.name for p in path.parent.iterdir()] == ["run.npz"]


def test_save_rejects_other_suffix(make_reconstruction, tmp_path: Path) -> None:
    with pytest.raises(Page4DError, match=r"\.npz"):
        make_reconstruction().save(tmp_path / "run.json")


def _rewrite(path: Path, drop: str | None = None, **replace: np.ndarray) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files if name != drop}
    arrays.update(replace)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("newer", "format version 99"),
        ("missing", "missing arrays: depth"),
        ("no_version", "no format_version"),
        ("truncated", "not a readable"),
        ("not_npz", "not a readable"),
        ("npy", "not a readable"),
        ("shape", "depth must be SxHxW"),
        ("absent", "no result file"),
    ],
)
def test_load_rejects_bad_files(
    make_reconstruction, tmp_path: Path, damage: str, message: str
) -> None:
    path = make_reconstruction().save(tmp_path / "run.npz")
    if damage == "newer":
        _rewrite(path, format_version=np.asarray(99))
    elif damage == "missing":
        _rewrite(path, drop="depth")
    elif damage == "no_version":
        _rewrite(path, drop="format_version")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "not_npz":
        path.write_text("hello, I am a text file\n")
    elif damage == "npy":
        np.save(tmp_path / "array.npy", np.zeros(3))
        (tmp_path / "array.npy").rename(path)
    elif damage == "shape":
        _rewrite(path, depth=np.zeros((1, 2, 3), np.float16))
    elif damage == "absent":
        path.unlink()
    with pytest.raises(ResultFileError, match=message) as caught:
        Reconstruction.load(path)
    assert "\n" not in str(caught.value)


def test_damaged_member_is_caught(make_reconstruction, tmp_path: Path) -> None:
    path = make_reconstruction().save(tmp_path / "run.npz")
    # Corrupt the compressed bytes of one member while keeping the zip directory intact.
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("points.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 40
    data[start : start + 200] = bytes(200)
    path.write_bytes(bytes(data))
    with pytest.raises(ResultFileError):
        Reconstruction.load(path)


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        ("images", np.zeros((3, 28, 42, 3), np.float32), "uint8"),
        ("depth", np.zeros((3, 28, 41)), "depth must have shape"),
        ("points", np.zeros((3, 28, 42)), "points must have shape"),
        ("mask_score", np.zeros((2, 2, 3)), "mask_score"),
        ("gt_dynamic_mask", np.zeros((3, 2, 2)), "gt_dynamic_mask"),
    ],
)
def test_validation_messages(
    make_reconstruction, field_name: str, value: np.ndarray, message: str
) -> None:
    recon = make_reconstruction()
    kwargs = {f: getattr(recon, f) for f in recon.__dataclass_fields__}
    kwargs[field_name] = value
    with pytest.raises(ValueError, match=message):
        Reconstruction(**kwargs)


def test_camera_validation(make_reconstruction) -> None:
    recon = make_reconstruction()
    with pytest.raises(ValueError, match="must include 'masked'"):
        Reconstruction(**{**vars(recon), "cameras": {"unmasked": recon.cameras["unmasked"]}})
    with pytest.raises(ValueError, match="unknown camera variant"):
        Reconstruction(
            **{**vars(recon), "cameras": {**recon.cameras, "other": recon.cameras["masked"]}}
        )
    with pytest.raises(ValueError, match="has 2 frames"):
        Reconstruction(
            **{**vars(recon), "cameras": {"masked": recon.cameras["masked"].select([0, 1])}}
        )
    with pytest.raises(ValueError, match=r"\(S, 3, 4\)"):
        Cameras(np.zeros((3, 4, 4)), np.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match="intrinsics"):
        Cameras(np.zeros((3, 3, 4)), np.zeros((2, 3, 3)))


def test_basic_views(make_reconstruction) -> None:
    recon = make_reconstruction()
    assert recon.num_frames == 3
    assert recon.image_hw == (28, 42)
    assert recon.variants == ("masked", "unmasked")  # display order, not insertion order
    np.testing.assert_allclose(recon.timestamps(), [0, 1 / 15, 2 / 15])
    assert "3 frames of 42x28" in recon.describe()
    with pytest.raises(Page4DError, match="no 'ground_truth' cameras"):
        recon.camera_variant("ground_truth")


def test_aligned_cameras_recovers_similarity(make_reconstruction) -> None:
    recon = make_reconstruction(frames=5)
    masked = recon.cameras["masked"]
    similarity = geometry.Similarity(
        3.0, geometry.quaternion_to_rotation(np.array([0.1, 0.2, 0.3, 0.9])), np.ones(3)
    )
    # Ground truth = the same trajectory in another world: aligning it back recovers masked.
    recon.cameras["ground_truth"] = masked.transformed(similarity)
    aligned = recon.aligned_cameras("ground_truth")
    np.testing.assert_allclose(aligned.centers, masked.centers, atol=1e-6)


def test_select_frames(make_reconstruction) -> None:
    recon = make_reconstruction(frames=4)
    subset = recon.select_frames([3, 1])
    assert subset.num_frames == 2
    np.testing.assert_array_equal(subset.images, recon.images[[3, 1]])
    np.testing.assert_array_equal(
        subset.cameras["unmasked"].extrinsics, recon.cameras["unmasked"].extrinsics[[3, 1]]
    )
    assert subset.metadata.frame_indices == [6, 2]
    assert subset.mask_score.shape == (2, 2, 3)
    with pytest.raises(Page4DError, match="within 0..3"):
        recon.select_frames([4])


def test_metadata_keeps_unknown_keys() -> None:
    data = Metadata(source="x").to_dict()
    data["from_the_future"] = 1
    metadata = Metadata.from_dict(data)
    assert metadata.source == "x"
    assert metadata.extra == {"from_the_future": 1}


def test_metadata_records_keep_their_place_in_the_file_and_their_type() -> None:
    poses = GeometricPosesRecord("optical_flow", {"geometry_masked": [2]})
    metadata = Metadata(
        clip_notes=["1 unreadable image skipped"],
        ground_truth="/data/scene",
        geometric_poses=poses,
        extra={"from_the_future": 1},
    )
    data = json.loads(json.dumps(metadata.to_dict()))
    assert data["extra"] == {
        "from_the_future": 1,
        "clip_notes": ["1 unreadable image skipped"],
        "ground_truth": "/data/scene",
        "geometric_poses": {"source": "optical_flow", "unsolved": {"geometry_masked": [2]}},
    }
    assert Metadata.from_dict(data) == metadata
    assert Metadata.from_dict(Metadata().to_dict()).geometric_poses is None


def test_a_bad_geometric_poses_record_is_one_error(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction()
    recon.metadata.geometric_poses = GeometricPosesRecord("track_head", {"geometry_masked": [1]})
    path = recon.save(tmp_path / "r.npz")
    assert Reconstruction.load(path).metadata.geometric_poses == recon.metadata.geometric_poses
    with np.load(path) as archive:
        arrays = dict(archive)
    metadata = json.loads(str(arrays["metadata_json"]))
    metadata["extra"]["geometric_poses"]["unsolved"] = {"geometry_masked": ["one"]}
    arrays["metadata_json"] = np.asarray(json.dumps(metadata))
    np.savez_compressed(path, **arrays)
    with pytest.raises(ResultFileError, match="extra.geometric_poses"):
        Reconstruction.load(path)


def test_with_ground_truth_moves_world_to_first_camera(make_reconstruction) -> None:
    recon = make_reconstruction(frames=3)
    truth = recon.cameras["masked"].transformed(
        geometry.Similarity(
            1.0, geometry.quaternion_to_rotation(np.array([0.3, 0, 0, 1.0])), np.ones(3)
        )
    )
    depth = np.ones((3, 28, 42))
    with_truth = recon.with_ground_truth(truth.extrinsics, depth=depth, dynamic_mask=depth > 0)
    assert "ground_truth" not in recon.cameras  # the original is unchanged
    gt = with_truth.cameras["ground_truth"]
    np.testing.assert_allclose(gt.extrinsics[0], np.eye(4)[:3], atol=1e-12)
    # Same rigid motion as the prediction, whose first camera already is the world.
    np.testing.assert_allclose(gt.extrinsics, recon.cameras["masked"].extrinsics, atol=1e-9)
    np.testing.assert_array_equal(gt.intrinsics, recon.cameras["masked"].intrinsics)
    assert with_truth.gt_dynamic_mask.all() and with_truth.gt_depth.shape == (3, 28, 42)
