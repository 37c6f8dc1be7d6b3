"""Exports of a Reconstruction: GLB scene, PLY point clouds, TUM trajectories, mask-overlay mp4.

Every exporter reads only the Reconstruction, writes where it is told (never into the
working directory by default) and returns the path(s) it wrote.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.mask import overlay_image
from page4d_viewer.result.points import confidence_threshold, frame_points
from page4d_viewer.result.reconstruction import (
    GROUND_TRUTH,
    MASKED,
    UNMASKED,
    Cameras,
    Reconstruction,
)
from page4d_viewer.settings import (
    DEFAULT_COLORMAP,
    DEFAULT_CONF_PERCENTILE,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_THRESHOLD,
)

if TYPE_CHECKING:
    import trimesh

logger = logging.getLogger(__name__)

VARIANT_COLORS: dict[str, tuple[int, int, int]] = {
    MASKED: (230, 80, 40),
    UNMASKED: (40, 120, 230),
    GROUND_TRUTH: (40, 180, 80),
}
"""RGB colour of each camera variant's frusta, shared with the viewer for consistency."""

# The frustum depth as a fraction of the scene's robust extent: visible, never dominant.
_FRUSTUM_FRACTION = 0.05


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
) -> tuple[np.ndarray, np.ndarray]:
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
    edges = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
    return vertices, edges


