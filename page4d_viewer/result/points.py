"""The one per-frame point filter: which points of a frame the scene shows and the exports write.

The scene and the GLB/PLY exporters both call `frame_points` with a threshold from
`confidence_threshold`, so what you export is what you saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.result.mask import DisplayError

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

PointSource = Literal["points", "depth_masked", "depth_unmasked"]
POINT_SOURCES: tuple[str, ...] = ("points", "depth_masked", "depth_unmasked")
"""Where a frame's points come from: the point head, or depth unprojected with one variant."""


@dataclass
class FrameCloud:
    """The coloured points of one frame after the confidence filter.

    Attributes:
        points: (N, 3) float32 world points (first camera's frame).
        colors: (N, 3) uint8 RGB.
        pixel_index: (N,) int64 flat index ``row * W + column`` of each point's pixel.
    """

    points: npt.NDArray[np.float32]
    colors: npt.NDArray[np.uint8]
    pixel_index: npt.NDArray[np.int64]


CONFIDENCE_STEP = 25.0
"""The confidence percentile moves in steps of this many percent: the scene sorts each frame's
points into quantile bins of the clip's confidence, so a new percentile only toggles bins."""
CONFIDENCE_BINS = int(100 / CONFIDENCE_STEP)


def snap_percentile(percentile: float) -> float:
    """The percentile really applied: `percentile` rounded to the nearest CONFIDENCE_STEP
    (halves round up), at most 100 - CONFIDENCE_STEP.

    Raises:
        DisplayError: percentile outside [0, 100).
    """
    check_percentile(percentile)
    steps = np.floor(float(percentile) / CONFIDENCE_STEP + 0.5)
    return float(min(steps, CONFIDENCE_BINS - 1) * CONFIDENCE_STEP)


def percentile_bin(percentile: float) -> int:
    """First confidence bin kept at a percentile (snapped): bins below it are dropped."""
    return round(snap_percentile(percentile) / CONFIDENCE_STEP)


