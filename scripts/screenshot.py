"""Write the README screenshot: the app running the default model on the default sample.

    python scripts/screenshot.py                  # writes docs/screenshot.png (split view)
    python scripts/screenshot.py --out shot.png --frames 16 --frame 8 --no-split
    python scripts/screenshot.py --checkpoint tracker.safetensors --out docs/tracks.png

With --checkpoint the app offers that checkpoint first (with a track head, its run tracks
64 points, the panel's default) instead of the shipped model.

Starts the app in this process on free ports (the shipped default model, the bundled default
sample clip), drives it with Playwright through Debian's Chromium (`apt-get install chromium`;
never `playwright install`), waits until the scene holds every frame, turns the split view on
(masked | unmasked, each side labelled with its ATE against the sample's ground truth) unless
`--no-split`, waits until its right side holds every frame too, folds Viser's control panels
away, and saves the top of the page as a PNG (`--full-page`: all of it).
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
    TIMEOUT_MS,
    app_in_chromium,
    close_scene_notices,
    page_scene,
    wait_status,
)

VIEWPORT = {"width": 1800, "height": 1100}


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


def fold_scene_panels(page) -> None:
    """Fold each scene's Viser control panel (a click on its header), so the picture shows
    the points rather than the sliders."""
    for number in range(page.locator("#scene-frame iframe").count()):
        scene = page.frame_locator(f"#scene-frame iframe >> nth={number}")
        scene.get_by_text("Connected", exact=True).first.click()


def show_split_view(app, page):
    """Turn the split view on; once both sides hold every frame, the session's `SplitView`."""
    page.locator("#split-toggle input[type=checkbox]").check()
    page.locator("#scene-right").wait_for()
    page.locator("#split-label-right").wait_for()
    src = page.locator("#scene-frame").get_attribute("data-src") or ""
    session = app.sessions.get(src.strip("/").split("/")[-1])
    if session is None:
        raise RuntimeError(f"no open session for the scene at {src!r}")
    _wait_for(lambda: session.split_on, timeout=60, what="the split view")
    split = session._split  # both sides get the result again when the split view turns on
    if split is None:
        raise RuntimeError("the split view did not open")
    for side in (split.left, split.right):
        _wait_for(lambda side=side: side.num_frames > 0, timeout=TIMEOUT_MS / 1000, what="a side")
        if not side.wait_until_sent(timeout=TIMEOUT_MS / 1000):
            raise TimeoutError("a side of the split view never received every frame")
    return split


def take_screenshot(
    out: Path,
    frames: int,
    frame: int,
    chromium: Path,
    checkpoint: Path | None = None,
    scene_only: bool = False,
    split: bool = True,
    full_page: bool = False,
) -> None:
    """Run the default sample through the app in a headless browser and save the page as PNG.

    Args:
        out: PNG file to write (its folder is created).
        frames: frames of the sample to run (the panel's "max frames").
        frame: frame the scene shows in the picture.
        chromium: the Chromium executable Playwright drives.
        checkpoint: the checkpoint to run (None: the shipped default model).
        scene_only: save only the 3-D scene's box instead of the whole page.
        split: turn the split view on (masked | unmasked) before the picture.
        full_page: save the whole page, not only its top (the browser's window).
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
        scene = page_scene(app, page)
        (show_split_view(app, page) if split else scene).set_frame(frame)
        _wait_for(
            lambda: page.locator("#frame input[type=number]").input_value() == str(frame),
            timeout=60,
            what=f"the panel to show frame {frame}",
        )
        close_scene_notices(page)
        fold_scene_panels(page)
        time.sleep(3)  # let the scene's WebGL canvas draw
        out.parent.mkdir(parents=True, exist_ok=True)
        if scene_only:
            page.locator("#scene-frame").screenshot(path=str(out))
        else:
            page.screenshot(path=str(out), full_page=full_page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "screenshot.png", help="PNG to write"
    )
    parser.add_argument("--frames", type=int, default=16, help="frames of the sample to run")
    parser.add_argument("--frame", type=int, default=8, help="frame shown in the picture")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="Chromium executable")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--scene-only", action="store_true", help="save only the 3-D scene")
    parser.add_argument("--no-split", action="store_true", help="one scene, no split view")
    parser.add_argument("--full-page", action="store_true", help="the whole page, not its top")
    args = parser.parse_args(argv)
    take_screenshot(
        args.out,
        args.frames,
        args.frame,
        args.chromium,
        args.checkpoint,
        args.scene_only,
        split=not args.no_split,
        full_page=args.full_page,
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
