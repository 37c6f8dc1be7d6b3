"""Exact point tracks of synthetic clips: hand-computed motions, occlusion, round trips."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.sources.synthetic import (
    ROOM_FACES,
    Lighting,
    Motion,
    SceneObject,
    SyntheticClip,
    SyntheticScene,
    SyntheticSceneError,
    Texture,
    make_clip,
    sample_query_pixels,
    track_ground_truth,
)

PLAIN = Texture("plain", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1.0, (0.5,) * 3, (1, 0, 0), 0, 0.0)
WIDTH, HEIGHT, FOCAL = 65, 33, 50.0
CX, CY = WIDTH / 2, HEIGHT / 2
FIRST_OBJECT = len(ROOM_FACES)


@pytest.fixture(scope="module")
def clip() -> SyntheticClip:
    """A random clip with large movers and a walking person (spinning, pulsing, swinging)."""
    return make_clip(3, num_frames=6, width=160, height=96, movers="large", person=True)


def _room(static: tuple[SceneObject, ...] = (), moving: tuple[SceneObject, ...] = ()):
    """A plain 12 x 12 x 3 m room."""
    return SyntheticScene(
        room_half_size=(6.0, 6.0),
        room_height=3.0,
        room_textures=(PLAIN,) * 6,
        static_objects=static,
        moving_objects=moving,
        people=(),
        lighting=Lighting((0.5,) * 3, (), (), (0.0, 0.0, 2.7), (0.0,) * 3, 1.0),
    )


def _box(centre: tuple[float, float, float], motion: Motion | None = None) -> SceneObject:
    return SceneObject("box", "box", (0.3, 0.3, 0.3), centre, (0, 0, 0), PLAIN, motion)


def _hand_clip(scene: SyntheticScene, positions: list[tuple[float, float, float]]) -> SyntheticClip:
    """Cameras looking along +x from ``positions`` (cam x = -world y, cam y = -world z), 1 fps."""
    R_cam_world = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    extrinsics = np.stack(
        [np.concatenate([R_cam_world, (-R_cam_world @ p)[:, None]], axis=1) for p in positions]
    )
    K = np.array([[FOCAL, 0, CX], [0, FOCAL, CY], [0, 0, 1]])
    intrinsics = np.repeat(K[None], len(positions), axis=0)
    times = np.arange(len(positions), dtype=np.float64)
    views = [scene.render(e, K, WIDTH, HEIGHT, t) for e, t in zip(extrinsics, times, strict=True)]
    return SyntheticClip(
        images=np.stack([v.image for v in views]),
        depth=np.stack([v.depth.astype(np.float32) for v in views]),
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        world_points=np.stack([v.world_points.astype(np.float32) for v in views]),
        dynamic_mask=np.stack([v.dynamic for v in views]),
        valid=np.ones((len(positions), HEIGHT, WIDTH), dtype=bool),
        fps=1.0,
        timestamps=times,
        description="hand-built",
        scene=scene,
    )


def test_static_wall_seen_by_a_translating_camera_projects_analytically() -> None:
    positions = [(0.0, 0.0, 1.5), (0.5, 0.3, 1.2), (1.0, -0.4, 1.8)]
    clip = _hand_clip(_room(), positions)
    query = np.array([[40.25, 10.5], [CX, CY]])
    gt = track_ground_truth(clip, 0, query)
    # The ray (1, -(u - cx) / f, -(v - cy) / f) from (0, 0, 1.5) meets the wall x = 6 at depth 6.
    du, dv = (query[:, 0] - CX) / FOCAL, (query[:, 1] - CY) / FOCAL
    wall = np.stack([np.full(2, 6.0), -6.0 * du, 1.5 - 6.0 * dv], axis=-1)
    assert list(gt.surface) == [ROOM_FACES.index("wall_x_max")] * 2
    assert not gt.dynamic.any()
    for frame in range(3):
        np.testing.assert_allclose(gt.world_points[frame], wall, atol=1e-12)
        expected, _ = geometry.project(
            geometry.transform_points(clip.extrinsics[frame], wall), clip.intrinsics[frame]
        )
        np.testing.assert_allclose(gt.tracks[frame], expected, atol=1e-9)
    # By hand for frame 1: depth 6 - 0.5, u = cx - f (y - 0.3) / 5.5, v = cy - f (z - 1.2) / 5.5.
    u1 = CX - FOCAL * (wall[:, 1] - 0.3) / 5.5
    v1 = CY - FOCAL * (wall[:, 2] - 1.2) / 5.5
    np.testing.assert_allclose(gt.tracks[1], np.stack([u1, v1], axis=-1), atol=1e-9)
    assert gt.visible.all()
    assert (gt.tracks[0] == query).all()


def test_a_translating_box_moves_its_track_by_the_projected_motion() -> None:
    # offset(t) = (0, 0.5 sin(pi t / 2), 0): 0, 0.5, 0 m along world y at t = 0, 1, 2.
    motion = Motion(sweep=(0.0, 0.5, 0.0), sweep_hz=0.25)
    clip = _hand_clip(_room(moving=(_box((4.0, 0.0, 1.5), motion),)), [(0.0, 0.0, 1.5)] * 3)
    query = np.array([[CX + 3.0, CY - 2.0]])
    gt = track_ground_truth(clip, 0, query)
    assert gt.surface[0] == FIRST_OBJECT and gt.dynamic[0]
    # The near face x = 3.7: the point is (3.7, -3.7 * 3 / f, 1.5 + 3.7 * 2 / f).
    np.testing.assert_allclose(
        gt.world_points[0, 0], [3.7, -3.7 * 3 / FOCAL, 1.5 + 3.7 * 2 / FOCAL], atol=1e-12
    )
    np.testing.assert_allclose(
        gt.world_points[1, 0] - gt.world_points[0, 0], [0, 0.5, 0], atol=1e-12
    )
    # Moving +0.5 m along world y (camera -x) at depth 3.7 moves the pixel by -f * 0.5 / 3.7.
    expected = np.array([query[0], [CX + 3.0 - FOCAL * 0.5 / 3.7, CY - 2.0], query[0]])
    np.testing.assert_allclose(gt.tracks[:, 0], expected, atol=1e-9)
    assert gt.visible.all()


def test_a_point_hidden_by_a_passing_box_is_invisible_only_while_hidden() -> None:
    # offset(t) = (0, -2 cos(pi t / 2), 0): the box is at y = -2, 0, 2; at t = 1 it covers
    # the view axis.
    motion = Motion(sweep=(0.0, 2.0, 0.0), sweep_hz=0.25, sweep_phase=-math.pi / 2)
    clip = _hand_clip(_room(moving=(_box((3.0, 0.0, 1.5), motion),)), [(0.0, 0.0, 1.5)] * 3)
    gt = track_ground_truth(clip, 0, np.array([[CX, CY]]))
    assert gt.surface[0] == ROOM_FACES.index("wall_x_max") and not gt.dynamic[0]
    assert list(gt.visible[:, 0]) == [True, False, True]
    # The hidden point is still tracked: a static point and a static camera give a fixed pixel.
    np.testing.assert_allclose(gt.tracks[:, 0], [[CX, CY]] * 3, atol=1e-9)
    assert clip.dynamic_mask[1, int(CY), int(CX)]  # the renderer agrees the box is in front


def test_a_face_turned_away_by_a_spin_is_hidden_by_its_own_box() -> None:
    # Half a turn per second about z through the centre: the front face (x = 3.7) goes to the
    # back (x = 4.3) at t = 1, still on the view axis, behind the same box's new front face.
    motion = Motion(spin_axis=(0.0, 0.0, 1.0), spin_rate=math.pi)
    clip = _hand_clip(_room(moving=(_box((4.0, 0.0, 1.5), motion),)), [(0.0, 0.0, 1.5)] * 3)
    gt = track_ground_truth(clip, 0, np.array([[CX, CY]]))
    np.testing.assert_allclose(
        gt.world_points[:, 0], [[3.7, 0, 1.5], [4.3, 0, 1.5], [3.7, 0, 1.5]], atol=1e-12
    )
    assert list(gt.visible[:, 0]) == [True, False, True]
    np.testing.assert_allclose(gt.tracks[:, 0], [[CX, CY]] * 3, atol=1e-9)


def test_a_pulsing_ball_carries_its_points_outwards() -> None:
    # scale(t) = 1 + 0.2 sin(pi t / 2): 1, 1.2, 1 at t = 0, 1, 2; the centre does not move.
    motion = Motion(pulse=0.2, pulse_hz=0.25)
    ball = SceneObject(
        "ball", "ellipsoid", (0.5, 0.5, 0.5), (4.0, 0.0, 1.5), (0, 0, 0), PLAIN, motion
    )
    clip = _hand_clip(_room(moving=(ball,)), [(0.0, 0.0, 1.5)] * 3)
    query = np.array([[CX + 2.0, CY + 1.0]])
    gt = track_ground_truth(clip, 0, query)
    assert gt.surface[0] == FIRST_OBJECT and gt.dynamic[0]
    centre = np.array([4.0, 0.0, 1.5])
    np.testing.assert_allclose(np.linalg.norm(gt.world_points[0, 0] - centre), 0.5, atol=1e-12)
    grown = centre + 1.2 * (gt.world_points[0, 0] - centre)
    np.testing.assert_allclose(gt.world_points[1, 0], grown, atol=1e-12)
    expected, _ = geometry.project(
        geometry.transform_points(clip.extrinsics[1], grown[None]), clip.intrinsics[1]
    )
    np.testing.assert_allclose(gt.tracks[1], expected, atol=1e-9)
    assert np.abs(gt.tracks[1, 0] - query[0]).min() > 0.1  # it really moved in the image
    np.testing.assert_allclose(gt.tracks[2], query, atol=1e-9)
    assert gt.visible[:, 0].all()


def test_a_point_that_leaves_the_image_is_invisible() -> None:
    # The camera steps 1 m to world +y (its left), so the wall at depth 6 slides right by f / 6 px.
    clip = _hand_clip(_room(), [(0.0, 0.0, 1.5), (0.0, 1.0, 1.5)])
    query = np.array([[WIDTH - 3.0, CY], [CX, CY]])
    gt = track_ground_truth(clip, 0, query)
    np.testing.assert_allclose(gt.tracks[1], query + [[FOCAL / 6, 0.0]] * 2, atol=1e-9)
    assert gt.tracks[1, 0, 0] > WIDTH - 0.5
    assert list(gt.visible[1]) == [False, True]


def test_points_behind_the_camera_are_invisible_and_have_no_pixel() -> None:
    # The camera walks 5 m forward, past the box's front face (x = 3.7, y in 1.2 .. 1.8).
    scene = _room(static=(_box((4.0, 1.5, 1.5)),))
    clip = _hand_clip(scene, [(0.0, 0.0, 1.5), (5.0, 0.0, 1.5)])
    gt = track_ground_truth(clip, 0, np.array([[12.0, CY]]))  # y = 3.7 * 20.5 / f = 1.52
    assert gt.surface[0] == FIRST_OBJECT and not gt.dynamic[0]
    assert not gt.visible[1, 0] and np.isnan(gt.tracks[1, 0]).all()


def test_round_trip_returns_to_the_query_pixel(clip: SyntheticClip) -> None:
    query = sample_query_pixels(clip, 0, 64, np.random.default_rng(1))
    query = query + np.random.default_rng(2).uniform(-0.5, 0.5, query.shape).clip(-0.49, 0.49)
    forward = track_ground_truth(clip, 0, query)
    assert (forward.tracks[0] == query).all() and forward.visible[0].all()
    checked_dynamic = 0
    for frame in range(1, clip.num_frames):
        both = np.flatnonzero(forward.visible[frame])
        back = track_ground_truth(clip, frame, forward.tracks[frame, both])
        assert back.visible[0].all()
        assert (back.surface == forward.surface[both]).all()
        np.testing.assert_allclose(back.tracks[0], query[both], atol=1e-3)
        checked_dynamic += int(forward.dynamic[both].sum())
    assert checked_dynamic > 50  # the moving surfaces (spins, pulses, the person) were exercised


def _planar_cells(inverse_depth: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(N,) bool: the 4 x 4 pixels around each cell have affine inverse depth (one plane, no
    crease or silhouette), to 1e-4 relative."""
    offsets = np.array([(i, j) for i in (-1, 0, 1, 2) for j in (-1, 0, 1, 2)])
    design = np.concatenate([np.ones((16, 1)), offsets], axis=1)
    block = np.stack([inverse_depth[rows + i, cols + j] for i, j in offsets], axis=-1)
    fit = block @ np.linalg.pinv(design).T @ design.T
    return np.abs(fit - block).max(axis=-1) < 1e-4 * block.mean(axis=-1)


