"""The bundled sample clips (assets/samples) and how to render them again."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from page4d_viewer.sources.synthetic.clip import make_clip
from page4d_viewer.sources.synthetic.files import save_ground_truth
from page4d_viewer.sources.synthetic.scene import SyntheticSceneError

logger = logging.getLogger(__name__)

# name -> make_clip arguments; fixed seeds so the bundled assets are reproducible.
SAMPLES: dict[str, dict[str, Any]] = {
    "orbit_movers": dict(seed=12, camera="orbit", movers="large", num_movers=3, person=False),
    "handheld_walk": dict(seed=7, camera="handheld", movers="mixed", num_movers=1, person=True),
}


def make_samples(out: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Render the bundled sample clips (24 frames, 518 x 294) into ``out/<name>/``.

    Args:
        out: parent folder.
        names: which of :data:`SAMPLES`; None for all.

    Returns:
        The folders written.
    """
    folders = []
    for name in names or list(SAMPLES):
        if name not in SAMPLES:
            raise SyntheticSceneError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
        start = time.perf_counter()
        clip = make_clip(**SAMPLES[name])
        folder = save_ground_truth(clip, Path(out) / name)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        logger.info(
            "%s: %s (%.1f s, %.2f MB)", folder, clip.description, time.perf_counter() - start, size
        )
        folders.append(folder)
    return folders
