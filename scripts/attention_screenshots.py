"""Write the screenshots of docs/attention.md: masked vs unmasked camera-token attention.

    python scripts/attention_screenshots.py            # writes docs/images/attention_*.png

Starts the app in this process on free ports with the shipped default model, runs the bundled
sample (orbit_movers) with "Record attention" ticked, and saves the "Inside the model" tab for
each variant (masked, unmasked, masked − unmasked) of one layer and query frame, plus the whole
page with the points coloured by attention. Drives Debian's Chromium with Playwright (never
`playwright install`). Takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from panel_browser import (
    REPO_ROOT,
    TIMEOUT_MS,
    app_in_chromium,
    close_scene_notices,
    page_scene,
    wait_status,
)

VIEWPORT = {"width": 1500, "height": 1300}
VARIANTS = {"masked": "masked", "unmasked": "unmasked", "masked − unmasked": "difference"}


def _pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _wait_new_image(page, elem_id: str, before: str) -> None:
    image = page.locator(f"#{elem_id} img")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while (image.count() == 0 or image.get_attribute("src") == before) and (
        time.monotonic() < deadline
    ):
        page.wait_for_timeout(200)
    page.wait_for_timeout(500)


def _run_with_attention(page, frames: int) -> None:
    page.get_by_role("button", name="Sampling").click()
    box = page.locator("#max-frames input[type=number]")
    box.fill(str(frames))
    box.press("Enter")
    page.locator("#record-attention input").check()
    page.locator("#run").click()
    wait_status(page, f"· {frames} frames")


def take_screenshots(out_dir: Path, frames: int, layer: int, query: int) -> list[Path]:
    """Run the sample with attention and save the tab per variant, and the page.

    Returns:
        The PNG files written.
    """
    from page4d_viewer.inference.jobs import PredictorBackend

    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with app_in_chromium(PredictorBackend(), VIEWPORT) as (app, page):
        _run_with_attention(page, frames)
        scene = page_scene(app, page)
        page.get_by_role("tab", name="Inside the model").first.click()
        tab = page.locator("#inside-tab")
        for option, name in (("layer", str(layer)), ("query", f"frame {query}")):
            before = page.locator("#attention-grid img").get_attribute("src")
            _pick(page, f"attention-{option}", name)
            _wait_new_image(page, "attention-grid", before or "")
        for label, name in VARIANTS.items():
            before = page.locator("#attention-grid img").get_attribute("src")
            page.locator("#attention-variant").get_by_label(label, exact=True).check()
            if label != "masked":
                _wait_new_image(page, "attention-grid", before or "")
            path = out_dir / f"attention_{name}.png"
            tab.screenshot(path=str(path))
            written.append(path)
        page.locator("#attention-variant").get_by_label("masked", exact=True).check()
        page.locator("#colour-points-by").get_by_label("attention").check()
        scene.points.set_display("all")  # every key frame, coloured by what it received
        close_scene_notices(page)
        time.sleep(20)  # the scene's WebGL canvas draws in software
        path = out_dir / "attention_page.png"
        page.screenshot(path=str(path), full_page=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir", type=Path, default=REPO_ROOT / "docs" / "images", help="folder"
    )
    parser.add_argument("--frames", type=int, default=24, help="frames of the sample to run")
    parser.add_argument("--layer", type=int, default=9, help="masked layer shown")
    parser.add_argument("--query", type=int, default=12, help="query frame shown")
    args = parser.parse_args(argv)
    for path in take_screenshots(args.out_dir, args.frames, args.layer, args.query):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
