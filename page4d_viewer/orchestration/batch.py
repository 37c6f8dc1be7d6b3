"""A checkpoint over every clip of a dataset: one result file and one index row per clip.

One process, or many under torch's launcher (``torchrun --nproc-per-node N -m page4d_viewer
batch ...``): each rank reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, runs on
``cuda:LOCAL_RANK`` when CUDA exists, and takes its share of the clips (longest first, each to
the least-loaded rank). Ranks never write the same SQLite file: each writes its rows to its
own shard and rank 0 merges the shards into ``DIR/index.sqlite`` after a barrier.

Resuming: a clip whose (clip, checkpoint, settings) row says "ok" and whose result file exists
is skipped; a result file without a row (killed between the two) is evaluated, not recomputed;
failed clips are tried again. Rows are written only after the result file is in place, and
result files are written atomically, so the index never lists a half-written result.

Files under ``DIR``:

* ``index.sqlite``: the run index (``page4d_viewer.evaluation.index``);
* ``results/<checkpoint>-<settings>/<clip>.npz``: one Reconstruction per clip;
* ``synthetic/synthetic-<seed>/``: rendered synthetic clips with their ground truth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation import index as run_index
from page4d_viewer.evaluation.disagreement import head_geometry_disagreement
from page4d_viewer.evaluation.metrics import evaluate_reconstruction
from page4d_viewer.inference import predictor
from page4d_viewer.inference.predictor import ModelInfo
from page4d_viewer.model.network import Page4D
from page4d_viewer.result.cameras import GEOMETRY_VARIANTS, GROUND_TRUTH, HEAD_VARIANTS
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.sources.datasets import (
    SYNTHETIC_PREFIX,
    DatasetClip,
    discover_clips,
    parse_seeds,
    synthetic_clips,
)
from page4d_viewer.sources.framing import PreprocessMode
from page4d_viewer.sources.sampling import ALL_FRAMES, FrameSampling

logger = logging.getLogger(__name__)

RESULTS_FOLDER = "results"
SYNTHETIC_FOLDER = "synthetic"
# A rank that finishes early waits at the final barrier for the slowest one; torch's default
# 30-minute collective timeout would abort a long, unevenly split batch.
BARRIER_TIMEOUT = _dt.timedelta(hours=48)


@dataclass(frozen=True)
class BatchOptions:
    """What every clip of a batch is run with.

    Attributes:
        out: the batch folder (index, results, synthetic cache).
        checkpoint: weights to load; None for the shipped default model.
        mask_strength: alpha of the masked variant; None for the checkpoint's default.
        sampling: which frames of each clip to keep.
        mode: "crop" or "pad" preprocessing.
        precision: "auto", "fp32", "bf16" or "fp16".
        device: "auto", "cpu", "cuda:N"; under torchrun with CUDA, ``cuda:LOCAL_RANK``.
        max_depth: ignore ground-truth depth beyond this (metres) in the depth metrics.
        threads: CPU threads for torch (0: torch's default).
        synthetic_frames: frames of each ``synthetic:`` clip.
        synthetic_size: (width, height) of each ``synthetic:`` clip.
    """

    out: Path
    checkpoint: Path | None = None
    mask_strength: float | None = None
    sampling: FrameSampling = ALL_FRAMES
    mode: PreprocessMode = "crop"
    precision: str = "auto"
    device: str = "auto"
    max_depth: float | None = None
    threads: int = 0
    synthetic_frames: int = 8
    synthetic_size: tuple[int, int] = (256, 144)


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a torchrun launch (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Launch:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (as torchrun sets them)."""
        environ = dict(os.environ if environ is None else environ)
        try:
            launch = cls(
                rank=int(environ.get("RANK", 0)),
                world_size=int(environ.get("WORLD_SIZE", 1)),
                local_rank=int(environ.get("LOCAL_RANK", 0)),
            )
        except ValueError:
            raise Page4DError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers") from None
        if not 0 <= launch.rank < launch.world_size:
            raise Page4DError(f"RANK {launch.rank} is outside WORLD_SIZE {launch.world_size}")
        return launch

    @property
    def distributed(self) -> bool:
        """Whether there are other ranks to coordinate with."""
        return self.world_size > 1


@dataclass
class BatchSummary:
    """What a batch did, summed over all ranks.

    Attributes:
        total: clips in the dataset.
        succeeded: clips run (or recovered from their result file) successfully now.
        failed: clips that failed now (each has a "failed" row with its error).
        already_done: clips skipped because the index already had them.
        index_path: the merged index.
    """

    total: int
    succeeded: int
    failed: int
    already_done: int
    index_path: Path

    @property
    def exit_code(self) -> int:
        """0 when at least one clip of the dataset has a result (now or from an earlier run),
        or there was nothing to do; 1 when every clip that ran failed and none had a result."""
        return 1 if self.failed and not (self.succeeded or self.already_done) else 0


def list_dataset(source: str, options: BatchOptions) -> list[DatasetClip]:
    """The clips of ``source``: a dataset path, or ``synthetic:FIRST-LAST`` seeds.

    Raises:
        Page4DError: unreadable seeds, a missing path, or no clip found.
    """
    if source.startswith(SYNTHETIC_PREFIX):
        width, height = options.synthetic_size
        return synthetic_clips(
            parse_seeds(source.removeprefix(SYNTHETIC_PREFIX)),
            options.out / SYNTHETIC_FOLDER,
            num_frames=options.synthetic_frames,
            width=width,
            height=height,
        )
    return discover_clips(source)


def assign_clips(
    clips: Sequence[DatasetClip], world_size: int, sampling: FrameSampling = ALL_FRAMES
) -> list[list[DatasetClip]]:
    """Split clips over ranks: longest first, each to the least-loaded rank (greedy LPT).

    Deterministic (ties broken by name, then rank), so every rank computes the same split
    without talking to the others.

    Returns:
        One list per rank, in the order that rank runs them (longest first).
    """
    weights = {
        clip.name: max(clip.effective_frames(sampling.stride, sampling.max_frames), 1)
        for clip in clips
    }
    ordered = sorted(clips, key=lambda clip: (-weights[clip.name], clip.name))
    loads = [0] * world_size
    shares: list[list[DatasetClip]] = [[] for _ in range(world_size)]
    for clip in ordered:
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        shares[rank].append(clip)
        loads[rank] += weights[clip.name]
    return shares


def _pending_clips(
    clips: Sequence[DatasetClip],
    out: Path,
    checkpoint: str,
    options: BatchOptions,
    strength: float,
) -> list[DatasetClip]:
    """The clips with no finished row (or whose result file is gone) in the index."""
    done = run_index.finished_keys(out / run_index.INDEX_NAME)
    pending = []
    for clip in clips:
        key = (clip.name, checkpoint, _settings_hash(clip, options, strength))
        if key not in done or not (out / done[key]).is_file():
            pending.append(clip)
    return pending


def run_batch(
    clips: Sequence[DatasetClip],
    options: BatchOptions,
    launch: Launch | None = None,
) -> BatchSummary:
    """Run the checkpoint on every clip not yet in the index; see the module docstring.

    Each clip's failure (unreadable file, ground truth that does not match, out of memory)
    becomes a "failed" row and one line on stderr; the batch goes on.

    Args:
        clips: the dataset (every rank must pass the same list).
        options: checkpoint, settings and the batch folder.
        launch: this process's rank; None reads the torchrun environment variables.

    Returns:
        The summary over all ranks (every rank returns the same one).

    Raises:
        Page4DError: the checkpoint cannot be loaded, or a bad option (before any clip).
    """
    launch = launch or Launch.from_environment()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    device = _init_distributed(launch, options)
    try:
        model, info = _load_model(options)
        checkpoint = info.content_hash or info.name
        strength = (
            info.default_mask_strength
            if options.mask_strength is None
            else float(options.mask_strength)
        )
        if launch.rank == 0:
            _tidy(out)
        _barrier(launch)
        pending = _pending_clips(clips, out, checkpoint, options, strength)
        already_done = len(clips) - len(pending)
        mine = assign_clips(pending, launch.world_size, options.sampling)[launch.rank]
        runner = _ClipRunner(model, info, options, strength, checkpoint, device, launch)
        target = (
            run_index.shard_path(out, launch.rank)
            if launch.distributed
            else out / run_index.INDEX_NAME
        )
        with contextlib.closing(run_index.connect(target)) as connection:
            succeeded, failed = runner.run_all(mine, connection)
        _barrier(launch)
        if launch.rank == 0 and launch.distributed:
            run_index.merge_shards(out)
        succeeded, failed = _sum_over_ranks(launch, succeeded, failed)
    finally:
        _finish_distributed(launch)
    return BatchSummary(
        total=len(clips),
        succeeded=succeeded,
        failed=failed,
        already_done=already_done,
        index_path=out / run_index.INDEX_NAME,
    )


def settings_of(clip: DatasetClip, options: BatchOptions, strength: float) -> dict[str, Any]:
    """The settings that, with the clip name and checkpoint, identify a run (JSON-ready)."""
    render = {key: value for key, value in clip.render.items() if key != "seed"}
    return {
        "mask_strength": float(strength),
        "mode": options.mode,
        "precision": options.precision,
        "sampling": dataclasses.asdict(options.sampling),
        "max_depth": options.max_depth,
        "synthetic": render or None,
    }


def _settings_hash(clip: DatasetClip, options: BatchOptions, strength: float) -> str:
    return run_index.settings_hash(settings_of(clip, options, strength))


def result_path(checkpoint: str, settings_hash: str, clip_name: str) -> Path:
    """Where a clip's result goes, relative to the batch folder."""
    weights = re.sub(r"[^A-Za-z0-9._-]+", "_", checkpoint.removeprefix("sha256:"))[:12]
    safe_clip = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_name)
    return Path(RESULTS_FOLDER) / f"{weights}-{settings_hash}" / f"{safe_clip}.npz"


