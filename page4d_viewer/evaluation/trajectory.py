"""Camera trajectory metrics: ATE and RPE after a Sim(3) alignment to ground truth.

Conventions follow the PAGE-4D paper, which evaluates like MonST3R and CUT3R: the predicted
camera centres are aligned to the ground truth with a Sim(3) Umeyama fit (rotation,
translation and scale; ``geometry.similarity_align``), then evo computes ATE (translation
part), RPE translation and RPE rotation (degrees) over consecutive frame pairs (delta = 1
frame). Every reported number is the RMSE over frames or pairs, as MonST3R's tables report.

Extrinsics are (S, 3, 4) camera-from-world, OpenCV (see ``geometry.py``). Distances are in the
ground truth's units (metres for TUM RGB-D and Bonn).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from evo.core import lie_algebra
from evo.core import metrics as evo_metrics
from evo.core.trajectory import PosePath3D

from page4d_viewer.evaluation.errors import DegenerateTrajectoryError, MetricsError
from page4d_viewer.geometry import (
    camera_centers,
    invert_rigid,
    similarity_align,
    to_homogeneous,
)

# Below this RMS spread (relative to the trajectory's extent, floor 1 unit) a set of camera
# centres counts as one point: Sim(3) alignment to it is undefined.
_STATIC_RELATIVE_SPREAD = 1e-9

# A rotation block further than this (Frobenius norm of R^T R - I) from orthonormal is rejected;
# anything closer (float16/float32 rounding) is projected onto SO(3), which evo requires.
_ROTATION_TOLERANCE = 1e-2


@dataclass(frozen=True)
class TrajectoryMetrics:
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


def _align_sim3(pred_path: PosePath3D, gt_path: PosePath3D) -> tuple[np.ndarray, np.ndarray, float]:
    """Align ``pred_path`` in place to ``gt_path``; returns (R, t, s) with p' = s R p + t.

    The fit is ``geometry.similarity_align`` on the camera centres (the least-squares optimum
    evo's Umeyama computes too, but defined for collinear ground truth and a static
    prediction, which evo refuses); it is applied in evo's order: scale, then the rigid part.
    """
    similarity = similarity_align(pred_path.positions_xyz, gt_path.positions_xyz)
    pred_path.scale(similarity.scale)
    pred_path.transform(lie_algebra.se3(similarity.rotation, similarity.translation))
    return similarity.rotation, similarity.translation, float(similarity.scale)


def _rpe(
    gt_path: PosePath3D, pred_path: PosePath3D, relation: evo_metrics.PoseRelation
) -> np.ndarray:
    """Per-pair RPE for delta = 1 frame over all pairs (i, i+1), as MonST3R runs evo."""
    rpe = evo_metrics.RPE(relation, delta=1, delta_unit=evo_metrics.Unit.frames, all_pairs=True)
    rpe.process_data((gt_path, pred_path))
    return np.asarray(rpe.error, dtype=np.float64)


def _rmse(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(errors))))


def trajectory_errors(pred_extrinsics: np.ndarray, gt_extrinsics: np.ndarray) -> TrajectoryMetrics:
    """ATE and RPE of a predicted camera trajectory after Sim(3) alignment to ground truth.

    The predicted camera centres are aligned to the true ones with the least-squares Sim(3)
    (``geometry.similarity_align``, Umeyama with scale); evo then computes APE (translation
    part) and RPE (translation part, rotation angle in degrees) with delta = 1 frame, all three
    as RMSE. Rotations are re-orthonormalised (SVD) first, so float16 results are accepted.

    A ground-truth trajectory whose centres all coincide (a tripod shot) has no Sim(3)
    alignment: this raises ``DegenerateTrajectoryError`` rather than reporting a misleading
    ATE of 0 (the fit would shrink the prediction to a point). Collinear ground truth (a
    straight dolly) is fine: the optimum is unique up to a spin about the line, which changes
    neither ATE nor RPE. A static prediction keeps scale 1 and scores the ground truth's spread.

    Args:
        pred_extrinsics: (S, 3, 4) predicted camera-from-world, any scale.
        gt_extrinsics: (S, 3, 4) true camera-from-world for the same S frames.

    Returns:
        TrajectoryMetrics with the RMSEs, per-frame/per-pair errors, aligned centres and Sim(3).

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
    return TrajectoryMetrics(
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


def path_length(extrinsics: np.ndarray) -> float:
    """Length of a (S, 3, 4) camera path: the sum of distances between consecutive centres."""
    centres = camera_centers(extrinsics)
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=-1).sum())
