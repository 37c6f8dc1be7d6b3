"""The one reading of the dynamic mask: probability, upsampling to pixels, heat-map overlay.

The scene, the panel, the mp4 export and the evaluation all call these, so what is exported
and measured is what the viewer shows. Colours are uint8 RGB.

Glossary. The mask is one quantity, the mask head's per-patch score; each name below is one
meaning of it, and the code uses no other:

- **mask score** ``m`` (``mask_score``): the raw head output per patch, in (-0.5, 0.5); it is
  ``sigmoid - 0.5``, not a logit. High m means static ("attend to this patch"). Stored in
  result files as (S, h, w) on the patch grid.
- **dynamic probability** ``p = 0.5 - m`` clipped to [0, 1] (`dynamic_probability`): how
  likely a patch moves; what the viewer, the exports, the probe and the metrics show.
- **keep probability** ``1 - p = m + 0.5``: how likely a patch is static; the weight of a
  point or match in the geometric pose solve (``inference/geometric_poses.py``,
  ``training/matching.py``) and what the mask loss trains.
- **static fraction** (``static_fraction``): the ground truth of the keep probability in
  training, the share of a patch's pixels the synthetic scene marks static.
- **moving**: a yes/no per pixel, patch or track: dynamic probability at or above the
  threshold (``settings.DEFAULT_MASK_THRESHOLD``; `moving_tracks` in ``result/tracks.py``),
  or, for ground truth, in ``gt_dynamic_mask``.
- **heat**: a value in [0, 1] on its way to a colour (`heat_colors`); for the mask it is the
  dynamic probability over the clip's `mask_scale`, for attention a scaled attention map
  (``viewer/inside_views.py``). Heat is for drawing only, never for measuring.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import (
    DEFAULT_COLORMAP,
    MASK_OVERLAYS,
    MASK_SCALE_PERCENTILE,
    MaskOverlay,
)

_Value = TypeVar("_Value", bound=np.generic)


class DisplayError(Page4DError):
    """A display setting outside what the viewer and the exports support (mode, source, range)."""


def dynamic_probability(mask_score: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Read the network's mask score as a probability that a patch moves.

    The released model adds `alpha * m` to the attention logits of camera tokens, so camera
    tokens attend MORE to patches with high m: high m marks static, trustworthy content and
    low m marks moving content (the mask loss trains ``m + 0.5`` as the probability that a
    patch is static). We show `0.5 - m`, so 1 means dynamic and 0 means static.

    Args:
        mask_score: (...) mask scores m in (-0.5, 0.5).

    Returns:
        (...) float32 probabilities in [0, 1], 1 = dynamic.
    """
    return np.clip(0.5 - np.asarray(mask_score, dtype=np.float32), 0.0, 1.0)


def mask_scale(
    mask_score: npt.ArrayLike | None, percentile: float = MASK_SCALE_PERCENTILE
) -> float:
    """The top of the overlay's colour scale: a percentile of the clip's dynamic probability.

    The colours span [0, top], so a mask whose values stay low still shows its contrast; a
    value above `top` takes the top colour. Nothing is rescaled in the data: the colour bar
    labels its colours with these model values.

    Args:
        mask_score: (S, h, w) raw mask scores of the whole clip (one scale for every frame),
            or None.
        percentile: which percentile of the probabilities tops the scale.

    Returns:
        `top` in (0, 1]; 1 without a mask, or when the percentile is 0 (an all-static mask).
    """
    if mask_score is None:
        return 1.0
    probability = dynamic_probability(mask_score)
    finite = probability[np.isfinite(probability)]
    top = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return top if top > 0.0 else 1.0


def upsample_mask(mask: npt.NDArray[_Value], height: int, width: int) -> npt.NDArray[_Value]:
    """Nearest-neighbour upsampling of a patch-grid mask to pixels.

    Each pixel takes the value of the patch that covers it (a 14x14 patch of a 518-pixel
    image covers exactly 14x14 pixels; other sizes are spread evenly). Nearest, not bilinear:
    the scene bins its points by the patch they fall in, and every other reader must agree.

    Args:
        mask: (..., h, w) values per patch.
        height: H, output height in pixels.
        width: W, output width in pixels.

    Returns:
        (..., H, W) values per pixel, same dtype as `mask`.
    """
    mask = np.asarray(mask)
    rows = patch_index(np.arange(height), height, mask.shape[-2])
    cols = patch_index(np.arange(width), width, mask.shape[-1])
    return mask[..., rows[:, None], cols[None, :]]


def patch_index(pixel: npt.ArrayLike, size: int, num_patches: int) -> npt.NDArray[np.int64]:
    """Index of the patch that covers each pixel coordinate along one axis.

    Args:
        pixel: (N,) integer pixel coordinates in [0, size).
        size: image size along the axis, pixels.
        num_patches: patches along the same axis.

    Returns:
        (N,) int64 patch indices in [0, num_patches).
    """
    return (np.asarray(pixel, dtype=np.int64) * num_patches) // size


