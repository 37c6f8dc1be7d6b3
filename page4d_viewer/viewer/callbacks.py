"""The panel's own event handlers: load and unload, run, cancel, open, the frame slider and
the poll that follows the scene.

`PanelCallbacks` finds the page's session (`PanelSession`: its own scene, result and tab
helpers, kept by `server/sessions.py`), calls one action of it and turns the outcome, or its
Page4DError, into widget updates. The tabs under the scene (`viewer/tabs/`) handle their own
events; the result on screen is filled here from every tab's `show`, so a new result reaches
every tab at once. Callbacks return dicts keyed by component, so a failure updates the status
line only: the result on screen stays. `panel.py` lays out the page and wires the events to
these methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import ModelBackend, RunCancelled, RunOptions
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.viewer.controller import SceneSettings, Shown, ViewerController
from page4d_viewer.viewer.split_panel import split_labels_html
from page4d_viewer.viewer.status import error_markdown, run_choices, status_markdown

if TYPE_CHECKING:
    from page4d_viewer.viewer.comparison import Comparer
    from page4d_viewer.viewer.inspector import Inspector
    from page4d_viewer.viewer.paths import DataRoots
    from page4d_viewer.viewer.runs import RunRecord
    from page4d_viewer.viewer.scene import SceneView
    from page4d_viewer.viewer.tabs.base import PanelTab
    from page4d_viewer.viewer.track_seeding import TrackSeeder

logger = logging.getLogger(__name__)


Updates = dict[Component, Any]
"""Widget updates keyed by component; each value is whatever that component takes."""


class PanelSession(Protocol):
    """What the panel uses of a page's session (`server.sessions.Session` is one): its result
    and scene, and the helpers of the tabs, each made on first use and closed with it."""

    @property
    def session_id(self) -> str: ...

    @property
    def controller(self) -> ViewerController: ...

    @property
    def scene(self) -> SceneView: ...

    @property
    def comparer(self) -> Comparer: ...

    @property
    def inspector(self) -> Inspector: ...

    @property
    def track_seeder(self) -> TrackSeeder: ...

    @property
    def split_on(self) -> bool:
        """Whether the split view (masked | unmasked) is on."""
        ...

    def set_split(self, on: bool) -> None:
        """Turn the split view on or off (Page4DError when the session cannot)."""
        ...


class PanelSessions(Protocol):
    """What the panel uses of the open sessions (`server.sessions.SessionRegistry` is one,
    `SessionRegistry.single(controller)` the one-controller form tests use).

    The panel sits below the server (`tests/test_layering.py`), so it names this contract
    rather than the server's class.
    """

    @property
    def backend(self) -> ModelBackend | None: ...

    @property
    def data_roots(self) -> DataRoots: ...

    @property
    def samples(self) -> Mapping[str, Path]: ...

    @property
    def mask_opacity(self) -> float: ...

    @property
    def mask_threshold(self) -> float: ...

    @property
    def mask_overlay(self) -> str: ...

    @property
    def embeds_scenes(self) -> bool: ...

    def attach(
        self,
        session_hash: str,
        tab_id: str | None,
        user: str | None = None,
        client: str | None = None,
    ) -> PanelSession:
        """The session of a page's tab, opened or re-attached (Page4DError when refused)."""
        ...

    def detach(self, session_hash: str) -> None:
        """A page went."""
        ...

    def keep_alive(
        self, session_hash: str, tab_id: str | None, user: str | None = None
    ) -> PanelSession:
        """A page polls: its session is live, re-attached if the page was detached while it
        stayed open (Page4DError when the tab's session is closed)."""
        ...

    def session_for(self, session_hash: str) -> PanelSession:
        """The session a page is attached to (Page4DError when it has none)."""
        ...

    def key_of(self, session_hash: str) -> str:
        """The tab id a page is attached to ("" if none)."""
        ...

    def adopt_initial(self, controller: ViewerController) -> None:
        """Show the start-up result in a session with nothing on screen yet."""
        ...

    def recent_runs(self) -> list[RunRecord]:
        """The runs listed before a page loads."""
        ...


