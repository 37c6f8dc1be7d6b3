"""Safe to share: one port, the scene's origin check, private sessions, logins beyond loopback.

The app runs in this process on 127.0.0.1 (never 0.0.0.0); the login path is exercised by
giving credentials explicitly, which a non-loopback host requires. No torch: view-only apps.
"""

from __future__ import annotations

import logging
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import viser
from conftest import FakeScene
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.model_runs import STARTUP_OWNER, run_and_save
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunNotFoundError, RunStore
from page4d_viewer.viewer.server.proxy import (
    ScenePolicy,
    SceneUpstream,
    is_loopback,
    origin_matches_host,
)
from page4d_viewer.viewer.server.scene_key import open_keyed_server
from page4d_viewer.viewer.server.sessions import (
    SessionClosedError,
    SessionLimitError,
    SessionRegistry,
    run_owner,
    valid_tab_id,
)

PROTOCOL = f"viser-v{viser.__version__}"


# --- pure rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("http://127.0.0.1:7860", "127.0.0.1:7860", True),
        ("https://box.lan:7860", "box.lan:7860", True),
        ("http://127.0.0.1:7861", "127.0.0.1:7860", False),  # another port: another site
        ("http://localhost:7860", "127.0.0.1:7860", False),
        ("http://evil.example", "127.0.0.1:7860", False),
        ("null", "127.0.0.1:7860", False),
        (None, "127.0.0.1:7860", False),
    ],
)
def test_origin_must_name_the_host_the_request_came_to(origin, host, same) -> None:
    assert origin_matches_host(origin, host) is same


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.0.0.2")


def test_a_handshake_without_origin_is_allowed_on_loopback_only() -> None:
    class Handshake:
        headers = {"host": "box:7860"}

    assert ScenePolicy(loopback=True, login_required=False).origin_refusal(Handshake()) is None
    refusal = ScenePolicy(loopback=False, login_required=True).origin_refusal(Handshake())
    assert "no Origin" in refusal


# --- private runs and the session registry ---------------------------------------------------


class _Backend:
    def __init__(self, make_reconstruction) -> None:
        self.make_reconstruction = make_reconstruction

    def checkpoint_names(self) -> list[str]:
        return ["stand-in"]

    def default_mask_strength(self, checkpoint: str) -> float:
        return 0.0

    def run_model(self, source, options, progress):
        recon = self.make_reconstruction()
        recon.metadata.source = str(source)
        return recon


def test_each_session_lists_and_opens_only_its_own_runs(
    make_reconstruction, tmp_path: Path
) -> None:
    from page4d_viewer.run_contract import RunOptions

    store = RunStore(tmp_path / "runs")
    legacy = store.save(make_reconstruction().save, "made before sessions")  # no owner recorded

    def controller(owner: str, shared: bool = False) -> ViewerController:
        roots = DataRoots([tmp_path])
        return ViewerController(
            FakeScene(),
            store,
            roots,
            _Backend(make_reconstruction),
            owner=owner,
            shared_runs=shared,
        )

    alice, bob, everyone = controller("alice-tab"), controller("bob-tab"), controller("x", True)
    mine = alice.run("a.mp4", RunOptions(checkpoint="stand-in"), lambda f, m: None).record
    assert mine.details.owner == "alice-tab"
    _recon, startup = run_and_save(
        _Backend(make_reconstruction), alice._model_lock, store, "start.mp4",
        RunOptions(checkpoint="stand-in"), lambda f, m: None, owner=STARTUP_OWNER,
    )  # fmt: skip
    assert {r.run_id for r in alice.recent_runs()} == {mine.run_id, startup.run_id}
    assert [r.run_id for r in bob.recent_runs()] == [startup.run_id]
    with pytest.raises(RunNotFoundError):
        bob.open_run(mine.run_id)  # a forged drop-down value
    assert bob.current is None
    every = {r.run_id for r in everyone.recent_runs()}
    assert every == {mine.run_id, startup.run_id, legacy.run_id}  # --shared-runs
    assert everyone.open_run(legacy.run_id).record.run_id == legacy.run_id  # old folders load
    for made in (alice, bob, everyone):
        made.close()


