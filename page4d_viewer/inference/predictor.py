"""Clip + network -> Reconstruction: device, precision, both mask variants, progress.

This is the one place where model outputs (torch tensors) become a Reconstruction (numpy).
It never imports Gradio or Viser, so the command line and a headless server can use it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from page4d_viewer.errors import CheckpointError, Page4DError
from page4d_viewer.inference import device as devices
from page4d_viewer.inference import geometric_poses, tracking
from page4d_viewer.inference.preprocess import preprocess
from page4d_viewer.inference.progress import network_fraction
from page4d_viewer.model.attention import AttentionRequest
from page4d_viewer.model.checkpoint import CheckpointInfo, load_checkpoint
from page4d_viewer.model.match_head import MatchFeatures
from page4d_viewer.model.network import ModelOutput, Page4D
from page4d_viewer.result.inspection import Inside
from page4d_viewer.result.reconstruction import (
    MASKED,
    UNMASKED,
    Cameras,
    Metadata,
    Preprocessing,
    Reconstruction,
)
from page4d_viewer.settings import RELEASED_MASK_STRENGTH, default_checkpoint_path
from page4d_viewer.sources import clip as clips
from page4d_viewer.sources.clip import Clip, SourceLike
from page4d_viewer.sources.confine import check_tree, current_roots
from page4d_viewer.sources.framing import PreprocessMapping, PreprocessMode
from page4d_viewer.sources.groundtruth import (
    GROUND_TRUTH_NAME,
    TUM_TRAJECTORY,
    load_ground_truth,
)
from page4d_viewer.sources.sampling import ALL_FRAMES, FrameSampling

logger = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)``; raising from it cancels the run."""

AUTO_GROUND_TRUTH = "auto"

# Fraction of the progress bar each stage fills, in order; the network gets most of it.
_BANDS: dict[str, tuple[float, float]] = {
    "reading": (0.0, 0.10),
    "preprocessing": (0.10, 0.15),
    "model": (0.15, 0.92),
    "converting": (0.92, 0.94),
    "geometry": (0.94, 1.0),
}
# With tracks the tracker's forward pass (after converting) is about as long as the
# reconstruction's.
_BANDS_WITH_TRACKS = {
    **_BANDS,
    "model": (0.15, 0.52),
    "converting": (0.52, 0.54),
    "geometry": (0.54, 0.57),
    "tracking": (0.57, 1.0),
}


@dataclass
class ModelInfo:
    """What a Reconstruction records about the weights it came from.

    Attributes:
        name: checkpoint file name (or "random tiny" etc. for untrained networks).
        content_hash: e.g. "sha256:<hex>" of the checkpoint file ("" when unknown).
        variant: e.g. "PAGE-4D (mask)", "VGGT", "page4d_viewer".
        mask_available: whether the network has a dynamic mask head.
        default_mask_strength: alpha to use when the caller does not choose one.
    """

    name: str = ""
    content_hash: str = ""
    variant: str = ""
    mask_available: bool = True
    default_mask_strength: float = RELEASED_MASK_STRENGTH


def load_model(checkpoint: str | os.PathLike[str] | None = None) -> tuple[Page4D, ModelInfo]:
    """Load a checkpoint (any supported format), or the shipped default when None.

    Returns:
        The network (eval mode, on the CPU) and what to record about it.

    Raises:
        CheckpointError: no default model shipped, or the checkpoint cannot be read.
    """
    path = default_checkpoint_path() if checkpoint is None else Path(checkpoint).expanduser()
    if checkpoint is None and not path.is_file():
        raise CheckpointError(
            f"no default model is shipped (expected {path}); pass --checkpoint PATH to a "
            "PAGE-4D, VGGT or page4d_viewer checkpoint"
        )
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    model, info = load_checkpoint(path)
    model.eval()
    return model, model_info_from_checkpoint(info)


def load_default_model() -> tuple[Page4D, ModelInfo]:
    """The shipped default model; a clear CheckpointError when none is shipped."""
    return load_model(None)


def model_info_from_checkpoint(info: CheckpointInfo) -> ModelInfo:
    """What a Reconstruction records about a checkpoint the model loader read."""
    return ModelInfo(
        name=info.path.name,
        content_hash=info.content_hash,
        variant=info.variant,
        mask_available=info.mask_available,
        default_mask_strength=info.default_mask_strength,
    )


