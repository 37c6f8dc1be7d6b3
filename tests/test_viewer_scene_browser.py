"""The scene in Chromium (issue 20): the split view follows a dragged view; a loading notice."""

from __future__ import annotations

import numpy as np
import viser
from conftest import wait_for

from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.split import SplitScenes, Viewpoint

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


def test_dragging_one_side_moves_the_other(make_reconstruction, launch_chromium) -> None:
    servers = [viser.ViserServer(host="127.0.0.1", port=0, verbose=False) for _ in range(2)]
    scenes = [SceneView(server) for server in servers]
    split = SplitScenes(*scenes)
    try:
        split.show(make_reconstruction(6, 28, 42, variants=VARIANTS, ground_truth=True))
        with launch_chromium(webgl=True) as browser:
            pages = []
            for server in servers:
                page = browser.new_page(viewport={"width": 700, "height": 500})
                page.goto(f"http://127.0.0.1:{server.get_port()}/")
                pages.append(page)
            left, right = pages
            wait_for(lambda: all(_viewpoint(s) for s in servers), 120, "both cameras", page=left)
            before = _viewpoint(servers[1])
            assert before is not None
            canvas = left.locator("canvas").first
            canvas.wait_for()
            box = canvas.bounding_box()
            assert box is not None
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            left.mouse.move(x, y)
            left.mouse.down()
            left.mouse.move(x + 160, y + 40, steps=12)  # orbit the left view
            left.mouse.up()

            def followed() -> bool:
                moved, follower = _viewpoint(servers[0]), _viewpoint(servers[1])
                return (
                    moved is not None
                    and follower is not None
                    and not moved.near(before)
                    and np.allclose(follower.position, moved.position, atol=1e-3)
                    and np.allclose(follower.look_at, moved.look_at, atol=1e-3)
                )

            wait_for(followed, 60, "the right view to follow the left one", page=right)
    finally:
        split.close()
        for scene, server in zip(scenes, servers, strict=True):
            scene.close()
            server.stop()


def test_a_browser_sees_what_is_loading_until_it_arrives(
    make_reconstruction, launch_chromium
) -> None:
    """Issue 20: from the moment a result is chosen, the scene's page says what is loading
    (a viewer that connects meanwhile too), and the notice goes once its first frame is sent."""
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    scene = SceneView(server)
    try:
        scene.show(make_reconstruction(4, 28, 42))
        scene.set_loading("next.mp4 · 4 frames")
        with launch_chromium(webgl=True) as browser:
            page = browser.new_page(viewport={"width": 700, "height": 500})
            page.goto(f"http://127.0.0.1:{server.get_port()}/")
            notice = page.get_by_text("next.mp4 · 4 frames")
            notice.wait_for(timeout=60_000)
            scene.show(make_reconstruction(4, 28, 42, seed=1))
            notice.wait_for(state="detached", timeout=60_000)
    finally:
        scene.close()
        server.stop()
