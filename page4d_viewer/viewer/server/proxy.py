"""One port for the whole app: the Gradio panel, and each session's Viser scene behind a proxy.

Viser's server has no origin check and no authentication, so it never faces the network: every
session's `viser.ViserServer` binds to 127.0.0.1 on an internal port, and this module's routes
forward to it from the panel's own server, which is the only one listening on `--host/--port`:

    /scene/<session>/...         HTTP: the Viser client page, fetched from the session's server
    /scene/<session>             websocket: relayed both ways, frame by frame
    /scene/<session>/right/...   the same for the split view's right scene (its own server)
    /                            the Gradio panel (mounted last)

What the proxy checks before relaying (`ScenePolicy.refusal`):

* **Origin.** A browser always sends `Origin` on a websocket handshake; it must name the very
  host the request came to (`Origin: http://<Host>`), so a page from another site, open in the
  same browser, cannot read the scene. A handshake with no `Origin` (a non-browser client:
  scripts, benchmarks) is allowed only when the app listens on loopback, where only local
  programs can connect anyway; on any other bind it is refused.
* **Login.** When the app has a password, the request must carry the panel's login cookie:
  the proxy asks Gradio's own `/gradio_api/user` route (in-process, no network) who the
  cookie belongs to, and the session must belong to that user.
* **Session.** `<session>` must be a session the panel opened (its tab's id); for
  `right/`, one whose split view has been turned on.

The HTTP route serves only the static client, no scene data; it checks login and session too.

Each internal Viser server also refuses (HTTP 403) every request and websocket handshake that
does not carry its own random key (`scene_key.py`), which only this proxy knows and sends
(`SceneUpstream.key`): a local program that finds an internal port cannot skip these checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

# Real imports, not TYPE_CHECKING ones: FastAPI reads the route handlers' annotations.
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.server.scene_key import SCENE_KEY_HEADER

if TYPE_CHECKING:
    import fastapi
    import httpx
    import uvicorn

logger = logging.getLogger(__name__)

SCENE_PREFIX = "/scene"
# Viser's own limit for one websocket message (large point clouds travel in one message).
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
# What the scene client's page needs back from Viser's HTTP server.
_FORWARDED_HEADERS = ("content-type", "content-encoding", "cache-control")
POLICY_VIOLATION = 1008  # websocket close code: refused by policy

MAIN_VIEW, RIGHT_VIEW = "main", "right"
"""A session's scenes: its own (`/scene/<session>/`) and the split view's right side
(`/scene/<session>/right/`); `server.sessions` names them the same."""


@dataclass(frozen=True)
class SceneUpstream:
    """Where the proxy reaches one scene: its internal Viser server.

    Attributes:
        port: The server's port on 127.0.0.1.
        key: The server's key (`scene_key.open_keyed_server`), sent with every request.
    """

    port: int
    key: str


UpstreamLookup = Callable[[str, "str | None", str], "SceneUpstream | None"]
"""upstream(session, user, view) -> the internal Viser server of that scene (`MAIN_VIEW` or
`RIGHT_VIEW`) of that user's session, or None."""


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the app private to this machine."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_matches_host(origin: str | None, host: str | None) -> bool:
    """Whether a browser's `Origin` names the same host:port the request was sent to."""
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


@dataclass(frozen=True)
class ScenePolicy:
    """Who may reach a session's scene through the proxy.

    Attributes:
        loopback: The app listens on loopback only; a handshake without `Origin` is allowed.
        login_required: Requests must carry the panel's login cookie.
    """

    loopback: bool
    login_required: bool

    def origin_refusal(self, connection: HTTPConnection) -> str | None:
        """Why a websocket handshake's origin is refused, or None when it is allowed."""
        origin = connection.headers.get("origin")
        if origin is None:
            return None if self.loopback else "no Origin header (allowed on loopback binds only)"
        if not origin_matches_host(origin, connection.headers.get("host")):
            return f"foreign origin {origin}"
        return None


