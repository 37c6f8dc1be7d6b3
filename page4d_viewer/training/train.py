"""Train a PAGE-4D preset on synthetic dynamic scenes rendered on the fly.

`page4d-viewer train --out runs/small --max-minutes 60` (cli/train.py).
Every ``--checkpoint-every`` steps the model, optimiser and step are written to
``OUT/last.pt``; running the same command again resumes from there. Losses go to the log and
to ``OUT/losses.csv``. The run is deterministic given ``--seed``: the clip used at step k is a
pure function of (seed, k), so a resumed run sees the same data as an uninterrupted one.

Training seeds are below :data:`MAX_TRAIN_SEED`; evaluation uses seeds from
:data:`FIRST_EVAL_SEED` on, which training never renders.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.model import ModelConfig, Page4D, build_model, load_checkpoint, save_checkpoint
from page4d_viewer.training.data import (  # noqa: F401  (FIRST_EVAL_SEED: cli/evaluate_default)
    FIRST_EVAL_SEED,
    MAX_TRAIN_SEED,
    PATCH_SIZE,
    ClipPool,
    TrainingSample,
    batch_for_step,
    samples_to_tensors,
)
from page4d_viewer.training.losses import LossWeights, mask_strength, page4d_loss
from page4d_viewer.training.matching import correspondence_statistics
from page4d_viewer.training.tracks import TrackCapture, track_errors

LOGGER = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
LOSS_CSV_NAME = "losses.csv"
LOSS_COLUMNS = ("step", "elapsed_s", "lr", "mask_strength", "camera", "depth", "points", "mask")
LOSS_COLUMNS = (*LOSS_COLUMNS, "track", "total", "track_px", "still_px")
# track_px: mean end-point error (pixels) of the predicted tracks over visible points of
# frames 1.., still_px: that of predicting no motion; both 0 when the tracker did not run.
LOSS_COLUMNS = (*LOSS_COLUMNS, "match", "pose", "match_px", "still_match_px", "match_2px")
LOSS_COLUMNS = (*LOSS_COLUMNS, "pose_deg", "camera_deg", "skipped")
# match_px / still_match_px: median error (pixels) of the match head's matches and of "no
# motion" over visible queries, match_2px: share within 2 px; pose_deg / camera_deg: mean
# relative rotation error of the solved poses and of the camera head (all 0 when off);
# skipped: 1 where a non-finite gradient made the step skip the update.
_CORRESPONDENCE_STATS = ("match_px", "still_match_px", "match_2px", "pose_deg", "camera_deg")
MASK_STRENGTH_SAMPLING = ("fixed", "binary", "uniform")
_MASK_STREAM = 31_337


class TrainingError(Page4DError):
    """A training run could not start or resume (bad option, mismatched checkpoint)."""


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in every checkpoint.

    Attributes:
        out_dir: folder for last.pt, losses.csv and the exported weights.
        preset: model preset name (see page4d_viewer.model.config).
        model_overrides: keyword overrides of the preset (e.g. a micro config in tests).
        image_hw: (H, W) of the rendered training clips, multiples of 14; None: the preset's
            img_size wide and 16:9 (as the clip preprocessing crops a 16:9 video).
        max_steps: optimiser steps of the whole run (sets the learning-rate schedule).
        max_minutes: stop this invocation after this much wall time (resume continues).
        seed: seed of initialisation and data order.
        batch_size: clips per step (all with the same frame count).
        min_frames, max_frames: frames per training clip, drawn per step.
        max_stride: frame stride drawn per step in [1, max_stride].
        source_frames: frames rendered per synthetic clip (the pool the strides pick from).
        pool_size: distinct clips in the in-memory pool at a time.
        pool_refresh_steps: the pool's seeds change every this many steps (0: never).
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps before the cosine decay.
        min_lr_ratio: final learning rate as a fraction of the peak.
        grad_clip: gradient-norm clip.
        mask_hold_start, mask_hold_end: the authors' mask schedule (see losses.mask_alpha).
        loss_weights: loss term weights.
        checkpoint_every: steps between checkpoints.
        log_every: steps between log lines (every step goes to the CSV).
        threads: torch CPU threads (0: all cores).
        init_weights: safetensors checkpoint whose weights start a new run (fresh optimiser,
            step 0); ignored when OUT/last.pt exists (the run then resumes from there).
        track_queries: query points per clip for the track loss (used when its weight > 0).
        track_moving_fraction: share of the queries drawn on moving objects.
        mask_strength_sampling: "fixed": alpha follows the mask schedule (64 by default);
            "binary": each step draws alpha from {0, schedule value}; "uniform": each step
            draws alpha uniformly in [0, schedule value]. Draws are a function of (seed, step).
        texture_detail: ``make_clip``'s fine noise on every surface for the training clips
            (0: the clips the shipped model was trained on).
        train_only: top-level module names (e.g. ("track_head",)) whose parameters are
            trained; every other parameter is frozen. Empty (default): train everything.
        accumulate: clips (batches) whose gradients are averaged before each optimiser step;
            batch 0 of a step is the one a run without accumulation uses.
        pose_loss_start: the pose loss is on from this step (when its weight is > 0), so the
            matches can be learned before poses are solved from them.
    """

    out_dir: Path
    preset: str = "small"
    model_overrides: dict = field(default_factory=dict)
    image_hw: tuple[int, int] | None = None
    max_steps: int = 3000
    max_minutes: float | None = None
    seed: int = 0
    batch_size: int = 1
    min_frames: int = 4
    max_frames: int = 6
    max_stride: int = 3
    source_frames: int = 16
    pool_size: int = 48
    pool_refresh_steps: int = 400
    learning_rate: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    mask_hold_start: int = 10**9
    mask_hold_end: int = 10**9
    loss_weights: LossWeights = field(default_factory=LossWeights)
    checkpoint_every: int = 100
    log_every: int = 10
    threads: int = 0
    init_weights: Path | None = None
    track_queries: int = 64
    track_moving_fraction: float = 0.5
    mask_strength_sampling: str = "fixed"
    train_only: tuple[str, ...] = ()
    texture_detail: float = 0.0
    accumulate: int = 1
    pose_loss_start: int = 0

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.image_hw is None:
            self.image_hw = default_image_hw(self.preset, self.model_overrides)
        self.image_hw = (int(self.image_hw[0]), int(self.image_hw[1]))
        if any(size <= 0 or size % PATCH_SIZE for size in self.image_hw):
            raise TrainingError(f"image size {self.image_hw} must be positive multiples of 14")
        if not 2 <= self.min_frames <= self.max_frames:
            raise TrainingError("need 2 <= min_frames <= max_frames")
        if (self.max_frames - 1) * self.max_stride + 1 > self.source_frames:
            raise TrainingError(
                f"max_frames {self.max_frames} at stride {self.max_stride} needs more than "
                f"{self.source_frames} source frames"
            )
        if self.max_steps <= 0 or self.batch_size <= 0 or self.pool_size <= 0:
            raise TrainingError("max_steps, batch_size and pool_size must be positive")
        if self.accumulate <= 0 or self.pose_loss_start < 0:
            raise TrainingError("need accumulate >= 1 and pose_loss_start >= 0")
        if self.mask_strength_sampling not in MASK_STRENGTH_SAMPLING:
            raise TrainingError(
                f"mask_strength_sampling must be one of {', '.join(MASK_STRENGTH_SAMPLING)}, "
                f"not {self.mask_strength_sampling!r}"
            )
        if self.track_queries < 0 or not 0.0 <= self.track_moving_fraction <= 1.0:
            raise TrainingError("need track_queries >= 0 and 0 <= track_moving_fraction <= 1")
        self.train_only = tuple(self.train_only)
        if "track_head" in self.train_only and self.loss_weights.track <= 0:
            raise TrainingError("--train-only track_head needs --track-loss-weight > 0")

    def to_json(self) -> str:
        """The configuration as JSON (paths as strings), for checkpoints and metadata."""
        values = dataclasses.asdict(self)
        values["out_dir"] = str(self.out_dir)
        values["init_weights"] = None if self.init_weights is None else str(self.init_weights)
        return json.dumps(values, sort_keys=True)

    @property
    def input_hw(self) -> tuple[int, int]:
        """(H, W) of the rendered training clips: ``image_hw`` as ``__post_init__`` set it."""
        if self.image_hw is None:
            raise TrainingError("TrainConfig.image_hw is unset (__post_init__ sets it)")
        return self.image_hw


