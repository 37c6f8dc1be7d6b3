"""Pure, batched camera geometry on numpy arrays.

Convention (stated once, used everywhere in page4d_viewer):

* Cameras follow OpenCV: x right, y down, z forward (the optical axis).
* An *extrinsic* is the 3x4 matrix ``T_cam_world = [R | t]`` mapping world points into the
  camera frame: ``X_cam = R @ X_world + t``. Its inverse ``T_world_cam`` is the camera's pose.
* The world of a reconstruction is the first frame's camera frame.
* An *intrinsic* ``K`` is in pixels of the image it describes; pixel ``(row i, column j)`` has
  coordinates ``u = j, v = i`` (integer pixel centres, as the network was trained with), and
  the principal point sits at ``(W / 2, H / 2)``.
* Quaternions are scalar-last ``(qx, qy, qz, qw)``, as in the network's pose encoding.
* Depth is the distance along the optical axis (z in the camera frame), not along the ray.

Leading ``...`` dimensions broadcast; floating dtypes are kept (float32 in, float32 out).
Every public function checks the trailing shape of its array arguments (:func:`check_shape`)
and raises ``ValueError`` naming the argument, rather than broadcasting a wrong shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

FloatArray: TypeAlias = npt.NDArray[Any]
"""What the functions here return: floating arrays in the input's precision (float32 in,
float32 out; integer input becomes float64). The dtype parameter is Any because it follows the
input, which the annotations cannot carry through; callers that need one precision say so
with ``astype``. Inputs are anything ``np.asarray`` reads."""

# Below this, a quaternion or a point set is degenerate and we refuse to divide by it.
_EPS = 1e-12

Dim = int | str | tuple[int, ...]
"""One expected dimension: a size, a name for any size (``"N"``), or a tuple of allowed sizes."""

_RIGID = ((3, 4), 4)
"""Trailing shape of a rigid transform that may come as 3x4 or as homogeneous 4x4."""


def _format_dim(dim: Dim) -> str:
    if isinstance(dim, tuple):
        return " or ".join(str(size) for size in dim)
    return str(dim)


def _dim_matches(size: int, dim: Dim) -> bool:
    if isinstance(dim, str):
        return True
    if isinstance(dim, tuple):
        return size in dim
    return size == dim


def check_shape(array: ArrayLike, name: str, trailing: Sequence[Dim]) -> None:
    """Raise unless ``array``'s last dimensions are ``trailing`` (any leading dimensions).

    Args:
        array: the argument to check (anything numpy can shape).
        name: the argument's name, for the message.
        trailing: expected last dimensions, e.g. ``(3, 4)``, ``("N", 3)``, ``((3, 4), 4)``.

    Raises:
        ValueError: e.g. "extrinsics must be (..., 3, 4), got (5, 4, 4)".
    """
    shape = np.shape(array)
    tail = shape[max(len(shape) - len(trailing), 0) :]
    if len(tail) != len(trailing) or not all(
        _dim_matches(size, dim) for size, dim in zip(tail, trailing, strict=True)
    ):
        expected = ", ".join(["...", *(_format_dim(dim) for dim in trailing)])
        raise ValueError(f"{name} must be ({expected}), got {shape}")


def _float(array: ArrayLike) -> FloatArray:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def quaternion_to_rotation(quaternion_xyzw: ArrayLike) -> FloatArray:
    """Rotation matrices from unit quaternions (normalised here, so any non-zero length works).

    Args:
        quaternion_xyzw: (..., 4) quaternions, scalar last.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    check_shape(quaternion_xyzw, "quaternion_xyzw", (4,))
    q = _float(quaternion_xyzw)
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _EPS)
    x, y, z, w = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def rotation_to_quaternion(rotation: ArrayLike) -> FloatArray:
    """Unit quaternions from rotation matrices, with ``qw >= 0`` (one of the two signs).

    Uses the numerically stable branch per matrix (largest diagonal term), so rotations
    near 180 degrees are exact too.

    Args:
        rotation: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions ``(qx, qy, qz, qw)``.
    """
    check_shape(rotation, "rotation", (3, 3))
    R = _float(rotation)
    batch_shape = R.shape[:-2]
    R = R.reshape(-1, 3, 3)
    trace = np.trace(R, axis1=-2, axis2=-1)
    diagonal = np.diagonal(R, axis1=-2, axis2=-1)
    # Candidate 4*q_k^2 for k = x, y, z, w; pick the largest to avoid dividing by ~0.
    squares = np.stack(
        [
            1 + 2 * diagonal[:, 0] - trace,
            1 + 2 * diagonal[:, 1] - trace,
            1 + 2 * diagonal[:, 2] - trace,
            1 + trace,
        ],
        axis=-1,
    )
    best = np.argmax(squares, axis=-1)
    root = np.sqrt(np.maximum(squares[np.arange(len(R)), best], _EPS))
    candidates = _quaternion_candidates(R, root)
    q = candidates[np.arange(len(R)), best] / 2
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[:, 3:4] < 0, -q, q)
    return q.reshape(*batch_shape, 4)


