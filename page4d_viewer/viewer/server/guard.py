"""The request guard: what every request to the app's one port passes before any route.

An ASGI middleware around the whole app (the scene proxy and the Gradio panel), so each rule
holds for every route, Gradio's own included:

* **Host allowlist.** A request whose `Host` is not one of the app's names gets 400, websocket
  upgrades included: a page of `evil.example` whose name resolves to 127.0.0.1 (DNS
  rebinding) never reaches the panel, and so never passes the scene's same-origin check.
* **Login on session routes.** With a password, Gradio's heartbeat, queue, stream, reset and
  cancel routes and the upload route answer 401 without the login cookie.
* **Login hardening.** Failed logins are counted per client, and after a few each next
  attempt must wait twice as long as the last (429 with `Retry-After`); a login token stops
  working `token_seconds` after it was issued (Gradio's own `/logout` ends it sooner).
* **Uploads are uploads.** Every file path in a JSON request body must be an upload of this
  app (`uploads.InputFolders.check`), before Gradio reads the body.
* **Nothing uploaded runs as a page.** Every response says `X-Content-Type-Options: nosniff`
  and carries a Content-Security-Policy; a served file (`/gradio_api/file=`) goes out as an
  attachment, in a sandbox, unless it is a picture or video the page shows.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Protocol

from page4d_viewer.viewer.server.uploads import UPLOAD_ROUTE, InputFolders, UploadRefusedError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from page4d_viewer.viewer.server.proxy import LoginLookup


class PageLiveness(Protocol):
    """Told when a page's Gradio heartbeat opens and ends (the session registry)."""

    def heartbeat_opened(self, session_hash: str) -> None: ...

    def heartbeat_closed(self, session_hash: str) -> None: ...


logger = logging.getLogger(__name__)

Clock = Callable[[], float]

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_TOKEN_SECONDS = 12 * 3600.0
FREE_LOGIN_TRIES = 3  # failed logins before the delay starts
FIRST_LOGIN_DELAY = 1.0  # seconds; doubles with each further failure
MAX_LOGIN_DELAY = 15 * 60.0
MAX_JSON_BODY_BYTES = 64 * 1024**2
# Gradio's routes that act on a session; the login is checked here because Gradio's
# heartbeat (which opens and closes sessions) checks none.
HEARTBEAT_ROUTE = "/gradio_api/heartbeat/"
SESSION_ROUTES = (
    HEARTBEAT_ROUTE,
    "/gradio_api/queue/",
    "/gradio_api/stream/",
    "/gradio_api/reset",
    "/gradio_api/cancel",
    UPLOAD_ROUTE,
)
FILE_ROUTE = "/gradio_api/file="
LOGIN_ROUTES = ("/login", "/login/")
# Media the page shows in place: these are served inline, every other file as an attachment.
INLINE_MEDIA = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/gif", "video/mp4", "video/webm"}
)
# The panel and the scene: scripts and styles from this origin (Gradio and Viser inline some),
# connections (the scene's websocket included) to it only, no plugins, no framing elsewhere.
PAGE_POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:; "
    "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; "
    "font-src 'self' data: https://fonts.gstatic.com; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "connect-src 'self' data: blob:; worker-src 'self' blob:; "
    "frame-src 'self'; frame-ancestors 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'"
)
# A served file opened as a page of its own runs nothing, even if it were HTML.
FILE_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


def host_name(header: str | None) -> str | None:
    """The host name of a `Host` header, lower case, without port or IPv6 brackets."""
    if not header:
        return None
    header = header.strip().lower()
    if header.startswith("["):
        name, bracket, _rest = header[1:].partition("]")
        return name if bracket else None
    name, _colon, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def allowed_host_names(bind: str, allowed: Iterable[str] = ()) -> frozenset[str]:
    """The names a request's `Host` may give, for an app bound to `bind`.

    A loopback bind allows the loopback names only. Any other bind allows the names in
    `allowed` (`--allowed-hosts`), else the bound address itself. A wildcard bind (0.0.0.0,
    ::) also listens on loopback, so it allows the loopback names too (the address the app
    prints); with none named, only those, so the operator names the others.
    """
    names = {host_name(name) or name.strip().lower() for name in allowed if name.strip()}
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        local = LOOPBACK_NAMES if bind == "localhost" else frozenset()
        return frozenset(names or {bind.lower()}) | local
    if address.is_loopback:
        return LOOPBACK_NAMES
    if address.is_unspecified:
        return frozenset(names) | LOOPBACK_NAMES
    return frozenset(names or {str(address)})