class _ClipRunner:
    """Runs the clips of one rank, writing one row per clip."""

    def __init__(
        self,
        model: Page4D,
        info: ModelInfo,
        options: BatchOptions,
        strength: float,
        checkpoint: str,
        device: str,
        launch: Launch,
    ) -> None:
        self.model, self.info, self.options = model, info, options
        self.strength, self.checkpoint, self.device = strength, checkpoint, device
        self.launch = launch
        self.out = Path(options.out)

    def run_all(
        self, clips: Sequence[DatasetClip], connection: sqlite3.Connection
    ) -> tuple[int, int]:
        """Run each clip in turn; returns (succeeded, failed)."""
        succeeded = failed = 0
        # tqdm draws nothing when stderr is not a terminal (a log file, a job scheduler):
        # then rank 0 writes one plain line per clip instead, so progress is never silent.
        lines = self.launch.rank == 0 and not sys.stderr.isatty()
        bar = tqdm(
            total=len(clips),
            file=sys.stderr,
            unit="clip",
            desc="batch" if not self.launch.distributed else f"rank {self.launch.rank}",
            # Rank 0's bar stands for all: the split is balanced, and N bars on one
            # terminal overwrite each other.
            disable=None if self.launch.rank == 0 else True,
            dynamic_ncols=True,
        )
        with bar:
            for clip in clips:
                bar.set_postfix_str(clip.name, refresh=False)
                row = self.run_one(clip)
                run_index.write_row(connection, row)
                if row.ok:
                    succeeded += 1
                else:
                    failed += 1
                    tqdm.write(f"failed: {clip.name}: {row.error}", file=sys.stderr)
                bar.update(1)
                if lines:
                    done = succeeded + failed
                    tqdm.write(
                        f"batch: {done}/{len(clips)} clips ({clip.name}: {row.status})",
                        file=sys.stderr,
                    )
        return succeeded, failed

    def run_one(self, clip: DatasetClip) -> run_index.RunRow:
        """The index row of one clip: run (or recover) it, save, evaluate."""
        settings = settings_of(clip, self.options, self.strength)
        digest = run_index.settings_hash(settings)
        relative = result_path(self.checkpoint, digest, clip.name)
        started = time.perf_counter()

        def row(status: str, **outcome: Any) -> run_index.RunRow:
            return run_index.RunRow(
                clip=clip.name,
                checkpoint=self.checkpoint,
                settings_hash=digest,
                status=status,
                created_at=_now(),
                checkpoint_name=self.info.name,
                settings_json=json.dumps(settings, sort_keys=True),
                source=str(clip.source),
                layout=clip.layout,
                device=self.device,
                rank=self.launch.rank,
                **outcome,
            )

        try:
            recon, seconds = self._result(clip, self.out / relative, started)
            metrics = index_metrics(recon, self.options.max_depth)
        except Exception as error:  # one clip's failure of any kind must not stop the batch
            logger.debug("clip %s failed", clip.name, exc_info=True)
            message = " ".join(str(error).split()) or type(error).__name__
            return row(
                run_index.STATUS_FAILED,
                error=f"{type(error).__name__}: {message}",
                mask_strength=self.strength,
                seconds=time.perf_counter() - started,
            )
        return row(
            run_index.STATUS_OK,
            frames=recon.num_frames,
            mask_strength=recon.metadata.mask_strength,
            seconds=seconds,
            result_path=relative.as_posix(),
            **metrics,
        )

    def _result(
        self, clip: DatasetClip, path: Path, started: float
    ) -> tuple[Reconstruction, float]:
        """The clip's Reconstruction and the seconds it cost: from its file when a killed run
        saved it but wrote no row, else computed now and saved atomically."""
        if path.is_file():
            with contextlib.suppress(Page4DError):
                recon = Reconstruction.load(path)
                logger.info("%s: reusing %s", clip.name, path)
                return recon, sum(v for k, v in recon.metadata.timings.items() if "." not in k)
        clip.prepare()
        recon = predictor.predict(
            clip.source,
            self.model,
            mask_strength=self.strength,
            mode=self.options.mode,
            device=self.device,
            precision=self.options.precision,
            checkpoint_info=self.info,
            sampling=self.options.sampling,
            ground_truth=clip.ground_truth,
        )
        recon.metadata.batch_clip = clip.name
        recon.save(path)
        return recon, time.perf_counter() - started


