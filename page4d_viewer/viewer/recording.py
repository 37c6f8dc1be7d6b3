"""An mp4 of the 3-D playback: step the scene's timeline, render a browser's view, encode.

Viser renders on the browser side: `ClientHandle.get_render(height, width)` asks a connected
page to draw its scene at that size (from its current view, or from a given pose) and sends
the picture back. `record_playback` steps the timeline one frame at a time, renders each
frame through a `Render` function and encodes the pictures with `result.export.mp4.write_mp4`
(libx264, yuv420p). The camera either stays at the browser's current view, circles the scene
(`orbit_path`, a pure function of the first camera and the scene's size) or flies along
keyframes taken from the browser's view (`current_view`, `keyframe_path`: a Catmull-Rom spline
through the positions, slerp between the orientations); the paths are tested without a browser.

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
from typing import TYPE_CHECKING, Literal, get_args

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
CameraPath = Literal["view", "orbit", "keyframes"]
"""Where a recording's camera goes: the current view, an orbit, or along keyframes."""
CAMERA_PATHS: tuple[CameraPath, ...] = get_args(CameraPath)


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


def current_view(client: viser.ClientHandle) -> ViewPose:
    """The pose a browser shows its scene from now (what the user has orbited to).

    Raises:
        Page4DError: the browser has not reported its camera yet.
    """
    camera = client.camera
    if camera.update_timestamp == 0.0:
        raise Page4DError("the 3-D view has not reported its camera yet: wait for it to show")
    return ViewPose(
        wxyz=np.array(camera.wxyz, dtype=np.float64),
        position=np.array(camera.position, dtype=np.float64),
        fov=float(camera.fov),
    )


def keyframe_path(keyframes: Sequence[ViewPose], count: int) -> list[ViewPose]:
    """A smooth camera path through keyframes, one pose per recorded frame.

    Pose i sits at spline parameter ``u = i (K - 1) / (count - 1)`` for K keyframes, so the
    first and last poses are the first and last keyframes and the camera spends as many frames
    between each pair of neighbours; keyframe k is passed exactly when ``k (count - 1) /
    (K - 1)`` is a whole number (and between two frames otherwise). Positions follow a uniform
    Catmull-Rom spline (through every keyframe, smooth velocity), orientations slerp between
    neighbouring keyframes (`slerp`, shortest arc), the field of view is linear. One keyframe
    gives a still camera.

    Args:
        keyframes: K >= 1 poses, in the order to visit them.
        count: poses wanted (>= 1), the recording's frame count.

    Returns:
        `count` poses.

    Raises:
        Page4DError: no keyframe, count < 1, or a keyframe that is not a camera (non-finite,
            a zero quaternion, a field of view outside (0, pi)).
    """
    if int(count) != count or count < 1:
        raise Page4DError(f"a camera path needs at least one frame, got {count}")
    if len(keyframes) == 0:
        raise Page4DError("no keyframes: add the current view as a keyframe first")
    positions, quaternions, fovs = _checked_keyframes(keyframes)
    if len(keyframes) == 1:
        return [ViewPose(quaternions[0], positions[0], float(fovs[0])) for _ in range(count)]
    for k in range(1, len(quaternions)):  # q and -q: keep neighbours on one side, no flips
        if quaternions[k] @ quaternions[k - 1] < 0.0:
            quaternions[k] = -quaternions[k]
    last = len(keyframes) - 1
    u = np.linspace(0.0, last, int(count)) if count > 1 else np.zeros(1)
    segment = np.clip(np.floor(u).astype(np.int64), 0, last - 1)
    wxyz = slerp(quaternions[segment], quaternions[segment + 1], u - segment)
    path_positions = catmull_rom(positions, u)
    path_fovs = np.interp(u, np.arange(last + 1), fovs)
    return [ViewPose(wxyz[i], path_positions[i], float(path_fovs[i])) for i in range(int(count))]


