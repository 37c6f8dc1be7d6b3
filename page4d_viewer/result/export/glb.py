"""GLB export: one coloured point cloud per frame, camera frusta and point tracks as lines."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.cameras import VARIANT_COLORS
from page4d_viewer.result.export.common import (
    atomic_write,
    binary_export,
    frusta_path,
    frustum_segments,
    prepare_output,
    rgba,
    scene_extent,
    selected_frames,
)
from page4d_viewer.result.points import confidence_threshold, frame_points
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import lift, moving_tracks, require_tracks, track_colors
from page4d_viewer.settings import DEFAULT_CONF_PERCENTILE, DEFAULT_MASK_THRESHOLD

if TYPE_CHECKING:
    import trimesh
    from trimesh.path.path import Path3D

logger = logging.getLogger(__name__)

# The frustum depth as a fraction of the scene's robust extent: visible, never dominant.
_FRUSTUM_FRACTION = 0.05


def export_glb(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    frames: Sequence[int] | None = None,
    conf_percentile: float = DEFAULT_CONF_PERCENTILE,
    variants: Sequence[str] | None = None,
    max_points_per_frame: int | None = None,
    tracks: bool = True,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
) -> Path:
    """A GLB scene: one coloured point cloud per chosen frame, camera frusta and tracks as lines.

    Args:
        recon: the reconstruction.
        path: output ``.glb`` file.
        frames: 0-based frame positions (default all).
        conf_percentile: drop points below this percentile of clip-wide confidence,
            snapped to steps of `result.points.CONFIDENCE_STEP` (the scene's filter,
            `result.points`; default as in the scene).
        variants: camera variants to draw (default every variant present).
        max_points_per_frame: randomly keep at most this many points per frame (fixed seed).
        tracks: when the result has point tracks, draw them as the ``tracks`` lines (see
            `tracks_path`).
        mask_threshold: dynamic probability at which a track counts as moving (its colour).

    Returns:
        The path written.
    """
    import trimesh  # heavy; only exports need it

    frames = selected_frames(frames, recon.num_frames)
    variants = list(recon.variants if variants is None else variants)
    threshold = confidence_threshold(recon.points_conf, conf_percentile)
    scene = trimesh.Scene()
    all_points = _add_point_clouds(scene, recon, frames, threshold, max_points_per_frame)
    size = _FRUSTUM_FRACTION * scene_extent(
        np.concatenate(all_points) if all_points else np.zeros((0, 3))
    )
    for variant in variants:
        cameras = recon.camera_variant(variant)
        if variant != recon.alignment_reference and recon.alignment_reference in recon.cameras:
            # Other variants live in their own world/scale: show them on the reference's path.
            cameras = recon.aligned_cameras(variant)
        vertices, edges = frustum_segments(cameras.select(frames), recon.image_hw, size)
        scene.add_geometry(
            frusta_path(vertices, edges, VARIANT_COLORS.get(variant, (200, 200, 200))),
            node_name=f"cameras_{variant}",
            geom_name=f"cameras_{variant}",
        )
    if tracks and recon.tracks is not None:
        lines = tracks_path(recon, frames, mask_threshold)
        if lines is not None:
            scene.add_geometry(lines, node_name="tracks", geom_name="tracks")
    path = prepare_output(path, ".glb")
    atomic_write(path, binary_export(scene.export(file_type="glb")))
    logger.info("wrote %s (%d frames, variants %s)", path, len(frames), ", ".join(variants))
    return path


def _add_point_clouds(
    scene: trimesh.Scene,
    recon: Reconstruction,
    frames: list[int],
    threshold: float,
    max_points_per_frame: int | None,
) -> list[np.ndarray]:
    """Add one ``points_frame_NNNN`` cloud per non-empty frame; returns their (N, 3) points."""
    # Optional: only exports need trimesh, which is slow to import.
    import trimesh

    rng = np.random.default_rng(0)
    all_points = []
    for frame in frames:
        cloud = frame_points(recon, frame, threshold=threshold)
        points, colors = cloud.points, cloud.colors
        if max_points_per_frame is not None and len(points) > max_points_per_frame:
            keep = np.sort(rng.choice(len(points), max_points_per_frame, replace=False))
            points, colors = points[keep], colors[keep]
        if len(points) == 0:
            continue
        all_points.append(points)
        name = f"points_frame_{frame:04d}"
        scene.add_geometry(
            trimesh.PointCloud(points, colors=rgba(colors)), node_name=name, geom_name=name
        )
    return all_points


def tracks_path(
    recon: Reconstruction, frames: Sequence[int], threshold: float = DEFAULT_MASK_THRESHOLD
) -> Path3D | None:
    """The tracks' 3-D paths over ``frames`` as one polyline per unbroken stretch of a track.

    A segment joins a track's lifted points (`lift`, "points" source, as the clouds) on two
    consecutive chosen frames when both are finite and visible (`Tracks.visible`); where a
    point is missing or hidden the track's line breaks. Each track has its `track_colors`
    colour (warm moving, cool static, `moving_tracks` at ``threshold``).

    Args:
        recon: a reconstruction with tracks (S frames, N tracks).
        frames: F chosen 0-based frame positions, in order.
        threshold: dynamic probability at which a track counts as moving.

    Returns:
        The lines, or None when no track has a segment.
    """
    # Optional: only exports need trimesh, which is slow to import.
    import trimesh
    from trimesh.path.entities import Line

    frames = list(frames)
    positions = lift(recon)[frames]  # (F, N, 3)
    usable = require_tracks(recon).visible()[frames] & np.isfinite(positions).all(axis=-1)
    joined = usable[:-1] & usable[1:]  # (F-1, N): segment k joins chosen frames k and k+1
    colors = rgba(track_colors(moving_tracks(recon, threshold)))
    vertices: list[np.ndarray] = []
    entities: list[Line] = []
    entity_colors: list[np.ndarray] = []
    used = 0
    for track in np.flatnonzero(joined.any(axis=0)):
        # starts and ends of the runs of joined segments, from the steps of a 0/1 signal
        steps = np.diff(np.concatenate([[0], joined[:, track].astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)
        for start, stop in zip(starts, stops, strict=True):
            run = positions[start : stop + 1, track]  # segments start..stop-1: frames ..stop
            vertices.append(run)
            entities.append(Line(np.arange(used, used + len(run))))
            entity_colors.append(colors[track])
            used += len(run)
    if not entities:
        return None
    return trimesh.path.Path3D(
        entities=entities,
        vertices=np.concatenate(vertices),
        colors=np.stack(entity_colors),
        process=False,
    )
