"""CPU seconds of the panel's per-result pictures when several sessions show one result:
the Pose comparison and Mask and depth tabs' `show`, as each browser tab's page load calls
them, with the shared picture cache (`viewer.plot_cache`) and without it (every show draws
again, as before the cache). Prints a table (never asserts).

Usage: python benchmarks/panel_pictures.py [--sessions 4] [--frames 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the checkout, and the tests' stand-ins

from conftest import (  # noqa: E402  # pyright: ignore[reportMissingImports]
    _make_reconstruction,
    pose_and_mask_tabs,
)

from page4d_viewer.viewer import plot_cache, plots  # noqa: E402
from page4d_viewer.viewer.scene.shared import SharedWork  # noqa: E402

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


def session_of(recon) -> SimpleNamespace:
    controller = SimpleNamespace(
        current=None, frame_images=lambda frame: plots.frame_images(recon, frame, 0.5, 0.5)
    )
    comparer = SimpleNamespace(compared_with=lambda shown: None)
    return SimpleNamespace(controller=controller, comparer=comparer)


def one_round(recon, sessions: int, cached: bool) -> float:
    """CPU seconds of `sessions` page loads of both tabs showing `recon`."""
    cache = SharedWork()
    if not cached:
        cache.get = lambda owner, key, make: make()  # type: ignore[method-assign]
    plot_cache.SHARED = cache
    shown = SimpleNamespace(recon=recon, version=1)
    settings = SimpleNamespace(
        mask_opacity=0.5, mask_threshold=0.5, mask_overlay="continuous", frame=0
    )
    start = time.process_time()
    for _ in range(sessions):
        poses, mask = pose_and_mask_tabs()  # each browser tab: its own page
        session = session_of(recon)
        poses.show(session, shown, settings)  # type: ignore[arg-type]
        mask.show(session, shown, settings)  # type: ignore[arg-type]
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recon = _make_reconstruction(args.frames, variants=VARIANTS, ground_truth=True)
    one_round(recon, 1, cached=False)  # warm matplotlib's fonts and caches
    print(
        f"{args.sessions} sessions showing one {args.frames}-frame result, "
        f"CPU s (best of {args.repeats})"
    )
    for cached in (False, True):
        best = min(one_round(recon, args.sessions, cached) for _ in range(args.repeats))
        print(f"  {'shared cache' if cached else 'drawn per show':15s} {best:.3f}")


if __name__ == "__main__":
    main()
