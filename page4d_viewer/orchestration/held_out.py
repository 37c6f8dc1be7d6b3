"""The tracker and the match head on held-out synthetic clips (the default model's docs).

The clips are the ones ``page4d-viewer evaluate-default`` scores: seeds from
``training.data.FIRST_EVAL_SEED`` on, which training never renders, at the model's input size.
Here, above training, because scoring renders a training clip and runs the network on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from page4d_viewer.sources.synthetic import SyntheticClip


@dataclass(frozen=True)
class HeldOutClips:
    """The held-out clips a score runs on: the ones ``page4d-viewer evaluate-default`` scores.

    Attributes:
        seeds: one clip each, from ``FIRST_EVAL_SEED`` on (training never renders those).
        num_frames: frames per clip, every ``stride``-th rendered one.
        stride: the step between kept rendered frames.
        texture_detail: ``make_clip``'s fine noise on every surface (0: none).
    """

    seeds: Sequence[int]
    num_frames: int = 8
    stride: int = 2
    texture_detail: float = 0.0

    def render(
        self, image_hw: tuple[int, int]
    ) -> Iterator[tuple[int, SyntheticClip, list[int], np.ndarray]]:
        """Each seed's clip at ``image_hw``: (seed, clip, the kept frames' indices, those frames
        as (S, 3, H, W) values in [0, 1]).

        Raises:
            Page4DError: a seed that training may have used (when its turn comes).
        """
        for seed in self.seeds:
            if seed < FIRST_EVAL_SEED:
                raise Page4DError(f"seed {seed} may have been used in training")
            rendered = (self.num_frames - 1) * self.stride + 1
            clip = render_clip(seed, rendered, image_hw, self.texture_detail)
            frames = list(range(0, clip.images.shape[0], self.stride))
            images = np.asarray(clip.images)[frames].transpose(0, 3, 1, 2) / 255.0
            yield seed, clip, frames, images


def _input_hw(model: Page4D) -> tuple[int, int]:
    """(H, W) of the held-out clips for ``model``: its input width, 16:9, whole patches."""
    width = model.config.img_size
    return (max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width)


def held_out_track_errors(
    model: Page4D,
    clips: HeldOutClips,
    count: int = 256,
    mask_strength: float = RELEASED_MASK_STRENGTH,
) -> dict[str, float]:
    """Track accuracy of ``model`` on held-out clips, next to a no-motion guess.

    ``count`` queries on frame 0 of each clip, half of them on movers when there are enough,
    drawn with the clip's seed.

    Returns:
        Over visible points of frames 1..: ``epe`` and ``median_epe`` (pixels), the same for
        predicting no motion (``still_epe``, ``still_median_epe``), ``within_2px`` and
        ``still_within_2px`` (shares). Over all points of frames 1..: ``visibility_accuracy``
        (share where "visibility >= 0.5" agrees with the truth) and ``visible_share`` (the
        truth's share of visible points: the accuracy of always answering "visible").
    """
    errors, still, agree, truth_visible = [], [], [], []
    for seed, clip, frames, images in clips.render(_input_hw(model)):
        queries, tracks, visible = clip_tracks(
            clip, frames, count, 0.5, np.random.default_rng(seed)
        )
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
    model: Page4D, clips: HeldOutClips, mask_strength: float = RELEASED_MASK_STRENGTH
) -> dict[str, float]:
    """Match accuracy of ``model``'s match head on held-out clips, next to a no-motion guess.

    The pairs are the keyframe pairs inference solves poses with, the queries the patch
    centres.

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
    image_hw = _input_hw(model)
    grid = (image_hw[0] // PATCH_SIZE, image_hw[1] // PATCH_SIZE)
    errors, still, coarse_hit, matched, false_match = [], [], [], [], []
    for _, clip, frames, images in clips.render(image_hw):
        pairs = keyframe_pairs(len(frames))
        queries = match_queries(image_hw, PATCH_SIZE)
        truth = {frames[ref]: track_ground_truth(clip, frames[ref], queries) for ref, _ in pairs}
        target_xy, visible = clip_match_truth(truth.__getitem__, frames, pairs)
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
