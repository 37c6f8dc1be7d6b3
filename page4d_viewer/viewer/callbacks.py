"""The panel's event handlers: one method per widget event, each one controller action.

`PanelCallbacks` calls one `ViewerController` action and turns its outcome, or its
Page4DError, into widget updates. Callbacks return dicts keyed by component, so a failure
updates the status line only: the result on screen stays. `panel.py` lays out the page and
wires the events to these methods.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.viewer.comparison import Comparer, pose_views
from page4d_viewer.viewer.controller import (
    ModelBackend,
    RunCancelled,
    RunOptions,
    SceneSettings,
    Shown,
    ViewerController,
)
from page4d_viewer.viewer.status import error_markdown, run_choices, status_markdown

logger = logging.getLogger(__name__)

Updates = dict[gr.components.Component, Any]
"""Widget updates keyed by component; each value is whatever that component takes."""


def options_from_widgets(values: dict[str, Any]) -> RunOptions:
    """RunOptions from the panel's widget values, keyed by RunOptions field name.

    The number boxes use 0 for "not set" (fps, end, max frames) and the dropdowns "auto" for
    "let the predictor choose".

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
    refresh_runs_button: gr.Button
    open_run_button: gr.Button
    frame: gr.Slider
    opacity: gr.Slider
    threshold: gr.Slider
    overlay_image: gr.Image
    depth_image: gr.Image
    confidence_image: gr.Image
    trajectory_plot: gr.Plot
    differences_plot: gr.Plot
    metrics_table: gr.Dataframe
    prepare_button: gr.Button
    downloads: gr.File
    timer: gr.Timer

    @property
    def view(self) -> list[gr.components.Component]:
        """Everything that shows the current result."""
        return [
            self.status,
            self.frame,
            self.opacity,
            self.threshold,
            self.overlay_image,
            self.depth_image,
            self.confidence_image,
            self.trajectory_plot,
            self.differences_plot,
            self.metrics_table,
            self.downloads,
            self.version,
            self.synced,
        ]