def scene_extent(points: np.ndarray) -> float:
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
        conf_percentile: drop points below this percentile of clip-wide confidence (the
            scene's filter, `result.points`; default as in the scene).
        variants: camera variants to draw (default every variant present).
        max_points_per_frame: randomly keep at most this many points per frame (fixed seed).

    Returns:
        The path written.
    """
    import trimesh  # heavy; only exports need it

    frames = list(range(recon.num_frames)) if frames is None else list(frames)
    variants = list(recon.variants if variants is None else variants)
    threshold = confidence_threshold(recon.points_conf, conf_percentile)
    rng = np.random.default_rng(0)
    scene = trimesh.Scene()
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
            trimesh.PointCloud(points, colors=_rgba(colors)), node_name=name, geom_name=name
        )
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
            _frusta_path(vertices, edges, VARIANT_COLORS.get(variant, (200, 200, 200))),
            node_name=f"cameras_{variant}",
            geom_name=f"cameras_{variant}",
        )
    path = _prepare(path, ".glb")
    _atomic_write(path, scene.export(file_type="glb"))
    logger.info("wrote %s (%d frames, variants %s)", path, len(frames), ", ".join(variants))
    return path


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
        conf_percentile: drop points below this percentile of clip-wide confidence (the
            scene's filter, `result.points`; default as in the scene).

    Returns:
        The paths written, in frame order.
    """
    import trimesh

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise Page4DError(f"PLY output must be a folder, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    frames = list(range(recon.num_frames)) if frames is None else list(frames)
    threshold = confidence_threshold(recon.points_conf, conf_percentile)
    written = []
    for frame in frames:
        cloud = frame_points(recon, frame, threshold=threshold)
        data = trimesh.PointCloud(cloud.points, colors=_rgba(cloud.colors)).export(file_type="ply")
        path = directory / f"frame_{frame:04d}.ply"
        _atomic_write(path, data)
        written.append(path)
    logger.info("wrote %d PLY files to %s", len(written), directory)
    return written


def tum_lines(cameras: Cameras, timestamps: np.ndarray) -> list[str]:
    """TUM trajectory lines ``timestamp tx ty tz qx qy qz qw`` (camera-to-world poses).

    Args:
        cameras: S cameras.
        timestamps: (S,) seconds.

    Returns:
        S lines without newlines.
    """
    T_world_cam = cameras.T_world_cam
    quaternions = geometry.rotation_to_quaternion(T_world_cam[:, :, :3])
    return [
        " ".join([f"{time:.6f}"] + [f"{value:.9f}" for value in (*position, *quaternion)])
        for time, position, quaternion in zip(
            timestamps, T_world_cam[:, :, 3], quaternions, strict=True
        )
    ]


def export_tum(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    variant: str | None = None,
) -> list[Path]:
    """Camera trajectories in the TUM RGB-D text format (camera-to-world, seconds).

    Args:
        recon: the reconstruction.
        path: output file. With ``variant`` given it is written as is; otherwise one file per
            variant present, named ``<stem>_<variant><suffix>`` beside it.
        variant: a single variant to write, or None for all.

    Returns:
        The paths written.
    """
    path = Path(path)
    variants = recon.variants if variant is None else (variant,)
    timestamps = recon.timestamps()
    written = []
    for name in variants:
        lines = tum_lines(recon.camera_variant(name), timestamps)
        target = path if variant is not None else path.with_name(f"{path.stem}_{name}{path.suffix}")
        if target.is_dir():
            raise Page4DError(f"trajectory output {target} is a folder, expected a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        header = f"# page4d_viewer {name} cameras: timestamp tx ty tz qx qy qz qw\n"
        _atomic_write(target, (header + "\n".join(lines) + "\n").encode())
        written.append(target)
    logger.info("wrote trajectories %s", ", ".join(str(p) for p in written))
    return written


def read_tum(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a TUM trajectory file (``#`` comments and blank lines skipped).

    Args:
        path: text file of ``timestamp tx ty tz qx qy qz qw`` lines.

    Returns:
        timestamps: (N,) seconds.
        T_world_cam: (N, 3, 4) camera-to-world poses.

    Raises:
        Page4DError: missing file or a malformed line (named by number).
    """
    path = Path(path)
    if not path.is_file():
        raise Page4DError(f"no trajectory file at {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            values = [float(value) for value in line.replace(",", " ").split()]
        except ValueError:
            values = []
        if len(values) != 8:
            raise Page4DError(f"{path} line {number} is not 'timestamp tx ty tz qx qy qz qw'")
        rows.append(values)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    rotation = geometry.quaternion_to_rotation(table[:, 4:8])
    return table[:, 0], np.concatenate([rotation, table[:, 1:4, None]], axis=-1)


def mp4_frame(
    recon: Reconstruction,
    frame: int,
    opacity: float = DEFAULT_MASK_OPACITY,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    colormap: str = DEFAULT_COLORMAP,
) -> np.ndarray:
    """The picture `export_mp4` encodes for one frame: the viewer's mask overlay.

    Args:
        recon: the reconstruction.
        frame: 0-based frame position.
        opacity: heat-map opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn.
        colormap: matplotlib colormap name for the heat map.

    Returns:
        (H, W, 3) uint8 frame (the plain frame when the result has no mask).
    """
    mask = None if recon.mask_score is None else recon.mask_score[frame]
    return overlay_image(recon.images[frame], mask, opacity, threshold, colormap)


def export_mp4(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    frames: Sequence[int] | None = None,
    fps: float | None = None,
    opacity: float = DEFAULT_MASK_OPACITY,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    colormap: str = DEFAULT_COLORMAP,
) -> Path:
    """An H.264 mp4 of the model-input frames with the dynamic mask overlaid as a heat map.

    Without a mask score the plain frames are written (and a warning logged).

    Args:
        recon: the reconstruction.
        path: output ``.mp4`` file.
        frames: 0-based frame positions (default all).
        fps: frames per second; default from the timestamps (10 if unknown).
        opacity: heat-map opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn.
        colormap: matplotlib colormap name for the heat map.

    Returns:
        The path written.
    """
    import av

    frames = list(range(recon.num_frames)) if frames is None else list(frames)
    rate = _frame_rate(recon.timestamps()[frames]) if fps is None else fps
    if not rate > 0:
        raise Page4DError(f"fps must be positive, got {fps}")
    if not recon.has_mask:
        logger.warning("this result has no dynamic mask; the mp4 shows the plain frames")
    # Check the settings on one pixel before creating any file.
    overlay_image(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1)), opacity, threshold, colormap)
    height, width = recon.image_hw
    path = _prepare(path, ".mp4")
    temporary = path.with_name(f".{path.name}.tmp.mp4")
    try:
        with av.open(str(temporary), mode="w") as container:
            stream = container.add_stream("libx264", rate=_rational(rate))
            # yuv420p needs even sizes; odd inputs get one edge pixel of padding.
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "20"}
            for frame in frames:
                # One frame at a time keeps memory flat for long clips.
                image = mp4_frame(recon, frame, opacity, threshold, colormap)
                image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                video_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    logger.info("wrote %s (%d frames at %.3g fps)", path, len(frames), rate)
    return path


def _frame_rate(timestamps: np.ndarray) -> float:
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return 10.0
    return float(np.clip(1.0 / np.median(steps), 1.0, 120.0))


def _rational(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1001)


def _rgba(colors: np.ndarray) -> np.ndarray:
    alpha = np.full((len(colors), 1), 255, dtype=np.uint8)
    return np.concatenate([colors.astype(np.uint8), alpha], axis=1)


def _frusta_path(
    vertices: np.ndarray, edges: np.ndarray, color: tuple[int, int, int]
) -> trimesh.path.Path3D:
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


def _prepare(path: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise Page4DError(f"output {path.name!r} should end in {suffix}")
    if path.is_dir():
        raise Page4DError(f"output {path} is a folder, expected a {suffix} file")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