def index_metrics(recon: Reconstruction, max_depth: float | None = None) -> dict[str, float | None]:
    """The index's metric and disagreement columns of a result (those it cannot fill left out).

    Args:
        recon: a clip's result, holding its ground truth where the clip has one.
        max_depth: ignore ground-truth depth beyond this (metres) in the depth metrics.
    """
    return _metrics(recon, max_depth) | _disagreement(recon)


def _metrics(recon: Reconstruction, max_depth: float | None) -> dict[str, float | None]:
    """Index metric columns of a Reconstruction against the ground truth it holds."""
    if GROUND_TRUTH not in recon.cameras and recon.gt_depth is None:
        return {}
    report = evaluate_reconstruction(recon, max_depth=max_depth)
    values: dict[str, float | None] = {}
    for variant in HEAD_VARIANTS:
        errors = report.trajectory.get(variant)
        if errors is not None:
            values[f"ate_{variant}"] = errors.ate
            values[f"rpe_t_{variant}"] = errors.rpe_trans
            values[f"rpe_r_{variant}"] = errors.rpe_rot
    # Only the geometric pair's ATE goes in the index (what the Dataset tab and the report
    # set against the head's); its RPE stays in `evaluate`'s per-result table.
    for variant in GEOMETRY_VARIANTS:
        errors = report.trajectory.get(variant)
        if errors is not None:
            values[f"ate_{variant}"] = errors.ate
    # Median scaling, as in the default model's table.
    depth = report.depth.get("median")
    if depth is not None:
        values["abs_rel"], values["delta_1_25"] = depth.abs_rel, depth.delta_1_25
    values["mask_ap"], values["mask_iou"] = report.mask_ap, report.mask_iou
    return {key: None if value is None else float(value) for key, value in values.items()}


