"""The "Inside the model" tab in headless Chromium: pick a layer and the heat map changes; click
a pixel of the frame overlay and the scene marks its 3-D point.

A view-only app (no model) opened on the small hand-made Reconstruction with attention
(`inspected_recon` in conftest), driven through Debian's Chromium with Playwright (never
`playwright install`). Assertions read the server-side scene state and the page's images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from conftest import viewing_app, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000  # two shared CPU cores


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, inspected_recon) -> Iterator:
    with viewing_app(inspected_recon(), tmp_path_factory.mktemp("inspect")) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, panel_page) -> Iterator:
    with panel_page(app.url, timeout_ms=TIMEOUT_MS) as opened:
        yield opened


def _image_src(page, elem_id: str) -> str:
    image = page.locator(f"#{elem_id} img")
    image.wait_for()
    return image.get_attribute("src") or ""


def _wait_changed(page, read, before: str, what: str) -> str:
    for _ in range(TIMEOUT_MS // 200):
        now = read()
        if now and now != before:
            return now
        page.wait_for_timeout(200)
    raise AssertionError(f"{what} did not change")


def test_picking_a_layer_changes_the_heat_map(page) -> None:
    page.get_by_role("tab", name="Inside the model").first.click()
    first = _image_src(page, "attention-grid")
    page.locator("#attention-layer input").click()
    page.get_by_role("option", name="9").click()
    _wait_changed(page, lambda: _image_src(page, "attention-grid"), first, "the heat map")
    special = page.locator("#attention-special").inner_text()
    assert "layer 9" in special and "special" in special


def test_clicking_a_pixel_marks_its_point_in_the_scene(page_session, app, page) -> None:
    session = page_session(app, page)
    assert session.scene.state().points.probe_point is None
    page.get_by_role("tab", name="Mask and depth").first.click()
    overlay = page.locator(".block", has_text="Frame + dynamic mask").last.locator("img")
    overlay.wait_for()
    box = overlay.bounding_box()
    assert box is not None
    # The frame's centre: the picture is the frame (enlarged by a whole factor) with its
    # caption strip below, drawn at the box's width.
    from page4d_viewer.viewer import plots

    recon = session.controller.current.recon
    natural_height = overlay.evaluate("img => img.naturalHeight")
    frame_height = recon.image_hw[0] * plots.enlargement(recon.image_hw[1], plots.PANEL_IMAGE_WIDTH)
    centre_y = box["height"] * (frame_height / 2) / natural_height
    overlay.click(position={"x": box["width"] / 2, "y": centre_y})
    wait_for(lambda: session.scene.state().points.probe_point is not None, page=page)
    recon = session.controller.current.recon
    probed = session.scene.state().points.probe_point
    assert probed is not None
    np.testing.assert_allclose(probed, recon.points[0, 14, 21], atol=0.06)
    page.get_by_role("tab", name="Inside the model").first.click()
    page.locator("#probe-text").get_by_text("Frame 0, pixel").wait_for()
