"""Training losses of PAGE-4D (after VGGT) and the authors' mask-strength schedule.

All losses take torch tensors in the network's output layout (see MODEL.md) and ground truth
already expressed in the first camera's frame and divided by the scene scale
(:func:`normalize_scene_scale`), so the network learns one canonical scale, as VGGT does.

Loss terms:

* camera: Huber loss on the 9-number pose encoding after every refinement step of the camera
  head, step ``k`` of ``n`` weighted ``gamma ** (n - 1 - k)`` so the last step counts most;
* depth and point maps: confidence-weighted regression ``c * |err| - lambda * log c`` plus the
  same weighting on the spatial gradient of the error (it sharpens edges);
* mask (optional, ours, not the authors'): binary cross-entropy between the mask head's
  keep-probability ``m + 0.5`` and the fraction of static pixels in each 14x14 patch;
* track (optional, VGGT's): Huber loss on the tracker's positions of query points of the first
  frame plus visibility BCE (:mod:`page4d_viewer.training.tracks`);
* match and pose (optional, ours): the match head's dual-softmax cross-entropy and refinement
  loss, and Pi3's relative pose loss on poses solved from the network's own depth and matches
  (:mod:`page4d_viewer.training.matching`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.training import matching
from page4d_viewer.training.tracks import track_loss

if TYPE_CHECKING:
    from page4d_viewer.model.match_head import MatchHead
    from page4d_viewer.model.network import ModelOutput
    from page4d_viewer.model.track_head import TrackPredictions

# The released code scales the mask bias by this constant times the schedule value.
# Scenes whose points all sit at the camera centre have no scale; never divide by less.
_MIN_SCENE_SCALE = 1e-6
# Keeps log() and BCE finite when the mask head saturates.
_PROBABILITY_EPS = 1e-6


def mask_alpha(step: int, hold_start: int, hold_end: int) -> float:
    """The authors' mask schedule: 1 until ``hold_start``, cosine decay to 0 at ``hold_end``.

    Args:
        step: optimiser step (0-based).
        hold_start: last step at full strength.
        hold_end: first step at zero strength; ``hold_end <= hold_start`` means a step cut.

    Returns:
        Schedule value in [0, 1].
    """
    if step <= hold_start:
        return 1.0
    if step >= hold_end:
        return 0.0
    progress = (step - hold_start) / (hold_end - hold_start)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def mask_strength(step: int, hold_start: int, hold_end: int) -> float:
    """The mask strength ``alpha`` fed to the network at ``step``: 64 times :func:`mask_alpha`."""
    return RELEASED_MASK_STRENGTH * mask_alpha(step, hold_start, hold_end)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms.

    Attributes:
        camera: weight of the pose-encoding loss (sum over refinement steps).
        camera_step_gamma: decay of earlier refinement steps' weights.
        camera_huber_delta: where the camera Huber loss turns from quadratic to linear.
        translation, rotation, field_of_view: weights inside the pose-encoding loss.
        depth: weight of the depth-map loss.
        points: weight of the point-map loss.
        gradient: weight of the gradient term inside the depth and point losses.
        confidence_log: ``lambda`` in ``c * |err| - lambda * log c``.
        mask: weight of the BCE supervision of the mask head (0 disables it).
        track: weight of the track loss (0: the tracker does not run in training).
        track_visibility: weight of the visibility BCE inside the track loss.
        track_huber_delta: pixels where the track position loss turns from quadratic to linear.
        match: weight of the match head's loss (0: not trained).
        match_refine: weight of the refinement's pixel Huber loss inside the match loss.
        pose: weight of the relative pose loss on poses solved from depth and the match
            head's matches (0: off).
    """

    camera: float = 5.0
    camera_step_gamma: float = 0.6
    camera_huber_delta: float = 0.05
    translation: float = 1.0
    rotation: float = 1.0
    field_of_view: float = 0.5
    depth: float = 1.0
    points: float = 1.0
    gradient: float = 1.0
    confidence_log: float = 0.2
    mask: float = 1.0
    track: float = 0.0
    track_visibility: float = 1.0
    track_huber_delta: float = 1.0
    match: float = 0.0
    match_refine: float = 0.1
    pose: float = 0.0


@dataclass
class Targets:
    """Ground truth for one batch, in the first camera's frame and normalised scale.

    Attributes:
        pose_enc: (B, S, 9) pose encodings of the ground-truth cameras.
        depth: (B, S, H, W) depth along the optical axis.
        world_points: (B, S, H, W, 3) points in the first camera's frame.
        valid: (B, S, H, W) bool, pixels with usable ground truth.
        static_fraction: (B, S, H/14, W/14) fraction of static pixels per patch, or None.
        query_points: (B, N, 2) pixel (x, y) queries in the first frame, or None.
        tracks: (B, S, N, 2) their ground-truth positions in every frame, or None.
        track_visible: (B, S, N) bool, where the query's surface point is seen, or None.
        extrinsics: (B, S, 3, 4) camera-from-first-camera, translation in normalised units,
            or None (needed by the pose loss).
        match_pairs: the (reference, target) frame pairs of the match ground truth.
        match_target_xy: (B, P, N, 2) true positions of each pair's reference queries (the
            patch centres) in its target frame, or None.
        match_visible: (B, P, N) bool, where they are seen in the target frame, or None.
    """

    pose_enc: torch.Tensor
    depth: torch.Tensor
    world_points: torch.Tensor
    valid: torch.Tensor
    static_fraction: torch.Tensor | None = None
    query_points: torch.Tensor | None = None
    tracks: torch.Tensor | None = None
    track_visible: torch.Tensor | None = None
    extrinsics: torch.Tensor | None = None
    match_pairs: tuple[tuple[int, int], ...] = ()
    match_target_xy: torch.Tensor | None = None
    match_visible: torch.Tensor | None = None