def options_from_widgets(values: dict[str, Any]) -> RunOptions:
    """RunOptions from the panel's widget values, keyed by RunOptions field name.

    The number boxes use 0 for "not set" (fps, end, max frames, track points) and the
    dropdowns "auto" for "let the predictor choose".

    Raises:
        Page4DError: a value the widgets should not have allowed (e.g. a negative stride).
    """
    for name in ("stride", "start", "end", "max_frames"):
        value = values.get(name)
        if value is None or value < 0 or float(value) != int(value):
            label = name.replace("_", " ")
            raise Page4DError(f"{label} must be a whole number >= 0, got {value}")
    fps = values.get("fps")
    if fps is None or fps < 0:
        raise Page4DError(f"fps must be >= 0 (0 keeps the clip's rate), got {fps}")
    strength = values.get("mask_strength")
    if strength is None or strength < 0:
        raise Page4DError(f"mask strength must be >= 0, got {strength}")
    tracks = values.get("tracks") or 0  # a disabled box (no track head) may send None
    if tracks < 0 or float(tracks) != int(tracks):
        raise Page4DError(f"track points must be a whole number >= 0, got {tracks}")
    return RunOptions(
        checkpoint=str(values.get("checkpoint") or ""),
        device=str(values.get("device") or "auto"),
        precision=str(values.get("precision") or "auto"),
        mask_strength=float(strength),
        mode=str(values.get("mode") or "crop"),
        stride=max(1, int(values["stride"])),
        fps=float(fps) if fps else None,
        start=int(values["start"]) or None,
        end=int(values["end"]) or None,
        max_frames=int(values["max_frames"]) or None,
        attention=bool(values.get("attention", False)),
        tracks=int(tracks),
    )