def _registry(
    tmp_path: Path, grace_seconds: float = 60.0, max_sessions: int = 2, **kwargs
) -> SessionRegistry:
    store = RunStore(tmp_path)

    def make(scene, owner: str) -> ViewerController:
        return ViewerController(scene, store, DataRoots([tmp_path]), None, owner=owner)

    kwargs.setdefault("max_per_client", max_sessions)
    return SessionRegistry(
        make, backend=None, data_roots=DataRoots([tmp_path]), samples={},
        max_sessions=max_sessions, max_points=5000, grace_seconds=grace_seconds, **kwargs,
    )  # fmt: skip


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[SessionRegistry]:
    made = _registry(tmp_path)
    yield made
    made.close_all()


def test_sessions_have_their_own_scene_and_a_limit(
    make_reconstruction, registry: SessionRegistry
) -> None:
    first, second = registry.open("tab-1", "alice"), registry.open("tab-2", "bob")
    assert registry.open("tab-1", "alice") is first  # a reload of the same page
    assert first.port != second.port and first.scene is not second.scene
    assert first.controller.owner == run_owner("tab-1") != "tab-1"  # runs never hold the hash
    assert registry.upstream("tab-1", "alice") == SceneUpstream(first.port, first.scene_key)
    assert registry.upstream("tab-1", "bob") is None  # another user's session
    assert registry.upstream("tab-9", "alice") is None
    with pytest.raises(SessionLimitError, match="2 sessions are open.*close another tab"):
        registry.open("tab-3", "carol")
    first.controller.open_result(
        make_reconstruction(2).save(Path(first.controller._temp_root) / "a.npz")
    )
    assert first.scene.wait_until_sent(timeout=60)
    assert (first.scene.state().num_frames, second.scene.state().num_frames) == (2, 0)
    assert second.controller.current is None
    registry.close("tab-1")
    assert registry.get("tab-1") is None and registry.upstream("tab-1", "alice") is None
    registry.open("tab-3", "carol")  # a slot is free again


def test_new_sessions_start_on_the_start_up_result(
    make_reconstruction, registry, tmp_path: Path
) -> None:
    result = make_reconstruction(4).save(tmp_path / "start.npz")
    early = registry.open("early", None)
    registry.set_initial(lambda controller: controller.open_result(result))
    late = registry.open("late", None)
    assert early.controller.current.recon.num_frames == 4
    assert late.controller.current.recon.num_frames == 4
    assert early.controller.current is not late.controller.current


# --- tabs: a reload re-attaches to its tab's session ------------------------------------------

TAB_A, TAB_B, TAB_C = "tab-aaaa-1111", "tab-bbbb-2222", "tab-cccc-3333"


def test_tab_ids_are_checked_and_bad_ones_fall_back_to_the_page() -> None:
    assert valid_tab_id("0b6f1f2e-7c1d-4c9a-9b1e-2f6a3c4d5e6f") is not None
    assert valid_tab_id("abcdefgh") == "abcdefgh" and valid_tab_id("a" * 64) is not None
    for bad in (None, "", "short", "a" * 65, "../../etc", "tab id 12", "tab_id_12", 12345678):
        assert valid_tab_id(bad) is None


def test_a_reload_re_attaches_to_its_tabs_session(registry: SessionRegistry) -> None:
    first = registry.attach("hash-1", TAB_A, "alice")
    assert first.session_id == TAB_A and registry.get(TAB_A) is first
    assert first.controller.owner == run_owner(TAB_A)  # runs outlive the page's hash
    assert registry.controller_for("hash-1") is first.controller
    first.controller.set_mask_overlay(0.35, 0.65)
    # The reloaded page loads (a new hash) before or after the old one's unload.
    assert registry.attach("hash-2", TAB_A, "alice") is first
    registry.detach("hash-1")
    assert registry.get(TAB_A) is first and registry.controller_for("hash-2") is first.controller
    with pytest.raises(SessionClosedError):
        registry.controller_for("hash-1")  # the old page's hash is gone
    assert registry.controller_for("hash-2").scene_settings().mask_opacity == 0.35
    assert len(registry) == 1 and registry.key_of("hash-2") == TAB_A
    # An invalid tab id: the page's own hash keys a new session.
    other = registry.attach("hash-3", "bad id", "alice")
    assert other is not first and other.session_id == "hash-3" and len(registry) == 2


