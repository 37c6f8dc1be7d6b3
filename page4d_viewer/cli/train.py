"""`page4d-viewer train`: train a PAGE-4D preset on synthetic scenes (resumes from OUT/last.pt)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


@dataclasses.dataclass(frozen=True)
class _Option:
    """A ``--flag`` that sets one field of TrainConfig (or of its LossWeights).

    Attributes:
        field: the field's name; its default is the option's default.
        kind: parses the option's text into the field's type.
        help: the line `--help` shows, or None.
        flag: the option's name (default: ``--`` and the field's name with dashes).
    """

    field: str
    kind: Callable[[str], Any] = str
    help: str | None = None
    flag: str = ""

    @property
    def name(self) -> str:
        """The option as typed on the command line."""
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def dest(self) -> str:
        """The attribute argparse stores the parsed value under."""
        return self.name.removeprefix("--").replace("-", "_")


# The TrainConfig fields set straight from one option each: the run, the data, the schedule,
# the tracker's queries and the match / pose losses' steps.
_CONFIG_OPTIONS = (
    _Option("preset", help="model preset"),
    _Option("max_steps", int),
    _Option("max_minutes", float, "wall-time box"),
    _Option("seed", int),
    _Option("batch_size", int),
    _Option("min_frames", int),
    _Option("max_frames", int),
    _Option("max_stride", int),
    _Option("pool_size", int),
    _Option("learning_rate", float, flag="--lr"),
    _Option("warmup_steps", int),
    _Option(
        "mask_hold_start", int, "last step with the mask at full strength (default: always on)"
    ),
    _Option("mask_hold_end", int, "mask off from here"),
    _Option(
        "init_weights",
        Path,
        "start from this safetensors checkpoint's weights (fresh optimiser, step 0); "
        "ignored when OUT/last.pt exists",
    ),
    _Option("track_queries", int),
    _Option("track_moving_fraction", float, "share of the track queries drawn on moving objects"),
    _Option(
        "texture_detail",
        float,
        "fine noise on every surface of the training clips (0-1; 0: as before)",
    ),
    _Option("pose_loss_start", int, "first step of the pose loss (lets the matches train first)"),
    _Option("accumulate", int, "clips whose gradients are averaged into each optimiser step"),
    _Option("checkpoint_every", int),
    _Option("threads", int, "CPU threads (0: all cores)"),
)

# The LossWeights fields, one `--...-weight` option each.
_LOSS_WEIGHT_OPTIONS = (
    _Option(
        "mask",
        float,
        "weight of the BCE supervision of the mask with the synthetic dynamic mask",
        "--mask-loss-weight",
    ),
    _Option("camera", float, "weight of the camera (pose-encoding) loss", "--camera-loss-weight"),
    _Option(
        "track",
        float,
        "weight of the track loss on ground-truth correspondence (0: tracker off)",
        "--track-loss-weight",
    ),
    _Option(
        "track_visibility",
        float,
        "weight of the visibility BCE inside the track loss",
        "--track-visibility-weight",
    ),
    _Option(
        "match",
        float,
        "weight of the match head's loss on exact correspondences (0: off)",
        "--match-loss-weight",
    ),
    _Option(
        "match_refine",
        float,
        "weight of the sub-patch refinement's pixel loss inside the match loss",
        "--match-refine-weight",
    ),
    _Option(
        "pose",
        float,
        "weight of the relative pose loss on poses solved from depth and matches (0: off)",
        "--pose-loss-weight",
    ),
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `train` options to ``parser``: the run folder, the TrainConfig fields, the loss
    weights, then the export."""
    defaults = TrainConfig(out_dir=Path("."))
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumes if present)")
    _add_options(parser, _CONFIG_OPTIONS, defaults)
    _add_options(parser, _LOSS_WEIGHT_OPTIONS, defaults.loss_weights)
    parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        default=None,
        help="training clip size (default: the preset's width, 16:9)",
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


def _add_options(
    parser: argparse.ArgumentParser, options: tuple[_Option, ...], defaults: object
) -> None:
    """Add ``options``, each defaulting to its field's value in ``defaults``."""
    for option in options:
        parser.add_argument(
            option.name, type=option.kind, default=getattr(defaults, option.field), help=option.help
        )


def _values(args: argparse.Namespace, options: tuple[_Option, ...]) -> dict[str, Any]:
    """The parsed values of ``options``, by field name."""
    return {option.field: getattr(args, option.dest) for option in options}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig described by parsed command-line options."""
    return TrainConfig(
        out_dir=args.out,
        image_hw=None if args.image_size is None else tuple(args.image_size),
        loss_weights=dataclasses.replace(LossWeights(), **_values(args, _LOSS_WEIGHT_OPTIONS)),
        train_only=tuple(args.train_only),
        mask_strength_sampling=args.mask_strength_sampling,
        **_values(args, _CONFIG_OPTIONS),
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
