"""Procedural dynamic scenes with exact ground truth, and the bundled sample clips.

A scene is a closed room (floor, ceiling, four walls) with procedural textures, static boxes
and balls, and moving objects: boxes, spheres and ellipsoids that sweep, circle, bounce,
spin and pulse in size, and optionally an articulated "person" made of ellipsoids walking
in a circle. Frames are rendered by casting one ray per pixel centre against these analytic
primitives (numpy, vectorised over pixels), so depth, points, cameras and the dynamic mask
are exact, and every pixel sees a surface (``valid`` is all True).

Conventions (the same as :mod:`page4d_viewer.geometry`):

* **World frame**: metres, z up, origin on the floor at the centre of the room; the floor is
  ``z = 0``, the room spans ``|x| <= room_half_size[0]``, ``|y| <= room_half_size[1]``,
  ``0 <= z <= room_height``. It does not move and does not depend on the cameras.
* **Cameras**: OpenCV (x right, y down, z forward); ``extrinsics`` are camera-from-world
  ``[R | t]``; pixel (row i, column j) has image coordinates ``(u, v) = (j, i)`` and the
  principal point is ``(W / 2, H / 2)``; square pixels.
* **Depth** is z in the camera frame (along the optical axis), in metres.
* The network predicts points and cameras in the *first camera's* frame:
  :meth:`SyntheticClip.in_first_camera_frame` re-expresses a clip that way.
* **Shading** is Lambertian under fixed lights with no shadows, so a static surface point has
  the same colour in every frame and whatever the moving objects do.
* **dynamic_mask** is True exactly where the first surface hit belongs to a moving object.
  Every moving object spins or travels at all times, so its surface moves in every frame.

On-disk ground truth (:func:`save_ground_truth`, :func:`load_ground_truth`), one folder:

* ``clip.mp4``: the frames, H.264 (yuv420p, CRF 12) at the clip's fps;
* ``groundtruth.npz``: ``format_version`` (1), ``depth`` (S, H, W) float16 metres (relative
  error below 5e-4; float32 compresses ten times worse),
  ``extrinsics`` (S, 3, 4) and ``intrinsics`` (S, 3, 3) float64, ``timestamps`` (S,) seconds,
  ``dynamic_mask`` and ``valid`` as ``np.packbits`` of the flattened (S, H, W) bools,
  ``shape`` = (S, H, W), ``fps``;
* ``scene.json``: seed, the :func:`make_clip` settings, a one-line description and the
  full scene (room, textures, lights, objects and their motions). ``make_clip(**settings)``
  with these settings renders the clip again exactly.
"""

from __future__ import annotations

import colorsys
import dataclasses
import itertools
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError

logger = logging.getLogger(__name__)

CAMERA_MOTIONS = ("orbit", "walk", "handheld")
MOVER_SIZES = ("small", "large", "mixed")
FORMAT_VERSION = 1
VIDEO_NAME = "clip.mp4"
GROUND_TRUTH_NAME = "groundtruth.npz"
SCENE_NAME = "scene.json"

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
# A camera keeps this much room (metres) around itself and any object's bounding sphere.
_CAMERA_CLEARANCE = 0.35


class SyntheticSceneError(Page4DError):
    """Bad synthetic-scene settings, or a saved ground-truth folder that cannot be read."""


# ----------------------------------------------------------------------------------------
# Scene description (plain dataclasses of floats and tuples, so they serialise to JSON)
# ----------------------------------------------------------------------------------------

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Texture:
    """A solid procedural texture: a pattern mixing two colours, times fine grain.

    Attributes:
        kind: "plain", "checker", "stripes", "noise" or "tiles".
        colour_a: RGB albedo in [0, 1].
        colour_b: second RGB albedo in [0, 1].
        cell: pattern period in metres.
        offset: (3,) metres added to the coordinates (keeps cell borders off flat faces).
        axis: (3,) unit direction across the stripes.
        seed: hash seed of the noise lattices.
        grain: relative amplitude of the 3 cm grain on top of the pattern.
    """

    kind: str
    colour_a: Vec3
    colour_b: Vec3
    cell: float
    offset: Vec3
    axis: Vec3
    seed: int
    grain: float


@dataclass(frozen=True)
class Motion:
    """How a moving object's pose and size change with time t (seconds).

    ``centre(t) = centre + sweep * sin(2 pi sweep_hz t + sweep_phase)
    + circle_radius * (cos a, sin a, 0) with a = 2 pi circle_hz t + circle_phase
    + (0, 0, bounce_height * |sin(pi bounce_hz t + bounce_phase)|)``;
    the rotation spins about ``spin_axis`` at ``spin_rate`` rad/s after the rest rotation;
    sizes scale by ``1 + pulse * sin(2 pi pulse_hz t + pulse_phase)``.
    """

    sweep: Vec3 = (0.0, 0.0, 0.0)
    sweep_hz: float = 0.0
    sweep_phase: float = 0.0
    circle_radius: float = 0.0
    circle_hz: float = 0.0
    circle_phase: float = 0.0
    bounce_height: float = 0.0
    bounce_hz: float = 0.0
    bounce_phase: float = 0.0
    spin_axis: Vec3 = (0.0, 0.0, 1.0)
    spin_rate: float = 0.0
    pulse: float = 0.0
    pulse_hz: float = 0.0
    pulse_phase: float = 0.0

    def offset(self, t: float) -> np.ndarray:
        """(3,) displacement of the centre at time t, metres."""
        offset = np.array(self.sweep) * math.sin(2 * math.pi * self.sweep_hz * t + self.sweep_phase)
        angle = 2 * math.pi * self.circle_hz * t + self.circle_phase
        offset[:2] += self.circle_radius * np.array([math.cos(angle), math.sin(angle)])
        offset[2] += self.bounce_height * abs(
            math.sin(math.pi * self.bounce_hz * t + self.bounce_phase)
        )
        return offset

    def scale(self, t: float) -> float:
        """Size factor at time t."""
        return 1.0 + self.pulse * math.sin(2 * math.pi * self.pulse_hz * t + self.pulse_phase)

    def reach(self) -> float:
        """Upper bound of the horizontal displacement, metres."""
        return math.hypot(self.sweep[0], self.sweep[1]) + self.circle_radius


@dataclass(frozen=True)
class SceneObject:
    """A box or an ellipsoid, static (``motion is None``) or moving.

    Attributes:
        name: a readable name ("box 2", "large sphere").
        kind: "box" (``half_size`` = half extents) or "ellipsoid" (``half_size`` = radii).
        half_size: (3,) metres along the object's own axes.
        centre: (3,) rest position in the world, metres.
        rotation: (3,) rest orientation as a rotation vector (axis * angle, radians).
        texture: its surface pattern, attached to the object (it moves with it).
        motion: None for static objects.
    """

    name: str
    kind: str
    half_size: Vec3
    centre: Vec3
    rotation: Vec3
    texture: Texture
    motion: Motion | None = None

    def bounding_radius(self) -> float:
        """Radius of a sphere around the centre that holds the object at rest, metres."""
        size = np.array(self.half_size)
        return float(np.linalg.norm(size) if self.kind == "box" else size.max())

    def posed(self, t: float) -> _Posed:
        """The object at time t."""
        rotation = _rotation_matrix(np.array(self.rotation))
        centre = np.array(self.centre, dtype=np.float64)
        scale = 1.0
        if self.motion is not None:
            spin = _rotation_matrix(np.array(self.motion.spin_axis) * self.motion.spin_rate * t)
            rotation = spin @ rotation
            centre = centre + self.motion.offset(t)
            scale = self.motion.scale(t)
        return _Posed(
            kind=self.kind,
            rotation=rotation,
            centre=centre,
            half_size=np.array(self.half_size) * scale,
            texture_scale=scale,
            texture=self.texture,
            dynamic=self.motion is not None,
        )