class LoginLookup:
    """Who a login cookie belongs to, asked of the Gradio app itself (in-process, no network).

    Args:
        app: The app Gradio is mounted in (its `/gradio_api/user` answers).
    """

    def __init__(self, app: fastapi.FastAPI) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://panel.internal"
        )

    async def user_of_cookie(self, cookie: str) -> str | None:
        """The logged-in user of a `Cookie` header (None: not logged in)."""
        if not cookie:
            return None
        response = await self._client.get("/gradio_api/user", headers={"cookie": cookie})
        user = response.json() if response.status_code == 200 else None
        return user if isinstance(user, str) else None

    async def close(self) -> None:
        """Close the in-process client."""
        await self._client.aclose()


class SceneLiveness(Protocol):
    """Told when a session's scene websocket opens and closes (the registry's liveness)."""

    def scene_connected(self, session_id: str) -> None: ...

    def scene_disconnected(self, session_id: str) -> None: ...


class SceneProxy:
    """The `/scene/...` routes, relaying to each session's internal Viser server.

    Args:
        upstream: Looks up a session's internal Viser server for a user (None: no such
            session).
        policy: The origin and login rules.
        liveness: Told when a scene websocket opens and closes (None: nobody is).
    """

    def __init__(
        self, upstream: UpstreamLookup, policy: ScenePolicy, liveness: SceneLiveness | None = None
    ) -> None:
        self.upstream = upstream
        self.policy = policy
        self.liveness = liveness
        self._logins: LoginLookup | None = None
        self._http: httpx.AsyncClient | None = None

    def mount(self, app: fastapi.FastAPI) -> None:
        """Add the scene routes to `app`; call before mounting Gradio at "/"."""
        from starlette.responses import RedirectResponse

        async def scene_root(session: str) -> RedirectResponse:
            return RedirectResponse(f"{SCENE_PREFIX}/{session}/")

        async def right_root(session: str) -> RedirectResponse:
            return RedirectResponse(f"{SCENE_PREFIX}/{session}/{RIGHT_VIEW}/")

        # The right scene's routes first: the main scene's page route would take its paths.
        right = f"{SCENE_PREFIX}/{{session}}/{RIGHT_VIEW}"
        app.add_api_route(right, right_root, methods=["GET"])
        app.add_api_route(f"{right}/{{path:path}}", self._right_page, methods=["GET", "HEAD"])
        app.add_api_websocket_route(right, self._right_socket)
        app.add_api_websocket_route(f"{right}/", self._right_socket)
        app.add_api_route(f"{SCENE_PREFIX}/{{session}}", scene_root, methods=["GET"])
        app.add_api_route(
            f"{SCENE_PREFIX}/{{session}}/{{path:path}}", self._page, methods=["GET", "HEAD"]
        )
        app.add_api_websocket_route(f"{SCENE_PREFIX}/{{session}}", self._socket)
        app.add_api_websocket_route(f"{SCENE_PREFIX}/{{session}}/", self._socket)

    def use_logins(self, logins: LoginLookup) -> None:
        """Check login cookies with this lookup."""
        self._logins = logins

    async def close(self) -> None:
        """Close the HTTP clients (call from the server's event loop)."""
        if self._logins is not None:
            await self._logins.close()
        if self._http is not None:
            await self._http.aclose()

    # -------------------------------------------------------------------------- checks

    async def _user_of(self, connection: HTTPConnection) -> str | None:
        """The logged-in user the request's cookie belongs to (None: not logged in)."""
        if self._logins is None:
            return None
        return await self._logins.user_of_cookie(connection.headers.get("cookie", ""))

    async def _upstream_for(
        self, connection: HTTPConnection, session: str, view: str = MAIN_VIEW
    ) -> SceneUpstream | str:
        """The internal server of the session's scene `view`, or the reason the request is
        refused."""
        user = None
        if self.policy.login_required:
            user = await self._user_of(connection)
            if user is None:
                return "not logged in"
        upstream = self.upstream(session, user, view)
        return "no such session" if upstream is None else upstream

    # -------------------------------------------------------------------------- HTTP

    # FastAPI reads each route's parameters from its handler's signature, so each scene has
    # a handler of its own, and the view is never a query parameter.

    async def _page(self, request: Request, session: str, path: str = ""):
        """The Viser client's files, from the session's own server (no scene data here)."""
        return await self._serve_page(request, session, path, MAIN_VIEW)

    async def _right_page(self, request: Request, session: str, path: str = ""):
        """The split view's right scene's client files."""
        return await self._serve_page(request, session, path, RIGHT_VIEW)

    async def _serve_page(self, request: Request, session: str, path: str, view: str):
        """The client files of one of the session's scenes, after the checks."""
        import httpx
        from starlette.responses import PlainTextResponse, Response

        upstream = await self._upstream_for(request, session, view)
        if isinstance(upstream, str):
            status = 401 if upstream == "not logged in" else 404
            return PlainTextResponse(f"scene refused: {upstream}", status_code=status)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        answer = await self._http.send(
            self._http.build_request(
                "GET",
                f"http://127.0.0.1:{upstream.port}/{path}",
                headers={
                    "accept-encoding": request.headers.get("accept-encoding", "identity"),
                    SCENE_KEY_HEADER: upstream.key,
                },
            ),
            stream=True,
        )
        try:
            # The raw bytes, still gzipped when Viser gzipped them (its Content-Encoding says so).
            body = b"".join([chunk async for chunk in answer.aiter_raw()])
        finally:
            await answer.aclose()
        headers = {k: v for k, v in answer.headers.items() if k.lower() in _FORWARDED_HEADERS}
        return Response(body, status_code=answer.status_code, headers=headers)

    # -------------------------------------------------------------------------- websocket

    async def _socket(self, websocket: WebSocket, session: str) -> None:
        """Relay one scene websocket to the session's Viser server, after the checks."""
        await self._relay_scene(websocket, session, MAIN_VIEW)

    async def _right_socket(self, websocket: WebSocket, session: str) -> None:
        """Relay one websocket of the split view's right scene, after the checks."""
        await self._relay_scene(websocket, session, RIGHT_VIEW)

    async def _relay_scene(self, websocket: WebSocket, session: str, view: str) -> None:
        """Relay a websocket to the Viser server of one of the session's scenes."""
        from websockets.asyncio.client import connect

        refusal = self.policy.origin_refusal(websocket)
        target = await self._upstream_for(websocket, session, view) if refusal is None else refusal
        if isinstance(target, str):
            logger.warning("scene websocket refused (%s) for session %.8s", target, session)
            # Closing before accepting answers the handshake with HTTP 403.
            await websocket.close(code=POLICY_VIOLATION)
            return
        protocols = list(websocket.scope.get("subprotocols", []))
        async with connect(
            f"ws://127.0.0.1:{target.port}/",
            additional_headers={SCENE_KEY_HEADER: target.key},
            subprotocols=protocols or None,  # type: ignore[arg-type]
            max_size=MAX_MESSAGE_BYTES,
            compression=None,
            open_timeout=30,
        ) as upstream:
            await websocket.accept(subprotocol=upstream.subprotocol)
            if self.liveness is not None:
                self.liveness.scene_connected(session)
            try:
                await _relay(websocket, upstream)
            finally:
                if self.liveness is not None:
                    self.liveness.scene_disconnected(session)