def predict(
    clip_or_source: Clip | SourceLike,
    model: Page4D,
    *,
    mask_strength: float | None = None,
    mode: PreprocessMode = "crop",
    device: str | None = None,
    precision: str | None = None,
    progress: ProgressFn | None = None,
    checkpoint_info: ModelInfo | CheckpointInfo | None = None,
    sampling: FrameSampling | None = None,
    ground_truth: str | os.PathLike[str] | None = AUTO_GROUND_TRUTH,
    attention: bool | AttentionRequest = False,
    tracks: int = 0,
) -> Reconstruction:
    """Run the network on a clip and return the Reconstruction with both mask variants.

    Depth, points and the "masked" cameras come from alpha = ``mask_strength``; the
    "unmasked" cameras from alpha = 0 (one ``forward_pair``, sharing the early layers). When
    the model has no mask head, or the strength is 0, a single pass fills both variants.
    The "geometry_masked" and "geometry_unmasked" cameras are solved from the masked run's
    depth and pixel matches, with and without the mask's keep probability as weights
    (``inference/geometric_poses.py``; the match source is in ``metadata.geometric_poses``).

    Args:
        clip_or_source: a loaded Clip, or a source for ``load_clip`` (video, images, ...).
        model: the network (any preset); moved to ``device``.
        mask_strength: alpha of the masked variant; None uses the checkpoint's default (64
            for the released mask model, 0 without a mask head).
        mode: "crop" or "pad" preprocessing, at the model's ``config.img_size`` width.
        device: "cpu", "cuda", "cuda:1", "mps", or None/"auto" for the best available.
        precision: "fp32", "bf16", "fp16" (autocast), or None/"auto" to pick per device.
        progress: called as ``progress(fraction, message)`` through reading, encoding,
            aggregating and heads; raising from it cancels the run.
        checkpoint_info: what to record about the weights (name, hash, variant, default
            strength): a ModelInfo, or the CheckpointInfo of ``load_checkpoint``.
        sampling: which frames ``load_clip`` keeps when a source is given (None: all).
        ground_truth: a ground-truth path for ``load_ground_truth`` (its failure is an
            error); "auto" (default) looks beside the source for a synthetic sample's
            ``groundtruth.npz`` or a TUM ``groundtruth.txt`` and skips it with a warning when
            it does not fit; None attaches nothing.
        attention: True also stores the camera-token attention of both variants (first,
            middle and last masked layer, every frame's camera token as query) and the patch
            feature PCA (mask layer and last masked layer); an ``AttentionRequest`` chooses
            the layers and query frames. False (default) computes none of it.
        tracks: also follow this many query pixels through the clip with the track head
            (``inference/tracking.py``): three quarters seeded on the patches of highest
            dynamic probability, the rest spread over the others. One more forward pass;
            0 (default) skips the tracker.

    Returns:
        The Reconstruction, with timings per stage (seconds) in its metadata.

    Raises:
        Page4DError: bad source, options or strength (one line).
    """
    # Over 60 lines only through its docstring: the body is the stages in order, ~30 lines.
    if tracking.check_track_count(tracks):
        tracking.require_track_head(model)
    report = _Reporter(progress, _BANDS_WITH_TRACKS if tracks else _BANDS)
    info = _model_info(model, checkpoint_info)
    strength = _effective_strength(mask_strength, info, model)
    timings: dict[str, float] = {}

    report.stage("reading", 0.0, "reading frames")
    started = time.perf_counter()
    clip = _as_clip(clip_or_source, sampling, report)
    timings["read"] = time.perf_counter() - started

    report.stage("preprocessing", 0.0, f"preprocessing {clip.num_frames} frames ({mode})")
    started = time.perf_counter()
    prepared = preprocess(clip, mode=mode, target_size=model.config.img_size)
    timings["preprocess"] = time.perf_counter() - started

    run = _run_network(
        model, prepared.images, strength, device, precision, report, timings, attention
    )

    report.stage("converting", 0.0, "converting outputs")
    started = time.perf_counter()
    metadata = _metadata(info, model, clip, prepared.mapping, mode, strength, run, timings)
    recon = _to_reconstruction(run.masked, run.unmasked, prepared.frames, metadata)
    timings["convert"] = time.perf_counter() - started
    recon = _with_geometric_poses(
        recon, model, prepared.images, strength, run.masked.match_features, report, timings
    )
    recon = _attach_ground_truth(recon, clip, ground_truth)
    if tracks:
        recon = _track_automatic_seeds(model, recon, tracks, device, precision, report)
    report.stage("converting", 1.0, "done")
    logger.info("reconstructed %s", recon.describe())
    return recon