# Body parts of a 1.75 m person: (name, joint height, joint side offset (left +), radii
# (forward, side, up), length hanging below the joint, swing sign; 0 = moves with the torso).
_PERSON_PARTS = (
    ("torso", 1.18, 0.0, (0.13, 0.21, 0.30), 0.0, 0),
    ("head", 1.60, 0.0, (0.11, 0.10, 0.13), 0.0, 0),
    ("left_leg", 0.90, 0.10, (0.08, 0.08, 0.45), 0.45, 1),
    ("right_leg", 0.90, -0.10, (0.08, 0.08, 0.45), 0.45, -1),
    ("left_arm", 1.43, 0.27, (0.055, 0.055, 0.32), 0.31, -1),
    ("right_arm", 1.43, -0.27, (0.055, 0.055, 0.32), 0.31, 1),
)


@dataclass(frozen=True)
class Person:
    """A person-like articulated figure of ellipsoids walking around a circle.

    Attributes:
        name: a readable name.
        circle_centre: (2,) centre of the walking circle on the floor, metres.
        circle_radius: metres.
        speed: walking speed in m/s; its sign chooses the direction.
        phase: angle on the circle at t = 0, radians.
        height: body height, metres.
        shirt, trousers, skin: textures of the torso and arms, the legs, the head.
    """

    name: str
    circle_centre: tuple[float, float]
    circle_radius: float
    speed: float
    phase: float
    height: float
    shirt: Texture
    trousers: Texture
    skin: Texture

    def part_names(self) -> list[str]:
        """Names of the parts, in the order :meth:`posed_parts` returns them."""
        return [f"{self.name}.{part[0]}" for part in _PERSON_PARTS]

    def body_position(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Where the figure stands at time t.

        Returns:
            (3,) point on the floor under the body, metres; (3,) unit heading.
        """
        angle = self.phase + self.speed * t / self.circle_radius
        radial = np.array([math.cos(angle), math.sin(angle), 0.0])
        tangent = np.array([-math.sin(angle), math.cos(angle), 0.0]) * math.copysign(1, self.speed)
        foot = np.array([*self.circle_centre, 0.0]) + self.circle_radius * radial
        return foot, tangent

    def posed_parts(self, t: float) -> list[_Posed]:
        """The body parts at time t."""
        foot, forward = self.body_position(t)
        body_scale = self.height / 1.75
        left = np.cross([0.0, 0.0, 1.0], forward)
        R_world_body = np.stack([forward, left, [0.0, 0.0, 1.0]], axis=1)
        # One stride (two steps) every 1.3 m, the legs swinging +-0.45 rad.
        stride_phase = 2 * math.pi * abs(self.speed) * t / (1.3 * body_scale)
        swing = 0.45 * math.sin(stride_phase)
        bob = 0.03 * body_scale * abs(math.cos(stride_phase))
        parts = []
        textures = {"head": self.skin, "leg": self.trousers, "arm": self.shirt}
        for name, joint_z, side, radii, hang, swing_sign in _PERSON_PARTS:
            joint = np.array([0.0, side, joint_z]) * body_scale
            joint[2] += bob
            rotation_body = _rotation_matrix(np.array([0.0, swing_sign * swing, 0.0]))
            centre_body = joint + rotation_body @ np.array([0.0, 0.0, -hang * body_scale])
            texture = textures.get(name.rsplit("_", 1)[-1], self.shirt)
            parts.append(
                _Posed(
                    kind="ellipsoid",
                    rotation=R_world_body @ rotation_body,
                    centre=foot + R_world_body @ centre_body,
                    half_size=np.array(radii) * body_scale,
                    texture_scale=1.0,
                    texture=texture,
                    dynamic=True,
                )
            )
        return parts


@dataclass(frozen=True)
class Lighting:
    """Fixed lights: ambient, directional lights and one lamp with distance falloff.

    Attributes:
        ambient: RGB irradiance reaching every surface.
        directions: unit directions the directional lights travel (pointing away from them).
        colours: RGB irradiance of each directional light on a surface facing it.
        lamp_position: (3,) world position of the lamp, metres.
        lamp_colour: RGB irradiance of the lamp at distance 0 on a surface facing it.
        lamp_range: distance at which the lamp's light halves, metres.
    """

    ambient: Vec3
    directions: tuple[Vec3, ...]
    colours: tuple[Vec3, ...]
    lamp_position: Vec3
    lamp_colour: Vec3
    lamp_range: float

    def irradiance(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Light arriving at surface points; depends on the point only, not on the viewer.

        Args:
            points: (N, 3) world points, metres.
            normals: (N, 3) unit outward normals.

        Returns:
            (N, 3) RGB irradiance.
        """
        light = np.broadcast_to(np.array(self.ambient), points.shape).copy()
        for direction, colour in zip(self.directions, self.colours, strict=True):
            facing = np.clip(-(normals @ np.array(direction)), 0.0, None)
            light += facing[:, None] * np.array(colour)
        to_lamp = np.array(self.lamp_position) - points
        distance = np.sqrt(np.einsum("ni,ni->n", to_lamp, to_lamp))
        along_normal = np.einsum("ni,ni->n", normals, to_lamp)
        facing = np.clip(along_normal / np.maximum(distance, 1e-9), 0, None)
        falloff = 1.0 / (1.0 + (distance / self.lamp_range) ** 2)
        light += (facing * falloff)[:, None] * np.array(self.lamp_colour)
        return light


@dataclass(frozen=True)
class _Posed:
    """One primitive at one instant: ``X_world = rotation @ X_local + centre``."""

    kind: str
    rotation: np.ndarray  # (3, 3)
    centre: np.ndarray  # (3,)
    half_size: np.ndarray  # (3,) metres, already scaled by the pulse
    texture_scale: float  # local coordinates are divided by this before texturing
    texture: Texture
    dynamic: bool

    def bounding_radius(self) -> float:
        return float(np.linalg.norm(self.half_size) if self.kind == "box" else self.half_size.max())


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

    image: np.ndarray
    depth: np.ndarray
    world_points: np.ndarray
    surface: np.ndarray
    dynamic: np.ndarray


@dataclass(frozen=True)
class SyntheticScene:
    """A room with static and moving objects; renders any camera at any time.

    Attributes:
        room_half_size: (2,) half extents of the room along x and y, metres.
        room_height: metres.
        room_textures: one texture per face, in :data:`ROOM_FACES` order.
        static_objects: objects that never move.
        moving_objects: objects with a motion.
        people: articulated walking figures.
        lighting: the lights.
    """

    room_half_size: tuple[float, float]
    room_height: float
    room_textures: tuple[Texture, ...]
    static_objects: tuple[SceneObject, ...]
    moving_objects: tuple[SceneObject, ...]
    people: tuple[Person, ...]
    lighting: Lighting

    def surface_names(self) -> list[str]:
        """Names of every surface, indexed by :attr:`RenderedView.surface`."""
        names = list(ROOM_FACES)
        names += [obj.name for obj in self.static_objects + self.moving_objects]
        for person in self.people:
            names += person.part_names()
        return names

    def posed_primitives(self, t: float) -> list[_Posed]:
        """Every object part at time t, in :meth:`surface_names` order (after the room)."""
        posed = [obj.posed(t) for obj in self.static_objects + self.moving_objects]
        for person in self.people:
            posed += person.posed_parts(t)
        return posed

    def render(
        self,
        extrinsic: np.ndarray,
        intrinsic: np.ndarray,
        width: int,
        height: int,
        t: float,
        *,
        supersample: int = 1,
    ) -> RenderedView:
        """Ray-cast one view.

        Args:
            extrinsic: (3, 4) camera-from-world.
            intrinsic: (3, 3) pinhole matrix in pixels.
            width: image width in pixels.
            height: image height in pixels.
            t: time in seconds at which the moving objects are posed.
            supersample: colour each pixel with the mean of ``supersample**2`` rays spread
                evenly over it (anti-aliasing, like a real sensor); geometry always comes
                from the single ray through the pixel centre.

        Returns:
            The image, depth, points, surface index and dynamic mask.

        The camera must be inside the room and outside every object (as all cameras of
        :func:`make_clip` are); rays are cast from its centre through the pixel centres.
        """
        extrinsic = np.asarray(extrinsic, dtype=np.float64)
        intrinsic = np.asarray(intrinsic, dtype=np.float64)
        primitives = self.posed_primitives(t)
        depth, surface, points = self._trace(extrinsic, intrinsic, width, height, primitives)
        if supersample == 1:
            colour = self._shade(points, surface, primitives)
        else:
            colour = np.zeros((height, width, 3))
            offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
            for du, dv in itertools.product(offsets, repeat=2):
                # Moving the principal point by -offset moves every ray by +offset pixels.
                shifted = intrinsic.copy()
                shifted[:2, 2] -= (du, dv)
                traced = self._trace(extrinsic, shifted, width, height, primitives)
                colour += self._shade(traced[2], traced[1], primitives)
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
        self,
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
        R_cam_world, t_cam_world = extrinsic[:, :3], extrinsic[:, 3]
        origin = -R_cam_world.T @ t_cam_world
        # Rays with unit z in the camera frame: the hit parameter is then the depth.
        uv1 = np.concatenate(
            [geometry.pixel_grid((height, width)), np.ones((height, width, 1))], axis=-1
        )
        directions = (uv1 @ np.linalg.inv(intrinsic).T) @ R_cam_world
        depth, surface = self._room_exit(origin, directions)
        for index, primitive in enumerate(primitives):
            window = _screen_window(primitive, extrinsic, intrinsic, width, height)
            if window is None:
                continue
            rows, cols = window
            hit = _intersect(primitive, origin, directions[rows, cols])
            closer = hit < depth[rows, cols]
            depth[rows, cols] = np.where(closer, hit, depth[rows, cols])
            surface[rows, cols] = np.where(closer, len(ROOM_FACES) + index, surface[rows, cols])
        return depth, surface, origin + depth[..., None] * directions

    def _room_exit(self, origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, ...]:
        """Where rays from inside the room leave it: (H, W) ray parameter and face index."""
        upper = np.array([*self.room_half_size, self.room_height])
        lower = np.array([-self.room_half_size[0], -self.room_half_size[1], 0.0])
        depth, face = None, None
        # Per axis rather than reductions over a length-3 axis, which numpy does slowly.
        for axis in range(3):
            direction = directions[..., axis]
            positive = direction > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                exit_t = np.where(
                    positive,
                    (upper[axis] - origin[axis]) / direction,
                    np.where(direction < 0, (lower[axis] - origin[axis]) / direction, np.inf),
                )
            exit_face = np.where(positive, _EXIT_FACE[axis, 1], _EXIT_FACE[axis, 0])
            if depth is None:
                depth, face = exit_t, exit_face.astype(np.int32)
            else:
                earlier = exit_t < depth
                depth = np.where(earlier, exit_t, depth)
                face = np.where(earlier, exit_face, face).astype(np.int32)
        return depth, face

    def _shade(
        self, points: np.ndarray, surface: np.ndarray, primitives: list[_Posed]
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
                texture = self.room_textures[index]
            else:
                primitive = primitives[index - len(ROOM_FACES)]
                coords, normals = _local_surface(primitive, world)
                texture = primitive.texture
            albedo = _albedo(texture, coords)
            sorted_colour[start:stop] = albedo * self.lighting.irradiance(world, normals)
        colour = np.empty_like(sorted_colour)
        colour[order] = sorted_colour
        return colour.reshape(points.shape)

    def to_dict(self) -> dict[str, Any]:
        """The scene as JSON-ready nested dicts (:meth:`from_dict` reads them back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticScene:
        """Rebuild a scene from :meth:`to_dict`'s output (for example from ``scene.json``).

        Raises:
            SyntheticSceneError: the dict does not describe a scene.
        """
        try:
            return cls(
                room_half_size=_tuple(data["room_half_size"]),
                room_height=float(data["room_height"]),
                room_textures=tuple(_texture(t) for t in data["room_textures"]),
                static_objects=tuple(_scene_object(o) for o in data["static_objects"]),
                moving_objects=tuple(_scene_object(o) for o in data["moving_objects"]),
                people=tuple(_person(p) for p in data["people"]),
                lighting=Lighting(
                    ambient=_tuple(data["lighting"]["ambient"]),
                    directions=tuple(_tuple(d) for d in data["lighting"]["directions"]),
                    colours=tuple(_tuple(c) for c in data["lighting"]["colours"]),
                    lamp_position=_tuple(data["lighting"]["lamp_position"]),
                    lamp_colour=_tuple(data["lighting"]["lamp_colour"]),
                    lamp_range=float(data["lighting"]["lamp_range"]),
                ),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise SyntheticSceneError(f"not a synthetic scene description: {error!r}") from None


def _tuple(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _texture(data: dict[str, Any]) -> Texture:
    vectors = {key: _tuple(data[key]) for key in ("colour_a", "colour_b", "offset", "axis")}
    return Texture(
        kind=str(data["kind"]),
        cell=float(data["cell"]),
        seed=int(data["seed"]),
        grain=float(data["grain"]),
        **vectors,
    )


def _scene_object(data: dict[str, Any]) -> SceneObject:
    motion = data.get("motion")
    if motion is not None:
        motion = Motion(
            **{k: _tuple(v) if isinstance(v, list) else float(v) for k, v in motion.items()}
        )
    return SceneObject(
        name=str(data["name"]),
        kind=str(data["kind"]),
        half_size=_tuple(data["half_size"]),
        centre=_tuple(data["centre"]),
        rotation=_tuple(data["rotation"]),
        texture=_texture(data["texture"]),
        motion=motion,
    )


def _person(data: dict[str, Any]) -> Person:
    return Person(
        name=str(data["name"]),
        circle_centre=_tuple(data["circle_centre"]),
        circle_radius=float(data["circle_radius"]),
        speed=float(data["speed"]),
        phase=float(data["phase"]),
        height=float(data["height"]),
        shirt=_texture(data["shirt"]),
        trousers=_texture(data["trousers"]),
        skin=_texture(data["skin"]),
    )


# ----------------------------------------------------------------------------------------
# Ray casting against analytic primitives
# ----------------------------------------------------------------------------------------


def _rotation_matrix(rotation_vector: np.ndarray) -> np.ndarray:
    """(3, 3) rotation from a rotation vector (axis times angle in radians), Rodrigues."""
    angle = float(np.linalg.norm(rotation_vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = np.asarray(rotation_vector, dtype=np.float64) / angle
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


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


# ----------------------------------------------------------------------------------------
# Procedural textures
# ----------------------------------------------------------------------------------------


# Odd 32-bit constants of the lattice hash: one per axis, one for the seed.
_HASH_AXES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F))
_HASH_SEED = 0x9E3779B1


def _axis_term(cells: np.ndarray, axis: int) -> np.ndarray:
    """uint32 hash contribution of integer lattice coordinates along one axis."""
    # uint32 arithmetic wraps around, which is what the hash wants (no masking needed).
    return cells.astype(np.uint32, copy=False) * _HASH_AXES[axis]


def _finalise(h: np.ndarray, seed: int) -> np.ndarray:
    """Mix combined uint32 lattice terms into a value in [0, 1) (a murmur-style finaliser)."""
    h = h ^ np.uint32((seed * _HASH_SEED) & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h * (1.0 / 4294967296.0)


def _hash01(cells: np.ndarray, seed: int) -> np.ndarray:
    """Pseudo-random value in [0, 1) per integer lattice point: (N, 3) int -> (N,)."""
    h = _axis_term(cells[:, 0], 0) ^ _axis_term(cells[:, 1], 1) ^ _axis_term(cells[:, 2], 2)
    return _finalise(h, seed)


def _value_noise(coords: np.ndarray, seed: int) -> np.ndarray:
    """Smooth lattice noise in [0, 1]: (N, 3) coordinates in cells -> (N,)."""
    base = np.floor(coords)
    fraction = coords - base
    weight = fraction * fraction * (3.0 - 2.0 * fraction)
    cell = base.astype(np.int64).astype(np.uint32)
    terms = [[_axis_term(cell[:, a] + np.uint32(k), a) for k in (0, 1)] for a in range(3)]
    weights = [[1.0 - weight[:, a], weight[:, a]] for a in range(3)]
    result = np.zeros(len(coords))
    for cx, cy in itertools.product((0, 1), repeat=2):
        h_xy = terms[0][cx] ^ terms[1][cy]
        w_xy = weights[0][cx] * weights[1][cy]
        for cz in (0, 1):
            result += (w_xy * weights[2][cz]) * _finalise(h_xy ^ terms[2][cz], seed)
    return result


def _fractal_noise(coords: np.ndarray, seed: int, octaves: int) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers at doubling frequency, in [0, 1]."""
    total = np.zeros(len(coords))
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * _value_noise(coords * 2.0**octave, seed + octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def _albedo(texture: Texture, points: np.ndarray) -> np.ndarray:
    """Surface colour of a texture: (N, 3) texture coordinates (metres) -> (N, 3) RGB."""
    coords = (points + np.array(texture.offset)) / texture.cell
    if texture.kind == "checker":
        mix = np.floor(coords).sum(axis=1) % 2
    elif texture.kind == "stripes":
        wave = 0.5 + 0.5 * np.sin(2 * math.pi * (coords @ np.array(texture.axis)))
        mix = np.clip((wave - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    elif texture.kind == "noise":
        mix = np.clip((_fractal_noise(coords, texture.seed, 4) - 0.5) * 2.2 + 0.5, 0.0, 1.0)
    elif texture.kind == "tiles":
        mix = _hash01(np.floor(coords).astype(np.int64), texture.seed)
    else:
        mix = np.zeros(len(coords))
    colour = (1 - mix)[:, None] * np.array(texture.colour_a) + mix[:, None] * np.array(
        texture.colour_b
    )
    if texture.kind == "tiles":
        # Grout lines; a flat face's zeroed coordinate sits mid-cell (offset in 0.1-0.9 cells).
        fraction = coords - np.floor(coords)
        grout = (np.minimum(fraction, 1 - fraction) < 0.04).any(axis=1)
        colour[grout] *= 0.45
    grain = _value_noise((points + np.array(texture.offset)) / 0.03, texture.seed + 101)
    return colour * (1.0 + texture.grain * (2.0 * grain[:, None] - 1.0))


# ----------------------------------------------------------------------------------------
# Random scenes and camera paths
# ----------------------------------------------------------------------------------------


def _random_colour(rng: np.random.Generator, value: tuple[float, float]) -> Vec3:
    hue = rng.uniform(0, 1)
    saturation = rng.uniform(0.15, 0.8)
    return tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, rng.uniform(*value)))


def _random_texture(
    rng: np.random.Generator,
    kinds: Sequence[str],
    cell: tuple[float, float],
    value: tuple[float, float] = (0.35, 0.95),
) -> Texture:
    """A random texture of one of ``kinds`` with a period in ``cell`` metres."""
    kind = str(rng.choice(kinds))
    colour_a = _random_colour(rng, value)
    if rng.uniform() < 0.5:
        # Same hue family, different brightness: the common look of real materials.
        hue, saturation, brightness = colorsys.rgb_to_hsv(*colour_a)
        colour_b = colorsys.hsv_to_rgb(
            (hue + rng.uniform(-0.06, 0.06)) % 1.0,
            saturation,
            float(np.clip(brightness * rng.uniform(0.45, 0.75), 0.05, 1.0)),
        )
        colour_b = tuple(float(c) for c in colour_b)
    else:
        colour_b = _random_colour(rng, value)
    period = float(rng.uniform(*cell))
    axis = rng.normal(size=3)
    return Texture(
        kind=kind,
        colour_a=colour_a,
        colour_b=colour_b,
        cell=period,
        offset=tuple(float(v) for v in period * rng.uniform(0.1, 0.9, size=3)),
        axis=tuple(float(v) for v in axis / np.linalg.norm(axis)),
        seed=int(rng.integers(0, 2**20)),
        grain=float(rng.uniform(0.06, 0.2)),
    )


def _random_lighting(rng: np.random.Generator, stage: np.ndarray, room_height: float) -> Lighting:
    tint = rng.uniform(0.9, 1.1, size=3)
    key_azimuth = rng.uniform(0, 2 * math.pi)
    key_elevation = rng.uniform(math.radians(35), math.radians(70))
    fill_azimuth = key_azimuth + math.pi + rng.uniform(-0.8, 0.8)
    fill_elevation = rng.uniform(math.radians(15), math.radians(45))

    def travel(azimuth: float, elevation: float) -> Vec3:
        # The light comes from (azimuth, elevation) and travels the opposite way.
        source = np.array(
            [
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            ]
        )
        return tuple(float(v) for v in -source)

    key = rng.uniform(0.45, 0.75) * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 0.95)])
    fill = rng.uniform(0.12, 0.28) * np.array([rng.uniform(0.8, 0.95), rng.uniform(0.9, 1.0), 1.0])
    lamp_xy = stage[:2] + rng.uniform(-1.5, 1.5, size=2)
    return Lighting(
        ambient=tuple(float(v) for v in rng.uniform(0.25, 0.4) * tint),
        directions=(travel(key_azimuth, key_elevation), travel(fill_azimuth, fill_elevation)),
        colours=(tuple(float(v) for v in key), tuple(float(v) for v in fill)),
        lamp_position=(float(lamp_xy[0]), float(lamp_xy[1]), room_height - 0.3),
        lamp_colour=tuple(float(v) for v in rng.uniform(0.3, 0.6) * np.array([1.0, 0.95, 0.85])),
        lamp_range=float(rng.uniform(2.0, 3.5)),
    )


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(3, 3) camera-from-world rotation of an upright OpenCV camera at ``position``."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=0)


