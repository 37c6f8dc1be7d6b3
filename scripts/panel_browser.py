"""What the screenshot scripts share: the Chromium they drive and small page helpers.

Debian's Chromium (`apt-get install chromium`), driven by Playwright; never
`playwright install`, which downloads another browser. Imported by the scripts beside it
(`python scripts/<name>.py` puts this folder on the path).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from page4d_viewer.viewer.server.app import ViewerApp

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


def wait_status(page, text: str) -> None:
    """Wait until the panel's status line contains `text`."""
    page.wait_for_function(
        "text => document.querySelector('#status').innerText.includes(text)",
        arg=text,
        timeout=TIMEOUT_MS,
    )


def close_scene_notices(page) -> None:
    """Dismiss Viser's "software WebGL" notice, which headless Chromium always triggers, in
    every scene on the page (two in the split view)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    for number in range(page.locator("#scene-frame iframe").count()):
        scene = page.frame_locator(f"#scene-frame iframe >> nth={number}")
        close = scene.locator(".mantine-Notification-root button")
        try:
            close.first.wait_for(timeout=15_000)
        except PlaywrightTimeoutError:  # no notice: nothing to close
            continue
        for _ in range(close.count()):
            close.first.click()


@contextlib.contextmanager
def app_in_chromium(
    backend, viewport: dict[str, int], chromium: Path = CHROMIUM
) -> Iterator[tuple[ViewerApp, Page]]:
    """Start the app in this process on a free port with `backend` and open it in Chromium.

    Yields:
        (the running ViewerApp, the Playwright page showing its panel).
    """
    from playwright.sync_api import ViewportSize, sync_playwright

    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

    if not chromium.exists():
        raise SystemExit(f"error: {chromium} not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="page4d-screenshot-") as runs_dir:
        app = ViewerApp(AppConfig(port=0, runs_dir=Path(runs_dir)), backend)  # any free port
        app.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), args=CHROMIUM_ARGS
                )
                size = ViewportSize(width=viewport["width"], height=viewport["height"])
                page = browser.new_page(viewport=size)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(app.url)
                yield app, page
                browser.close()
        finally:
            app.close()


def page_scene(app, page):
    """The scene of the page's own session (named by its iframe, scene/<session>/), once it
    holds every frame."""
    src = page.locator("#scene-frame").get_attribute("data-src") or ""
    session = app.sessions.get(src.strip("/").split("/")[-1])
    if session is None:
        raise RuntimeError(f"no open session for the scene at {src!r}")
    if not session.scene.wait_until_sent(timeout=TIMEOUT_MS / 1000):
        raise TimeoutError("the scene never received every frame")
    return session.scene