def _quaternion_candidates(r: FloatArray, root: FloatArray) -> FloatArray:
    """(N, 4, 4): row k is 2 q computed from the branch where q_k is the largest component.

    Args:
        r: (N, 3, 3) rotation matrices.
        root: (N,) 2 |q_k| of each matrix's chosen branch (every row uses it as divisor).
    """
    xy, xz, yz = r[:, 0, 1] + r[:, 1, 0], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 2] + r[:, 2, 1]
    wx, wy, wz = r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]
    rows = (
        (root, xy / root, xz / root, wx / root),
        (xy / root, root, yz / root, wy / root),
        (xz / root, yz / root, root, wz / root),
        (wx / root, wy / root, wz / root, root),
    )
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=1)


def focal_from_fov(fov: ArrayLike, size: float) -> FloatArray:
    """Focal length in pixels for a field of view across ``size`` pixels.

    Args:
        fov: (...) full field of view in radians.
        size: image extent along that axis in pixels.

    Returns:
        (...) focal length in pixels, ``(size / 2) / tan(fov / 2)``; inf for a zero field of
        view (an untrained camera head can output one).
    """
    with np.errstate(divide="ignore"):
        return (size / 2.0) / np.tan(_float(fov) / 2.0)


def fov_from_focal(focal: ArrayLike, size: float) -> FloatArray:
    """Full field of view in radians of a focal length ``focal`` (pixels) across ``size`` pixels.

    Args:
        focal: (...) focal length in pixels.
        size: image extent along that axis in pixels.

    Returns:
        (...) field of view in radians.
    """
    return 2.0 * np.arctan((size / 2.0) / _float(focal))


def pose_encoding_to_cameras(
    pose_enc: ArrayLike, image_hw: tuple[int, int]
) -> tuple[FloatArray, FloatArray]:
    """Extrinsics and intrinsics from the network's 9-number pose encoding.

    Args:
        pose_enc: (..., 9) ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``; translation of the
            camera-from-world transform, its rotation as a quaternion, fields of view in radians.
        image_hw: (H, W) of the images the encoding describes, in pixels.

    Returns:
        extrinsics: (..., 3, 4) camera-from-world ``[R | t]``.
        intrinsics: (..., 3, 3) pinhole matrices in pixels, principal point at the centre.
    """
    check_shape(pose_enc, "pose_enc", (9,))
    pose_enc = _float(pose_enc)
    height, width = image_hw
    rotation = quaternion_to_rotation(pose_enc[..., 3:7])
    extrinsics = np.concatenate([rotation, pose_enc[..., :3, None]], axis=-1)
    intrinsics = np.zeros(pose_enc.shape[:-1] + (3, 3), dtype=pose_enc.dtype)
    intrinsics[..., 0, 0] = focal_from_fov(pose_enc[..., 8], width)
    intrinsics[..., 1, 1] = focal_from_fov(pose_enc[..., 7], height)
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def cameras_to_pose_encoding(
    extrinsics: ArrayLike, intrinsics: ArrayLike, image_hw: tuple[int, int]
) -> FloatArray:
    """The inverse of :func:`pose_encoding_to_cameras` (the principal point is not encoded).

    Args:
        extrinsics: (..., 3, 4) camera-from-world.
        intrinsics: (..., 3, 3) in pixels.
        image_hw: (H, W) in pixels.

    Returns:
        (..., 9) ``[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``.
    """
    check_shape(extrinsics, "extrinsics", (3, 4))
    check_shape(intrinsics, "intrinsics", (3, 3))
    extrinsics = _float(extrinsics)
    intrinsics = _float(intrinsics)
    height, width = image_hw
    quaternion = rotation_to_quaternion(extrinsics[..., :3, :3])
    fov_h = fov_from_focal(intrinsics[..., 1, 1], height)
    fov_w = fov_from_focal(intrinsics[..., 0, 0], width)
    return np.concatenate(
        [extrinsics[..., :3, 3], quaternion, fov_h[..., None], fov_w[..., None]], axis=-1
    )


