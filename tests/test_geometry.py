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

BATCH_SHAPES = [(), (1,), (5,), (2, 3)]
"""Leading batch shapes the batched functions are checked over (none, one, several, nested)."""
batch_shapes = pytest.mark.parametrize("batch", BATCH_SHAPES, ids=lambda shape: f"batch{shape}")


def _random_extrinsics(rng: np.random.Generator, batch: tuple[int, ...]) -> np.ndarray:
    rotation = geometry.quaternion_to_rotation(rng.normal(size=(*batch, 4)))
    translation = rng.normal(size=(*batch, 3, 1))
    return np.concatenate([rotation, translation], axis=-1)


def _random_intrinsics(
    rng: np.random.Generator, batch: tuple[int, ...], image_hw: tuple[int, int]
) -> np.ndarray:
    height, width = image_hw
    intrinsics = np.zeros((*batch, 3, 3))
    intrinsics[..., 0, 0] = rng.uniform(0.5, 2.0, size=batch) * width
    intrinsics[..., 1, 1] = rng.uniform(0.5, 2.0, size=batch) * height
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return intrinsics


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


def test_pose_encoding_keeps_float32() -> None:
    pose_enc = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=np.float32)
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(pose_enc, (14, 14))
    assert extrinsics.dtype == np.float32 and intrinsics.dtype == np.float32


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


# Batched round trips: every function that takes leading "..." dimensions, over BATCH_SHAPES.


@batch_shapes
def test_quaternion_round_trip_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(10)
    quaternion = rng.normal(size=(*batch, 4))
    quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
    quaternion *= np.where(quaternion[..., 3:4] < 0, -1.0, 1.0)
    rotation = geometry.quaternion_to_rotation(quaternion)
    assert rotation.shape == (*batch, 3, 3)
    recovered = geometry.rotation_to_quaternion(rotation)
    assert recovered.shape == (*batch, 4)
    np.testing.assert_allclose(recovered, quaternion, atol=1e-9)


@batch_shapes
def test_pose_encoding_round_trip_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(11)
    quaternion = rng.normal(size=(*batch, 4))
    quaternion /= np.linalg.norm(quaternion, axis=-1, keepdims=True)
    quaternion *= np.where(quaternion[..., 3:4] < 0, -1.0, 1.0)
    fov = rng.uniform(0.3, 2.0, size=(*batch, 2))
    pose_enc = np.concatenate([rng.normal(size=(*batch, 3)), quaternion, fov], axis=-1)
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(pose_enc, (126, 168))
    assert extrinsics.shape == (*batch, 3, 4) and intrinsics.shape == (*batch, 3, 3)
    back = geometry.cameras_to_pose_encoding(extrinsics, intrinsics, (126, 168))
    assert back.shape == (*batch, 9)
    np.testing.assert_allclose(back, pose_enc, atol=1e-9)


@batch_shapes
def test_invert_compose_and_homogeneous_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(12)
    T_cam_world = _random_extrinsics(rng, batch)
    T_world_cam = geometry.invert_rigid(T_cam_world)
    assert T_world_cam.shape == (*batch, 3, 4)
    identity = geometry.compose_rigid(T_cam_world, T_world_cam)
    np.testing.assert_allclose(identity, np.broadcast_to(np.eye(4)[:3], identity.shape), atol=1e-12)
    homogeneous = geometry.to_homogeneous(T_cam_world)
    assert homogeneous.shape == (*batch, 4, 4)
    np.testing.assert_allclose(homogeneous[..., 3, :], np.broadcast_to([0, 0, 0, 1.0], (*batch, 4)))
    np.testing.assert_allclose(geometry.invert_rigid(T_world_cam), T_cam_world, atol=1e-12)
    np.testing.assert_allclose(
        geometry.compose_rigid(T_cam_world, T_cam_world),
        (homogeneous @ homogeneous)[..., :3, :],
        atol=1e-12,
    )
    # 4x4 inputs give the same answers as 3x4 ones.
    np.testing.assert_allclose(geometry.invert_rigid(homogeneous), T_world_cam, atol=1e-12)
    np.testing.assert_allclose(
        geometry.compose_rigid(homogeneous, geometry.to_homogeneous(T_world_cam)),
        identity,
        atol=1e-12,
    )


@batch_shapes
def test_camera_centres_map_to_camera_origin_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(13)
    extrinsics = _random_extrinsics(rng, batch)
    centres = geometry.camera_centers(extrinsics)
    assert centres.shape == (*batch, 3)
    in_camera = geometry.transform_points(extrinsics, centres[..., None, :])
    assert in_camera.shape == (*batch, 1, 3)
    np.testing.assert_allclose(in_camera, 0.0, atol=1e-12)


