"""A secret key on each internal Viser server, so only the proxy reaches a session's scene.

Each session's `viser.ViserServer` listens on 127.0.0.1, and Viser itself checks no origin
and no login: any local user or program that finds the port would see and drive the scene,
past every check of the proxy (`proxy.py`). So every internal server made here
(`open_keyed_server`) has a random key (`secrets.token_urlsafe(32)`), which only the proxy
knows: it sends it in the `X-Page4d-Scene-Key` header of each page request and websocket
handshake it forwards, and the server answers HTTP 403 to any request or handshake without
it (compared with `hmac.compare_digest`).

Why this patches Viser, and what it relies on: Viser has no hook for its handshake. In Viser
1.1.1, `WebsockServer._background_worker` (viser/infra/_infra.py) serves with
`websockets.asyncio.server.serve(handler, host, port, ..., process_request=...)`, looked up
through `_infra`'s module global `websockets` when the server thread starts, and websockets
calls `process_request` for every HTTP request and every websocket handshake. So:

* `install()` gives `_infra`, and only `_infra`, a view of the `websockets` package whose
  `asyncio.server.serve` is `_serve_with_key_check`; every other user of websockets (and
  every other attribute `_infra` reads) gets the real package.
* A keyed server is made with a host that carries its key (`_KeyedHost`, a `str` equal to
  "127.0.0.1"). Viser hands that host object to `serve`, and there `_serve_with_key_check`
  puts the key check in front of Viser's own `process_request`. A server made with a plain
  host, such as the offline share's or a test's, is served exactly as before.
* The key is in the host before the server is made, so it is in force from the server's
  first connection (Viser starts serving inside `ViserServer`'s constructor).

If Viser stops serving that way, `install()` raises when the module global is not the
websockets package, and `open_keyed_server()` raises (after stopping the server) when its
serve call never went through the check: the app refuses to open a scene nobody guards.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from typing import TYPE_CHECKING, Any, cast

from page4d_viewer.errors import Page4DError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import TypeAlias

    import viser
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.http11 import Request, Response

    ProcessRequest: TypeAlias = Callable[
        [ServerConnection, Request], Response | None | Awaitable[Response | None]
    ]
    """websockets' `process_request`: None lets the handshake go on, a response answers it."""

logger = logging.getLogger(__name__)

SCENE_KEY_HEADER = "X-Page4d-Scene-Key"
"""The request header that carries an internal server's key (sent by the proxy only)."""

TESTED_VISER_VERSION = "1.1.1"
"""The Viser whose serving `install()` was written against (others are checked at run time)."""

_INTERNAL_HOST = "127.0.0.1"
_install_lock = threading.Lock()


class _KeyedHost(str):
    """The host an internal server binds to ("127.0.0.1"), carrying the key it requires.

    A `str`, so Viser and asyncio bind and print it as the plain address; its `str` and
    `repr` never show the key.

    Attributes:
        key: The key every request and handshake must send.
        checked: Set by `_serve_with_key_check` once the server's serve call has the check.
    """

    key: str
    checked: bool

    def __new__(cls, host: str, key: str) -> _KeyedHost:
        made = super().__new__(cls, host)
        made.key = key
        made.checked = False
        return made


class _ModuleView:
    """A module as one other module sees it: the same attributes, except those replaced."""

    def __init__(self, module: object, **replaced: object) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> object:
        # Only called for names not replaced (those are found in __dict__ first).
        return getattr(self._module, name)


def open_keyed_server() -> tuple[viser.ViserServer, str]:
    """A new Viser server on 127.0.0.1 (any free port) that refuses every request and
    websocket handshake without its key.

    Returns:
        The running server, and the key to send in `SCENE_KEY_HEADER`.

    Raises:
        Page4DError: this Viser does not serve the way the key check relies on (the server
            is stopped first).
    """
    import viser

    install()
    key = secrets.token_urlsafe(32)
    host = _KeyedHost(_INTERNAL_HOST, key)
    server = viser.ViserServer(host=host, port=0, verbose=False)
    if not host.checked:
        server.stop()
        raise Page4DError(
            f"viser {viser.__version__} did not serve through websockets' serve() as "
            f"page4d_viewer's scene key expects (written for viser {TESTED_VISER_VERSION}): "
            "refusing to open a scene without its key check"
        )
    return server, key


def key_matches(sent: str | None, key: str) -> bool:
    """Whether a request's `SCENE_KEY_HEADER` value is the server's key (constant time)."""
    return sent is not None and hmac.compare_digest(sent.encode(), key.encode())


def install() -> None:
    """Make Viser's server thread serve through `_serve_with_key_check` (once; idempotent).

    Raises:
        Page4DError: Viser no longer looks websockets up as a module global of the module
            that defines `WebsockServer._background_worker`.
    """
    import viser
    import websockets
    import websockets.asyncio.server
    from viser import infra

    worker = getattr(infra.WebsockServer, "_background_worker", None)
    namespace: dict[str, object] | None = getattr(worker, "__globals__", None)
    with _install_lock:
        current = None if namespace is None else namespace.get("websockets")
        if isinstance(current, _ModuleView):
            return
        if namespace is None or current is not websockets:
            raise Page4DError(
                f"viser {viser.__version__} no longer serves through the `websockets` module "
                f"global of WebsockServer._background_worker (as viser {TESTED_VISER_VERSION} "
                "did): page4d_viewer cannot put its key check on the internal scene servers"
            )
        if viser.__version__ != TESTED_VISER_VERSION:
            logger.warning(
                "viser %s: the scene key check was written for viser %s (checked per server)",
                viser.__version__,
                TESTED_VISER_VERSION,
            )
        server_module = _ModuleView(websockets.asyncio.server, serve=_serve_with_key_check)
        namespace["websockets"] = _ModuleView(
            websockets, asyncio=_ModuleView(websockets.asyncio, server=server_module)
        )


def _serve_with_key_check(handler: Any, host: Any = None, *args: Any, **kwargs: Any) -> serve:
    """`websockets.asyncio.server.serve` as Viser's server thread calls it: for a keyed host,
    with the key check before Viser's own `process_request`; otherwise unchanged.

    Never raises on its own: an exception here would leave Viser's constructor waiting for a
    server thread that died (a server not checked is caught by `open_keyed_server`).
    """
    from websockets.asyncio.server import serve

    if isinstance(host, _KeyedHost):
        viser_process_request = cast("ProcessRequest | None", kwargs.get("process_request"))
        kwargs["process_request"] = _key_check(host.key, viser_process_request)
        host.checked = True
    return serve(handler, host, *args, **kwargs)


def _key_check(key: str, then: ProcessRequest | None) -> ProcessRequest:
    """A `process_request` that answers 403 without the key, else hands over to `then`
    (Viser's own: it serves the client's files and lets websocket upgrades through)."""

    def process_request(
        connection: ServerConnection, request: Request
    ) -> Response | None | Awaitable[Response | None]:
        if not key_matches(request.headers.get(SCENE_KEY_HEADER), key):
            return connection.respond(403, "this scene is reached through the app only\n")
        return None if then is None else then(connection, request)

    return process_request