class _Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_detached_session_closes_after_its_grace_period(tmp_path: Path) -> None:
    clock = _Clock()
    registry = _registry(tmp_path, grace_seconds=60.0, clock=clock)
    try:
        session = registry.attach("hash-1", TAB_A, None)
        registry.scene_connected(TAB_A)  # its page's scene is open
        registry.detach("hash-1")
        clock.now += 59.0
        assert registry.reap() == [] and registry.get(TAB_A) is session  # a reload may come
        registry.attach("hash-2", TAB_A, None)  # it does, within the grace period
        clock.now += 120.0
        assert registry.reap() == [] and registry.get(TAB_A) is session  # close cancelled
        registry.detach("hash-2")
        registry.detach("hash-2")  # twice (or unknown): nothing more
        clock.now += 59.0
        assert registry.reap() == []
        clock.now += 2.0  # past the grace period, though its scene socket is still open
        assert registry.reap() == [TAB_A] and registry.get(TAB_A) is None
        assert len(registry) == 0 and session.closed
        with pytest.raises(SessionClosedError):
            registry.controller_for("hash-2")
        assert registry.attach("hash-3", TAB_A, None) is not session  # a fresh one
    finally:
        registry.close_all()


def test_a_polling_page_whose_heartbeat_dropped_keeps_its_session(tmp_path: Path) -> None:
    """Gradio never reopens a page's heartbeat that dropped; it runs the page's unload. The
    page still polls: each poll re-attaches it and counts as live, and opens nothing."""
    clock = _Clock()
    registry = _registry(tmp_path, grace_seconds=60.0, clock=clock)
    try:
        session = registry.attach("hash-1", TAB_A, "alice")
        registry.heartbeat_opened("hash-1")
        registry.heartbeat_closed("hash-1")  # the stream dropped...
        registry.detach("hash-1")  # ...and Gradio ran the page's unload
        with pytest.raises(SessionClosedError):
            registry.session_for("hash-1")
        assert registry.keep_alive("hash-1", TAB_A, "alice") is session  # its next poll
        assert registry.session_for("hash-1") is session
        for _ in range(3):  # no heartbeat, no scene socket: its polls keep it
            clock.now += 50.0
            registry.keep_alive("hash-1", TAB_A, "alice")
            assert registry.reap() == []
        clock.now += 61.0  # the page stopped polling: it went
        assert registry.reap() == [TAB_A] and session.closed
        with pytest.raises(SessionClosedError, match="reload"):
            registry.keep_alive("hash-1", TAB_A, "alice")  # a closed session stays closed
        assert len(registry) == 0
    finally:
        registry.close_all()


def test_a_poll_re_attaches_only_its_users_open_tab(registry: SessionRegistry) -> None:
    registry.attach("hash-1", TAB_A, "alice")
    registry.detach("hash-1")
    for page, tab, user in (("hash-2", TAB_A, "bob"), ("hash-2", "no/such tab", "alice")):
        with pytest.raises(SessionClosedError):
            registry.keep_alive(page, tab, user)
    with pytest.raises(SessionClosedError):
        registry.keep_alive("hash-2", TAB_B, "alice")  # no such session: none is opened
    assert registry.key_of("hash-2") == "" and len(registry) == 1
    with pytest.raises(SessionClosedError):
        registry.keep_alive("", TAB_A, "alice")  # a request without a page


