"""The split view in the running app (issue 20), in headless Chromium with software WebGL.

A view-only app shows a saved result with ground truth. The page turns the split view on: the
scene box holds two scenes (the right one through the proxy's `/scene/<session>/right/`), each
labelled with its side and ATE. Dragging in the left scene's iframe orbits its camera, and the
right scene's browser camera follows: read on the server, from each side's Viser client.
"""

from __future__ import annotations

import pytest
from conftest import (
    browser_viewpoint,
    drag_and_see_the_other_side_follow,
    open_panel,
    viewing_app,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


def test_the_split_view_shows_both_sides_and_locks_their_views(
    make_reconstruction, launch_chromium, page_session, tmp_path
) -> None:
    recon = make_reconstruction(6, 28, 42, variants=VARIANTS, ground_truth=True)
    with viewing_app(recon, tmp_path) as app, launch_chromium(webgl=True) as browser:
        page = open_panel(browser, app.url, height=1100, load_scene=True)
        session = page_session(app, page)
        wait_for(lambda: session.controller.current is not None, 60, "the result", page=page)
        page.locator("#split-toggle input[type=checkbox]").check()
        page.locator("#scene-right").wait_for()
        left_label, right_label = (
            page.locator("#split-label-left"),
            page.locator("#split-label-right"),
        )
        left_label.wait_for()
        assert left_label.inner_text().startswith("masked · ATE ")
        assert right_label.inner_text().startswith("unmasked · ATE ")
        assert "geometric ATE" in right_label.inner_text()
        assert session.split_on and session._split is not None
        servers = (session.server, session._split.server)
        right_scene = session._split.right
        wait_for(lambda: right_scene.num_frames == 6, 60, "the right side's result", page=page)
        wait_for(lambda: all(browser_viewpoint(s) for s in servers), 120, "both cameras", page=page)
        before = browser_viewpoint(servers[1])
        assert before is not None

        canvas = page.frame_locator("#scene-left").locator("canvas").first
        canvas.wait_for()
        canvas.scroll_into_view_if_needed()
        drag_and_see_the_other_side_follow(page, canvas, servers, before, 120, 30)
        page.close()