def test_query_depth_matches_the_rendered_depth(clip: SyntheticClip) -> None:
    frame = 2
    height, width = clip.image_hw
    inverse_depth = 1.0 / clip.depth[frame].astype(np.float64)
    query = np.random.default_rng(3).uniform((2, 2), (width - 3, height - 3), size=(1000, 2))
    cols, rows = np.floor(query).astype(int).T
    planar = _planar_cells(inverse_depth, rows, cols)
    query, rows, cols = query[planar], rows[planar], cols[planar]
    gt = track_ground_truth(clip, frame, query)
    assert len(query) > 500 and gt.dynamic.sum() > 10  # room, static and moving planes
    fu, fv = (query - np.stack([cols, rows], axis=-1)).T
    # Bilinear in inverse depth, which is affine in the pixel on a plane, so it is exact there.
    bilinear = 1.0 / (
        inverse_depth[rows, cols] * (1 - fu) * (1 - fv)
        + inverse_depth[rows, cols + 1] * fu * (1 - fv)
        + inverse_depth[rows + 1, cols] * (1 - fu) * fv
        + inverse_depth[rows + 1, cols + 1] * fu * fv
    )
    np.testing.assert_allclose(_depth_in(clip, frame, gt.world_points[frame]), bilinear, rtol=1e-6)
    # At every pixel centre (curved surfaces too) the ray is the renderer's own: the same
    # depth up to the clip's float32 rounding, the same dynamic mask.
    rows, cols = np.divmod(np.arange(height * width), width)
    at_centres = track_ground_truth(clip, frame, np.stack([cols, rows], axis=-1).astype(float))
    depth = _depth_in(clip, frame, at_centres.world_points[frame])
    np.testing.assert_allclose(depth, clip.depth[frame].ravel(), rtol=1e-6)
    assert (at_centres.dynamic == clip.dynamic_mask[frame].ravel()).all()