def to_homogeneous(transform: ArrayLike) -> FloatArray:
    """4x4 matrices from 3x4 rigid (or similarity) transforms.

    Args:
        transform: (..., 3, 4).

    Returns:
        (..., 4, 4) with last row ``[0, 0, 0, 1]``.
    """
    check_shape(transform, "transform", (3, 4))
    transform = _float(transform)
    bottom = np.zeros(transform.shape[:-2] + (1, 4), dtype=transform.dtype)
    bottom[..., 0, 3] = 1.0
    return np.concatenate([transform[..., :3, :4], bottom], axis=-2)


def invert_rigid(T_a_b: ArrayLike) -> FloatArray:
    """Inverse of rigid transforms, e.g. ``T_world_cam`` (pose) from ``T_cam_world`` (extrinsic).

    Args:
        T_a_b: (..., 3, 4) or (..., 4, 4) ``[R | t]`` with R orthonormal.

    Returns:
        (..., 3, 4) ``T_b_a = [R^T | -R^T t]``.
    """
    check_shape(T_a_b, "T_a_b", _RIGID)
    T_a_b = _float(T_a_b)
    rotation_t = np.swapaxes(T_a_b[..., :3, :3], -1, -2)
    translation = -(rotation_t @ T_a_b[..., :3, 3:4])
    return np.concatenate([rotation_t, translation], axis=-1)


def compose_rigid(T_a_b: ArrayLike, T_b_c: ArrayLike) -> FloatArray:
    """Chain transforms: ``T_a_c = T_a_b @ T_b_c``.

    Args:
        T_a_b: (..., 3, 4) or (..., 4, 4).
        T_b_c: (..., 3, 4) or (..., 4, 4).

    Returns:
        (..., 3, 4) ``T_a_c``.
    """
    check_shape(T_a_b, "T_a_b", _RIGID)
    check_shape(T_b_c, "T_b_c", _RIGID)
    T_a_b = _float(T_a_b)
    T_b_c = _float(T_b_c)
    rotation = T_a_b[..., :3, :3] @ T_b_c[..., :3, :3]
    translation = T_a_b[..., :3, :3] @ T_b_c[..., :3, 3:4] + T_a_b[..., :3, 3:4]
    return np.concatenate([rotation, translation], axis=-1)


def transform_points(T_a_b: ArrayLike, points_b: ArrayLike) -> FloatArray:
    """Map points from frame b to frame a.

    Args:
        T_a_b: (..., 3, 4) or (..., 4, 4) transform; its batch dims broadcast against the
            points' batch dims.
        points_b: (..., N, 3) points in frame b.

    Returns:
        (..., N, 3) the same points in frame a.
    """
    check_shape(T_a_b, "T_a_b", _RIGID)
    check_shape(points_b, "points_b", ("N", 3))
    T_a_b = _float(T_a_b)
    points_b = _float(points_b)
    rotation = T_a_b[..., None, :3, :3]
    translation = T_a_b[..., None, :3, 3]
    return (rotation @ points_b[..., :, None])[..., 0] + translation


def camera_centers(extrinsics: ArrayLike) -> FloatArray:
    """Camera positions in the world: ``-R^T t``.

    Args:
        extrinsics: (..., 3, 4) camera-from-world.

    Returns:
        (..., 3) optical centres in world coordinates.
    """
    check_shape(extrinsics, "extrinsics", (3, 4))
    return invert_rigid(extrinsics)[..., :3, 3]


