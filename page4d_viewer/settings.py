"""Shared defaults and asset locations, in one torch-free module.

The app, the command line, the exporters and the viewer all read these, so a default changed
here changes everywhere at once (and the viewer can import it without torch).
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Final, Literal, TypeAlias

RELEASED_MASK_STRENGTH = 64.0
"""Mask strength alpha that PAGE-4D's mask checkpoint was trained with (MODEL.md)."""

Precision: TypeAlias = Literal["auto", "fp32", "bf16", "fp16"]
"""A model precision a user can ask for; "auto" picks one per device (inference/device.py)."""
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
"""Model precisions a user can force; "auto" (below) picks one per device."""
AUTO: Final = "auto"
PRECISION_CHOICES: tuple[Precision, ...] = (AUTO, *PRECISIONS)

Device: TypeAlias = str
"""A torch device a user can ask for: "auto" (the best available), "cpu", "cuda", "mps", or
"cuda:N" for GPU N. A plain str, not a Literal: "cuda:N" takes any GPU index, which a Literal
cannot list; inference/device.py checks the value."""
DEVICE_CHOICES: tuple[Device, ...] = (AUTO, "cpu", "cuda", "mps")
"""The devices a menu offers (any "cuda:N" is accepted where a device is typed)."""

DEFAULT_CONF_PERCENTILE = 25.0
"""Least confident percent of points dropped, by the scene and by the point exports alike."""
DEFAULT_MASK_OPACITY = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
"""Dynamic probability at or above which a pixel counts as moving (overlay and split)."""
MaskOverlay: TypeAlias = Literal["continuous", "threshold"]
"""How the overlay draws the mask: every patch in the heat colour of its dynamic probability
("continuous"), or only patches at or above the threshold ("threshold")."""
MASK_OVERLAYS: tuple[MaskOverlay, ...] = ("continuous", "threshold")
DEFAULT_MASK_OVERLAY: MaskOverlay = "continuous"
MASK_SCALE_PERCENTILE = 99.0
"""The overlay's colour scale tops out at this percentile of the clip's dynamic probability,
so a weak mask still spans the colours; the colour bar states the value."""
DEFAULT_COLORMAP = "inferno"
"""Matplotlib colormap of the mask heat map, in the scene, the panel and the mp4 export."""

MAX_TRACKS = 4096
"""Most point tracks one request may ask for (the tracker's cost grows with the count); also
the most the scene can be asked to show."""
DEFAULT_TRACK_POINTS = 64
"""The app's "Track points" for a checkpoint with a track head (the command line's --tracks
defaults to 0: tracking is one more forward pass, asked for explicitly)."""
DEFAULT_TRACK_TRAIL = 8
"""Frames of each track's trail drawn back from the current frame."""
DEFAULT_TRACKS_SHOWN = 256
"""At most this many tracks drawn; more are thinned evenly."""

DEFAULT_SAMPLE = "orbit_movers"
"""The bundled sample the app runs at start."""
DEFAULT_CHECKPOINT_NAME = "page4d_small.safetensors"
DEFAULT_CHECKPOINT_ENV = "PAGE4D_DEFAULT_CHECKPOINT"
"""Environment variable naming another default checkpoint (installs that keep weights elsewhere)."""


def assets_dir() -> Path:
    """The folder holding the shipped default model and the bundled samples.

    An installed wheel carries it inside the package (``page4d_viewer/assets``, found through
    ``importlib.resources``); a clone of the repository keeps it at the top level.
    """
    packaged = resources.files("page4d_viewer") / "assets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "assets"


def samples_dir() -> Path:
    """The bundled sample clips: one folder each with clip.mp4 and its ground truth."""
    return assets_dir() / "samples"


def default_checkpoint_path() -> Path:
    """The shipped default model, or the file ``PAGE4D_DEFAULT_CHECKPOINT`` names."""
    override = os.environ.get(DEFAULT_CHECKPOINT_ENV)
    if override:
        return Path(override).expanduser()
    return assets_dir() / DEFAULT_CHECKPOINT_NAME


# ------------------------------------------------------------------------------- limits
# Budgets for untrusted input, checked before the work they bound (headers, zip directories,
# npy headers, model configs), so a cheap hostile file is refused before it costs memory.
# Each one is read at the moment it is checked, from an environment variable when set.


class Limit:
    """One budget: its environment variable, default, and what it counts."""

    def __init__(self, env: str, default: float, what: str, unit: str = "") -> None:
        self.env, self.default, self.what, self.unit = env, default, what, unit

    def value(self) -> float:
        """The budget now: the environment variable's number when set, else the default."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            number = float(text)
        except ValueError:
            return self.default
        return number if number > 0 else self.default

    def message(self, subject: str, amount: float) -> str:
        """One line: what is over which limit, and how to raise it."""
        return (
            f"{subject}: {_amount(amount, self.unit)} is over the limit of "
            f"{_amount(self.value(), self.unit)} {self.what}; set {self.env} to raise it"
        )


def _amount(number: float, unit: str) -> str:
    if unit == "bytes":
        for size, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
            if number >= size:
                return f"{number / size:.1f} {name}"
        return f"{number:.0f} bytes"
    return f"{number:g}{' ' + unit if unit else ''}"


MAX_UPLOAD_BYTES = Limit("PAGE4D_MAX_UPLOAD_BYTES", 2 * 1024**3, "per upload", "bytes")
MAX_FRAME_PIXELS = Limit("PAGE4D_MAX_FRAME_PIXELS", 4096 * 4096, "per frame", "pixels")
MAX_CLIP_PIXELS = Limit("PAGE4D_MAX_CLIP_PIXELS", 200e6, "decoded per clip", "pixels")
MAX_FRAMES = Limit("PAGE4D_MAX_FRAMES", 1000, "per clip", "frames")
MAX_FPS = Limit("PAGE4D_MAX_FPS", 1000, "(target frame rate)", "fps")
MAX_ZIP_MEMBERS = Limit("PAGE4D_MAX_ZIP_MEMBERS", 10000, "entries per zip", "entries")
MAX_ZIP_BYTES = Limit("PAGE4D_MAX_ZIP_BYTES", 1024**3, "uncompressed per zip", "bytes")
MAX_RESULT_BYTES = Limit("PAGE4D_MAX_RESULT_BYTES", 768 * 1024**2, "of arrays per result", "bytes")
MAX_MODEL_PARAMETERS = Limit("PAGE4D_MAX_MODEL_PARAMETERS", 3e9, "per model", "parameters")
MAX_MODEL_BLOCKS = Limit("PAGE4D_MAX_MODEL_BLOCKS", 256, "per model", "transformer blocks")
MAX_RUNS_BYTES = Limit("PAGE4D_MAX_RUNS_BYTES", math.inf, "in the runs folder", "bytes")
"""Optional: when set, the oldest unpinned runs are removed to keep the folder under it."""

LIMITS: tuple[Limit, ...] = (
    MAX_UPLOAD_BYTES,
    MAX_FRAME_PIXELS,
    MAX_CLIP_PIXELS,
    MAX_FRAMES,
    MAX_FPS,
    MAX_ZIP_MEMBERS,
    MAX_ZIP_BYTES,
    MAX_RESULT_BYTES,
    MAX_MODEL_PARAMETERS,
    MAX_MODEL_BLOCKS,
    MAX_RUNS_BYTES,
)