def _wobble(rng: np.random.Generator, times: np.ndarray, amplitude: float, size: int) -> np.ndarray:
    """(S, size) smooth random shake: three sinusoids per channel, 0.7-4 Hz."""
    result = np.zeros((len(times), size))
    for _ in range(3):
        hz = rng.uniform(0.7, 4.0, size=size)
        phase = rng.uniform(0, 2 * math.pi, size=size)
        result += amplitude / 3 * np.sin(2 * math.pi * hz * times[:, None] + phase)
    return result


def _max_distance_inside(
    stage: np.ndarray, angle: float, half_size: np.ndarray, margin: float
) -> float:
    """How far from ``stage`` one can go along ``angle`` and stay ``margin`` inside the walls."""
    direction = np.array([math.cos(angle), math.sin(angle)])
    limits = []
    for axis in range(2):
        if abs(direction[axis]) > 1e-9:
            wall = math.copysign(half_size[axis] - margin, direction[axis])
            limits.append((wall - stage[axis]) / direction[axis])
    return min(limits)


def _camera_path(
    rng: np.random.Generator,
    motion: str,
    times: np.ndarray,
    stage: np.ndarray,
    half_size: np.ndarray,
    room_height: float,
    fov: float,
) -> np.ndarray:
    """(S, 3, 4) camera-from-world extrinsics of one camera path around ``stage`` (3,).

    The camera keeps 3.3 m or more from the stage centre (the moving objects stay within
    about 3 m of it; :func:`make_scene` redraws the rare layouts where one comes closer)
    and stands farther back when its horizontal field of view ``fov`` (radians) is narrow,
    so that the stage fills a similar part of the image.
    """
    target = stage + np.array([0.0, 0.0, rng.uniform(0.6, 1.1)])
    eye_height = rng.uniform(1.0, min(1.9, room_height - 0.4))
    angle0 = rng.uniform(0, 2 * math.pi)
    preferred = float(np.clip(1.9 / math.tan(fov / 2), 3.3, 5.2))
    room_limit = _max_distance_inside(stage, angle0, half_size, 0.8)
    if motion == "orbit":
        radius = float(np.clip(preferred * rng.uniform(0.9, 1.1), 3.3, room_limit))
        rate = rng.uniform(0.25, 0.7) * rng.choice([-1.0, 1.0])
        angles = angle0 + rate * times
        reach = np.array([_max_distance_inside(stage, float(a), half_size, 0.6) for a in angles])
        radius = float(min(radius, reach.min()))
        heights = eye_height + 0.15 * np.sin(2 * math.pi * rng.uniform(0.1, 0.3) * times)
        positions = np.stack(
            [
                stage[0] + radius * np.cos(angles),
                stage[1] + radius * np.sin(angles),
                heights,
            ],
            axis=1,
        )
        rotations = np.stack([_look_at(p, target) for p in positions])
    elif motion == "walk":
        end_distance = float(np.clip(preferred * rng.uniform(0.85, 1.0), 3.3, room_limit - 1.0))
        start_distance = min(end_distance + rng.uniform(1.0, 1.6), room_limit)
        end_angle = angle0 + rng.uniform(-0.5, 0.5)
        start = stage[:2] + start_distance * np.array([math.cos(angle0), math.sin(angle0)])
        end = stage[:2] + end_distance * np.array([math.cos(end_angle), math.sin(end_angle)])
        speed = rng.uniform(0.4, 0.8)
        duration = max(float(times[-1]), 1e-9)
        progress = np.clip(times * speed / max(np.linalg.norm(end - start), 1e-9), 0, 1)
        if speed * duration > np.linalg.norm(end - start):
            # Long clips walk the same path more slowly instead of walking into the stage.
            progress = times / duration
        xy = start + progress[:, None] * (end - start)
        bob = 0.025 * np.sin(2 * math.pi * 1.8 * times)
        positions = np.concatenate([xy, (eye_height + bob)[:, None]], axis=1)
        pan = _wobble(rng, times * 0.15, 0.25, 3) * np.array([1.0, 1.0, 0.3])
        rotations = np.stack([_look_at(p, target + d) for p, d in zip(positions, pan, strict=True)])
    else:
        drift_length = rng.uniform(0.1, 0.5)
        # Stand back by the drift too: it may point towards the stage.
        distance = float(
            np.clip(preferred * rng.uniform(0.85, 1.1), 3.3 + drift_length, room_limit - 0.5)
        )
        base = stage[:2] + distance * np.array([math.cos(angle0), math.sin(angle0)])
        drift_direction = rng.normal(size=2)
        drift = drift_length * drift_direction / np.linalg.norm(drift_direction)
        duration = max(float(times[-1]), 1e-9)
        xy = base + (times / duration)[:, None] * drift
        positions = np.concatenate([xy, np.full((len(times), 1), eye_height)], axis=1)
        positions += _wobble(rng, times, 0.02, 3)
        shake = _wobble(rng, times, math.radians(1.2), 3)
        rotations = np.stack(
            [
                _rotation_matrix(s) @ _look_at(p, target)
                for p, s in zip(positions, shake, strict=True)
            ]
        )
    translations = -np.einsum("sij,sj->si", rotations, positions)
    return np.concatenate([rotations, translations[..., None]], axis=-1)


