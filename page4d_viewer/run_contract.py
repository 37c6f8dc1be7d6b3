"""The run contract: what a model run is asked for, how it reports, and who runs it.

This module sits below both `inference` (which implements `ModelBackend` as
`inference.jobs.PredictorBackend`) and `viewer` (which calls it), so neither imports the other:
the command line wires one into the other (`cli/app.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.sampling import FrameSampling

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.result.tracks import Seeds
    from page4d_viewer.sources.clip import SourceLike

# At most this many frames per run unless the user asks for more: a first run on 2 CPU cores
# stays under a minute.
DEFAULT_MAX_FRAMES = 24

Progress = Callable[[float, str], None]
"""progress(fraction in [0, 1], message): reports a stage; may raise to cancel."""


class RunCancelled(Exception):
    """Raised from the progress callback when the user pressed Cancel."""


@dataclass(frozen=True)
class RunOptions:
    """Everything the panel lets the user set for one model run.

    Attributes:
        checkpoint: One of `ModelBackend.checkpoint_names()`.
        device: "auto", "cpu", "cuda" (or "cuda:N"), "mps".
        precision: "auto", "fp32", "bf16" or "fp16" (see page4d_viewer.inference.device).
        mask_strength: alpha of the masked run (0 = VGGT's computation, 64 = the release).
        mode: "crop" or "pad" to the model's input size.
        stride: Keep every stride-th frame.
        fps: Resample the clip to this frame rate first (videos only); None keeps the rate.
        start: First source frame (inclusive); None = 0.
        end: Source frame to stop before (exclusive); None = the end.
        max_frames: At most this many frames, spread evenly; None = no limit.
        attention: Also record the camera-token attention and feature PCA (the "Inside the
            model" tab).
        tracks: Also track this many points, seeded automatically (0 = none; needs a
            checkpoint with a track head).
    """

    checkpoint: str
    device: str = "auto"
    precision: str = "auto"
    mask_strength: float = RELEASED_MASK_STRENGTH
    mode: str = "crop"
    stride: int = 1
    fps: float | None = None
    start: int | None = None
    end: int | None = None
    max_frames: int | None = DEFAULT_MAX_FRAMES
    attention: bool = False
    tracks: int = 0

    def sampling(self) -> FrameSampling:
        """The frames `page4d_viewer.sources.clip.load_clip` keeps for these options.

        Raises:
            ClipError: an option is out of range (one line naming it).
        """
        return FrameSampling(
            stride=self.stride,
            fps=self.fps,
            start=self.start,
            end=self.end,
            max_frames=self.max_frames,
        )


class ModelBackend(Protocol):
    """What the panel needs from the model side; `app.py` builds it from the predictor."""

    def checkpoint_names(self) -> list[str]:
        """Checkpoints to offer, the default first."""
        ...

    def default_mask_strength(self, checkpoint: str) -> float:
        """The mask strength a checkpoint was released with (0 when it has no mask head)."""
        ...

    def run_model(
        self, source: SourceLike, options: RunOptions, progress: Progress
    ) -> Reconstruction:
        """Run on a clip; calls `progress` through the stages and lets its exceptions through."""
        ...

    def track_available(self, checkpoint: str) -> bool:
        """Whether a checkpoint can track points (has a track head)."""
        ...

    def add_tracks(
        self, recon: Reconstruction, seeds: Seeds, options: RunOptions
    ) -> Reconstruction:
        """`recon` with the tracks of `seeds` added, tracked by `options.checkpoint`."""
        ...
