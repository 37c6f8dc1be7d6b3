"""The GroundTruth record every reader returns, its error, and its mapping to other pixel grids.

``GroundTruth.extrinsics`` are camera-from-world (OpenCV, as in ``geometry.py``) whatever the
source format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError

# When GT maps are resized to the frames, a larger aspect change means a crop we cannot undo.
_ASPECT_TOLERANCE = 0.01


class GroundTruthError(Page4DError):
    """A ground-truth file or folder is missing, malformed, or does not match the frames."""


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth for the S frames of a clip; any part may be missing.

    Attributes:
        extrinsics: (S, 3, 4) float64 camera-from-world ``T_cam_world`` (OpenCV), or None.
        intrinsics: (S, 3, 3) float64 pinhole matrices in pixels of ``depth``/the frames, or None.
        depth: (S, H, W) float32 depth along the optical axis, 0 where unknown, or None.
        dynamic_mask: (S, H, W) bool, True on moving pixels, or None.
        source_format: "tum", "sintel" or "synthetic".
        timestamps: (S,) float64 times of the matched poses in seconds (TUM), or None.
        path: where it was read from.
        valid_region: (H, W) bool, pixels that show the clip after ``to_model_input`` (False on
            padding or cropped-away areas), or None when every pixel does.
    """

    extrinsics: npt.NDArray[np.float64] | None
    intrinsics: npt.NDArray[np.float64] | None
    depth: npt.NDArray[np.float32] | None
    dynamic_mask: npt.NDArray[np.bool_] | None
    source_format: str
    timestamps: npt.NDArray[np.float64] | None = None
    path: str = ""
    valid_region: npt.NDArray[np.bool_] | None = None

    @property
    def num_frames(self) -> int:
        """Number of frames S (0 if nothing is known)."""
        for array in (self.extrinsics, self.intrinsics, self.depth, self.dynamic_mask):
            if array is not None:
                return int(array.shape[0])
        return 0

    @property
    def image_hw(self) -> tuple[int, int] | None:
        """(H, W) of the depth / mask maps, or None when there are none."""
        for array in (self.depth, self.dynamic_mask):
            if array is not None:
                return int(array.shape[1]), int(array.shape[2])
        return None

    def to_model_input(self, mapping: dict[str, Any]) -> GroundTruth:
        """The same ground truth in model-input pixels, following the clip's crop or pad.

        Each model-input pixel centre is mapped back to the clip frame with
        ``clip = (model - offset) / scale`` (``page4d_viewer.inference.preprocess`` mapping,
        continuous pixel coordinates with the corner at 0) and takes the nearest GT pixel;
        pixels outside the frame (padding, or cropped away) get depth 0 and mask False.
        Intrinsics follow the same affine map (shifted by half a pixel: they use integer
        pixel centres).

        Args:
            mapping: the ``PreprocessMapping.to_dict()`` record (``Reconstruction.metadata.
                preprocessing.mapping``): model_size, scale_x/y, offset_x/y, original_size.

        Returns:
            A GroundTruth whose maps are (S, model_h, model_w).
        """
        try:
            model_h, model_w = (int(v) for v in mapping["model_size"])
            scale_x, scale_y = float(mapping["scale_x"]), float(mapping["scale_y"])
            offset_x, offset_y = float(mapping["offset_x"]), float(mapping["offset_y"])
        except (KeyError, TypeError, ValueError) as error:
            raise GroundTruthError(f"malformed preprocessing mapping: {error!r}") from None
        intrinsics = self.intrinsics
        if intrinsics is not None:
            # The mapping uses corner-at-0 pixel coordinates, intrinsics integer pixel centres
            # (geometry.py), hence the half-pixel terms.
            shift_x = offset_x + 0.5 * (scale_x - 1)
            shift_y = offset_y + 0.5 * (scale_y - 1)
            affine = np.array([[scale_x, 0, shift_x], [0, scale_y, shift_y], [0, 0, 1]])
            intrinsics = affine @ intrinsics
        source_hw = self.image_hw
        if source_hw is None:
            return replace(self, intrinsics=intrinsics)
        rows = _nearest_source_index(model_h, scale_y, offset_y, source_hw[0])
        cols = _nearest_source_index(model_w, scale_x, offset_x, source_hw[1])
        inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
        rows, cols = np.maximum(rows, 0), np.maximum(cols, 0)
        depth = self.depth
        if depth is not None:
            depth = np.where(inside, depth[:, rows][:, :, cols], 0).astype(np.float32)
        mask = self.dynamic_mask
        if mask is not None:
            mask = mask[:, rows][:, :, cols] & inside
        if self.valid_region is not None:
            inside &= self.valid_region[rows][:, cols]
        return replace(
            self, intrinsics=intrinsics, depth=depth, dynamic_mask=mask, valid_region=inside
        )

    def resized(self, image_hw: tuple[int, int]) -> GroundTruth:
        """GT maps resized (nearest neighbour) to frames of ``image_hw``, intrinsics scaled.

        Raises:
            GroundTruthError: when the aspect ratio differs by more than 1 % (a crop).
        """
        source_hw = self.image_hw
        if source_hw is None or tuple(source_hw) == tuple(image_hw):
            return self
        height, width = image_hw
        scale_y, scale_x = height / source_hw[0], width / source_hw[1]
        if abs(scale_x / scale_y - 1) > _ASPECT_TOLERANCE:
            raise GroundTruthError(
                f"ground-truth maps are {source_hw[1]}x{source_hw[0]} but frames are "
                f"{width}x{height}: a different aspect ratio cannot be matched"
            )
        mapping = {
            "model_size": [height, width],
            "scale_x": scale_x,
            "scale_y": scale_y,
            "offset_x": 0,
            "offset_y": 0,
        }
        return self.to_model_input(mapping)

    def select(self, frames: Sequence[int] | npt.NDArray[np.integer]) -> GroundTruth:
        """The ground truth of the given frame positions (0-based)."""
        frames = np.asarray(frames, dtype=np.int64)
        count = self.num_frames
        if frames.size and (frames.min() < -count or frames.max() >= count):
            raise GroundTruthError(
                f"frame index {int(frames.max())} is out of range: ground truth has {count} frames"
            )

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[frames]

        return replace(
            self,
            extrinsics=pick(self.extrinsics),
            intrinsics=pick(self.intrinsics),
            depth=pick(self.depth),
            dynamic_mask=pick(self.dynamic_mask),
            timestamps=pick(self.timestamps),
        )


def _nearest_source_index(size: int, scale: float, offset: float, source_size: int) -> np.ndarray:
    """Source pixel under each target pixel centre along one axis; -1 when outside."""
    centres = (np.arange(size) + 0.5 - offset) / scale
    index = np.floor(centres).astype(np.int64)
    return np.where((index >= 0) & (index < source_size), index, -1)
