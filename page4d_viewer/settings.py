"""Shared defaults and asset locations, in one torch-free module.

The app, the command line, the exporters and the viewer all read these, so a default changed
here changes everywhere at once (and the viewer can import it without torch).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

RELEASED_MASK_STRENGTH = 64.0
"""Mask strength alpha that PAGE-4D's mask checkpoint was trained with (MODEL.md)."""

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
"""Model precisions a user can force; "auto" (below) picks one per device."""
AUTO = "auto"
PRECISION_CHOICES: tuple[str, ...] = (AUTO, *PRECISIONS)

DEFAULT_CONF_PERCENTILE = 25.0
"""Least confident percent of points dropped, by the scene and by the point exports alike."""
DEFAULT_MASK_OPACITY = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
"""Dynamic probability at or above which a pixel counts as moving (overlay and split)."""
DEFAULT_COLORMAP = "inferno"
"""Matplotlib colormap of the mask heat map, in the scene, the panel and the mp4 export."""

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
