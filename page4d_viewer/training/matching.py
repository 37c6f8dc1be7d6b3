"""Training the match head and the depth through solved poses.

Two loss terms, both off by default (``LossWeights.match``, ``LossWeights.pose``):

* **match** (LoFTR's coarse-to-fine supervision): the queries are the patch centres of each
  pair's reference frame (``model.match_head.patch_centres``), their exact positions in the
  target frame come from the renderer
  (:func:`page4d_viewer.sources.synthetic.track_ground_truth`). The coarse term is the
  cross-entropy of the dual-softmax assignment: ``-log P[i, j*]`` where query i lands in
  target patch j*, and ``-log P[i, unmatched]`` where it is occluded or out of view. The
  refinement term is a Huber loss in pixels (delta 1 px) on the soft-argmax position, in a
  window centred on the *true* patch (as LoFTR trains its fine stage on ground-truth coarse
  matches), weighted by ``LossWeights.match_refine``.
* **pose** (Pi3's all-pairs relative pose loss): poses solved by
  :func:`page4d_viewer.model.pose_solver.solve_poses` from the network's own depth, its
  field of view and the match head's matches (positions and confidences, as inference makes
  them), weighted by the mask's keep probability on masked steps. For every ordered pair of
  frames the relative rotation and translation are compared with the truth, in the same
  normalised units and with the same scaled Huber as the camera loss; the gradient flows
  through the solver into the depth, the matches and the mask.

Pairs are :func:`page4d_viewer.model.pose_solver.keyframe_pairs` of the training clip, the
pairs inference solves with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from page4d_viewer.model.match_head import patch_centres, patch_index
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs, solve_poses

if TYPE_CHECKING:
    from page4d_viewer.model.match_head import MatchFeatures, MatchHead
    from page4d_viewer.model.network import ModelOutput
    from page4d_viewer.sources.synthetic import GroundTruthTracks
    from page4d_viewer.training.losses import LossWeights, Targets

_Value = TypeVar("_Value")

MATCH_HUBER_DELTA_PX = 1.0
"""Pixels where the refinement loss turns from quadratic to linear."""

_MIN_FIELD_OF_VIEW = 0.05  # radians; a dead field of view (ReLU at 0) would be an infinite focal
_ROTATION_EPS = 1e-12  # keeps the rotation error's square root differentiable at 0


def predicted(value: _Value | None, name: str) -> _Value:
    """A ModelOutput (or Targets) field a loss needs; ValueError when it is missing."""
    if value is None:
        raise ValueError(f"the training step has no {name}, which the loss needs")
    return value


def match_queries(image_hw: tuple[int, int], patch_size: int) -> npt.NDArray[np.float64]:
    """(N, 2) float64 query pixels (x, y): the patch centres, as the match head uses them."""
    grid = (image_hw[0] // patch_size, image_hw[1] // patch_size)
    return patch_centres(grid, patch_size, dtype=torch.float64).numpy()


def clip_match_truth(
    tracks_of: Callable[[int], GroundTruthTracks],
    frames: Sequence[int] | npt.NDArray[np.integer],
    pairs: Sequence[tuple[int, int]],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Exact positions of each pair's reference queries in its target frame.

    Args:
        tracks_of: ``tracks_of(source_frame) -> GroundTruthTracks`` of the match queries
            drawn on that source frame (cached by the caller).
        frames: the source-frame index of every input frame.
        pairs: (reference, target) input-frame positions.

    Returns:
        target_xy (P, N, 2) float32 (the query itself where not visible) and visible (P, N)
        bool: seen, unoccluded, in the target frame.
    """
    target_xy, visible = [], []
    for reference, target in pairs:
        truth = tracks_of(int(frames[reference]))
        xy = truth.tracks[int(frames[target])]
        seen = truth.visible[int(frames[target])] & np.asarray(np.isfinite(xy).all(axis=-1))
        queries = truth.tracks[truth.query_frame]
        target_xy.append(np.where(seen[:, None], xy, queries))
        visible.append(seen)
    return np.stack(target_xy).astype(np.float32), np.stack(visible)


def coarse_match_loss(log_probs: Tensor, target_patch: Tensor) -> Tensor:
    """Cross-entropy of the dual-softmax assignment against the true patches.

    Args:
        log_probs: (P, N + 1, M + 1) from ``model.match_head.assignment_log_probs``.
        target_patch: (P, N) int64 true target patch of each query, -1 where unmatched.

    Returns:
        Scalar, the mean over all queries of ``-log P[i, j*]`` (``j* = M``: the bin).
    """
    queries, columns = log_probs.shape[1] - 1, log_probs.shape[2] - 1
    column = torch.where(target_patch < 0, torch.full_like(target_patch, columns), target_patch)
    picked = log_probs[:, :queries].gather(-1, column[..., None])[..., 0]
    return -picked.mean()


def refine_loss(predicted_xy: Tensor, target_xy: Tensor, visible: Tensor) -> Tensor:
    """Huber loss (pixels) of refined positions over the visible queries.

    Args:
        predicted_xy, target_xy: (P, N, 2) pixel (x, y).
        visible: (P, N) bool.
    """
    huber = F.huber_loss(predicted_xy, target_xy, delta=MATCH_HUBER_DELTA_PX, reduction="none")
    mask = visible.to(huber.dtype)
    return (huber.sum(-1) * mask).sum() / mask.sum().clamp(min=1)