def test_a_session_owns_its_helpers_and_closes_them_with_it(registry: SessionRegistry) -> None:
    session = registry.attach("hash-1", TAB_A, None)
    helpers = (session.comparer, session.inspector, session.track_seeder)
    assert helpers == (session.comparer, session.inspector, session.track_seeder)  # one each
    assert all(helper.controller is session.controller for helper in helpers)
    other = registry.attach("hash-2", TAB_B, None)
    assert other.inspector is not session.inspector  # per session
    registry.close(TAB_A)
    assert session.closed
    for helper in ("comparer", "inspector", "track_seeder"):
        with pytest.raises(SessionClosedError, match="reload the page"):
            getattr(session, helper)  # a late event of the closed page
    # A closed probe ignores the scene's clicks (its scene is stopped too).
    helpers[1].scene_clicked(np.zeros(3), np.array([0.0, 0.0, 1.0]))
    assert helpers[1].probe_version == 0
    session.close()  # twice: nothing more


def test_a_single_session_registry_serves_every_page(tmp_path: Path) -> None:
    controller = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]))
    registry = SessionRegistry.single(controller)
    assert not registry.embeds_scenes and registry.backend is None
    assert (registry.mask_opacity, registry.mask_threshold) == (0.5, 0.5)  # its scene's
    session = registry.attach("hash-1", None)
    assert registry.attach("hash-2", TAB_A, "alice") is session  # whatever the page
    assert registry.session_for("") is session and registry.controller_for("x") is controller
    assert session.inspector is registry.session_for("hash-9").inspector
    registry.detach("hash-1")
    registry.close("hash-2")  # a page going never closes it
    assert registry.reap() == [] and registry.session_for("hash-1") is session
    registry.close_all()
    assert session.closed and controller._temp_root.is_dir()  # the controller is the caller's
    controller.close()


# --- the split view: a second scene, masked | unmasked ---------------------------------------

SPLIT_VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


def _variants_shown(scene) -> set[str]:
    state = scene.state().cameras
    return {name for name in state.variants if (state.variant_visible or {})[name]}


def test_the_split_view_shows_every_result_on_both_sides_until_it_is_off(
    make_reconstruction, registry: SessionRegistry, tmp_path: Path
) -> None:
    session = registry.open(TAB_A, "alice")
    left, controller = session.scene, session.controller
    first = make_reconstruction(4, variants=SPLIT_VARIANTS, ground_truth=True)
    controller.open_result(first.save(tmp_path / "first.npz"))
    controller.set_frame(2)
    assert registry.upstream(TAB_A, "alice", "right") is None and session.right_port is None
    session.set_split(True)
    assert session.split_on and session.right_port not in (None, session.port)
    right_upstream = registry.upstream(TAB_A, "alice", "right")
    assert right_upstream is not None and right_upstream.port == session.right_port
    assert right_upstream.key not in ("", session.scene_key)  # each server has its own
    assert registry.upstream(TAB_A, "bob", "right") is None  # another user's: none
    assert registry.upstream(TAB_A, "alice", "left") is None  # no such view
    assert session._split is not None
    right = session._split.right
    # The result on screen went to both sides, at its frame, each side with its own poses.
    assert (left.frame, right.frame, right.num_frames) == (2, 2, 4)
    assert _variants_shown(left) == {"masked", "geometry_masked", "ground_truth"}
    assert _variants_shown(right) == {"unmasked", "geometry_unmasked", "ground_truth"}
    # The next result goes to both too, and so do the panel's frame moves.
    second = make_reconstruction(5, variants=SPLIT_VARIANTS, ground_truth=True, seed=1)
    controller.open_result(second.save(tmp_path / "second.npz"))
    assert (left.num_frames, right.num_frames) == (5, 5)
    assert right.state().points.point_source == "depth_unmasked"
    assert controller.set_frame(3) == 3 and right.frame == 3
    # Off: the overlaid view as it was, every variant and the point map, on the left only.
    session.set_split(False)
    assert not session.split_on and right.num_frames == 0
    assert _variants_shown(left) == {*SPLIT_VARIANTS, "ground_truth"}
    assert left.state().points.point_source == "points"
    assert (left.num_frames, left.frame) == (5, 3)
    controller.open_result(tmp_path / "first.npz")
    assert (left.num_frames, right.num_frames) == (4, 0)
    session.set_split(True)  # on again: the same right scene
    assert right.num_frames == 4 and registry.upstream(TAB_A, "alice", "right") is not None
    registry.close(TAB_A)
    assert registry.upstream(TAB_A, "alice", "right") is None
    with pytest.raises(SessionClosedError):
        session.set_split(False)


