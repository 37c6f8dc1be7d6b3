"""What the exporters share: the frame selection, camera frusta as lines, and atomic writes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.reconstruction import Cameras

if TYPE_CHECKING:
    # trimesh's package binds `path` in a try/except, so a checker sees a variable there.
    from trimesh.path.path import Path3D


def parse_frame_selection(text: str | None, num_frames: int) -> list[int]:
    """Frame positions from a user string such as ``"all"``, ``"0,3,5"`` or ``"2-6,9"``.

    Args:
        text: comma-separated 0-based positions and inclusive ranges ``a-b``; None or "all"
            selects every frame.
        num_frames: frames available.

    Returns:
        Sorted unique positions.

    Raises:
        Page4DError: unparsable text or positions outside ``0..num_frames-1``.
    """
    if text is None or text.strip().lower() in ("", "all"):
        return list(range(num_frames))
    chosen: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                first, last = (int(value) for value in part.split("-", 1))
                chosen.update(range(first, last + 1))
            else:
                chosen.add(int(part))
        except ValueError as error:
            raise Page4DError(
                f"cannot read frame selection {text!r}; use e.g. 'all', '0,3,5' or '2-6'"
            ) from error
    outside = sorted(frame for frame in chosen if not 0 <= frame < num_frames)
    if outside or not chosen:
        raise Page4DError(
            f"frame selection {text!r} is outside 0..{num_frames - 1} (the result has "
            f"{num_frames} frames)"
        )
    return sorted(chosen)


def frustum_segments(
    cameras: Cameras, image_hw: tuple[int, int], size: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """World-space wireframe of each camera: its centre and image-corner rays at depth ``size``.

    Args:
        cameras: S cameras.
        image_hw: (H, W) of the images the intrinsics describe.
        size: frustum depth along the optical axis, in scene units.

    Returns:
        vertices: (S, 5, 3) centre then corners (top-left, top-right, bottom-right, bottom-left).
        edges: (8, 2) vertex index pairs within one camera (4 rays + 4 image borders).
    """
    height, width = image_hw
    corners_uv = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    depth = np.full((cameras.num_frames, 4), float(size))
    corners_cam = geometry.unproject_pixels(corners_uv, depth, cameras.intrinsics)
    local = np.concatenate([np.zeros((cameras.num_frames, 1, 3)), corners_cam], axis=1)
    vertices = geometry.transform_points(cameras.T_world_cam, local)
    edges = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]], np.int64)
    return vertices.astype(np.float64, copy=False), edges


def scene_extent(points: npt.NDArray[np.floating]) -> float:
    """Robust size of a point set: the 2nd-98th percentile bounding-box diagonal.

    Args:
        points: (N, 3).

    Returns:
        Extent in scene units (1.0 for an empty or degenerate set).
    """
    if len(points) < 2:
        return 1.0
    low, high = np.percentile(points, [2, 98], axis=0)
    extent = float(np.linalg.norm(high - low))
    return extent if extent > 0 and np.isfinite(extent) else 1.0


def frusta_path(vertices: np.ndarray, edges: np.ndarray, color: tuple[int, int, int]) -> Path3D:
    # Optional: only exports need trimesh, which is slow to import.
    import trimesh
    from trimesh.path.entities import Line

    per_camera = vertices.shape[1]
    entities = [
        Line(edge + camera * per_camera) for camera in range(len(vertices)) for edge in edges
    ]
    colors = np.tile(np.array([*color, 255], dtype=np.uint8), (len(entities), 1))
    return trimesh.path.Path3D(
        entities=entities, vertices=vertices.reshape(-1, 3), colors=colors, process=False
    )


def rgba(colors: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """(N, 4) uint8 RGBA, opaque, of (N, 3) RGB colours."""
    colors = np.asarray(colors, dtype=np.uint8)
    alpha = np.full((len(colors), 1), 255, dtype=np.uint8)
    return np.concatenate([colors, alpha], axis=1)


def prepare_output(path: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise Page4DError(f"output {path.name!r} should end in {suffix}")
    if path.is_dir():
        raise Page4DError(f"output {path} is a folder, expected a {suffix} file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def binary_export(data: object) -> bytes:
    """trimesh's ``export`` result for a binary format (its annotation is the union over all
    formats: text, dicts, bytes); a Page4DError if trimesh gave anything else."""
    if not isinstance(data, bytes):
        raise Page4DError(f"trimesh exported {type(data).__name__}, expected bytes")
    return data


def selected_frames(frames: Sequence[int] | None, num_frames: int) -> list[int]:
    """The frame positions to export: ``frames`` as a list, or every frame when None."""
    return list(range(num_frames)) if frames is None else list(frames)
