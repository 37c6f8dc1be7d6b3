"""Video depth metrics: AbsRel and delta < 1.25 after one alignment per sequence.

As in the PAGE-4D paper (MonST3R's protocol): one alignment per sequence (not per frame),
either median scaling (``median(gt) / median(pred)``) or a least-squares scale and shift, both
fitted on the valid ground-truth pixels of the whole clip (``gt > 0`` and finite, optionally
``gt < max_depth``). AbsRel and delta < 1.25 are then pooled over all valid pixels of the clip.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from page4d_viewer.evaluation.errors import MetricsError

# MonST3R clamps the aligned prediction to this before the delta ratio (never divide by <= 0).
_MIN_DEPTH_FOR_RATIO = 1e-5

DepthAlignment = Literal["median", "scale_shift"]


@dataclass(frozen=True)
class DepthMetrics:
    """Video-depth errors after one per-sequence alignment.

    Attributes:
        abs_rel: mean of ``|aligned - gt| / gt`` over all valid pixels of the clip.
        delta_1_25: fraction of valid pixels with ``max(aligned/gt, gt/aligned) < 1.25``.
        abs_rel_per_frame: (S,) the same per frame (NaN where a frame has no valid pixel).
        delta_1_25_per_frame: (S,) likewise.
        alignment: "median" or "scale_shift".
        scale: the fitted scale.
        shift: the fitted shift (0 for median scaling), GT depth units.
        valid_pixels: number of pixels evaluated.
    """

    abs_rel: float
    delta_1_25: float
    abs_rel_per_frame: np.ndarray
    delta_1_25_per_frame: np.ndarray
    alignment: str
    scale: float
    shift: float
    valid_pixels: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: every field but the per-frame arrays, in field order."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if not field.name.endswith("_per_frame")
        }


def _fit_depth_alignment(
    pred: np.ndarray, gt: np.ndarray, alignment: DepthAlignment
) -> tuple[float, float]:
    """Scale and shift mapping predicted depth onto GT; pred, gt are (N,) valid pixels."""
    if alignment == "median":
        pred_median = float(np.median(pred))
        if pred_median <= 0:
            raise MetricsError("median scaling needs a positive median predicted depth")
        return float(np.median(gt)) / pred_median, 0.0
    # Least squares on centred values (the closed form of lstsq on [pred, 1]) stays
    # accurate in float64 for millions of pixels without building an (N, 2) matrix.
    pred_mean, gt_mean = pred.mean(), gt.mean()
    pred_var = float(np.mean((pred - pred_mean) ** 2))
    if pred_var <= 0:
        raise MetricsError("scale-and-shift alignment needs a non-constant predicted depth")
    scale = float(np.mean((pred - pred_mean) * (gt - gt_mean))) / pred_var
    return scale, float(gt_mean - scale * pred_mean)


def _valid_depth_pixels(
    gt_maps: np.ndarray, valid: np.ndarray | None, max_depth: float | None
) -> np.ndarray:
    """(S, H, W) bool: GT depth finite, > 0, below ``max_depth`` and inside ``valid``."""
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(gt_maps) & (gt_maps > 0)
        if max_depth is not None:
            mask &= gt_maps < max_depth
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != gt_maps.shape:
            raise MetricsError(f"valid mask must be {gt_maps.shape}, got {valid.shape}")
        mask &= valid
    if not mask.any():
        raise MetricsError("no valid ground-truth depth pixel (need gt > 0 and finite)")
    return mask


def _per_frame_mean(values: np.ndarray, frame_of_pixel: np.ndarray, frames: int) -> np.ndarray:
    """(S,) mean of per-pixel ``values`` within each frame; NaN for a frame without pixels."""
    pixels_per_frame = np.bincount(frame_of_pixel, minlength=frames).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(frame_of_pixel, weights=values, minlength=frames) / pixels_per_frame


def depth_errors(
    pred_depth: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    alignment: DepthAlignment = "median",
    max_depth: float | None = None,
) -> DepthMetrics:
    """AbsRel and delta < 1.25 of a depth video after one per-sequence alignment.

    Valid pixels are ``gt > 0``, finite, ``gt < max_depth`` when given (MonST3R uses 70 for
    Sintel and Bonn), and ``valid`` when given. The alignment (median scaling, or least-squares
    scale and shift in depth space) is fitted once on all valid pixels of the clip. As in
    MonST3R, AbsRel uses the aligned depth as is, and the delta ratio clamps it at 1e-5.

    Args:
        pred_depth: (S, H, W) predicted depth, any scale.
        gt_depth: (S, H, W) true depth (0 or NaN where unknown).
        valid: optional (S, H, W) bool, extra pixels to keep (e.g. a dynamic-region mask).
        alignment: "median" or "scale_shift".
        max_depth: optional upper bound on ground-truth depth, GT units.

    Returns:
        DepthMetrics.

    Raises:
        MetricsError: shapes differ, no valid pixel, or the prediction is not finite there.
    """
    # Over 60 lines only through its docstring; the body is ~30 lines.
    if alignment not in ("median", "scale_shift"):
        raise MetricsError(f"unknown depth alignment {alignment!r}: use median or scale_shift")
    pred_maps = np.asarray(pred_depth)
    gt_maps = np.asarray(gt_depth)
    if pred_maps.ndim != 3 or pred_maps.shape != gt_maps.shape:
        raise MetricsError(
            f"depth maps must both be (S, H, W) of one shape, "
            f"got {pred_maps.shape} and {gt_maps.shape}"
        )
    mask = _valid_depth_pixels(gt_maps, valid, max_depth)
    # Work on the valid pixels only: a 65-frame 518 x 518 clip would need ~140 MB per
    # float64 map otherwise.
    frame_of_pixel = np.nonzero(mask)[0]
    pred = pred_maps[mask].astype(np.float64)
    gt = gt_maps[mask].astype(np.float64)
    if not np.isfinite(pred).all():
        raise MetricsError("predicted depth is NaN or infinite on valid ground-truth pixels")

    scale, shift = _fit_depth_alignment(pred, gt, alignment)
    aligned = scale * pred + shift
    relative_error = np.abs(aligned - gt) / gt
    clamped = np.maximum(aligned, _MIN_DEPTH_FOR_RATIO)
    within = (np.maximum(clamped / gt, gt / clamped) < 1.25).astype(np.float64)
    return DepthMetrics(
        abs_rel=float(relative_error.mean()),
        delta_1_25=float(within.mean()),
        abs_rel_per_frame=_per_frame_mean(relative_error, frame_of_pixel, len(mask)),
        delta_1_25_per_frame=_per_frame_mean(within, frame_of_pixel, len(mask)),
        alignment=alignment,
        scale=scale,
        shift=shift,
        valid_pixels=int(len(gt)),
    )