def test_a_single_session_has_no_split_view(tmp_path: Path) -> None:
    store, roots = RunStore(tmp_path), DataRoots([tmp_path])
    controller = ViewerController(FakeScene(), store, roots)  # type: ignore[arg-type]
    registry = SessionRegistry.single(controller)
    session = registry.attach("hash-1", None)
    with pytest.raises(Page4DError, match="split view"):
        session.set_split(True)
    assert not session.split_on and session.right_port is None
    registry.close_all()
    controller.close()


def test_the_proxy_reaches_the_right_scene_with_the_same_checks() -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from page4d_viewer.viewer.server.proxy import SceneProxy

    server, key = open_keyed_server()
    asked: list[tuple[str, str | None, str]] = []

    def upstream(session: str, user: str | None, view: str) -> SceneUpstream | None:
        asked.append((session, user, view))
        right = SceneUpstream(server.get_port(), key)
        return right if (session, view) == (TAB_A, "right") else None

    def app(policy: ScenePolicy) -> FastAPI:
        made = FastAPI()
        SceneProxy(upstream, policy).mount(made)
        return made

    try:
        with TestClient(app(ScenePolicy(loopback=True, login_required=False))) as client:
            page = client.get(f"/scene/{TAB_A}/right/")
            assert page.status_code == 200 and "<html" in page.text.lower()
            assert asked[-1] == (TAB_A, None, "right")
            assert client.get(f"/scene/{TAB_A}/").status_code == 404  # the main scene's lookup
            assert asked[-1] == (TAB_A, None, "main")
            assert client.get(f"/scene/{TAB_B}/right/").status_code == 404  # no such session
            moved = client.get(f"/scene/{TAB_A}/right", follow_redirects=False)
            assert moved.headers["location"] == f"/scene/{TAB_A}/right/"
            assert client.get(f"/scene/{TAB_A}/right/?view=main").status_code == 200
            assert asked[-1][2] == "right"  # the view is the route's, never a query's
            evil = {"origin": "http://evil.example"}
            right_socket = f"/scene/{TAB_A}/right/"
            with (
                pytest.raises(WebSocketDisconnect) as refused,
                client.websocket_connect(right_socket, headers=evil),
            ):
                pass
            assert refused.value.code == 1008
        with TestClient(app(ScenePolicy(loopback=False, login_required=True))) as client:
            assert client.get(f"/scene/{TAB_A}/right/").status_code == 401  # no login cookie
    finally:
        server.stop()


def test_no_grace_closes_at_once_and_two_pages_of_a_tab_keep_it(tmp_path: Path) -> None:
    registry = _registry(tmp_path, grace_seconds=0)
    try:
        session = registry.attach("hash-1", TAB_A, None)
        registry.scene_connected(TAB_A)
        registry.attach("hash-2", TAB_A, None)
        registry.detach("hash-1")
        assert registry.get(TAB_A) is session  # another page of the tab is still attached
        registry.detach("hash-2")
        assert registry.get(TAB_A) is None
    finally:
        registry.close_all()


def test_detached_sessions_count_toward_the_limit(registry: SessionRegistry) -> None:
    registry.attach("hash-1", TAB_A, None)
    registry.attach("hash-2", TAB_B, None)
    registry.detach("hash-1")  # in its grace period: still open
    with pytest.raises(SessionLimitError, match="2 sessions are open"):
        registry.attach("hash-3", TAB_C, None)
    assert registry.attach("hash-4", TAB_A, None) is registry.get(TAB_A)  # re-attach: no slot
    registry.close(TAB_B)
    assert registry.key_of("hash-2") == "" and registry.get(TAB_B) is None
    registry.attach("hash-3", TAB_C, None)  # a slot is free again