def default_image_hw(preset: str, overrides: dict) -> tuple[int, int]:
    """(H, W) of a 16:9 video after the clip preprocessing at the preset's input width."""
    width = ModelConfig.from_name(preset, **overrides).img_size
    return max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width


def step_mask_strength(config: TrainConfig, step: int) -> float:
    """The mask strength alpha of ``step``: the schedule's, or a draw below it (see
    ``TrainConfig.mask_strength_sampling``), a pure function of (seed, step)."""
    alpha = mask_strength(step, config.mask_hold_start, config.mask_hold_end)
    if config.mask_strength_sampling == "fixed":
        return alpha
    rng = np.random.default_rng([config.seed, step, _MASK_STREAM])
    if config.mask_strength_sampling == "binary":
        return alpha if rng.random() < 0.5 else 0.0
    return float(alpha * rng.random())


def pick_device() -> torch.device:
    """The GPU when one is available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio`` of the peak at ``max_steps``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(config.max_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    ratio = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )
    return config.learning_rate * ratio


# ----------------------------------------------------------------------------------------
# Checkpoints and the loop
# ----------------------------------------------------------------------------------------


def build_training_model(config: TrainConfig) -> Page4D:
    """The network of ``config``, initialised from the run seed."""
    torch.manual_seed(config.seed)
    model = build_model(config.preset, **config.model_overrides)
    initialise_camera_head(model)
    return model


def initialise_camera_head(model: Page4D, field_of_view: float = 1.0) -> None:
    """Start the camera head's field of view near ``field_of_view`` radians.

    The head sums one delta per refinement step and passes the field of view through a ReLU;
    from a zero-mean start half of the fields of view begin negative, the ReLU blocks their
    gradient, and they stay at 0 (an infinite focal length). A positive bias of the last layer
    puts the sum near ``field_of_view`` after all steps.
    """
    head = model.camera_head
    with torch.no_grad():
        head.pose_branch.fc2.bias[7:] = field_of_view / model.config.camera_iterations


def load_initial_weights(model: Page4D, path: Path) -> list[str]:
    """Copy the weights of a safetensors checkpoint into the freshly built ``model``.

    A file without a track or match head (such as the shipped default model, written before
    the small preset had them) starts a model that has them: every other module is loaded,
    and the new heads keep their initialisation. All other architecture fields must match.

    Returns:
        The names of the model's parameters and buffers the file did not have (the new
        heads', or nothing), sorted.

    Raises:
        TrainingError: the file is missing, not a checkpoint, or its architecture differs.
    """
    try:
        source, _ = load_checkpoint(path)
    except Page4DError as error:
        raise TrainingError(f"--init-weights: {error}") from None
    if not _same_architecture_but_new_heads(source.config, model.config):
        raise TrainingError(f"--init-weights: {path} holds another architecture than the run's")
    result = model.load_state_dict(source.state_dict(), strict=False)
    new_keys = sorted(result.missing_keys)
    new_heads = tuple(f"{head}." for head in _OPTIONAL_HEADS.values())
    if result.unexpected_keys or any(not key.startswith(new_heads) for key in new_keys):
        raise TrainingError(f"--init-weights: {path} holds another architecture than the run's")
    if new_keys:
        LOGGER.info(
            "--init-weights: %s lacks %s; %d new tensors keep their initialisation: %s",
            path,
            " and ".join(sorted({key.split(".", 1)[0] for key in new_keys})),
            len(new_keys),
            ", ".join(new_keys),
        )
    return new_keys


# Heads a checkpoint may lack and a run may add: config switch -> module (and field prefix).
_OPTIONAL_HEADS = {"has_track_head": "track_head", "has_match_head": "match_head"}


def _same_architecture_but_new_heads(source: ModelConfig, target: ModelConfig) -> bool:
    """Configs equal, except that ``source`` may lack a track or match head ``target`` has."""
    # Constructor fields only: derived ones (the kept layers) follow from them.
    mine, theirs = source.to_dict(), target.to_dict()
    for switch, module in _OPTIONAL_HEADS.items():
        if not mine[switch] and theirs[switch]:
            prefix = module.removesuffix("head")
            mine = {key: value for key, value in mine.items() if not key.startswith(prefix)}
            theirs = {key: value for key, value in theirs.items() if not key.startswith(prefix)}
            mine.pop(switch)
            theirs.pop(switch)
    return mine == theirs


def save_training_state(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, config
) -> None:
    """Write model, optimiser and step atomically (a crash never leaves half a file)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "config": config.to_json(),
    }
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def load_training_state(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig
) -> int:
    """Restore model and optimiser from ``path``; returns the next step to run."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved = json.loads(state["config"])
    current = json.loads(config.to_json())
    # max_minutes and max_steps may change between invocations; the rest must match.
    saved.setdefault("accumulate", 1)  # written before accumulation existed
    for key in ("preset", "model_overrides", "image_hw", "seed", "batch_size", "accumulate"):
        if saved.get(key) != current.get(key):
            raise TrainingError(
                f"{path} was trained with {key}={saved.get(key)!r}, not {current.get(key)!r}; "
                "use another --out folder"
            )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def _open_loss_csv(path: Path, resume_step: int) -> None:
    """Keep rows before ``resume_step`` (a resumed run rewrites later ones)."""
    rows: list[list[str]] = []
    if path.exists() and resume_step > 0:
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            rows = [row for row in reader if row and int(row[0]) < resume_step]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(LOSS_COLUMNS)
        writer.writerows(rows)


def train(config: TrainConfig) -> tuple[Page4D, int]:
    """Run (or resume) training until ``max_steps`` or ``max_minutes``.

    Args:
        config: the run.

    Returns:
        (the model after the last completed step, on the CPU; the number of steps done).
    """
    device = pick_device()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = config.out_dir / CHECKPOINT_NAME
    model, optimizer, step = _start_or_resume(config, device, checkpoint_path)
    csv_path = config.out_dir / LOSS_CSV_NAME
    _open_loss_csv(csv_path, step)
    pool = ClipPool(config)
    started = time.monotonic()
    LOGGER.info(
        "training %s on %s: %d parameters, steps %d..%d",
        config.preset,
        device,
        sum(p.numel() for p in model.parameters()),
        step,
        config.max_steps,
    )
    model.train()
    last_saved = step
    while step < config.max_steps:
        if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
            LOGGER.info("time box of %.1f min reached at step %d", config.max_minutes, step)
            break
        losses, lr, alpha = _train_step(model, optimizer, config, step, pool, device)
        step += 1
        _append_losses(csv_path, step - 1, time.monotonic() - started, lr, alpha, losses)
        if step % config.log_every == 0 or step == config.max_steps:
            LOGGER.info(
                "step %d  total %.4f  camera %.4f  depth %.4f  points %.4f  mask %.4f  "
                "track %.4f  match %.4f  pose %.4f  match_px %.2f (still %.2f)  (%.1f s)",
                step,
                losses["total"],
                losses["camera"],
                losses["depth"],
                losses["points"],
                losses["mask"],
                losses["track"],
                losses["match"],
                losses["pose"],
                losses["match_px"],
                losses["still_match_px"],
                time.monotonic() - started,
            )
        if step % config.checkpoint_every == 0:
            save_training_state(checkpoint_path, model, optimizer, step, config)
            last_saved = step
    if step != last_saved or not checkpoint_path.exists():
        save_training_state(checkpoint_path, model, optimizer, step, config)
    return model.cpu(), step


def _start_or_resume(
    config: TrainConfig, device: torch.device, checkpoint_path: Path
) -> tuple[Page4D, torch.optim.Optimizer, int]:
    """The model and optimiser, resumed from ``checkpoint_path`` when it exists; the step."""
    model = build_training_model(config).to(device)
    trainable = freeze_all_but(model, config.train_only)
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    step = 0
    if checkpoint_path.exists():
        step = load_training_state(checkpoint_path, model, optimizer, config)
        LOGGER.info("resuming from %s at step %d", checkpoint_path, step)
    elif config.init_weights is not None:
        load_initial_weights(model, config.init_weights)
        LOGGER.info("starting from the weights of %s", config.init_weights)
    return model, optimizer, step


def freeze_all_but(model: torch.nn.Module, modules: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Freeze every parameter outside the named top-level modules; the trainable ones.

    With the backbone frozen its forward pass builds no autograd graph, so training a new head
    (the tracker on the shipped weights) costs little more than inference of the rest.

    Raises:
        TrainingError: a name is not a top-level module of the model.
    """
    if not modules:
        return list(model.parameters())
    known = dict(model.named_children())
    unknown = [name for name in modules if known.get(name) is None]
    if unknown:
        raise TrainingError(
            f"--train-only: {', '.join(unknown)} is not a module of this model "
            f"(it has {', '.join(name for name, child in known.items() if child is not None)})"
        )
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.split(".", 1)[0] in modules)
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def _train_step(
    model: Page4D,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    step: int,
    pool: ClipPool,
    device: torch.device,
) -> tuple[dict[str, float], float, float]:
    """One optimiser step over ``config.accumulate`` batches; (logged values, lr, alpha)."""
    lr = learning_rate_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    alpha = step_mask_strength(config, step)
    weights = config.loss_weights
    if step < config.pose_loss_start:
        weights = dataclasses.replace(weights, pose=0.0)
    optimizer.zero_grad(set_to_none=True)
    values: dict[str, float] = {}
    for micro in range(config.accumulate):
        batch = batch_for_step(config, step, pool, micro)
        micro_values = _accumulate_batch(model, batch, weights, alpha, device, config.accumulate)
        for name, value in micro_values.items():
            values[name] = values.get(name, 0.0) + value / config.accumulate
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
    values["skipped"] = 0.0
    if torch.isfinite(norm):
        optimizer.step()
    else:
        # A degenerate pose solve (coincident singular values) can blow up one gradient;
        # one lost step costs less than weights full of NaN.
        LOGGER.warning("step %d: non-finite gradient norm, update skipped", step)
        optimizer.zero_grad(set_to_none=True)
        values["skipped"] = 1.0
    return values, lr, alpha


