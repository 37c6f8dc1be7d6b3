"""`page4d-viewer app` and `view`: one process, one port, serving the panel and the scenes.

`app` loads a model (the shipped default or `--checkpoint`) and runs clips; `view RESULT.npz`
opens a saved result with no model at all. Both listen on one port (`--port`, 7860) of
127.0.0.1 unless `--host` says otherwise. That server carries the Gradio panel at "/" and, at
"/scene/<session>/", a proxy to the page's own Viser scene (`server.py`): each browser session
gets its own scene, timeline and result (`sessions.py`), and the scene's websocket refuses pages
of other origins. Listening beyond loopback needs a password (`AppConfig.auth`); the panel, the
scenes and the downloads are then all behind Gradio's login.

The app *receives* its model side (a `ModelBackend`, or None for `view`): the command line
(`cli/app.py`) builds it, so nothing here imports the network or torch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.run_contract import RunOptions
from page4d_viewer.settings import assets_dir
from page4d_viewer.viewer.controller import ViewerController, find_samples
from page4d_viewer.viewer.dataset import index_file
from page4d_viewer.viewer.model_runs import STARTUP_OWNER, run_and_save
from page4d_viewer.viewer.panel import PANEL_CSS, build_panel
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.result_cache import ResultCache
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.server.guard import (
    GuardRules,
    LoginLimiter,
    LoginTokens,
    RequestGuard,
    allowed_host_names,
)
from page4d_viewer.viewer.server.proxy import (
    HttpServer,
    LoginLookup,
    ScenePolicy,
    SceneProxy,
    is_loopback,
)
from page4d_viewer.viewer.server.sessions import (
    DEFAULT_GRACE_SECONDS,
    DEFAULT_MAX_SESSIONS,
    SessionRegistry,
)
from page4d_viewer.viewer.server.uploads import UPLOAD_ROUTE, InputFolders, receive_upload

MIN_PASSWORD_LENGTH = 10
SHARED_RESULTS_KEPT = 2  # decoded results the sessions share (each of 65 frames: ~270 MB)

if TYPE_CHECKING:
    import gradio as gr

    from page4d_viewer.run_contract import ModelBackend
    from page4d_viewer.viewer.controller import ViewerController
    from page4d_viewer.viewer.scene import SceneView
    from page4d_viewer.viewer.server.proxy import HttpServer
    from page4d_viewer.viewer.server.sessions import SessionRegistry

logger = logging.getLogger(__name__)


@dataclass
class AppConfig:
    """Everything the command line sets.

    Attributes:
        host: Interface to listen on; 127.0.0.1 keeps the app private to this machine. Any
            other needs `auth`.
        port: The one port of the panel and the scenes (0: any free port).
        runs_dir: Where every finished run is saved.
        data_roots: Folders a path typed in the panel may point into.
        device: Device preselected in the panel ("auto", "cpu", "cuda", ...).
        precision: Precision preselected in the panel ("auto", "fp32", "bf16", "fp16").
        clip: A clip to run as soon as the app is up.
        result: A saved result to show at start.
        index: A batch folder (or its index.sqlite) to list in the Dataset tab at start.
        max_points: Point budget of each scene; larger clips are downsampled to fit.
        auth: (user, password) pairs; when given, every page, scene and download needs a login.
        shared_runs: List every run in every session (default: a session sees its own runs
            and the start-up run).
        max_sessions: How many browser sessions (each with its own scene) may be open at once.
        session_grace: Seconds a tab's session stays open after its page goes, so a reload
            finds its scene, result and sliders again (and after opening, when its scene
            never connects).
        max_sessions_per_client: How many sessions one login (or address, without logins)
            may hold (None: half of `max_sessions`).
        allowed_hosts: The names a request's Host may give (empty: the loopback names on a
            loopback or wildcard bind, else the bound address).
        login_hours: How long a login lasts before it must be given again.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    runs_dir: Path = Path("runs")
    data_roots: list[Path] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    clip: str | None = None
    result: str | None = None
    index: str | None = None
    max_points: int = 4_000_000
    auth: list[tuple[str, str]] = field(default_factory=list, repr=False)
    shared_runs: bool = False
    max_sessions: int = DEFAULT_MAX_SESSIONS
    session_grace: float = DEFAULT_GRACE_SECONDS
    max_sessions_per_client: int | None = None
    allowed_hosts: list[str] = field(default_factory=list)
    login_hours: float = 12.0