def _depth_in(clip: SyntheticClip, frame: int, world: np.ndarray) -> np.ndarray:
    """(N,) depth of (N, 3) world points in the camera of ``frame``."""
    _, depth = geometry.project(
        geometry.transform_points(clip.extrinsics[frame], world), clip.intrinsics[frame]
    )
    return depth


def test_static_points_stay_put_and_moving_points_move(clip: SyntheticClip) -> None:
    query = sample_query_pixels(clip, 1, 64, np.random.default_rng(4))
    gt = track_ground_truth(clip, 1, query)
    travel = np.linalg.norm(gt.world_points - gt.world_points[1], axis=-1)
    assert (travel[:, ~gt.dynamic] == 0).all()
    assert (travel[:, gt.dynamic].max(axis=0) > 1e-3).all()


def test_sampled_queries_are_distinct_pixel_centres_split_by_motion(clip: SyntheticClip) -> None:
    height, width = clip.image_hw
    query = sample_query_pixels(clip, 0, 64, np.random.default_rng(5), moving_fraction=0.25)
    assert query.shape == (64, 2) and query.dtype == np.float64
    assert (query == np.round(query)).all()
    assert len({tuple(q) for q in query}) == 64
    assert (query >= 0).all() and (query[:, 0] < width).all() and (query[:, 1] < height).all()
    moving = clip.dynamic_mask[0][query[:, 1].astype(int), query[:, 0].astype(int)]
    assert moving.sum() == 16
    again = sample_query_pixels(clip, 0, 64, np.random.default_rng(5), moving_fraction=0.25)
    assert (again == query).all()