@dataclass
class LoginLimiter:
    """Failed logins per client, with a delay that doubles after `FREE_LOGIN_TRIES`.

    An attempt counts as failed from the moment it starts, until it succeeds: many attempts
    sent at once are held back as much as the same attempts sent one by one.
    """

    clock: Clock = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_before(self, client: str) -> float:
        """Seconds `client` must still wait before its next attempt (0: go ahead)."""
        with self._lock:
            count, last = self._failures.get(client, (0, -math.inf))
        if count < FREE_LOGIN_TRIES:
            return 0.0
        delay = min(FIRST_LOGIN_DELAY * 2 ** (count - FREE_LOGIN_TRIES), MAX_LOGIN_DELAY)
        return max(0.0, last + delay - self.clock())

    def attempt(self, client: str) -> None:
        """An attempt starts: it counts as failed until `succeeded`."""
        with self._lock:
            count, _last = self._failures.get(client, (0, 0.0))
            self._failures[client] = (count + 1, self.clock())

    def succeeded(self, client: str) -> None:
        """The attempt logged in: the client starts afresh."""
        with self._lock:
            self._failures.pop(client, None)


@dataclass
class LoginTokens:
    """When each login token was issued, so it expires `lifetime` seconds later."""

    lifetime: float = DEFAULT_TOKEN_SECONDS
    clock: Clock = time.monotonic
    _issued: dict[str, float] = field(default_factory=dict)

    def issued(self, token: str) -> None:
        """A login set this token (and tokens long expired are forgotten)."""
        now = self.clock()
        for old in [t for t, at in self._issued.items() if now - at > 2 * self.lifetime]:
            del self._issued[old]
        self._issued[token] = now

    def expired(self, token: str) -> bool:
        """Whether a token this app issued is past its lifetime (unknown ones: not ours).

        An expired token is remembered as such (for twice its lifetime), since Gradio keeps
        it valid: the guard takes it out of every request's cookies.
        """
        issued = self._issued.get(token)
        return issued is not None and self.clock() - issued > self.lifetime


@dataclass
class GuardRules:
    """What the guard enforces.

    Attributes:
        hosts: The names a `Host` header may give (`allowed_host_names`).
        inputs: The folders event inputs must lie in (None: no check, tests of other rules).
        logins: Looks up the login of a request (None: the app has no password).
        limiter: Failed logins per client.
        tokens: Login token lifetimes.
        pages: Told when each page's heartbeat opens and ends (None: nobody is).
    """

    hosts: frozenset[str]
    inputs: InputFolders | None = None
    logins: LoginLookup | None = None
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    tokens: LoginTokens = field(default_factory=LoginTokens)
    pages: PageLiveness | None = None


