"""A Reconstruction against its ground truth: every metric in one report, as a table or JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from page4d_viewer.evaluation.depth import DepthMetrics, depth_errors
from page4d_viewer.evaluation.errors import DegenerateTrajectoryError, MetricsError
from page4d_viewer.evaluation.masks import mask_average_precision, mask_iou
from page4d_viewer.evaluation.tracks import track_errors
from page4d_viewer.evaluation.trajectory import TrajectoryMetrics, trajectory_errors
from page4d_viewer.result.cameras import ESTIMATED_VARIANTS
from page4d_viewer.result.mask import dynamic_probability
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import DEFAULT_MASK_THRESHOLD
from page4d_viewer.sources.groundtruth import GroundTruth, GroundTruthError

EVALUATED_VARIANTS = ESTIMATED_VARIANTS
"""Camera variants of a Reconstruction that the report scores, in the order it lists them:
the camera head's masked and unmasked cameras, then the geometric pair."""

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


@dataclass(frozen=True)
class EvaluationReport:
    """Metrics of one Reconstruction against ground truth, one trajectory row per variant.

    Attributes:
        trajectory: camera variant ("masked", "unmasked", "geometry_masked",
            "geometry_unmasked") -> its TrajectoryMetrics.
        depth: alignment ("median", "scale_shift") -> DepthMetrics; empty without GT depth.
        mask_iou: IoU of the thresholded dynamic probability vs the GT mask; None without either.
        mask_ap: average precision of the dynamic probability; None without either.
        notes: one line per metric that could not be computed, and why.
        tracks: the point tracks against their ground truth (`evaluation.tracks.track_errors`),
            or None without tracks or ground-truth tracks.
    """

    trajectory: dict[str, TrajectoryMetrics] = field(default_factory=dict)
    depth: dict[str, DepthMetrics] = field(default_factory=dict)
    mask_iou: float | None = None
    mask_ap: float | None = None
    notes: list[str] = field(default_factory=list)
    tracks: dict[str, float] | None = None

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
        tracks = [] if self.tracks is None else [_tracks_line(self.tracks)]
        if not rows:
            headline = [] if tracks else ["no metric could be computed"]
            return "\n".join([*headline, *tracks, *(f"note: {n}" for n in self.notes)])
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
        lines.extend(tracks)
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
                "tracks": self.tracks,
            }
        )


def _tracks_line(scores: dict[str, float]) -> str:
    return (
        f"tracks: median 2-D error {scores['median_px']:.2f} px (no motion "
        f"{scores['still_median_px']:.2f}), within 2 px {scores['within_2px']:.3f} "
        f"({scores['still_within_2px']:.3f}), visibility accuracy "
        f"{scores['visibility_accuracy']:.3f}, over {int(scores['points'])} points"
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
    depth_rows: dict[str, DepthMetrics] = {}
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
    iou, ap = _mask_metrics(recon, mask, region, mask_threshold, notes)
    tracks = track_errors(recon)
    if recon.tracks is not None and tracks is None:
        notes.append("no ground-truth tracks (they exist for synthetic scenes): tracks not scored")
    return EvaluationReport(trajectory, depth_rows, iou, ap, notes, tracks)


def _mask_metrics(
    recon: Reconstruction,
    mask: np.ndarray | None,
    region: np.ndarray | None,
    threshold: float,
    notes: list[str],
) -> tuple[float | None, float | None]:
    """(IoU, AP) of the dynamic probability against the GT mask; (None, None) without either."""
    if mask is None or recon.mask_score is None:
        missing = "ground-truth dynamic mask" if mask is None else "mask score in the result"
        notes.append(f"no {missing}: mask IoU and AP not computed")
        return None, None
    score = dynamic_probability(recon.mask_score)
    iou = mask_iou(score, mask, threshold, valid=region)
    ap = mask_average_precision(score, mask, valid=region)
    if math.isnan(ap):
        notes.append("the ground-truth mask has no dynamic pixel: mask AP is undefined")
    return iou, ap


def _trajectory_rows(
    recon: Reconstruction, gt_extrinsics: np.ndarray | None, notes: list[str]
) -> dict[str, TrajectoryMetrics]:
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