def _random_motion(rng: np.random.Generator, large: bool) -> Motion:
    """A random mix of sweep or circle, bounce, spin and pulse; always spinning."""
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    amplitude = rng.uniform(0.3, 0.8) if large else rng.uniform(0.2, 0.7)
    circle = rng.uniform() < 0.4
    bounce = rng.uniform() < 0.4
    pulse = rng.uniform() < 0.3
    axis = rng.normal(size=3)
    return Motion(
        sweep=(0.0, 0.0, 0.0)
        if circle
        else (float(direction[0] * amplitude), float(direction[1] * amplitude), 0.0),
        sweep_hz=0.0 if circle else float(rng.uniform(0.2, 0.6)),
        sweep_phase=float(rng.uniform(0, 2 * math.pi)),
        circle_radius=float(amplitude) if circle else 0.0,
        circle_hz=float(rng.uniform(0.1, 0.3) * rng.choice([-1, 1])) if circle else 0.0,
        circle_phase=float(rng.uniform(0, 2 * math.pi)),
        bounce_height=float(rng.uniform(0.2, 0.6)) if bounce else 0.0,
        bounce_hz=float(rng.uniform(0.5, 1.0)) if bounce else 0.0,
        bounce_phase=float(rng.uniform(0, math.pi)),
        spin_axis=tuple(float(v) for v in axis / np.linalg.norm(axis)),
        spin_rate=float(rng.uniform(0.8, 3.0) * rng.choice([-1, 1])),
        pulse=float(rng.uniform(0.1, 0.25)) if pulse else 0.0,
        pulse_hz=float(rng.uniform(0.3, 0.8)) if pulse else 0.0,
        pulse_phase=float(rng.uniform(0, 2 * math.pi)),
    )


