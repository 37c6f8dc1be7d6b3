"""Safe to share, round two, in Chromium (issue 21): another user's uploaded page runs no
script on the app's origin, a browser locked out by squatted sessions gets in once their
grace period has passed, and a tab the browser duplicates gets a session of its own.

A view-only app with two logins on 127.0.0.1 and an injected clock (the grace period passes
without waiting for it), driven by Playwright with Debian's Chromium.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import viewing_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000
PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password"}
# What the attack's page did first: mark the origin it runs on, and call home.
EVIL_PAGE = b"""<!doctype html><html><body><script>
localStorage.setItem("pwned", document.domain);
fetch("/pwned?tab=" + sessionStorage.getItem("page4d-tab"));
</script></body></html>"""
EVIL_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg"><script>
localStorage.setItem("pwned", "svg"); fetch("/pwned?svg");
</script></svg>"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def app(make_reconstruction, tmp_path_factory) -> Iterator:
    with viewing_app(
        make_reconstruction(2), tmp_path_factory.mktemp("shared"), "two.npz",
        clock=Clock(), auth=list(PASSWORDS.items()),
        max_sessions=8, max_sessions_per_client=8, session_grace=60.0,
    ) as running:  # fmt: skip
        yield running


def _logged_in(browser, app, user: str):
    """A browser context holding `user`'s login cookie."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    answer = context.request.post(
        app.url + "login", form={"username": user, "password": PASSWORDS[user]}
    )
    assert answer.ok, answer.status
    return context


def _open(context, app, url: str | None = None):
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route(f"{app.url}scene/**", lambda route: route.abort())  # no WebGL needed here
    calls = []
    page.on("request", lambda request: calls.append(request.url))
    page.calls = calls
    if url is not None:
        try:
            page.goto(url)
        except Exception as error:  # an attachment: Chromium downloads it, the page stays
            assert "Download is starting" in str(error) or "net::ERR_ABORTED" in str(error)
    return page


def _pwned(page) -> bool:
    """Whether a script of the attack ran on the app's origin in this browser context."""
    marked = page.evaluate("() => localStorage.getItem('pwned')")
    called = any("/pwned" in url for url in page.calls)
    return marked is not None or called


def test_another_users_uploaded_page_runs_no_script_on_the_apps_origin(browser, app) -> None:
    """The attack: alice uploads HTML (or SVG) and sends bob its link; bob, logged in,
    follows it, and the script reads his tab id and takes over his scene."""
    from gradio.utils import get_upload_folder

    alice = _logged_in(browser, app, "alice")
    links = []
    for name, content, kind in (
        ("evil.html", EVIL_PAGE, "text/html"),
        ("evil.svg", EVIL_SVG, "image/svg+xml"),
    ):
        answer = alice.request.post(
            app.url + "gradio_api/upload",
            multipart={"files": {"name": name, "mimeType": kind, "buffer": content}},
        )
        assert answer.ok
        stored = Path(json.loads(answer.body())[0])
        links.append(f"{app.url}gradio_api/file={stored}")
        # Gradio's copy of an upload an event read, in its served cache (as it names them).
        copy = Path(get_upload_folder()) / secrets.token_hex(16) / name
        copy.parent.mkdir(parents=True)
        copy.write_bytes(content)
        links.append(f"{app.url}gradio_api/file={copy}")
    alice.close()
    bob = _logged_in(browser, app, "bob")
    panel = _open(bob, app, app.url)
    panel.locator("#scene-frame iframe").wait_for(state="attached")
    for link in links:
        followed = _open(bob, app, link)
        followed.wait_for_timeout(1500)
        followed.goto(app.url)  # back on the app's origin, where the script would have written
        assert not _pwned(followed), link
        followed.close()
    assert not _pwned(panel)
    bob.close()
    # The same page, served from the app's origin as a page, is caught by this check.
    carol = _logged_in(browser, app, "alice")
    control = _open(carol, app)
    control.route(
        f"{app.url}control.html",
        lambda route: route.fulfill(status=200, content_type="text/html", body=EVIL_PAGE),
    )
    control.goto(f"{app.url}control.html")
    control.wait_for_timeout(1500)
    assert _pwned(control)
    carol.close()