def _with_geometric_poses(
    recon: Reconstruction,
    model: Page4D,
    images: torch.Tensor,
    strength: float,
    match_features: MatchFeatures | None,
    report: _Reporter,
    timings: dict[str, float],
) -> Reconstruction:
    """``recon`` with the "geometry_masked" / "geometry_unmasked" cameras, solved from its
    depth and matches of the best source the model has (``inference/geometric_poses.py``)."""
    report.stage("geometry", 0.0, "solving poses from depth and matches")
    started = time.perf_counter()
    images_on_device = None
    # Any network with the plain forward_pair contract works; only a tracker needs images.
    if getattr(model, "track_available", False):
        images_on_device = images.to(next(model.parameters()).device)
    with torch.inference_mode():
        matches = geometric_poses.find_matches(
            recon.images, model, images_on_device, strength, match_features
        )
    poses = geometric_poses.solve_geometric_poses(
        recon.depth, recon.depth_conf, recon.cameras[MASKED].intrinsics, recon.mask_score, matches
    )
    recon = dataclasses.replace(recon, cameras={**recon.cameras, **poses.cameras})
    recon.metadata.geometric_poses = poses.record()
    timings["geometry"] = time.perf_counter() - started
    report.stage("geometry", 1.0, f"poses solved from {matches.source.replace('_', ' ')}")
    return recon


def _track_automatic_seeds(
    model: Page4D,
    recon: Reconstruction,
    count: int,
    device: str | None,
    precision: str | None,
    report: _Reporter,
) -> Reconstruction:
    """``recon`` with ``count`` automatically seeded tracks (and their ground truth, when the
    clip is a synthetic scene: ``add_tracks`` attaches it)."""
    return tracking.add_tracks(
        model,
        recon,
        tracking.automatic_seeds(recon, count),
        device=device,
        precision=precision,
        progress=lambda fraction, message: report.stage("tracking", fraction, message),
    )


def _metadata(
    info: ModelInfo,
    model: Page4D,
    clip: Clip,
    mapping: PreprocessMapping,
    mode: str,
    strength: float,
    run: _NetworkRun,
    timings: dict[str, float],
) -> Metadata:
    """What a Reconstruction records about its weights, clip, preprocessing and run."""
    return Metadata(
        checkpoint_name=info.name,
        checkpoint_hash=info.content_hash,
        model_variant=info.variant,
        mask_strength=strength,
        mask_available=info.mask_available and model.mask_available,
        source=str(clip.source),
        frame_indices=[int(i) for i in np.asarray(clip.frame_indices)],
        timestamps=_timestamps(clip),
        preprocessing=Preprocessing(
            mode=mode, target_size=model.config.img_size, mapping=mapping.to_dict()
        ),
        timings=timings,
        device=run.device,
        precision=run.precision,
        clip_notes=[str(note) for note in getattr(clip, "notes", [])],
    )


def _model_info(model: Page4D, checkpoint_info: ModelInfo | CheckpointInfo | None) -> ModelInfo:
    """What to record about the weights; an untrained network is named after its preset."""
    if checkpoint_info is None:
        return ModelInfo(
            name=f"untrained {model.config.name}",
            variant=model.config.name,
            mask_available=model.mask_available,
            default_mask_strength=RELEASED_MASK_STRENGTH if model.mask_available else 0.0,
        )
    if isinstance(checkpoint_info, ModelInfo):
        return checkpoint_info
    return model_info_from_checkpoint(checkpoint_info)


@dataclass
class _NetworkRun:
    masked: ModelOutput
    unmasked: ModelOutput
    device: str
    precision: str


def _run_network(
    model: Page4D,
    images: torch.Tensor,
    strength: float,
    device: str | None,
    precision: str | None,
    report: _Reporter,
    timings: dict[str, float],
    attention: bool | AttentionRequest = False,
) -> _NetworkRun:
    """Both mask variants of (S, 3, H, W) images on the chosen device and precision."""
    torch_device = devices.choose_device(device)
    dtype = devices.choose_precision(torch_device, precision)
    model.eval()
    model.to(torch_device)
    on_model_step = report.model_callback(torch_device, timings)
    # Asked for only when wanted, so any network with the plain forward_pair contract works.
    inspect: dict[str, Any] = {"return_attention": attention} if attention else {}
    started = time.perf_counter()
    with torch.inference_mode(), devices.autocast_for(torch_device, dtype):
        # A Reconstruction keeps only the unmasked run's cameras: skip its dense heads.
        masked, unmasked = model.forward_pair(
            images.to(torch_device),
            strength,
            progress=on_model_step,
            unmasked_geometry=False,
            **inspect,
        )
    _synchronize(torch_device)
    timings["model"] = time.perf_counter() - started
    precision_name = "float32" if dtype is None else str(dtype).removeprefix("torch.")
    return _NetworkRun(masked, unmasked, str(torch_device), precision_name)


