"""Ray casting against the analytic primitives of a scene: depth, points, surfaces, colour.

One ray per pixel centre (numpy, vectorised over pixels): the first hit among the room's
faces and every posed box or ellipsoid gives exact depth, world points, the surface index
and whether that surface moves; Lambertian shading of the hit gives the colour.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.sources.synthetic.textures import albedo

if TYPE_CHECKING:
    from page4d_viewer.sources.synthetic.scene import SyntheticScene, _Posed

# Room faces come first in the surface index, in this order.
ROOM_FACES = ("floor", "ceiling", "wall_x_min", "wall_x_max", "wall_y_min", "wall_y_max")
_ROOM_NORMALS = np.array(
    [[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=np.float64
)
# Which face a ray leaves the room through: [axis][direction positive].
_EXIT_FACE = np.array([[2, 3], [4, 5], [0, 1]])
_ROOM_FACE_AXIS = (2, 2, 0, 0, 1, 1)
# Hits closer than this along the ray (in units of depth) are ignored.
_NEAR = 1e-6


@dataclass
class RenderedView:
    """One rendered image and its exact geometry.

    Attributes:
        image: (H, W, 3) uint8.
        depth: (H, W) float64 z in the camera frame, metres.
        world_points: (H, W, 3) float64 world points, metres.
        surface: (H, W) int32 index into :meth:`SyntheticScene.surface_names`.
        dynamic: (H, W) bool, True where the surface belongs to a moving object.
    """

    image: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.float64]
    world_points: npt.NDArray[np.float64]
    surface: npt.NDArray[np.int32]
    dynamic: npt.NDArray[np.bool_]


def render_view(
    scene: SyntheticScene,
    extrinsic: npt.ArrayLike,
    intrinsic: npt.ArrayLike,
    width: int,
    height: int,
    t: float,
    *,
    supersample: int = 1,
) -> RenderedView:
    """Ray-cast one view of ``scene``; arguments and result as in :meth:`SyntheticScene.render`."""
    extrinsic = np.asarray(extrinsic, dtype=np.float64)
    intrinsic = np.asarray(intrinsic, dtype=np.float64)
    primitives = scene.posed_primitives(t)
    depth, surface, points = _trace(scene, extrinsic, intrinsic, width, height, primitives)
    if supersample == 1:
        colour = _shade(scene, points, surface, primitives)
    else:
        colour = np.zeros((height, width, 3))
        offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
        for du, dv in itertools.product(offsets, repeat=2):
            # Moving the principal point by -offset moves every ray by +offset pixels.
            shifted = intrinsic.copy()
            shifted[:2, 2] -= (du, dv)
            traced = _trace(scene, extrinsic, shifted, width, height, primitives)
            colour += _shade(scene, traced[2], traced[1], primitives)
        colour /= supersample**2
    dynamic_surfaces = np.array([False] * len(ROOM_FACES) + [p.dynamic for p in primitives])
    return RenderedView(
        image=np.clip(np.rint(colour * 255.0), 0, 255).astype(np.uint8),
        depth=depth,
        world_points=points,
        surface=surface,
        dynamic=dynamic_surfaces[surface],
    )


def _trace(
    scene: SyntheticScene,
    extrinsic: np.ndarray,
    intrinsic: np.ndarray,
    width: int,
    height: int,
    primitives: list[_Posed],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First hits of the rays through the pixel centres.

    Returns:
        (H, W) depth, metres; (H, W) int32 surface index; (H, W, 3) world points.
    """
    origin, directions = camera_rays(extrinsic, intrinsic, geometry.pixel_grid((height, width)))
    depth, surface = _room_exit(scene, origin, directions)
    for index, primitive in enumerate(primitives):
        window = _screen_window(primitive, extrinsic, intrinsic, width, height)
        if window is None:
            continue
        rows, cols = window
        hit = _intersect(primitive, origin, directions[rows, cols])
        _keep_nearer(depth[rows, cols], surface[rows, cols], hit, len(ROOM_FACES) + index)
    return depth, surface, origin + depth[..., None] * directions


