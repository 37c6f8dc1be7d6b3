"""Record renders its own tab's view (issue 21, item 9), in headless Chromium.

The finding: with two tabs open, Record's "Current view" rendered the other tab's view. Here
one browser context (one user) has the panel of one view-only app open in two tabs, each with
its own session and its embedded scene drawing in software WebGL. The user orbits one tab's
3-D view sideways and tilts the other's to look from above, then records "Current view" in
both tabs at once. The video each tab's panel offers must show what that tab shows: its first
frame is compared with a picture the test asks each tab's own scene browser to draw from its
current view (that browser is found through the tab's scene address, not through the
recorder), and it must be far closer to its own tab's picture than to the other tab's.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
from conftest import browser_viewpoint, drag_canvas, open_panel, viewing_app, wait_for

from page4d_viewer.viewer.scene.split import Viewpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000
HEIGHT, WIDTH = 240, 320  # the Record tab's "320x240"
# Pixel drags of each tab's 3-D view: sideways in the first tab, down (a view from above) in
# the second; their cameras then look at the scene along directions ~80 degrees apart.
DRAGS = ((-140.0, 0.0), (0.0, 110.0))


def _reported_viewpoint(page, server) -> Viewpoint:
    """The viewpoint of the server's one browser, once the page's scene has reported it."""
    found: list[Viewpoint] = []

    def reported() -> bool:
        viewpoint = browser_viewpoint(server)
        found[:] = [] if viewpoint is None else [viewpoint]
        return bool(found)

    wait_for(reported, 120, "the tab's 3-D view", page=page)
    return found[0]


def _drag(page, dx: float, dy: float) -> None:
    """Orbit the page's 3-D view by dragging its scene canvas by (dx, dy) pixels."""
    canvas = page.frame_locator("#scene-frame iframe").locator("canvas").first
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()
    drag_canvas(page, canvas, dx, dy)


def _moved_and_still(page, server, start) -> Viewpoint:
    """The viewpoint of the server's browser once it is away from `start` and has stayed put
    for half a second (the orbit controls glide on for a moment after the mouse is up)."""
    last = [start]

    def settled() -> bool:
        page.wait_for_timeout(500)
        now = browser_viewpoint(server)
        still = now is not None and now.near(last[0]) and not now.near(start)
        last[0] = now if now is not None else last[0]
        return still

    wait_for(settled, 60, "the dragged 3-D view to come to rest", page=page)
    return last[0]


def _start_recording(page) -> None:
    page.get_by_role("tab", name="Record").click()
    page.locator("#record-resolution input").click()
    page.get_by_role("option", name="320x240").click()
    page.locator("#record-video").click()


def _first_frame_offered(page) -> np.ndarray:
    """The first frame, (H, W, 3) uint8, of the video the page's Record tab offers."""
    page.wait_for_function(
        "() => /Recorded|Error/.test(document.querySelector('#record-status').innerText)",
        timeout=TIMEOUT_MS,
    )
    status = page.locator("#record-status").inner_text()
    assert "Recorded playback_view_320x240.mp4" in status, status
    link = page.locator("#record-files a[href*='playback_view_320x240']").first
    response = page.request.get(link.get_attribute("href") or "")
    assert response.ok, response.status
    with av.open(io.BytesIO(response.body()), mode="r") as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _difference(first: np.ndarray, second: np.ndarray) -> float:
    """Mean absolute difference of two (H, W, 3) pictures, in 0..255."""
    return float(np.abs(first.astype(np.float64) - second.astype(np.float64)).mean())


def test_each_tab_records_its_own_view(
    make_reconstruction, launch_chromium, page_session, tmp_path
) -> None:
    recon = make_reconstruction(frames=2, height=56, width=84)
    with viewing_app(recon, tmp_path) as app, launch_chromium(webgl=True) as browser:
        context = browser.new_context(viewport={"width": 1000, "height": 760})
        tabs = [open_panel(context, app.url, load_scene=True, timeout_ms=TIMEOUT_MS)]
        tabs.append(open_panel(context, app.url, load_scene=True, timeout_ms=TIMEOUT_MS))
        sessions = [page_session(app, tab) for tab in tabs]
        assert sessions[0] is not sessions[1], "the two tabs share one session"
        # Each tab's scene iframe joins its own session's Viser server: its one browser.
        servers = [session.server for session in sessions]
        starts = [
            _reported_viewpoint(tab, server) for tab, server in zip(tabs, servers, strict=True)
        ]

        for tab, (dx, dy) in zip(tabs, DRAGS, strict=True):
            tab.bring_to_front()
            _drag(tab, dx, dy)
        views = [
            _moved_and_still(tab, server, start)
            for tab, server, start in zip(tabs, servers, starts, strict=True)
        ]
        directions = np.array([view.look_at - view.position for view in views])
        cosine = directions[0] @ directions[1] / np.prod(np.linalg.norm(directions, axis=1))
        assert cosine < np.cos(np.radians(30)), "the two tabs do not look different ways"

        for tab in tabs:  # both at once, as a user might; the app records one at a time
            _start_recording(tab)
        recordings = [_first_frame_offered(tab) for tab in tabs]

        # What each tab shows: its own scene browser draws its current view (Record stepped
        # the timeline and put it back on frame 0, the recording's first frame).
        shown = []
        for server in servers:
            (client,) = server.get_clients().values()
            shown.append(np.asarray(client.get_render(HEIGHT, WIDTH, timeout=60))[..., :3])
        across = _difference(shown[0], shown[1])
        assert across > 10.0, f"the two tabs' views look alike ({across:.2f} apart)"
        for index, recording in enumerate(recordings):
            own = _difference(recording, shown[index])
            other = _difference(recording, shown[1 - index])
            assert own < 0.25 * other, (
                f"tab {index + 1}'s recording is {own:.2f} from its own view and {other:.2f} "
                "from the other tab's"
            )
        context.close()
