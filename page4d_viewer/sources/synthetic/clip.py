"""Synthetic clips: draw a random scene and camera path, render it, keep the exact ground truth.

Cameras are OpenCV (x right, y down, z forward); ``extrinsics`` are camera-from-world
``[R | t]``; pixel (row i, column j) has image coordinates ``(u, v) = (j, i)`` and the
principal point is ``(W / 2, H / 2)``; square pixels. **Depth** is z in the camera frame, in
metres. **dynamic_mask** is True exactly where the first surface hit belongs to a moving
object, and every pixel sees a surface (``valid`` is all True). The network predicts points
and cameras in the *first camera's* frame: :meth:`SyntheticClip.in_first_camera_frame`
re-expresses a clip that way.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.sources.synthetic.camera_paths import (
    CAMERA_MOTIONS,
    camera_path,
    cameras_are_clear,
)
from page4d_viewer.sources.synthetic.layout import (
    random_lighting,
    random_mover,
    random_person,
    random_room_textures,
    random_static_objects,
)
from page4d_viewer.sources.synthetic.scene import SceneObject, SyntheticScene, SyntheticSceneError

MOVER_SIZES = ("small", "large", "mixed")


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

    images: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.float32]
    extrinsics: npt.NDArray[np.float64]
    intrinsics: npt.NDArray[np.float64]
    world_points: npt.NDArray[np.float32]
    dynamic_mask: npt.NDArray[np.bool_]
    valid: npt.NDArray[np.bool_]
    fps: float
    timestamps: npt.NDArray[np.float64]
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
        extrinsics, points = in_first_camera(self.extrinsics, self.world_points)
        return dataclasses.replace(
            self, extrinsics=extrinsics, world_points=points.astype(np.float32)
        )


def in_first_camera(
    extrinsics: npt.NDArray[np.float64], world_points: npt.NDArray[np.floating]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Cameras and points with the first camera's frame as the world, as the network predicts.

    Args:
        extrinsics: (S, 3, 4) camera-from-world.
        world_points: (..., 3) world points.

    Returns:
        (S, 3, 4) camera-from-first-camera extrinsics (the first is ``[I | 0]``); the
        (..., 3) float64 points in the first camera's frame.
    """
    T_world_cam0 = geometry.invert_rigid(extrinsics[0])
    T_cam0_world = extrinsics[0]
    points = geometry.transform_points(T_cam0_world, world_points.reshape(-1, 3).astype(np.float64))
    return geometry.compose_rigid(extrinsics, T_world_cam0), points.reshape(world_points.shape)


@dataclass(frozen=True)
class SceneSettings:
    """The :func:`make_clip` arguments that draw the scene and the camera path, checked.

    Each field is the :func:`make_clip` argument of the same name (the defaults live there).

    Raises:
        SyntheticSceneError: a setting is out of range.
    """

    num_frames: int
    width: int
    height: int
    fps: float
    camera: str | None
    movers: str
    num_movers: int | None
    person: bool | None
    fov_deg: float | None

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise SyntheticSceneError(f"num_frames must be at least 1, got {self.num_frames}")
        if self.width < 8 or self.height < 8:
            raise SyntheticSceneError(
                f"image size must be at least 8x8 pixels, got {self.width}x{self.height}"
            )
        if not self.fps > 0:
            raise SyntheticSceneError(f"fps must be positive, got {self.fps}")
        if self.camera is not None and self.camera not in CAMERA_MOTIONS:
            raise SyntheticSceneError(
                f"camera must be one of {', '.join(CAMERA_MOTIONS)}, got {self.camera!r}"
            )
        if self.movers not in MOVER_SIZES:
            raise SyntheticSceneError(
                f"movers must be one of {', '.join(MOVER_SIZES)}, got {self.movers!r}"
            )
        if self.num_movers is not None and not 0 <= self.num_movers <= 8:
            raise SyntheticSceneError(f"num_movers must be between 0 and 8, got {self.num_movers}")
        if self.fov_deg is not None and not 20 <= self.fov_deg <= 120:
            raise SyntheticSceneError(
                f"fov_deg must be between 20 and 120 degrees, got {self.fov_deg}"
            )


def make_scene(
    seed: int, settings: SceneSettings
) -> tuple[SyntheticScene, np.ndarray, np.ndarray, np.ndarray, str]:
    """Draw a random scene and camera path (no rendering), as :func:`make_clip` does.

    Returns:
        The scene; (S, 3, 4) extrinsics; (S, 3, 3) intrinsics; (S,) timestamps in seconds;
        a one-line description.
    """
    # The layout rules keep cameras clear of objects almost always; a rare crowded draw
    # (many large movers) is redrawn from a derived seed, so a seed always gives a scene.
    for attempt in range(20):
        entropy = seed if attempt == 0 else [seed, attempt]
        drawn = _draw_scene(seed, np.random.SeedSequence(entropy), settings)
        if drawn is not None:
            return drawn
    raise RuntimeError(f"no synthetic layout for seed {seed} keeps the cameras clear of objects")