class RequestGuard:
    """ASGI middleware enforcing `GuardRules` on every request, before any route."""

    def __init__(self, app: ASGIApp, rules: GuardRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        if host_name(headers.get("host")) not in self.rules.hosts:
            logger.warning("refused a request for host %r", headers.get("host", "")[:80])
            await _refuse(scope, send, 400, "host not allowed: name it with --allowed-hosts")
            return
        scope = self._without_expired_tokens(scope, headers)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path.startswith(SESSION_ROUTES) and not await self._logged_in(scope):
            await _refuse(scope, send, 401, "not logged in")
            return
        send = self._secure_headers(send, path)
        if self.rules.logins is not None and path in LOGIN_ROUTES and scope["method"] == "POST":
            await self._login(scope, receive, send)
            return
        if self.rules.inputs is not None and _is_json_post(scope, headers):
            body = await _read_body(receive, MAX_JSON_BODY_BYTES)
            if body is None:
                await _refuse(scope, send, 413, "request body too large")
                return
            try:
                self.rules.inputs.check_body(body)
            except UploadRefusedError as error:
                logger.warning("%s (%s)", error, path)
                await _refuse(scope, send, 400, str(error))
                return
            receive = _replay(body, receive)
        if path.startswith(HEARTBEAT_ROUTE) and self.rules.pages is not None:
            await self._heartbeat(scope, receive, send, path[len(HEARTBEAT_ROUTE) :])
            return
        await self.app(scope, receive, send)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send, page: str) -> None:
        """Gradio's heartbeat of one page, reported open while it streams."""
        assert self.rules.pages is not None
        self.rules.pages.heartbeat_opened(page)
        try:
            await self.app(scope, receive, send)
        finally:
            self.rules.pages.heartbeat_closed(page)

    # ------------------------------------------------------------------------ logins

    async def _logged_in(self, scope: Scope) -> bool:
        """Whether the request carries a valid login (always, for an app without one)."""
        if self.rules.logins is None:
            return True
        cookie = _headers(scope).get("cookie", "")
        return await self.rules.logins.user_of_cookie(cookie) is not None

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A login attempt: held back while the client's delay runs, counted, and its token
        timed when it succeeds."""
        client = _client_of(scope)
        limiter = self.rules.limiter
        wait = limiter.wait_before(client)
        if wait > 0:
            seconds = math.ceil(wait)
            await _refuse(
                scope, send, 429, f"too many failed logins: try again in {seconds} s",
                extra=[(b"retry-after", str(seconds).encode())],
            )  # fmt: skip
            return
        limiter.attempt(client)

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    limiter.succeeded(client)
                    for token in _set_cookie_tokens(message.get("headers", [])):
                        self.rules.tokens.issued(token)
                else:
                    logger.warning("failed login from %s", client)
            await send(message)

        await self.app(scope, receive, observe)

    def _without_expired_tokens(self, scope: Scope, headers: dict[str, str]) -> Scope:
        """The request with expired login tokens taken out of its cookies."""
        cookie = headers.get("cookie")
        if not cookie:
            return scope
        try:
            jar = SimpleCookie(cookie)
        except CookieError:
            return scope
        expired = [
            name
            for name, morsel in jar.items()
            if name.startswith("access-token") and self.rules.tokens.expired(morsel.value)
        ]
        if not expired:
            return scope
        kept = "; ".join(f"{name}={m.value}" for name, m in jar.items() if name not in expired)
        raw = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
        if kept:
            raw.append((b"cookie", kept.encode("latin-1")))
        return {**scope, "headers": raw}

    # ------------------------------------------------------------------------ headers

    def _secure_headers(self, send: Send, path: str) -> Send:
        """`send`, adding nosniff and a CSP to the response, and for a served file an
        attachment disposition unless it is media the page shows."""
        serving_file = path.startswith(FILE_ROUTE)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"x-content-type-options", b"content-security-policy")
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                policy = FILE_POLICY if serving_file else PAGE_POLICY
                headers.append((b"content-security-policy", policy.encode()))
                if serving_file:
                    headers = _as_attachment_unless_media(headers)
                message = {**message, "headers": headers}
            await send(message)

        return secured


def _as_attachment_unless_media(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A served file's headers: inline only for media the page shows, else an attachment
    of type application/octet-stream (so nothing sniffs it back into a page)."""
    found = {k.lower(): v for k, v in headers}
    media = found.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
    if media in INLINE_MEDIA:
        return headers
    disposition = found.get(b"content-disposition", b"").decode("latin-1")
    _kind, _semi, params = disposition.partition(";")
    kept = [
        (k, v) for k, v in headers if k.lower() not in (b"content-disposition", b"content-type")
    ]
    attachment = "attachment" + (f";{params}" if params.strip() else "")
    kept.append((b"content-disposition", attachment.encode("latin-1")))
    kept.append((b"content-type", b"application/octet-stream"))
    return kept


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _is_json_post(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether a request's body may carry event data: any body but a form (an upload, which
    the upload route stores itself, or a login). Bodies that are not JSON name no file."""
    if scope.get("method") not in ("POST", "PUT", "PATCH"):
        return False
    kind = headers.get("content-type", "").lower()
    return not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))


def _set_cookie_tokens(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The login tokens a response's Set-Cookie headers set (Gradio's `access-token-*`)."""
    tokens = []
    for key, value in headers:
        if key.lower() != b"set-cookie":
            continue
        name, _eq, rest = value.decode("latin-1").partition("=")
        if name.strip().startswith("access-token"):
            tokens.append(rest.split(";")[0].strip().strip('"'))
    return tokens


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it is longer than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the already-read body over once, then defers to the original."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    reason: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with `status` and one line (JSON `detail`, as FastAPI's errors), websocket
    handshakes included (as an HTTP response where the server allows it, else a close)."""
    body = json.dumps({"detail": reason}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", FILE_POLICY.encode()),
        *(extra or []),
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
