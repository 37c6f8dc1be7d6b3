"""Safe to share, in Chromium: the page's own scene connects, another site's page gets nothing,
and two browser contexts each see their own result.

A view-only app (no model, no torch) on 127.0.0.1, driven by Playwright with Debian's Chromium
(never `playwright install`). The "other site" is a page served by a tiny http.server on
another port of 127.0.0.1: another origin, as far as the browser is concerned.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import open_panel, running_app, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000

# Opens the scene websocket of another origin and records what it got.
FOREIGN_PAGE = """<!doctype html><html><body><script>
window.result = {opened: false, bytes: 0, messages: 0, done: false};
const socket = new WebSocket("%(url)s", ["%(protocol)s"]);
socket.binaryType = "arraybuffer";
socket.onopen = () => { window.result.opened = true; };
socket.onmessage = (event) => {
  window.result.messages += 1;
  window.result.bytes += event.data.byteLength || event.data.length || 0;
};
socket.onerror = () => { window.result.done = true; };
socket.onclose = () => { window.result.done = true; };
</script></body></html>
"""

# Opens the page's own scene websocket (same origin) and counts the bytes it receives.
OWN_SOCKET_JS = """([path, protocol]) => new Promise((resolve) => {
  const url = new URL(path, window.location.href).href.replace(/^http/, "ws");
  const socket = new WebSocket(url, [protocol]);
  socket.binaryType = "arraybuffer";
  let bytes = 0;
  socket.onmessage = (event) => { bytes += event.data.byteLength; };
  socket.onclose = () => resolve({bytes, closed: true});
  setTimeout(() => { socket.close(); resolve({bytes, closed: false}); }, 5000);
})"""


@pytest.fixture(scope="module")
def results(make_reconstruction, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("results")
    return {
        name: make_reconstruction(n).save(folder / name)
        for name, n in (("two.npz", 2), ("three.npz", 3))
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory, results) -> Iterator:
    with running_app(
        runs_dir=tmp_path_factory.mktemp("runs"),
        result=str(results["two.npz"]),
        # A closed page's session goes soon; a reload, even on two loaded cores, comes sooner.
        session_grace=10.0,
    ) as running:
        yield running


def _open_context(browser, app, *, load_scene: bool):
    """A new browser context (its own cookies and storage) with a page on the panel."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    return context, open_panel(context, app.url, load_scene=load_scene)


def _wait_status(page, text: str) -> str:
    page.wait_for_function(
        "text => document.querySelector('#status').innerText.includes(text)", arg=text
    )
    return page.locator("#status").inner_text()


@pytest.fixture()
def foreign_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """http://127.0.0.1:<other port>/: another origin, serving files from a folder."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()


def test_own_scene_connects_and_another_site_gets_nothing(
    page_session, app, browser, foreign_site
) -> None:
    import viser

    protocol = f"viser-v{viser.__version__}"
    context, page = _open_context(browser, app, load_scene=True)
    session = page_session(app, page)
    # The embedded Viser client connects through the panel's port.
    wait_for(
        lambda: bool(session.server.get_clients()), what="the embedded scene to connect", page=page
    )
    # A websocket from the page's own origin receives the scene (the start-up result).
    own = page.evaluate(OWN_SOCKET_JS, [f"scene/{session.session_id}", protocol])
    assert own["bytes"] > 10_000, own
    # Another site's page, open in the same browser, knowing the session, gets nothing.
    site, folder = foreign_site
    scene_socket = f"{app.url.replace('http://', 'ws://')}scene/{session.session_id}"
    (folder / "evil.html").write_text(FOREIGN_PAGE % {"url": scene_socket, "protocol": protocol})
    evil = context.new_page()
    evil.set_default_timeout(TIMEOUT_MS)
    evil.goto(f"{site}/evil.html")
    evil.wait_for_function("() => window.result.done")
    got = evil.evaluate("() => window.result")
    assert got == {"opened": False, "bytes": 0, "messages": 0, "done": True}
    context.close()


def test_two_contexts_see_their_own_results(page_session, app, browser, results) -> None:
    first_context, first = _open_context(browser, app, load_scene=False)
    second_context, second = _open_context(browser, app, load_scene=False)
    mine, theirs = page_session(app, first), page_session(app, second)
    assert mine is not theirs and mine.scene is not theirs.scene
    _wait_status(first, "two.npz")  # both start on the app's start-up result
    _wait_status(second, "two.npz")
    # A view-only app opens its "Open a result" section already.
    second.locator("#result-upload input[type=file]").set_input_files(str(results["three.npz"]))
    second.locator('#result-upload a[download="three.npz"]').wait_for()
    second.locator("#open-result").click()
    _wait_status(second, "three.npz")
    assert theirs.scene.wait_until_sent(timeout=60)
    # A few polls later the first page and its scene still show their own result.
    first.wait_for_timeout(2000)
    assert "two.npz" in first.locator("#status").inner_text()
    assert "three.npz" not in first.locator("#status").inner_text()
    assert mine.scene.state().num_frames == 2 and theirs.scene.state().num_frames == 3
    assert mine.controller.current.result_file.name == "two.npz"
    assert theirs.controller.current.result_file.name == "three.npz"
    # Closing a page closes its session and frees its scene.
    second_context.close()
    wait_for(
        lambda: app.sessions.get(theirs.session_id) is None, what="the session to close", page=first
    )
    assert app.sessions.get(mine.session_id) is mine
    first_context.close()


def test_two_tabs_have_their_own_sessions_and_a_reload_keeps_its_own(
    page_session, app, browser
) -> None:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    first, second = open_panel(context, app.url), open_panel(context, app.url)  # two tabs
    mine, theirs = page_session(app, first), page_session(app, second)
    assert mine is not theirs and mine.scene is not theirs.scene
    stored = [
        page.evaluate("() => sessionStorage.getItem('page4d-tab')") for page in (first, second)
    ]
    assert stored == [mine.session_id, theirs.session_id]  # each tab keeps its own id
    mine.controller.set_mask_overlay(0.3, 0.7)
    first.reload()
    first.locator("#scene-frame iframe").wait_for(state="attached")
    assert page_session(app, first) is mine and page_session(app, second) is theirs
    first.wait_for_function(
        "() => document.querySelector('#mask-opacity input[type=number]').value === '0.3'"
    )
    # Past the grace period the reloaded tab's session is still open (its new page holds it).
    first.wait_for_timeout((app.config.session_grace + 2) * 1000)
    assert app.sessions.get(mine.session_id) is mine
    assert app.sessions.get(theirs.session_id) is theirs
    assert "two.npz" in first.locator("#status").inner_text()
    context.close()
