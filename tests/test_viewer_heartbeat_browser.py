"""A page whose Gradio heartbeat dropped keeps its session while it is open, in Chromium.

Gradio's page opens its heartbeat stream once and never reopens it. Here that stream ends as
soon as it opens (as a dropped connection ends it), the app's grace period is 5 s, and the
scene's page is not loaded, so no scene websocket keeps the session live either: only the
page's polls do. Past several grace periods the page still has its session and still follows
the scene. When Gradio runs the page's unload (as it does when a heartbeat drops), the page's
next poll attaches it again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import open_panel, viewing_app, wait_for, wait_for_page

from page4d_viewer.viewer.server.sessions import REAP_INTERVAL_SECONDS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRACE_SECONDS = 5.0  # long enough that a slow poll on a loaded machine does not lose it
FRAMES = 6
FRAME_IS_JS = "frame => document.querySelector('#frame input[type=number]').value == String(frame)"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, make_reconstruction) -> Iterator:
    recon = make_reconstruction(frames=FRAMES, height=28, width=42)
    folder = tmp_path_factory.mktemp("data")
    with viewing_app(recon, folder, session_grace=GRACE_SECONDS) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, browser):
    """The panel, with its heartbeat cut: the stream ends at once, every time it is opened.
    `page.heartbeats` lists the heartbeat addresses the page asked for."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    heartbeats: list[str] = []

    def drop(route) -> None:
        heartbeats.append(route.request.url)
        route.fulfill(status=200, content_type="text/event-stream", body="")

    context.route("**/gradio_api/heartbeat/**", drop)
    page = open_panel(context, app.url)
    page.heartbeats = heartbeats
    return page


def _follows(page, session, frame: int) -> None:
    """Move the scene's timeline to `frame` and wait for the page's slider to show it."""
    session.scene.set_frame(frame)
    wait_for_page(page, FRAME_IS_JS, f"the page's slider to follow the scene to {frame}", frame)


def test_a_page_without_its_heartbeat_keeps_its_session_while_it_polls(
    page_session, app, page
) -> None:
    session = page_session(app, page)
    wait_for(lambda: page.heartbeats, 30, "the page to open its heartbeat", page=page)
    # Without its polls, the session would be closed at the reaper's first look past the
    # grace period, at most GRACE + REAP seconds after the page loaded.
    page.wait_for_timeout(1_000 * (GRACE_SECONDS + REAP_INTERVAL_SECONDS + 2))
    assert len(page.heartbeats) == 1  # Gradio's page never opened it again
    assert app.sessions.get(session.session_id) is session and not session.closed
    _follows(page, session, FRAMES - 1)


def test_a_page_gradio_detached_is_attached_again_at_its_next_poll(page_session, app, page) -> None:
    session = page_session(app, page)
    wait_for(lambda: page.heartbeats, 30, "the page to open its heartbeat", page=page)
    session_hash = page.heartbeats[0].rstrip("/").split("/")[-1].split("?")[0]
    assert app.sessions.key_of(session_hash) == session.session_id
    app.sessions.detach(session_hash)  # what Gradio's unload does when a heartbeat drops
    wait_for(
        lambda: app.sessions.key_of(session_hash) == session.session_id,
        30, "the page's poll to attach it again", page=page,
    )  # fmt: skip
    page.wait_for_timeout(1_000 * (GRACE_SECONDS + REAP_INTERVAL_SECONDS + 2))  # as above
    assert app.sessions.get(session.session_id) is session and not session.closed
    _follows(page, session, 1)
