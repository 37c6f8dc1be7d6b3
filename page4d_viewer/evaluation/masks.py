"""Dynamic-mask metrics: IoU at a threshold and average precision against a true mask.

The prediction is the dynamic probability of ``result.mask`` (the one the viewer draws),
upsampled to the ground-truth resolution the way the viewer does (each pixel takes its
patch's value), and a pixel counts as dynamic at ``probability >= threshold`` (the overlay's
rule). AP is the area under the precision-recall curve, as
``sklearn.metrics.average_precision_score``. Pixels of all frames of the clip are pooled.
"""

from __future__ import annotations

import math

import numpy as np

from page4d_viewer.evaluation.errors import MetricsError
from page4d_viewer.result.mask import upsample_mask
from page4d_viewer.settings import DEFAULT_MASK_THRESHOLD


def _mask_pixels(
    probability: np.ndarray, gt_mask: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) upsampled probabilities and (N,) labels of the evaluated (all or ``valid``) pixels."""
    score = _probability_at_gt_resolution(probability, gt_mask)
    truth = np.asarray(gt_mask, dtype=bool)
    if valid is None:
        return score.ravel(), truth.ravel()
    valid = np.broadcast_to(np.asarray(valid, dtype=bool), truth.shape)
    return score[valid], truth[valid]


def _probability_at_gt_resolution(probability: np.ndarray, gt_mask: np.ndarray) -> np.ndarray:
    """(S, H, W) float32 dynamic probability, upsampled to the GT's size like the viewer does."""
    probability = np.asarray(probability, dtype=np.float32)
    gt_mask = np.asarray(gt_mask)
    if probability.ndim != 3 or gt_mask.ndim != 3:
        raise MetricsError(
            f"dynamic probability and ground truth must be (S, h, w) and (S, H, W), "
            f"got {probability.shape} and {gt_mask.shape}"
        )
    if len(probability) != len(gt_mask):
        raise MetricsError(
            f"dynamic probability has {len(probability)} frames but ground truth has {len(gt_mask)}"
        )
    if not np.isfinite(probability).all():
        raise MetricsError("dynamic probability contains NaN or infinite values")
    return upsample_mask(probability, *gt_mask.shape[1:])


def mask_iou(
    probability: np.ndarray,
    gt_mask: np.ndarray,
    threshold: float = DEFAULT_MASK_THRESHOLD,
    valid: np.ndarray | None = None,
) -> float:
    """Intersection over union of the thresholded dynamic probability and the true mask.

    The probability is first upsampled to the GT resolution exactly as the viewer does
    (``result.mask.upsample_mask``: each pixel takes its patch's value), then a pixel is
    predicted dynamic where ``probability >= threshold`` (the overlay's rule). Pixels of all
    frames are pooled. When both the prediction and the ground truth are empty the IoU is 1.

    Args:
        probability: (S, h, w) dynamic probability in [0, 1] (``result.mask.
            dynamic_probability``); any resolution.
        gt_mask: (S, H, W) bool, True on dynamic pixels.
        threshold: probability at or above which a pixel counts as dynamic.
        valid: optional (S, H, W) or (H, W) bool, the pixels to evaluate (e.g. not padding).

    Returns:
        IoU in [0, 1].
    """
    score, truth = _mask_pixels(probability, gt_mask, valid)
    predicted = score >= threshold
    union = int(np.count_nonzero(predicted | truth))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(predicted & truth)) / union


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve, as ``sklearn.metrics.average_precision_score``.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds in decreasing
    order (no interpolation), tied scores forming one threshold.

    Args:
        scores: (N,) scores, higher = more likely positive.
        labels: (N,) bool ground truth.

    Returns:
        AP in [0, 1]; NaN when there is no positive label (recall is undefined).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    positives = int(np.count_nonzero(labels))
    if positives == 0:
        return math.nan
    # Recall only grows at thresholds equal to a positive's score, so only those terms of the
    # sum are non-zero. Counting scores >= each such threshold with two plain sorts and
    # searchsorted avoids an argsort of every pixel (several seconds for a whole clip).
    positive_scores = np.sort(scores[labels])
    negative_scores = np.sort(scores[~labels])
    run_starts = np.r_[0, np.flatnonzero(np.diff(positive_scores)) + 1]
    thresholds = positive_scores[run_starts]
    positives_at = np.diff(np.r_[run_starts, positives])
    true_positives = positives - np.searchsorted(positive_scores, thresholds, side="left")
    false_positives = negative_scores.size - np.searchsorted(
        negative_scores, thresholds, side="left"
    )
    precision = true_positives / (true_positives + false_positives)
    return float(np.sum(positives_at * precision) / positives)


def mask_average_precision(
    probability: np.ndarray, gt_mask: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Average precision of the dynamic probability against the true mask, all pixels pooled.

    The probability is upsampled to the GT resolution as in ``mask_iou``; see
    ``average_precision``.

    Args:
        probability: (S, h, w) dynamic probability, higher = more dynamic; any resolution.
        gt_mask: (S, H, W) bool, True on dynamic pixels.
        valid: optional (S, H, W) or (H, W) bool, the pixels to evaluate (e.g. not padding).

    Returns:
        AP in [0, 1]; NaN when the ground truth has no dynamic pixel.
    """
    return average_precision(*_mask_pixels(probability, gt_mask, valid))
