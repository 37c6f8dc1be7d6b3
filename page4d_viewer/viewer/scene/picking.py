"""From a click in the scene to a pixel: the shown point nearest to the click's ray.

Pure functions of a Reconstruction (no Viser). A click in the scene is a ray; the picked point is
the shown point nearest to that ray (perpendicular distance, in front of the ray's origin),
among the frames on screen and after the scene's own point filter
(`result.points.frame_points`), so one can only pick what one sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.mask import DisplayError
from page4d_viewer.result.points import frame_points

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction


@dataclass(frozen=True)
class Pixel:
    """One pixel of one frame (model-input pixels, 0-based)."""

    frame: int
    row: int
    col: int


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
