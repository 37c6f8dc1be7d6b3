"""Picture the mask as the app shows it by default: the scene and the panel's captioned frames.

    python -m page4d_viewer infer assets/samples/orbit_movers --out orbit.npz
    python scripts/mask_screenshot.py orbit.npz --out docs/images/mask-orbit-movers.png

Opens the saved result in a view-only app (no model) on a free port, in Debian's Chromium
(`apt-get install chromium`; never `playwright install`), moves to `--frame`, waits for the
scene's software WebGL to draw, and saves the whole page (the 3-D scene and the "Mask and
depth" tab's pictures with their colour bars), then the scene alone in a page of its own, where
Viser's sidebar (with the Legend folder) is open, as `<out>-scene.png`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from panel_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, close_scene_notices

VIEWPORT = {"width": 1500, "height": 1400}


def take_screenshot(result: Path, out: Path, frame: int, chromium: Path = CHROMIUM) -> None:
    """Open `result` in the app, show `frame`, and save the page as a PNG at `out`."""
    from playwright.sync_api import sync_playwright

    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

    with tempfile.TemporaryDirectory(prefix="page4d-screenshot-") as runs_dir:
        config = AppConfig(
            port=0, runs_dir=Path(runs_dir), result=str(result),
            data_roots=[result.parent],
        )  # fmt: skip
        app = ViewerApp(config, None)
        app.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(app.url)
                page.locator("#scene-frame iframe").wait_for()
                src = page.locator("#scene-frame").get_attribute("data-src") or ""
                session = app.sessions.get(src.strip("/").split("/")[-1])
                if session is None or not session.scene.wait_until_sent(TIMEOUT_MS / 1000):
                    raise SystemExit("error: the scene never received the result")
                session.scene.set_frame(frame)
                page.wait_for_function(
                    "f => document.querySelector('#frame input[type=number]').value == f",
                    arg=str(frame),
                )
                close_scene_notices(page)
                page.wait_for_timeout(5000)  # let the scene's WebGL canvas draw
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                scene_page = browser.new_page(viewport={"width": 1500, "height": 900})
                scene_page.goto(app.url + src)
                scene_page.wait_for_timeout(8000)  # connect, receive every frame, draw
                close_scene_notices_on(scene_page)
                # Viser starts with its control panel folded: open it to show the Legend.
                scene_page.get_by_text("Connected").first.click()
                scene_page.wait_for_timeout(2000)
                scene_page.screenshot(path=str(out.with_name(out.stem + "-scene.png")))
                browser.close()
        finally:
            app.close()


def close_scene_notices_on(page) -> None:
    """Dismiss Viser's "software WebGL" notice on a page that shows the scene itself."""
    close = page.locator(".mantine-Notification-root button")
    for _ in range(close.count()):
        close.first.click()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path, help="a saved result (.npz)")
    parser.add_argument("--out", type=Path, default=Path("docs/images/mask-orbit-movers.png"))
    parser.add_argument("--frame", type=int, default=12, help="frame shown in the picture")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="Chromium executable")
    args = parser.parse_args(argv)
    take_screenshot(args.result.resolve(), args.out, args.frame, args.chromium)
    return 0


if __name__ == "__main__":
    sys.exit(main())
