"""Geometry: hand-computed cases, round trips and property tests."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from page4d_viewer import geometry


def _random_rotations(rng: np.random.Generator, count: int) -> np.ndarray:
    quaternions = rng.normal(size=(count, 4))
    return geometry.quaternion_to_rotation(quaternions)


def _random_extrinsics(rng: np.random.Generator, count: int) -> np.ndarray:
    rotation = _random_rotations(rng, count)
    translation = rng.normal(size=(count, 3, 1))
    return np.concatenate([rotation, translation], axis=-1)


finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
quaternions = arrays(np.float64, (4,), elements=finite).filter(lambda q: np.linalg.norm(q) > 0.1)


def test_quaternion_hand_computed_90_degrees_about_z() -> None:
    half = math.sqrt(0.5)
    rotation = geometry.quaternion_to_rotation(np.array([0.0, 0.0, half, half]))
    expected = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(rotation, expected, atol=1e-12)


def test_identity_quaternion_is_identity_matrix() -> None:
    np.testing.assert_allclose(geometry.quaternion_to_rotation(np.array([0, 0, 0, 1.0])), np.eye(3))
    np.testing.assert_allclose(geometry.rotation_to_quaternion(np.eye(3)), [0, 0, 0, 1.0])


@settings(max_examples=200, deadline=None)
@given(quaternions)
def test_quaternion_round_trip_up_to_sign(quaternion: np.ndarray) -> None:
    rotation = geometry.quaternion_to_rotation(quaternion)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    recovered = geometry.rotation_to_quaternion(rotation)
    unit = quaternion / np.linalg.norm(quaternion)
    assert recovered[3] >= 0
    assert min(np.abs(recovered - unit).max(), np.abs(recovered + unit).max()) < 1e-9


def test_rotation_to_quaternion_near_180_degrees() -> None:
    # Trace -1: the naive w-based formula divides by zero here.
    rotation = np.diag([1.0, -1.0, -1.0])
    np.testing.assert_allclose(
        geometry.rotation_to_quaternion(rotation), [1.0, 0, 0, 0], atol=1e-12
    )


def test_pose_encoding_hand_computed() -> None:
    pose_enc = np.array([1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, math.pi / 2, 2 * math.atan(2.0)])
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(pose_enc, (100, 200))
    np.testing.assert_allclose(extrinsics, [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]], atol=1e-12)
    # fy = (100/2)/tan(45 deg) = 50; fx = (200/2)/tan(atan 2) = 50; centre (100, 50).
    np.testing.assert_allclose(intrinsics, [[50, 0, 100], [0, 50, 50], [0, 0, 1]], atol=1e-9)


def test_pose_encoding_round_trip_batched() -> None:
    rng = np.random.default_rng(0)
    quaternion = rng.normal(size=(2, 5, 4))
    quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
    quaternion *= np.sign(quaternion[..., 3:4])
    fov = rng.uniform(0.3, 2.0, size=(2, 5, 2))
    pose_enc = np.concatenate([rng.normal(size=(2, 5, 3)), quaternion, fov], axis=-1)
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(pose_enc, (126, 168))
    assert extrinsics.shape == (2, 5, 3, 4) and intrinsics.shape == (2, 5, 3, 3)
    back = geometry.cameras_to_pose_encoding(extrinsics, intrinsics, (126, 168))
    np.testing.assert_allclose(back, pose_enc, atol=1e-9)


def test_pose_encoding_keeps_float32() -> None:
    pose_enc = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=np.float32)
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(pose_enc, (14, 14))
    assert extrinsics.dtype == np.float32 and intrinsics.dtype == np.float32


def test_pose_encoding_rejects_wrong_width() -> None:
    with pytest.raises(ValueError, match=re.escape("pose_enc must be (..., 9), got (3, 7)")):
        geometry.pose_encoding_to_cameras(np.zeros((3, 7)), (14, 14))


def test_invert_and_compose_rigid() -> None:
    rng = np.random.default_rng(1)
    T_cam_world = _random_extrinsics(rng, 6)
    T_world_cam = geometry.invert_rigid(T_cam_world)
    identity = geometry.compose_rigid(T_cam_world, T_world_cam)
    np.testing.assert_allclose(identity, np.tile(np.eye(4)[:3], (6, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(geometry.invert_rigid(T_world_cam), T_cam_world, atol=1e-12)
    homogeneous = geometry.to_homogeneous(T_cam_world)
    np.testing.assert_allclose(homogeneous[:, 3], np.tile([0, 0, 0, 1.0], (6, 1)))
    np.testing.assert_allclose(
        geometry.compose_rigid(T_cam_world[0], T_cam_world[1]),
        (homogeneous[0] @ homogeneous[1])[:3],
        atol=1e-12,
    )


def test_camera_centre_maps_to_camera_origin() -> None:
    rng = np.random.default_rng(2)
    extrinsics = _random_extrinsics(rng, 4)
    centres = geometry.camera_centers(extrinsics)
    in_camera = geometry.transform_points(extrinsics, centres[:, None, :])
    np.testing.assert_allclose(in_camera, 0.0, atol=1e-12)


def test_camera_centre_hand_computed() -> None:
    # Camera at world (0, 0, -5) looking along +z: X_cam = X_world + (0, 0, 5).
    extrinsics = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 5]])
    np.testing.assert_allclose(geometry.camera_centers(extrinsics), [0, 0, -5])


def test_project_hand_computed() -> None:
    intrinsics = np.array([[100.0, 0, 50], [0, 200, 40], [0, 0, 1]])
    uv, depth = geometry.project(np.array([[1.0, -1.0, 2.0]]), intrinsics)
    np.testing.assert_allclose(uv, [[100.0, -60.0]])
    np.testing.assert_allclose(depth, [2.0])


def test_depth_to_camera_points_hand_computed() -> None:
    intrinsics = np.array([[2.0, 0, 1.0], [0, 4.0, 1.0], [0, 0, 1]])
    depth = np.full((2, 3), 2.0)
    points = geometry.depth_to_camera_points(depth, intrinsics)
    assert points.shape == (2, 3, 3)
    # Pixel (row 0, column 2): u=2, v=0 -> x = (2-1)/2*2 = 1, y = (0-1)/4*2 = -0.5.
    np.testing.assert_allclose(points[0, 2], [1.0, -0.5, 2.0])
    np.testing.assert_allclose(points[1, 1], [0.0, 0.0, 2.0])


def test_project_unproject_identity_batched() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 10.0, size=(3, 7, 9))
    _, intrinsics = geometry.pose_encoding_to_cameras(
        np.concatenate([np.zeros((3, 6)), np.ones((3, 1)), rng.uniform(0.5, 1.5, (3, 2))], -1),
        (7, 9),
    )
    points = geometry.depth_to_camera_points(depth, intrinsics)
    uv, z = geometry.project(points.reshape(3, -1, 3), intrinsics)
    grid = geometry.pixel_grid((7, 9)).reshape(-1, 2)
    np.testing.assert_allclose(uv, np.broadcast_to(grid, uv.shape), atol=1e-9)
    np.testing.assert_allclose(z, depth.reshape(3, -1), atol=1e-12)


def test_depth_to_world_points_reprojects_into_each_camera() -> None:
    rng = np.random.default_rng(4)
    extrinsics = _random_extrinsics(rng, 3)
    intrinsics = np.tile(np.array([[20.0, 0, 4.5], [0, 20, 3.5], [0, 0, 1]]), (3, 1, 1))
    depth = rng.uniform(1.0, 3.0, size=(3, 7, 9))
    world = geometry.depth_to_world_points(depth, extrinsics, intrinsics)
    in_camera = geometry.transform_points(extrinsics, world.reshape(3, -1, 3))
    uv, z = geometry.project(in_camera, intrinsics)
    np.testing.assert_allclose(z, depth.reshape(3, -1), atol=1e-9)
    np.testing.assert_allclose(uv[:, 10], np.tile(geometry.pixel_grid((7, 9))[1, 1], (3, 1)))


@settings(max_examples=50, deadline=None)
@given(
    quaternions,
    arrays(np.float64, (3,), elements=st.floats(-5, 5)),
    st.floats(0.1, 10.0),
    st.integers(0, 2**31),
)
def test_similarity_align_recovers_transform(
    quaternion: np.ndarray, translation: np.ndarray, scale: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    source = rng.normal(size=(20, 3))
    rotation = geometry.quaternion_to_rotation(quaternion)
    target = scale * source @ rotation.T + translation
    fitted = geometry.similarity_align(source, target)
    assert fitted.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(fitted.rotation, rotation, atol=1e-8)
    np.testing.assert_allclose(fitted.apply(source), target, atol=1e-8)


def test_similarity_align_without_scale_and_with_weights() -> None:
    rng = np.random.default_rng(5)
    source = rng.normal(size=(10, 3))
    target = source + np.array([1.0, 2.0, 3.0])
    target[0] += 100.0  # an outlier that zero weight must ignore
    weights = np.ones(10)
    weights[0] = 0.0
    fitted = geometry.similarity_align(source, target * 1.0, weights, with_scale=False)
    assert fitted.scale == 1.0
    np.testing.assert_allclose(fitted.translation, [1.0, 2.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(fitted.rotation, np.eye(3), atol=1e-9)


def test_similarity_never_returns_a_reflection() -> None:
    rng = np.random.default_rng(6)
    source = rng.normal(size=(15, 3))
    mirrored = source * np.array([1.0, 1.0, -1.0])
    fitted = geometry.similarity_align(source, mirrored)
    assert np.linalg.det(fitted.rotation) == pytest.approx(1.0)


def test_similarity_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="matching"):
        geometry.similarity_align(np.zeros((3, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights"):
        geometry.similarity_align(np.ones((3, 3)), np.ones((3, 3)), np.zeros(3))


def test_similarity_moves_cameras_like_points() -> None:
    rng = np.random.default_rng(7)
    extrinsics = _random_extrinsics(rng, 5)
    similarity = geometry.Similarity(
        2.5, geometry.quaternion_to_rotation(rng.normal(size=4)), rng.normal(size=3)
    )
    moved = similarity.apply_to_extrinsics(extrinsics)
    np.testing.assert_allclose(
        geometry.camera_centers(moved),
        similarity.apply(geometry.camera_centers(extrinsics)),
        atol=1e-9,
    )
    rotation = moved[:, :, :3]
    np.testing.assert_allclose(
        rotation @ np.swapaxes(rotation, 1, 2), np.tile(np.eye(3), (5, 1, 1)), atol=1e-9
    )
