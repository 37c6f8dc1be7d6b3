"""Write the README screenshot: the app running the default model on the default sample.

    python scripts/screenshot.py                  # writes docs/screenshot.png
    python scripts/screenshot.py --out shot.png --frames 16 --frame 8
    python scripts/screenshot.py --checkpoint tracker.safetensors --out docs/tracks.png

With --checkpoint the app offers that checkpoint first (with a track head, its run tracks
64 points, the panel's default) instead of the shipped model.

Starts the app in this process on free ports (the shipped default model, the bundled default
sample clip), drives it with Playwright through Debian's Chromium (`apt-get install chromium`;
never `playwright install`), waits until the scene holds every frame, and saves a full-page PNG.
Takes a few minutes on two CPU cores: the scene's WebGL renders in software.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from panel_browser import (
    CHROMIUM,
    REPO_ROOT,
    app_in_chromium,
    close_scene_notices,
    page_scene,
    wait_status,
)

VIEWPORT = {"width": 1500, "height": 1150}


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def take_screenshot(
    out: Path,
    frames: int,
    frame: int,
    chromium: Path,
    checkpoint: Path | None = None,
    scene_only: bool = False,
) -> None:
    """Run the default sample through the app in a headless browser and save the page as PNG.

    Args:
        out: PNG file to write (its folder is created).
        frames: frames of the sample to run (the panel's "max frames").
        frame: frame the scene shows in the picture.
        chromium: the Chromium executable Playwright drives.
        checkpoint: the checkpoint to run (None: the shipped default model).
        scene_only: save only the 3-D scene's box instead of the whole page.
    """
    from page4d_viewer.inference.jobs import PredictorBackend
    from page4d_viewer.settings import DEFAULT_SAMPLE, default_checkpoint_path
    from page4d_viewer.viewer.controller import find_samples

    model = default_checkpoint_path() if checkpoint is None else checkpoint
    if not model.is_file():
        raise SystemExit(f"error: the model {model} is missing")
    if DEFAULT_SAMPLE not in find_samples():
        raise SystemExit(f"error: the bundled sample {DEFAULT_SAMPLE} is missing")
    backend = PredictorBackend([] if checkpoint is None else [str(checkpoint)])
    with app_in_chromium(backend, VIEWPORT, chromium) as (app, page):
        # The panel opens on the default sample; run it on `frames` frames.
        page.get_by_role("button", name="Sampling").click()
        _set_number(page, "max-frames", frames)
        page.get_by_role("button", name="Sampling").click()
        page.locator("#run").click()
        wait_status(page, f"· {frames} frames")
        page_scene(app, page).set_frame(frame)
        _wait_for(
            lambda: page.locator("#frame input[type=number]").input_value() == str(frame),
            timeout=60,
            what=f"the panel to show frame {frame}",
        )
        close_scene_notices(page)
        time.sleep(3)  # let the scene's WebGL canvas draw
        out.parent.mkdir(parents=True, exist_ok=True)
        if scene_only:
            page.locator("#scene-frame").screenshot(path=str(out))
        else:
            page.screenshot(path=str(out), full_page=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "screenshot.png", help="PNG to write"
    )
    parser.add_argument("--frames", type=int, default=16, help="frames of the sample to run")
    parser.add_argument("--frame", type=int, default=8, help="frame shown in the picture")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="Chromium executable")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--scene-only", action="store_true", help="save only the 3-D scene")
    args = parser.parse_args(argv)
    take_screenshot(
        args.out, args.frames, args.frame, args.chromium, args.checkpoint, args.scene_only
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
