"""Evaluate a small PAGE-4D checkpoint on held-out synthetic clips (the table of default-model.md).

    page4d-viewer evaluate-default --checkpoint assets/page4d_small.safetensors

For every held-out seed (from 9,000,000 on: training never renders those) it renders a clip
at the checkpoint's input size and scores three predictors on it:

* "trained": the checkpoint, cameras with the mask on (alpha 64) and off (alpha 0);
* "untrained": the same architecture freshly initialised (seed 0), same two variants;
* "trivial": identity cameras and a constant depth (no mask: its AP is the prevalence).

Metrics (``evaluation``): ATE (also as % of the true path length) and RPE after Sim(3)
alignment, the predicted path's length over the true one (both in the normalised units the
network predicts; near 0 means the cameras barely move), depth AbsRel and delta < 1.25 after
per-clip median scaling, and the average precision of the dynamic score ``-m`` against the
true dynamic mask. Prints per-clip rows and the averages as Markdown.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.depth import depth_errors
from page4d_viewer.evaluation.errors import MetricsError
from page4d_viewer.evaluation.masks import mask_average_precision
from page4d_viewer.evaluation.trajectory import path_length, trajectory_errors
from page4d_viewer.inference import geometric_poses, predictor
from page4d_viewer.inference.predictor import ModelInfo
from page4d_viewer.model.checkpoint import CheckpointInfo
from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.network import ModelOutput, Page4D
from page4d_viewer.result.cameras import (
    ESTIMATED_VARIANTS,
    GEOMETRY_VARIANTS,
    MASKED,
    UNMASKED,
)
from page4d_viewer.result.mask import dynamic_probability, upsample_mask
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.sampling import FrameSampling
from page4d_viewer.training.data import (
    FIRST_EVAL_SEED,
    TrainingSample,
    clip_to_sample,
    render_clip,
)

LOGGER = logging.getLogger(__name__)

# A clip counts as having "large movers" when at least this fraction of its pixels move.
LARGE_MOVER_FRACTION = 0.08


@dataclass
class Prediction:
    """What one predictor says about one clip.

    Attributes:
        extrinsics: variant ("masked", "unmasked", and where the predictor has them
            "geometry_masked", "geometry_unmasked") -> (S, 3, 4) camera-from-world.
        depth: (S, H, W) depth, any scale.
        dynamic_score: (S, h, w) dynamic probability (``result.mask``), or None without a mask.
    """

    extrinsics: dict[str, np.ndarray]
    depth: np.ndarray
    dynamic_score: np.ndarray | None


@dataclass
class ClipScore:
    """Metrics of one predictor on one clip (NaN where undefined)."""

    seed: int
    predictor: str
    dynamic_fraction: float
    values: dict[str, float] = field(default_factory=dict)


COLUMNS = (
    "ate_masked",
    "ate_unmasked",
    "ate_pct_masked",
    "ate_pct_unmasked",
    "rpe_t_masked",
    "rpe_r_masked",
    "rpe_t_unmasked",
    "rpe_r_unmasked",
    "path_ratio_masked",
    "path_ratio_unmasked",
    "ate_pct_geometry_masked",
    "ate_pct_geometry_unmasked",
    "path_ratio_geometry_masked",
    "path_ratio_geometry_unmasked",
    "abs_rel",
    "delta_1_25",
    "mask_ap",
)


def model_predictor(model: Page4D) -> Callable[[TrainingSample], Prediction]:
    """A predictor running ``model`` with the mask on and off, plus the geometric poses solved
    from its depth and matches with and without the mask's weights (as every run gets them,
    ``inference/geometric_poses.py``)."""

    @torch.no_grad()
    def predict(sample: TrainingSample) -> Prediction:
        images = torch.from_numpy(sample.images)[None]
        image_hw = (int(sample.images.shape[-2]), int(sample.images.shape[-1]))
        masked = model(images, mask_strength=RELEASED_MASK_STRENGTH)
        unmasked = model(images, mask_strength=0.0)
        cameras = {
            variant: geometry.pose_encoding_to_cameras(
                output.pose_enc[0].double().numpy(), image_hw
            )
            for variant, output in ((MASKED, masked), (UNMASKED, unmasked))
        }
        extrinsics = {variant: pair[0] for variant, pair in cameras.items()}
        depth = _first(masked.depth, "depth")[..., 0].double().numpy()
        mask_score = None if masked.mask_score is None else masked.mask_score[0].float().numpy()
        dynamic = None if mask_score is None else dynamic_probability(mask_score)
        intrinsics = cameras[MASKED][1]
        extrinsics |= _geometric_extrinsics(model, sample, masked, depth, intrinsics, mask_score)
        return Prediction(extrinsics=extrinsics, depth=depth, dynamic_score=dynamic)

    return predict


def _first(tensor: torch.Tensor | None, name: str) -> torch.Tensor:
    """Batch item 0 of a dense output the masked run always has."""
    if tensor is None:
        raise Page4DError(f"the network returned no {name}")
    return tensor[0]


def _geometric_extrinsics(
    model: Page4D,
    sample: TrainingSample,
    output: ModelOutput,
    depth: np.ndarray,
    intrinsics: np.ndarray,
    mask_score: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The geometric variants' (S, 3, 4) extrinsics for one sample's masked model output."""
    images_uint8 = (sample.images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    matches = geometric_poses.find_matches(
        images_uint8,
        model,
        torch.from_numpy(sample.images),
        RELEASED_MASK_STRENGTH,
        output.match_features,
    )
    depth_conf = _first(output.depth_conf, "depth confidence").double().numpy()
    poses = geometric_poses.solve_geometric_poses(
        depth, depth_conf, intrinsics, mask_score, matches
    )
    return {name: cameras.extrinsics for name, cameras in poses.cameras.items()}


def trivial_predictor(sample: TrainingSample) -> Prediction:
    """Identity cameras and a constant depth: what a model that learned nothing could say."""
    frames = sample.images.shape[0]
    identity = np.tile(np.eye(3, 4), (frames, 1, 1))
    return Prediction(
        extrinsics={"masked": identity, "unmasked": identity},
        depth=np.ones(sample.depth.shape),
        dynamic_score=None,
    )


def _variant_columns(variant: str) -> tuple[str, ...]:
    """The per-variant columns :func:`score_clip` writes."""
    return tuple(
        f"{metric}_{variant}" for metric in ("ate", "ate_pct", "rpe_t", "rpe_r", "path_ratio")
    )


def score_clip(sample: TrainingSample, gt_extrinsics: np.ndarray, prediction: Prediction) -> dict:
    """All metrics of one prediction on one clip; NaN where a metric is undefined."""
    values: dict[str, float] = {}
    length = path_length(gt_extrinsics)
    for variant in ESTIMATED_VARIANTS:
        if variant not in prediction.extrinsics:
            values.update(dict.fromkeys(_variant_columns(variant), math.nan))
            continue
        try:
            errors = trajectory_errors(prediction.extrinsics[variant], gt_extrinsics)
            ate, rpe_t, rpe_r = errors.ate, errors.rpe_trans, errors.rpe_rot
        except MetricsError as error:
            LOGGER.warning("trajectory metrics undefined: %s", error)
            ate = rpe_t = rpe_r = math.nan
        values[f"ate_{variant}"] = ate
        values[f"ate_pct_{variant}"] = 100.0 * ate / length if length > 0 else math.nan
        values[f"rpe_t_{variant}"] = rpe_t
        values[f"rpe_r_{variant}"] = rpe_r
        # Sim(3) alignment may scale a nearly still predicted path up to the true one and give
        # it a flattering ATE; the length ratio (both in normalised units) shows that case.
        predicted_length = path_length(prediction.extrinsics[variant])
        values[f"path_ratio_{variant}"] = predicted_length / length if length > 0 else math.nan
    depth = depth_errors(prediction.depth, sample.depth, sample.valid, alignment="median")
    values["abs_rel"] = depth.abs_rel
    values["delta_1_25"] = depth.delta_1_25
    if prediction.dynamic_score is None:
        # A constant score ranks every pixel equally: AP equals the share of moving pixels.
        values["mask_ap"] = (
            float(sample.dynamic_mask.mean()) if sample.dynamic_mask.any() else math.nan
        )
    else:
        values["mask_ap"] = mask_average_precision(prediction.dynamic_score, sample.dynamic_mask)
    return values


def gt_extrinsics_of(sample: TrainingSample) -> np.ndarray:
    """Ground-truth cameras of a sample (first camera's frame, normalised units)."""
    height, width = sample.depth.shape[-2:]
    extrinsics, _ = geometry.pose_encoding_to_cameras(
        sample.pose_enc.astype(np.float64), (height, width)
    )
    return extrinsics


def held_out_sample(
    seed: int, num_frames: int, image_hw: tuple[int, int], stride: int = 1
) -> TrainingSample:
    """The evaluation clip of ``seed``: ``num_frames`` frames, every ``stride``-th one rendered.

    Raises:
        Page4DError: the seed is below FIRST_EVAL_SEED, so training may have seen it.
    """
    if seed < FIRST_EVAL_SEED:
        raise Page4DError(f"seed {seed} may have been used in training: use >= {FIRST_EVAL_SEED}")
    clip = render_clip(seed, (num_frames - 1) * stride + 1, image_hw)
    return clip_to_sample(clip, range(0, clip.images.shape[0], stride))


def evaluate(
    predictors: dict[str, Callable[[TrainingSample], Prediction]],
    seeds: Sequence[int],
    num_frames: int,
    image_hw: tuple[int, int],
    stride: int = 1,
) -> list[ClipScore]:
    """Score every predictor on the clip of every seed.

    Args:
        predictors: name -> function from a sample to its prediction.
        seeds: held-out seeds (>= FIRST_EVAL_SEED).
        num_frames: frames per evaluated clip.
        image_hw: (H, W) of the rendered clips (the model's input size).
        stride: take every stride-th rendered frame (more camera motion per frame).

    Returns:
        One ClipScore per (seed, predictor), in that order.
    """
    scores = []
    for seed in seeds:
        sample = held_out_sample(seed, num_frames, image_hw, stride)
        gt_extrinsics = gt_extrinsics_of(sample)
        for name, predict in predictors.items():
            values = score_clip(sample, gt_extrinsics, predict(sample))
            scores.append(ClipScore(seed, name, float(sample.dynamic_mask.mean()), values))
            LOGGER.info("seed %d %s: %s", seed, name, values)
    return scores


def _mean(values: Sequence[float]) -> float:
    finite = [value for value in values if np.isfinite(value)]
    return float(np.mean(finite)) if finite else math.nan


def summarise(scores: Sequence[ClipScore]) -> dict[str, dict[str, float]]:
    """Per predictor, the mean of every column over clips, plus the large-mover comparison."""
    summary: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(score.predictor for score in scores):
        rows = [score for score in scores if score.predictor == name]
        summary[name] = {column: _mean([row.values[column] for row in rows]) for column in COLUMNS}
        large = [row for row in rows if row.dynamic_fraction >= LARGE_MOVER_FRACTION]
        summary[name]["large_mover_clips"] = float(len(large))
        summary[name]["ate_masked_large"] = _mean([row.values["ate_masked"] for row in large])
        summary[name]["ate_unmasked_large"] = _mean([row.values["ate_unmasked"] for row in large])
        for variant in GEOMETRY_VARIANTS:
            summary[name][f"ate_{variant}_large"] = _mean(
                [row.values[f"ate_{variant}"] for row in large]
            )
    return summary


def _cell(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f}"


def format_markdown(scores: Sequence[ClipScore], summary: dict[str, dict[str, float]]) -> str:
    """Per-clip rows and the averages as Markdown tables."""
    header = ["seed", "predictor", "moving px", *COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for score in scores:
        cells = [str(score.seed), score.predictor, f"{100 * score.dynamic_fraction:.1f}%"]
        cells += [_cell(score.values[column]) for column in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Averages over clips:", ""]
    header = [
        "predictor",
        *COLUMNS,
        "ATE masked / unmasked (large movers)",
        "ATE geometry masked / unmasked (large movers)",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, values in summary.items():
        cells = [name] + [_cell(values[column]) for column in COLUMNS]
        cells.append(
            f"{_cell(values['ate_masked_large'])} / {_cell(values['ate_unmasked_large'])} "
            f"({int(values['large_mover_clips'])} clips)"
        )
        cells.append(
            f"{_cell(values['ate_geometry_masked_large'])} / "
            f"{_cell(values['ate_geometry_unmasked_large'])}"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_real_clip(
    model: Page4D,
    info: CheckpointInfo | ModelInfo,
    source: Path,
    max_frames: int,
    figure: Path | None,
) -> dict[str, float]:
    """Run the predictor on a real video (no ground truth) and summarise what it shows.

    Args:
        model: the network.
        info: its CheckpointInfo.
        source: a video file.
        max_frames: frames sampled evenly from the video.
        figure: optional PNG path: three frames with depth and the dynamic probability.

    Returns:
        Numbers for the docs: frames, input size, camera path lengths of both variants (in
        units of the median depth), their disagreement, and dynamic-probability statistics.
    """
    result = predictor.predict(
        str(source),
        model,
        checkpoint_info=info,
        sampling=FrameSampling(max_frames=max_frames),
        ground_truth=None,
    )
    median_depth = float(np.median(result.depth))
    masked = result.cameras["masked"].extrinsics
    unmasked = result.cameras["unmasked"].extrinsics
    centres_gap = geometry.camera_centers(masked) - geometry.camera_centers(unmasked)
    if result.mask_score is None:
        raise Page4DError("this checkpoint has no dynamic mask head to describe")
    dynamic = upsample_mask(dynamic_probability(result.mask_score), *result.image_hw)
    summary = {
        "frames": float(len(result.images)),
        "input_height": float(result.images.shape[1]),
        "input_width": float(result.images.shape[2]),
        "median_depth": median_depth,
        "depth_p5_p95_over_median": float(
            np.percentile(result.depth, 95) / max(np.percentile(result.depth, 5), 1e-9)
        ),
        "path_length_masked_over_median_depth": path_length(masked) / median_depth,
        "path_length_unmasked_over_median_depth": path_length(unmasked) / median_depth,
        "max_centre_gap_over_median_depth": float(np.linalg.norm(centres_gap, axis=-1).max())
        / median_depth,
        "dynamic_probability_mean": float(dynamic.mean()),
        "dynamic_fraction_above_half": float((dynamic > 0.5).mean()),
    }
    if figure is not None:
        _write_figure(result.images, result.depth, dynamic, figure)
    return summary


def _write_figure(images: np.ndarray, depth: np.ndarray, dynamic: np.ndarray, path: Path) -> None:
    """Three frames: the input, the predicted depth, the dynamic probability over the input."""
    # Only --figure draws: the table alone never pays for matplotlib's import.
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot  # after use(): pyplot picks its backend on import

    frames = np.linspace(0, len(images) - 1, 3).round().astype(int)
    height = 3 * 3 * images.shape[1] / images.shape[2] + 0.6
    figure, axes = pyplot.subplots(3, 3, figsize=(9, height))
    for row, frame in enumerate(frames):
        axes[row, 0].imshow(images[frame])
        axes[row, 1].imshow(depth[frame], cmap="turbo")
        axes[row, 2].imshow(images[frame])
        axes[row, 2].imshow(dynamic[frame], cmap="Reds", alpha=0.6, vmin=0, vmax=1)
        axes[row, 0].set_ylabel(f"frame {frame}")
    for column, title in enumerate(("input", "depth", "dynamic probability")):
        axes[0, column].set_title(title)
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def write_synthetic_figures(
    model: Page4D, seed: int, args: argparse.Namespace, image_hw: tuple[int, int]
) -> None:
    """Prediction (``--figure``) and ground truth (``*-truth.png``) on the clip of ``seed``."""
    sample = held_out_sample(seed, args.frames, image_hw, args.stride)
    with torch.no_grad():
        output = model(torch.from_numpy(sample.images)[None], mask_strength=RELEASED_MASK_STRENGTH)
    images = (sample.images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
    mask_score = _first(output.mask_score, "mask score").numpy()
    dynamic = upsample_mask(dynamic_probability(mask_score), *image_hw)
    depth = _first(output.depth, "depth")[..., 0].double().numpy()
    _write_figure(images, depth, dynamic, args.figure)
    truth_path = args.figure.with_name(args.figure.stem + "-truth.png")
    _write_figure(images, sample.depth, sample.dynamic_mask.astype(np.float64), truth_path)


def overrides_of(config: ModelConfig) -> dict:
    """The checkpoint's config as keyword overrides (so the untrained twin is identical)."""
    values = config.to_dict()
    values.pop("name", None)
    return values