def _random_mover(
    rng: np.random.Generator, index: int, large: bool, stage: np.ndarray, angle: float
) -> SceneObject:
    """A moving box, sphere or ellipsoid whose rest position is towards ``angle`` (radians)."""
    kind = str(rng.choice(["sphere", "ellipsoid", "box"]))
    size = rng.uniform(0.5, 0.9) if large else rng.uniform(0.15, 0.35)
    if kind == "sphere":
        half_size = np.full(3, size)
    elif kind == "ellipsoid":
        half_size = size * rng.uniform(0.5, 1.0, size=3)
        half_size[rng.integers(3)] = size
    else:
        half_size = size * rng.uniform(0.45, 0.8, size=3)
    motion = _random_motion(rng, large)
    bound = float(np.linalg.norm(half_size) if kind == "box" else half_size.max())
    bound *= 1.0 + motion.pulse
    # Keep the whole path within 1.3 m of the stage centre (plus the object's size).
    room_left = max(1.3 - motion.reach(), 0.0)
    radial = rng.uniform(0.5 * room_left, room_left)
    centre = stage + np.array(
        [radial * math.cos(angle), radial * math.sin(angle), bound + rng.uniform(0.0, 0.5)]
    )
    texture = _random_texture(rng, ["checker", "stripes", "noise", "tiles"], (0.08, 0.35))
    label = "large" if large else "small"
    return SceneObject(
        name=f"{label} {kind} {index}",
        kind="box" if kind == "box" else "ellipsoid",
        half_size=tuple(float(v) for v in half_size),
        centre=tuple(float(v) for v in centre),
        rotation=tuple(float(v) for v in rng.normal(size=3)),
        texture=texture,
        motion=motion,
    )


def _random_person(rng: np.random.Generator, stage: np.ndarray) -> Person:
    centre = stage[:2] + rng.uniform(-0.3, 0.3, size=2)
    return Person(
        name="person",
        circle_centre=(float(centre[0]), float(centre[1])),
        circle_radius=float(rng.uniform(0.8, 1.3)),
        speed=float(rng.uniform(0.7, 1.2) * rng.choice([-1, 1])),
        phase=float(rng.uniform(0, 2 * math.pi)),
        height=float(rng.uniform(1.55, 1.85)),
        shirt=_random_texture(rng, ["stripes", "checker", "noise", "plain"], (0.06, 0.2)),
        trousers=_random_texture(rng, ["noise", "plain"], (0.1, 0.3), value=(0.15, 0.5)),
        skin=_random_texture(rng, ["noise", "plain"], (0.05, 0.15), value=(0.5, 0.9)),
    )