def _accumulate_batch(
    model: Page4D,
    batch: list[TrainingSample],
    weights: LossWeights,
    alpha: float,
    device: torch.device,
    accumulate: int,
) -> dict[str, float]:
    """Forward one batch, add its gradient divided by ``accumulate``; its logged values."""
    images, targets = samples_to_tensors(batch, device)
    with TrackCapture(model) as capture:
        output = model(images, mask_strength=alpha, query_points=targets.query_points)
    match_head = getattr(model, "match_head", None)
    losses = page4d_loss(
        output, targets, weights, capture.tracks, match_head=match_head, masked=alpha != 0.0
    )
    (losses["total"] / accumulate).backward()
    values = {name: float(value.detach()) for name, value in losses.items()}
    values["track_px"], values["still_px"] = 0.0, 0.0
    if output.track is not None:
        values["track_px"], values["still_px"] = track_errors(output.track, targets)
    values.update(dict.fromkeys(_CORRESPONDENCE_STATS, 0.0))
    if match_head is not None and targets.match_target_xy is not None:
        values.update(
            correspondence_statistics(match_head, output, targets, alpha != 0.0, weights.pose > 0)
        )
    return values


def _append_losses(
    path: Path, step: int, elapsed: float, lr: float, alpha: float, losses: dict[str, float]
) -> None:
    row = [step, f"{elapsed:.2f}", f"{lr:.3e}", f"{alpha:.2f}"]
    row += [f"{losses[name]:.6f}" for name in LOSS_COLUMNS[4:]]
    with path.open("a", newline="") as handle:
        csv.writer(handle).writerow(row)


