"""The panel's "Tracks" tab: what the result holds of point tracks, and seeding them by clicking.

Layout (`build_tab`, inside the panel's result tabs), the Model section's "Track points" box
(`track_points_box`) and thin callbacks (`TrackCallbacks`), each calling one `TrackSeeder`
action. A click on the tab's picture always adds a track; clicks in the 3-D scene add one only
while "Clicks in the 3-D scene add tracks" is ticked (otherwise they probe, as before). The
scene's own Tracks folder (Viser sidebar) chooses what is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import ModelBackend
from page4d_viewer.settings import DEFAULT_TRACK_POINTS
from page4d_viewer.viewer.callbacks import PanelWidgets, PerSession, Updates
from page4d_viewer.viewer.scene.tracks import MAX_TRACKS_SHOWN
from page4d_viewer.viewer.track_seeding import TrackSeeder

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import ViewerController

SEED_POLL_SECONDS = 1.0
NO_TRACK_HEAD = "this checkpoint has no track head, so it cannot track points"
CLICK_TO_TRACK = "Click a pixel to track it from this frame"


@dataclass
class TrackWidgets:
    """The tab's components."""

    note: gr.Markdown
    seeding: gr.Checkbox
    picture: gr.Image
    status: gr.Markdown
    seen: gr.State
    timer: gr.Timer


def build_tab() -> TrackWidgets:
    """The "Tracks" tab (call inside a `gr.Tabs()`)."""
    with gr.Tab("Tracks", id="tracks", elem_id="tracks-tab"):
        note = gr.Markdown("", elem_id="tracks-note")
        seeding = gr.Checkbox(
            False, label="Clicks in the 3-D scene add tracks (off: they probe points)",
            elem_id="seed-tracks",
        )  # fmt: skip
        picture = gr.Image(
            label=CLICK_TO_TRACK, interactive=False,
            elem_id="tracks-picture", format="png",
        )  # fmt: skip
        status = gr.Markdown("", elem_id="tracks-status")
        # Inside the tab: anything placed directly in the parent gr.Tabs becomes a tab itself.
        seen, timer = gr.State(0), gr.Timer(SEED_POLL_SECONDS)
    return TrackWidgets(note, seeding, picture, status, seen, timer)


def picture_label(seeder: TrackSeeder) -> str:
    """The picture's label: an invitation to click only when a click can add a track."""
    if seeder.model_problem() is None:
        return CLICK_TO_TRACK
    return "The frame and its tracks (this model cannot add tracks: see above)"


def track_points_box(backend: ModelBackend | None, checkpoint: str | None) -> gr.Number:
    """The Model section's "Track points" box, set for a checkpoint (call inside a layout)."""
    return gr.Number(
        **track_points_state(backend, checkpoint), label="Track points (0 = none)",
        precision=0, minimum=0, maximum=MAX_TRACKS_SHOWN, elem_id="track-points",
    )  # fmt: skip


def track_points_state(backend: ModelBackend | None, checkpoint: str | None) -> dict[str, Any]:
    """The box's value, whether it can be edited, and why not: DEFAULT_TRACK_POINTS with a
    track head, 0 and disabled without one."""
    available = False
    if backend is not None and checkpoint:
        try:
            available = bool(backend.track_available(checkpoint))
        except Page4DError:
            available = False
    info = "points followed through the clip" if available else NO_TRACK_HEAD
    value = DEFAULT_TRACK_POINTS if available else 0
    return {"value": value, "interactive": available, "info": info}