def _effective_strength(requested: float | None, info: ModelInfo, model: Page4D) -> float:
    strength = info.default_mask_strength if requested is None else float(requested)
    if not np.isfinite(strength) or strength < 0:
        raise Page4DError(f"mask strength must be a finite number >= 0, got {requested}")
    if strength != 0.0 and not (model.mask_available and info.mask_available):
        logger.warning("this checkpoint has no dynamic mask head: mask strength set to 0")
        return 0.0
    return strength


def _as_clip(
    clip_or_source: Clip | SourceLike, sampling: FrameSampling | None, report: _Reporter
) -> Clip:
    if isinstance(clip_or_source, clips.Clip):
        if sampling is not None:
            raise Page4DError("sampling applies to a source, not to an already loaded clip")
        return clip_or_source

    def on_frames(done: int, total: int) -> None:
        report.stage("reading", done / max(total, 1), f"reading frames ({done}/{total})")

    return clips.load_clip(clip_or_source, sampling or ALL_FRAMES, progress=on_frames)


def _timestamps(clip: Clip) -> list[float]:
    times = np.asarray(clip.timestamps, dtype=np.float64)
    # Still images have no timing (NaN): record none rather than invent times.
    if not np.all(np.isfinite(times)):
        return []
    return [float(t) for t in times]


def find_ground_truth(source: object) -> Path | None:
    """The ground truth that sits beside a clip source, if any.

    Looks in the source folder (or the folder of a source file) and its parent, for a
    synthetic sample (``groundtruth.npz``) or a TUM/Bonn sequence (``groundtruth.txt``).

    Returns:
        The folder to pass to ``load_ground_truth``, or None.
    """
    if not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(source).expanduser()
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent):
        if (candidate / GROUND_TRUTH_NAME).is_file() or (candidate / TUM_TRAJECTORY).is_file():
            return candidate
    return None


def _attach_ground_truth(
    recon: Reconstruction, clip: Clip, ground_truth: str | os.PathLike[str] | None
) -> Reconstruction:
    """The Reconstruction with ground truth in model-input pixels, when asked and available."""
    if ground_truth is None:
        return recon
    automatic = str(ground_truth) == AUTO_GROUND_TRUTH
    path = find_ground_truth(clip.source) if automatic else Path(ground_truth)
    if path is None:
        return recon
    metadata = recon.metadata
    try:
        # In the app a run is confined to its data roots: the files beside the source too.
        if current_roots() is not None:
            check_tree(path)
        truth = load_ground_truth(
            path,
            frame_indices=metadata.frame_indices,
            timestamps=metadata.timestamps or None,
        )
        mapping = metadata.preprocessing.mapping
        original_hw = (int(mapping["original_size"][0]), int(mapping["original_size"][1]))
        if truth.image_hw is not None and truth.image_hw != original_hw:
            truth = truth.resized(original_hw)
        truth = truth.to_model_input(mapping)
    except Page4DError as error:
        if not automatic:
            raise
        logger.warning("ground truth beside the source not used: %s", error)
        return recon
    if truth.num_frames != recon.num_frames:
        message = (
            f"ground truth at {path} has {truth.num_frames} frames, the clip has {recon.num_frames}"
        )
        if not automatic:
            raise Page4DError(message)
        logger.warning("%s; not used", message)
        return recon
    logger.info("attached %s ground truth from %s", truth.source_format, path)
    recon = recon.with_ground_truth(
        truth.extrinsics, truth.intrinsics, truth.depth, truth.dynamic_mask
    )
    recon.metadata.ground_truth = str(path)
    return recon


