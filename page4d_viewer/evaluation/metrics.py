"""Evaluation metrics, gathered: trajectory (ATE/RPE), video depth, dynamic mask, the report.

Each lives in its own module (`trajectory`, `depth`, `masks`, `report`); this module
re-exports them for callers that want one import.
"""

from page4d_viewer.evaluation.depth import DepthAlignment, DepthMetrics, depth_errors
from page4d_viewer.evaluation.errors import DegenerateTrajectoryError, MetricsError
from page4d_viewer.evaluation.masks import average_precision, mask_average_precision, mask_iou
from page4d_viewer.evaluation.report import (
    EVALUATED_VARIANTS,
    EvaluationReport,
    evaluate_reconstruction,
)
from page4d_viewer.evaluation.trajectory import TrajectoryMetrics, trajectory_errors

__all__ = [
    "EVALUATED_VARIANTS",
    "DegenerateTrajectoryError",
    "DepthAlignment",
    "DepthMetrics",
    "EvaluationReport",
    "MetricsError",
    "TrajectoryMetrics",
    "average_precision",
    "depth_errors",
    "evaluate_reconstruction",
    "mask_average_precision",
    "mask_iou",
    "trajectory_errors",
]