class PanelCallbacks:
    """One method per widget event; each calls one controller action."""

    def __init__(
        self, controller: ViewerController, widgets: PanelWidgets, comparer: Comparer | None = None
    ) -> None:
        self.controller = controller
        self.w = widgets
        self.comparer = comparer

    # ------------------------------------------------------------------ result on screen

    def full_view(self, shown: Shown | None) -> Updates:
        """Every view widget, filled from the result on screen."""
        w, controller = self.w, self.controller
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
        if self.comparer is not None and self.comparer.current is not None:
            notes += f"\n\n{self.comparer.describe()}"
        poses = self.comparer.pose_views(shown) if self.comparer else pose_views(shown.recon, None)
        record = shown.record
        return {
            w.status: status_markdown(shown) + notes,
            w.frame: gr.update(maximum=max(1, shown.recon.num_frames - 1), value=settings.frame),
            w.opacity: settings.mask_opacity,
            w.threshold: settings.mask_threshold,
            w.overlay_image: images.overlay,
            w.depth_image: images.depth,
            w.confidence_image: images.confidence,
            w.trajectory_plot: poses.trajectory,
            w.differences_plot: poses.differences,
            w.metrics_table: poses.metrics,
            w.downloads: [str(record.result_path)] if record is not None else None,
            w.version: shown.version,
            w.synced: settings,
        }

    def failed(self, message: str) -> Updates:
        """Only the status line changes: the previous result stays on screen."""
        return {self.w.status: error_markdown(message, self.controller.current)}

    def cancelled(self, message: str) -> Updates:
        """The status line after Cancel; the result on screen stays."""
        return {self.w.status: error_markdown(message, self.controller.current, "Cancelled")}

    def show_or_fail(self, action: Callable[[], Shown]) -> Updates:
        """Run an action that shows a result; any failure becomes a status message."""
        try:
            return self.full_view(action())
        except RunCancelled:
            return self.cancelled("the run was cancelled")
        except Page4DError as error:
            return self.failed(str(error))
        except Exception as error:  # the app stays up whatever goes wrong
            logger.exception("unexpected error in the panel")
            return self.failed(f"unexpected {type(error).__name__}: {error}")

    def unchanged(self) -> Updates:
        """No update at all (Gradio reads an empty dict as a missing value, so skip one)."""
        return {self.w.version: gr.skip()}

    def runs_update(self) -> dict[str, Any]:
        """The recent-runs drop-down, newest selected."""
        choices = run_choices(self.controller.recent_runs())
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # ------------------------------------------------------------------ events

    def on_load(self) -> Updates:
        return {**self.full_view(self.controller.current), self.w.runs: self.runs_update()}

    def on_run(
        self,
        values: Updates,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio reads this default)
    ) -> Updates:
        w = self.w
        named = {name: values[widget] for name, widget in w.run_inputs.items()}

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        def action() -> Shown:
            source = self.controller.resolve_source(
                values[w.source_kind], named["example"], named["uploads"], named["server_path"]
            )
            options = options_from_widgets(named)
            return self.controller.run(source, options, report, session_of(request))

        return {**self.show_or_fail(action), w.runs: self.runs_update()}

    def on_cancel(self, request: gr.Request) -> Updates:
        # The run's own update may land before or after this one: both say "Cancelled".
        running = self.controller.cancel(session_of(request))
        return self.cancelled("stopping the run" if running else "nothing was running")

    def on_open_file(self, path: str | None) -> Updates:
        if not path:
            return self.failed("choose a result file (.npz) first")
        return self.show_or_fail(lambda: self.controller.open_result(path))

    def on_open_run(self, run_id: str | None) -> Updates:
        if not run_id:
            return self.failed("pick a recent run first")
        return self.show_or_fail(lambda: self.controller.open_run(run_id))

    def on_tick(self, known_version: int, synced: SceneSettings | None) -> Updates:
        """Follow the scene: a new result, or its timeline or overlay moved in Viser.

        Compares the scene with what this page last saw of it (`synced`), not with the
        panel's sliders: a slider the user just moved must not be pulled back before its
        own event reaches the scene.
        """
        w, controller = self.w, self.controller
        shown = controller.current
        if shown is None:
            return self.unchanged()
        if shown.version != known_version or synced is None:
            return self.full_view(shown)
        settings = controller.scene_settings()
        if settings == synced:
            return self.unchanged()
        updates: Updates = {w.synced: settings}
        if settings.mask_opacity != synced.mask_opacity:
            updates[w.opacity] = settings.mask_opacity
        if settings.mask_threshold != synced.mask_threshold:
            updates[w.threshold] = settings.mask_threshold
        if settings.frame != synced.frame:
            updates[w.frame] = settings.frame
        images = controller.frame_images(settings.frame)
        updates[w.overlay_image] = images.overlay
        updates[w.depth_image] = images.depth
        updates[w.confidence_image] = images.confidence
        return updates

    def on_frame(self, frame: float, synced: SceneSettings | None) -> Updates:
        applied = self.controller.set_frame(int(frame or 0))
        images = self.controller.frame_images(applied)
        if images is None:
            return self.unchanged()
        w = self.w
        return {
            w.overlay_image: images.overlay,
            w.depth_image: images.depth,
            w.confidence_image: images.confidence,
            w.synced: self._synced_after(synced, frame=applied),
        }

    def on_mask(
        self, opacity: float, threshold: float, frame: float, synced: SceneSettings | None
    ) -> Updates:
        try:
            self.controller.set_mask_overlay(opacity, threshold)
        except Page4DError as error:
            return self.failed(str(error))
        images = self.controller.frame_images(int(frame or 0))
        if images is None:
            return self.unchanged()
        applied = self.controller.scene_settings()
        return {
            self.w.overlay_image: images.overlay,
            self.w.synced: self._synced_after(
                synced, mask_opacity=applied.mask_opacity, mask_threshold=applied.mask_threshold
            ),
        }

    def _synced_after(self, synced: SceneSettings | None, **set_by_page: float) -> SceneSettings:
        """What the page shows of the scene after it set some values itself.

        The rest comes from the page's previous view, not from the scene: the Viser timeline
        may have moved meanwhile, and recording that move as seen would stop `on_tick` from
        ever bringing it to the panel.
        """
        base = synced if synced is not None else self.controller.scene_settings()
        return dataclasses.replace(base, **set_by_page)

    def on_checkpoint(self, name: str | None) -> float | dict[str, Any]:
        if self.controller.backend is None or not name:
            return gr.skip()
        return default_strength(self.controller.backend, name)

    def on_prepare(self) -> list[str]:
        try:
            return [str(path) for path in self.controller.exports()]
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
