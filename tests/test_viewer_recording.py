"""Recorded playback: the orbit and keyframe paths, look-at poses, the frame stepping and the
encoder, with a stand-in render function (the real `get_render` runs in the browser test)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import av
import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.mp4 import write_mp4
from page4d_viewer.viewer import recording

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.callbacks import PanelSession


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
        rate = container.streams.video[0].average_rate
        assert rate is not None and float(rate) == pytest.approx(12.0)


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


# ------------------------------------------------------------------------------ keyframe paths


def _keyframe(position, degrees_about_y: float = 0.0, fov: float = 0.8) -> recording.ViewPose:
    """A camera at `position`, turned about the world y axis by `degrees_about_y`."""
    half = np.radians(degrees_about_y) / 2
    wxyz = np.array([np.cos(half), 0.0, np.sin(half), 0.0])
    return recording.ViewPose(wxyz=wxyz, position=np.asarray(position, float), fov=fov)


def _angle_between(a: recording.ViewPose, b: recording.ViewPose) -> float:
    """The rotation angle (radians) taking pose a's orientation to pose b's."""
    relative = _rotation(a).T @ _rotation(b)
    return float(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0)))


def test_keyframe_path_passes_through_every_keyframe() -> None:
    keyframes = [
        _keyframe([0, 0, 0], 0, fov=0.6),
        _keyframe([2, 1, 0], 40, fov=0.9),
        _keyframe([3, 0, 2], 100, fov=0.7),
    ]
    path = recording.keyframe_path(keyframes, 9)  # keyframes at frames 0, 4 and 8
    assert len(path) == 9
    for frame, keyframe in zip((0, 4, 8), keyframes, strict=True):
        np.testing.assert_allclose(path[frame].position, keyframe.position, atol=1e-9)
        assert _angle_between(path[frame], keyframe) < 1e-6
        assert path[frame].fov == pytest.approx(keyframe.fov)
    # In between, the camera is elsewhere and turned part-way.
    assert not np.allclose(path[2].position, keyframes[0].position)
    assert 0.1 < _angle_between(path[2], keyframes[0]) < np.radians(40) - 0.1
    for pose in path:
        np.testing.assert_allclose(np.linalg.norm(pose.wxyz), 1.0, atol=1e-9)


def test_keyframe_path_is_smooth() -> None:
    keyframes = [
        _keyframe([0, 0, 0], 0),
        _keyframe([1, 0, 0], 30),
        _keyframe([1, 0, 3], 60),
        _keyframe([-1, 1, 3], 150),
    ]
    path = recording.keyframe_path(keyframes, 301)
    positions = np.stack([pose.position for pose in path])
    steps = np.diff(positions, axis=0)
    # Continuous velocity: neighbouring steps differ by a small part of a step, also at the
    # keyframes (a polyline through them would turn by ~90 degrees in one step there).
    turn = np.linalg.norm(np.diff(steps, axis=0), axis=1)
    assert turn.max() < 0.1 * np.linalg.norm(steps, axis=1).mean()
    # Orientation: no jump between frames, no detour (never turns past the last keyframe).
    angles = [_angle_between(a, b) for a, b in zip(path, path[1:], strict=False)]
    assert max(angles) < 0.02
    assert sum(angles) == pytest.approx(np.radians(150), rel=1e-6)
    signs = [float(np.dot(a.wxyz, b.wxyz)) for a, b in zip(path, path[1:], strict=False)]
    assert min(signs) > 0  # no q -> -q flips between frames


def test_keyframe_path_keeps_the_orientation_when_keyframes_agree() -> None:
    same = _keyframe([0, 0, 0], 25)
    flipped = recording.ViewPose(-same.wxyz, np.array([1.0, 2.0, 0.0]), same.fov)  # q == -q
    path = recording.keyframe_path([same, _keyframe([3, 0, 1], 25), flipped], 20)
    for pose in path:
        assert _angle_between(pose, same) < 1e-6


def test_two_keyframes_fly_straight_at_constant_speed() -> None:
    path = recording.keyframe_path([_keyframe([0, 0, 0]), _keyframe([4, 2, 0])], 5)
    expected = np.linspace([0, 0, 0], [4, 2, 0], 5)
    np.testing.assert_allclose(np.stack([p.position for p in path]), expected, atol=1e-9)


def test_one_keyframe_is_a_still_camera() -> None:
    keyframe = _keyframe([1, 2, 3], 70, fov=1.1)
    path = recording.keyframe_path([keyframe], 4)
    assert len(path) == 4
    for pose in path:
        np.testing.assert_allclose(pose.position, keyframe.position)
        np.testing.assert_allclose(pose.wxyz, keyframe.wxyz)
        assert pose.fov == keyframe.fov
    (only,) = recording.keyframe_path([keyframe, _keyframe([9, 9, 9], 10)], 1)
    np.testing.assert_allclose(only.position, keyframe.position)  # one frame: the first stop


@pytest.mark.parametrize(
    ("keyframes", "count", "message"),
    [
        ([], 5, "no keyframes"),
        ([_keyframe([0, 0, 0])], 0, "at least one frame"),
        ([_keyframe([0, 0, 0]), _keyframe([np.nan, 0, 0])], 5, "keyframe 2 .* position"),
        (
            [recording.ViewPose(np.zeros(4), np.zeros(3), 0.8)],
            5,
            "keyframe 1 .* non-zero quaternion",
        ),
        ([_keyframe([0, 0, 0], fov=0.0)], 5, "keyframe 1 .* field of view"),
        ([_keyframe([0, 0, 0]), _keyframe([1, 0, 0], fov=4.0)], 5, "keyframe 2 .* field"),
    ],
)
def test_keyframe_path_refuses_bad_input(keyframes: list, count: int, message: str) -> None:
    with pytest.raises(Page4DError, match=message):
        recording.keyframe_path(keyframes, count)


def test_slerp_takes_the_short_way() -> None:
    identity = np.array([[1.0, 0, 0, 0]])
    quarter_turn = _keyframe([0, 0, 0], 90).wxyz[None]
    eighth_turn = _keyframe([0, 0, 0], 45).wxyz
    np.testing.assert_allclose(recording.slerp(identity, quarter_turn, np.array([0.5]))[0],
                               eighth_turn, atol=1e-12)  # fmt: skip
    # -q is the same rotation as q: still the 45 degrees between, not the long way round.
    halfway = recording.slerp(identity, -quarter_turn, np.array([0.5]))[0]
    assert abs(abs(halfway @ eighth_turn) - 1.0) < 1e-12


def test_catmull_rom_through_points() -> None:
    points = np.array([[0.0, 0], [1, 2], [3, 1], [4, 4]])
    np.testing.assert_allclose(recording.catmull_rom(points, np.arange(4.0)), points, atol=1e-12)


def test_current_view_reads_the_browser_camera() -> None:
    camera = SimpleNamespace(
        update_timestamp=12.5, wxyz=(1.0, 0.0, 0.0, 0.0), position=(1.0, 2.0, 3.0), fov=0.9
    )
    pose = recording.current_view(cast("viser.ClientHandle", SimpleNamespace(camera=camera)))
    np.testing.assert_allclose(pose.position, [1, 2, 3])
    np.testing.assert_allclose(pose.wxyz, [1, 0, 0, 0])
    assert pose.fov == 0.9
    camera.update_timestamp = 0.0  # the page has not reported its camera yet
    with pytest.raises(Page4DError, match="not reported its camera"):
        recording.current_view(cast("viser.ClientHandle", SimpleNamespace(camera=camera)))


def test_the_record_tab_lists_keyframes_and_needs_them() -> None:
    from page4d_viewer.viewer.tabs import record

    assert record.keyframe_table([]) == record.NO_KEYFRAMES
    table = record.keyframe_table(
        [_keyframe([1, 2, 3], 0, fov=np.radians(50)), _keyframe([0, 0, 0], 90)]
    )
    assert "2 keyframes" in table
    assert "| 1 | (1.00, 2.00, 3.00) | (0.00, 0.00, 1.00) | 50° |" in table
    assert "| 2 | (0.00, 0.00, 0.00) | (1.00, 0.00, 0.00) |" in table
    assert "-0.00" not in record.keyframe_table([_keyframe([-1e-4, 0, 0], -90)])
    with pytest.raises(Page4DError, match="no keyframes"):
        record.record_video(cast("PanelSession", None), "320x240", record.KEYFRAMES, [])