def slerp(start: np.ndarray, end: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shortest arc.

    Args:
        start: (N, 4) unit quaternions at s = 0.
        end: (N, 4) unit quaternions at s = 1 (q and -q are the same rotation: the one
            nearer `start` is used).
        s: (N,) fractions in [0, 1].

    Returns:
        (N, 4) unit quaternions, in the components' order of the inputs.
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)[:, None]
    dot = np.sum(start * end, axis=1, keepdims=True)
    end = np.where(dot < 0.0, -end, end)
    angle = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sine = np.sin(angle)
    nearly_equal = sine < 1e-6  # sin(angle) ~ angle: the linear blend is exact enough
    safe = np.where(nearly_equal, 1.0, sine)
    start_weight = np.where(nearly_equal, 1.0 - s, np.sin((1.0 - s) * angle) / safe)
    end_weight = np.where(nearly_equal, s, np.sin(s * angle) / safe)
    blended = start_weight * start + end_weight * end
    return blended / np.linalg.norm(blended, axis=1, keepdims=True)


def catmull_rom(points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A uniform Catmull-Rom spline through points, evaluated at parameters u.

    The curve passes through point k at u = k; its tangent there is half the chord between
    the neighbours, so the velocity is continuous. The ends get mirrored phantom neighbours
    (``2 P0 - P1``), so two points give the straight segment at constant speed.

    Args:
        points: (K, D) control points, K >= 2.
        u: (N,) parameters in [0, K - 1].

    Returns:
        (N, D) points on the curve.
    """
    points = np.asarray(points, dtype=np.float64)
    padded = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    segment = np.clip(np.floor(u).astype(np.int64), 0, len(points) - 2)
    s = (np.asarray(u, dtype=np.float64) - segment)[:, None]
    p0, p1, p2, p3 = (padded[segment + offset] for offset in range(4))
    return 0.5 * (
        2 * p1
        + (p2 - p0) * s
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
        + (3 * p1 - p0 - 3 * p2 + p3) * s**3
    )


def _checked_keyframes(
    keyframes: Sequence[ViewPose],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, 3) positions, (K, 4) unit wxyz and (K,) fovs of keyframes, or one clear error."""
    positions, quaternions, fovs = [], [], []
    for number, pose in enumerate(keyframes, start=1):
        position = np.asarray(pose.position, dtype=np.float64)
        wxyz = np.asarray(pose.wxyz, dtype=np.float64)
        fov = float(pose.fov)
        norm = float(np.linalg.norm(wxyz)) if wxyz.shape == (4,) else 0.0
        if position.shape != (3,) or not np.isfinite(position).all():
            problem = f"position must be 3 finite numbers, got {position.tolist()}"
        elif not (np.isfinite(norm) and norm > 1e-9):
            problem = f"orientation must be a non-zero quaternion (w, x, y, z), got {wxyz.tolist()}"
        elif not 0.0 < fov < np.pi:
            problem = f"field of view must be in (0, pi) radians, got {fov}"
        else:
            positions.append(position)
            quaternions.append(wxyz / norm)
            fovs.append(fov)
            continue
        raise Page4DError(f"keyframe {number} is not a camera: {problem}")
    return np.stack(positions), np.stack(quaternions), np.asarray(fovs)


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
    camera: CameraPath = "view",
    keyframes: Sequence[ViewPose] = (),
    fps: float | None = None,
) -> Path:
    """Record the scene's clip from `client`'s current view, an orbit or keyframes, as an mp4.

    Playback is paused while recording; the frame and the playing state are restored after.

    Args:
        scene: the Viser scene showing `recon`.
        recon: the result shown.
        client: the browser that renders.
        path: output ``.mp4``.
        height: video height in pixels (even).
        width: video width in pixels (even).
        camera: "view" keeps the current view, "orbit" circles the scene (`scene_orbit`),
            "keyframes" flies along `keyframes` (`keyframe_path`).
        keyframes: the poses to fly through, for "keyframes".
        fps: mp4 frame rate; default the clip's (`clip_frame_rate`).

    Returns:
        The path written.
    """
    if camera not in CAMERA_PATHS:
        raise Page4DError(f"unknown camera path {camera!r}; pick one of {', '.join(CAMERA_PATHS)}")
    if scene.num_frames != recon.num_frames:
        raise Page4DError("the scene does not show this result (yet); try again")
    rate = clip_frame_rate(recon.timestamps()) if fps is None else float(fps)
    render = client_render(client, height, width)
    poses: list[ViewPose] | None = None
    if camera == "keyframes":  # before the wait: a bad keyframe fails at once
        poses = keyframe_path(keyframes, recon.num_frames)
    scene.wait_until_sent(timeout=60.0)
    if camera == "orbit":
        poses = scene_orbit(recon, recon.num_frames, client.camera.fov)
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
