"""Private sessions: each browser tab has its own Viser scene, timeline and result.

A session is keyed by its tab's id, which the page keeps in the browser's `sessionStorage`
(per tab, kept across reloads), so a refreshed page re-attaches to its scene, result, sliders
and runs. Each page load (a new Gradio session hash) `attach`es to its tab's session; every
other event finds the session through that hash. When a page goes (`demo.unload`) its hash is
`detach`ed, and a session no page is attached to closes after a grace period, unless a reload
attaches again first. A page that sends no valid tab id is keyed by its session hash.

Each session owns an internal `viser.ViserServer` on 127.0.0.1 (reached only through the
proxy in `proxy.py`, which alone knows the server's key: `scene_key.py`), the `SceneView`
driving it (which holds every display setting), and a `ViewerController` for its result,
runs and timeline. What every session shares is passed in by the app: the model backend
with its lock, the runs folder, the path policy, the samples.

At most `max_sessions` are open at once: each holds a server thread and a copy of its scene,
so the next page is told to close another tab instead of slowing everyone down; one client (a
login, or an address without one) holds at most `max_per_client` of them.

Sessions belong to live pages. A page attaches through a Gradio event, which any script can
send without ever opening the page, and it is detached only when Gradio's heartbeat for it
ends, which such a script never opens. So a session is live while its scene websocket is open
(the proxy reports each one opening and closing) or a page attached to it holds its heartbeat
open (the request guard reports those), and each poll of its page counts live too
(`keep_alive`: Gradio never reopens a heartbeat that dropped, and that poll re-attaches the
page). One that has not been live for `grace_seconds` (never, since it opened, or not since its
page went) is closed by `reap`, whatever route opened it.
`reap` runs before each new session is admitted and from a background thread (every
`REAP_INTERVAL_SECONDS`); it also closes the sessions whose grace period ran out, so every
wait here reads the registry's clock (injected by tests) and none sleeps on a timer.

A session owns its per-tab helpers (`Session.comparer`, `Session.inspector`,
`Session.track_seeder`) and its split view (`Session.set_split`: a second scene on a second
internal server, masked | unmasked, see `split_view.py`): each is made on first use and closed
with the session, whichever way it ends (`close`, `detach` past its grace period, `reap`,
`close_all`).

There is one panel mode: the panel always talks to a `SessionRegistry`. Tests and embeddings
that drive one controller wrap it with `SessionRegistry.single(controller)`: every page then
attaches to that one session, whatever its session hash (see `single`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import (
    DEFAULT_MASK_OPACITY,
    DEFAULT_MASK_OVERLAY,
    DEFAULT_MASK_THRESHOLD,
)
from page4d_viewer.viewer.comparison import Comparer
from page4d_viewer.viewer.inspector import Inspector
from page4d_viewer.viewer.server.proxy import MAIN_VIEW, RIGHT_VIEW, SceneUpstream
from page4d_viewer.viewer.server.scene_key import open_keyed_server
from page4d_viewer.viewer.server.split_view import SplitView
from page4d_viewer.viewer.track_seeding import TrackSeeder

if TYPE_CHECKING:
    import viser

    from page4d_viewer.run_contract import ModelBackend
    from page4d_viewer.viewer.controller import Shown, ViewerController
    from page4d_viewer.viewer.paths import DataRoots
    from page4d_viewer.viewer.runs import RunRecord
    from page4d_viewer.viewer.scene import SceneView

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 8
DEFAULT_GRACE_SECONDS = 60.0  # how long a tab's session outlives its page (a reload returns)
REAP_INTERVAL_SECONDS = 5.0  # how often sessions without a live scene are looked for

_TAB_ID = re.compile(r"[A-Za-z0-9-]{8,64}")
SINGLE_SESSION_ID = "single"
"""The id of the one session of `SessionRegistry.single`."""

ControllerFactory = Callable[["SceneView", str], "ViewerController"]
"""make(scene, owner) -> the controller of a new session, with the app's shared parts."""