def _disagreement(recon: Reconstruction) -> dict[str, float | None]:
    """Index columns of how far the camera head's masked cameras are from the geometric
    masked ones; needs no ground truth, empty when the result lacks either variant."""
    found = head_geometry_disagreement(recon)
    if found is None:
        return {}
    return {
        "head_geometry_rot_deg": found.rotation_deg,
        "head_geometry_trans": found.translation,
    }


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _load_model(options: BatchOptions) -> tuple[Page4D, ModelInfo]:
    return predictor.load_model(options.checkpoint)


def _tidy(out: Path) -> None:
    """Rank 0, before the others start: fold a killed run's shards into the index and drop
    its half-written temporary files (results and synthetic renders)."""
    merged = run_index.merge_shards(out)
    if merged:
        logger.info("merged %d rows left by an interrupted run", merged)
    for pattern in (f"{RESULTS_FOLDER}/*/.*.tmp", f"{SYNTHETIC_FOLDER}/.synthetic-*"):
        for leftover in out.glob(pattern):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    run_index.connect(out / run_index.INDEX_NAME).close()


def _init_distributed(launch: Launch, options: BatchOptions) -> str:
    """Join the process group under torchrun; returns the device this rank runs on."""
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    if not launch.distributed:
        return options.device
    cuda = torch.cuda.is_available()
    device = options.device
    if cuda:
        device = f"cuda:{launch.local_rank}"
        torch.cuda.set_device(launch.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=BARRIER_TIMEOUT)
    return device


def _barrier(launch: Launch) -> None:
    if launch.distributed:
        dist.barrier()


def _sum_over_ranks(launch: Launch, succeeded: int, failed: int) -> tuple[int, int]:
    if not launch.distributed:
        return succeeded, failed
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    counts = torch.tensor([succeeded, failed], dtype=torch.int64, device=device)
    dist.all_reduce(counts)
    return int(counts[0]), int(counts[1])


def _finish_distributed(launch: Launch) -> None:
    if launch.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "BatchOptions",
    "BatchSummary",
    "Launch",
    "assign_clips",
    "index_metrics",
    "list_dataset",
    "result_path",
    "run_batch",
    "settings_of",
]