def check_exposure(config: AppConfig) -> None:
    """Refuse to listen beyond loopback without credentials, or with weak ones.

    Raises:
        Page4DError: `config.host` is not a loopback address and `config.auth` is empty, or
            a password is shorter than `MIN_PASSWORD_LENGTH` (the user is named, never the
            password).
    """
    if not is_loopback(config.host) and not config.auth:
        raise Page4DError(
            f"--host {config.host} exposes the app beyond this machine, so it needs a "
            "password: give --auth-file PATH (user:password lines) or set "
            "PAGE4D_AUTH=user:password"
        )
    for user, password in config.auth:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise Page4DError(
                f"the password of {user!r} is shorter than {MIN_PASSWORD_LENGTH} "
                "characters: give a longer one"
            )


def exposure_warning(
    config: AppConfig, url: str, runs_root: Path, port: int | None = None
) -> str | None:
    """What a login exposes, and to whom, or None for a password-less loopback app.

    `port` is the one the app got (`config.port` when None; they differ for port 0).
    """
    if not config.auth:
        return None
    port = config.port if port is None else port
    where = (
        f"on {config.host}:{port} (reachable from other machines)"
        if not is_loopback(config.host)
        else f"at {url} (this machine only)"
    )
    return (
        f"serving {where} to anyone with a login: the panel, every session's 3-D scene "
        f"(/scene/...), the model runs, the runs folder {runs_root} and its downloads"
    )


