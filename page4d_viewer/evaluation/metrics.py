"""Evaluation metrics: camera trajectory (via evo), video depth, and dynamic-mask quality.

Conventions follow the PAGE-4D paper, which evaluates like MonST3R and CUT3R:

* **Trajectory.** The predicted camera centres are aligned to the ground truth with a Sim(3)
  Umeyama fit (rotation, translation and scale), then evo computes ATE (translation part),
  RPE translation and RPE rotation (degrees) over consecutive frame pairs (delta = 1 frame).
  Every reported number is the RMSE over frames or pairs, as MonST3R's tables report.
* **Video depth.** One alignment per sequence (not per frame): either median scaling
  (``median(gt) / median(pred)``) or a least-squares scale and shift, both fitted on the valid
  ground-truth pixels of the whole clip (``gt > 0`` and finite, optionally ``gt < max_depth``).
  AbsRel and delta < 1.25 are then pooled over all valid pixels of the clip.
* **Dynamic mask.** IoU at a threshold and average precision (area under the
  precision-recall curve, as ``sklearn.metrics.average_precision_score``) of the dynamic
  probability (``result.mask``), pooled over all pixels of the clip, after upsampling it to the
  ground-truth resolution the way the viewer does (nearest patch).

Extrinsics are (S, 3, 4) camera-from-world, OpenCV (see ``geometry.py``). Distances are in the
ground truth's units (metres for TUM RGB-D and Bonn).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from evo.core import lie_algebra
from evo.core import metrics as evo_metrics
from evo.core.geometry import GeometryException
from evo.core.trajectory import PosePath3D

from page4d_viewer.errors import Page4DError
from page4d_viewer.geometry import invert_rigid, to_homogeneous
from page4d_viewer.result.mask import dynamic_probability, upsample_mask
from page4d_viewer.settings import DEFAULT_MASK_THRESHOLD

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.sources.groundtruth import GroundTruth

logger = logging.getLogger(__name__)

# Camera variants of a Reconstruction, in the order the report lists them.
EVALUATED_VARIANTS = ("masked", "unmasked")

# Below this RMS spread (relative to the trajectory's extent, floor 1 unit) a set of camera
# centres counts as one point: Sim(3) alignment to it is undefined.
_STATIC_RELATIVE_SPREAD = 1e-9

# A rotation block further than this (Frobenius norm of R^T R - I) from orthonormal is rejected;
# anything closer (float16/float32 rounding) is projected onto SO(3), which evo requires.
_ROTATION_TOLERANCE = 1e-2

# Short column titles for the CLI table (the dict keys stay descriptive).
_COLUMN_TITLES = {
    "variant": "variant",
    "ate": "ATE",
    "rpe_trans": "RPE trans",
    "rpe_rot_deg": "RPE rot(deg)",
    "abs_rel_median": "AbsRel(med)",
    "delta_1_25_median": "d<1.25(med)",
    "abs_rel_scale_shift": "AbsRel(s&s)",
    "delta_1_25_scale_shift": "d<1.25(s&s)",
    "mask_iou": "mask IoU",
    "mask_ap": "mask AP",
}

# MonST3R clamps the aligned prediction to this before the delta ratio (never divide by <= 0).
_MIN_DEPTH_FOR_RATIO = 1e-5

DepthAlignment = Literal["median", "scale_shift"]


class MetricsError(Page4DError):
    """Arrays handed to a metric are unusable (shape, NaN, too few frames)."""


class DegenerateTrajectoryError(MetricsError):
    """The ground-truth camera does not move, so Sim(3) alignment (and ATE/RPE) is undefined."""


# --------------------------------------------------------------------------------------------
# Trajectory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrajectoryErrors:
    """Pose errors of a predicted trajectory against ground truth after Sim(3) alignment.

    Attributes:
        ate: absolute trajectory error, RMSE of the aligned centre distances (GT units).
        rpe_trans: relative pose error, translation part, RMSE over consecutive pairs.
        rpe_rot: relative pose error, rotation angle in degrees, RMSE over consecutive pairs.
        ate_per_frame: (S,) distance between aligned predicted and true camera centres.
        rpe_trans_per_frame: (S-1,) translation error of the relative pose (i, i+1).
        rpe_rot_per_frame: (S-1,) rotation error of the relative pose (i, i+1), degrees.
        aligned_centers: (S, 3) predicted camera centres after alignment, GT world frame.
        gt_centers: (S, 3) ground-truth camera centres.
        scale: Sim(3) scale s.
        rotation: (3, 3) Sim(3) rotation R.
        translation: (3,) Sim(3) translation t; ``aligned = s * R @ predicted + t``.
    """

    ate: float
    rpe_trans: float
    rpe_rot: float
    ate_per_frame: np.ndarray
    rpe_trans_per_frame: np.ndarray
    rpe_rot_per_frame: np.ndarray
    aligned_centers: np.ndarray
    gt_centers: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the three statistics and the Sim(3), no per-frame arrays."""
        return {
            "ate": self.ate,
            "rpe_trans": self.rpe_trans,
            "rpe_rot_deg": self.rpe_rot,
            "sim3_scale": self.scale,
            "sim3_rotation": self.rotation.tolist(),
            "sim3_translation": self.translation.tolist(),
        }