def match_loss(
    head: MatchHead, features: MatchFeatures, targets: Targets, weights: LossWeights
) -> Tensor:
    """Coarse cross-entropy plus ``weights.match_refine`` times the refinement loss (unweighted
    by ``weights.match``), averaged over the batch."""
    pairs = _pair_tensor(targets.match_pairs, features.coarse.device)
    grid = (int(features.coarse.shape[2]), int(features.coarse.shape[3]))
    patch = head.config.patch_size
    target_xy = predicted(targets.match_target_xy, "match_target_xy")
    target_visible = predicted(targets.match_visible, "match_visible")
    total = features.coarse.new_zeros(())
    for item in range(features.coarse.shape[0]):
        clip = features.clip(item)
        truth_xy = target_xy[item].to(features.coarse.dtype)
        visible = target_visible[item]
        true_patch = patch_index(truth_xy, grid, patch)
        true_patch = torch.where(visible, true_patch, torch.full_like(true_patch, -1))
        coarse = coarse_match_loss(head.assignment(clip, pairs), true_patch)
        refined = head.refine(clip, pairs, true_patch.clamp(min=0))
        total = total + coarse + weights.match_refine * refine_loss(refined, truth_xy, visible)
    return total / features.coarse.shape[0]


def intrinsics_from_pose_encoding(pose_enc: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """(S, 3, 3) pinhole matrices of (S, 9) pose encodings (principal point at the centre,
    as ``geometry.pose_encoding_to_cameras``)."""
    height, width = image_hw
    fov = pose_enc[:, 7:9].clamp(min=_MIN_FIELD_OF_VIEW)
    intrinsics = pose_enc.new_zeros(pose_enc.shape[0], 3, 3)
    intrinsics[:, 0, 0] = (width / 2.0) / torch.tan(fov[:, 1] / 2.0)
    intrinsics[:, 1, 1] = (height / 2.0) / torch.tan(fov[:, 0] / 2.0)
    intrinsics[:, 0, 2] = width / 2.0
    intrinsics[:, 1, 2] = height / 2.0
    intrinsics[:, 2, 2] = 1.0
    return intrinsics


def keep_probability_map(mask_score: Tensor, patch_size: int) -> Tensor:
    """(S, H, W) keep probability ``m + 0.5`` of (S, h, w) mask scores, constant per patch."""
    keep = mask_score + 0.5
    return keep.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)


