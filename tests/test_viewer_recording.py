"""Recorded playback: the orbit path, look-at poses, the frame stepping and the encoder, with a
stand-in render function (the real `get_render` runs in the browser test)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.mp4 import write_mp4
from page4d_viewer.viewer import recording


def _rotation(pose: recording.ViewPose) -> np.ndarray:
    xyzw = np.asarray(pose.wxyz)[[1, 2, 3, 0]]
    return geometry.quaternion_to_rotation(xyzw[None])[0]


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_look_at_points_the_optical_axis_at_the_target() -> None:
    position, target, up = (
        np.array([1.0, -2.0, 0.5]),
        np.array([0.0, 0.0, 3.0]),
        np.array([0, -1.0, 0]),
    )
    pose = recording.look_at(position, target, up, fov=0.8)
    R = _rotation(pose)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    forward = (target - position) / np.linalg.norm(target - position)
    np.testing.assert_allclose(R[:, 2], forward, atol=1e-9)
    assert R[:, 1] @ up < 0  # image y (down) points away from "up"
    assert abs(R[:, 0] @ up) < 1e-9  # no roll
    assert pose.fov == 0.8


def test_look_at_refuses_to_look_straight_up() -> None:
    with pytest.raises(Page4DError, match="no image 'up'"):
        recording.look_at(np.zeros(3), np.array([0, -2.0, 0]), np.array([0, -1.0, 0]), 1.0)


@pytest.mark.parametrize("num_frames", [1, 3, 24])
def test_orbit_circles_the_centre_at_constant_radius(make_reconstruction, num_frames: int) -> None:
    recon = make_reconstruction(frames=2)
    extrinsic = recon.cameras["masked"].extrinsics[0]
    centre = np.array([0.2, 0.1, 2.5])
    poses = recording.orbit_path(extrinsic, centre, extent=4.0, num_frames=num_frames, fov=0.9)
    assert len(poses) == num_frames
    up = -geometry.invert_rigid(extrinsic)[:3, 1]
    distances = [np.linalg.norm(p.position - centre) for p in poses]
    np.testing.assert_allclose(distances, distances[0], rtol=1e-9)
    heights = [(p.position - centre) @ up for p in poses]
    np.testing.assert_allclose(heights, heights[0], atol=1e-9)
    for pose in poses:
        forward = (centre - pose.position) / np.linalg.norm(centre - pose.position)
        np.testing.assert_allclose(_rotation(pose)[:, 2], forward, atol=1e-9)
    # The first pose is on the first camera's side of the scene.
    camera_offset = geometry.invert_rigid(extrinsic)[:3, 3] - centre
    assert (poses[0].position - centre) @ camera_offset > 0


def test_orbit_is_a_closed_loop_without_a_repeated_frame() -> None:
    extrinsic = np.eye(3, 4)
    extrinsic[2, 3] = -3.0  # the camera sits 3 units behind the origin, looking at it
    poses = recording.orbit_path(extrinsic, np.zeros(3), 2.0, 8, 1.0)
    more = recording.orbit_path(extrinsic, np.zeros(3), 2.0, 16, 1.0)
    np.testing.assert_allclose(poses[4].position, more[8].position, atol=1e-9)
    steps = [
        np.linalg.norm(b.position - a.position)
        for a, b in zip(poses, poses[1:] + poses[:1], strict=True)
    ]
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)  # equal steps, including last->first


def test_orbit_rejects_bad_inputs() -> None:
    with pytest.raises(Page4DError, match="at least one frame"):
        recording.orbit_path(np.eye(3, 4), np.zeros(3), 1.0, 0, 1.0)
    with pytest.raises(Page4DError, match="first_extrinsic must be"):
        recording.orbit_path(np.eye(4), np.zeros(3), 1.0, 3, 1.0)


def test_scene_orbit_of_a_result(make_reconstruction) -> None:
    recon = make_reconstruction(frames=5)
    poses = recording.scene_orbit(recon, 5, 0.7)
    assert len(poses) == 5 and all(np.isfinite(p.position).all() for p in poses)


def test_record_playback_steps_every_frame_and_encodes(tmp_path: Path) -> None:
    frames_set: list[int] = []
    poses_seen: list[object] = []
    current = {"frame": 0}

    def set_frame(frame: int) -> None:
        frames_set.append(frame)
        current["frame"] = frame

    def render(pose: recording.ViewPose | None) -> np.ndarray:
        poses_seen.append(pose)
        image = np.zeros((240, 320, 3), np.uint8)
        image[:, : 80 * (current["frame"] + 1)] = (200, 60, 30)  # differs per frame
        return image

    path = recording.record_playback(
        tmp_path / "talk.mp4", num_frames=3, set_frame=set_frame, render=render, fps=12.0
    )
    assert frames_set == [0, 1, 2] and poses_seen == [None, None, None]
    decoded = _decode(path)
    assert len(decoded) == 3 and all(f.shape == (240, 320, 3) for f in decoded)
    assert not np.array_equal(decoded[0], decoded[2])
    with av.open(str(path)) as container:
        assert float(container.streams.video[0].average_rate) == pytest.approx(12.0)


def test_record_playback_passes_one_pose_per_frame(tmp_path: Path) -> None:
    poses = recording.orbit_path(np.eye(3, 4), np.array([0, 0, 3.0]), 2.0, 4, 1.0)
    seen: list[object] = []

    def render(pose: recording.ViewPose | None) -> np.ndarray:
        seen.append(pose)
        return np.full((32, 48, 3), 7 * len(seen), np.uint8)

    recording.record_playback(
        tmp_path / "o.mp4", num_frames=4, set_frame=lambda _: None, render=render, fps=10,
        poses=poses,
    )  # fmt: skip
    assert seen == poses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, "nothing to record"),
        ({"fps": 0.0}, "fps must be positive"),
        ({"poses": []}, "viewpoints for 2 frames"),
    ],
)
def test_record_playback_refuses(tmp_path: Path, kwargs: dict, message: str) -> None:
    arguments = {"num_frames": 2, "fps": 10.0, "poses": None, **kwargs}
    with pytest.raises(Page4DError, match=message):
        recording.record_playback(
            tmp_path / "x.mp4", set_frame=lambda _: None,
            render=lambda _: np.zeros((16, 16, 3), np.uint8), **arguments,
        )  # fmt: skip
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.parametrize(("height", "width"), [(241, 320), (240, 8), (240, 5000)])
def test_video_size_must_be_even_and_sane(height: int, width: int) -> None:
    with pytest.raises(Page4DError, match="even number of pixels"):
        recording.check_size(height, width)


def test_write_mp4_pads_odd_sizes_and_refuses_mixed_sizes(tmp_path: Path) -> None:
    odd = [np.full((33, 47, 3), 100, np.uint8)] * 2
    assert _decode(write_mp4(tmp_path / "odd.mp4", odd, 5.0))[0].shape == (34, 48, 3)
    mixed = [np.zeros((32, 48, 3), np.uint8), np.zeros((64, 48, 3), np.uint8)]
    with pytest.raises(Page4DError, match="must all be 32x48"):
        write_mp4(tmp_path / "mixed.mp4", mixed, 5.0)
    with pytest.raises(Page4DError, match="no pictures"):
        write_mp4(tmp_path / "none.mp4", [], 5.0)
    with pytest.raises(Page4DError, match="uint8 RGB"):
        write_mp4(tmp_path / "grey.mp4", [np.zeros((32, 48), np.uint8)], 5.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mp4"]