def test_a_browser_gets_in_once_squatters_grace_period_has_passed(browser, app) -> None:
    """The attack: 8 page loads through the API, with no page, no heartbeat and no scene,
    held every slot, and a real browser was still locked out 39 minutes later."""
    import urllib.request

    cookie = "; ".join(f"{c['name']}={c['value']}" for c in _cookies(browser, app, "alice"))
    config = json.loads(_get(app.url + "config", cookie))
    load = next(
        index
        for index, dependency in enumerate(config["dependencies"])
        if dependency.get("api_name") == "on_load"
    )
    for index in range(8):
        session = secrets.token_hex(8)
        body = json.dumps(
            {"data": [f"squatter-{index:04d}"], "fn_index": load, "session_hash": session}
        ).encode()
        request = urllib.request.Request(
            app.url + "gradio_api/queue/join", body,
            {"Content-Type": "application/json", "Cookie": cookie},
        )  # fmt: skip
        urllib.request.urlopen(request, timeout=60).read()
        _until_completed(f"{app.url}gradio_api/queue/data?session_hash={session}", cookie)
    assert len(app.sessions) == 8
    bob = _logged_in(browser, app, "bob")
    page = _open(bob, app, app.url)
    page.wait_for_function(
        "() => document.querySelector('#status')?.innerText?.includes('8 sessions are open')"
    )
    app.clock.now += app.sessions.grace_seconds + 1
    page.reload()
    page.locator("#scene-frame iframe").wait_for(state="attached")
    page.wait_for_function("() => document.querySelector('#status')?.innerText?.includes('two')")
    assert len(app.sessions) == 1  # the squatters' sessions are gone, bob's is open
    bob.close()


def test_a_duplicated_tab_gets_its_own_session_and_a_reload_keeps_it(
    page_session, browser, app
) -> None:
    """The finding: a tab the browser duplicates starts with a copy of its opener's
    sessionStorage (Chromium's "Duplicate tab", and window.open of the page), so it took the
    opener's tab id and session, and each tab saw and recorded the other's scene."""
    alice = _logged_in(browser, app, "alice")
    alice.route(f"{app.url}scene/**", lambda route: route.abort())  # the copy's too
    # What each page's storage held when it started, before the page's own scripts ran.
    alice.add_init_script("window.startedWith = sessionStorage.getItem('page4d-tab')")
    first = _open(alice, app, app.url)
    original = page_session(app, first)
    with alice.expect_page() as opened:
        first.evaluate("() => { window.open(window.location.href); }")
    copy = opened.value
    copy.set_default_timeout(TIMEOUT_MS)
    duplicate = page_session(app, copy)
    assert copy.evaluate("() => window.startedWith") == original.session_id  # a true copy
    assert duplicate is not original and duplicate.scene is not original.scene
    stored = [page.evaluate("() => sessionStorage.getItem('page4d-tab')") for page in (first, copy)]
    assert stored == [original.session_id, duplicate.session_id]
    # A reload is not a copy: each tab keeps its own id and session.
    for page, session in ((copy, duplicate), (first, original)):
        page.reload()
        assert page.evaluate("() => window.startedWith") == session.session_id
        assert page_session(app, page) is session
    alice.close()


# Keeps a page's scripts from running for 10 s, as a page drawing its 3-D scene in software
# on a loaded machine can be (one long task: a page in the background has its timers
# throttled, so a busy interval would not keep it busy).
BUSY_JS = """() => {
  setTimeout(() => { const end = Date.now() + 10000; while (Date.now() < end) {} }, 0);
}"""


def test_a_copy_of_a_busy_tab_still_gets_its_own_session(page_session, browser, app) -> None:
    """The finding's copy, with its opener too busy to answer: a duplicated tab (its own
    renderer, unlike window.open's) starts with the opener's stored id while the opener's page
    cannot run a script for seconds. A question the opener had to answer itself went
    unanswered, and the copy kept the id and the session."""
    alice = _logged_in(browser, app, "alice")
    first = _open(alice, app, app.url)
    original = page_session(app, first)
    first.evaluate(BUSY_JS)
    try:
        copy = _open(alice, app)
        # Chromium's "Duplicate tab": the new tab's storage starts as a copy of the opener's,
        # once. An init script runs in every document of the page, also the scene's same-origin
        # iframe, which would put the opener's id back after the page chose its own.
        copy.add_init_script(
            "if (window === window.top && !sessionStorage.getItem('copied')) {"
            f" sessionStorage.setItem('page4d-tab', '{original.session_id}');"
            " sessionStorage.setItem('copied', '1'); }"
        )
        copy.goto(app.url)
        duplicate = page_session(app, copy)
    finally:
        first.evaluate("() => 0")  # once the opener is free again
    assert duplicate is not original
    stored = copy.evaluate("() => sessionStorage.getItem('page4d-tab')")
    assert stored == duplicate.session_id, f"the opener's id is {original.session_id}"
    alice.close()


def _cookies(browser, app, user: str) -> list[dict]:
    context = _logged_in(browser, app, user)
    cookies = context.cookies()
    context.close()
    return cookies


def _get(url: str, cookie: str) -> str:
    import urllib.request

    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read().decode()


def _until_completed(url: str, cookie: str) -> None:
    """Read the queue's event stream until the event completes."""
    import urllib.request

    request = urllib.request.Request(url, headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=120) as stream:
        for line in stream:
            if line.startswith(b"data:") and b"process_completed" in line:
                return
    raise AssertionError("the page load never completed")