def _draw_scene(
    seed: int, seed_sequence: np.random.SeedSequence, settings: SceneSettings
) -> tuple[SyntheticScene, np.ndarray, np.ndarray, np.ndarray, str] | None:
    """One draw of :func:`make_scene`; None if a camera comes too close to an object."""
    streams = [np.random.default_rng(s) for s in seed_sequence.spawn(6)]
    rng_choice, rng_room, rng_camera, rng_static, rng_movers, rng_light = streams
    # The unset choices are drawn from one stream in this order: a seed's scene depends on it.
    camera = settings.camera or str(rng_choice.choice(CAMERA_MOTIONS))
    fov_deg = settings.fov_deg if settings.fov_deg is not None else rng_choice.uniform(45, 75)
    fov = math.radians(fov_deg)
    num_movers = settings.num_movers
    if num_movers is None:
        num_movers = int(rng_choice.integers(1, 4))
    person = settings.person
    if person is None:
        person = settings.movers != "small" and bool(rng_choice.uniform() < 0.35)

    half_size = rng_room.uniform(6.0, 8.0, size=2)
    room_height = float(rng_room.uniform(2.6, 4.0))
    stage = np.array([*rng_room.uniform(-0.5, 0.5, size=2), 0.0])
    room_textures = random_room_textures(rng_room)

    width, height, num_frames = settings.width, settings.height, settings.num_frames
    times = np.arange(num_frames) / settings.fps
    extrinsics = camera_path(rng_camera, camera, times, stage, half_size, room_height, fov)
    camera_positions = geometry.camera_centers(extrinsics)
    focal = (width / 2) / math.tan(fov / 2)
    intrinsic = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])

    moving = _random_movers(rng_movers, settings.movers, num_movers, stage)
    people = [random_person(rng_movers, stage)] if person else []
    static = random_static_objects(rng_static, stage, half_size, room_height, camera_positions, 2.6)
    scene = SyntheticScene(
        room_half_size=(float(half_size[0]), float(half_size[1])),
        room_height=room_height,
        room_textures=room_textures,
        static_objects=tuple(static),
        moving_objects=tuple(moving),
        people=tuple(people),
        lighting=random_lighting(rng_light, stage, room_height),
    )
    if not cameras_are_clear(scene, extrinsics, times):
        return None
    description = _describe(seed, camera, fov, scene)
    return scene, extrinsics, np.repeat(intrinsic[None], num_frames, axis=0), times, description


def _random_movers(
    rng: np.random.Generator, movers: str, num_movers: int, stage: np.ndarray
) -> list[SceneObject]:
    """The moving boxes, spheres and ellipsoids, one sector of the stage each."""
    moving = []
    # One sector of the stage per object, so that they rarely pass through each other.
    first_sector = rng.uniform(0, 2 * math.pi)
    for index in range(num_movers):
        large = movers == "large" or (movers == "mixed" and rng.uniform() < 0.5)
        angle = first_sector + 2 * math.pi * (index + rng.uniform(-0.2, 0.2)) / num_movers
        moving.append(random_mover(rng, index, large, stage, angle))
    return moving


def _describe(seed: int, camera: str, fov: float, scene: SyntheticScene) -> str:
    """One line about the scene and the camera."""
    half_x, half_y = scene.room_half_size
    mover_names = [obj.name.rsplit(" ", 1)[0] for obj in scene.moving_objects]
    mover_names += ["walking person"] * len(scene.people)
    return (
        f"seed {seed}: {camera} camera, {math.degrees(fov):.0f} deg horizontal fov, "
        f"{2 * half_x:.1f} x {2 * half_y:.1f} x {scene.room_height:.1f} m room, "
        f"{len(scene.static_objects)} static objects, movers: {', '.join(mover_names) or 'none'}"
    )


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
    texture_detail: float = 0.0,
) -> SyntheticClip:
    # Over 60 lines because the docstring documents every setting; the body is short.
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
        texture_detail: amplitude of fine noise on every surface (``SyntheticScene.
            texture_detail``, 0-1); 0 (default) renders exactly what earlier versions did.

    Returns:
        The clip; world frame and conventions as in the module docstring.

    Raises:
        SyntheticSceneError: an argument is out of range.
    """
    if supersample not in (1, 2, 3, 4):
        raise SyntheticSceneError(f"supersample must be 1, 2, 3 or 4, got {supersample}")
    if not 0.0 <= texture_detail <= 1.0:
        raise SyntheticSceneError(f"texture_detail must be in [0, 1], got {texture_detail}")
    scene_settings = SceneSettings(
        num_frames, width, height, float(fps), camera, movers, num_movers, person, fov_deg
    )
    scene, extrinsics, intrinsics, times, description = make_scene(int(seed), scene_settings)
    # Set after the draw, so the same seed gives the same scene with or without detail.
    scene = dataclasses.replace(scene, texture_detail=float(texture_detail))
    views = [
        scene.render(
            extrinsics[i], intrinsics[i], width, height, float(times[i]), supersample=supersample
        )
        for i in range(num_frames)
    ]
    settings: dict[str, Any] = {
        "seed": int(seed),
        **dataclasses.asdict(scene_settings),
        "supersample": supersample,
    }
    if texture_detail:
        settings["texture_detail"] = float(texture_detail)
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
