"""Exports: write each format, read it back with an independent reader, compare."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest
import trimesh

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result import export


def test_glb_round_trip_points_colours_and_frusta(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=3)
    recon.cameras["ground_truth"] = recon.cameras["masked"]
    path = export.export_glb(recon, tmp_path / "scene.glb", frames=[0, 2], conf_percentile=30)
    scene = trimesh.load(path, file_type="glb")
    threshold = np.percentile(recon.points_conf, 25)  # 30 snaps to 25, as in the scene
    for frame in (0, 2):
        cloud = scene.geometry[f"points_frame_{frame:04d}"]
        keep = recon.points_conf[frame].reshape(-1) >= threshold
        assert len(cloud.vertices) == int(keep.sum())
        np.testing.assert_array_equal(cloud.colors[:, :3], recon.images[frame].reshape(-1, 3)[keep])
        np.testing.assert_allclose(
            cloud.vertices, recon.points[frame].reshape(-1, 3)[keep], atol=1e-5
        )
    assert "points_frame_0001" not in scene.geometry
    for variant in ("masked", "unmasked", "ground_truth"):
        frusta = scene.geometry[f"cameras_{variant}"]
        assert isinstance(frusta, trimesh.path.Path3D)
        # GLB stores line segments: two chosen frames x eight edges x two endpoints.
        assert len(frusta.vertices) == 2 * 8 * 2


def test_glb_frustum_apex_is_the_camera_centre(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=3)
    vertices, edges = export.frustum_segments(recon.cameras["masked"], recon.image_hw, 0.5)
    assert vertices.shape == (3, 5, 3) and edges.shape == (8, 2)
    np.testing.assert_allclose(vertices[:, 0], recon.cameras["masked"].centers, atol=1e-12)
    # Corners sit at depth 0.5 in their own camera and project to the image corners.
    corners_cam = geometry.transform_points(recon.cameras["masked"].extrinsics, vertices[:, 1:])
    np.testing.assert_allclose(corners_cam[..., 2], 0.5, atol=1e-12)
    uv, _ = geometry.project(corners_cam, recon.cameras["masked"].intrinsics)
    np.testing.assert_allclose(uv[0], [[0, 0], [42, 0], [42, 28], [0, 28]], atol=1e-9)


def test_glb_subsamples_points(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2)
    path = export.export_glb(
        recon, tmp_path / "s.glb", conf_percentile=0, max_points_per_frame=100, variants=["masked"]
    )
    scene = trimesh.load(path, file_type="glb")
    assert len(scene.geometry["points_frame_0001"].vertices) == 100
    assert "cameras_unmasked" not in scene.geometry


def test_ply_round_trip(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=3)
    paths = export.export_ply(recon, tmp_path / "ply", frames=[1, 2], conf_percentile=0)
    assert [p.name for p in paths] == ["frame_0001.ply", "frame_0002.ply"]
    cloud = trimesh.load(paths[0])
    assert len(cloud.vertices) == 28 * 42
    np.testing.assert_array_equal(cloud.colors[:, :3], recon.images[1].reshape(-1, 3))
    np.testing.assert_allclose(cloud.vertices, recon.points[1].reshape(-1, 3), atol=1e-5)


def test_ply_refuses_a_file_as_folder(make_reconstruction, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(Page4DError, match="must be a folder"):
        export.export_ply(make_reconstruction(), tmp_path / "file")


def test_tum_round_trip_all_variants(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=4)
    paths = export.export_tum(recon, tmp_path / "traj.txt")
    assert [p.name for p in paths] == ["traj_masked.txt", "traj_unmasked.txt"]
    for path, variant in zip(paths, ("masked", "unmasked"), strict=True):
        timestamps, T_world_cam = export.read_tum(path)
        np.testing.assert_allclose(timestamps, recon.timestamps(), atol=1e-6)
        np.testing.assert_allclose(T_world_cam, recon.cameras[variant].T_world_cam, atol=1e-8)


def test_tum_single_variant_and_format(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2)
    (path,) = export.export_tum(recon, tmp_path / "only.tum", variant="unmasked")
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    values = [float(v) for v in lines[1].split()]
    assert len(values) == 8
    assert values[0] == pytest.approx(1 / 15, abs=1e-6)
    np.testing.assert_allclose(values[1:4], recon.cameras["unmasked"].centers[1], atol=1e-8)
    with pytest.raises(Page4DError, match="no 'ground_truth' cameras"):
        export.export_tum(recon, tmp_path / "gt.txt", variant="ground_truth")


def test_read_tum_rejects_malformed_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("# comment\n0 0 0 0 0 0 0 1\n1 2 3\n")
    with pytest.raises(Page4DError, match="line 3"):
        export.read_tum(path)


def test_mp4_decodes_with_right_count_and_size(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=5)
    path = export.export_mp4(recon, tmp_path / "mask.mp4", frames=[0, 1, 2, 4])
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        rate = container.streams.video[0].average_rate
    assert len(decoded) == 4
    assert decoded[0].shape == (28, 42, 3)
    assert float(rate) == pytest.approx(15.0, rel=0.01)


def test_mp4_without_mask_writes_plain_frames(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2, with_mask=False)
    recon.images[:] = 128
    path = export.export_mp4(recon, tmp_path / "plain.mp4", fps=5)
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 2
    assert abs(decoded[1].astype(int) - 128).max() <= 3  # lossy codec, flat grey survives


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, [0, 1, 2, 3, 4]), ("all", [0, 1, 2, 3, 4]), ("3,0", [0, 3]), ("1-3,1", [1, 2, 3])],
)
def test_parse_frame_selection(text: str | None, expected: list[int]) -> None:
    assert export.parse_frame_selection(text, 5) == expected


@pytest.mark.parametrize(("text", "message"), [("1,x", "cannot read"), ("2-9", "outside 0..4")])
def test_parse_frame_selection_rejects(text: str, message: str) -> None:
    with pytest.raises(Page4DError, match=message):
        export.parse_frame_selection(text, 5)


def test_wrong_suffix_is_rejected(make_reconstruction, tmp_path: Path) -> None:
    with pytest.raises(Page4DError, match=r"end in \.glb"):
        export.export_glb(make_reconstruction(), tmp_path / "scene.obj")


def test_mp4_pads_odd_sizes_and_checks_options_first(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2, height=27, width=41)
    path = export.export_mp4(recon, tmp_path / "odd.mp4")
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert decoded[0].shape == (28, 42, 3)
    with pytest.raises(Page4DError, match="unknown colormap"):
        export.export_mp4(recon, tmp_path / "never.mp4", colormap="nope")
    assert not (tmp_path / "never.mp4").exists()


def test_tum_writes_the_given_name_when_one_variant_is_written(
    make_reconstruction, tmp_path: Path
) -> None:
    recon = make_reconstruction(frames=2)
    only_masked = dataclasses.replace(recon, cameras={"masked": recon.cameras["masked"]})
    (path,) = export.export_tum(only_masked, tmp_path / "trajectory.txt")
    assert path == tmp_path / "trajectory.txt" and path.is_file()
    (chosen,) = export.export_tum(recon, tmp_path / "chosen.tum", variant="masked")
    assert chosen == tmp_path / "chosen.tum"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chosen.tum", "trajectory.txt"]
