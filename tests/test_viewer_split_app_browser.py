"""The split view in the running app (issue 20), in headless Chromium with software WebGL.

A view-only app shows a saved result with ground truth. The page turns the split view on: the
scene box holds two scenes (the right one through the proxy's `/scene/<session>/right/`), each
labelled with its side and ATE. Dragging in the left scene's iframe orbits its camera, and the
right scene's browser camera follows: read on the server, from each side's Viser client.
"""

from __future__ import annotations

import numpy as np
import pytest
import viser
from conftest import open_panel, viewing_app, wait_for

from page4d_viewer.viewer.scene.split import Viewpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


def _viewpoint(server: viser.ViserServer) -> Viewpoint | None:
    """The viewpoint of the server's one browser, once it has reported its camera."""
    clients = list(server.get_clients().values())
    if len(clients) != 1:
        return None
    try:
        return Viewpoint.of(clients[0].camera)
    except AssertionError:  # Viser: no camera reported yet
        return None


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
        wait_for(lambda: all(_viewpoint(s) for s in servers), 120, "both cameras", page=page)
        before = _viewpoint(servers[1])
        assert before is not None

        canvas = page.frame_locator("#scene-left").locator("canvas").first
        canvas.wait_for()
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()  # in the page's viewport, as the mouse moves
        assert box is not None
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 120, y + 30, steps=12)  # orbit the left view
        page.mouse.up()

        def followed() -> bool:
            moved, follower = _viewpoint(servers[0]), _viewpoint(servers[1])
            return (
                moved is not None
                and follower is not None
                and not moved.near(before)
                and np.allclose(follower.position, moved.position, atol=1e-3)
                and np.allclose(follower.look_at, moved.look_at, atol=1e-3)
            )

        wait_for(followed, 60, "the right view to follow the left one", page=page)
        page.close()