async def _relay(browser: WebSocket, upstream) -> None:
    """Copy frames both ways until either side closes."""
    from starlette.websockets import WebSocketDisconnect
    from websockets.exceptions import ConnectionClosed

    async def down() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await browser.send_bytes(message)
            else:
                await browser.send_text(message)

    async def up() -> None:
        while True:
            message = await browser.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            await upstream.send(data if data is not None else message.get("text", ""))

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(
                asyncio.CancelledError, ConnectionClosed, WebSocketDisconnect, RuntimeError
            ):
                await task
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await browser.close()


class HttpServer:
    """Uvicorn serving one ASGI app from a thread, on a socket bound before it starts.

    Args:
        app: The ASGI app (the request guard around the scene routes and the mounted panel).
        host: Interface to listen on.
        port: Port (0: any free one).
    """

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self._socket = _bind(host, port)
        self.port = int(self._socket.getsockname()[1])
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Serve from a background thread; returns once it accepts connections.

        Raises:
            Page4DError: the server did not start within `timeout` seconds.
        """
        import uvicorn

        config = uvicorn.Config(
            self.app,
            log_level="warning",
            ws="websockets-sansio",
            # Scene messages are already compact binary; deflating them costs more than it saves.
            ws_per_message_deflate=False,
            ws_max_size=MAX_MESSAGE_BYTES,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [self._socket]}, name="http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise Page4DError(f"the web server did not start on {self.host}:{self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop serving and wait for the thread (open connections are closed)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._socket.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear error when that is impossible."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise Page4DError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock
