"""`page4d-viewer train`: train a PAGE-4D preset on synthetic scenes (resumes from OUT/last.pt)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import torch

from page4d_viewer.training.losses import LossWeights
from page4d_viewer.training.train import (
    CHECKPOINT_NAME,
    MASK_STRENGTH_SAMPLING,
    TrainConfig,
    TrainingError,
    build_training_model,
    export_weights,
    train,
)

LOGGER = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `train` options to ``parser``: the run, the data, then the schedule."""
    defaults = TrainConfig(out_dir=Path("."))
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumes if present)")
    _add_data_options(parser, defaults)
    _add_schedule_options(parser, defaults)
    _add_correspondence_options(parser, defaults)
    _add_matching_options(parser, defaults)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument(
        "--export", type=Path, default=None, help="also write the final weights (safetensors) here"
    )
    parser.add_argument(
        "--export-without",
        nargs="+",
        default=[],
        metavar="HEAD",
        help="leave these heads out of the --export file (e.g. track_head when untrained)",
    )
    parser.add_argument(
        "--export-only",
        action="store_true",
        help="do not train: write the weights of OUT/last.pt to --export (also during a run)",
    )


def _add_data_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The model preset and the synthetic clips it trains on."""
    parser.add_argument("--preset", default=defaults.preset, help="model preset")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-time box")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="training clip size (default: the preset's width, 16:9)",
    )
    parser.add_argument("--min-frames", type=int, default=defaults.min_frames)
    parser.add_argument("--max-frames", type=int, default=defaults.max_frames)
    parser.add_argument("--max-stride", type=int, default=defaults.max_stride)
    parser.add_argument("--pool-size", type=int, default=defaults.pool_size)


def _add_schedule_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """Learning rate, mask schedule, loss weights and the starting weights."""
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument(
        "--mask-hold-start",
        type=int,
        default=defaults.mask_hold_start,
        help="last step with the mask at full strength (default: always on)",
    )
    parser.add_argument(
        "--mask-hold-end", type=int, default=defaults.mask_hold_end, help="mask off from here"
    )
    parser.add_argument(
        "--mask-loss-weight",
        type=float,
        default=defaults.loss_weights.mask,
        help="weight of the BCE supervision of the mask with the synthetic dynamic mask",
    )
    parser.add_argument(
        "--camera-loss-weight",
        type=float,
        default=defaults.loss_weights.camera,
        help="weight of the camera (pose-encoding) loss",
    )
    parser.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        help="start from this safetensors checkpoint's weights (fresh optimiser, step 0); "
        "ignored when OUT/last.pt exists",
    )


def _add_correspondence_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The track loss and the per-step mask strength."""
    parser.add_argument(
        "--track-loss-weight",
        type=float,
        default=defaults.loss_weights.track,
        help="weight of the track loss on ground-truth correspondence (0: tracker off)",
    )
    parser.add_argument(
        "--track-visibility-weight",
        type=float,
        default=defaults.loss_weights.track_visibility,
        help="weight of the visibility BCE inside the track loss",
    )
    parser.add_argument("--track-queries", type=int, default=defaults.track_queries)
    parser.add_argument(
        "--track-moving-fraction",
        type=float,
        default=defaults.track_moving_fraction,
        help="share of the track queries drawn on moving objects",
    )
    parser.add_argument(
        "--texture-detail",
        type=float,
        default=defaults.texture_detail,
        help="fine noise on every surface of the training clips (0-1; 0: as before)",
    )
    parser.add_argument(
        "--train-only",
        nargs="+",
        default=list(defaults.train_only),
        metavar="MODULE",
        help="train only these top-level modules (e.g. track_head) and freeze the rest",
    )
    parser.add_argument(
        "--mask-strength-sampling",
        choices=MASK_STRENGTH_SAMPLING,
        default=defaults.mask_strength_sampling,
        help="fixed: the mask schedule's alpha; binary: alpha drawn per step from {0, 64}; "
        "uniform: alpha drawn per step in [0, 64]",
    )


def _add_matching_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The match head's loss, the pose loss through the solver, gradient accumulation."""
    parser.add_argument(
        "--match-loss-weight",
        type=float,
        default=defaults.loss_weights.match,
        help="weight of the match head's loss on exact correspondences (0: off)",
    )
    parser.add_argument(
        "--match-refine-weight",
        type=float,
        default=defaults.loss_weights.match_refine,
        help="weight of the sub-patch refinement's pixel loss inside the match loss",
    )
    parser.add_argument(
        "--pose-loss-weight",
        type=float,
        default=defaults.loss_weights.pose,
        help="weight of the relative pose loss on poses solved from depth and matches (0: off)",
    )
    parser.add_argument(
        "--pose-loss-start",
        type=int,
        default=defaults.pose_loss_start,
        help="first step of the pose loss (lets the matches train first)",
    )
    parser.add_argument(
        "--accumulate",
        type=int,
        default=defaults.accumulate,
        help="clips whose gradients are averaged into each optimiser step",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig described by parsed command-line options."""
    weights = dataclasses.replace(
        LossWeights(),
        mask=args.mask_loss_weight,
        camera=args.camera_loss_weight,
        track=args.track_loss_weight,
        track_visibility=args.track_visibility_weight,
        match=args.match_loss_weight,
        match_refine=args.match_refine_weight,
        pose=args.pose_loss_weight,
    )
    return TrainConfig(
        out_dir=args.out,
        preset=args.preset,
        image_hw=None if args.image_size is None else tuple(args.image_size),
        max_steps=args.max_steps,
        max_minutes=args.max_minutes,
        seed=args.seed,
        batch_size=args.batch_size,
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        max_stride=args.max_stride,
        pool_size=args.pool_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        mask_hold_start=args.mask_hold_start,
        mask_hold_end=args.mask_hold_end,
        loss_weights=weights,
        checkpoint_every=args.checkpoint_every,
        threads=args.threads,
        init_weights=args.init_weights,
        track_queries=args.track_queries,
        track_moving_fraction=args.track_moving_fraction,
        mask_strength_sampling=args.mask_strength_sampling,
        train_only=tuple(args.train_only),
        texture_detail=args.texture_detail,
        accumulate=args.accumulate,
        pose_loss_start=args.pose_loss_start,
    )


def run(args: argparse.Namespace) -> int:
    """Train as the options say; export the weights when ``--export`` is given."""
    config = config_from_args(args)
    if args.export_only:
        return _export_only(config, args.export, tuple(args.export_without))
    model, step = train(config)
    final_path = config.out_dir / "final.safetensors"
    export_weights(model, final_path, config, step)
    LOGGER.info("wrote %s (step %d)", final_path, step)
    if args.export is not None:
        export_weights(model, args.export, config, step, tuple(args.export_without))
        LOGGER.info("wrote %s", args.export)
    return 0


def _export_only(config: TrainConfig, path: Path | None, without: tuple[str, ...] = ()) -> int:
    """Export OUT/last.pt's weights without training."""
    checkpoint_path = config.out_dir / CHECKPOINT_NAME
    if path is None:
        raise TrainingError("--export-only needs --export PATH")
    if not checkpoint_path.exists():
        raise TrainingError(f"no training checkpoint at {checkpoint_path}")
    model = build_training_model(config)
    state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    export_weights(model, path, config, int(state["step"]), without)
    LOGGER.info("wrote %s (step %d)", path, state["step"])
    return 0