class TrackCallbacks:
    """One method per event of the tab; each calls one `TrackSeeder` action.

    Args:
        controller_of: the page's session's controller.
        widgets: the tab's components.
        panel: the panel's components (frame, result version, Model section).
        backend: the app's model side (None: view only), for the "Track points" box.
    """

    def __init__(
        self,
        controller_of: Callable[[gr.Request | None], ViewerController],
        widgets: TrackWidgets,
        panel: PanelWidgets,
        backend: ModelBackend | None = None,
    ) -> None:
        self.controller_of = controller_of
        self.backend = backend
        self.t = widgets
        self.w = panel
        # One seeder per session (its scene's clicks), gone with its controller.
        self._seeders = PerSession(controller_of, TrackSeeder)

    def seeder_of(self, request: gr.Request | None) -> TrackSeeder:
        """The seeder of the page's session (Page4DError when it is not open)."""
        return self._seeders.of(request)

    def on_view(self, frame: float, request: gr.Request | None = None) -> Updates:
        """A new result, frame or page load: the note, the picture, and the seeding toggle as
        the session's scene has it (a reloaded page starts unticked)."""
        try:
            seeder = self.seeder_of(request)
        except Page4DError:
            return {self.t.seen: gr.skip()}
        return {
            **self._model_said(seeder),
            self.t.picture: gr.update(
                value=seeder.picture(int(frame or 0)), label=picture_label(seeder)
            ),
        }

    def _model_said(self, seeder: TrackSeeder) -> Updates:
        """The note and the seeding toggle for the chosen model: the toggle is disabled when
        the model cannot track, and the note says why before anyone clicks."""
        can_track = seeder.model_problem() is None
        return {
            self.t.note: seeder.note(),
            self.t.seeding: gr.update(value=seeder.seeding, interactive=can_track),
        }

    def on_model(
        self, checkpoint: str | None, device: str | None, precision: str | None,
        request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """The Model section changed: clicks track with the new choice, and the tab says
        whether that choice can track at all."""
        try:
            seeder = self.seeder_of(request)
        except Page4DError:  # a page without a session: nothing to set
            return {self.t.seen: gr.skip()}
        seeder.set_model(checkpoint, device, precision)
        return {**self._model_said(seeder), self.t.picture: gr.update(label=picture_label(seeder))}

    def on_checkpoint(self, checkpoint: str | None) -> Any:
        """The "Track points" box for a newly chosen checkpoint."""
        return gr.update(**track_points_state(self.backend, checkpoint))

    def on_seeding(
        self, on: bool, checkpoint: str | None, device: str | None, precision: str | None,
        request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """The seeding toggle: what clicks in the scene do from now on."""
        try:
            seeder = self.seeder_of(request)
            seeder.set_model(checkpoint, device, precision)
            message = seeder.set_seeding(bool(on))
        except Page4DError as error:
            return {self.t.status: f"**Error:** {' '.join(str(error).split())}"}
        return {self.t.status: message, self.t.seen: seeder.version}

    def on_picture_click(
        self, frame: float, checkpoint: str | None, device: str | None, precision: str | None,
        event: gr.SelectData, request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """A click on the tab's picture: track that pixel of the current frame."""
        try:
            seeder = self.seeder_of(request)
            seeder.set_model(checkpoint, device, precision)
            x, y = event.index
            message = seeder.image_click(int(frame or 0), float(x), float(y))
        except (Page4DError, TypeError, ValueError) as error:
            return {self.t.status: f"**Error:** {' '.join(str(error).split())}"}
        return {
            self.t.status: message,
            self.t.seen: seeder.version,
            self.t.note: seeder.note(),
            self.t.picture: seeder.picture(int(frame or 0)),
        }

    def on_tick(self, seen: int, frame: float, request: gr.Request | None = None) -> Updates:
        """Bring the outcome of a click in the scene to the page."""
        try:
            seeder = self.seeder_of(request)
        except Page4DError:
            return {self.t.seen: gr.skip()}
        if seeder.version == seen:
            return {self.t.seen: gr.skip()}
        return {
            self.t.seen: seeder.version,
            self.t.status: seeder.message,
            self.t.note: seeder.note(),
            self.t.picture: seeder.picture(int(frame or 0)),
        }


def wire(callbacks: TrackCallbacks, t: TrackWidgets, w: PanelWidgets) -> None:
    """Connect the tab's events, the panel's frame and result, and the Model section."""
    light: dict[str, Any] = {"concurrency_limit": None, "show_progress": "hidden"}
    model = [w.run_inputs[name] for name in ("checkpoint", "device", "precision")]
    viewed = [t.note, t.picture, t.seeding, t.seen]
    w.version.change(callbacks.on_view, w.frame, viewed, **light)
    w.frame.change(callbacks.on_view, w.frame, viewed, trigger_mode="always_last", **light)
    for box in model:
        box.change(callbacks.on_model, model, [t.seen, t.note, t.seeding, t.picture], **light)
    checkpoint = w.run_inputs["checkpoint"]
    checkpoint.change(callbacks.on_checkpoint, checkpoint, w.run_inputs["tracks"], **light)
    # .input, not .change: `on_view` writes the toggle too, and that is no user's choice.
    t.seeding.input(callbacks.on_seeding, [t.seeding, *model], [t.status, t.seen], **light)
    # Tracking runs the model: queued with the runs, one at a time.
    t.picture.select(
        callbacks.on_picture_click, [w.frame, *model], [t.status, t.seen, t.note, t.picture],
        concurrency_id="model", concurrency_limit=1, show_progress_on=[t.status],
    )  # fmt: skip
    t.timer.tick(callbacks.on_tick, [t.seen, w.frame], [*viewed, t.status], **light)