@dataclass
class ModelInputs:
    """The Model section's inputs (their values reach `RunOptions` by these names)."""

    checkpoint: gr.Dropdown
    device: gr.Dropdown
    precision: gr.Dropdown
    mask_strength: gr.Slider
    attention: gr.Checkbox
    tracks: gr.Number  # how many points to track (0: none)

    def by_name(self) -> dict[str, Component]:
        """The inputs keyed by `RunOptions` field name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class RunAndOpenWidgets:
    """The panel's Run and Cancel buttons, its status line and its "Open a result" section
    (built together by the panel, then part of `PanelWidgets`)."""

    run_button: gr.Button
    cancel_button: gr.Button
    status: gr.Markdown
    result_upload: gr.File
    open_file_button: gr.Button
    runs: gr.Dropdown
    runs_search: gr.Textbox
    refresh_runs_button: gr.Button
    open_run_button: gr.Button


@dataclass
class PanelWidgets(RunAndOpenWidgets):
    """The page's own components, around the tabs: the clip source, Run and Cancel, the
    status line, "Open a result", the scene and its frame slider, and the page's state.

    Attributes:
        source_kind: Which source tab is open ("example", "upload" or "path").
        version: The version of the result this page shows (-1: none yet).
        synced: What this page last saw of the scene (`SceneSettings`, or None).
        tab_id: The id of the tab's session this page is attached to (hidden; `TAB_ID_JS`
            reads it from the tab's storage at each load, `on_load` writes it here).
        run_inputs: The Source, Sampling and Model inputs by `RunOptions` field name.
        model: The Model section's inputs (also in `run_inputs`), for the tabs that follow
            the chosen checkpoint.
        tab_views: Every tab's widgets that show the result on screen (`PanelTab.view`).
    """

    source_kind: gr.State
    version: gr.State
    synced: gr.State
    tab_id: gr.Textbox
    example_tab: gr.Tab
    upload_tab: gr.Tab
    path_tab: gr.Tab
    run_inputs: dict[str, Component]
    model: ModelInputs
    frame: gr.Slider
    scene: gr.HTML
    split_toggle: gr.Checkbox
    split_labels: gr.HTML
    timer: gr.Timer
    tab_views: list[Component] = field(default_factory=list)

    @property
    def view(self) -> list[Component]:
        """Everything that shows the current result."""
        return [self.status, self.frame, *self.tab_views, self.version, self.synced]


class PanelCallbacks:
    """One method per event of the page's own widgets; each calls one action of the page's
    session.

    Args:
        sessions: The open sessions (each page gets its own controller and scene), or
            `SessionRegistry.single(controller)` for one controller (tests, embedding).
        widgets: The page's own components.
        tabs: The tabs under the scene; each fills its part of the result view.
        scene_html: The scene box for a page's session id and whether the split view is on
            (used when the registry gives each session a scene of its own to embed).
    """

    def __init__(
        self,
        sessions: PanelSessions,
        widgets: PanelWidgets,
        tabs: Sequence[PanelTab] = (),
        scene_html: Callable[[str, bool], str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.widgets = widgets
        self.tabs = tabs
        self.scene_html = scene_html

    def session_of(self, request: gr.Request | None) -> PanelSession:
        """The session of the page that sent `request`.

        Raises:
            SessionClosedError: the page's session is not open.
        """
        return self.sessions.session_for(session_hash_of(request))

    def _guarded(self, event: Callable[[PanelSession], Updates]) -> Callable[..., Updates]:
        """An event handler that gets the page's session, or says why there is none."""

        def handler(request: gr.Request | None = None) -> Updates:
            try:
                session = self.session_of(request)
            except Page4DError as error:
                return self.status_error(error)
            return event(session)

        return handler

    # ------------------------------------------------------------------ result on screen

    def full_view(self, session: PanelSession, shown: Shown | None) -> Updates:
        """Every view widget, filled from the result on screen."""
        widgets, controller = self.widgets, session.controller
        settings = controller.scene_settings()
        updates: Updates = {
            widgets.status: status_markdown(None),
            widgets.version: controller.version,
            widgets.synced: settings,
        }
        if shown is not None:
            notes = "".join(f"\n\n{note}" for note in shown.notes)
            comparer = session.comparer
            if comparer.current is not None:
                notes += f"\n\n{comparer.describe()}"
            frames = shown.recon.num_frames
            updates |= {
                widgets.status: status_markdown(shown) + notes,
                widgets.frame: gr.update(maximum=max(1, frames - 1), value=settings.frame),
                widgets.version: shown.version,
            }
        for tab in self.tabs:
            updates |= tab.show(session, shown, settings)
        if session.split_on:
            updates[widgets.split_labels] = split_labels_update(session)
        return updates

    def followed(
        self, session: PanelSession, settings: SceneSettings, synced: SceneSettings | None
    ) -> Updates:
        """What every tab changes when the page's view of the scene moves from `synced` to
        `settings`, with `synced` itself."""
        updates: Updates = {self.widgets.synced: settings}
        for tab in self.tabs:
            updates |= tab.follow(session, settings, synced)
        return updates

    def status_error(self, error: Page4DError) -> Updates:
        """The status line says why an event could not reach the page's session."""
        return {self.widgets.status: error_markdown(str(error), None)}

    def failed(self, session: PanelSession, message: str) -> Updates:
        """Only the status line changes: the previous result stays on screen."""
        return {self.widgets.status: error_markdown(message, session.controller.current)}

    def cancelled(self, session: PanelSession, message: str) -> Updates:
        """The status line after Cancel; the result on screen stays."""
        current = session.controller.current
        return {self.widgets.status: error_markdown(message, current, "Cancelled")}

    def show_or_fail(self, session: PanelSession, action: Callable[[], Shown]) -> Updates:
        """Run an action that shows a result; any failure becomes a status message."""
        try:
            return self.full_view(session, action())
        except RunCancelled:
            return self.cancelled(session, "the run was cancelled")
        except Page4DError as error:
            return self.failed(session, str(error))
        except Exception as error:  # the app stays up whatever goes wrong
            logger.exception("unexpected error in the panel")
            return self.failed(session, f"unexpected {type(error).__name__}: {error}")

    def unchanged(self) -> Updates:
        """No update at all, for an event that outputs the page's `version` (Gradio reads an
        empty dict as a missing value, so skip one; a key that is not among an event's
        outputs fails the event)."""
        return {self.widgets.version: gr.skip()}

    def runs_update(self, query: str | None = None, request: gr.Request | None = None) -> Any:
        """The recent-runs drop-down of the page's session (the runs matching every word of
        `query`, when given), newest selected."""
        try:
            records = self.session_of(request).controller.recent_runs(query or None)
        except Page4DError:
            records = []
        choices = run_choices(records)
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # ------------------------------------------------------------------ events

    def on_load(self, tab_id: str | None, request: gr.Request) -> Updates:
        """Attach the page to its tab's session (its own scene) and show what it holds.

        Args:
            tab_id: The id the browser tab keeps across reloads (`panel.TAB_ID_JS`); a reload
                finds the same result, sliders and runs. Invalid or missing: a new session.
        """
        widgets = self.widgets
        try:
            session = self.sessions.attach(
                session_hash_of(request),
                tab_id,
                getattr(request, "username", None),
                client=client_of(request),
            )
        except Page4DError as error:
            message = " ".join(str(error).split())
            return {
                widgets.status: error_markdown(message, None),
                widgets.scene: f'<div id="scene-frame"><p>{message}</p></div>',
            }
        shown = session.controller.current
        updates = {
            **self.full_view(session, shown),
            widgets.runs: self.runs_update(request=request),
            widgets.tab_id: session.session_id,
        }
        if self.sessions.embeds_scenes and self.scene_html is not None:
            updates[widgets.scene] = self.scene_html(session.session_id, session.split_on)
            updates[widgets.split_toggle] = session.split_on
        # A refreshed page shows the shown run's strength, not the slider's build default.
        if shown is not None and shown.recon.has_mask:
            updates[widgets.model.mask_strength] = shown.recon.metadata.mask_strength
        return updates

    def on_unload(self, request: gr.Request) -> None:
        """The page went: detach it; its tab's session closes unless the tab comes back."""
        self.sessions.detach(session_hash_of(request))

    def keep_page(self, tab_id: str | None, request: gr.Request | None) -> None:
        """The page polls, so it is still open: keep its session live, and re-attach the
        page if Gradio detached it when its heartbeat dropped (`keep_alive`). A page whose
        session closed is left as it is: its next action says to reload."""
        user = getattr(request, "username", None)
        with contextlib.suppress(Page4DError):
            self.sessions.keep_alive(session_hash_of(request), tab_id, user)

    def job_key(self, request: gr.Request | None) -> str:
        """Whose run Cancel stops: the page's tab, so Cancel works after a reload too."""
        session_hash = session_hash_of(request)
        return self.sessions.key_of(session_hash) or session_hash

    def on_run(
        self,
        values: dict[Component, Any],
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio reads this default)
    ) -> Updates:
        widgets = self.widgets
        try:
            session = self.session_of(request)
        except Page4DError as error:
            return self.status_error(error)
        controller = session.controller
        named = {name: values[widget] for name, widget in widgets.run_inputs.items()}

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        def action() -> Shown:
            source = controller.resolve_source(
                values[widgets.source_kind], named["example"], named["uploads"],
                named["server_path"],
            )  # fmt: skip
            options = options_from_widgets(named)
            return controller.run(source, options, report, self.job_key(request))

        shown = self.show_or_fail(session, action)
        return {**shown, widgets.runs: self.runs_update(request=request)}

    def on_cancel(self, request: gr.Request) -> Updates:
        def cancel(session: PanelSession) -> Updates:
            # The run's own update may land before or after this one: both say "Cancelled".
            running = session.controller.cancel(self.job_key(request))
            return self.cancelled(session, "stopping the run" if running else "nothing was running")

        return self._guarded(cancel)(request)

    def on_open_file(self, path: str | None, request: gr.Request) -> Updates:
        def open_file(session: PanelSession) -> Updates:
            if not path:
                return self.failed(session, "choose a result file (.npz) first")
            chosen = path
            return self.show_or_fail(session, lambda: session.controller.open_result(chosen))

        return self._guarded(open_file)(request)

    def on_open_run(self, run_id: str | None, request: gr.Request) -> Updates:
        def open_run(session: PanelSession) -> Updates:
            if not run_id:
                return self.failed(session, "pick a recent run first")
            chosen = run_id
            return self.show_or_fail(session, lambda: session.controller.open_run(chosen))

        return self._guarded(open_run)(request)

    def on_poll(self, values: dict[Component, Any], request: gr.Request | None) -> Updates:
        """The page's part of the poll (`Panel.poll`): `on_tick` with its inputs."""
        return self.on_tick(values[self.widgets.version], values[self.widgets.synced], request)

    def on_tick(
        self, known_version: int, synced: SceneSettings | None, request: gr.Request | None = None
    ) -> Updates:
        """Follow the scene: a new result, or its timeline or overlay moved in Viser.

        Compares the scene with what this page last saw of it (`synced`), not with the
        panel's sliders: a slider the user just moved must not be pulled back before its
        own event reaches the scene.
        """
        try:
            session = self.session_of(request)
        except Page4DError:
            return self.unchanged()
        controller = session.controller
        if controller.current is None:
            self.sessions.adopt_initial(controller)  # the start-up run may have finished
        shown = controller.current
        if shown is None:
            return self.unchanged()
        if shown.version != known_version or synced is None:
            return self.full_view(session, shown)
        settings = controller.scene_settings()
        if settings == synced:
            return self.unchanged()
        updates = self.followed(session, settings, synced)
        # While the scene plays the page moves the slider itself (`presenter.FOLLOW_JS`): a
        # frame sent now would reach it a round trip late and pull it back.
        if settings.frame != synced.frame and not controller.scene.state().playing:
            updates[self.widgets.frame] = settings.frame
        return updates

    def on_frame(
        self, frame: float, synced: SceneSettings | None, request: gr.Request | None = None
    ) -> Updates:
        """The frame slider moved: the scene's timeline and the tabs follow."""

        def move(session: PanelSession) -> Updates:
            applied = session.controller.set_frame(int(frame or 0))
            return self.followed(session, synced_after(session, synced, frame=applied), synced)

        return self._guarded(move)(request)

    def on_split(self, on: bool, request: gr.Request | None = None) -> Updates:
        """The split view toggled: the scene box shows one scene or two, with their labels."""

        def split(session: PanelSession) -> Updates:
            widgets = self.widgets
            try:
                session.set_split(bool(on))
            except Page4DError as error:
                return {**self.failed(session, str(error)), widgets.split_toggle: False}
            updates: Updates = {widgets.split_labels: split_labels_update(session)}
            if self.sessions.embeds_scenes and self.scene_html is not None:
                updates[widgets.scene] = self.scene_html(session.session_id, session.split_on)
            return updates

        return self._guarded(split)(request)

    def on_checkpoint(self, name: str | None) -> Any:
        """The mask strength slider, set to a newly chosen checkpoint's default."""
        backend = self.sessions.backend
        if backend is None or not name:
            return gr.skip()
        return default_strength(backend, name)


