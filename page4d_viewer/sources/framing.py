"""Clip frames -> model-input frames (uint8), exactly as VGGT's `load_and_preprocess_images`.

The authors' sequence, per image: PIL bicubic resize of the 8-bit RGB image to
(new_width, new_height), `ToTensor` (uint8 / 255 as float32), then a centre crop of the rows
("crop") or white padding to a square ("pad"). Because the PIL resize works on uint8 and
produces uint8, the float input is exactly `uint8 / 255`; we therefore keep the uint8 frames
(for display) and divide once, which gives bit-identical tensors. `fit_frames` here does the
resize and crop/pad on uint8 pixels; `inference.preprocess` is the one step that makes a tensor.

Pixel coordinates in this module are continuous, with the image's top-left corner at (0, 0):
pixel (col, row) covers [col, col + 1) x [row, row + 1) and has its centre at
(col + 0.5, row + 0.5). Under this convention PIL's resize is a pure scale per axis, so the
mapping between model-input pixels and clip pixels is `model = clip * scale + offset`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from page4d_viewer.errors import ClipError
from page4d_viewer.sources.records import FieldConverters, read_fields

logger = logging.getLogger(__name__)

PATCH_SIZE = 14  # the encoder's patch size: model-input sides must be multiples of it
DEFAULT_TARGET_SIZE = 518  # the authors' input width (37 patches)
WHITE = 255

PreprocessMode = Literal["crop", "pad"]


@dataclass(frozen=True)
class PreprocessMapping:
    """Where model-input pixels come from in the clip's frames (one mapping for all frames).

    Attributes:
        mode: "crop" or "pad".
        target_size: The side the model input was fitted to (pixels, multiple of 14).
        original_size: (height, width) of the clip frames, pixels.
        resized_size: (height, width) after the bicubic resize, before crop or pad, pixels.
        model_size: (height, width) of the model input, pixels.
        scale_x: Model pixels per clip pixel along x (resized width / original width).
        scale_y: Model pixels per clip pixel along y. It differs slightly from `scale_x`
            because the resized side is rounded to a multiple of 14 (the authors do this too).
        offset_x: Model x of the clip's left edge, pixels (pad: left padding; crop: 0).
        offset_y: Model y of the clip's top edge, pixels (pad: top padding; crop: minus the
            rows cropped off the top).
    """

    mode: str
    target_size: int
    original_size: tuple[int, int]
    resized_size: tuple[int, int]
    model_size: tuple[int, int]
    scale_x: float
    scale_y: float
    offset_x: int
    offset_y: int

    def from_original(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Clip pixel coordinates -> model-input pixel coordinates.

        Args:
            xy: (..., 2) float array of (x, y) in clip pixels (continuous, corner at 0).

        Returns:
            (..., 2) float64 array of (x, y) in model-input pixels.
        """
        xy = np.asarray(xy, dtype=np.float64)
        return xy * self._scale + self._offset

    def to_original(self, xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Model-input pixel coordinates -> clip pixel coordinates (inverse of from_original).

        Args:
            xy: (..., 2) float array of (x, y) in model-input pixels (continuous, corner at 0).

        Returns:
            (..., 2) float64 array of (x, y) in clip pixels; points in the padding or outside
            the crop map outside [0, width] x [0, height].
        """
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - self._offset) / self._scale

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the model-input region that holds image content (not padding)."""
        height, width = self.model_size
        resized_h, resized_w = self.resized_size
        x0, y0 = max(self.offset_x, 0), max(self.offset_y, 0)
        x1 = min(self.offset_x + resized_w, width)
        y1 = min(self.offset_y + resized_h, height)
        return x0, y0, x1, y1

    @property
    def _scale(self) -> npt.NDArray[np.float64]:
        return np.array([self.scale_x, self.scale_y], dtype=np.float64)

    @property
    def _offset(self) -> npt.NDArray[np.float64]:
        return np.array([self.offset_x, self.offset_y], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (ints, floats, strings, lists) for saving."""
        return {
            "mode": self.mode,
            "target_size": self.target_size,
            "original_size": list(self.original_size),
            "resized_size": list(self.resized_size),
            "model_size": list(self.model_size),
            "scale_x": self.scale_x,
            "scale_y": self.scale_y,
            "offset_x": self.offset_x,
            "offset_y": self.offset_y,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessMapping:
        """Inverse of `to_dict`; raises ClipError when a field is missing or malformed."""
        try:
            return cls(**read_fields(data, _MAPPING_FIELDS))
        except (KeyError, TypeError, ValueError) as error:
            raise ClipError(f"malformed preprocessing record: {error!r}") from None


def _pair(value: Any) -> tuple[int, int]:
    first, second = value
    return int(first), int(second)


_MAPPING_FIELDS: FieldConverters = {
    "mode": str,
    "target_size": int,
    "original_size": _pair,
    "resized_size": _pair,
    "model_size": _pair,
    "scale_x": float,
    "scale_y": float,
    "offset_x": int,
    "offset_y": int,
}
"""How :meth:`PreprocessMapping.from_dict` reads each field."""


def resized_size(
    height: int, width: int, mode: PreprocessMode, target_size: int
) -> tuple[int, int]:
    """(height, width) of the bicubic resize that precedes crop/pad, the authors' arithmetic.

    "crop": width becomes target_size, height keeps the aspect ratio rounded to a multiple
    of 14. "pad": the longer side becomes target_size, the other is rounded the same way.
    Python's `round` (half to even) is used on purpose: it is what the authors call.

    Raises:
        ClipError: when the rounded side would be 0 (an extremely wide or tall frame).
    """
    if mode == "pad" and height > width:
        new_height = target_size
        new_width = round(width * (new_height / height) / PATCH_SIZE) * PATCH_SIZE
    else:
        new_width = target_size
        new_height = round(height * (new_width / width) / PATCH_SIZE) * PATCH_SIZE
    if new_width < PATCH_SIZE or new_height < PATCH_SIZE:
        raise ClipError(
            f"frames of {width}x{height} are too elongated for a {target_size} px model input"
            f" ({mode} mode would make them {new_width}x{new_height})"
        )
    return new_height, new_width


def plan_mapping(
    height: int, width: int, mode: PreprocessMode = "crop", target_size: int = DEFAULT_TARGET_SIZE
) -> PreprocessMapping:
    """The mapping `preprocess` will use for frames of this size, without touching pixels."""
    _check_options(mode, target_size)
    new_height, new_width = resized_size(height, width, mode, target_size)
    if mode == "crop":
        # Rows beyond target_size are cut symmetrically, the extra row (odd excess) at the bottom.
        crop_top = (new_height - target_size) // 2 if new_height > target_size else 0
        offset_x, offset_y = 0, -crop_top
        model_size = (min(new_height, target_size), new_width)
    else:
        offset_x = (target_size - new_width) // 2
        offset_y = (target_size - new_height) // 2
        model_size = (target_size, target_size)
    return PreprocessMapping(
        mode=mode,
        target_size=target_size,
        original_size=(height, width),
        resized_size=(new_height, new_width),
        model_size=model_size,
        scale_x=new_width / width,
        scale_y=new_height / height,
        offset_x=offset_x,
        offset_y=offset_y,
    )


def _place(dest: np.ndarray, resized: np.ndarray, mapping: PreprocessMapping) -> None:
    """Copy the resized frame into the model-input canvas (crop rows or pad with white)."""
    x0, y0, x1, y1 = mapping.content_box
    src_y0 = y0 - mapping.offset_y
    src_x0 = x0 - mapping.offset_x
    dest[y0:y1, x0:x1] = resized[src_y0 : src_y0 + (y1 - y0), src_x0 : src_x0 + (x1 - x0)]


def _check_options(mode: str, target_size: int) -> None:
    if mode not in ("crop", "pad"):
        raise ClipError(f"preprocessing mode must be 'crop' or 'pad', got {mode!r}")
    if (
        isinstance(target_size, bool)
        or not isinstance(target_size, (int, np.integer))
        or target_size < PATCH_SIZE
        or target_size % PATCH_SIZE
    ):
        raise ClipError(
            f"target_size must be a positive multiple of {PATCH_SIZE}, got {target_size!r}"
        )


def _as_frames(frames: Any) -> np.ndarray:
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ClipError(
            f"frames must be an (S, H, W, 3) uint8 array, got {array.dtype} {array.shape}"
        )
    if array.shape[0] < 1:
        raise ClipError("no frames to preprocess")
    if min(array.shape[1:3]) < PATCH_SIZE:
        raise ClipError(
            f"frames of {array.shape[2]}x{array.shape[1]} are smaller than {PATCH_SIZE} px"
        )
    return array


def fit_frames(
    frames: npt.ArrayLike, mode: PreprocessMode = "crop", target_size: int = DEFAULT_TARGET_SIZE
) -> tuple[npt.NDArray[np.uint8], PreprocessMapping]:
    """Resize and crop/pad uint8 frames to the model-input size, exactly as the authors do.

    Args:
        frames: (S, H, W, 3) uint8; all frames share one size (`load_clip` guarantees it).
        mode: "crop" (width = target_size, height rounded to a multiple of 14, centre-cropped
            to target_size when taller) or "pad" (longer side = target_size, other side rounded
            to a multiple of 14, padded with white to a target_size square).
        target_size: Model-input side in pixels; a positive multiple of 14.

    Returns:
        (S, H', W', 3) uint8 model-input frames and the pixel mapping back to the clip frames.

    Raises:
        ClipError: bad mode or target_size, frames of the wrong shape or dtype, or frames too
            elongated for the target size.
    """
    frames = _as_frames(frames)
    _check_options(mode, target_size)
    _, height, width, _ = frames.shape
    mapping = plan_mapping(height, width, mode, target_size)
    model_h, model_w = mapping.model_size
    out = np.full((frames.shape[0], model_h, model_w, 3), WHITE, dtype=np.uint8)
    new_h, new_w = mapping.resized_size
    for index, frame in enumerate(frames):
        resized = np.asarray(
            Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BICUBIC)
        )
        _place(out[index], resized, mapping)
    logger.debug(
        "fitted %d frames %dx%d -> %dx%d (%s)", len(out), width, height, model_w, model_h, mode
    )
    return out, mapping
