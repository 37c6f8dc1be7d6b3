"""The point probe: from a click in the scene to a pixel, from a pixel to its 3-D point.

Pure functions of a Reconstruction (no Gradio, no Viser). A click in the scene is a ray; the
probed point is the shown point nearest to that ray (perpendicular distance, in front of the
ray's origin), among the frames on screen and after the scene's own point filter
(`result.points.frame_points`), so one can only pick what one sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.mask import DisplayError, dynamic_probability, patch_index
from page4d_viewer.result.points import frame_points
from page4d_viewer.viewer import inside_views

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction


@dataclass(frozen=True)
class Pixel:
    """One pixel of one frame (model-input pixels, 0-based)."""

    frame: int
    row: int
    col: int


@dataclass(frozen=True)
class ProbedPoint:
    """Everything the panel shows about a probed pixel.

    Attributes:
        pixel: the frame and pixel.
        position: (3,) world point shown for it (the scene's point source).
        depth: depth along the optical axis, scene units.
        depth_conf: the depth head's confidence.
        points_conf: the point head's confidence.
        probability: dynamic probability of its patch, or None without a mask.
        attention: attention its patch received from the selected query frame and layer,
            or None without attention (or no selection).
    """

    pixel: Pixel
    position: np.ndarray
    depth: float
    depth_conf: float
    points_conf: float
    probability: float | None
    attention: float | None


def nearest_to_ray(points: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> int | None:
    """Index of the point nearest to a ray (perpendicular distance), among points in front.

    Args:
        points: (N, 3) world points.
        origin: (3,) ray origin.
        direction: (3,) ray direction (any non-zero length).

    Returns:
        The index into `points`, or None when no point lies in front of the origin.

    Raises:
        DisplayError: bad shapes or a zero direction.
    """
    points = np.asarray(points, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    direction = np.asarray(direction, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or origin.shape != (3,) or direction.shape != (3,):
        raise DisplayError(
            f"points must be (N, 3), origin and direction (3,), got {points.shape}, "
            f"{origin.shape}, {direction.shape}"
        )
    length = float(np.linalg.norm(direction))
    if not np.isfinite(length) or length == 0.0:
        raise DisplayError("the click ray has no direction")
    direction = direction / length
    offsets = points - origin
    along = offsets @ direction
    in_front = np.flatnonzero(along > 0)
    if in_front.size == 0:
        return None
    across = np.linalg.norm(offsets[in_front] - along[in_front, None] * direction, axis=1)
    return int(in_front[np.argmin(across)])


def pick_pixel(
    recon: Reconstruction,
    frames: Iterable[int],
    origin: np.ndarray,
    direction: np.ndarray,
    *,
    threshold: float = float("-inf"),
    source: str = "points",
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> Pixel | None:
    """The pixel whose shown point is nearest to a click ray.

    Args:
        recon: the result shown.
        frames: frames on screen.
        origin: (3,) ray origin in world coordinates.
        direction: (3,) ray direction.
        threshold, source, rows, cols: the scene's point filter (see `frame_points`).

    Returns:
        The pixel, or None when no shown point lies in front of the ray.
    """
    clouds = [
        (int(frame), frame_points(
            recon, int(frame), threshold=threshold, source=source, rows=rows, cols=cols
        ))
        for frame in frames
    ]  # fmt: skip
    clouds = [(frame, cloud) for frame, cloud in clouds if len(cloud.points)]
    if not clouds:
        return None
    points = np.concatenate([cloud.points for _, cloud in clouds])
    found = nearest_to_ray(points, origin, direction)
    if found is None:
        return None
    counts = np.cumsum([len(cloud.points) for _, cloud in clouds])
    which = int(np.searchsorted(counts, found, side="right"))
    frame, cloud = clouds[which]
    flat = int(cloud.pixel_index[found - (counts[which - 1] if which else 0)])
    width = recon.image_hw[1]
    return Pixel(frame, flat // width, flat % width)


def pixel_from_image_click(
    x: float, y: float, image_hw: tuple[int, int], shown_hw: tuple[int, int] | None = None
) -> tuple[int, int]:
    """(row, col) of the model-input pixel under a click on a picture of the frame.

    Args:
        x, y: click position in the picture's pixels (Gradio's select event `index`).
        image_hw: (H, W) of the model input.
        shown_hw: (h, w) of the picture clicked; None when it is the model input's size.
    """
    height, width = image_hw
    shown_h, shown_w = shown_hw or image_hw
    row = int(np.clip(np.floor(float(y) * height / shown_h), 0, height - 1))
    col = int(np.clip(np.floor(float(x) * width / shown_w), 0, width - 1))
    return row, col


def probe(
    recon: Reconstruction,
    pixel: Pixel,
    source: str = "points",
    choice: inside_views.AttentionChoice | None = None,
) -> ProbedPoint:
    """What the result says about one pixel.

    Args:
        recon: the result.
        pixel: the frame and pixel.
        source: the scene's point source: where the 3-D point comes from.
        choice: the attention selection whose value at this pixel is reported, or None.

    Raises:
        DisplayError: a pixel outside the result.
    """
    height, width = recon.image_hw
    frame, row, col = pixel.frame, pixel.row, pixel.col
    if not (0 <= frame < recon.num_frames and 0 <= row < height and 0 <= col < width):
        raise DisplayError(f"pixel {pixel} lies outside the result's {recon.num_frames} frames")
    position = frame_points(
        recon, frame, threshold=float("-inf"), source=source, rows=[row], cols=[col]
    ).points
    probability = None
    if recon.mask_score is not None:
        grid_h, grid_w = recon.mask_score.shape[1:]
        score = recon.mask_score[frame, patch_index(row, height, grid_h)]
        probability = float(dynamic_probability(score[patch_index(col, width, grid_w)]))
    attention = None
    if choice is not None and inside_views.has_attention(recon):
        attention = inside_views.attention_at_pixel(recon, choice, frame, row, col)
    return ProbedPoint(
        pixel=pixel,
        position=position[0] if len(position) else np.full(3, np.nan, np.float32),
        depth=float(recon.depth[frame, row, col]),
        depth_conf=float(recon.depth_conf[frame, row, col]),
        points_conf=float(recon.points_conf[frame, row, col]),
        probability=probability,
        attention=attention,
    )


def describe(probed: ProbedPoint, choice: inside_views.AttentionChoice | None = None) -> str:
    """The probe as a few lines of Markdown."""
    pixel = probed.pixel
    x, y, z = (float(v) for v in probed.position)
    lines = [
        f"**Frame {pixel.frame}, pixel (x {pixel.col}, y {pixel.row})**",
        f"- point ({x:.3f}, {y:.3f}, {z:.3f}), depth {probed.depth:.3f}",
        f"- confidence: depth {probed.depth_conf:.2f}, points {probed.points_conf:.2f}",
        "- dynamic probability: "
        + ("no mask" if probed.probability is None else f"{probed.probability:.2f}"),
    ]
    if probed.attention is not None and choice is not None:
        lines.append(
            f"- attention received from frame {choice.query}'s camera token, layer "
            f"{choice.layer} ({choice.variant}): {probed.attention:.2e}"
        )
    return "\n".join(lines)


def mark_pixel(image: np.ndarray, row: int, col: int, size: int = 6) -> np.ndarray:
    """A copy of an image with a small cross (white, black outline) centred on a pixel.

    Args:
        image: (H, W, 3) uint8.
        row, col: the pixel.
        size: half-length of the cross's arms in pixels.
    """
    marked = np.array(image, dtype=np.uint8, copy=True)
    height, width = marked.shape[:2]
    for colour, thickness in (((0, 0, 0), 1), ((255, 255, 255), 0)):
        rows = slice(max(row - thickness, 0), min(row + thickness + 1, height))
        cols = slice(max(col - thickness, 0), min(col + thickness + 1, width))
        marked[rows, max(col - size, 0) : min(col + size + 1, width)] = colour
        marked[max(row - size, 0) : min(row + size + 1, height), cols] = colour
    return marked
