"""PLY export: one binary point cloud with RGB colours per frame, filtered like the scene."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.common import (
    atomic_write,
    binary_export,
    rgba,
    selected_frames,
)
from page4d_viewer.result.points import confidence_threshold, frame_points
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import DEFAULT_CONF_PERCENTILE

logger = logging.getLogger(__name__)


def export_ply(
    recon: Reconstruction,
    directory: str | os.PathLike[str],
    *,
    frames: Sequence[int] | None = None,
    conf_percentile: float = DEFAULT_CONF_PERCENTILE,
) -> list[Path]:
    """One binary PLY point cloud (with RGB colours) per chosen frame.

    Files are named ``frame_0000.ply`` by frame position.

    Args:
        recon: the reconstruction.
        directory: output folder (created if needed).
        frames: 0-based frame positions (default all).
        conf_percentile: drop points below this percentile of clip-wide confidence,
            snapped to steps of `result.points.CONFIDENCE_STEP` (the scene's filter,
            `result.points`; default as in the scene).

    Returns:
        The paths written, in frame order.
    """
    # Optional: only exports need trimesh, which is slow to import.
    import trimesh

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise Page4DError(f"PLY output must be a folder, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    frames = selected_frames(frames, recon.num_frames)
    threshold = confidence_threshold(recon.points_conf, conf_percentile)
    written = []
    for frame in frames:
        cloud = frame_points(recon, frame, threshold=threshold)
        data = trimesh.PointCloud(cloud.points, colors=rgba(cloud.colors)).export(file_type="ply")
        path = directory / f"frame_{frame:04d}.ply"
        atomic_write(path, binary_export(data))
        written.append(path)
    logger.info("wrote %d PLY files to %s", len(written), directory)
    return written
