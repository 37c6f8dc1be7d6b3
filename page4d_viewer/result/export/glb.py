"""GLB export: one coloured point cloud per frame plus camera frusta, as the scene shows them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.cameras import MASKED, VARIANT_COLORS
from page4d_viewer.result.export.common import (
    atomic_write,
    frusta_path,
    frustum_segments,
    prepare_output,
    rgba,
    scene_extent,
    selected_frames,
)
from page4d_viewer.result.points import confidence_threshold, frame_points
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import DEFAULT_CONF_PERCENTILE

if TYPE_CHECKING:
    import trimesh

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
) -> Path:
    """A GLB scene: one coloured point cloud per chosen frame plus camera frusta as lines.

    Args:
        recon: the reconstruction.
        path: output ``.glb`` file.
        frames: 0-based frame positions (default all).
        conf_percentile: drop points below this percentile of clip-wide confidence,
            snapped to steps of `result.points.CONFIDENCE_STEP` (the scene's filter,
            `result.points`; default as in the scene).
        variants: camera variants to draw (default every variant present).
        max_points_per_frame: randomly keep at most this many points per frame (fixed seed).

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
        if variant != MASKED and MASKED in recon.cameras:
            # Other variants live in their own world/scale; show them on the masked trajectory.
            cameras = recon.aligned_cameras(variant, MASKED)
        vertices, edges = frustum_segments(cameras.select(frames), recon.image_hw, size)
        scene.add_geometry(
            frusta_path(vertices, edges, VARIANT_COLORS.get(variant, (200, 200, 200))),
            node_name=f"cameras_{variant}",
            geom_name=f"cameras_{variant}",
        )
    path = prepare_output(path, ".glb")
    atomic_write(path, scene.export(file_type="glb"))
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
