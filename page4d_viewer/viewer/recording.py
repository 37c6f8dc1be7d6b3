"""An mp4 of the 3-D playback: step the scene's timeline, render a browser's view, encode.

Viser renders on the browser side: `ClientHandle.get_render(height, width)` asks a connected
page to draw its scene at that size (from its current view, or from a given pose) and sends
the picture back. `record_playback` steps the timeline one frame at a time, renders each
frame through a `Render` function and encodes the pictures with `result.export.mp4.write_mp4`
(libx264, yuv420p). The orbit path is a pure function of the first camera and the scene's
size (`orbit_path`), so it is tested without a browser.

Poses are Viser's: `wxyz` is the world-from-camera rotation (scalar first) of an OpenCV
camera (x right, y down, z forward), `position` the camera centre, `fov` the vertical field
of view in radians.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.cameras import MASKED
from page4d_viewer.result.export.common import scene_extent
from page4d_viewer.result.export.mp4 import clip_frame_rate, write_mp4

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.viewer.scene import SceneView

logger = logging.getLogger(__name__)

RENDER_TIMEOUT_S = 30.0
"""How long one frame's render may take in the browser before the recording gives up."""
MAX_RENDER_SIDE = 3840


@dataclass(frozen=True)
class ViewPose:
    """A viewpoint for `get_render` (see the module doc for the conventions).

    Attributes:
        wxyz: (4,) world-from-camera rotation, scalar first.
        position: (3,) camera centre in world coordinates.
        fov: vertical field of view, radians.
    """

    wxyz: np.ndarray
    position: np.ndarray
    fov: float


Render = Callable[[ViewPose | None], np.ndarray]
"""render(pose) -> (H, W, 3) uint8 picture of the scene; None renders the current view."""


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray, fov: float) -> ViewPose:
    """The pose of a camera at `position` looking at `target`, its image up along `up`.

    Args:
        position: (3,) camera centre.
        target: (3,) point at the image centre.
        up: (3,) world direction that appears upwards in the image (not parallel to the view).
        fov: vertical field of view, radians.

    Returns:
        The pose, with an OpenCV camera (y down) as Viser expects.
    """
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(-np.asarray(up, dtype=np.float64), forward)
    norm = np.linalg.norm(right)
    if not norm > 1e-9:
        raise Page4DError("cannot look along the up direction: the view has no image 'up'")
    right /= norm
    down = np.cross(forward, right)
    R_world_cam = np.stack([right, down, forward], axis=1)
    xyzw = geometry.rotation_to_quaternion(R_world_cam[None])[0]
    return ViewPose(wxyz=xyzw[[3, 0, 1, 2]], position=position, fov=float(fov))


def orbit_path(
    first_extrinsic: np.ndarray,
    centre: np.ndarray,
    extent: float,
    num_frames: int,
    fov: float,
    turns: float = 1.0,
) -> list[ViewPose]:
    """A circle around the scene, one pose per frame, starting near the first camera.

    The circle lies in the plane perpendicular to the first camera's up direction, at the
    first camera's height above the scene centre plus 15 % of the extent; its radius is the
    first camera's horizontal distance to the centre, at least half the extent. Pose i is at
    angle ``2 pi turns i / num_frames``, so a full turn loops without a repeated frame.

    Args:
        first_extrinsic: (3, 4) camera-from-world of the first camera.
        centre: (3,) point the orbit looks at (the scene's centre).
        extent: scene size in scene units (> 0), e.g. `scene_extent` of its points.
        num_frames: poses wanted (>= 1).
        fov: vertical field of view of every pose, radians.
        turns: number of turns over the clip.

    Returns:
        `num_frames` poses.
    """
    if num_frames < 1:
        raise Page4DError(f"an orbit needs at least one frame, got {num_frames}")
    extrinsic = np.asarray(first_extrinsic, dtype=np.float64)
    if extrinsic.shape != (3, 4):
        raise Page4DError(f"first_extrinsic must be (3, 4), got {extrinsic.shape}")
    centre = np.asarray(centre, dtype=np.float64)
    extent = float(extent) if np.isfinite(extent) and extent > 0 else 1.0
    T_world_cam = geometry.invert_rigid(extrinsic)
    up, forward = -T_world_cam[:3, 1], T_world_cam[:3, 2]
    offset = T_world_cam[:3, 3] - centre
    height = float(offset @ up) + 0.15 * extent
    horizontal = offset - (offset @ up) * up
    if np.linalg.norm(horizontal) < 1e-6 * extent:
        horizontal = -(forward - (forward @ up) * up)  # camera right above the centre
    radius = max(float(np.linalg.norm(horizontal)), 0.5 * extent)
    first_axis = horizontal / np.linalg.norm(horizontal)
    second_axis = np.cross(up, first_axis)
    angles = 2.0 * np.pi * turns * np.arange(num_frames) / num_frames
    return [
        look_at(
            centre + height * up + radius * (np.cos(a) * first_axis + np.sin(a) * second_axis),
            centre,
            up,
            fov,
        )
        for a in angles
    ]