def camera_rays(
    extrinsic: np.ndarray, intrinsic: np.ndarray, uv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rays of a pinhole camera through pixels, as :func:`render_view` casts them.

    Args:
        extrinsic: (3, 4) camera-from-world.
        intrinsic: (3, 3) pinhole matrix in pixels.
        uv: (..., 2) pixel coordinates ``(u, v)``.

    Returns:
        (3,) world origin (the camera centre); (..., 3) world directions with unit z in the
        camera frame, so that a hit's ray parameter is its depth.
    """
    R_cam_world, t_cam_world = extrinsic[:, :3], extrinsic[:, 3]
    origin = -R_cam_world.T @ t_cam_world
    uv1 = np.concatenate([uv, np.ones((*uv.shape[:-1], 1))], axis=-1)
    directions = (uv1 @ np.linalg.inv(intrinsic).T) @ R_cam_world
    return origin, directions


def cast_rays(
    scene: SyntheticScene, primitives: list[_Posed], origin: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First hits of arbitrary rays from one origin inside the room (no screen windows).

    Args:
        scene: the scene (for the room).
        primitives: ``scene.posed_primitives(t)`` at the time of the rays.
        origin: (3,) ray origin, world, inside the room and outside every object.
        directions: (N, 3) ray directions, world, any length.

    Returns:
        (N,) ray parameter of the first hit (the hit is ``origin + t * direction``, so it is
        the depth when the directions have unit camera z); (N,) int32 surface index into
        :meth:`SyntheticScene.surface_names`. The same arithmetic as :func:`render_view`'s
        rays, so a ray through a pixel centre gives the rendered depth and surface.
    """
    depth, surface = _room_exit(scene, origin, directions)
    for index, primitive in enumerate(primitives):
        hit = _intersect(primitive, origin, directions)
        _keep_nearer(depth, surface, hit, len(ROOM_FACES) + index)
    return depth, surface


def _keep_nearer(depth: np.ndarray, surface: np.ndarray, hit: np.ndarray, index: int) -> None:
    """Where ``hit`` is nearer than ``depth``, write it and ``index`` in place (views work)."""
    closer = hit < depth
    depth[...] = np.where(closer, hit, depth)
    surface[...] = np.where(closer, index, surface)


def _room_exit(
    scene: SyntheticScene, origin: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Where rays from inside the room leave it: (H, W) ray parameter and face index."""
    upper = np.array([*scene.room_half_size, scene.room_height])
    lower = np.array([-scene.room_half_size[0], -scene.room_half_size[1], 0.0])

    def exit_along(axis: int) -> tuple[np.ndarray, np.ndarray]:
        direction = directions[..., axis]
        positive = direction > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            exit_t = np.where(
                positive,
                (upper[axis] - origin[axis]) / direction,
                np.where(direction < 0, (lower[axis] - origin[axis]) / direction, np.inf),
            )
        exit_face = np.where(positive, _EXIT_FACE[axis, 1], _EXIT_FACE[axis, 0])
        return exit_t, np.asarray(exit_face, dtype=np.int32)

    # Per axis rather than reductions over a length-3 axis, which numpy does slowly.
    depth, face = exit_along(0)
    for axis in (1, 2):
        exit_t, exit_face = exit_along(axis)
        earlier = exit_t < depth
        depth = np.where(earlier, exit_t, depth)
        face = np.where(earlier, exit_face, face).astype(np.int32)
    return depth, face


def _shade(
    scene: SyntheticScene, points: np.ndarray, surface: np.ndarray, primitives: list[_Posed]
) -> np.ndarray:
    """(H, W, 3) colours in [0, 1] (may exceed 1 where over-lit) of surface points."""
    # Sort the pixels by surface once: each surface is then one contiguous slice.
    flat_surface = surface.ravel()
    order = np.argsort(flat_surface, kind="stable")
    indices, starts = np.unique(flat_surface[order], return_index=True)
    stops = np.append(starts[1:], len(order))
    sorted_points = points.reshape(-1, 3)[order]
    sorted_colour = np.empty_like(sorted_points)
    for index, start, stop in zip(indices, starts, stops, strict=True):
        world = sorted_points[start:stop]
        if index < len(ROOM_FACES):
            normals = np.broadcast_to(_ROOM_NORMALS[index], world.shape)
            coords = world.copy()
            coords[:, _ROOM_FACE_AXIS[index]] = 0.0
            texture = scene.room_textures[index]
        else:
            primitive = primitives[index - len(ROOM_FACES)]
            coords, normals = _local_surface(primitive, world)
            texture = primitive.texture
        sorted_colour[start:stop] = albedo(
            texture, coords, scene.texture_detail
        ) * scene.lighting.irradiance(world, normals)
    colour = np.empty_like(sorted_colour)
    colour[order] = sorted_colour
    return colour.reshape(points.shape)


def _screen_window(
    primitive: _Posed, extrinsic: np.ndarray, intrinsic: np.ndarray, width: int, height: int
) -> tuple[slice, slice] | None:
    """Pixel rows and columns that can see the primitive, or None if none can.

    The cube around the bounding sphere is convex, so when it lies in front of the camera
    its image is the hull of its projected corners: a conservative window.
    """
    radius = primitive.bounding_radius()
    centre_cam = extrinsic[:, :3] @ primitive.centre + extrinsic[:, 3]
    if centre_cam[2] + radius <= _NEAR:
        return None
    if centre_cam[2] - radius <= _NEAR:
        return slice(0, height), slice(0, width)
    corners = centre_cam + radius * np.array(list(itertools.product((-1, 1), repeat=3)))
    uv = (corners / corners[:, 2:]) @ intrinsic.T
    col0, row0 = np.floor(uv[:, :2].min(axis=0)).astype(int)
    col1, row1 = np.ceil(uv[:, :2].max(axis=0)).astype(int)
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1 + 1, width), min(row1 + 1, height)
    if col0 >= col1 or row0 >= row1:
        return None
    return slice(row0, row1), slice(col0, col1)


def _intersect(primitive: _Posed, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Ray parameter of the first hit in front of the origin, inf where the ray misses.

    Args:
        primitive: the posed box or ellipsoid.
        origin: (3,) ray origin (outside the primitive), world.
        directions: (..., 3) ray directions, world, any length.

    Returns:
        (...) hit parameters t (the hit is ``origin + t * direction``).
    """
    origin_local = primitive.rotation.T @ (origin - primitive.centre)
    directions_local = directions @ primitive.rotation
    size = primitive.half_size
    if primitive.kind == "box":
        with np.errstate(divide="ignore", invalid="ignore"):
            t_a = (-size - origin_local) / directions_local
            t_b = (size - origin_local) / directions_local
        near, far = np.minimum(t_a, t_b), np.maximum(t_a, t_b)
        t_near = np.maximum(np.maximum(near[..., 0], near[..., 1]), near[..., 2])
        t_far = np.minimum(np.minimum(far[..., 0], far[..., 1]), far[..., 2])
        hit = (t_near <= t_far) & (t_near > _NEAR)
        return np.where(hit, t_near, np.inf)
    # Ellipsoid: a unit sphere once the local coordinates are divided by the radii.
    o = origin_local / size
    d = directions_local / size
    a = np.einsum("...i,...i->...", d, d)
    b = d @ o
    c = o @ o - 1.0
    discriminant = b * b - a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(discriminant)) / a
    hit = (discriminant >= 0) & (t > _NEAR)
    return np.where(hit, t, np.inf)


def _local_surface(primitive: _Posed, world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture coordinates and world normals of points on a primitive.

    Args:
        primitive: the posed box or ellipsoid.
        world: (N, 3) points on its surface, world.

    Returns:
        (N, 3) texture coordinates (local, at rest size; a box face's normal coordinate is
        zeroed so the pattern is planar there) and (N, 3) unit normals, world.
    """
    local = (world - primitive.centre) @ primitive.rotation
    size = primitive.half_size
    if primitive.kind == "box":
        axis = np.argmax(np.abs(local) / size, axis=1)
        rows = np.arange(len(local))
        normals_local = np.zeros_like(local)
        normals_local[rows, axis] = np.sign(local[rows, axis])
        coords = local / primitive.texture_scale
        coords[rows, axis] = 0.0
    else:
        normals_local = local / size**2
        normals_local /= np.linalg.norm(normals_local, axis=1, keepdims=True)
        coords = local / primitive.texture_scale
    return coords, normals_local @ primitive.rotation.T