def test_only_its_user_re_attaches_to_a_tabs_session(registry: SessionRegistry) -> None:
    mine = registry.attach("hash-1", TAB_A, "alice")
    with pytest.raises(SessionClosedError, match="another user"):
        registry.attach("hash-2", TAB_A, "bob")
    assert registry.key_of("hash-2") == ""  # bob's page is attached to nothing
    with pytest.raises(SessionClosedError):
        registry.controller_for("hash-2")
    assert registry.upstream(TAB_A, "bob") is None and registry.upstream(TAB_A, "alice")
    assert registry.attach("hash-3", TAB_A, "alice") is mine
    with pytest.raises(SessionClosedError, match="no session"):
        registry.attach("", TAB_A, "alice")


# --- the command line ------------------------------------------------------------------------


def test_exposed_host_without_credentials_refuses_to_start(
    make_reconstruction, tmp_path, capsys, monkeypatch
) -> None:
    from page4d_viewer.cli import main

    monkeypatch.delenv("PAGE4D_AUTH", raising=False)
    result = make_reconstruction().save(tmp_path / "r.npz")
    code = main(["view", str(result), "--host", "0.0.0.0", "--port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: --host 0.0.0.0 exposes the app")
    assert "--auth-file" in err[0] and "PAGE4D_AUTH" in err[0]


def test_port_0_serves_on_a_free_port_and_says_which(
    make_reconstruction, tmp_path, caplog, monkeypatch
) -> None:
    from page4d_viewer.cli import main
    from page4d_viewer.viewer.server.app import ViewerApp

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # the command sets it
    served: list[int] = []
    # Instead of serving until Ctrl-C: is the port it reported the one that answers?
    monkeypatch.setattr(ViewerApp, "wait", lambda app: served.append(_get(app.url + "config")))
    result = make_reconstruction().save(tmp_path / "r.npz")
    with caplog.at_level(logging.INFO, logger="page4d_viewer.cli.serving"):
        code = main(["view", str(result), "--port", "0", "--runs-dir", str(tmp_path / "runs")])
    assert code == 0 and served == [200]
    (port,) = re.findall(r"open http://127\.0\.0\.1:(\d+)/ in a browser", caplog.text)
    assert int(port) > 0


def test_credentials_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    from page4d_viewer.cli.serving import read_credentials

    logins = tmp_path / "logins"
    logins.write_text("# who may log in\nalice:s3cret:with:colons\n\n bob : pw \n")
    assert read_credentials(logins, {}) == [("alice", "s3cret:with:colons"), ("bob", "pw")]
    assert read_credentials(None, {"PAGE4D_AUTH": "carol:pw"}) == [("carol", "pw")]
    assert read_credentials(None, {}) == []
    logins.write_text("alice-hunter2\n")
    with pytest.raises(Page4DError, match="line 1 is not user:password") as caught:
        read_credentials(logins, {})
    assert "hunter2" not in str(caught.value)  # never echo what may be a password
    with pytest.raises(Page4DError, match="cannot read the auth file"):
        read_credentials(tmp_path / "missing", {})


# --- a running app with a login ----------------------------------------------------------------


@pytest.fixture(scope="module")
def locked_app(make_reconstruction, tmp_path_factory) -> Iterator:
    """`view` with PAGE4D_AUTH on 127.0.0.1, through the command line's own config."""
    import argparse

    from page4d_viewer.cli import view
    from page4d_viewer.cli.serving import config_from_args
    from page4d_viewer.viewer.server.app import ViewerApp

    folder = tmp_path_factory.mktemp("locked")
    result = make_reconstruction().save(folder / "r.npz")
    parser = argparse.ArgumentParser()
    view.configure_parser(parser.add_subparsers(dest="command").add_parser("view"))
    args = parser.parse_args(
        ["view", str(result), "--port", "0", "--runs-dir", str(folder / "runs")]
    )
    config = config_from_args(args, environ={"PAGE4D_AUTH": "alice:open sesame"})
    app = ViewerApp(config)
    app.start()
    app.run_file = RunStore(folder / "runs").save(make_reconstruction().save, "a run").result_path
    # What a page downloads: Gradio's copy of a run's file in its cache, as it makes one.
    from gradio.utils import get_upload_folder

    copy = Path(get_upload_folder()) / secrets.token_hex(16) / "result.npz"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(app.run_file.read_bytes())
    app.download = copy
    yield app
    app.close()


def _get(url: str, cookie: str = "") -> int:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _login(url: str, user: str, password: str) -> str:
    body = urllib.parse.urlencode({"username": user, "password": password}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "login", body), timeout=60) as got:
        cookies = got.headers.get_all("set-cookie")
    return "; ".join(cookie.split(";")[0] for cookie in cookies)