class ViewerApp:
    """The running app: one web server with the panel, and a scene per browser session.

    Tests drive it in-process: `start()` (with `config.port` 0 it binds any free port),
    then read `port` and `url` (the port it got) and `sessions` (each page's scene and
    controller, by Gradio session hash).

    Args:
        config: The command line's settings.
        backend: The model side (`inference.jobs.PredictorBackend` in the app); None for a
            view-only app, which cannot run clips.
        clock: Monotonic seconds for session liveness, login delays and token lifetimes
            (tests inject one).
    """

    def __init__(
        self,
        config: AppConfig,
        backend: ModelBackend | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.backend = backend
        self.clock = clock
        # Set by start(); None before it.
        self.sessions: SessionRegistry | None = None
        self.demo: gr.Blocks | None = None
        self.http: HttpServer | None = None
        self.port = 0  # the port it listens on (bound by start(), even when config.port is 0)
        self.url = ""
        self._model_lock = threading.Lock()
        self._store_root: Path | None = None
        self._store = None
        self._startup_run: str | None = None

    def start(self) -> None:
        """Start the server (returns once it listens); new sessions show `config.result`.

        Raises:
            Page4DError: no credentials for a non-loopback host, the port is taken, or the
                result file cannot be read.
        """
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        check_exposure(self.config)

        config = self.config
        # Checked before anything starts: a bad index is one error line, nothing left running.
        index = str(index_file(config.index)) if config.index else None
        store = RunStore(config.runs_dir, protected=self._protected_runs)
        self._store = store
        self._store_root = store.root
        registry = self._registry(store)
        self.sessions = registry
        if config.result:
            self._show_result_at_start(config.result)
        self.demo = build_panel(
            registry, device=config.device, precision=config.precision, index=index
        )
        store.root.mkdir(parents=True, exist_ok=True)
        self.http = HttpServer(self._web_app(store), config.host, config.port)
        self.port = self.http.port
        self.http.start()
        registry.start_reaping()
        self.url = f"http://{_display_host(config.host)}:{self.port}/"
        logger.info("panel and scenes: %s", self.url)
        warning = exposure_warning(config, self.url, store.root, self.port)
        if warning:
            logger.warning("%s", warning)
        if not is_loopback(config.host) and not config.allowed_hosts:
            names = ", ".join(sorted(allowed_host_names(config.host)))
            logger.warning(
                "only requests naming %s are answered: give the names clients use with "
                "--allowed-hosts NAME[,NAME]", names,
            )  # fmt: skip
        if config.clip:
            threading.Thread(
                target=self._run_clip_at_start, args=(config.clip,), name="start-clip", daemon=True
            ).start()

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        if self.http is None:
            raise Page4DError("the app is not started")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            logger.info("stopping")

    def close(self) -> None:
        """Stop the server, every session's scene, and the queue."""
        if self.http is not None:
            self.http.stop()
        if self.demo is not None:
            self.demo.close()
        if self.sessions is not None:
            self.sessions.close_all()

    def _registry(self, store) -> SessionRegistry:

        config = self.config
        roots = DataRoots(config.data_roots or [Path.cwd(), assets_dir()])
        samples = find_samples()
        # One decode of a result file for all the sessions that show it (every new tab opens
        # the start-up result).
        results = ResultCache(kept=SHARED_RESULTS_KEPT)

        def make_controller(scene: SceneView, owner: str) -> ViewerController:
            return ViewerController(
                scene, store, roots, self.backend, samples,
                model_lock=self._model_lock, owner=owner, shared_runs=config.shared_runs,
                results=results,
            )  # fmt: skip

        return SessionRegistry(
            make_controller,
            backend=self.backend,
            data_roots=roots,
            samples=samples,
            max_sessions=config.max_sessions,
            grace_seconds=config.session_grace,
            max_points=config.max_points,
            max_per_client=config.max_sessions_per_client,
            clock=self.clock,
        )

    def _web_app(self, store):
        """The ASGI app: the request guard around the scene proxy's routes, the upload route
        and the panel mounted at "/".

        The runs folder is not served: a run's files reach a page only as that page's own
        outputs (Gradio's copies, under names derived from a secret seed).
        """
        import fastapi
        import gradio as gr
        from gradio.utils import get_upload_folder

        assert self.sessions is not None and self.demo is not None and self.http is None
        config = self.config
        inputs = InputFolders.at(store.uploads_dir, get_upload_folder())
        policy = ScenePolicy(loopback=is_loopback(config.host), login_required=bool(config.auth))
        proxy = SceneProxy(self.sessions.upstream, policy, liveness=self.sessions)
        app = fastapi.FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        proxy.mount(app)

        async def upload(request):  # a plain Starlette route: no parameters to inject
            return await receive_upload(request, inputs)

        # Before Gradio's mount, so this route answers Gradio's upload address.
        app.add_route(UPLOAD_ROUTE, upload, methods=["POST"])
        app = gr.mount_gradio_app(
            app, self.demo, path="/", auth=list(config.auth) or None,
            css=PANEL_CSS, show_error=True, ssr_mode=False,
            server_name=config.host, server_port=config.port,
        )  # fmt: skip
        logins = LoginLookup(app) if config.auth else None
        if logins is not None:
            proxy.use_logins(logins)
        rules = GuardRules(
            hosts=allowed_host_names(config.host, config.allowed_hosts),
            inputs=inputs,
            logins=logins,
            limiter=LoginLimiter(clock=self.clock),
            tokens=LoginTokens(lifetime=config.login_hours * 3600.0, clock=self.clock),
            pages=self.sessions,
        )
        return RequestGuard(app, rules)

    def _protected_runs(self) -> set[str]:
        """The runs pruning must keep: the start-up run (every new tab opens on it) and the
        runs open sessions show."""
        shown = self.sessions.shown_runs() if self.sessions is not None else set()
        return shown | ({self._startup_run} if self._startup_run else set())

    def _show_result_at_start(self, result: str) -> None:

        assert self.sessions is not None
        Reconstruction.load(result)  # one clear error now rather than in every session
        self.sessions.set_initial(lambda controller: controller.open_result(result))

    def _run_clip_at_start(self, clip: str) -> None:

        def log_progress(fraction: float, message: str) -> None:
            logger.debug("start clip: %3.0f%% %s", 100 * fraction, message)

        try:
            if self.backend is None or self.sessions is None:
                raise Page4DError("no model is loaded")
            checkpoint = self.backend.checkpoint_names()[0]
            options = RunOptions(
                checkpoint=checkpoint,
                device=self.config.device,
                precision=self.config.precision,
                mask_strength=self.backend.default_mask_strength(checkpoint),
            )
            store = self._store or RunStore(self.config.runs_dir)
            _recon, record = run_and_save(
                self.backend, self._model_lock, store, clip, options, log_progress,
                owner=STARTUP_OWNER,
            )  # fmt: skip
        except Page4DError as error:
            logger.error("could not run %s: %s", clip, " ".join(str(error).split()))
            return
        self._startup_run = record.run_id
        self.sessions.set_initial(lambda controller: controller.open_run(record.run_id))
        logger.info("showing %s in every new session", record.title)


# ------------------------------------------------------------------------------ command line


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