def _segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Distance from a 2-D point to a 2-D segment."""
    along = end - start
    fraction = np.clip(np.dot(point - start, along) / max(np.dot(along, along), 1e-12), 0, 1)
    return float(np.linalg.norm(point - (start + fraction * along)))


def _random_static_objects(
    rng: np.random.Generator,
    stage: np.ndarray,
    half_size: np.ndarray,
    room_height: float,
    camera_positions: np.ndarray,
    keep_clear: float,
) -> list[SceneObject]:
    """Furniture: boxes, balls and pillars on the floor (away from the stage, the cameras and
    their view of it), rugs anywhere on the floor and flat panels hung on the walls."""
    objects: list[SceneObject] = []
    sight_lines = camera_positions[[0, len(camera_positions) // 2, -1], :2]
    for index in range(int(rng.integers(3, 7))):
        for _ in range(40):
            kind = str(rng.choice(["box", "ball", "pillar"], p=[0.6, 0.25, 0.15]))
            if kind == "ball":
                size = np.full(3, rng.uniform(0.15, 0.45))
            elif kind == "pillar":
                size = np.array([*rng.uniform(0.1, 0.25, size=2), rng.uniform(0.6, 1.1)])
            else:
                size = rng.uniform([0.15, 0.15, 0.15], [0.7, 0.7, 0.8])
            bound = float(size.max() if kind == "ball" else np.linalg.norm(size[:2]))
            xy = rng.uniform(-half_size + bound + 0.05, half_size - bound - 0.05)
            clear_of_cameras = np.linalg.norm(camera_positions[:, :2] - xy, axis=1).min()
            clear_of_sight = min(_segment_distance(xy, c, stage[:2]) for c in sight_lines)
            overlaps = any(
                np.linalg.norm(np.array(o.centre[:2]) - xy) < bound + o.bounding_radius()
                for o in objects
            )
            if (
                np.linalg.norm(xy - stage[:2]) > keep_clear + bound
                and clear_of_cameras > bound + 0.8
                and clear_of_sight > bound + 0.3
                and not overlaps
            ):
                break
        else:
            continue
        objects.append(
            SceneObject(
                name=f"{kind} {index}",
                kind="ellipsoid" if kind == "ball" else "box",
                half_size=tuple(float(v) for v in size),
                centre=(float(xy[0]), float(xy[1]), float(size[2])),
                rotation=(0.0, 0.0, float(rng.uniform(0, 2 * math.pi))),
                texture=_random_texture(rng, ["checker", "stripes", "noise", "tiles"], (0.1, 0.5)),
            )
        )
    for index in range(int(rng.integers(0, 3))):
        # Rugs are 1 cm thick: cameras and movers pass above them.
        size = np.array([*rng.uniform(0.4, 1.2, size=2), 0.005])
        xy = rng.uniform(-half_size + 1.7, half_size - 1.7)
        objects.append(
            SceneObject(
                name=f"rug {index}",
                kind="box",
                half_size=tuple(float(v) for v in size),
                centre=(float(xy[0]), float(xy[1]), 0.005),
                rotation=(0.0, 0.0, float(rng.uniform(0, 2 * math.pi))),
                texture=_random_texture(rng, ["stripes", "checker", "noise"], (0.08, 0.4)),
            )
        )
    for index in range(int(rng.integers(0, 4))):
        objects.append(_random_wall_panel(rng, index, half_size, room_height))
    return objects


def _random_wall_panel(
    rng: np.random.Generator, index: int, half_size: np.ndarray, room_height: float
) -> SceneObject:
    """A 2 cm thick picture or board flat against a random wall, 0.9-2 m above the floor."""
    wall_axis = int(rng.integers(2))
    along_axis = 1 - wall_axis
    side = float(rng.choice([-1.0, 1.0]))
    size = np.zeros(3)
    size[wall_axis] = 0.01
    size[along_axis] = rng.uniform(0.3, 0.9)
    size[2] = rng.uniform(0.2, 0.5)
    centre = np.zeros(3)
    centre[wall_axis] = side * (half_size[wall_axis] - 0.01)
    reach = half_size[along_axis] - size[along_axis] - 0.1
    centre[along_axis] = rng.uniform(-reach, reach)
    centre[2] = min(rng.uniform(0.9, 2.0), room_height - size[2] - 0.1)
    return SceneObject(
        name=f"panel {index}",
        kind="box",
        half_size=tuple(float(v) for v in size),
        centre=tuple(float(v) for v in centre),
        rotation=(0.0, 0.0, 0.0),
        texture=_random_texture(rng, ["noise", "stripes", "checker", "tiles"], (0.05, 0.3)),
    )


def _random_room_textures(rng: np.random.Generator) -> tuple[Texture, ...]:
    floor = _random_texture(rng, ["tiles", "checker", "noise", "stripes"], (0.3, 0.9))
    ceiling = _random_texture(rng, ["plain", "noise"], (0.5, 1.5), value=(0.7, 0.95))
    walls = []
    for _ in range(4):
        walls.append(_random_texture(rng, ["plain", "noise", "stripes", "tiles"], (0.2, 1.0)))
    return (floor, ceiling, *walls)


# ----------------------------------------------------------------------------------------
# Clips
# ----------------------------------------------------------------------------------------


@dataclass
class SyntheticClip:
    """A rendered clip with its exact ground truth (see the module docstring for frames).

    Attributes:
        images: (S, H, W, 3) uint8.
        depth: (S, H, W) float32, z in the camera frame, metres.
        extrinsics: (S, 3, 4) float64 camera-from-world (OpenCV).
        intrinsics: (S, 3, 3) float64 in pixels.
        world_points: (S, H, W, 3) float32 world points, metres.
        dynamic_mask: (S, H, W) bool, True where the visible surface moves.
        valid: (S, H, W) bool, True where a surface is seen (always, inside a closed room).
        fps: frames per second.
        timestamps: (S,) float64 seconds.
        description: one line about the scene and the camera.
        settings: the :func:`make_clip` arguments that reproduce the clip (seed included).
        scene: the scene, to render more views (None if unknown).
    """

    images: np.ndarray
    depth: np.ndarray
    extrinsics: np.ndarray
    intrinsics: np.ndarray
    world_points: np.ndarray
    dynamic_mask: np.ndarray
    valid: np.ndarray
    fps: float
    timestamps: np.ndarray
    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    scene: SyntheticScene | None = None

    @property
    def num_frames(self) -> int:
        """S."""
        return int(self.images.shape[0])

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    def in_first_camera_frame(self) -> SyntheticClip:
        """The same clip with the first camera's frame as the world, as the network predicts.

        Returns:
            A copy whose ``extrinsics[0]`` is ``[I | 0]`` and whose ``world_points`` are in
            the first camera's frame; depth, images and masks are shared.
        """
        T_world_cam0 = geometry.invert_rigid(self.extrinsics[0])
        extrinsics = geometry.compose_rigid(self.extrinsics, T_world_cam0)
        points = geometry.transform_points(
            self.extrinsics[0], self.world_points.reshape(-1, 3).astype(np.float64)
        )
        return dataclasses.replace(
            self,
            extrinsics=extrinsics,
            world_points=points.reshape(self.world_points.shape).astype(np.float32),
        )


def _check_settings(
    num_frames: int,
    width: int,
    height: int,
    fps: float,
    camera: str | None,
    movers: str,
    num_movers: int | None,
    fov_deg: float | None,
) -> None:
    if num_frames < 1:
        raise SyntheticSceneError(f"num_frames must be at least 1, got {num_frames}")
    if width < 8 or height < 8:
        raise SyntheticSceneError(f"image size must be at least 8x8 pixels, got {width}x{height}")
    if not fps > 0:
        raise SyntheticSceneError(f"fps must be positive, got {fps}")
    if camera is not None and camera not in CAMERA_MOTIONS:
        raise SyntheticSceneError(
            f"camera must be one of {', '.join(CAMERA_MOTIONS)}, got {camera!r}"
        )
    if movers not in MOVER_SIZES:
        raise SyntheticSceneError(f"movers must be one of {', '.join(MOVER_SIZES)}, got {movers!r}")
    if num_movers is not None and not 0 <= num_movers <= 8:
        raise SyntheticSceneError(f"num_movers must be between 0 and 8, got {num_movers}")
    if fov_deg is not None and not 20 <= fov_deg <= 120:
        raise SyntheticSceneError(f"fov_deg must be between 20 and 120 degrees, got {fov_deg}")


def make_scene(
    seed: int,
    *,
    num_frames: int = 24,
    width: int = 518,
    height: int = 294,
    fps: float = 12.0,
    camera: str | None = None,
    movers: str = "mixed",
    num_movers: int | None = None,
    person: bool | None = None,
    fov_deg: float | None = None,
) -> tuple[SyntheticScene, np.ndarray, np.ndarray, np.ndarray, str]:
    """Draw a random scene and camera path (no rendering); arguments as in :func:`make_clip`.

    Returns:
        The scene; (S, 3, 4) extrinsics; (S, 3, 3) intrinsics; (S,) timestamps in seconds;
        a one-line description.
    """
    _check_settings(num_frames, width, height, fps, camera, movers, num_movers, fov_deg)
    settings = dict(
        num_frames=num_frames,
        width=width,
        height=height,
        fps=fps,
        camera=camera,
        movers=movers,
        num_movers=num_movers,
        person=person,
        fov_deg=fov_deg,
    )
    # The layout rules keep cameras clear of objects almost always; a rare crowded draw
    # (many large movers) is redrawn from a derived seed, so a seed always gives a scene.
    for attempt in range(20):
        entropy = seed if attempt == 0 else [seed, attempt]
        drawn = _draw_scene(seed, np.random.SeedSequence(entropy), **settings)
        if drawn is not None:
            return drawn
    raise RuntimeError(f"no synthetic layout for seed {seed} keeps the cameras clear of objects")


def _draw_scene(
    seed: int,
    seed_sequence: np.random.SeedSequence,
    *,
    num_frames: int,
    width: int,
    height: int,
    fps: float,
    camera: str | None,
    movers: str,
    num_movers: int | None,
    person: bool | None,
    fov_deg: float | None,
) -> tuple[SyntheticScene, np.ndarray, np.ndarray, np.ndarray, str] | None:
    """One draw of :func:`make_scene`; None if a camera comes too close to an object."""
    streams = [np.random.default_rng(s) for s in seed_sequence.spawn(6)]
    rng_choice, rng_room, rng_camera, rng_static, rng_movers, rng_light = streams
    camera = camera or str(rng_choice.choice(CAMERA_MOTIONS))
    fov = math.radians(fov_deg if fov_deg is not None else rng_choice.uniform(45, 75))
    if num_movers is None:
        num_movers = int(rng_choice.integers(1, 4))
    if person is None:
        person = movers != "small" and bool(rng_choice.uniform() < 0.35)

    half_size = rng_room.uniform(6.0, 8.0, size=2)
    room_height = float(rng_room.uniform(2.6, 4.0))
    stage = np.array([*rng_room.uniform(-0.5, 0.5, size=2), 0.0])
    room_textures = _random_room_textures(rng_room)

    times = np.arange(num_frames) / fps
    extrinsics = _camera_path(rng_camera, camera, times, stage, half_size, room_height, fov)
    camera_positions = geometry.camera_centers(extrinsics)
    focal = (width / 2) / math.tan(fov / 2)
    intrinsic = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])

    moving = []
    # One sector of the stage per object, so that they rarely pass through each other.
    first_sector = rng_movers.uniform(0, 2 * math.pi)
    for index in range(num_movers):
        large = movers == "large" or (movers == "mixed" and rng_movers.uniform() < 0.5)
        angle = first_sector + 2 * math.pi * (index + rng_movers.uniform(-0.2, 0.2)) / num_movers
        moving.append(_random_mover(rng_movers, index, large, stage, angle))
    people = [_random_person(rng_movers, stage)] if person else []
    static = _random_static_objects(
        rng_static, stage, half_size, room_height, camera_positions, 2.6
    )
    scene = SyntheticScene(
        room_half_size=(float(half_size[0]), float(half_size[1])),
        room_height=room_height,
        room_textures=room_textures,
        static_objects=tuple(static),
        moving_objects=tuple(moving),
        people=tuple(people),
        lighting=_random_lighting(rng_light, stage, room_height),
    )
    if not _cameras_are_clear(scene, extrinsics, times):
        return None
    mover_names = [obj.name.rsplit(" ", 1)[0] for obj in moving] + ["walking person"] * person
    description = (
        f"seed {seed}: {camera} camera, {math.degrees(fov):.0f} deg horizontal fov, "
        f"{2 * half_size[0]:.1f} x {2 * half_size[1]:.1f} x {room_height:.1f} m room, "
        f"{len(static)} static objects, movers: {', '.join(mover_names) or 'none'}"
    )
    return scene, extrinsics, np.repeat(intrinsic[None], num_frames, axis=0), times, description


def _cameras_are_clear(scene: SyntheticScene, extrinsics: np.ndarray, times: np.ndarray) -> bool:
    """Whether every camera keeps its clearance from every object's bounding sphere."""
    centres = geometry.camera_centers(extrinsics)
    for centre, t in zip(centres, times, strict=True):
        for primitive in scene.posed_primitives(float(t)):
            gap = np.linalg.norm(centre - primitive.centre) - primitive.bounding_radius()
            if gap < _CAMERA_CLEARANCE:
                return False
    return True


