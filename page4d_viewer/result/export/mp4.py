"""mp4 export: the frames with the dynamic mask drawn exactly as the viewer's overlay."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.common import prepare_output, selected_frames
from page4d_viewer.result.mask import overlay_image
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import DEFAULT_COLORMAP, DEFAULT_MASK_OPACITY, DEFAULT_MASK_THRESHOLD

logger = logging.getLogger(__name__)


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

    frames = selected_frames(frames, recon.num_frames)
    rate = clip_frame_rate(recon.timestamps()[frames]) if fps is None else fps
    if not rate > 0:
        raise Page4DError(f"fps must be positive, got {fps}")
    if not recon.has_mask:
        logger.warning("this result has no dynamic mask; the mp4 shows the plain frames")
    # Check the settings on one pixel before creating any file.
    overlay_image(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1)), opacity, threshold, colormap)
    height, width = recon.image_hw
    path = prepare_output(path, ".mp4")
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


def clip_frame_rate(timestamps: np.ndarray) -> float:
    """Frames per second of a clip from its (S,) timestamps in seconds: 1 / median step,
    clipped to [1, 120]; 10 when the steps are unknown."""
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return 10.0
    return float(np.clip(1.0 / np.median(steps), 1.0, 120.0))


def _rational(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1001)
