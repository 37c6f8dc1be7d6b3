"""The description of a synthetic scene: a room, textured objects, their motions, people, lights.

Conventions (the same as :mod:`page4d_viewer.geometry`):

* **World frame**: metres, z up, origin on the floor at the centre of the room; the floor is
  ``z = 0``, the room spans ``|x| <= room_half_size[0]``, ``|y| <= room_half_size[1]``,
  ``0 <= z <= room_height``. It does not move and does not depend on the cameras.
* **Shading** is Lambertian under fixed lights with no shadows, so a static surface point has
  the same colour in every frame and whatever the moving objects do.
* Every moving object spins or travels at all times, so its surface moves in every frame.

The dataclasses hold only floats and tuples, so a scene serialises to JSON
(:meth:`SyntheticScene.to_dict`, :meth:`SyntheticScene.from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError
from page4d_viewer.sources.records import FieldConverters, read_fields, record_reader, tuple_of
from page4d_viewer.sources.synthetic.renderer import ROOM_FACES, RenderedView, render_view
from page4d_viewer.sources.synthetic.textures import Texture, Vec3, vec2, vec3


class SyntheticSceneError(Page4DError):
    """Bad synthetic-scene settings, or a saved ground-truth folder that cannot be read."""


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
        rotation = rotation_matrix(np.array(self.rotation))
        centre = np.array(self.centre, dtype=np.float64)
        scale = 1.0
        if self.motion is not None:
            spin = rotation_matrix(np.array(self.motion.spin_axis) * self.motion.spin_rate * t)
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
            rotation_body = rotation_matrix(np.array([0.0, swing_sign * swing, 0.0]))
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

    def to_rest(self, world: np.ndarray) -> np.ndarray:
        """(N, 3) rest coordinates (local, at rest size: what textures use) of world points.

        A point of the object's surface keeps its rest coordinates at every time: the object
        carries it along, turns it and scales it with the pulse.
        """
        return ((world - self.centre) @ self.rotation) / self.texture_scale

    def from_rest(self, rest: np.ndarray) -> np.ndarray:
        """(N, 3) world points of (N, 3) rest coordinates at this instant (inverts to_rest)."""
        return (rest * self.texture_scale) @ self.rotation.T + self.centre


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
        texture_detail: relative amplitude of a fine multi-octave noise (6-25 cm features,
            see ``textures.DETAIL_CELL``) on every surface; 0 (default, as all bundled
            samples) adds none. Gives every patch unique structure to match across frames.
    """

    room_half_size: tuple[float, float]
    room_height: float
    room_textures: tuple[Texture, ...]
    static_objects: tuple[SceneObject, ...]
    moving_objects: tuple[SceneObject, ...]
    people: tuple[Person, ...]
    lighting: Lighting
    texture_detail: float = 0.0

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
        return render_view(self, extrinsic, intrinsic, width, height, t, supersample=supersample)

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
            # Scenes written before texture_detail existed render without it.
            texture_detail = float(data.get("texture_detail", 0.0))
            return cls(**read_fields(data, _SCENE_FIELDS), texture_detail=texture_detail)
        except (KeyError, TypeError, ValueError) as error:
            raise SyntheticSceneError(f"not a synthetic scene description: {error!r}") from None


_TEXTURE_FIELDS: FieldConverters = {
    "kind": str,
    "cell": float,
    "seed": int,
    "grain": float,
    "colour_a": vec3,
    "colour_b": vec3,
    "offset": vec3,
    "axis": vec3,
}

_texture = record_reader(Texture, _TEXTURE_FIELDS)


_MOTION_VECTORS = ("sweep", "spin_axis")
"""The fields of a Motion that are 3-vectors; the others are numbers."""


def _motion(data: dict[str, Any]) -> Motion:
    vectors = {key: vec3(data[key]) for key in _MOTION_VECTORS if key in data}
    numbers = {key: float(value) for key, value in data.items() if key not in _MOTION_VECTORS}
    # replace() refuses unknown names like the constructor (a TypeError from_dict reports).
    return dataclasses.replace(Motion(), **vectors, **numbers)


_SCENE_OBJECT_FIELDS: FieldConverters = {
    "name": str,
    "kind": str,
    "half_size": vec3,
    "centre": vec3,
    "rotation": vec3,
    "texture": _texture,
}


def _scene_object(data: dict[str, Any]) -> SceneObject:
    motion = None if data.get("motion") is None else _motion(data["motion"])
    return SceneObject(**read_fields(data, _SCENE_OBJECT_FIELDS), motion=motion)


_PERSON_FIELDS: FieldConverters = {
    "name": str,
    "circle_centre": vec2,
    "circle_radius": float,
    "speed": float,
    "phase": float,
    "height": float,
    "shirt": _texture,
    "trousers": _texture,
    "skin": _texture,
}

_LIGHTING_FIELDS: FieldConverters = {
    "ambient": vec3,
    "directions": tuple_of(vec3),
    "colours": tuple_of(vec3),
    "lamp_position": vec3,
    "lamp_colour": vec3,
    "lamp_range": float,
}

_SCENE_FIELDS: FieldConverters = {
    "room_half_size": vec2,
    "room_height": float,
    "room_textures": tuple_of(_texture),
    "static_objects": tuple_of(_scene_object),
    "moving_objects": tuple_of(_scene_object),
    "people": tuple_of(record_reader(Person, _PERSON_FIELDS)),
    "lighting": record_reader(Lighting, _LIGHTING_FIELDS),
}
"""How :meth:`SyntheticScene.from_dict` reads each field (``texture_detail`` is optional)."""


def rotation_matrix(rotation_vector: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(3, 3) rotation from a rotation vector (axis times angle in radians), Rodrigues."""
    angle = float(np.linalg.norm(rotation_vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = np.asarray(rotation_vector, dtype=np.float64) / angle
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross
