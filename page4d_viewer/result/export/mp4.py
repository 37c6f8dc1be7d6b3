"""mp4 export: the frames with the dynamic mask drawn exactly as the viewer's overlay."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.common import prepare_output, selected_frames
from page4d_viewer.result.mask import check_overlay_mode, mask_scale, overlay_image
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import (
    DEFAULT_COLORMAP,
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
    MaskOverlay,
)

logger = logging.getLogger(__name__)


def mp4_frame(
    recon: Reconstruction,
    frame: int,
    opacity: float = DEFAULT_MASK_OPACITY,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    colormap: str = DEFAULT_COLORMAP,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> npt.NDArray[np.uint8]:
    """The picture `export_mp4` encodes for one frame: the viewer's mask overlay.

    Args:
        recon: the reconstruction.
        frame: 0-based frame position.
        opacity: heat-map opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn.
        colormap: matplotlib colormap name for the heat map.
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS); the heat map spans
            the clip's scale (`mask_scale`), as in the viewer.

    Returns:
        (H, W, 3) uint8 frame (the plain frame when the result has no mask).
    """
    mask = None if recon.mask_score is None else recon.mask_score[frame]
    return overlay_image(
        recon.images[frame], mask, opacity, threshold, colormap,
        overlay=overlay, top=mask_scale(recon.mask_score),
    )  # fmt: skip


def export_mp4(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    frames: Sequence[int] | None = None,
    fps: float | None = None,
    opacity: float = DEFAULT_MASK_OPACITY,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    colormap: str = DEFAULT_COLORMAP,
    overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
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
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).

    Returns:
        The path written.
    """
    frames = selected_frames(frames, recon.num_frames)
    rate = clip_frame_rate(recon.timestamps()[frames]) if fps is None else fps
    if not rate > 0:
        raise Page4DError(f"fps must be positive, got {fps}")
    if not recon.has_mask:
        logger.warning("this result has no dynamic mask; the mp4 shows the plain frames")
    # Check the settings on one pixel before creating any file.
    overlay_image(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1)), opacity, threshold, colormap)
    check_overlay_mode(overlay)
    images = (mp4_frame(recon, frame, opacity, threshold, colormap, overlay) for frame in frames)
    path = write_mp4(path, images, rate)
    logger.info("wrote %s (%d frames at %.3g fps)", path, len(frames), rate)
    return path


def write_mp4(
    path: str | os.PathLike[str], images: Iterable[np.ndarray], fps: float, crf: int = 20
) -> Path:
    """Encode pictures as an H.264 (libx264, yuv420p) mp4, written atomically.

    The pictures are consumed one at a time (memory stays flat for long clips); yuv420p needs
    even sizes, so an odd height or width gets one edge pixel of padding.

    Args:
        path: output ``.mp4`` file.
        images: (H, W, 3) uint8 RGB pictures, all of the first one's size; at least one.
        fps: frames per second (> 0).
        crf: x264 constant rate factor (lower is better and larger).

    Returns:
        The path written.

    Raises:
        Page4DError: no picture, or pictures of different sizes or shapes.
    """
    # Optional: only the mp4 export needs PyAV.
    import av

    path = prepare_output(path, ".mp4")
    temporary = path.with_name(f".{path.name}.tmp.mp4")
    try:
        with av.open(str(temporary), mode="w") as container:
            stream = None
            for image in images:
                image = _checked_picture(image)
                if stream is None:
                    stream = container.add_stream("libx264", rate=_rational(fps))
                    stream.height, stream.width = _even(image.shape)
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf)}
                if _even(image.shape[:2]) != (stream.height, stream.width):
                    raise Page4DError(
                        f"mp4 pictures must all be {stream.height}x{stream.width} (rounded up "
                        f"to even), got {image.shape[0]}x{image.shape[1]}"
                    )
                padding = ((0, stream.height - len(image)), (0, stream.width - image.shape[1]))
                image = np.pad(image, (*padding, (0, 0)), mode="edge")
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            if stream is None:
                raise Page4DError("no pictures to write into the mp4")
            container.mux(stream.encode(None))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _even(size: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) rounded up to even numbers, as yuv420p needs."""
    return size[0] + size[0] % 2, size[1] + size[1] % 2


def _checked_picture(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise Page4DError(
            f"mp4 pictures must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}"
        )
    return image


def clip_frame_rate(timestamps: npt.ArrayLike) -> float:
    """Frames per second of a clip from its (S,) timestamps in seconds: 1 / median step,
    clipped to [1, 120]; 10 when the steps are unknown."""
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        return 10.0
    return float(np.clip(1.0 / np.median(steps), 1.0, 120.0))


def _rational(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1001)