def make_clip(
    seed: int,
    *,
    num_frames: int = 24,
    width: int = 518,
    height: int = 294,
    fps: float = 12.0,
    camera: str | None = None,
    movers: str = "mixed",
    num_movers: int | None = None,
    person: bool | None = None,
    fov_deg: float | None = None,
    supersample: int = 1,
) -> SyntheticClip:
    """Render a random dynamic scene with exact ground truth; the same seed gives the same clip.

    Args:
        seed: chooses everything not fixed by the other arguments.
        num_frames: S.
        width: W in pixels.
        height: H in pixels.
        fps: frames per second (object and camera speeds are per second).
        camera: "orbit", "walk" (walking towards the scene) or "handheld" (shaky, nearly
            still); None picks one from the seed.
        movers: "small" (0.15-0.35 m), "large" (0.5-0.9 m, large parts of the image move) or
            "mixed" moving objects.
        num_movers: moving boxes/spheres/ellipsoids (0-8); None picks 1-3.
        person: add a walking articulated person; None decides from the seed (never with
            ``movers="small"``).
        fov_deg: horizontal field of view in degrees; None picks 45-75.
        supersample: 1 colours each pixel by the ray through its centre (exact: a static
            point has the same colour in every view); 2-4 average that many squared rays
            per pixel (anti-aliased like a camera, about ``supersample**2 + 1`` times
            slower). Depth, points and masks are the same either way.

    Returns:
        The clip; world frame and conventions as in the module docstring.

    Raises:
        SyntheticSceneError: an argument is out of range.
    """
    settings = dict(
        seed=int(seed),
        num_frames=num_frames,
        width=width,
        height=height,
        fps=float(fps),
        camera=camera,
        movers=movers,
        num_movers=num_movers,
        person=person,
        fov_deg=fov_deg,
    )
    if supersample not in (1, 2, 3, 4):
        raise SyntheticSceneError(f"supersample must be 1, 2, 3 or 4, got {supersample}")
    scene, extrinsics, intrinsics, times, description = make_scene(**settings)
    views = [
        scene.render(
            extrinsics[i], intrinsics[i], width, height, float(times[i]), supersample=supersample
        )
        for i in range(num_frames)
    ]
    settings["supersample"] = supersample
    return SyntheticClip(
        images=np.stack([v.image for v in views]),
        depth=np.stack([v.depth.astype(np.float32) for v in views]),
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        world_points=np.stack([v.world_points.astype(np.float32) for v in views]),
        dynamic_mask=np.stack([v.dynamic for v in views]),
        valid=np.ones((num_frames, height, width), dtype=bool),
        fps=float(fps),
        timestamps=times,
        description=description,
        settings=settings,
        scene=scene,
    )


# ----------------------------------------------------------------------------------------
# Ground truth on disk
# ----------------------------------------------------------------------------------------