def _checked_extrinsics(extrinsics: np.ndarray, name: str) -> np.ndarray:
    """(S, 3, 4) float64 camera-from-world with rotations projected onto SO(3)."""
    extrinsics = np.asarray(extrinsics, dtype=np.float64)
    if extrinsics.ndim != 3 or extrinsics.shape[1:] not in ((3, 4), (4, 4)):
        raise MetricsError(f"{name} must have shape (S, 3, 4), got {extrinsics.shape}")
    extrinsics = extrinsics[:, :3, :4]
    if not np.isfinite(extrinsics).all():
        bad = int(np.flatnonzero(~np.isfinite(extrinsics).all(axis=(1, 2)))[0])
        raise MetricsError(f"{name} contains NaN or infinite values (first at frame {bad})")
    rotation = extrinsics[:, :, :3]
    gram_error = np.linalg.norm(
        np.swapaxes(rotation, 1, 2) @ rotation - np.eye(3), axis=(1, 2)
    ) + np.abs(np.linalg.det(rotation) - 1.0)
    if (gram_error > _ROTATION_TOLERANCE).any():
        bad = int(np.argmax(gram_error > _ROTATION_TOLERANCE))
        raise MetricsError(f"{name}[{bad}] has a rotation block that is not a rotation")
    # Stored results are float16/float32; evo's SO(3) check wants 1e-6, so re-orthonormalise.
    u, _, vt = np.linalg.svd(rotation)
    fix = np.ones((len(rotation), 3))
    fix[:, 2] = np.sign(np.linalg.det(u @ vt))
    out = extrinsics.copy()
    out[:, :, :3] = (u * fix[:, None, :]) @ vt
    return out


def _pose_path(extrinsics: np.ndarray) -> PosePath3D:
    """An evo path of camera poses (camera-to-world, as evo and TUM expect)."""
    poses_world_cam = to_homogeneous(invert_rigid(extrinsics))
    return PosePath3D(poses_se3=list(poses_world_cam))


def _rms_spread(points: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum((points - points.mean(axis=0)) ** 2, axis=1))))


def _is_static(centers: np.ndarray) -> bool:
    extent = max(1.0, float(np.abs(centers).max()))
    return _rms_spread(centers) <= _STATIC_RELATIVE_SPREAD * extent


