"""The point probe: from a pixel to what the result says of it (its 3-D point, depth,
confidences, dynamic probability and attention). A click in the scene becomes a pixel in
`viewer.scene.picking`.

Pure functions of a Reconstruction (no Gradio, no Viser).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.mask import DisplayError, dynamic_probability, patch_index
from page4d_viewer.result.points import frame_points
from page4d_viewer.viewer import inside_views
from page4d_viewer.viewer.scene.picking import Pixel

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction


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
    rows, cols = np.array([row]), np.array([col])
    cloud = frame_points(recon, frame, threshold=float("-inf"), source=source, rows=rows, cols=cols)
    position = cloud.points
    probability = None
    if recon.mask_score is not None:
        grid_h, grid_w = recon.mask_score.shape[1:]
        score = recon.mask_score[frame, patch_index(np.array(row), height, grid_h)]
        probability = float(dynamic_probability(score[patch_index(np.array(col), width, grid_w)]))
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
