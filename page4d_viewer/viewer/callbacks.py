"""The panel's event handlers: one method per widget event, each one controller action.

`PanelCallbacks` finds the page's session (its own scene and result, `sessions.py`), calls one
action of that session's `ViewerController` and turns its outcome, or its Page4DError, into
widget updates. Callbacks return dicts keyed by component, so a failure
updates the status line only: the result on screen stays. `panel.py` lays out the page and
wires the events to these methods.
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import ModelBackend, RunCancelled, RunOptions
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.comparison import Comparer
from page4d_viewer.viewer.controller import SceneSettings, Shown, ViewerController
from page4d_viewer.viewer.plots import FrameImages
from page4d_viewer.viewer.status import error_markdown, run_choices, status_markdown

if TYPE_CHECKING:
    from page4d_viewer.viewer.server.sessions import SessionRegistry

logger = logging.getLogger(__name__)


Helper = TypeVar("Helper")


class PerSession(Generic[Helper]):
    """One helper per session (an Inspector, a TrackSeeder), made on first use from its
    controller and gone with it (weakly keyed), for the tabs whose state is per session.

    Args:
        controller_of: the page's session's controller.
        make: builds the helper of a controller.
    """

    def __init__(
        self,
        controller_of: Callable[[gr.Request | None], ViewerController],
        make: Callable[[ViewerController], Helper],
    ) -> None:
        self._controller_of = controller_of
        self._make = make
        self._helpers: weakref.WeakKeyDictionary[ViewerController, Helper] = (
            weakref.WeakKeyDictionary()
        )

    def of(self, request: gr.Request | None) -> Helper:
        """The helper of the page's session.

        Raises:
            Page4DError: the page's session is not open.
        """
        return self.of_controller(self._controller_of(request))

    def of_controller(self, controller: ViewerController) -> Helper:
        """The helper of a session's controller."""
        if controller not in self._helpers:
            self._helpers[controller] = self._make(controller)
        return self._helpers[controller]


Updates = dict[gr.components.Component, Any]
"""Widget updates keyed by component; each value is whatever that component takes."""


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
class PanelWidgets:
    """The components the callbacks read and write."""

    source_kind: gr.State
    version: gr.State
    synced: gr.State
    example_tab: gr.Tab
    upload_tab: gr.Tab
    path_tab: gr.Tab
    run_inputs: dict[str, gr.components.Component]
    run_button: gr.Button
    cancel_button: gr.Button
    status: gr.Markdown
    result_upload: gr.File
    open_file_button: gr.Button
    runs: gr.Dropdown
    runs_search: gr.Textbox
    refresh_runs_button: gr.Button
    open_run_button: gr.Button
    frame: gr.Slider
    opacity: gr.Slider
    threshold: gr.Slider
    overlay_image: gr.Image
    depth_image: gr.Image
    confidence_image: gr.Image
    ground_truth_depth_image: gr.Image
    ground_truth_mask_image: gr.Image
    trajectory_plot: gr.Plot
    differences_plot: gr.Plot
    disagreement_image: gr.Image
    disagreement_axis: gr.State
    metrics_table: gr.Dataframe
    prepare_button: gr.Button
    downloads: gr.File
    timer: gr.Timer
    scene: gr.HTML | None = None
    mask_overlay: gr.Radio | None = None  # "continuous" or "threshold"

    @property
    def images(self) -> list[gr.components.Component]:
        """The frame pictures, in `plots.FrameImages` field order."""
        return [
            self.overlay_image,
            self.depth_image,
            self.confidence_image,
            self.ground_truth_depth_image,
            self.ground_truth_mask_image,
        ]

    @property
    def view(self) -> list[gr.components.Component]:
        """Everything that shows the current result."""
        return [
            self.status,
            self.frame,
            self.opacity,
            self.threshold,
            *self.images,
            self.trajectory_plot,
            self.differences_plot,
            self.disagreement_image,
            self.disagreement_axis,
            self.metrics_table,
            self.downloads,
            self.version,
            self.synced,
            *([] if self.mask_overlay is None else [self.mask_overlay]),
        ]


