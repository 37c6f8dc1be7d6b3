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
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 360_000
VIEWPORT = {"width": 1500, "height": 1150}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _wait_status(page, text: str) -> None:
    page.wait_for_function(
        "text => document.querySelector('#status').innerText.includes(text)",
        arg=text,
        timeout=TIMEOUT_MS,
    )


def _close_scene_notices(page) -> None:
    """Dismiss Viser's "software WebGL" notice, which headless Chromium always triggers."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    scene = page.frame_locator("#scene-frame iframe")
    close = scene.locator(".mantine-Notification-root button")
    try:
        close.first.wait_for(timeout=15_000)
    except PlaywrightTimeoutError:  # no notice: nothing to close
        return
    for _ in range(close.count()):
        close.first.click()


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
    from playwright.sync_api import sync_playwright

    from page4d_viewer.inference.jobs import PredictorBackend
    from page4d_viewer.settings import DEFAULT_SAMPLE, default_checkpoint_path
    from page4d_viewer.viewer.app import AppConfig, ViewerApp
    from page4d_viewer.viewer.controller import find_samples

    model = default_checkpoint_path() if checkpoint is None else checkpoint
    if not model.is_file():
        raise SystemExit(f"error: the model {model} is missing")
    if DEFAULT_SAMPLE not in find_samples():
        raise SystemExit(f"error: the bundled sample {DEFAULT_SAMPLE} is missing")
    if not chromium.exists():
        raise SystemExit(f"error: {chromium} not found (apt-get install chromium)")

    with tempfile.TemporaryDirectory(prefix="page4d-screenshot-") as runs_dir:
        config = AppConfig(port=_free_port(), runs_dir=Path(runs_dir))
        app = ViewerApp(config, PredictorBackend([] if checkpoint is None else [str(checkpoint)]))
        app.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(app.url)
                # The panel opens on the default sample; run it on `frames` frames.
                page.get_by_role("button", name="Sampling").click()
                _set_number(page, "max-frames", frames)
                page.get_by_role("button", name="Sampling").click()
                page.locator("#run").click()
                _wait_status(page, f"· {frames} frames")
                # The page's own session, named by its scene iframe (scene/<session>/).
                src = page.locator("#scene-frame").get_attribute("data-src") or ""
                session = app.sessions.get(src.strip("/").split("/")[-1])
                if session is None:
                    raise RuntimeError(f"no open session for the scene at {src!r}")
                if not session.scene.wait_until_sent(timeout=TIMEOUT_MS / 1000):
                    raise TimeoutError("the scene never received every frame")
                session.scene.set_frame(frame)
                _wait_for(
                    lambda: page.locator("#frame input[type=number]").input_value() == str(frame),
                    timeout=60,
                    what=f"the panel to show frame {frame}",
                )
                _close_scene_notices(page)
                time.sleep(3)  # let the scene's WebGL canvas draw
                out.parent.mkdir(parents=True, exist_ok=True)
                if scene_only:
                    page.locator("#scene-frame").screenshot(path=str(out))
                else:
                    page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            app.close()


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