def pixel_grid(image_hw: tuple[int, int], dtype: npt.DTypeLike = np.float64) -> FloatArray:
    """Pixel coordinates ``(u, v) = (column, row)`` of every pixel.

    Args:
        image_hw: (H, W).
        dtype: floating dtype of the result.

    Returns:
        (H, W, 2) pixel coordinates.
    """
    height, width = image_hw
    v, u = np.meshgrid(np.arange(height, dtype=dtype), np.arange(width, dtype=dtype), indexing="ij")
    return np.stack([u, v], axis=-1)


def sparse_pixel_grid(image_hw: tuple[int, int], step: int) -> npt.NDArray[np.float64]:
    """Pixel centres ``(u, v)`` every ``step`` pixels, starting half a step from the corner.

    Args:
        image_hw: (H, W).
        step: spacing in pixels (>= 1).

    Returns:
        (N, 2) float64 pixel coordinates, row by row.
    """
    if step < 1:
        raise ValueError(f"the grid step must be at least 1 pixel, got {step}")
    height, width = image_hw
    rows, columns = np.mgrid[step // 2 : height : step, step // 2 : width : step]
    return np.stack([columns.ravel(), rows.ravel()], axis=-1).astype(np.float64)


def project(points_cam: ArrayLike, intrinsics: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Pinhole projection of camera-frame points to pixels.

    Args:
        points_cam: (..., N, 3) points in the camera frame.
        intrinsics: (..., 3, 3) pinhole matrices in pixels.

    Returns:
        uv: (..., N, 2) pixel coordinates; points at or behind ``z = 0`` give inf/nan.
        depth: (..., N) z of each point (its depth along the optical axis).
    """
    check_shape(points_cam, "points_cam", ("N", 3))
    check_shape(intrinsics, "intrinsics", (3, 3))
    points_cam = _float(points_cam)
    K = _float(intrinsics)[..., None, :, :]
    depth = points_cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = points_cam[..., 0] / depth
        y = points_cam[..., 1] / depth
    u = K[..., 0, 0] * x + K[..., 0, 1] * y + K[..., 0, 2]
    v = K[..., 1, 1] * y + K[..., 1, 2]
    return np.stack([u, v], axis=-1), depth


def unproject_pixels(uv: ArrayLike, depth: ArrayLike, intrinsics: ArrayLike) -> FloatArray:
    """Lift pixels with known depth into the camera frame (inverse of :func:`project`).

    Args:
        uv: (..., N, 2) pixel coordinates.
        depth: (..., N) depth along the optical axis.
        intrinsics: (..., 3, 3) pinhole matrices in pixels.

    Returns:
        (..., N, 3) camera-frame points.
    """
    check_shape(uv, "uv", ("N", 2))
    check_shape(depth, "depth", ("N",))
    check_shape(intrinsics, "intrinsics", (3, 3))
    if np.shape(depth)[-1] != np.shape(uv)[-2]:
        raise ValueError(
            f"depth must be (..., N) with N = {np.shape(uv)[-2]} as in uv, got {np.shape(depth)}"
        )
    uv = _float(uv)
    depth = _float(depth)
    K = _float(intrinsics)[..., None, :, :]
    y = (uv[..., 1] - K[..., 1, 2]) / K[..., 1, 1]
    x = (uv[..., 0] - K[..., 0, 2] - K[..., 0, 1] * y) / K[..., 0, 0]
    return np.stack([x * depth, y * depth, depth], axis=-1)


def depth_to_camera_points(depth: ArrayLike, intrinsics: ArrayLike) -> FloatArray:
    """Camera-frame point map from a depth map.

    Args:
        depth: (..., H, W) depth along the optical axis.
        intrinsics: (..., 3, 3) pinhole matrices in pixels of the depth map.

    Returns:
        (..., H, W, 3) points in each camera's frame.
    """
    check_shape(depth, "depth", ("H", "W"))
    check_shape(intrinsics, "intrinsics", (3, 3))
    depth = _float(depth)
    height, width = depth.shape[-2:]
    uv = pixel_grid((height, width), dtype=depth.dtype).reshape(-1, 2)
    flat = depth.reshape(depth.shape[:-2] + (height * width,))
    points = unproject_pixels(uv, flat, intrinsics)
    return points.reshape(depth.shape + (3,))


def depth_to_world_points(
    depth: ArrayLike, extrinsics: ArrayLike, intrinsics: ArrayLike
) -> FloatArray:
    """World-frame point map from depth and cameras.

    Args:
        depth: (..., H, W) depth along the optical axis.
        extrinsics: (..., 3, 4) camera-from-world.
        intrinsics: (..., 3, 3) in pixels.

    Returns:
        (..., H, W, 3) points in the world frame.
    """
    check_shape(depth, "depth", ("H", "W"))
    check_shape(extrinsics, "extrinsics", (3, 4))
    check_shape(intrinsics, "intrinsics", (3, 3))
    points_cam = depth_to_camera_points(depth, intrinsics)
    height, width = points_cam.shape[-3:-1]
    flat = points_cam.reshape(points_cam.shape[:-3] + (height * width, 3))
    points_world = transform_points(invert_rigid(extrinsics), flat)
    return points_world.reshape(points_cam.shape)


class Similarity(NamedTuple):
    """A Sim(3) transform ``x -> scale * rotation @ x + translation``."""

    scale: float
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,)

    def apply(self, points: ArrayLike) -> FloatArray:
        """Transform points.

        Args:
            points: (..., 3).

        Returns:
            (..., 3) transformed points.
        """
        check_shape(points, "points", (3,))
        return self.scale * (_float(points) @ self.rotation.T) + self.translation

    def apply_to_extrinsics(self, extrinsics: ArrayLike) -> FloatArray:
        """Re-express cameras in the transformed world, scaling their frames by ``scale``.

        With ``X' = s R X + t``, a camera ``X_cam = R_c X + t_c`` becomes
        ``s X_cam = R_c R^T X' + (s t_c - R_c R^T t)``, so centres map exactly like points.

        Args:
            extrinsics: (..., 3, 4) camera-from-world.

        Returns:
            (..., 3, 4) camera-from-new-world.
        """
        check_shape(extrinsics, "extrinsics", (3, 4))
        extrinsics = _float(extrinsics)
        rotation = extrinsics[..., :3, :3] @ self.rotation.T
        translation = self.scale * extrinsics[..., :3, 3] - rotation @ self.translation
        return np.concatenate([rotation, translation[..., None]], axis=-1)


def similarity_align(
    source: ArrayLike,
    target: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    with_scale: bool = True,
) -> Similarity:
    """Least-squares Sim(3) (Umeyama) taking ``source`` points onto ``target`` points.

    Used for display and evaluation: a reconstruction is only defined up to a similarity.
    Degenerate sets still get the least-squares optimum: collinear points (covariance of rank
    1, which evo's Umeyama refuses) get one of the optimal rotations, which differ only by a
    spin about the line; a source whose points coincide keeps scale 1 and maps onto the
    target's mean.

    Args:
        source: (N, 3) points; N >= 3 and not all collinear for a unique rotation.
        target: (N, 3) corresponding points.
        weights: (N,) non-negative weights, or None for equal weights.
        with_scale: fit the scale (Sim(3)); otherwise scale is 1 (SE(3)).

    Returns:
        The transform minimising ``sum w_i |target_i - (s R source_i + t)|^2``.
    """
    check_shape(source, "source", ("N", 3))
    check_shape(target, "target", ("N", 3))
    if weights is not None:
        check_shape(weights, "weights", ("N",))
    source = np.asarray(source, dtype=np.float64).reshape(-1, 3)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 3)
    if source.shape != target.shape or len(source) == 0:
        raise ValueError(f"need matching non-empty point sets, got {source.shape}, {target.shape}")
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64).reshape(-1)
    if w.shape != (len(source),) or np.any(w < 0) or w.sum() <= _EPS:
        raise ValueError("weights must be one non-negative number per point, not all zero")
    w = w / w.sum()
    mean_source = w @ source
    mean_target = w @ target
    centred_source = source - mean_source
    centred_target = target - mean_target
    covariance = (centred_target * w[:, None]).T @ centred_source
    u, singular, vt = np.linalg.svd(covariance)
    # Flip the weakest axis if needed so the result is a rotation, not a reflection.
    reflection = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        reflection[2] = -1.0
    rotation = (u * reflection) @ vt
    scale = 1.0
    if with_scale:
        source_variance = float(w @ np.sum(centred_source**2, axis=1))
        scale = float(singular @ reflection) / source_variance if source_variance > _EPS else 1.0
    translation = mean_target - scale * rotation @ mean_source
    return Similarity(scale, rotation, translation)
