"""Clip frames -> the network's input tensor: the one place where numpy frames become torch.

The pixels are fitted by `sources.framing.fit_frames` (the authors' resize and crop/pad on
uint8); this step only divides by 255 in the same way as torchvision's `ToTensor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from page4d_viewer.errors import ClipError
from page4d_viewer.sources.framing import (
    DEFAULT_TARGET_SIZE,
    PreprocessMapping,
    PreprocessMode,
    fit_frames,
)


def preprocess_mode(name: str) -> PreprocessMode:
    """``name`` as a preprocessing mode ("crop" or "pad").

    Raises:
        ClipError: any other name.
    """
    if name == "crop" or name == "pad":
        return name
    raise ClipError(f"preprocessing mode must be 'crop' or 'pad', got {name!r}")


@dataclass(frozen=True)
class Preprocessed:
    """Model input for one clip.

    Attributes:
        images: (S, 3, H, W) float32 tensor in [0, 1]; H and W are multiples of 14.
        frames: (S, H, W, 3) uint8, the same pixels for display (`images == frames / 255`).
        mapping: How model-input pixels relate to the clip's frame pixels.
    """

    images: torch.Tensor
    frames: np.ndarray
    mapping: PreprocessMapping


def preprocess(
    frames: Any, mode: PreprocessMode = "crop", target_size: int = DEFAULT_TARGET_SIZE
) -> Preprocessed:
    """Resize and crop/pad clip frames to the model input, exactly as the authors do.

    Args:
        frames: (S, H, W, 3) uint8 array, or a `Clip` (its `frames` are used).
        mode: "crop" or "pad" (see `sources.framing.fit_frames`).
        target_size: Model-input side in pixels; a positive multiple of 14 (518 for the
            authors' checkpoints, smaller for our small model).

    Returns:
        Preprocessed with images (S, 3, H', W') float32 in [0, 1], the same pixels as uint8
        (S, H', W', 3), and the pixel mapping back to the clip frames.

    Raises:
        ClipError: bad mode or target_size, frames of the wrong shape or dtype, or frames too
            elongated for the target size.
    """
    fitted, mapping = fit_frames(getattr(frames, "frames", frames), mode, target_size)
    # ToTensor's order: channels-first uint8 made contiguous, then float32 and torch's div by
    # 255 (the same op, so the same rounding). Transposing uint8 first is also 4x less memory
    # traffic than permuting floats.
    channels_first = torch.from_numpy(np.ascontiguousarray(fitted.transpose(0, 3, 1, 2)))
    images = channels_first.to(torch.float32).div(255)
    return Preprocessed(images=images, frames=fitted, mapping=mapping)