@batch_shapes
def test_project_unproject_round_trip_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(14)
    intrinsics = _random_intrinsics(rng, batch, (30, 40))
    uv = rng.uniform(0, 40, size=(*batch, 6, 2))
    depth = rng.uniform(0.5, 10.0, size=(*batch, 6))
    points = geometry.unproject_pixels(uv, depth, intrinsics)
    assert points.shape == (*batch, 6, 3)
    uv_back, depth_back = geometry.project(points, intrinsics)
    np.testing.assert_allclose(uv_back, uv, atol=1e-9)
    np.testing.assert_allclose(depth_back, depth, atol=1e-12)


@batch_shapes
def test_depth_to_points_reprojects_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(15)
    extrinsics = _random_extrinsics(rng, batch)
    intrinsics = _random_intrinsics(rng, batch, (7, 9))
    depth = rng.uniform(1.0, 3.0, size=(*batch, 7, 9))
    camera_points = geometry.depth_to_camera_points(depth, intrinsics)
    world = geometry.depth_to_world_points(depth, extrinsics, intrinsics)
    assert camera_points.shape == world.shape == (*batch, 7, 9, 3)
    in_camera = geometry.transform_points(extrinsics, world.reshape(*batch, -1, 3))
    np.testing.assert_allclose(in_camera, camera_points.reshape(*batch, -1, 3), atol=1e-9)
    uv, z = geometry.project(in_camera, intrinsics)
    grid = geometry.pixel_grid((7, 9)).reshape(-1, 2)
    np.testing.assert_allclose(uv, np.broadcast_to(grid, uv.shape), atol=1e-9)
    np.testing.assert_allclose(z, depth.reshape(*batch, -1), atol=1e-9)


@batch_shapes
def test_similarity_moves_cameras_like_points_over_batch_shapes(batch: tuple[int, ...]) -> None:
    rng = np.random.default_rng(16)
    extrinsics = _random_extrinsics(rng, batch)
    similarity = geometry.Similarity(
        0.7, geometry.quaternion_to_rotation(rng.normal(size=4)), rng.normal(size=3)
    )
    moved = similarity.apply_to_extrinsics(extrinsics)
    assert moved.shape == (*batch, 3, 4)
    rotation = moved[..., :3]
    np.testing.assert_allclose(
        rotation @ np.swapaxes(rotation, -1, -2),
        np.broadcast_to(np.eye(3), rotation.shape),
        atol=1e-9,
    )
    np.testing.assert_allclose(
        geometry.camera_centers(moved),
        similarity.apply(geometry.camera_centers(extrinsics)),
        atol=1e-9,
    )


# Shape checks: each public function names the argument and the shape it expected.

_E = np.zeros((5, 3, 4))
_K = np.tile(np.eye(3), (5, 1, 1))
_SIM = geometry.Similarity(1.0, np.eye(3), np.zeros(3))