class PanelCallbacks:
    """One method per widget event; each calls one action of the page's session's controller.

    Args:
        controller: The controller of every page when there is no registry (tests, embedding).
        widgets: The panel's components.
        registry: The open sessions: each page gets its own controller and scene.
        scene_html: The scene box for a page's scene address (registry only).
    """

    def __init__(
        self,
        controller: ViewerController | None,
        widgets: PanelWidgets,
        registry: SessionRegistry | None = None,
        scene_html: Callable[[str], str] | None = None,
    ) -> None:
        self.controller = controller
        self.w = widgets
        self.registry = registry
        self.scene_html = scene_html
        # One comparison ("run B") per session, made on first use, gone with its controller.
        self._comparers = PerSession(
            self.controller_of, lambda session: Comparer(session, session.scene)
        )

    def comparer_of(self, controller: ViewerController) -> Comparer:
        """The side-by-side comparison of a session's scene."""
        return self._comparers.of_controller(controller)

    def controller_of(self, request: gr.Request | None) -> ViewerController:
        """The controller of the page's session.

        Raises:
            SessionClosedError: the page's session is not open.
        """
        if self.registry is not None:
            return self.registry.controller_for(session_of(request))
        if self.controller is None:
            raise Page4DError("the panel has no controller")
        return self.controller

    def _guarded(self, event: Callable[[ViewerController], Updates]) -> Callable[..., Updates]:
        """An event handler that gets the page's controller, or says why there is none."""

        def handler(*args: Any, request: gr.Request | None = None) -> Updates:
            try:
                controller = self.controller_of(request)
            except Page4DError as error:
                return {self.w.status: error_markdown(str(error), None)}
            return event(controller, *args)

        return handler

    # ------------------------------------------------------------------ result on screen

    def full_view(self, controller: ViewerController, shown: Shown | None) -> Updates:
        """Every view widget, filled from the result on screen."""
        w = self.w
        settings = controller.scene_settings()
        if shown is None:
            return {
                w.status: status_markdown(None),
                w.version: controller.version,
                w.synced: settings,
                w.opacity: settings.mask_opacity,
                w.threshold: settings.mask_threshold,
            }
        images = controller.frame_images(settings.frame)
        notes = "".join(f"\n\n{note}" for note in shown.notes)
        comparer = self.comparer_of(controller)
        if comparer.current is not None:
            notes += f"\n\n{comparer.describe()}"
        poses = comparer.pose_views(shown)
        record = shown.record
        curve = plots.figure_picture(
            plots.disagreement_figure(shown.recon, settings.frame), shown.recon.num_frames
        )
        return {
            w.disagreement_image: curve.image,
            w.disagreement_axis: curve.axis,
            w.status: status_markdown(shown) + notes,
            w.frame: gr.update(maximum=max(1, shown.recon.num_frames - 1), value=settings.frame),
            w.opacity: settings.mask_opacity,
            w.threshold: settings.mask_threshold,
            **self._overlay_choice(settings),
            **self.image_updates(images),
            w.trajectory_plot: poses.trajectory,
            w.differences_plot: poses.differences,
            w.metrics_table: poses.metrics,
            w.downloads: [str(record.result_path)] if record is not None else None,
            w.version: shown.version,
            w.synced: settings,
        }

    def _overlay_choice(self, settings: SceneSettings) -> Updates:
        """The "Draw the mask" choice as the scene has it (none on a panel without one)."""
        return {} if self.w.mask_overlay is None else {self.w.mask_overlay: settings.mask_overlay}

    def image_updates(self, images: FrameImages | None) -> Updates:
        """The frame pictures; the ground truth's are shown only when the result has them."""
        if images is None:
            return {}
        pictures = dict(zip(self.w.images, images.pictures(), strict=True))
        truth = (self.w.ground_truth_depth_image, self.w.ground_truth_mask_image)
        return {
            widget: gr.update(value=picture, visible=picture is not None)
            if widget in truth
            else picture
            for widget, picture in pictures.items()
        }

    def failed(self, controller: ViewerController, message: str) -> Updates:
        """Only the status line changes: the previous result stays on screen."""
        return {self.w.status: error_markdown(message, controller.current)}

    def cancelled(self, controller: ViewerController, message: str) -> Updates:
        """The status line after Cancel; the result on screen stays."""
        return {self.w.status: error_markdown(message, controller.current, "Cancelled")}

    def show_or_fail(self, controller: ViewerController, action: Callable[[], Shown]) -> Updates:
        """Run an action that shows a result; any failure becomes a status message."""
        try:
            return self.full_view(controller, action())
        except RunCancelled:
            return self.cancelled(controller, "the run was cancelled")
        except Page4DError as error:
            return self.failed(controller, str(error))
        except Exception as error:  # the app stays up whatever goes wrong
            logger.exception("unexpected error in the panel")
            return self.failed(controller, f"unexpected {type(error).__name__}: {error}")

    def unchanged(self) -> Updates:
        """No update at all (Gradio reads an empty dict as a missing value, so skip one)."""
        return {self.w.version: gr.skip()}

    def runs_update(
        self, query: str | None = None, request: gr.Request | None = None
    ) -> dict[str, Any]:
        """The recent-runs drop-down of the page's session (the runs matching every word of
        `query`, when given), newest selected."""
        try:
            records = self.controller_of(request).recent_runs(query or None)
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
        w = self.w
        scene: Updates = {}
        if self.registry is not None:
            try:
                session = self.registry.attach(
                    session_of(request),
                    tab_id,
                    getattr(request, "username", None),
                    client=client_of(request),
                )
            except Page4DError as error:
                message = " ".join(str(error).split())
                scene = {w.scene: f'<div id="scene-frame"><p>{message}</p></div>'}
                return {w.status: error_markdown(message, None), **scene}
            if w.scene is not None and self.scene_html is not None:
                scene = {w.scene: self.scene_html(session.session_id)}
        controller = self.controller_of(request)
        shown = controller.current
        updates = {
            **self.full_view(controller, shown),
            w.runs: self.runs_update(request=request),
            **scene,
        }
        # A refreshed page shows the shown run's strength, not the slider's build default.
        if shown is not None and shown.recon.has_mask:
            updates[w.run_inputs["mask_strength"]] = shown.recon.metadata.mask_strength
        return updates

    def on_unload(self, request: gr.Request) -> None:
        """The page went: detach it; its tab's session closes unless the tab comes back."""
        if self.registry is not None:
            self.registry.detach(session_of(request))

    def job_key(self, request: gr.Request | None) -> str:
        """Whose run Cancel stops: the page's tab, so Cancel works after a reload too."""
        session = session_of(request)
        if self.registry is not None:
            return self.registry.key_of(session) or session
        return session

    def on_run(
        self,
        values: Updates,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio reads this default)
    ) -> Updates:
        w = self.w
        try:
            controller = self.controller_of(request)
        except Page4DError as error:
            return {w.status: error_markdown(str(error), None)}
        named = {name: values[widget] for name, widget in w.run_inputs.items()}

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        def action() -> Shown:
            source = controller.resolve_source(
                values[w.source_kind], named["example"], named["uploads"], named["server_path"]
            )
            options = options_from_widgets(named)
            return controller.run(source, options, report, self.job_key(request))

        return {**self.show_or_fail(controller, action), w.runs: self.runs_update(request=request)}

    def on_cancel(self, request: gr.Request) -> Updates:
        def cancel(controller: ViewerController) -> Updates:
            # The run's own update may land before or after this one: both say "Cancelled".
            running = controller.cancel(self.job_key(request))
            return self.cancelled(
                controller, "stopping the run" if running else "nothing was running"
            )

        return self._guarded(cancel)(request=request)

    def on_open_file(self, path: str | None, request: gr.Request) -> Updates:
        def open_file(controller: ViewerController) -> Updates:
            if not path:
                return self.failed(controller, "choose a result file (.npz) first")
            return self.show_or_fail(controller, lambda: controller.open_result(path))

        return self._guarded(open_file)(request=request)

    def on_open_run(self, run_id: str | None, request: gr.Request) -> Updates:
        def open_run(controller: ViewerController) -> Updates:
            if not run_id:
                return self.failed(controller, "pick a recent run first")
            return self.show_or_fail(controller, lambda: controller.open_run(run_id))

        return self._guarded(open_run)(request=request)

    def on_tick(
        self, known_version: int, synced: SceneSettings | None, request: gr.Request = None
    ) -> Updates:
        """Follow the scene: a new result, or its timeline or overlay moved in Viser.

        Compares the scene with what this page last saw of it (`synced`), not with the
        panel's sliders: a slider the user just moved must not be pulled back before its
        own event reaches the scene.
        """
        w = self.w
        try:
            controller = self.controller_of(request)
        except Page4DError:
            return self.unchanged()
        if controller.current is None and self.registry is not None:
            self.registry.adopt_initial(controller)  # the start-up run may have finished
        shown = controller.current
        if shown is None:
            return self.unchanged()
        if shown.version != known_version or synced is None:
            return self.full_view(controller, shown)
        settings = controller.scene_settings()
        if settings == synced:
            return self.unchanged()
        updates: Updates = {w.synced: settings}
        if settings.mask_opacity != synced.mask_opacity:
            updates[w.opacity] = settings.mask_opacity
        if settings.mask_threshold != synced.mask_threshold:
            updates[w.threshold] = settings.mask_threshold
        if settings.mask_overlay != synced.mask_overlay and w.mask_overlay is not None:
            updates[w.mask_overlay] = settings.mask_overlay
        if settings.frame != synced.frame:
            updates[w.frame] = settings.frame
        updates.update(self.image_updates(controller.frame_images(settings.frame)))
        return updates

    def on_frame(
        self, frame: float, synced: SceneSettings | None, request: gr.Request = None
    ) -> Updates:
        def move(controller: ViewerController) -> Updates:
            applied = controller.set_frame(int(frame or 0))
            images = controller.frame_images(applied)
            if images is None:
                return self.unchanged()
            w = self.w
            return {
                **self.image_updates(images),
                w.synced: self._synced_after(controller, synced, frame=applied),
            }

        return self._guarded(move)(request=request)

    def on_disagreement_click(
        self,
        axis: plots.FrameAxis | None,
        synced: SceneSettings | None,
        event: gr.SelectData,
        request: gr.Request = None,
    ) -> Updates:
        """A click on the disagreement curve moves the timeline to the clicked frame."""

        def jump(controller: ViewerController) -> Updates:
            shown = controller.current
            if axis is None or shown is None or not isinstance(event.index, (list, tuple)):
                return self.unchanged()
            applied = controller.set_frame(axis.frame_at(float(event.index[0])))
            images = controller.frame_images(applied)
            curve = plots.figure_picture(
                plots.disagreement_figure(shown.recon, applied), shown.recon.num_frames
            )
            return {
                self.w.frame: applied,
                **self.image_updates(images),
                self.w.synced: self._synced_after(controller, synced, frame=applied),
                self.w.disagreement_image: curve.image,
            }

        return self._guarded(jump)(request=request)

    def on_mask(
        self,
        opacity: float,
        threshold: float,
        mask_overlay: str | None,
        frame: float,
        synced: SceneSettings | None,
        request: gr.Request = None,
    ) -> Updates:
        def overlay(controller: ViewerController) -> Updates:
            try:
                controller.set_mask_overlay(opacity, threshold, mask_overlay or None)
            except Page4DError as error:
                return self.failed(controller, str(error))
            images = controller.frame_images(int(frame or 0))
            if images is None:
                return self.unchanged()
            applied = controller.scene_settings()
            synced_now = self._synced_after(
                controller, synced,
                mask_opacity=applied.mask_opacity, mask_threshold=applied.mask_threshold,
                mask_overlay=applied.mask_overlay,
            )  # fmt: skip
            return {self.w.overlay_image: images.overlay, self.w.synced: synced_now}

        return self._guarded(overlay)(request=request)

    def _synced_after(
        self, controller: ViewerController, synced: SceneSettings | None, **set_by_page: float
    ) -> SceneSettings:
        """What the page shows of the scene after it set some values itself.

        The rest comes from the page's previous view, not from the scene: the Viser timeline
        may have moved meanwhile, and recording that move as seen would stop `on_tick` from
        ever bringing it to the panel.
        """
        base = synced if synced is not None else controller.scene_settings()
        return dataclasses.replace(base, **set_by_page)

    def on_checkpoint(self, name: str | None) -> float | dict[str, Any]:
        backend = self.registry.backend if self.registry is not None else None
        backend = backend or (self.controller.backend if self.controller is not None else None)
        if backend is None or not name:
            return gr.skip()
        return default_strength(backend, name)

    def on_prepare(self, request: gr.Request) -> list[str]:
        try:
            return [str(path) for path in self.controller_of(request).exports()]
        except Page4DError as error:
            raise gr.Error(" ".join(str(error).split())) from error


def default_strength(backend: ModelBackend | None, checkpoint: str) -> float:
    if backend is None:
        return 0.0
    try:
        return float(backend.default_mask_strength(checkpoint))
    except Page4DError as error:
        logger.warning("cannot read the default mask strength of %s: %s", checkpoint, error)
        return RELEASED_MASK_STRENGTH


def session_of(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", "") or "")


def client_of(request: gr.Request | None) -> str:
    """The address a page's request came from (the per-client cap's key without logins)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")
