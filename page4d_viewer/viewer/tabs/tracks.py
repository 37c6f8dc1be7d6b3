"""The panel's "Tracks" tab: what the result holds of point tracks, and seeding them by clicking.

`TracksTab` lays out the tab and holds thin callbacks, each calling one action of the
session's `TrackSeeder`; `track_points_box` is the Model section's "Track points" box. A click
on the tab's picture always adds a track; clicks in the 3-D scene add one only while "Clicks
in the 3-D scene add tracks" is ticked (otherwise they probe, as before). The scene's own
Tracks folder (Viser sidebar) chooses what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import ModelBackend
from page4d_viewer.settings import DEFAULT_TRACK_POINTS
from page4d_viewer.viewer.callbacks import Updates
from page4d_viewer.viewer.scene.tracks import MAX_TRACKS_SHOWN
from page4d_viewer.viewer.tabs.base import (
    QUICK,
    RUNS_MODEL,
    Panel,
    PanelSetup,
    PanelTab,
    error_line,
)
from page4d_viewer.viewer.track_seeding import TrackSeeder

NO_TRACK_HEAD = "this checkpoint has no track head, so it cannot track points"
CLICK_TO_TRACK = "Click a pixel to track it from this frame"


@dataclass
class TrackWidgets:
    """The tab's components."""

    note: gr.Markdown
    seeding: gr.Checkbox
    picture: gr.Image
    status: gr.Markdown
    seen: gr.State  # the seeder's version the page shows

    @property
    def viewed(self) -> list[Component]:
        """What a new result or frame changes."""
        return [self.note, self.picture, self.seeding, self.seen]


class TracksTab(PanelTab, label="Tracks", tab_id="tracks", elem_id="tracks-tab"):
    """What the result holds of point tracks, and seeding new ones by clicking; one method per
    event, each calling one action of the session's `TrackSeeder`."""

    widgets: TrackWidgets

    def build(self, setup: PanelSetup) -> None:
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
        self.widgets = TrackWidgets(note, seeding, picture, status, gr.State(0))

    def wire(self, panel: Panel) -> None:
        """Connect the tab's events, the panel's frame and result, and the Model section."""
        self.panel = panel
        widgets, page = self.widgets, panel.widgets
        model = [page.model.checkpoint, page.model.device, page.model.precision]
        viewed = widgets.viewed
        page.version.change(self.on_view, page.frame, viewed, **QUICK)
        page.frame.change(self.on_view, page.frame, viewed, trigger_mode="always_last", **QUICK)
        for box in model:
            box.change(self.on_model, model, viewed, **QUICK)
        checkpoint = page.model.checkpoint
        checkpoint.change(self.on_checkpoint, checkpoint, page.model.tracks, **QUICK)
        # .input, not .change: `on_view` writes the toggle too, and that is no user's choice.
        widgets.seeding.input(
            self.on_seeding, [widgets.seeding, *model], [widgets.status, widgets.seen], **QUICK
        )
        # Tracking runs the model: queued with the runs, one at a time.
        widgets.picture.select(
            self.on_picture_click, [page.frame, *model],
            [widgets.status, widgets.seen, widgets.note, widgets.picture],
            show_progress_on=widgets.status, **RUNS_MODEL,
        )  # fmt: skip
        panel.poll([widgets.seen, page.frame], [*viewed, widgets.status], self.on_poll)

    def _seeder(self, request: gr.Request | None) -> TrackSeeder:
        """The seeder of the page's session (Page4DError when it is not open)."""
        return self.panel.callbacks.session_of(request).track_seeder

    def on_poll(self, values: dict[Component, Any], request: gr.Request | None) -> Updates:
        """The tab's part of the page's poll: `on_tick` with its inputs."""
        return self.on_tick(values[self.widgets.seen], values[self.panel.widgets.frame], request)

    def on_view(self, frame: float, request: gr.Request | None = None) -> Updates:
        """A new result, frame or page load: the note, the picture, and the seeding toggle as
        the session's scene has it (a reloaded page starts unticked)."""
        try:
            seeder = self._seeder(request)
        except Page4DError:
            return {self.widgets.seen: gr.skip()}
        return {
            **self._model_said(seeder),
            self.widgets.picture: gr.update(
                value=seeder.picture(int(frame or 0)), label=picture_label(seeder)
            ),
        }

    def _model_said(self, seeder: TrackSeeder) -> Updates:
        """The note and the seeding toggle for the chosen model: the toggle is disabled when
        the model cannot track, and the note says why before anyone clicks."""
        can_track = seeder.model_problem() is None
        return {
            self.widgets.note: seeder.note(),
            self.widgets.seeding: gr.update(value=seeder.seeding, interactive=can_track),
        }

    def on_model(
        self, checkpoint: str | None, device: str | None, precision: str | None,
        request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """The Model section changed: clicks track with the new choice, and the tab says
        whether that choice can track at all."""
        try:
            seeder = self._seeder(request)
        except Page4DError:  # a page without a session: nothing to set
            return {self.widgets.seen: gr.skip()}
        seeder.set_model(checkpoint, device, precision)
        return {
            **self._model_said(seeder),
            self.widgets.picture: gr.update(label=picture_label(seeder)),
        }

    def on_checkpoint(self, checkpoint: str | None) -> Any:
        """The "Track points" box for a newly chosen checkpoint."""
        return gr.update(**track_points_state(self.panel.callbacks.sessions.backend, checkpoint))

    def on_seeding(
        self, on: bool, checkpoint: str | None, device: str | None, precision: str | None,
        request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """The seeding toggle: what clicks in the scene do from now on."""
        try:
            seeder = self._seeder(request)
            seeder.set_model(checkpoint, device, precision)
            message = seeder.set_seeding(bool(on))
        except Page4DError as error:
            return {self.widgets.status: error_line(error)}
        return {self.widgets.status: message, self.widgets.seen: seeder.version}

    def on_picture_click(
        self, frame: float, checkpoint: str | None, device: str | None, precision: str | None,
        event: gr.SelectData, request: gr.Request | None = None,
    ) -> Updates:  # fmt: skip
        """A click on the tab's picture: track that pixel of the current frame."""
        try:
            seeder = self._seeder(request)
            seeder.set_model(checkpoint, device, precision)
            x, y = event.index
            message = seeder.image_click(int(frame or 0), float(x), float(y))
        except (Page4DError, TypeError, ValueError) as error:
            return {self.widgets.status: error_line(error)}
        return {
            self.widgets.status: message,
            self.widgets.seen: seeder.version,
            self.widgets.note: seeder.note(),
            self.widgets.picture: seeder.picture(int(frame or 0)),
        }

    def on_tick(self, seen: int, frame: float, request: gr.Request | None = None) -> Updates:
        """Bring the outcome of a click in the scene to the page."""
        try:
            seeder = self._seeder(request)
        except Page4DError:
            return {self.widgets.seen: gr.skip()}
        if seeder.version == seen:
            return {self.widgets.seen: gr.skip()}
        return {
            self.widgets.seen: seeder.version,
            self.widgets.status: seeder.message,
            self.widgets.note: seeder.note(),
            self.widgets.picture: seeder.picture(int(frame or 0)),
        }


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