def scene_orbit(recon: Reconstruction, num_frames: int, fov: float) -> list[ViewPose]:
    """`orbit_path` for a result: around the median of its points, from its first camera."""
    points = recon.points[:, ::4, ::4].reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    centre = np.median(points, axis=0) if len(points) else np.zeros(3)
    extrinsic = recon.camera_variant(MASKED).extrinsics[0]
    if not np.isfinite(extrinsic).all():
        extrinsic = np.eye(3, 4)
    return orbit_path(extrinsic, centre, scene_extent(points), num_frames, fov)


def record_playback(
    path: str | os.PathLike[str],
    *,
    num_frames: int,
    set_frame: Callable[[int], object],
    render: Render,
    fps: float,
    poses: Sequence[ViewPose] | None = None,
) -> Path:
    """Step the timeline through every frame, render each one and encode the mp4.

    Args:
        path: output ``.mp4``.
        num_frames: frames to record, 0..num_frames-1.
        set_frame: moves the scene to a frame (the scene's `set_frame`).
        render: draws the scene as it is now (see `Render`).
        fps: frame rate of the mp4.
        poses: one viewpoint per frame (an orbit), or None for the current view.

    Returns:
        The path written.
    """
    if num_frames < 1:
        raise Page4DError("nothing to record: the scene shows no frames")
    if poses is not None and len(poses) != num_frames:
        raise Page4DError(f"got {len(poses)} viewpoints for {num_frames} frames")
    if not fps > 0:
        raise Page4DError(f"fps must be positive, got {fps}")

    def pictures() -> Iterator[np.ndarray]:
        for frame in range(num_frames):
            set_frame(frame)
            yield render(None if poses is None else poses[frame])

    written = write_mp4(path, pictures(), fps)
    logger.info("recorded %s (%d frames at %.3g fps)", written, num_frames, fps)
    return written


def client_render(client: viser.ClientHandle, height: int, width: int) -> Render:
    """A `Render` that asks one connected browser to draw its scene at height x width."""
    check_size(height, width)

    def render(pose: ViewPose | None) -> np.ndarray:
        if pose is None:
            image = client.get_render(height, width, timeout=RENDER_TIMEOUT_S)
        else:
            image = client.get_render(
                height,
                width,
                wxyz=pose.wxyz,
                position=pose.position,
                fov=pose.fov,
                timeout=RENDER_TIMEOUT_S,
            )
        return np.ascontiguousarray(np.asarray(image)[..., :3], dtype=np.uint8)

    return render


def check_size(height: int, width: int) -> None:
    """Raise Page4DError unless the video size is even and within 16..MAX_RENDER_SIDE."""
    for name, value in (("height", height), ("width", width)):
        if not 16 <= int(value) <= MAX_RENDER_SIDE or int(value) % 2:
            raise Page4DError(
                f"video {name} must be an even number of pixels in 16..{MAX_RENDER_SIDE}, "
                f"got {value}"
            )


def newest_client(server: viser.ViserServer) -> viser.ClientHandle:
    """The browser that joined the scene last (the page that asked, in the usual case)."""
    clients = server.get_clients()
    if not clients:
        raise Page4DError("no browser shows the 3-D scene: open it (the panel embeds it) first")
    return clients[max(clients)]


def record_scene_mp4(
    scene: SceneView,
    recon: Reconstruction,
    client: viser.ClientHandle,
    path: str | os.PathLike[str],
    *,
    height: int,
    width: int,
    orbit: bool,
    fps: float | None = None,
) -> Path:
    """Record the scene's clip from `client`'s current view or an orbit, as an mp4.

    Playback is paused while recording; the frame and the playing state are restored after.

    Args:
        scene: the Viser scene showing `recon`.
        recon: the result shown.
        client: the browser that renders.
        path: output ``.mp4``.
        height: video height in pixels (even).
        width: video width in pixels (even).
        orbit: circle the scene (`scene_orbit`) instead of keeping the current view.
        fps: mp4 frame rate; default the clip's (`clip_frame_rate`).

    Returns:
        The path written.
    """
    if scene.num_frames != recon.num_frames:
        raise Page4DError("the scene does not show this result (yet); try again")
    rate = clip_frame_rate(recon.timestamps()) if fps is None else float(fps)
    render = client_render(client, height, width)
    scene.wait_until_sent(timeout=60.0)
    poses = scene_orbit(recon, recon.num_frames, client.camera.fov) if orbit else None
    state = scene.state()
    scene.set_playing(False)
    try:
        return record_playback(
            path,
            num_frames=recon.num_frames,
            set_frame=scene.set_frame,
            render=render,
            fps=rate,
            poses=poses,
        )
    finally:
        scene.set_frame(state.frame)
        scene.set_playing(state.playing)