def relative_rotation_errors(pred: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation (radians, chordal approximation) and translation errors of all relative poses.

    Args:
        pred, truth: (S, 3, 4) camera-from-world extrinsics.

    Returns:
        rotation (S * (S - 1),) ``|R_pred_ij - R_true_ij|_F / sqrt 2`` (the angle for small
        errors) and translation difference (S * (S - 1), 3), over ordered pairs i != j of
        the relative pose "camera j from camera i".
    """
    frames = pred.shape[0]
    ordered = torch.tensor(
        [(i, j) for i in range(frames) for j in range(frames) if i != j], device=pred.device
    ).reshape(-1, 2)
    first, second = ordered[:, 0], ordered[:, 1]

    def relative(extrinsics: Tensor) -> tuple[Tensor, Tensor]:
        R, t = extrinsics[:, :, :3], extrinsics[:, :, 3]
        R_ji = R[second] @ R[first].transpose(-1, -2)
        t_ji = t[second] - (R_ji @ t[first][..., None])[..., 0]
        return R_ji, t_ji

    R_pred, t_pred = relative(pred)
    R_true, t_true = relative(truth)
    squared = (R_pred - R_true).square().sum(dim=(-1, -2))
    rotation = (squared + _ROTATION_EPS).sqrt() / math.sqrt(2.0)
    return rotation, t_pred - t_true


def relative_pose_loss(pred: Tensor, truth: Tensor, weights: LossWeights) -> Tensor:
    """Pi3's all-pairs relative pose loss on (S, 3, 4) extrinsics (scaled Huber, as the
    camera loss: slope 1 beyond ``weights.camera_huber_delta``)."""
    rotation, translation = relative_rotation_errors(pred, truth)
    delta = weights.camera_huber_delta
    rotation_term = F.huber_loss(rotation, torch.zeros_like(rotation), delta=delta) / delta
    translation_term = F.huber_loss(translation, torch.zeros_like(translation), delta=delta)
    return weights.rotation * rotation_term + weights.translation * translation_term / delta


def solve_clip_poses(
    head: MatchHead, output: ModelOutput, item: int, pairs: list[tuple[int, int]], masked: bool
) -> Tensor:
    """(S, 3, 4) float64 poses of batch item ``item`` solved from its own depth and matches.

    Args:
        head: the match head.
        output: the network's ModelOutput (depth, pose_enc, mask_score, match_features).
        item: batch index.
        pairs: keyframe pairs of the clip.
        masked: weight the matches by the mask's keep probability.
    """
    depth = predicted(output.depth, "depth")[item, ..., 0].double()
    image_hw = (int(depth.shape[-2]), int(depth.shape[-1]))
    features = predicted(output.match_features, "match_features")
    matches = head.match(features.clip(item), pairs, image_hw)
    matches = Matches(
        matches.reference,
        matches.target,
        matches.reference_xy.double(),
        matches.target_xy.double(),
        matches.weight.double(),
        matches.source,
    )
    # The field of view is the camera head's to learn; the pose loss trains depth and matches.
    intrinsics = intrinsics_from_pose_encoding(output.pose_enc[item].detach().double(), image_hw)
    point_weight = None
    if masked and output.mask_score is not None:
        point_weight = keep_probability_map(output.mask_score[item], head.config.patch_size)
        point_weight = point_weight.double()
    return solve_poses(depth, intrinsics, matches, point_weight).extrinsics


def pose_loss(
    head: MatchHead, output: ModelOutput, targets: Targets, weights: LossWeights, masked: bool
) -> Tensor:
    """The relative pose loss of the solved poses, averaged over the batch (unweighted by
    ``weights.pose``); float32."""
    depth = predicted(output.depth, "depth")
    extrinsics = predicted(targets.extrinsics, "extrinsics")
    total = depth.new_zeros((), dtype=torch.float64)
    batch = depth.shape[0]
    for item in range(batch):
        solved = solve_clip_poses(head, output, item, list(targets.match_pairs), masked)
        total = total + relative_pose_loss(solved, extrinsics[item].double(), weights)
    return (total / batch).float()


def quaternion_to_matrix(quaternion_xyzw: Tensor) -> Tensor:
    """(..., 3, 3) rotations of (..., 4) quaternions (x, y, z, w), normalised first."""
    x, y, z, w = F.normalize(quaternion_xyzw, dim=-1).unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
        (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
        (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def correspondence_statistics(
    head: MatchHead, output: ModelOutput, targets: Targets, masked: bool, pose: bool
) -> dict[str, float]:
    """Logged numbers (no gradient): how good the matches and the solved poses are.

    Returns:
        ``match_px``: median error (pixels) of the inference matches (best patch, refined)
        over visible queries; ``still_match_px``: that of guessing no motion;
        ``match_2px``: share of visible queries matched within 2 px; with ``pose``,
        ``pose_deg`` and ``camera_deg``: mean relative rotation error (degrees) over all frame
        pairs of the solved poses and of the camera head (else 0).
    """
    names = ("match_px", "still_match_px", "match_2px", "pose_deg", "camera_deg")
    values: dict[str, float | None] = dict.fromkeys(names)
    features = predicted(output.match_features, "match_features")
    depth = predicted(output.depth, "depth")
    target_xy = predicted(targets.match_target_xy, "match_target_xy")
    target_visible = predicted(targets.match_visible, "match_visible")
    with torch.no_grad():
        image_hw = (int(depth.shape[2]), int(depth.shape[3]))
        errors, still, pose_errors, camera_errors = [], [], [], []
        for item in range(features.coarse.shape[0]):
            matches = head.match(features.clip(item), list(targets.match_pairs), image_hw)
            visible = target_visible[item]
            truth = target_xy[item].to(matches.target_xy.dtype)
            errors.append((matches.target_xy - truth).norm(dim=-1)[visible])
            still.append((matches.reference_xy - truth).norm(dim=-1)[visible])
            if pose:
                truth_extrinsics = predicted(targets.extrinsics, "extrinsics")[item].double()
                solved = solve_clip_poses(head, output, item, list(targets.match_pairs), masked)
                pose_errors.append(relative_rotation_errors(solved, truth_extrinsics)[0])
                camera = _camera_head_extrinsics(output.pose_enc[item]).double()
                camera_errors.append(relative_rotation_errors(camera, truth_extrinsics)[0])
        error, still_error = torch.cat(errors), torch.cat(still)
        if error.numel():
            values["match_px"] = float(error.median())
            values["still_match_px"] = float(still_error.median())
            values["match_2px"] = float((error < 2).double().mean())
        if pose_errors:
            values["pose_deg"] = math.degrees(float(torch.cat(pose_errors).mean()))
            values["camera_deg"] = math.degrees(float(torch.cat(camera_errors).mean()))
    return {name: 0.0 if value is None else value for name, value in values.items()}


def _camera_head_extrinsics(pose_enc: Tensor) -> Tensor:
    """(S, 3, 4) camera-from-world of (S, 9) pose encodings."""
    rotation = quaternion_to_matrix(pose_enc[:, 3:7])
    return torch.cat((rotation, pose_enc[:, :3, None]), dim=-1)


def _pair_tensor(pairs: Sequence[tuple[int, int]], device: torch.device) -> Tensor:
    return torch.as_tensor(list(pairs), dtype=torch.int64, device=device).reshape(-1, 2)


def training_pairs(num_frames: int) -> list[tuple[int, int]]:
    """The (reference, target) pairs of a training clip: the keyframe pairs inference uses."""
    return keyframe_pairs(num_frames)
