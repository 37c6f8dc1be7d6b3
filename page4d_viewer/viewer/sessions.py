"""Private sessions: each browser session has its own Viser scene, timeline and result.

A session is opened when its page loads (keyed by Gradio's session hash) and closed when the
page goes (`demo.unload`). It owns an internal `viser.ViserServer` on 127.0.0.1 (reached only
through the proxy in `server.py`), the `SceneView` driving it, and a `ViewerController` for
its result, timeline and overlay settings. What every session shares is passed in by the app:
the model backend with its lock, the runs folder, the path policy, the samples.

At most `max_sessions` are open at once: each holds a server thread and a copy of its scene,
so the next page is told to close another tab instead of slowing everyone down.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import DEFAULT_MASK_OPACITY, DEFAULT_MASK_THRESHOLD

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.controller import ModelBackend, Shown, ViewerController
    from page4d_viewer.viewer.paths import DataRoots
    from page4d_viewer.viewer.runs import RunRecord
    from page4d_viewer.viewer.scene import SceneView

logger = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 8

ControllerFactory = Callable[["SceneView", str], "ViewerController"]
"""make(scene, owner) -> the controller of a new session, with the app's shared parts."""

InitialResult = Callable[["ViewerController"], "Shown"]
"""show(controller) -> shows the app's start-up result in a session."""


def run_owner(session_id: str) -> str:
    """The owner recorded with a session's runs (in run.json).

    A digest, so run folders never hold the session hash itself, which (with the login)
    reaches the session's scene.
    """
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


class SessionLimitError(Page4DError):
    """Every session slot is taken."""


class SessionClosedError(Page4DError):
    """A page whose session was closed (or never opened) sent an event."""


@dataclass
class Session:
    """One browser session's scene and state.

    Attributes:
        session_id: Gradio's session hash of the page.
        user: The logged-in user who opened it (None without a password).
        server: Its Viser server, on 127.0.0.1 only.
        scene: The scene on that server.
        controller: Its result, timeline and overlay settings.
    """

    session_id: str
    user: str | None
    server: viser.ViserServer
    scene: SceneView
    controller: ViewerController

    @property
    def port(self) -> int:
        """The internal port of its Viser server."""
        return int(self.server.get_port())

    def close(self) -> None:
        """Stop its scene threads and server; remove its temporary downloads."""
        self.scene.close()
        self.server.stop()
        self.controller.close()


class SessionRegistry:
    """The open sessions, created on page load and closed when the page goes.

    Args:
        make_controller: Builds a session's controller around its scene.
        backend: The shared model side (None: view only); the panel's layout reads it.
        data_roots: The shared path policy (for the panel's hint).
        samples: The bundled example clips, label -> path.
        max_sessions: How many sessions may be open at once.
        max_points: Point budget of each session's scene.
    """

    def __init__(
        self,
        make_controller: ControllerFactory,
        *,
        backend: ModelBackend | None,
        data_roots: DataRoots,
        samples: dict,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_points: int | None = None,
    ) -> None:
        if max_sessions < 1:
            raise Page4DError(f"the session limit must be at least 1, got {max_sessions}")
        self.make_controller = make_controller
        self.backend = backend
        self.data_roots = data_roots
        self.samples = dict(samples)
        self.max_sessions = max_sessions
        self.max_points = max_points
        # The panel's sliders start at the scene's defaults; each page then loads its own.
        self.mask_opacity = DEFAULT_MASK_OPACITY
        self.mask_threshold = DEFAULT_MASK_THRESHOLD
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._initial: InitialResult | None = None

    # ------------------------------------------------------------------------ lifecycle

    def open(self, session_id: str, user: str | None = None) -> Session:
        """The session of this page, created (with the start-up result shown) if new.

        Raises:
            SessionLimitError: `max_sessions` are open already.
            SessionClosedError: the session belongs to another user, or has no id.
        """
        if not session_id:
            raise SessionClosedError("this page has no session: reload it")
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                if len(self._sessions) >= self.max_sessions:
                    raise SessionLimitError(
                        f"{self.max_sessions} sessions are open, the most this app allows: "
                        "close another tab of this app (or wait a minute after closing one) "
                        "and reload this page"
                    )
                session = self._new_session(session_id, user)
                self._sessions[session_id] = session
        if session.user != user:
            raise SessionClosedError("this session belongs to another user: reload the page")
        self.adopt_initial(session.controller)
        return session

    def close(self, session_id: str) -> None:
        """Close a session (its page went); unknown ids are ignored."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            session.close()
            logger.info("closed session %.8s (%d open)", session_id, len(self))

    def close_all(self) -> None:
        """Close every session (the app stops)."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            session.close()

    def __len__(self) -> int:
        return len(self._sessions)

    # ------------------------------------------------------------------------ lookups

    def get(self, session_id: str) -> Session | None:
        """The open session with this id, or None."""
        return self._sessions.get(session_id)

    def controller_for(self, session_id: str) -> ViewerController:
        """The controller of an open session (the panel's callbacks call this).

        Raises:
            SessionClosedError: no open session has this id.
        """
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionClosedError(
                "this page's session is closed (too many tabs, or the app restarted): "
                "reload the page"
            )
        return session.controller

    def upstream(self, session_id: str, user: str | None) -> int | None:
        """The internal Viser port of a session, if it is open and `user` opened it."""
        session = self._sessions.get(session_id)
        if session is None or session.user != user:
            return None
        return session.port

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

    def _new_session(self, session_id: str, user: str | None) -> Session:
        import viser

        from page4d_viewer.viewer.scene import SceneView

        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
        try:
            kwargs = {} if self.max_points is None else {"max_points": self.max_points}
            scene = SceneView(server, **kwargs)
            controller = self.make_controller(scene, run_owner(session_id))
        except BaseException:
            server.stop()
            raise
        logger.info("opened session %.8s (%d open)", session_id, len(self._sessions) + 1)
        return Session(session_id, user, server, scene, controller)
