"""Ground truth of page4d_viewer's synthetic scenes: a folder holding ``groundtruth.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from page4d_viewer.sources.groundtruth.base import GroundTruth
from page4d_viewer.sources.synthetic.files import GROUND_TRUTH_NAME, load_synthetic_clip

__all__ = ["GROUND_TRUTH_NAME", "load_synthetic"]


def load_synthetic(folder: Path, indices: np.ndarray | None) -> GroundTruth:
    """The ground truth of a synthetic sample folder, for the frames ``indices`` (all if None)."""
    scene = load_synthetic_clip(folder)

    def optional(name: str, dtype: type) -> np.ndarray | None:
        value = getattr(scene, name, None)
        return None if value is None else np.asarray(value, dtype=dtype)

    depth = optional("depth", np.float32)
    valid = optional("valid", bool)
    if depth is not None and valid is not None:
        # Pixels that see no surface carry no depth: 0 is this module's "unknown".
        depth = np.where(valid, depth, 0).astype(np.float32)
    truth = GroundTruth(
        extrinsics=optional("extrinsics", np.float64),
        intrinsics=optional("intrinsics", np.float64),
        depth=depth,
        dynamic_mask=optional("dynamic_mask", bool),
        source_format="synthetic",
        timestamps=optional("timestamps", np.float64),
        path=str(folder),
    )
    return truth if indices is None else truth.select(indices)
