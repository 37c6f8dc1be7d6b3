"""The internal scene servers' key (`viewer.server.scene_key`): without it, no page and no
websocket; with it, both; servers made without a key (the offline share's, tests') unchanged.
The app-level attack (an internal port of a running app) is in test_safety_server.py."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import viser
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.server import scene_key
from page4d_viewer.viewer.server.scene_key import SCENE_KEY_HEADER, key_matches, open_keyed_server

PROTOCOL = f"viser-v{viser.__version__}"


def _get(port: int, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _first_message(port: int, headers: dict[str, str]) -> bytes | str:
    """Open a scene websocket as Viser's client does and read what the server sends first."""
    with connect(
        f"ws://127.0.0.1:{port}/", subprotocols=[PROTOCOL],  # type: ignore[list-item]
        additional_headers=headers, open_timeout=60,
    ) as socket:  # fmt: skip
        return socket.recv(timeout=60)


def test_a_keyed_server_answers_only_requests_with_its_key() -> None:
    server, key = open_keyed_server()
    other_server, other_key = open_keyed_server()
    try:
        port = server.get_port()
        assert len(key) >= 40 and key != other_key
        assert str(server.get_host()) == "127.0.0.1" and key not in repr(server.get_host())
        for refused in ({}, {SCENE_KEY_HEADER: "wrong"}, {SCENE_KEY_HEADER: other_key}):
            assert _get(port, refused) == 403
            with pytest.raises(InvalidStatus, match="403"):
                _first_message(port, refused)
        assert _get(port, {SCENE_KEY_HEADER: key}) == 200
        assert _first_message(port, {SCENE_KEY_HEADER: key})  # the scene's first message
    finally:
        server.stop()
        other_server.stop()


def test_servers_made_without_a_key_are_untouched() -> None:
    """The offline share's and the tests' own Viser servers have no key to send."""
    keyed, _key = open_keyed_server()  # the check is installed
    plain = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        assert _get(plain.get_port(), {}) == 200
        assert _first_message(plain.get_port(), {})
    finally:
        plain.stop()
        keyed.stop()


def test_key_matches_only_the_same_key() -> None:
    assert key_matches("abc", "abc")
    assert not key_matches(None, "abc") and not key_matches("", "abc")
    assert not key_matches("abd", "abc") and not key_matches("abc ", "abc")


def test_a_viser_that_serves_another_way_is_refused_loudly(monkeypatch) -> None:
    """When Viser's serve call never sees the key, no server is left running unchecked."""
    from viser import infra

    scene_key.install()
    namespace = infra.WebsockServer._background_worker.__globals__
    view = namespace["websockets"]
    # As if Viser called websockets' serve some other way: the check never runs.
    import websockets.asyncio.server

    monkeypatch.setattr(view.asyncio.server, "serve", websockets.asyncio.server.serve)
    stopped: list[viser.ViserServer] = []
    stop = viser.ViserServer.stop

    def record_stop(server: viser.ViserServer) -> None:
        stopped.append(server)
        stop(server)

    monkeypatch.setattr(viser.ViserServer, "stop", record_stop)
    with pytest.raises(Page4DError, match="refusing to open a scene without its key check"):
        open_keyed_server()
    assert len(stopped) == 1


def test_install_refuses_a_viser_without_the_websockets_global(monkeypatch) -> None:
    from viser import infra

    namespace = infra.WebsockServer._background_worker.__globals__
    monkeypatch.setitem(namespace, "websockets", object())
    with pytest.raises(Page4DError, match="cannot put its key check"):
        scene_key.install()