def confidence_edges(
    confidence: npt.ArrayLike, max_samples: int = 250_000
) -> npt.NDArray[np.float32]:
    """The clip's confidence at each step's percentile: the edges of the confidence bins.

    One set of edges for the clip (not per frame), so a frame with poor confidence everywhere
    really shows fewer points. Large clips are estimated on an evenly strided sample.

    Args:
        confidence: (...) confidences (any shape, e.g. (S, H, W)).
        max_samples: largest number of values the percentiles are computed on.

    Returns:
        (CONFIDENCE_BINS - 1,) float32 ascending; edge k - 1 is the cut of percentile
        k * CONFIDENCE_STEP. All -inf when there is no finite confidence.
    """
    flat = np.asarray(confidence).reshape(-1)
    stride = max(1, flat.size // max_samples)
    sample = flat[::stride].astype(np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.full(CONFIDENCE_BINS - 1, -np.inf, dtype=np.float32)
    steps = CONFIDENCE_STEP * np.arange(1, CONFIDENCE_BINS)
    # float32 like the confidences: `frame_points` compares float32 values with the cut, so
    # a float64 edge between two float32 values would split them differently here.
    return np.percentile(sample, steps).astype(np.float32)


def confidence_bins(confidence: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Confidence bin of each value: the number of edges at or below it.

    A point passes `frame_points(threshold=confidence_threshold(..., p))` exactly when its
    bin is >= `percentile_bin(p)`; NaN confidence falls in the top bin, but frame_points
    never keeps such points (NaN >= threshold is False) and neither does the scene.

    Args:
        confidence: (...) values.
        edges: (CONFIDENCE_BINS - 1,) from `confidence_edges`.

    Returns:
        (...) int64 in [0, CONFIDENCE_BINS).
    """
    return np.searchsorted(edges, confidence, side="right").astype(np.int64)


def confidence_threshold(
    confidence: npt.ArrayLike, percentile: float, max_samples: int = 250_000
) -> float:
    """The confidence below which points are dropped, at the snapped percentile over the clip.

    The percentile is snapped to CONFIDENCE_STEP (`snap_percentile`), as the scene applies it,
    and the cut is the matching `confidence_edges` value, so the exports keep exactly the
    points the scene shows.

    Args:
        confidence: (...) confidences (any shape, e.g. (S, H, W)).
        percentile: in [0, 100); 0 keeps everything.
        max_samples: largest number of values the percentile is computed on.

    Returns:
        The threshold; -inf when the snapped percentile is 0.
    """
    first_bin = percentile_bin(percentile)
    if first_bin == 0:
        return float("-inf")
    return edge_threshold(confidence_edges(confidence, max_samples), first_bin)


def edge_threshold(edges: npt.NDArray[np.float32], first_bin: int) -> float:
    """The confidence cut that keeps bins `first_bin` and above (-inf keeps every bin).

    Args:
        edges: (CONFIDENCE_BINS - 1,) the clip's `confidence_edges`.
        first_bin: the first bin kept, e.g. `percentile_bin(percentile)`.
    """
    return float("-inf") if first_bin == 0 else float(edges[first_bin - 1])


def check_percentile(percentile: float) -> None:
    """Raise DisplayError unless the confidence percentile lies in [0, 100)."""
    if not np.isfinite(percentile) or not 0.0 <= percentile < 100.0:
        raise DisplayError(f"confidence percentile must be in [0, 100), got {percentile}")


def source_confidence(recon: Reconstruction, source: str) -> npt.NDArray[np.float32]:
    """(S, H, W) confidence the filter reads: the point head's or the depth head's."""
    check_source(source)
    return recon.points_conf if source == "points" else recon.depth_conf


def source_variant(source: str) -> str | None:
    """Camera variant a depth source unprojects with ("masked"/"unmasked"), None for "points"."""
    check_source(source)
    return None if source == "points" else source.removeprefix("depth_")


def check_source(source: str) -> None:
    """Raise DisplayError for an unknown point source."""
    if source not in POINT_SOURCES:
        raise DisplayError(
            f"point source must be one of {', '.join(POINT_SOURCES)}, got {source!r}"
        )


def frame_points(
    recon: Reconstruction,
    frame: int,
    *,
    threshold: float,
    source: str = "points",
    rows: npt.ArrayLike | None = None,
    cols: npt.ArrayLike | None = None,
) -> FrameCloud:
    """The points of one frame that pass the filter, with their colours and pixels.

    A pixel is kept when its point is finite, its confidence is >= ``threshold`` and, for the
    depth sources, its depth is > 0 (no depth, no point).

    Args:
        recon: the reconstruction.
        frame: 0-based frame position.
        threshold: confidence cut, from `confidence_threshold` over `source_confidence`.
        source: one of POINT_SOURCES.
        rows: (H',) pixel rows to consider (a downsampling grid), or None for all.
        cols: (W',) pixel columns to consider, or None for all.

    Returns:
        The kept points in row-major pixel order of the grid.
    """
    variant = source_variant(source)
    if not 0 <= frame < recon.num_frames:
        raise DisplayError(f"frame {frame} is out of range (0..{recon.num_frames - 1})")
    height, width = recon.image_hw
    rows = np.arange(height) if rows is None else np.asarray(rows, dtype=np.int64)
    cols = np.arange(width) if cols is None else np.asarray(cols, dtype=np.int64)
    grid = np.ix_(rows, cols)
    confidence = source_confidence(recon, source)[frame][grid]
    if variant is None:
        positions = recon.points[frame][grid]
        valid = np.ones(confidence.shape, dtype=bool)
    else:
        cameras = recon.camera_variant(variant)
        depth = recon.depth[frame]
        positions = geometry.depth_to_world_points(
            depth, cameras.extrinsics[frame], cameras.intrinsics[frame]
        )[grid]
        valid = depth[grid] > 0
    keep = valid & (confidence >= threshold) & np.isfinite(positions).all(axis=-1)
    pixel_index = (rows[:, None] * width + cols[None, :])[keep]
    return FrameCloud(
        points=positions[keep].astype(np.float32),
        colors=recon.images[frame][grid][keep],
        pixel_index=pixel_index.astype(np.int64),
    )


def pixel_grid(
    height: int, width: int, stride: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Pixel rows and columns kept when downsampling by an integer stride.

    Args:
        height: H, pixels.
        width: W, pixels.
        stride: keep every `stride`-th pixel along each axis (>= 1).

    Returns:
        rows (H',) and cols (W',) int64 pixel coordinates.
    """
    if int(stride) < 1:
        raise DisplayError(f"downsampling stride must be at least 1, got {stride}")
    return np.arange(0, height, stride, dtype=np.int64), np.arange(0, width, stride, dtype=np.int64)


def auto_stride(num_frames: int, height: int, width: int, max_points: int) -> int:
    """Smallest downsampling stride that keeps the clip at or under `max_points` points."""
    total = num_frames * height * width
    stride = 1
    while total > max_points * stride * stride:
        stride += 1
    return stride


def point_footprint(stride: int, depth: float, focal: float) -> float:
    """Point size that covers about one kept pixel: ``1.5 * stride * depth / focal``.

    Args:
        stride: downsampling stride in pixels.
        depth: typical depth of the scene, scene units.
        focal: vertical focal length, pixels.

    Returns:
        Size in scene units (0.01 when the focal length is unusable).
    """
    if not np.isfinite(focal) or focal <= 0:
        return 0.01
    return float(1.5 * stride * depth / focal)
