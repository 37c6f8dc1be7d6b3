"""Offline share: a folder that plays the 4-D scene in a browser from static files.

The folder holds `recording.viser` (Viser's scene recording: every frame's points and the
camera frusta, sent once, then one visibility toggle per time step, so it loops) and
`index.html`, Viser's own prebuilt client (one self-contained file: scripts, styles and the
default environment map are inlined) with a line that points it at the recording. Serve it
with any static file server (``python -m http.server`` in the folder): no Python behind it,
and the page asks no other host for anything.

The points are the scene's: `result.points.frame_points` with the clip-wide confidence cut,
the same stride rule for the point budget (`result.points.auto_stride`), and the dynamic mask
drawn by `result.mask`, camera variants in `result.cameras` colours (ground truth aligned onto
the masked trajectory, as in the viewer).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.cameras import MASKED, VARIANT_COLORS, initial_view
from page4d_viewer.result.export.common import atomic_write, frustum_segments, scene_extent
from page4d_viewer.result.export.mp4 import clip_frame_rate
from page4d_viewer.result.mask import (
    blend_colors,
    check_overlay,
    check_overlay_mode,
    dynamic_probability,
    mask_scale,
    overlay_weight,
    patch_index,
)
from page4d_viewer.result.points import (
    auto_stride,
    confidence_threshold,
    frame_points,
    pixel_grid,
    point_footprint,
)
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import (
    DEFAULT_CONF_PERCENTILE,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
    MaskOverlay,
)

if TYPE_CHECKING:
    import viser

logger = logging.getLogger(__name__)

SHARE_MAX_POINTS = 400_000
"""Point budget of a share (all frames together): about 4 MB of recording per 400k points."""
RECORDING_NAME = "recording.viser"
INDEX_NAME = "index.html"
# The frustum depth as a fraction of the scene's robust extent (as in the GLB export).
_FRUSTUM_FRACTION = 0.05
# Runs before the client's own (deferred, module) script: without a ?playbackPath= the client
# would try to reach a live Viser server over a websocket.
_PLAYBACK_SCRIPT = (
    "<script>(function(){var q=new URLSearchParams(window.location.search);"
    f'if(!q.has("playbackPath")){{q.set("playbackPath","{RECORDING_NAME}");'
    'history.replaceState(null,"","?"+q.toString()+window.location.hash);}})();</script>'
)


def export_share(
    recon: Reconstruction,
    folder: str | os.PathLike[str],
    *,
    conf_percentile: float = DEFAULT_CONF_PERCENTILE,
    max_points: int = SHARE_MAX_POINTS,
    fps: float | None = None,
    opacity: float = DEFAULT_MASK_OPACITY,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> Path:
    """Write a folder that plays the scene in a browser as static files (see the module doc).

    Args:
        recon: the reconstruction.
        folder: output folder; created, or an existing empty folder, or a previous share.
        conf_percentile: drop the least confident percent of points (the scene's filter).
        max_points: point budget for the whole clip; sets the pixel stride as the viewer does.
        fps: playback frame rate; default from the clip's timestamps (10 if unknown).
        opacity: mask heat-map opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn.
        overlay: "continuous" (every point tinted) or "threshold" (settings.MASK_OVERLAYS).

    Returns:
        The folder written.
    """
    check_overlay(opacity, threshold)
    check_overlay_mode(overlay)
    if max_points < 1:
        raise Page4DError(f"the share's point budget must be at least 1, got {max_points}")
    rate = clip_frame_rate(recon.timestamps()) if fps is None else float(fps)
    if not rate > 0:
        raise Page4DError(f"fps must be positive, got {fps}")
    folder = _prepare_folder(Path(folder))
    recording = record_scene(
        recon,
        conf_percentile=conf_percentile,
        max_points=max_points,
        fps=rate,
        opacity=opacity,
        threshold=threshold,
        overlay=overlay,
    )
    atomic_write(folder / RECORDING_NAME, recording)
    atomic_write(folder / INDEX_NAME, share_index_html().encode("utf-8"))
    logger.info("wrote %s (%d frames at %.3g fps)", folder, recon.num_frames, rate)
    return folder


def share_index_html() -> str:
    """Viser's prebuilt client page, made to play `recording.viser` from its own folder."""
    # Optional: only the shared web folder needs Viser; the result stage loads no UI library.
    import viser

    client = Path(viser.__file__).parent / "client" / "build" / "index.html"
    if not client.is_file():
        raise Page4DError(f"this viser install has no prebuilt client ({client} is missing)")
    page = client.read_text(encoding="utf-8")
    head = page.find("<head>")
    if head < 0:
        raise Page4DError(f"viser's client page {client} has no <head>")
    head += len("<head>")
    return page[:head] + _PLAYBACK_SCRIPT + page[head:]


def record_scene(
    recon: Reconstruction,
    *,
    conf_percentile: float,
    max_points: int,
    fps: float,
    opacity: float,
    threshold: float,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> bytes:
    """The `.viser` recording of the clip: all nodes at time 0, then one frame per 1/fps s.

    Built in a Viser server of its own on an ephemeral 127.0.0.1 port that no client joins;
    the server is stopped before this returns.
    """
    # Optional: only the shared web folder needs Viser; the result stage loads no UI library.
    import viser

    # Viser prints its address and "Server stopped" to stdout whatever `verbose` says; an
    # export writes only its own lines there.
    with contextlib.redirect_stdout(io.StringIO()):
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
        try:
            server.scene.set_up_direction("-y")  # OpenCV world: y points down
            frames, extent = _add_points(
                server, recon, conf_percentile, max_points, opacity, threshold, overlay
            )
            _add_cameras(server, recon, _FRUSTUM_FRACTION * extent)
            _set_initial_view(server, recon)
            return _record_playback(server, frames, fps)
        finally:
            server.stop()


def _record_playback(
    server: viser.ViserServer, frames: list[viser.PointCloudHandle], fps: float
) -> bytes:
    """The recording of the scene as it stands, then one visibility toggle per frame."""
    serializer = server.get_scene_serializer()
    for index in range(1, len(frames)):
        serializer.insert_sleep(1.0 / fps)
        with server.atomic():
            frames[index - 1].visible = False
            frames[index].visible = True
    serializer.insert_sleep(1.0 / fps)
    return serializer.serialize()


def share_point_colors(
    recon: Reconstruction,
    frame: int,
    colors: npt.NDArray[np.uint8],
    pixel_index: npt.NDArray[np.int64],
    opacity: float,
    threshold: float,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> npt.NDArray[np.uint8]:
    """Point colours with the dynamic mask blended in, as the scene's overlay draws them
    (the heat map on the clip's scale, `mask_scale`).

    Args:
        recon: the reconstruction.
        frame: 0-based frame position.
        colors: (N, 3) uint8 image colours of the frame's points.
        pixel_index: (N,) flat pixel index ``row * W + column`` of each point.
        opacity: heat-map opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn.
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).

    Returns:
        (N, 3) uint8 colours (the image colours when the result has no mask).
    """
    if recon.mask_score is None:
        return colors
    height, width = recon.image_hw
    probability_grid = dynamic_probability(recon.mask_score[frame])
    grid_h, grid_w = probability_grid.shape
    rows = patch_index(pixel_index // width, height, grid_h)
    cols = patch_index(pixel_index % width, width, grid_w)
    probability = probability_grid[rows, cols]
    weight = overlay_weight(probability, opacity, threshold, overlay)
    return blend_colors(colors, probability, weight, top=mask_scale(recon.mask_score))


def _add_points(
    server: viser.ViserServer,
    recon: Reconstruction,
    conf_percentile: float,
    max_points: int,
    opacity: float,
    threshold: float,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> tuple[list[viser.PointCloudHandle], float]:
    """One point cloud per frame (only the first visible); returns them and the scene extent."""
    height, width = recon.image_hw
    stride = auto_stride(recon.num_frames, height, width, max_points)
    rows, cols = pixel_grid(height, width, stride)
    cut = confidence_threshold(recon.points_conf, conf_percentile)
    clouds = [
        frame_points(recon, index, threshold=cut, rows=rows, cols=cols)
        for index in range(recon.num_frames)
    ]
    extent = scene_extent(np.concatenate([cloud.points for cloud in clouds])[::16])
    size = _point_size(recon, stride)
    handles = []
    for index, cloud in enumerate(clouds):
        colors = share_point_colors(
            recon, index, cloud.colors, cloud.pixel_index, opacity, threshold, overlay
        )
        handles.append(
            server.scene.add_point_cloud(
                f"/frames/t{index:04d}",
                points=cloud.points,
                colors=colors,
                point_size=size,
                point_shape="rounded",
                point_shading="flat",
                visible=index == 0,
            )
        )
    return handles, extent


def _point_size(recon: Reconstruction, stride: int) -> float:
    """About the footprint of one kept pixel at the clip's median depth (scene units)."""
    focal = float(np.median(recon.camera_variant(MASKED).intrinsics[:, 1, 1]))
    return point_footprint(stride, _scene_depth(recon), focal)


def _add_cameras(server: viser.ViserServer, recon: Reconstruction, size: float) -> None:
    """Each variant's trajectory and wireframe frusta, in its colour (static for the clip)."""
    for variant in recon.variants:
        cameras = recon.camera_variant(variant)
        if variant != recon.alignment_reference and recon.alignment_reference in recon.cameras:
            # Other variants live in their own world/scale: show them on the reference's path.
            cameras = recon.aligned_cameras(variant)
        vertices, edges = frustum_segments(cameras, recon.image_hw, size)
        usable = np.isfinite(vertices).all(axis=(1, 2))
        segments = vertices[usable][:, edges].reshape(-1, 2, 3)
        centres = vertices[usable, 0]
        path = np.stack([centres[:-1], centres[1:]], axis=1)
        color = VARIANT_COLORS.get(variant, (200, 200, 200))
        for name, points, thickness in (("frusta", segments, 1.5), ("trajectory", path, 2.0)):
            if len(points):
                server.scene.add_line_segments(
                    f"/cameras/{variant}/{name}",
                    points=points.astype(np.float32),
                    colors=color,
                    thickness=thickness,
                    thickness_units="screen",
                )


def _set_initial_view(server: viser.ViserServer, recon: Reconstruction) -> None:
    """Start where the viewer starts: behind and above the first camera (recorded)."""
    position, look_at, up = initial_view(
        recon.camera_variant(MASKED).extrinsics[0], _scene_depth(recon)
    )
    server.initial_camera.position = position
    server.initial_camera.look_at = look_at
    server.initial_camera.up = up


def _scene_depth(recon: Reconstruction) -> float:
    """Median depth of the clip (subsampled), scene units; 1.0 without any valid depth."""
    depth = recon.depth[:, ::8, ::8]
    depth = depth[np.isfinite(depth) & (depth > 0)]
    return float(np.median(depth)) if depth.size else 1.0


def _prepare_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise Page4DError(f"share output {folder} is a file, expected a folder")
    if folder.is_dir():
        unexpected = [
            p.name for p in folder.iterdir() if p.name not in (RECORDING_NAME, INDEX_NAME)
        ]
        if unexpected:
            raise Page4DError(
                f"share folder {folder} is not empty (it holds {', '.join(sorted(unexpected))});"
                " give a new or empty folder"
            )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