def heat_colors(
    values: npt.ArrayLike, colormap: str = DEFAULT_COLORMAP, top: float = 1.0
) -> npt.NDArray[np.uint8]:
    """Map values in [0, top] to colours through a matplotlib colormap.

    Args:
        values: (...) values; clipped to [0, top], NaN drawn as 0.
        colormap: a matplotlib colormap name.
        top: the value drawn in the colormap's last colour (`mask_scale` for the mask).

    Returns:
        (..., 3) uint8 RGB.
    """
    table = _colormap_table(colormap)
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0) / np.float32(top)
    index = np.rint(np.clip(values, 0.0, 1.0) * 255.0)
    return table[index.astype(np.int64)]


_COLORMAP_TABLES: dict[str, npt.NDArray[np.uint8]] = {}


def _colormap_table(colormap: str) -> npt.NDArray[np.uint8]:
    """A (256, 3) uint8 lookup table for a matplotlib colormap (cached)."""
    if colormap not in _COLORMAP_TABLES:
        # Optional: only colouring needs matplotlib, which is slow to import.
        import matplotlib

        try:
            cmap = matplotlib.colormaps[colormap]
        except KeyError as error:
            raise DisplayError(f"unknown colormap {colormap!r}") from error
        rgba = cmap(np.linspace(0.0, 1.0, 256))
        _COLORMAP_TABLES[colormap] = np.rint(rgba[:, :3] * 255.0).astype(np.uint8)
    return _COLORMAP_TABLES[colormap]


def blend_colors(
    image_rgb: npt.ArrayLike,
    probability: npt.ArrayLike,
    weight: npt.ArrayLike,
    colormap: str = DEFAULT_COLORMAP,
    top: float = 1.0,
) -> npt.NDArray[np.uint8]:
    """Blend image colours with a heat map of the mask: `(1 - w) * image + w * heat(p)`.

    Args:
        image_rgb: (..., 3) uint8 image colours.
        probability: (...) dynamic probability in [0, 1].
        weight: (...) or scalar blend weight in [0, 1]; 0 keeps the image colour.
        colormap: matplotlib colormap for the heat map.
        top: the probability drawn in the heat map's last colour (`mask_scale`).

    Returns:
        (..., 3) uint8 blended colours.
    """
    w = np.clip(np.asarray(weight, dtype=np.float32), 0.0, 1.0)[..., None]
    image = np.asarray(image_rgb, dtype=np.float32)
    heat = heat_colors(probability, colormap, top).astype(np.float32)
    return np.rint(image + w * (heat - image)).astype(np.uint8)


def overlay_weight(
    probability: npt.ArrayLike,
    opacity: float,
    threshold: float,
    overlay: MaskOverlay = "threshold",
) -> npt.NDArray[np.float32]:
    """Per-point blend weight of the mask overlay: `opacity` where p >= threshold, else 0
    ("threshold"), or `opacity` everywhere ("continuous": the colour carries the value).

    Args:
        probability: (...) dynamic probability in [0, 1].
        opacity: overlay opacity in [0, 1].
        threshold: points at or above this probability get the heat map ("threshold").
        overlay: one of settings.MASK_OVERLAYS.

    Returns:
        (...) float32 weights.
    """
    check_overlay_mode(overlay)
    if overlay == "continuous":
        return np.full(np.shape(probability), np.float32(opacity), dtype=np.float32)
    highlighted = np.asarray(probability) >= threshold
    return np.where(highlighted, np.float32(opacity), np.float32(0.0))


def overlay_image(
    image_rgb: npt.ArrayLike,
    mask_score: npt.ArrayLike | None,
    opacity: float,
    threshold: float,
    colormap: str = DEFAULT_COLORMAP,
    *,
    overlay: MaskOverlay = "threshold",
    top: float = 1.0,
) -> npt.NDArray[np.uint8]:
    """A frame with its mask drawn on top as a heat map (the 2-D counterpart of the scene).

    Args:
        image_rgb: (H, W, 3) uint8 frame.
        mask_score: (h, w) raw mask scores in (-0.5, 0.5), or None (returns the image).
        opacity: overlay opacity in [0, 1].
        threshold: dynamic probability at or above which the heat map is drawn
            ("threshold" overlay).
        colormap: matplotlib colormap for the heat map.
        overlay: one of settings.MASK_OVERLAYS.
        top: the probability drawn in the last colour: `mask_scale` of the whole clip.

    Returns:
        (H, W, 3) uint8 image.
    """
    check_overlay(opacity, threshold)
    image_rgb = np.asarray(image_rgb, dtype=np.uint8)
    if mask_score is None:
        return image_rgb.copy()
    height, width = image_rgb.shape[:2]
    probability = upsample_mask(dynamic_probability(mask_score), height, width)
    weight = overlay_weight(probability, opacity, threshold, overlay)
    return blend_colors(image_rgb, probability, weight, colormap, top)


def check_overlay(opacity: float, threshold: float) -> None:
    """Raise DisplayError unless opacity and threshold both lie in [0, 1]."""
    for name, value in (("mask opacity", opacity), ("mask threshold", threshold)):
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise DisplayError(f"{name} must be in [0, 1], got {value}")


def check_overlay_mode(overlay: str) -> MaskOverlay:
    """`overlay` as a MaskOverlay; DisplayError unless it is one of settings.MASK_OVERLAYS."""
    if overlay not in MASK_OVERLAYS:
        raise DisplayError(
            f"mask overlay must be one of {', '.join(MASK_OVERLAYS)}, got {overlay!r}"
        )
    return overlay