InitialResult = Callable[["ViewerController"], "Shown"]
"""show(controller) -> shows the app's start-up result in a session."""


def return_memory() -> None:
    """Hand the memory of closed sessions back to the OS.

    A closed session's objects are freed, but glibc keeps the freed heap (each session's
    threads allocate in arenas of their own), so the process stayed at its peak with no
    session open. `malloc_trim` gives the free pages back; elsewhere this only collects.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        trim = None
    if trim is not None:
        trim(0)


def run_owner(session_id: str) -> str:
    """The owner recorded with a session's runs (in run.json).

    A digest, so run folders never hold the session hash itself, which (with the login)
    reaches the session's scene.
    """
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def valid_tab_id(tab_id: object) -> str | None:
    """The tab id a page sent, if well formed (8 to 64 of A-Z, a-z, 0-9 and "-"), else None."""
    if isinstance(tab_id, str) and _TAB_ID.fullmatch(tab_id):
        return tab_id
    return None


class SessionLimitError(Page4DError):
    """Every session slot is taken."""


class SessionClosedError(Page4DError):
    """A page whose session was closed (or never opened) sent an event."""


CLOSED_MESSAGE = (
    "this page's session is closed (too many tabs, idle too long, or the app restarted):"
    " reload the page"
)


class Session:
    """One browser tab's scene, result and helpers; closing it closes all of them.

    The panel reaches a page's session with `SessionRegistry.session_for(session_hash)` and
    then uses its parts directly:

    - `controller`: the result on screen, the runs, the timeline (`ViewerController`);
    - `scene`: its Viser scene (`SceneView`), which holds every display setting;
    - `comparer`: the second run laid over the first (`Comparer`, the Compare tab);
    - `inspector`: attention pictures and the probe (`Inspector`, "Inside the model");
    - `track_seeder`: tracks seeded by clicks (`TrackSeeder`, the Tracks tab);
    - `set_split(on)`, `split_on`: the split view, masked | unmasked (`SplitView`).

    The helpers are made on first use (a tab never opened costs nothing) and closed by
    `close`, which the registry calls when the session ends; after that, asking for one
    raises `SessionClosedError`, which the panel shows as "reload the page".

    Args:
        session_id: Its tab's id (the page's session hash when the page sent none); the
            scene's address and the runs' owner are made from it.
        user: The logged-in user who opened it (None without a password).
        controller: Its result, timeline and runs.
        scene: The scene the controller drives.
        server: Its own Viser server, on 127.0.0.1 only; None for a session that wraps a
            controller someone else made (`SessionRegistry.single`), whose scene, server and
            controller stay that caller's to close.
        scene_key: The key `server` requires of every request (`scene_key.py`).

    Attributes:
        client: Who holds it, for the per-client cap: the login, or the address without one.
        sockets: How many scene websockets are open to it now.
        idle_since: Since when (the registry's clock) it has not been live.
        detached_since: Since when (the registry's clock) no page has been attached to it;
            None while one is.
    """

    def __init__(
        self,
        session_id: str,
        user: str | None,
        controller: ViewerController,
        scene: SceneView,
        server: viser.ViserServer | None = None,
        scene_key: str = "",
    ) -> None:
        self.session_id = session_id
        self.user = user
        self.controller = controller
        self.scene = scene
        self.server = server
        self.scene_key = scene_key
        self.client = ""
        self.sockets = 0
        self.idle_since = 0.0
        self.detached_since: float | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._comparer: Comparer | None = None
        self._inspector: Inspector | None = None
        self._track_seeder: TrackSeeder | None = None
        self._split: SplitView | None = None

    @property
    def port(self) -> int:
        """The internal port of its Viser server (0 without one)."""
        return 0 if self.server is None else int(self.server.get_port())

    @property
    def right_port(self) -> int | None:
        """The internal port of the split view's right scene (None until it is first on)."""
        split = self._split
        return None if split is None else split.port

    def upstream(self, view: str) -> SceneUpstream | None:
        """Where the proxy reaches its scene `view` (`MAIN_VIEW`, or `RIGHT_VIEW` once the
        split view was first on), with the key that server requires; None: no such scene."""
        if self.server is None:
            return None
        if view == MAIN_VIEW:
            return SceneUpstream(self.port, self.scene_key)
        split = self._split
        if view != RIGHT_VIEW or split is None:
            return None
        return SceneUpstream(split.port, split.key)

    @property
    def split_on(self) -> bool:
        """Whether the split view is on: every result goes to both sides."""
        split = self._split
        return split is not None and split.on

    def set_split(self, on: bool) -> None:
        """Turn the split view on or off.

        On: the session's scene becomes the left (masked) side and a second scene, made on
        first use, the right (unmasked) one; the result on screen, and every result after
        it, is shown on both. Off: the scene is overlaid again as before, the right side
        is cleared (its server stays until the session closes, for the next time).

        Raises:
            SessionClosedError: the session is closed.
            Page4DError: the session has no scene of its own (`SessionRegistry.single`).
        """
        with self._lock:
            self._check_open()
            if self.server is None:
                raise Page4DError("the split view needs the app's own scenes (one per page)")
            if on and self._split is None:
                self._split = SplitView.open(self.scene)
            split = self._split
        if split is None or split.on == on:
            return
        if on:
            split.start()
            self.controller.show_on(split)
        else:
            split.stop()
            self.controller.show_on(None)

    @property
    def closed(self) -> bool:
        """Whether `close` ran: its helpers are gone and its scene is stopped."""
        return self._closed

    @property
    def comparer(self) -> Comparer:
        """The comparison laid over its result (made on first use).

        Raises:
            SessionClosedError: the session is closed.
        """
        with self._lock:
            self._check_open()
            if self._comparer is None:
                self._comparer = Comparer(self.controller, self.scene)
            return self._comparer

    @property
    def inspector(self) -> Inspector:
        """The "Inside the model" selection and probe (made on first use; from then on
        clicks in the scene probe points).

        Raises:
            SessionClosedError: the session is closed.
        """
        with self._lock:
            self._check_open()
            if self._inspector is None:
                self._inspector = Inspector(self.controller)
            return self._inspector

    @property
    def track_seeder(self) -> TrackSeeder:
        """Tracks seeded by clicks (made on first use).

        Raises:
            SessionClosedError: the session is closed.
        """
        with self._lock:
            self._check_open()
            if self._track_seeder is None:
                self._track_seeder = TrackSeeder(self.controller)
            return self._track_seeder

    def close(self) -> None:
        """Close its helpers, then (when it owns them) its scene threads, its server and its
        controller's temporary downloads. A second call does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            helpers = (self._track_seeder, self._inspector, self._comparer)
            self._track_seeder = self._inspector = self._comparer = None
            split, self._split = self._split, None
        for helper in helpers:
            if helper is not None:
                helper.close()
        if split is not None:
            split.close()
        if self.server is None:
            return  # a wrapped controller: its maker closes it
        self.scene.close()
        self.server.stop()
        self.controller.close()

    def _check_open(self) -> None:
        """With the lock held: refuse a closed session's helpers."""
        if self._closed:
            raise SessionClosedError(CLOSED_MESSAGE)


class SessionRegistry:
    """The open sessions, one per browser tab, attached to by each load of its page.

    The panel's side, in one place:

    - `attach(session_hash, tab_id, user, client)` when a page loads, `detach(session_hash)`
      when it goes;
    - `session_for(session_hash)` in every other event: the page's `Session` (its
      `controller`, `scene`, `comparer`, `inspector`, `track_seeder`), or
      `SessionClosedError`;
    - `key_of(session_hash)`: the page's tab id, e.g. to key its runs' Cancel;
    - `adopt_initial(controller)`: show the start-up result in a session still empty;
    - `backend`, `data_roots`, `samples`, `mask_opacity`, `mask_threshold`,
      `mask_overlay`: what the panel's layout needs before any page loads;
    - `embeds_scenes`: whether each page gets its own scene to embed (False for `single`).

    Args:
        make_controller: Builds a session's controller around its scene.
        backend: The shared model side (None: view only); the panel's layout reads it.
        data_roots: The shared path policy (for the panel's hint).
        samples: The bundled example clips, label -> path.
        max_sessions: How many sessions may be open at once (detached ones count until they
            close).
        max_points: Point budget of each session's scene.
        grace_seconds: How long a session no page is attached to stays open (0: it closes at
            once), so a reloaded page finds it again; also how long one whose scene is not
            connected (never, or no more) stays open. Both are closed by `reap`.
        max_per_client: How many sessions one client may hold (default: half the slots).
        clock: Seconds, monotonic; every wait here reads it (tests inject one they move).
    """

    def __init__(
        self,
        make_controller: ControllerFactory,
        *,
        backend: ModelBackend | None,
        data_roots: DataRoots,
        samples: Mapping[str, Path],
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_points: int | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        max_per_client: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1:
            raise Page4DError(f"the session limit must be at least 1, got {max_sessions}")
        if grace_seconds < 0:
            raise Page4DError(f"the grace period must be >= 0 seconds, got {grace_seconds}")
        self.make_controller = make_controller
        self.backend = backend
        self.data_roots = data_roots
        self.samples = dict(samples)
        self.max_sessions = max_sessions
        self.max_points = max_points
        self.grace_seconds = grace_seconds
        self.max_per_client = max_per_client or max(1, max_sessions // 2)
        if self.max_per_client < 1:
            raise Page4DError(f"the per-client limit must be at least 1, got {max_per_client}")
        self.clock = clock
        # The panel's sliders start at the scene's defaults; each page then loads its own.
        self.mask_opacity = DEFAULT_MASK_OPACITY
        self.mask_threshold = DEFAULT_MASK_THRESHOLD
        self.mask_overlay = DEFAULT_MASK_OVERLAY
        self._sessions: dict[str, Session] = {}  # tab id -> session
        self._aliases: dict[str, str] = {}  # session hash of a loaded page -> its tab id
        self._lock = threading.Lock()
        self._initial: InitialResult | None = None
        self._reaper: threading.Thread | None = None
        self._stopped = threading.Event()
        self._heartbeats: dict[str, int] = {}  # session hash -> its open heartbeat requests
        self._single: Session | None = None  # set by `single` only

    @classmethod
    def single(cls, controller: ViewerController) -> SessionRegistry:
        """A registry of one session around `controller`, for tests and embeddings.

        Every page attaches to that session, whatever its session hash (an empty one too,
        as a test's `request=None` gives), and `session_for` always finds it, so the panel
        has one code path. The session is never reaped nor closed by a page going;
        `close_all` closes its helpers, and the controller and its scene stay the caller's
        to close. The panel's defaults are read from the controller's scene.

        Example::

            registry = SessionRegistry.single(controller)
            demo = build_panel(registry)
            registry.session_for("").inspector  # the helpers of the one session
        """
        registry = cls(
            _no_new_sessions,
            backend=controller.backend,
            data_roots=controller.data_roots,
            samples=controller.samples,
        )
        scene = cast("SceneView", controller.scene)  # a stand-in's in tests: only what it has
        registry._single = Session(SINGLE_SESSION_ID, None, controller, scene)
        registry._sessions[SINGLE_SESSION_ID] = registry._single
        settings = controller.scene_settings()
        registry.mask_opacity = settings.mask_opacity
        registry.mask_threshold = settings.mask_threshold
        registry.mask_overlay = settings.mask_overlay
        return registry

    @property
    def embeds_scenes(self) -> bool:
        """Whether each session has its own Viser server for the page to embed (False for a
        `single` registry, whose controller's scene is the caller's)."""
        return self._single is None

    # ------------------------------------------------------------------------ lifecycle

    def attach(
        self,
        session_hash: str,
        tab_id: str | None,
        user: str | None = None,
        client: str | None = None,
    ) -> Session:
        """The session of this page's tab, opened (start-up result shown) or re-attached.

        Args:
            session_hash: Gradio's session hash of this page load.
            tab_id: The id the tab keeps across reloads; an invalid one (or None) falls back
                to `session_hash`.
            user: The logged-in user (None without a password); only they may re-attach.
            client: Who asks, for the per-client cap (default: `user`, else one anonymous
                client).

        Raises:
            SessionLimitError: `max_sessions` are open already, or `max_per_client` of them
                are this client's.
            SessionClosedError: the tab's session belongs to another user, or no id at all.
        """
        if self._single is not None:
            return self._single
        if not session_hash:
            raise SessionClosedError("this page has no session: reload it")
        key = valid_tab_id(tab_id) or session_hash
        holder = user or client or ""
        self.reap()
        closing: list[Session] = []
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                self._check_room(holder)
                session = self._new_session(key, user)
                session.client = holder
                session.idle_since = self.clock()
                self._sessions[key] = session
            elif session.user != user:
                raise SessionClosedError(
                    "this tab's session belongs to another user: open the app in a new tab"
                )
            session.detached_since = None
            previous = self._aliases.get(session_hash)
            self._aliases[session_hash] = key
            if previous is not None and previous != key:
                closing += self._release(previous)
        self._dispose(closing)
        self.adopt_initial(session.controller)
        return session

    def open(self, session_id: str, user: str | None = None, client: str | None = None) -> Session:
        """The session keyed (and attached to) by this id: `attach(session_id, session_id)`."""
        return self.attach(session_id, session_id, user, client)

    # ------------------------------------------------------------------------ liveness

    def scene_connected(self, session_id: str) -> None:
        """A scene websocket of this session opened (the proxy calls this)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.sockets += 1

    def scene_disconnected(self, session_id: str) -> None:
        """A scene websocket of this session closed: when it was the last, the session's
        grace period starts."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                session.sockets = max(0, session.sockets - 1)
                if session.sockets == 0:
                    session.idle_since = self.clock()

    def heartbeat_opened(self, session_hash: str) -> None:
        """A page's Gradio heartbeat opened (the request guard calls this)."""
        with self._lock:
            self._heartbeats[session_hash] = self._heartbeats.get(session_hash, 0) + 1

    def heartbeat_closed(self, session_hash: str) -> None:
        """A page's heartbeat ended: its page is gone, and its session's grace period starts
        unless something else keeps it live."""
        with self._lock:
            left = self._heartbeats.get(session_hash, 0) - 1
            if left > 0:
                self._heartbeats[session_hash] = left
                return
            self._heartbeats.pop(session_hash, None)
            session = self._sessions.get(self._aliases.get(session_hash, ""))
            if session is not None:
                session.idle_since = self.clock()

    def keep_alive(self, session_hash: str, tab_id: str | None, user: str | None = None) -> Session:
        """A page that is still there (it polls): its session, counted live now, and
        attached again if the page was detached while it stayed open.

        Gradio's page opens its heartbeat once and never again. When that stream drops (a
        network blip, a laptop waking up), Gradio runs the page's unload (`detach`) and the
        heartbeat no longer counts the page live, though the page is open and polling. A
        poll is as good a sign of life as a heartbeat (any script can send either), so it
        keeps the session live and re-attaches the page to its tab's session, if that is
        still open and its user's. It never opens one: a tab whose session closed is told
        to reload at its next event.

        Args:
            tab_id: The tab id the page was attached with (its session's id).
            user: The logged-in user (None without a password).

        Raises:
            SessionClosedError: the page's tab has no open session (or another user's).
        """
        if self._single is not None:
            return self._single
        with self._lock:
            session = self._sessions.get(self._aliases.get(session_hash, ""))
            if session is not None:
                session.idle_since = self.clock()
                return session
            key = valid_tab_id(tab_id)
            session = self._sessions.get(key) if key is not None and session_hash else None
            if key is None or session is None or session.user != user:
                raise SessionClosedError(CLOSED_MESSAGE)
            session.detached_since = None
            session.idle_since = self.clock()
            self._aliases[session_hash] = key
            return session

    def reap(self) -> list[str]:
        """Close every session whose time is up, by the registry's clock:

        - one no page has been attached to for `grace_seconds` (`detach`), even if a scene
          websocket is still open to it;
        - one that has not been live for `grace_seconds`: no scene websocket and no
          attached page's heartbeat open, never since it opened or not since the last one
          closed, and no poll of its page (`keep_alive`) since.

        Returns:
            The ids of the sessions closed.
        """
        now = self.clock()
        with self._lock:
            live = {tab for alias, tab in self._aliases.items() if alias in self._heartbeats}
            stale = []
            for key, session in self._sessions.items():
                if session is self._single:
                    continue
                detached = session.detached_since
                if detached is not None and now - detached > self.grace_seconds:
                    stale.append(key)
                elif session.sockets > 0 or key in live:
                    session.idle_since = now
                elif now - session.idle_since > self.grace_seconds:
                    stale.append(key)
            closing = [self._sessions.pop(key) for key in stale]
            for key in stale:
                self._forget(key)
        self._dispose(closing, f": not live for {self.grace_seconds:.0f} s")
        return stale

    def start_reaping(self, interval: float = REAP_INTERVAL_SECONDS) -> None:
        """Run `reap` every `interval` seconds from a background thread, until `close_all`."""
        if self._reaper is not None:
            return

        def loop() -> None:
            while not self._stopped.wait(interval):
                try:
                    self.reap()
                except Exception:  # the thread must outlive one failed close
                    logger.exception("reaping sessions failed")

        self._reaper = threading.Thread(target=loop, name="session-reaper", daemon=True)
        self._reaper.start()

    def detach(self, session_hash: str) -> None:
        """A page went: forget its hash; its tab's session closes after the grace period
        (at the next `reap`) unless another page of the tab is attached, or attaches before
        then."""
        with self._lock:
            key = self._aliases.pop(session_hash, None)
            closing = self._release(key) if key is not None else []
        self._dispose(closing)

    def close(self, session_id: str) -> None:
        """Close a session at once (by tab id or session hash); unknown ids are ignored, and
        so is the one session of a `single` registry (`close_all` closes it)."""
        with self._lock:
            key = session_id if session_id in self._sessions else self._aliases.get(session_id)
            session = self._sessions.get(key) if key is not None else None
            if session is None or session is self._single:
                return
            closing = [self._sessions.pop(session.session_id)]
            self._forget(key)
        self._dispose(closing)

    def close_all(self) -> None:
        """Close every session (the app stops)."""
        self._stopped.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            self._aliases.clear()
        self._dispose(sessions)

    def __len__(self) -> int:
        return len(self._sessions)

    # ------------------------------------------------------------------------ lookups

    def get(self, session_id: str) -> Session | None:
        """The open session with this tab id (the id in its scene's address), or None."""
        return self._sessions.get(session_id)

    def key_of(self, session_hash: str) -> str:
        """The tab id a page's session hash is attached to ("" if none, and for every page
        of a `single` registry)."""
        return self._aliases.get(session_hash, "")

    def session_for(self, session_hash: str) -> Session:
        """The session a page is attached to (the panel's callbacks): the one session of a
        `single` registry, whatever the hash.

        Raises:
            SessionClosedError: the page is attached to no open session.
        """
        if self._single is not None:
            return self._single
        session = self._sessions.get(self._aliases.get(session_hash, ""))
        if session is None:
            raise SessionClosedError(CLOSED_MESSAGE)
        return session

    def controller_for(self, session_hash: str) -> ViewerController:
        """The controller of the session a page is attached to: `session_for(...).controller`.

        Raises:
            SessionClosedError: the page is attached to no open session.
        """
        return self.session_for(session_hash).controller

    def upstream(
        self, session_id: str, user: str | None, view: str = MAIN_VIEW
    ) -> SceneUpstream | None:
        """The internal Viser server (port and key) of a session's scene, if the session is
        open, has a server and `user` opened it (the proxy's `UpstreamLookup`).

        Args:
            view: `MAIN_VIEW` (its own scene) or `RIGHT_VIEW` (the split view's right side,
                None until the split view is first turned on).
        """
        session = self._sessions.get(session_id)
        if session is None or session.user != user:
            return None
        return session.upstream(view)

    def shown_runs(self) -> set[str]:
        """The ids of the saved runs the open sessions show (pruning keeps them)."""
        with self._lock:
            controllers = [session.controller for session in self._sessions.values()]
        shown = (controller.current for controller in controllers)
        return {s.record.run_id for s in shown if s is not None and s.record is not None}

    def recent_runs(self) -> list[RunRecord]:
        """Nothing before a page loads: each page lists the runs its session may see."""
        return []

    # ------------------------------------------------------------------------ start-up result

    def set_initial(self, show: InitialResult) -> None:
        """Show this in every session that has nothing on screen, now and when they open."""
        self._initial = show
        for session in list(self._sessions.values()):
            self.adopt_initial(session.controller)

    def adopt_initial(self, controller: ViewerController) -> None:
        """Show the start-up result in a session with nothing on screen yet."""
        show = self._initial
        if show is None or controller.current is not None:
            return
        try:
            show(controller)
        except Page4DError as error:
            logger.error("cannot show the start-up result: %s", " ".join(str(error).split()))

    # ------------------------------------------------------------------------ private

    def _check_room(self, holder: str) -> None:
        """With the lock held: refuse a new session when the app or `holder` is full."""
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitError(
                f"{self.max_sessions} sessions are open, the most this app allows: "
                "close another tab of this app (or wait a minute after closing one) "
                "and reload this page"
            )
        held = sum(1 for session in self._sessions.values() if session.client == holder)
        if held >= self.max_per_client:
            raise SessionLimitError(
                f"you have {held} sessions open, the most one client may hold: close "
                "another of your tabs of this app (or wait a minute after closing one) "
                "and reload this page"
            )

    def _release(self, key: str) -> list[Session]:
        """With the lock held: a tab lost a page. The sessions to close now (none when a page
        is still attached, or when its grace period starts instead)."""
        session = self._sessions.get(key)
        if session is None or key in self._aliases.values():
            return []
        if self.grace_seconds <= 0:
            return [self._sessions.pop(key)]
        session.detached_since = self.clock()
        return []

    def _dispose(self, closing: list[Session], why: str = "") -> None:
        """Close these sessions (emptying the list, so nothing holds them) and give their
        memory back."""
        if not closing:
            return
        while closing:
            session = closing.pop()
            session.close()
            logger.info("closed session %.8s%s (%d open)", session.session_id, why, len(self))
            del session
        return_memory()

    def _forget(self, key: str | None) -> None:
        """With the lock held: drop a closed session's aliases."""
        if key is None:
            return
        for alias in [alias for alias, tab in self._aliases.items() if tab == key]:
            del self._aliases[alias]

    def _new_session(self, session_id: str, user: str | None) -> Session:
        from page4d_viewer.viewer.scene import SceneView

        # The Viser server starts threads: only when a session opens.
        server, scene_key = open_keyed_server()
        try:
            if self.max_points is None:
                scene = SceneView(server)
            else:
                scene = SceneView(server, max_points=self.max_points)
            controller = self.make_controller(scene, run_owner(session_id))
        except BaseException:
            server.stop()
            raise
        logger.info("opened session %.8s (%d open)", session_id, len(self._sessions) + 1)
        return Session(session_id, user, controller, scene, server, scene_key)


def _no_new_sessions(scene: SceneView, owner: str) -> ViewerController:
    """The controller factory of a `single` registry: it never opens another session."""
    raise SessionLimitError("this panel has one session")