def test_with_a_password_nothing_answers_without_the_login(locked_app, caplog) -> None:
    url, session = locked_app.url, locked_app.sessions.open("tab-a", "alice")
    download = f"{url}gradio_api/file={locked_app.download}"
    scene = f"{url}scene/{session.session_id}/"
    assert _get(f"{url}config") == 401
    assert _get(scene) == 401
    assert _get(download) in (401, 403)
    socket_url = scene.replace("http://", "ws://").rstrip("/")
    origin = {"Origin": url.rstrip("/")}
    with pytest.raises(InvalidStatus, match="403"):
        connect(socket_url, subprotocols=[PROTOCOL], additional_headers=origin)  # type: ignore[list-item]
    # The same requests with alice's login cookie get through.
    cookie = _login(url, "alice", "open sesame")
    assert _get(f"{url}config", cookie) == 200
    assert _get(scene, cookie) == 200
    assert _get(download, cookie) == 200
    # The runs folder itself is not served, to anyone: a run's file goes out only as a copy
    # made for the page that shows it.
    assert _get(f"{url}gradio_api/file={locked_app.run_file}", cookie) == 403
    headers = {**origin, "Cookie": cookie}
    with connect(socket_url, subprotocols=[PROTOCOL], additional_headers=headers) as ws:  # type: ignore[list-item]
        assert len(ws.recv(timeout=30)) > 0
    # Another user's login does not open alice's scene.
    locked_app.sessions.open("tab-b", None)
    assert _get(f"{url}scene/tab-b/", cookie) == 404


def test_starting_with_a_password_says_what_is_exposed(tmp_path: Path, caplog) -> None:
    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp, exposure_warning

    config = AppConfig(host="0.0.0.0", port=7860, auth=[("alice", "pw")])
    warning = exposure_warning(config, "http://127.0.0.1:7860/", tmp_path)
    assert "0.0.0.0:7860" in warning and "reachable from other machines" in warning
    for exposed in ("the panel", "3-D scene", "runs folder", "downloads"):
        assert exposed in warning
    assert exposure_warning(AppConfig(), "http://127.0.0.1:7860/", tmp_path) is None
    app = ViewerApp(AppConfig(port=0, runs_dir=tmp_path, auth=[("a", "a long password")]))
    with caplog.at_level(logging.WARNING, logger="page4d_viewer.viewer.server.app"):
        app.start()
    app.close()
    assert "to anyone with a login: the panel" in caplog.text


def test_a_foreign_origin_gets_no_scene(tmp_path: Path) -> None:
    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

    app = ViewerApp(AppConfig(port=0, runs_dir=tmp_path))
    app.start()
    try:
        assert app.port > 0 and app.url == f"http://127.0.0.1:{app.port}/"  # the port it got
        app.sessions.open("tab", None)
        socket_url = f"{app.url.replace('http://', 'ws://')}scene/tab"
        with pytest.raises(InvalidStatus, match="403"):
            connect(socket_url, subprotocols=[PROTOCOL], additional_headers={"Origin": "http://evil.example"})  # type: ignore[list-item]  # fmt: skip
        own = {"Origin": app.url.rstrip("/")}
        with connect(socket_url, subprotocols=[PROTOCOL], additional_headers=own) as ws:  # type: ignore[list-item]
            assert len(ws.recv(timeout=30)) > 0
        with connect(socket_url, subprotocols=[PROTOCOL]) as ws:  # type: ignore[list-item]
            assert len(ws.recv(timeout=30)) > 0  # no Origin (a script): loopback only
        with pytest.raises(InvalidStatus, match="403"):
            connect(f"{app.url.replace('http://', 'ws://')}scene/nobody", additional_headers=own)
    finally:
        app.close()
