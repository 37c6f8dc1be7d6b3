"""The scene in Chromium (issue 20): the split view follows a dragged view; a loading notice."""

from __future__ import annotations

import viser
from conftest import browser_viewpoint, drag_and_see_the_other_side_follow, wait_for

from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.split import SplitScenes

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


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
            wait_for(
                lambda: all(browser_viewpoint(s) for s in servers), 120, "both cameras", page=left
            )
            before = browser_viewpoint(servers[1])
            assert before is not None
            canvas = left.locator("canvas").first
            canvas.wait_for()
            drag_and_see_the_other_side_follow(left, canvas, servers, before, 160, 40)
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
