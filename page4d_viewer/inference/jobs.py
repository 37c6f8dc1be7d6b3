"""The app's model side: checkpoints offered by name, one loaded at a time, runs through the
predictor, point tracks added to a shown result, and an out-of-memory error turned into advice.

The viewer never imports this module; the command line builds a `PredictorBackend` and hands
it to the app (the viewer only knows the `ModelBackend` protocol).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.inference import predictor, tracking
from page4d_viewer.inference.predictor import ModelInfo
from page4d_viewer.inference.preprocess import preprocess_mode
from page4d_viewer.model.network import Page4D
from page4d_viewer.result.reconstruction import Metadata, Reconstruction
from page4d_viewer.result.tracks import Seeds
from page4d_viewer.run_contract import Progress, RunOptions
from page4d_viewer.sources.clip import SourceLike

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default model"


class OutOfMemoryError(Page4DError):
    """The accelerator ran out of memory during a run."""


class PredictorBackend:
    """The panel's model side: checkpoints by name, one loaded at a time, runs via predict().

    Args:
        checkpoints: Checkpoint paths offered besides the shipped default model.
    """

    def __init__(self, checkpoints: Sequence[str] = ()) -> None:
        self._paths: dict[str, str | None] = {}
        for path in checkpoints:
            self._paths[_unique_name(Path(path).name or str(path), self._paths)] = str(path)
        self._paths[DEFAULT_MODEL] = None
        self._lock = threading.Lock()
        self._loaded: tuple[str, Page4D, ModelInfo] | None = None

    def checkpoint_names(self) -> list[str]:
        """Names for the drop-down: the command line's checkpoints first, then the default."""
        return list(self._paths)

    def default_mask_strength(self, checkpoint: str) -> float:
        """The checkpoint's own mask strength (64 for the mask release, 0 without a mask head).

        Loads the checkpoint (kept for the next run).
        """
        _model, info = self._load(checkpoint)
        return float(info.default_mask_strength)

    def track_available(self, checkpoint: str) -> bool:
        """Whether the checkpoint has a track head (loads it, kept for the next run)."""
        model, _info = self._load(checkpoint)
        return bool(model.track_available)

    def run_model(
        self, source: SourceLike, options: RunOptions, progress: Progress
    ) -> Reconstruction:
        """Run `page4d_viewer.inference.predictor.predict` with the panel's options.

        Raises:
            CheckpointError: the checkpoint cannot be read.
            OutOfMemoryError: the device ran out of memory (suggests fewer frames).
            Page4DError: bad source or options.
        """
        model, info = self._load(options.checkpoint or DEFAULT_MODEL)
        frames = options.max_frames or "all"
        with _advice_on_out_of_memory(f"running {frames} frames"):
            return predictor.predict(
                source,
                model,
                mask_strength=options.mask_strength,
                mode=preprocess_mode(options.mode),
                device=None if options.device == "auto" else options.device,
                precision=None if options.precision == "auto" else options.precision,
                progress=progress,
                checkpoint_info=info,
                sampling=options.sampling(),
                attention=options.attention,
                tracks=options.tracks,
            )

    def add_tracks(
        self, recon: Reconstruction, seeds: Seeds, options: RunOptions
    ) -> Reconstruction:
        """Track ``seeds`` on a result with the checkpoint, device and precision of ``options``.

        Only the network that made the result tracks on it: another one's features would not
        match its geometry.

        Raises:
            Page4DError: the checkpoint has no track head, the result came from another
                checkpoint, or a seed lies outside the result (one line each).
            OutOfMemoryError: the device ran out of memory.
        """
        model, info = self._load(options.checkpoint or DEFAULT_MODEL)
        tracking.require_track_head(model)
        if not made_by(recon.metadata, info):
            made = recon.metadata.checkpoint_name or "an unnamed model"
            raise Page4DError(
                f"this result came from {made}, not {info.name}: choose the checkpoint that "
                "made it under Model to add tracks"
            )
        with _advice_on_out_of_memory(f"tracking on {recon.num_frames} frames"):
            return tracking.add_tracks(
                model, recon, seeds,
                device=None if options.device == "auto" else options.device,
                precision=None if options.precision == "auto" else options.precision,
            )  # fmt: skip

    def _load(self, name: str) -> tuple[Page4D, ModelInfo]:
        if name not in self._paths:
            raise Page4DError(f"unknown checkpoint {name!r}; choose one of the list")
        with self._lock:
            if self._loaded is not None and self._loaded[0] == name:
                return self._loaded[1], self._loaded[2]
            # Drop the previous model first: two full-size models may not fit at once.
            self._loaded = None
            _release_accelerator_memory()
            model, info = predictor.load_model(self._paths[name])
            self._loaded = (name, model, info)
            logger.info("loaded checkpoint %s (%s)", name, info.variant)
            return model, info


def made_by(metadata: Metadata, info: ModelInfo) -> bool:
    """Whether a result's metadata names these weights: the same content hash when both
    have one, else the same checkpoint name."""
    if metadata.checkpoint_hash and info.content_hash:
        return metadata.checkpoint_hash == info.content_hash
    return metadata.checkpoint_name == info.name


@contextlib.contextmanager
def _advice_on_out_of_memory(doing: str) -> Iterator[None]:
    """Turn the device running out of memory while `doing` into an OutOfMemoryError with advice."""
    try:
        yield
    except RuntimeError as error:
        if not _is_out_of_memory(error):
            raise
        _release_accelerator_memory()
        raise OutOfMemoryError(
            f"the device ran out of memory {doing}; "
            "try fewer frames (Max frames, Stride) or precision bf16"
        ) from error


def _unique_name(name: str, taken: dict[str, str | None]) -> str:
    candidate, count = name, 1
    while candidate in taken or candidate == DEFAULT_MODEL:
        count += 1
        candidate = f"{name} ({count})"
    return candidate


def _is_out_of_memory(error: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError is a RuntimeError; MPS and older CUDA builds only say so
    # in the message.
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def _release_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
