"""The tracker and the match head on held-out synthetic clips (the default model's docs).

The clips are the ones ``page4d-viewer evaluate-default`` scores: seeds from
``training.data.FIRST_EVAL_SEED`` on, which training never renders, at the model's input size.
Here, above training, because scoring renders a training clip and runs the network on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.model.match_head import patch_index
from page4d_viewer.model.network import Page4D
from page4d_viewer.model.pose_solver import keyframe_pairs
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.synthetic import track_ground_truth
from page4d_viewer.training.data import FIRST_EVAL_SEED, PATCH_SIZE, render_clip
from page4d_viewer.training.matching import clip_match_truth, match_queries
from page4d_viewer.training.tracks import clip_tracks


def held_out_track_errors(
    model: Page4D,
    seeds: Sequence[int],
    num_frames: int = 8,
    stride: int = 2,
    count: int = 256,
    mask_strength: float = RELEASED_MASK_STRENGTH,
    texture_detail: float = 0.0,
) -> dict[str, float]:
    """Track accuracy of ``model`` on held-out clips, next to a no-motion guess.

    Each seed's clip is the one ``page4d-viewer evaluate-default`` scores (``num_frames``
    frames, every ``stride``-th rendered one, the model's input size); ``count`` queries on
    frame 0, half of them on movers when there are enough, drawn with the seed.

    Returns:
        Over visible points of frames 1..: ``epe`` and ``median_epe`` (pixels), the same for
        predicting no motion (``still_epe``, ``still_median_epe``), ``within_2px`` and
        ``still_within_2px`` (shares). Over all points of frames 1..: ``visibility_accuracy``
        (share where "visibility >= 0.5" agrees with the truth) and ``visible_share`` (the
        truth's share of visible points: the accuracy of always answering "visible").
    """
    width = model.config.img_size
    image_hw = (max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width)
    errors, still, agree, truth_visible = [], [], [], []
    for seed in seeds:
        if seed < FIRST_EVAL_SEED:
            raise Page4DError(f"seed {seed} may have been used in training")
        clip = render_clip(seed, (num_frames - 1) * stride + 1, image_hw, texture_detail)
        frames = list(range(0, clip.images.shape[0], stride))
        queries, tracks, visible = clip_tracks(
            clip, frames, count, 0.5, np.random.default_rng(seed)
        )
        images = np.asarray(clip.images)[frames].transpose(0, 3, 1, 2) / 255.0
        with torch.no_grad():
            output = model(
                torch.from_numpy(images).float()[None],
                mask_strength=mask_strength,
                query_points=torch.from_numpy(queries)[None],
            )
        seen = visible[1:]
        predicted = output.track[0, 1:].numpy()
        errors.append(np.linalg.norm(predicted - tracks[1:], axis=-1)[seen])
        still.append(np.linalg.norm(queries[None] - tracks[1:], axis=-1)[seen])
        agree.append((output.track_vis[0, 1:].numpy() >= 0.5) == seen)
        truth_visible.append(seen)
    error, still_error = np.concatenate(errors), np.concatenate(still)
    return {
        "epe": float(error.mean()),
        "median_epe": float(np.median(error)),
        "still_epe": float(still_error.mean()),
        "still_median_epe": float(np.median(still_error)),
        "within_2px": float((error < 2).mean()),
        "still_within_2px": float((still_error < 2).mean()),
        "visibility_accuracy": float(np.concatenate([a.ravel() for a in agree]).mean()),
        "visible_share": float(np.concatenate([v.ravel() for v in truth_visible]).mean()),
    }


def held_out_match_errors(
    model: Page4D,
    seeds: Sequence[int],
    num_frames: int = 8,
    stride: int = 2,
    mask_strength: float = 64.0,
    texture_detail: float = 0.0,
) -> dict[str, float]:
    """Match accuracy of ``model``'s match head on held-out clips, next to a no-motion guess.

    Each seed's clip is the one ``page4d-viewer evaluate-default`` scores (``num_frames``
    frames, every ``stride``-th rendered one, the model's input size); the pairs are the
    keyframe pairs inference solves poses with, the queries the patch centres.

    Returns:
        Over queries visible in their target frame: ``median_px``, ``mean_px`` and
        ``within_2px`` of the matches, the same for "no motion" (``still_median_px``,
        ``still_mean_px``, ``still_within_2px``), ``coarse_accuracy`` (share whose matched
        patch holds the truth) and ``matched_share`` (share the head did not call unmatched);
        over queries not visible there: ``false_match_share`` (share it matched anyway).

    Raises:
        Page4DError: a seed that training may have used, or a model without match head.
    """
    match_head = model.match_head
    if match_head is None:
        raise Page4DError("this model has no match head")
    width = model.config.img_size
    image_hw = (max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width)
    grid = (image_hw[0] // PATCH_SIZE, image_hw[1] // PATCH_SIZE)
    errors, still, coarse_hit, matched, false_match = [], [], [], [], []
    for seed in seeds:
        if seed < FIRST_EVAL_SEED:
            raise Page4DError(f"seed {seed} may have been used in training")
        clip = render_clip(seed, (num_frames - 1) * stride + 1, image_hw, texture_detail)
        frames = list(range(0, clip.images.shape[0], stride))
        pairs = keyframe_pairs(len(frames))
        queries = match_queries(image_hw, PATCH_SIZE)
        truth = {frames[ref]: track_ground_truth(clip, frames[ref], queries) for ref, _ in pairs}
        target_xy, visible = clip_match_truth(truth.__getitem__, frames, pairs)
        images = np.asarray(clip.images)[frames].transpose(0, 3, 1, 2) / 255.0
        with torch.no_grad():
            output = model(torch.from_numpy(images).float()[None], mask_strength=mask_strength)
            features = output.match_features
            if features is None:
                raise Page4DError("this model's run gave no match features")
            found = match_head.match(features.clip(0), pairs, image_hw)
        predicted = found.target_xy.numpy()
        error = np.linalg.norm(predicted - target_xy, axis=-1)
        errors.append(error[visible])
        still.append(np.linalg.norm(queries[None] - target_xy, axis=-1)[visible])
        predicted_patch = patch_index(found.target_xy, grid, PATCH_SIZE).numpy()
        true_patch = patch_index(torch.from_numpy(target_xy), grid, PATCH_SIZE).numpy()
        coarse_hit.append((predicted_patch == true_patch)[visible])
        is_matched = found.weight.numpy() > 0
        matched.append(is_matched[visible])
        false_match.append(is_matched[~visible])
    error, still_error = np.concatenate(errors), np.concatenate(still)
    return {
        "median_px": float(np.median(error)),
        "mean_px": float(error.mean()),
        "within_2px": float((error < 2).mean()),
        "still_median_px": float(np.median(still_error)),
        "still_mean_px": float(still_error.mean()),
        "still_within_2px": float((still_error < 2).mean()),
        "coarse_accuracy": float(np.concatenate(coarse_hit).mean()),
        "matched_share": float(np.concatenate(matched).mean()),
        "false_match_share": float(np.concatenate(false_match).mean()),
    }
