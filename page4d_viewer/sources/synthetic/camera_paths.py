"""Camera paths through a synthetic room: orbit, walk and handheld, and their clearance check.

Cameras are OpenCV (x right, y down, z forward); extrinsics are camera-from-world ``[R | t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.sources.synthetic.scene import rotation_matrix

if TYPE_CHECKING:
    from page4d_viewer.sources.synthetic.scene import SyntheticScene

CAMERA_MOTIONS = ("orbit", "walk", "handheld")
# A camera keeps this much room (metres) around itself and any object's bounding sphere.
CAMERA_CLEARANCE = 0.35


def look_at(
    position: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
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


@dataclass(frozen=True)
class _PathStart:
    """What every camera path shares, drawn before the path itself.

    Attributes:
        stage: (3,) centre of the action on the floor, metres.
        half_size: (2,) half extents of the room, metres.
        target: (3,) point the camera looks at.
        eye_height: camera height, metres.
        angle0: direction from the stage towards the first camera, radians.
        preferred: preferred distance from the stage for the field of view, metres.
        room_limit: how far the room lets the camera stand back along ``angle0``, metres.
    """

    stage: np.ndarray
    half_size: np.ndarray
    target: np.ndarray
    eye_height: float
    angle0: float
    preferred: float
    room_limit: float


def camera_path(
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
    start = _PathStart(stage, half_size, target, eye_height, angle0, preferred, room_limit)
    if motion == "orbit":
        positions, rotations = _orbit(rng, times, start)
    elif motion == "walk":
        positions, rotations = _walk(rng, times, start)
    else:
        positions, rotations = _handheld(rng, times, start)
    translations = -np.einsum("sij,sj->si", rotations, positions)
    return np.concatenate([rotations, translations[..., None]], axis=-1)


def _orbit(
    rng: np.random.Generator, times: np.ndarray, start: _PathStart
) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3) positions and (S, 3, 3) rotations circling the stage, bobbing gently."""
    stage = start.stage
    radius = float(np.clip(start.preferred * rng.uniform(0.9, 1.1), 3.3, start.room_limit))
    rate = rng.uniform(0.25, 0.7) * rng.choice([-1.0, 1.0])
    angles = start.angle0 + rate * times
    reach = np.array([_max_distance_inside(stage, float(a), start.half_size, 0.6) for a in angles])
    radius = float(min(radius, reach.min()))
    heights = start.eye_height + 0.15 * np.sin(2 * math.pi * rng.uniform(0.1, 0.3) * times)
    positions = np.stack(
        [
            stage[0] + radius * np.cos(angles),
            stage[1] + radius * np.sin(angles),
            heights,
        ],
        axis=1,
    )
    rotations = np.stack([look_at(p, start.target) for p in positions])
    return positions, rotations


def _walk(
    rng: np.random.Generator, times: np.ndarray, start: _PathStart
) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3) positions and (S, 3, 3) rotations walking towards the stage, panning a little."""
    stage, angle0, room_limit = start.stage, start.angle0, start.room_limit
    end_distance = float(np.clip(start.preferred * rng.uniform(0.85, 1.0), 3.3, room_limit - 1.0))
    start_distance = min(end_distance + rng.uniform(1.0, 1.6), room_limit)
    end_angle = angle0 + rng.uniform(-0.5, 0.5)
    first = stage[:2] + start_distance * np.array([math.cos(angle0), math.sin(angle0)])
    end = stage[:2] + end_distance * np.array([math.cos(end_angle), math.sin(end_angle)])
    speed = rng.uniform(0.4, 0.8)
    duration = max(float(times[-1]), 1e-9)
    progress = np.clip(times * speed / max(np.linalg.norm(end - first), 1e-9), 0, 1)
    if speed * duration > np.linalg.norm(end - first):
        # Long clips walk the same path more slowly instead of walking into the stage.
        progress = times / duration
    xy = first + progress[:, None] * (end - first)
    bob = 0.025 * np.sin(2 * math.pi * 1.8 * times)
    positions = np.concatenate([xy, (start.eye_height + bob)[:, None]], axis=1)
    pan = _wobble(rng, times * 0.15, 0.25, 3) * np.array([1.0, 1.0, 0.3])
    rotations = np.stack(
        [look_at(p, start.target + d) for p, d in zip(positions, pan, strict=True)]
    )
    return positions, rotations


def _handheld(
    rng: np.random.Generator, times: np.ndarray, start: _PathStart
) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3) positions and (S, 3, 3) rotations of a nearly still, shaky hand-held camera."""
    drift_length = rng.uniform(0.1, 0.5)
    # Stand back by the drift too: it may point towards the stage.
    distance = float(
        np.clip(
            start.preferred * rng.uniform(0.85, 1.1), 3.3 + drift_length, start.room_limit - 0.5
        )
    )
    base = start.stage[:2] + distance * np.array([math.cos(start.angle0), math.sin(start.angle0)])
    drift_direction = rng.normal(size=2)
    drift = drift_length * drift_direction / np.linalg.norm(drift_direction)
    duration = max(float(times[-1]), 1e-9)
    xy = base + (times / duration)[:, None] * drift
    positions = np.concatenate([xy, np.full((len(times), 1), start.eye_height)], axis=1)
    positions += _wobble(rng, times, 0.02, 3)
    shake = _wobble(rng, times, math.radians(1.2), 3)
    rotations = np.stack(
        [
            rotation_matrix(s) @ look_at(p, start.target)
            for p, s in zip(positions, shake, strict=True)
        ]
    )
    return positions, rotations


def cameras_are_clear(scene: SyntheticScene, extrinsics: np.ndarray, times: np.ndarray) -> bool:
    """Whether every camera keeps its clearance from every object's bounding sphere."""
    centres = geometry.camera_centers(extrinsics)
    for centre, t in zip(centres, times, strict=True):
        for primitive in scene.posed_primitives(float(t)):
            gap = np.linalg.norm(centre - primitive.centre) - primitive.bounding_radius()
            if gap < CAMERA_CLEARANCE:
                return False
    return True