def test_sampling_falls_back_to_static_pixels_when_nothing_moves() -> None:
    clip = _hand_clip(_room(), [(0.0, 0.0, 1.5)])
    query = sample_query_pixels(clip, 0, 10, np.random.default_rng(0), moving_fraction=1.0)
    assert query.shape == (10, 2)
    every = sample_query_pixels(clip, 0, WIDTH * HEIGHT, np.random.default_rng(0))
    assert len({tuple(q) for q in every}) == WIDTH * HEIGHT


@pytest.mark.parametrize(
    ("frame", "pixels", "message"),
    [
        (6, [[1.0, 1.0]], "query_frame must be between 0 and 5"),
        (-1, [[1.0, 1.0]], "query_frame must be between 0 and 5"),
        (0, [1.0, 1.0], r"query_pixels must be \(N, 2\), got \(2,\)"),
        (0, [[1.0, 1.0, 1.0]], r"query_pixels must be \(N, 2\), got \(1, 3\)"),
        (0, [[159.5, 3.0]], "query_pixels must lie in the 160x96 image"),
        (0, [[-0.6, 3.0]], "query_pixels must lie in the 160x96 image"),
        (0, [[np.nan, 3.0]], "query_pixels must lie in the 160x96 image"),
    ],
)
def test_bad_queries_are_rejected(clip: SyntheticClip, frame: int, pixels, message: str) -> None:
    with pytest.raises(SyntheticSceneError, match=message):
        track_ground_truth(clip, frame, np.array(pixels))


def test_bad_sampling_settings_and_clips_without_scene_are_rejected(clip: SyntheticClip) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(SyntheticSceneError, match="count must be between 0 and 15360"):
        sample_query_pixels(clip, 0, 160 * 96 + 1, rng)
    with pytest.raises(SyntheticSceneError, match=r"moving_fraction must be in \[0, 1\]"):
        sample_query_pixels(clip, 0, 8, rng, moving_fraction=1.5)
    with pytest.raises(SyntheticSceneError, match="the clip has no scene"):
        track_ground_truth(dataclasses.replace(clip, scene=None), 0, np.zeros((1, 2)))