def normalize_scene_scale(
    world_points: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """VGGT's scene normalisation: the mean distance of valid points to the first camera.

    Args:
        world_points: (B, S, H, W, 3) points in the first camera's frame.
        valid: (B, S, H, W) bool.

    Returns:
        scale: (B,) mean distance of the valid points to the origin (scene units).
        normalised_points: (B, S, H, W, 3) ``world_points / scale``.
    """
    distance = world_points.norm(dim=-1) * valid
    count = valid.flatten(1).sum(dim=1).clamp(min=1)
    scale = (distance.flatten(1).sum(dim=1) / count).clamp(min=_MIN_SCENE_SCALE)
    return scale, world_points / scale.view(-1, 1, 1, 1, 1)


def camera_loss(
    pose_enc_list: list[torch.Tensor], target: torch.Tensor, weights: LossWeights
) -> torch.Tensor:
    """Huber loss on the pose encoding after every refinement step, later steps weighted more.

    Args:
        pose_enc_list: n tensors (B, S, 9), the camera head's output after each step.
        target: (B, S, 9) ground-truth pose encoding.
        weights: term weights.

    Returns:
        Scalar loss.
    """
    total = target.new_zeros(())
    steps = len(pose_enc_list)
    for index, pred in enumerate(pose_enc_list):
        step_weight = weights.camera_step_gamma ** (steps - 1 - index)
        translation = _huber(pred[..., :3], target[..., :3], weights.camera_huber_delta)
        rotation = _huber(pred[..., 3:7], target[..., 3:7], weights.camera_huber_delta)
        field_of_view = _huber(pred[..., 7:], target[..., 7:], weights.camera_huber_delta)
        term = (
            weights.translation * translation
            + weights.rotation * rotation
            + weights.field_of_view * field_of_view
        )
        total = total + step_weight * term
    return total


def _huber(pred: torch.Tensor, target: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber loss divided by ``delta`` (slope 1 beyond ``delta``, i.e. smooth L1).

    Pose-encoding errors between nearby frames are ~0.01-0.3; an unscaled Huber with delta 1
    is quadratic there and its gradients are too weak next to the depth and point terms (the
    camera head then predicts one pose for all frames). Dividing by delta keeps the slope 1.
    """
    return F.huber_loss(pred, target, delta=delta) / delta


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _gradient_error(
    error: torch.Tensor, confidence: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Confidence-weighted L1 of the spatial gradient of a per-pixel error.

    Args:
        error: (B, S, H, W, C) prediction minus ground truth.
        confidence: (B, S, H, W) confidence >= 1.
        valid: (B, S, H, W) bool.

    Returns:
        Scalar, mean over pixel pairs where both pixels are valid.
    """
    valid = valid.to(error.dtype)
    terms = []
    for dim in (2, 3):
        length = error.shape[dim]
        head = error.narrow(dim, 1, length - 1)
        tail = error.narrow(dim, 0, length - 1)
        pair_valid = valid.narrow(dim, 1, length - 1) * valid.narrow(dim, 0, length - 1)
        pair_conf = 0.5 * (
            confidence.narrow(dim, 1, length - 1) + confidence.narrow(dim, 0, length - 1)
        )
        difference = (head - tail).abs().sum(dim=-1)
        terms.append(_masked_mean(pair_conf * difference, pair_valid))
    return terms[0] + terms[1]


def confidence_regression_loss(
    pred: torch.Tensor,
    confidence: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    weights: LossWeights,
) -> torch.Tensor:
    """VGGT's aleatoric regression: ``c * |err| - lambda * log c`` plus a gradient term.

    Zero for a perfect prediction with confidence 1; the log term lets the network lower
    ``c`` where it cannot be right (occlusion edges, movers) instead of chasing them.

    Args:
        pred: (B, S, H, W, C) prediction (C = 1 for depth, 3 for points).
        confidence: (B, S, H, W) confidence >= 1.
        target: (B, S, H, W, C) ground truth.
        valid: (B, S, H, W) bool.
        weights: term weights.

    Returns:
        Scalar loss.
    """
    error = pred - target
    distance = error.norm(dim=-1)
    mask = valid.to(pred.dtype)
    regression = _masked_mean(confidence * distance, mask)
    log_confidence = _masked_mean(torch.log(confidence), mask)
    gradient = _gradient_error(error, confidence, valid)
    return regression - weights.confidence_log * log_confidence + weights.gradient * gradient


def mask_loss(mask_score: torch.Tensor, static_fraction: torch.Tensor) -> torch.Tensor:
    """BCE between the mask head's keep-probability ``m + 0.5`` and the static fraction.

    The released model adds ``alpha * m`` to the camera tokens' attention logits, so a high
    ``m`` means "attend" (static) and a low one "ignore" (moving); the target follows that.

    Args:
        mask_score: (B, S, h, w) mask score m in (-0.5, 0.5).
        static_fraction: (B, S, h, w) fraction of static pixels per patch, in [0, 1].

    Returns:
        Scalar loss, minus the entropy of the target (so a perfect score gives 0).
    """
    probability = (mask_score + 0.5).clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS)
    target = static_fraction.clamp(0.0, 1.0)
    cross_entropy = F.binary_cross_entropy(probability, target)
    # Subtract the target's own entropy so the loss is 0 exactly when probability == target.
    target_clamped = target.clamp(_PROBABILITY_EPS, 1 - _PROBABILITY_EPS)
    entropy = F.binary_cross_entropy(target_clamped, target)
    return cross_entropy - entropy


def static_fraction_per_patch(dynamic_mask: torch.Tensor, patch_size: int = 14) -> torch.Tensor:
    """Fraction of static pixels in each patch.

    Args:
        dynamic_mask: (B, S, H, W) bool, True on moving objects; H, W multiples of patch_size.
        patch_size: patch side in pixels.

    Returns:
        (B, S, H/patch, W/patch) float in [0, 1].
    """
    batch, frames, height, width = dynamic_mask.shape
    static = (~dynamic_mask).to(torch.float32).reshape(batch * frames, 1, height, width)
    pooled = F.avg_pool2d(static, kernel_size=patch_size, stride=patch_size)
    return pooled.reshape(batch, frames, height // patch_size, width // patch_size)


def page4d_loss(
    output: ModelOutput,
    targets: Targets,
    weights: LossWeights,
    tracks: TrackPredictions | None = None,
    match_head: MatchHead | None = None,
    masked: bool = True,
) -> dict[str, torch.Tensor]:
    """All loss terms for one batch.

    Args:
        output: the network's ModelOutput (pose_enc_list, depth, depth_conf, world_points,
            world_points_conf, mask_score).
        targets: ground truth, normalised.
        weights: term weights.
        tracks: the track head's output (every step and the visibility) when the
            tracker ran on ``targets.query_points``; None leaves the track term at 0.
        match_head: the model's match head, for the match and pose terms (None: both 0).
        masked: whether this step ran with the mask on (the pose solve then weights the
            matches by the mask's keep probability, as the masked variant does).

    Returns:
        Dict with "camera", "depth", "points", "mask", "track", "match", "pose" (each
        weighted) and "total".
    """
    losses = {
        "camera": weights.camera
        * camera_loss(list(output.pose_enc_list), targets.pose_enc, weights),
        "depth": weights.depth
        * confidence_regression_loss(
            matching.predicted(output.depth, "depth"),
            matching.predicted(output.depth_conf, "depth_conf"),
            targets.depth.unsqueeze(-1),
            targets.valid,
            weights,
        ),
        "points": weights.points
        * confidence_regression_loss(
            matching.predicted(output.world_points, "world_points"),
            matching.predicted(output.world_points_conf, "world_points_conf"),
            targets.world_points,
            targets.valid,
            weights,
        ),
    }
    mask_score = getattr(output, "mask_score", None)
    if weights.mask > 0 and mask_score is not None and targets.static_fraction is not None:
        losses["mask"] = weights.mask * mask_loss(mask_score, targets.static_fraction)
    else:
        losses["mask"] = targets.pose_enc.new_zeros(())
    losses["track"] = targets.pose_enc.new_zeros(())
    if weights.track > 0 and tracks is not None and targets.tracks is not None:
        losses["track"] = weights.track * track_loss(
            tracks.steps, tracks.visibility, targets, weights
        )
    losses.update(_correspondence_terms(output, targets, weights, match_head, masked))
    total = losses["camera"]
    for name in ("depth", "points", "mask", "track", "match", "pose"):
        total = total + losses[name]
    losses["total"] = total
    return losses


def _correspondence_terms(
    output: ModelOutput,
    targets: Targets,
    weights: LossWeights,
    match_head: MatchHead | None,
    masked: bool,
) -> dict[str, torch.Tensor]:
    """The weighted match and pose terms (0 when off or without a match head)."""
    zero = targets.pose_enc.new_zeros(())
    terms = {"match": zero, "pose": zero}
    features = getattr(output, "match_features", None)
    if match_head is None or features is None or targets.match_target_xy is None:
        return terms
    if weights.match > 0:
        terms["match"] = weights.match * matching.match_loss(match_head, features, targets, weights)
    if weights.pose > 0 and targets.extrinsics is not None:
        terms["pose"] = weights.pose * matching.pose_loss(
            match_head, output, targets, weights, masked
        )
    return terms