def _umeyama_rank_deficient(
    pred_centers: np.ndarray, gt_centers: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sim(3) least-squares fit where evo refuses: collinear GT or a static prediction.

    evo's Umeyama rejects a covariance of rank < 2. For collinear ground truth the optimum is
    still well defined up to a spin about the line, which changes neither ATE nor RPE, so any
    optimal rotation from the SVD will do. A static prediction has no scale to fit: it maps to
    the GT mean with scale 1, and its ATE is the GT's spread.
    """
    pred_mean = pred_centers.mean(axis=0)
    gt_mean = gt_centers.mean(axis=0)
    pred_var = np.mean(np.sum((pred_centers - pred_mean) ** 2, axis=1))
    if _is_static(pred_centers):
        return np.eye(3), gt_mean - pred_mean, 1.0
    covariance = (gt_centers - gt_mean).T @ (pred_centers - pred_mean) / len(gt_centers)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1.0
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / pred_var)
    return rotation, gt_mean - scale * rotation @ pred_mean, scale


def _align_sim3(pred_path: PosePath3D, gt_path: PosePath3D) -> tuple[np.ndarray, np.ndarray, float]:
    """Align ``pred_path`` in place to ``gt_path``; returns (R, t, s) with p' = s R p + t."""
    try:
        rotation, translation, scale = pred_path.align(gt_path, correct_scale=True)
    except GeometryException:
        logger.debug("evo's Umeyama refused a rank-deficient covariance; fitting the fallback")
        rotation, translation, scale = _umeyama_rank_deficient(
            pred_path.positions_xyz, gt_path.positions_xyz
        )
        # Same order as evo's align(): scale the translations, then apply the rigid part.
        pred_path.scale(scale)
        pred_path.transform(lie_algebra.se3(rotation, translation))
    return np.asarray(rotation), np.asarray(translation), float(scale)


def _rpe(
    gt_path: PosePath3D, pred_path: PosePath3D, relation: evo_metrics.PoseRelation
) -> np.ndarray:
    """Per-pair RPE for delta = 1 frame over all pairs (i, i+1), as MonST3R runs evo."""
    rpe = evo_metrics.RPE(relation, delta=1, delta_unit=evo_metrics.Unit.frames, all_pairs=True)
    rpe.process_data((gt_path, pred_path))
    return np.asarray(rpe.error, dtype=np.float64)


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def trajectory_errors(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> TrajectoryErrors:
    """ATE and RPE of a predicted camera trajectory after Sim(3) alignment to ground truth.

    The predicted camera centres are aligned to the true ones with evo's Umeyama fit
    (``correct_scale=True``); evo then computes APE (translation part) and RPE (translation
    part, rotation angle in degrees) with delta = 1 frame. All three summaries are RMSE.
    Rotations are re-orthonormalised (SVD) first, so float16 results are accepted.

    A ground-truth trajectory whose centres all coincide (a tripod shot) has no Sim(3)
    alignment: this raises ``DegenerateTrajectoryError`` rather than reporting a misleading
    ATE of 0 (the fit would shrink the prediction to a point). Collinear ground truth (a
    straight dolly) is fine: evo refuses it, so we fit the same least-squares optimum ourselves.

    Args:
        pred_extrinsics: (S, 3, 4) predicted camera-from-world, any scale.
        gt_extrinsics: (S, 3, 4) true camera-from-world for the same S frames.

    Returns:
        TrajectoryErrors with the RMSEs, per-frame/per-pair errors, aligned centres and Sim(3).

    Raises:
        MetricsError: fewer than 2 frames, different lengths, NaN/inf, or non-rotation blocks.
        DegenerateTrajectoryError: the ground-truth camera does not move.
    """
    pred = _checked_extrinsics(pred_extrinsics, "predicted extrinsics")
    gt = _checked_extrinsics(gt_extrinsics, "ground-truth extrinsics")
    if len(pred) != len(gt):
        raise MetricsError(
            f"predicted and ground-truth trajectories differ in length ({len(pred)} vs {len(gt)})"
        )
    if len(gt) < 2:
        raise MetricsError(f"trajectory metrics need at least 2 frames, got {len(gt)}")
    gt_path = _pose_path(gt)
    if _is_static(gt_path.positions_xyz):
        raise DegenerateTrajectoryError(
            "the ground-truth camera does not move (all centres coincide): "
            "Sim(3) alignment, ATE and RPE are undefined"
        )
    pred_path = _pose_path(pred)
    rotation, translation, scale = _align_sim3(pred_path, gt_path)

    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((gt_path, pred_path))
    ate_per_frame = np.asarray(ape.error, dtype=np.float64)
    rpe_trans = _rpe(gt_path, pred_path, evo_metrics.PoseRelation.translation_part)
    rpe_rot = _rpe(gt_path, pred_path, evo_metrics.PoseRelation.rotation_angle_deg)
    return TrajectoryErrors(
        ate=ape.get_statistic(evo_metrics.StatisticsType.rmse),
        rpe_trans=_rmse(rpe_trans),
        rpe_rot=_rmse(rpe_rot),
        ate_per_frame=ate_per_frame,
        rpe_trans_per_frame=rpe_trans,
        rpe_rot_per_frame=rpe_rot,
        aligned_centers=np.asarray(pred_path.positions_xyz, dtype=np.float64),
        gt_centers=np.asarray(gt_path.positions_xyz, dtype=np.float64),
        scale=scale,
        rotation=rotation,
        translation=translation,
    )


# --------------------------------------------------------------------------------------------
# Video depth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DepthErrors:
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
        """JSON-ready summary without the per-frame arrays."""
        return {
            "abs_rel": self.abs_rel,
            "delta_1_25": self.delta_1_25,
            "alignment": self.alignment,
            "scale": self.scale,
            "shift": self.shift,
            "valid_pixels": self.valid_pixels,
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


def depth_errors(
    pred_depth: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    alignment: DepthAlignment = "median",
    max_depth: float | None = None,
) -> DepthErrors:
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
        DepthErrors.

    Raises:
        MetricsError: shapes differ, no valid pixel, or the prediction is not finite there.
    """
    if alignment not in ("median", "scale_shift"):
        raise MetricsError(f"unknown depth alignment {alignment!r}: use median or scale_shift")
    pred_maps = np.asarray(pred_depth)
    gt_maps = np.asarray(gt_depth)
    if pred_maps.ndim != 3 or pred_maps.shape != gt_maps.shape:
        raise MetricsError(
            f"depth maps must both be (S, H, W) of one shape, "
            f"got {pred_maps.shape} and {gt_maps.shape}"
        )
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
    frames = len(mask)
    pixels_per_frame = np.bincount(frame_of_pixel, minlength=frames).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        abs_rel_per_frame = (
            np.bincount(frame_of_pixel, weights=relative_error, minlength=frames) / pixels_per_frame
        )
        delta_per_frame = (
            np.bincount(frame_of_pixel, weights=within, minlength=frames) / pixels_per_frame
        )
    return DepthErrors(
        abs_rel=float(relative_error.mean()),
        delta_1_25=float(within.mean()),
        abs_rel_per_frame=abs_rel_per_frame,
        delta_1_25_per_frame=delta_per_frame,
        alignment=alignment,
        scale=scale,
        shift=shift,
        valid_pixels=int(len(gt)),
    )


# --------------------------------------------------------------------------------------------
# Dynamic mask
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# A Reconstruction against its ground truth
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of one Reconstruction against ground truth, one trajectory row per variant.

    Attributes:
        trajectory: camera variant ("masked", "unmasked") -> its TrajectoryErrors.
        depth: alignment ("median", "scale_shift") -> DepthErrors; empty without GT depth.
        mask_iou: IoU of the thresholded dynamic probability vs the GT mask; None without either.
        mask_ap: average precision of the dynamic probability; None without either.
        notes: one line per metric that could not be computed, and why.
    """

    trajectory: dict[str, TrajectoryErrors] = field(default_factory=dict)
    depth: dict[str, DepthErrors] = field(default_factory=dict)
    mask_iou: float | None = None
    mask_ap: float | None = None
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per variant: its trajectory errors, then the clip-level depth/mask metrics.

        Depth and mask come from the single depth map and mask score of the Reconstruction,
        so they repeat on each row.
        """
        shared: dict[str, Any] = {}
        for name, errors in self.depth.items():
            shared[f"abs_rel_{name}"] = errors.abs_rel
            shared[f"delta_1_25_{name}"] = errors.delta_1_25
        if self.mask_iou is not None:
            shared["mask_iou"] = self.mask_iou
        if self.mask_ap is not None:
            shared["mask_ap"] = self.mask_ap
        rows = []
        for variant, errors in self.trajectory.items():
            row = {"variant": variant, "ate": errors.ate, "rpe_trans": errors.rpe_trans}
            row["rpe_rot_deg"] = errors.rpe_rot
            rows.append(row | shared)
        if not rows and shared:
            rows.append({"variant": "(no cameras)"} | shared)
        return rows

    def format_table(self) -> str:
        """A plain, aligned text table (one row per variant) followed by the notes."""
        rows = self.rows()
        if not rows:
            return "\n".join(["no metric could be computed", *(f"note: {n}" for n in self.notes)])
        columns = list(dict.fromkeys(key for row in rows for key in row))
        titles = [_COLUMN_TITLES.get(column, column) for column in columns]
        cells = [[_format_cell(row.get(column)) for column in columns] for row in rows]
        widths = [
            max(len(title), *(len(line[i]) for line in cells)) for i, title in enumerate(titles)
        ]
        lines = ["  ".join(title.ljust(widths[i]) for i, title in enumerate(titles))]
        lines.append("  ".join("-" * width for width in widths))
        for line in cells:
            lines.append(
                "  ".join(
                    cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                    for i, cell in enumerate(line)
                )
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rows, per-variant Sim(3), depth fits, notes (NaN becomes None)."""
        return _json_ready(
            {
                "rows": self.rows(),
                "trajectory": {name: e.to_dict() for name, e in self.trajectory.items()},
                "depth": {name: e.to_dict() for name, e in self.depth.items()},
                "mask_iou": self.mask_iou,
                "mask_ap": self.mask_ap,
                "notes": list(self.notes),
            }
        )


def _format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def evaluate_reconstruction(
    recon: Reconstruction,
    gt: GroundTruth | None = None,
    *,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
    max_depth: float | None = None,
) -> EvaluationReport:
    """Compare a Reconstruction's cameras, depth and mask score with ground truth.

    Ground truth comes from ``gt`` and, for whatever it lacks (or when it is None), from the
    Reconstruction itself (``cameras["ground_truth"]``, ``gt_depth``, ``gt_dynamic_mask``).
    GT maps at the clip's resolution are brought to model-input pixels through the
    preprocessing mapping (crop or pad), so depth and mask are compared where the model saw
    the clip. Trajectory rows: "masked" and "unmasked" when present. Depth: both median and
    scale-and-shift alignment. Mask: the dynamic probability (``result.mask``) against the GT.
    A metric that cannot be computed (no GT for it, a static GT camera) becomes a note.

    Args:
        recon: the Reconstruction (S frames of H x W model-input pixels).
        gt: ground truth for the same S frames, e.g. from ``load_ground_truth``.
        mask_threshold: dynamic probability at or above which a pixel counts as moving (IoU).
        max_depth: optional cap on GT depth for the depth metrics (70 for Sintel/Bonn).

    Returns:
        EvaluationReport.

    Raises:
        MetricsError: the ground truth has a different number of frames than the result.
    """
    notes: list[str] = []
    extrinsics, depth, mask, region = _ground_truth_in_model_pixels(recon, gt, notes)
    for name, array in (("cameras", extrinsics), ("depth", depth), ("dynamic mask", mask)):
        if array is not None and len(array) != recon.num_frames:
            raise MetricsError(
                f"ground-truth {name} cover {len(array)} frames but the result has "
                f"{recon.num_frames}"
            )
    trajectory = _trajectory_rows(recon, extrinsics, notes)
    depth_rows: dict[str, DepthErrors] = {}
    if depth is None:
        notes.append("no ground-truth depth: AbsRel and delta < 1.25 not computed")
    else:
        for alignment in ("median", "scale_shift"):
            try:
                depth_rows[alignment] = depth_errors(
                    recon.depth, depth, alignment=alignment, max_depth=max_depth
                )
            except MetricsError as error:
                notes.append(f"depth ({alignment}): {error}")
    iou = ap = None
    if mask is None or recon.mask_score is None:
        missing = "ground-truth dynamic mask" if mask is None else "mask score in the result"
        notes.append(f"no {missing}: mask IoU and AP not computed")
    else:
        score = dynamic_probability(recon.mask_score)
        iou = mask_iou(score, mask, mask_threshold, valid=region)
        ap = mask_average_precision(score, mask, valid=region)
        if math.isnan(ap):
            notes.append("the ground-truth mask has no dynamic pixel: mask AP is undefined")
    return EvaluationReport(trajectory, depth_rows, iou, ap, notes)


def _trajectory_rows(
    recon: Reconstruction, gt_extrinsics: np.ndarray | None, notes: list[str]
) -> dict[str, TrajectoryErrors]:
    if gt_extrinsics is None:
        notes.append("no ground-truth cameras: ATE and RPE not computed")
        return {}
    rows = {}
    for variant in EVALUATED_VARIANTS:
        if variant not in recon.cameras:
            continue
        try:
            rows[variant] = trajectory_errors(recon.cameras[variant].extrinsics, gt_extrinsics)
        except DegenerateTrajectoryError as error:
            notes.append(str(error))
            break
    return rows


def _ground_truth_in_model_pixels(
    recon: Reconstruction, gt: GroundTruth | None, notes: list[str]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(extrinsics, depth, mask, valid region) of the GT, maps at the result's resolution."""
    from page4d_viewer.sources.groundtruth import GroundTruthError

    stored_cameras = recon.cameras.get("ground_truth")
    extrinsics = None if stored_cameras is None else stored_cameras.extrinsics
    depth, mask, region = recon.gt_depth, recon.gt_dynamic_mask, None
    if gt is None:
        return extrinsics, depth, mask, region
    if gt.extrinsics is not None:
        extrinsics = gt.extrinsics
    if gt.image_hw is None:
        return extrinsics, depth, mask, region
    try:
        placed = _place_maps(gt, recon)
    except GroundTruthError as error:
        notes.append(f"ground-truth maps not used: {error}")
        return extrinsics, depth, mask, region
    if placed.depth is not None:
        depth = placed.depth
    if placed.dynamic_mask is not None:
        mask = placed.dynamic_mask
    return extrinsics, depth, mask, placed.valid_region


def _place_maps(gt: GroundTruth, recon: Reconstruction) -> GroundTruth:
    """GT maps resampled into the result's model-input pixels."""
    if gt.image_hw == recon.image_hw:
        return gt
    mapping = recon.metadata.preprocessing.mapping
    if not mapping:
        return gt.resized(recon.image_hw)
    original_hw = tuple(int(v) for v in mapping.get("original_size", ()))
    if len(original_hw) == 2 and gt.image_hw != original_hw:
        gt = gt.resized(original_hw)
    return gt.to_model_input(mapping)