def synced_after(
    session: PanelSession, synced: SceneSettings | None, **set_by_page: Any
) -> SceneSettings:
    """What the page shows of the scene after it set some values itself.

    The rest comes from the page's previous view, not from the scene: the Viser timeline
    may have moved meanwhile, and recording that move as seen would stop `on_tick` from
    ever bringing it to the panel.
    """
    base = synced if synced is not None else session.controller.scene_settings()
    return dataclasses.replace(base, **set_by_page)


def split_labels_update(session: PanelSession) -> Any:
    """The split view's labels for the result on screen, shown while the split view is on."""
    if not session.split_on:
        return gr.update(value="", visible=False)
    shown = session.controller.current
    return gr.update(value=split_labels_html(None if shown is None else shown.recon), visible=True)


def default_strength(backend: ModelBackend | None, checkpoint: str) -> float:
    """The mask strength a checkpoint was trained with (0 without a model)."""
    if backend is None:
        return 0.0
    try:
        return float(backend.default_mask_strength(checkpoint))
    except Page4DError as error:
        logger.warning("cannot read the default mask strength of %s: %s", checkpoint, error)
        return RELEASED_MASK_STRENGTH


def session_hash_of(request: gr.Request | None) -> str:
    """Gradio's session hash of the page that sent `request` ("" without one)."""
    return str(getattr(request, "session_hash", "") or "")


def client_of(request: gr.Request | None) -> str:
    """The address a page's request came from (the per-client cap's key without logins)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")
