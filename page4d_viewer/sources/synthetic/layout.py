"""Random scene contents: room textures, lights, moving objects, a walking person, furniture.

Each function draws from the generator it is given, in a fixed order: the same seed gives
the same scene (the bundled samples depend on it), so a change of draw order is a change of
every clip.
"""

from __future__ import annotations

import math

import numpy as np

from page4d_viewer.sources.synthetic.scene import Lighting, Motion, Person, SceneObject
from page4d_viewer.sources.synthetic.textures import Texture, Vec3, random_texture, vec3


def random_lighting(rng: np.random.Generator, stage: np.ndarray, room_height: float) -> Lighting:
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
        return vec3(-source)

    key = rng.uniform(0.45, 0.75) * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.8, 0.95)])
    fill = rng.uniform(0.12, 0.28) * np.array([rng.uniform(0.8, 0.95), rng.uniform(0.9, 1.0), 1.0])
    lamp_xy = stage[:2] + rng.uniform(-1.5, 1.5, size=2)
    return Lighting(
        ambient=vec3(rng.uniform(0.25, 0.4) * tint),
        directions=(travel(key_azimuth, key_elevation), travel(fill_azimuth, fill_elevation)),
        colours=(vec3(key), vec3(fill)),
        lamp_position=(float(lamp_xy[0]), float(lamp_xy[1]), room_height - 0.3),
        lamp_colour=vec3(rng.uniform(0.3, 0.6) * np.array([1.0, 0.95, 0.85])),
        lamp_range=float(rng.uniform(2.0, 3.5)),
    )


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
        spin_axis=vec3(axis / np.linalg.norm(axis)),
        spin_rate=float(rng.uniform(0.8, 3.0) * rng.choice([-1, 1])),
        pulse=float(rng.uniform(0.1, 0.25)) if pulse else 0.0,
        pulse_hz=float(rng.uniform(0.3, 0.8)) if pulse else 0.0,
        pulse_phase=float(rng.uniform(0, 2 * math.pi)),
    )


def random_mover(
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
    texture = random_texture(rng, ["checker", "stripes", "noise", "tiles"], (0.08, 0.35))
    label = "large" if large else "small"
    return SceneObject(
        name=f"{label} {kind} {index}",
        kind="box" if kind == "box" else "ellipsoid",
        half_size=vec3(half_size),
        centre=vec3(centre),
        rotation=vec3(rng.normal(size=3)),
        texture=texture,
        motion=motion,
    )


def random_person(rng: np.random.Generator, stage: np.ndarray) -> Person:
    centre = stage[:2] + rng.uniform(-0.3, 0.3, size=2)
    return Person(
        name="person",
        circle_centre=(float(centre[0]), float(centre[1])),
        circle_radius=float(rng.uniform(0.8, 1.3)),
        speed=float(rng.uniform(0.7, 1.2) * rng.choice([-1, 1])),
        phase=float(rng.uniform(0, 2 * math.pi)),
        height=float(rng.uniform(1.55, 1.85)),
        shirt=random_texture(rng, ["stripes", "checker", "noise", "plain"], (0.06, 0.2)),
        trousers=random_texture(rng, ["noise", "plain"], (0.1, 0.3), value=(0.15, 0.5)),
        skin=random_texture(rng, ["noise", "plain"], (0.05, 0.15), value=(0.5, 0.9)),
    )


def _segment_distance(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    """Distance from a 2-D point to a 2-D segment."""
    along = end - start
    fraction = np.clip(np.dot(point - start, along) / max(np.dot(along, along), 1e-12), 0, 1)
    return float(np.linalg.norm(point - (start + fraction * along)))


def random_static_objects(
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
        furniture = _random_furniture(
            rng, index, stage, half_size, camera_positions, sight_lines, keep_clear, objects
        )
        if furniture is not None:
            objects.append(furniture)
    for index in range(int(rng.integers(0, 3))):
        objects.append(_random_rug(rng, index, half_size))
    for index in range(int(rng.integers(0, 4))):
        objects.append(_random_wall_panel(rng, index, half_size, room_height))
    return objects


def _random_furniture(
    rng: np.random.Generator,
    index: int,
    stage: np.ndarray,
    half_size: np.ndarray,
    camera_positions: np.ndarray,
    sight_lines: np.ndarray,
    keep_clear: float,
    placed: list[SceneObject],
) -> SceneObject | None:
    """A box, ball or pillar on the floor clear of everything; None after 40 failed tries."""
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
            for o in placed
        )
        if (
            np.linalg.norm(xy - stage[:2]) > keep_clear + bound
            and clear_of_cameras > bound + 0.8
            and clear_of_sight > bound + 0.3
            and not overlaps
        ):
            return SceneObject(
                name=f"{kind} {index}",
                kind="ellipsoid" if kind == "ball" else "box",
                half_size=vec3(size),
                centre=(float(xy[0]), float(xy[1]), float(size[2])),
                rotation=(0.0, 0.0, float(rng.uniform(0, 2 * math.pi))),
                texture=random_texture(rng, ["checker", "stripes", "noise", "tiles"], (0.1, 0.5)),
            )
    return None


def _random_rug(rng: np.random.Generator, index: int, half_size: np.ndarray) -> SceneObject:
    """A rug anywhere on the floor, 1 cm thick: cameras and movers pass above it."""
    size = np.array([*rng.uniform(0.4, 1.2, size=2), 0.005])
    xy = rng.uniform(-half_size + 1.7, half_size - 1.7)
    return SceneObject(
        name=f"rug {index}",
        kind="box",
        half_size=vec3(size),
        centre=(float(xy[0]), float(xy[1]), 0.005),
        rotation=(0.0, 0.0, float(rng.uniform(0, 2 * math.pi))),
        texture=random_texture(rng, ["stripes", "checker", "noise"], (0.08, 0.4)),
    )


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
        half_size=vec3(size),
        centre=vec3(centre),
        rotation=(0.0, 0.0, 0.0),
        texture=random_texture(rng, ["noise", "stripes", "checker", "tiles"], (0.05, 0.3)),
    )


def random_room_textures(rng: np.random.Generator) -> tuple[Texture, ...]:
    floor = random_texture(rng, ["tiles", "checker", "noise", "stripes"], (0.3, 0.9))
    ceiling = random_texture(rng, ["plain", "noise"], (0.5, 1.5), value=(0.7, 0.95))
    walls = []
    for _ in range(4):
        walls.append(random_texture(rng, ["plain", "noise", "stripes", "tiles"], (0.2, 1.0)))
    return (floor, ceiling, *walls)