def export_weights(
    model: Page4D,
    path: Path,
    config: TrainConfig,
    step: int,
    without: tuple[str, ...] = (),
) -> Path:
    """Write the trained weights as a safetensors checkpoint with the training facts attached.

    Args:
        model: the trained network.
        path: output file.
        config: the run.
        step: steps trained.
        without: optional heads to leave out ("track_head", "match_head"), e.g. a tracker
            no loss trained, so the file does not offer tracks from random weights.

    Raises:
        TrainingError: a name in ``without`` is not an optional head.
    """
    unknown = sorted(set(without) - set(_OPTIONAL_HEADS.values()))
    if unknown:
        raise TrainingError(
            f"--export-without: {', '.join(unknown)} is not one of "
            f"{', '.join(sorted(_OPTIONAL_HEADS.values()))}"
        )
    if without:
        switches = {key: False for key, head in _OPTIONAL_HEADS.items() if head in without}
        values = {**model.config.to_dict(), **switches}
        with torch.device("meta"):
            kept = Page4D(type(model.config)(**values))
        state = {
            name: tensor
            for name, tensor in model.state_dict().items()
            if name.split(".", 1)[0] not in without
        }
        kept.load_state_dict(state, strict=True, assign=True)
        model = kept
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(
        model,
        path,
        training_steps=str(step),
        training_seed=str(config.seed),
        training_data="page4d_viewer.sources.synthetic seeds < 1000000",
        training_config=config.to_json(),
    )