SHAPE_CHECKS = [
    pytest.param(
        lambda: geometry.quaternion_to_rotation(np.zeros((5, 3))),
        "quaternion_xyzw must be (..., 4), got (5, 3)",
        id="quaternion_to_rotation",
    ),
    pytest.param(
        lambda: geometry.rotation_to_quaternion(np.zeros((5, 3, 4))),
        "rotation must be (..., 3, 3), got (5, 3, 4)",
        id="rotation_to_quaternion",
    ),
    pytest.param(
        lambda: geometry.pose_encoding_to_cameras(np.zeros((5, 7)), (14, 14)),
        "pose_enc must be (..., 9), got (5, 7)",
        id="pose_encoding_to_cameras",
    ),
    pytest.param(
        lambda: geometry.cameras_to_pose_encoding(np.zeros((5, 4, 4)), _K, (14, 14)),
        "extrinsics must be (..., 3, 4), got (5, 4, 4)",
        id="cameras_to_pose_encoding-extrinsics",
    ),
    pytest.param(
        lambda: geometry.cameras_to_pose_encoding(_E, np.zeros((5, 3)), (14, 14)),
        "intrinsics must be (..., 3, 3), got (5, 3)",
        id="cameras_to_pose_encoding-intrinsics",
    ),
    pytest.param(
        lambda: geometry.to_homogeneous(np.zeros((5, 4, 4))),
        "transform must be (..., 3, 4), got (5, 4, 4)",
        id="to_homogeneous",
    ),
    pytest.param(
        lambda: geometry.invert_rigid(np.zeros((5, 3, 3))),
        "T_a_b must be (..., 3 or 4, 4), got (5, 3, 3)",
        id="invert_rigid",
    ),
    pytest.param(
        lambda: geometry.compose_rigid(_E, np.zeros((4,))),
        "T_b_c must be (..., 3 or 4, 4), got (4,)",
        id="compose_rigid",
    ),
    pytest.param(
        lambda: geometry.transform_points(_E[0], np.zeros((10, 2))),
        "points_b must be (..., N, 3), got (10, 2)",
        id="transform_points-points",
    ),
    pytest.param(
        lambda: geometry.transform_points(np.eye(3), np.zeros((10, 3))),
        "T_a_b must be (..., 3 or 4, 4), got (3, 3)",
        id="transform_points-transform",
    ),
    pytest.param(
        lambda: geometry.transform_points(_E[0], np.zeros(3)),
        "points_b must be (..., N, 3), got (3,)",
        id="transform_points-single-point",
    ),
    pytest.param(
        lambda: geometry.camera_centers(np.zeros((5, 4, 4))),
        "extrinsics must be (..., 3, 4), got (5, 4, 4)",
        id="camera_centers",
    ),
    pytest.param(
        lambda: geometry.project(np.zeros((5, 10, 2)), _K),
        "points_cam must be (..., N, 3), got (5, 10, 2)",
        id="project-points",
    ),
    pytest.param(
        lambda: geometry.project(np.zeros((5, 10, 3)), np.zeros((5, 2, 3))),
        "intrinsics must be (..., 3, 3), got (5, 2, 3)",
        id="project-intrinsics",
    ),
    pytest.param(
        lambda: geometry.unproject_pixels(np.zeros((10, 3)), np.ones(10), _K[0]),
        "uv must be (..., N, 2), got (10, 3)",
        id="unproject_pixels-uv",
    ),
    pytest.param(
        lambda: geometry.unproject_pixels(np.zeros((10, 2)), np.float64(1.0), _K[0]),
        "depth must be (..., N), got ()",
        id="unproject_pixels-scalar-depth",
    ),
    pytest.param(
        lambda: geometry.unproject_pixels(np.zeros((10, 2)), np.ones((5, 1)), _K),
        "depth must be (..., N) with N = 10 as in uv, got (5, 1)",
        id="unproject_pixels-depth-count",
    ),
    pytest.param(
        lambda: geometry.unproject_pixels(np.zeros((10, 2)), np.ones(10), np.eye(4)),
        "intrinsics must be (..., 3, 3), got (4, 4)",
        id="unproject_pixels-intrinsics",
    ),
    pytest.param(
        lambda: geometry.depth_to_camera_points(np.ones(7), _K[0]),
        "depth must be (..., H, W), got (7,)",
        id="depth_to_camera_points-depth",
    ),
    pytest.param(
        lambda: geometry.depth_to_camera_points(np.ones((5, 7, 9)), np.zeros((5, 9))),
        "intrinsics must be (..., 3, 3), got (5, 9)",
        id="depth_to_camera_points-intrinsics",
    ),
    pytest.param(
        lambda: geometry.depth_to_world_points(np.ones((5, 7, 9)), np.zeros((5, 4, 4)), _K),
        "extrinsics must be (..., 3, 4), got (5, 4, 4)",
        id="depth_to_world_points-extrinsics",
    ),
    pytest.param(
        lambda: geometry.depth_to_world_points(np.ones((5, 7, 9)), _E, np.zeros((5, 3, 4))),
        "intrinsics must be (..., 3, 3), got (5, 3, 4)",
        id="depth_to_world_points-intrinsics",
    ),
    pytest.param(
        lambda: _SIM.apply(np.zeros((10, 4))),
        "points must be (..., 3), got (10, 4)",
        id="Similarity.apply",
    ),
    pytest.param(
        lambda: _SIM.apply_to_extrinsics(np.zeros((5, 4, 4))),
        "extrinsics must be (..., 3, 4), got (5, 4, 4)",
        id="Similarity.apply_to_extrinsics",
    ),
    pytest.param(
        lambda: geometry.similarity_align(np.zeros((10, 2)), np.zeros((10, 3))),
        "source must be (..., N, 3), got (10, 2)",
        id="similarity_align-source",
    ),
    pytest.param(
        lambda: geometry.similarity_align(np.zeros((10, 3)), np.zeros(3)),
        "target must be (..., N, 3), got (3,)",
        id="similarity_align-target",
    ),
    pytest.param(
        lambda: geometry.similarity_align(np.zeros((10, 3)), np.zeros((10, 3)), np.float64(1)),
        "weights must be (..., N), got ()",
        id="similarity_align-weights",
    ),
]


@pytest.mark.parametrize(("call", "message"), SHAPE_CHECKS)
def test_shape_check_names_the_argument(call, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call()


def test_check_shape_accepts_leading_dims_names_and_alternatives() -> None:
    geometry.check_shape(np.zeros((2, 3, 3, 4)), "extrinsics", (3, 4))
    geometry.check_shape([[1.0, 2.0, 3.0]], "points", ("N", 3))
    geometry.check_shape(np.zeros((4, 4)), "T", ((3, 4), 4))
    geometry.check_shape(np.zeros((3, 4)), "T", ((3, 4), 4))
    with pytest.raises(ValueError, match=re.escape("T must be (..., 3 or 4, 4), got (5, 4)")):
        geometry.check_shape(np.zeros((5, 4)), "T", ((3, 4), 4))
    with pytest.raises(ValueError, match=re.escape("K must be (..., 3, 3), got (3,)")):
        geometry.check_shape(np.zeros(3), "K", (3, 3))