# BT.601 limited-range RGB -> YCbCr (what decoders assume for untagged SD video), for
# RGB in [0, 1]; rows give Y, Cb, Cr.
_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def _to_yuv_frame(image: np.ndarray, subsample: bool) -> Any:
    """An av.VideoFrame in yuv420p (``subsample``) or yuv444p from an (H, W, 3) uint8 image.

    Converting here (BT.601, chroma as 2x2 means) halves the colour error of swscale's
    default conversion at saturated texture edges (mean 1.8 vs 3.4 levels after decoding).
    """
    import av

    ycbcr = (image / 255.0) @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET
    if not subsample:
        planes = np.clip(np.rint(ycbcr), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p")
    height, width = image.shape[:2]
    # Chroma is the mean of each 2x2 block, as swscale's default does for 4:2:0.
    chroma = ycbcr[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    luma = np.clip(np.rint(ycbcr[..., 0]), 0, 255).astype(np.uint8)
    chroma = np.clip(np.rint(chroma), 0, 255).astype(np.uint8)
    # PyAV takes the three planes back to back, viewed as (3 H / 2, W) rows.
    packed = np.concatenate([luma.ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()])
    return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")


def _write_video(images: np.ndarray, path: Path, fps: float, crf: int) -> None:
    """Encode (S, H, W, 3) uint8 frames as H.264 (yuv420p, or yuv444p for odd sizes)."""
    import av

    height, width = images.shape[1:3]
    # yuv420p (the format browsers play) needs even sizes.
    subsample = height % 2 == 0 and width % 2 == 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001), options={"crf": str(crf)}
        )
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if subsample else "yuv444p"
        # Multithreaded x264 output varies from run to run; one thread keeps it stable, except
        # that sizes that are not multiples of 16 can still differ in the edge blocks.
        stream.codec_context.thread_count = 1
        for image in images:
            container.mux(stream.encode(_to_yuv_frame(image, subsample)))
        container.mux(stream.encode())


def _read_video(path: Path) -> np.ndarray:
    """Decode every frame of a video: (S, H, W, 3) uint8."""
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.FFmpegError, OSError) as error:
        raise SyntheticSceneError(f"cannot decode {path}: {error}") from error
    if not frames:
        raise SyntheticSceneError(f"{path} holds no video frames")
    return np.stack(frames)


def save_ground_truth(clip: SyntheticClip, folder: str | Path, *, crf: int = 12) -> Path:
    """Write a clip and its ground truth into ``folder`` (format in the module docstring).

    Args:
        clip: the clip (rendered, or loaded earlier).
        folder: created if missing; files of the same names are replaced.
        crf: H.264 quality (0 lossless .. 51 worst); 12 decodes within a few levels.

    Returns:
        The folder.

    Raises:
        SyntheticSceneError: the folder cannot be created.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SyntheticSceneError(f"cannot create {folder}: {error.strerror}") from None
    _write_video(clip.images, folder / VIDEO_NAME, clip.fps, crf)
    np.savez_compressed(
        folder / GROUND_TRUTH_NAME,
        format_version=np.int64(FORMAT_VERSION),
        shape=np.array(clip.depth.shape, dtype=np.int64),
        fps=np.float64(clip.fps),
        timestamps=np.asarray(clip.timestamps, dtype=np.float64),
        depth=np.asarray(clip.depth, dtype=np.float16),
        extrinsics=np.asarray(clip.extrinsics, dtype=np.float64),
        intrinsics=np.asarray(clip.intrinsics, dtype=np.float64),
        dynamic_mask=np.packbits(np.asarray(clip.dynamic_mask, dtype=bool).ravel()),
        valid=np.packbits(np.asarray(clip.valid, dtype=bool).ravel()),
    )
    scene = {
        "format_version": FORMAT_VERSION,
        "description": clip.description,
        "settings": clip.settings,
        "conventions": (
            "world: metres, z up, floor z = 0 at the room centre; cameras OpenCV, "
            "extrinsics camera-from-world; depth = camera z; pixel centres at integer (u, v)"
        ),
        "scene": clip.scene.to_dict() if clip.scene is not None else None,
    }
    (folder / SCENE_NAME).write_text(json.dumps(scene, indent=1) + "\n")
    return folder


def _unpack_mask(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.unpackbits(packed, count=count).astype(bool).reshape(shape)


def load_ground_truth(folder: str | Path) -> SyntheticClip:
    """Read a folder written by :func:`save_ground_truth`.

    The images are decoded from ``clip.mp4`` (so they differ from the rendered ones by the
    video compression); ``world_points`` are recomputed from depth and cameras; ``scene``
    is rebuilt from ``scene.json`` (None without one), so the clip can be rendered again.

    Args:
        folder: the folder.

    Returns:
        The clip.

    Raises:
        SyntheticSceneError: a file is missing, damaged, of another format version, or the
            video and the ground truth disagree.
    """
    folder = Path(folder)
    for name in (VIDEO_NAME, GROUND_TRUTH_NAME):
        if not (folder / name).is_file():
            raise SyntheticSceneError(
                f"{folder} has no {name}: not a synthetic ground-truth folder"
            )
    try:
        with np.load(folder / GROUND_TRUTH_NAME) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise SyntheticSceneError(f"cannot read {folder / GROUND_TRUTH_NAME}: {error}") from error
    version = int(arrays.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise SyntheticSceneError(
            f"{folder / GROUND_TRUTH_NAME} has format version {version}, "
            f"this page4d_viewer reads version {FORMAT_VERSION}"
        )
    shape = tuple(int(v) for v in arrays["shape"])
    images = _read_video(folder / VIDEO_NAME)
    if images.shape[:3] != shape:
        raise SyntheticSceneError(
            f"{folder / VIDEO_NAME} has frames of shape {images.shape[:3]}, "
            f"the ground truth expects {shape}"
        )
    description, settings, scene = "", {}, None
    if (folder / SCENE_NAME).is_file():
        try:
            saved = json.loads((folder / SCENE_NAME).read_text())
        except json.JSONDecodeError as error:
            raise SyntheticSceneError(f"cannot read {folder / SCENE_NAME}: {error}") from error
        description, settings = saved.get("description", ""), saved.get("settings") or {}
        if saved.get("scene") is not None:
            scene = SyntheticScene.from_dict(saved["scene"])
    depth = arrays["depth"].astype(np.float32)
    extrinsics, intrinsics = arrays["extrinsics"], arrays["intrinsics"]
    world_points = geometry.depth_to_world_points(depth.astype(np.float64), extrinsics, intrinsics)
    return SyntheticClip(
        images=images,
        depth=depth,
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        world_points=world_points.astype(np.float32),
        dynamic_mask=_unpack_mask(arrays["dynamic_mask"], shape),
        valid=_unpack_mask(arrays["valid"], shape),
        fps=float(arrays["fps"]),
        timestamps=arrays["timestamps"],
        description=description,
        settings=settings,
        scene=scene,
    )


# ----------------------------------------------------------------------------------------
# Bundled samples and the `make-samples` subcommand
# ----------------------------------------------------------------------------------------

# name -> make_clip arguments; fixed seeds so the bundled assets are reproducible.
SAMPLES: dict[str, dict[str, Any]] = {
    "orbit_movers": dict(seed=12, camera="orbit", movers="large", num_movers=3, person=False),
    "handheld_walk": dict(seed=7, camera="handheld", movers="mixed", num_movers=1, person=True),
}


def make_samples(out: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Render the bundled sample clips (24 frames, 518 x 294) into ``out/<name>/``.

    Args:
        out: parent folder.
        names: which of :data:`SAMPLES`; None for all.

    Returns:
        The folders written.
    """
    folders = []
    for name in names or list(SAMPLES):
        if name not in SAMPLES:
            raise SyntheticSceneError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
        start = time.perf_counter()
        clip = make_clip(**SAMPLES[name])
        folder = save_ground_truth(clip, Path(out) / name)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        logger.info(
            "%s: %s (%.1f s, %.2f MB)", folder, clip.description, time.perf_counter() - start, size
        )
        folders.append(folder)
    return folders