def _to_reconstruction(
    masked: ModelOutput, unmasked: ModelOutput, frames: np.ndarray, metadata: Metadata
) -> Reconstruction:
    """Batch item 0 of the model outputs as float32 numpy, cameras from the pose encodings."""
    image_hw = (int(frames.shape[1]), int(frames.shape[2]))

    def numpy(tensor: torch.Tensor | None) -> np.ndarray:
        if tensor is None:  # the masked run always carries its dense heads
            raise Page4DError("the network returned no depth or points for the masked run")
        return tensor[0].detach().float().cpu().numpy()

    cameras = {MASKED: Cameras.from_pose_encoding(numpy(masked.pose_enc), image_hw)}
    cameras[UNMASKED] = (
        cameras[MASKED]
        if unmasked is masked
        else Cameras.from_pose_encoding(numpy(unmasked.pose_enc), image_hw)
    )
    return Reconstruction(
        images=frames,
        depth=numpy(masked.depth)[..., 0],
        depth_conf=numpy(masked.depth_conf),
        points=numpy(masked.world_points),
        points_conf=numpy(masked.world_points_conf),
        cameras=cameras,
        mask_score=None if masked.mask_score is None else numpy(masked.mask_score),
        metadata=metadata,
        inside=_inside(masked, unmasked),
    )


def _inside(masked: ModelOutput, unmasked: ModelOutput) -> Inside | None:
    """The attention maps and feature PCA of batch item 0, or None when none were recorded.

    Feature PCA comes from the masked variant, whose depth and points the Reconstruction keeps.
    """
    inspection = masked.inspection
    if inspection is None:
        return None
    attention = Inside()
    if inspection.attention is not None and inspection.attention_special is not None:
        runs = {MASKED: inspection}
        if unmasked.inspection is not None:
            runs[UNMASKED] = unmasked.inspection
        attention = Inside(
            attention={
                name: run.attention[0].float().cpu().numpy()
                for name, run in runs.items()
                if run.attention is not None
            },
            attention_special={
                name: run.attention_special[0].float().cpu().numpy()
                for name, run in runs.items()
                if run.attention_special is not None
            },
            attention_layers=tuple(inspection.attention_layers),
            attention_query_frames=tuple(inspection.query_frames),
        )
    if inspection.feature_pca is None:
        return attention
    return dataclasses.replace(
        attention,
        feature_pca=inspection.feature_pca[0].cpu().numpy(),
        feature_layers=tuple(inspection.feature_layers),
    )


def _synchronize(torch_device: torch.device) -> None:
    if torch_device.type == "cuda":
        torch.cuda.synchronize(torch_device)
    elif torch_device.type == "mps":
        torch.mps.synchronize()


class _Reporter:
    """Maps stage progress onto one 0..1 fraction for the caller's callback."""

    def __init__(
        self, callback: ProgressFn | None, bands: dict[str, tuple[float, float]] = _BANDS
    ) -> None:
        self._callback = callback
        self._bands = bands
        self._last = 0.0

    def stage(self, stage: str, within: float, message: str) -> None:
        low, high = self._bands[stage]
        # Never go backwards, whatever order the stages report in.
        fraction = max(self._last, low + (high - low) * min(max(within, 0.0), 1.0))
        self._last = fraction
        if self._callback is not None:
            self._callback(fraction, message)

    def model_callback(
        self, torch_device: torch.device, timings: dict[str, float]
    ) -> Callable[[str, int, int], None]:
        """A ``progress(stage, done, total)`` for the network that also times its stages."""
        clock = {"stage": "", "since": time.perf_counter()}
        finished: dict[str, float] = {}

        def on_step(stage: str, done: int, total: int) -> None:
            if stage != clock["stage"]:
                # Synchronise so a stage's time is its own, not the queued GPU work before it.
                _synchronize(torch_device)
                now = time.perf_counter()
                if clock["stage"]:
                    key = f"model.{clock['stage']}"
                    timings[key] = timings.get(key, 0.0) + now - clock["since"]
                clock["stage"], clock["since"] = stage, now
            finished[stage] = done / max(total, 1)
            self.stage("model", network_fraction(finished), f"{stage} ({done}/{total})")
            if done == total:
                _synchronize(torch_device)
                now = time.perf_counter()
                key = f"model.{stage}"
                timings[key] = timings.get(key, 0.0) + now - clock["since"]
                clock["stage"], clock["since"] = "", now

        return on_step


__all__ = [
    "AUTO_GROUND_TRUTH",
    "ModelInfo",
    "ProgressFn",
    "find_ground_truth",
    "load_default_model",
    "load_model",
    "model_info_from_checkpoint",
    "predict",
]
