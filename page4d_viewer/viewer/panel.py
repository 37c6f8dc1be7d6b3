"""The Gradio panel: pick a clip, run PAGE-4D, inspect the mask, compare poses, download.

`build_panel` lays out the page (`_layout`) and wires each widget event to one method of
`_Callbacks`, which calls one `ViewerController` action and turns its outcome, or its
Page4DError, into widget updates. Callbacks return dicts keyed by component, so a failure
updates the status line only: the result on screen stays.

Queueing: model runs go through Gradio's queue one at a time (a second user sees a queue
position); cheap events (slider moves, the timeline poll) skip the concurrency limit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import PRECISION_CHOICES, RELEASED_MASK_STRENGTH
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.controller import (
    DEFAULT_MAX_FRAMES,
    SOURCE_EXAMPLE,
    SOURCE_PATH,
    SOURCE_UPLOAD,
    ModelBackend,
    RunCancelled,
    RunOptions,
    SceneSettings,
    Shown,
    ViewerController,
    error_markdown,
    run_choices,
    status_markdown,
)

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
# The names page4d_viewer.inference.device understands (kept here: the panel does not import torch).
CROP_MODES = ("crop", "pad")
MAX_MASK_STRENGTH = 128
# How often each open page asks the scene where its timeline is (seconds).
POLL_SECONDS = 0.5
IMAGE_HEIGHT = 260  # pixels; frames are drawn at least this tall, however small the clip

PANEL_CSS = """
#status { min-height: 3.5em; }
#scene-frame iframe { width: 100%; height: 620px; border: 1px solid #8884; border-radius: 6px; }
"""

_IFRAME_JS = """
const box = element.querySelector('#scene-frame');
if (box) {
  const url = `${window.location.protocol}//${window.location.hostname}:${box.dataset.port}/`;
  const frame = box.querySelector('iframe');
  const link = box.querySelector('a');
  if (frame && frame.src !== url) { frame.src = url; }
  if (link) { link.href = url; }
}
"""


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
    )


def scene_iframe_html(viser_port: int) -> str:
    """The Viser scene embedded in the page, plus a link to open it alone.

    The browser rewrites the address from the page's own host name (`_IFRAME_JS`), so the
    iframe works whether the app is reached as 127.0.0.1, a LAN name or via `--host 0.0.0.0`.
    """
    fallback = f"http://127.0.0.1:{viser_port}/"
    return (
        f'<div id="scene-frame" data-port="{viser_port}">'
        f'<iframe src="{fallback}" title="3-D scene (Viser)" allow="fullscreen"></iframe>'
        f'<a href="{fallback}" target="_blank" rel="noopener">Open the 3-D scene in its own tab</a>'
        "</div>"
    )


@dataclass
class _Widgets:
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


def build_panel(
    controller: ViewerController,
    *,
    viser_port: int,
    device: str = "auto",
    precision: str = "auto",
    title: str = "PAGE-4D viewer",
) -> gr.Blocks:
    """Lay out the Gradio page and wire its callbacks to `controller`.

    Args:
        controller: The shared state and actions.
        viser_port: Port of the Viser server, for the embedded scene.
        device: Device preselected in the Model section ("auto", "cpu", "cuda", ...).
        precision: Precision preselected ("auto", "fp32", "bf16", "fp16").
        title: Browser tab title.

    Returns:
        The `gradio.Blocks`, queued (model runs one at a time; a second user sees a queue
        position), not launched. Launch it with `css=PANEL_CSS`.
    """
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        widgets = _layout(controller, viser_port, device, precision)
        _wire(demo, _Callbacks(controller, widgets), widgets)
    demo.queue(default_concurrency_limit=1)
    return demo


def _layout(controller: ViewerController, viser_port: int, device: str, precision: str) -> _Widgets:
    backend = controller.backend
    samples = list(controller.samples)
    first_kind = SOURCE_EXAMPLE if samples else SOURCE_UPLOAD
    gr.Markdown(
        "## PAGE-4D viewer\nRun PAGE-4D on a clip, play it back in 4-D, inspect the learned "
        "dynamic mask and compare the masked and unmasked camera poses."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340):
            source_tabs = _source_inputs(controller, samples, first_kind)
            sampling = _sampling_inputs()
            model = _model_inputs(backend, device, precision)
            with gr.Row():
                run_button = gr.Button(
                    "Run", variant="primary", interactive=backend is not None, elem_id="run"
                )
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
            status = gr.Markdown(status_markdown(None), elem_id="status")
            with gr.Accordion("Open a result", open=backend is None):
                result_upload = gr.File(
                    label="Saved result (.npz)", file_types=[".npz"], elem_id="result-upload"
                )
                open_file_button = gr.Button("Open result file", elem_id="open-result")
                runs = gr.Dropdown(
                    choices=run_choices(controller.recent_runs()),
                    label="Recent runs (saved as each run finishes)",
                    elem_id="recent-runs",
                )
                with gr.Row():
                    refresh_runs_button = gr.Button("Refresh list", size="sm")
                    open_run_button = gr.Button("Open run", size="sm", elem_id="open-run")
        with gr.Column(scale=2, min_width=480):
            gr.HTML(scene_iframe_html(viser_port), js_on_load=_IFRAME_JS, elem_id="scene")
            frame = gr.Slider(
                0, 1, value=0, step=1, label="Frame (follows the scene's timeline)", elem_id="frame"
            )
    with gr.Tabs():
        with gr.Tab("Mask and depth"):
            with gr.Row():
                opacity = gr.Slider(
                    0, 1, value=controller.mask_opacity, step=0.05, label="Mask opacity",
                    elem_id="mask-opacity",
                )  # fmt: skip
                threshold = gr.Slider(
                    0, 1, value=controller.mask_threshold, step=0.05,
                    label="Mask threshold (dynamic probability)", elem_id="mask-threshold",
                )  # fmt: skip
            with gr.Row():
                overlay_image = gr.Image(
                    label="Frame + dynamic mask", interactive=False, height=IMAGE_HEIGHT
                )
                depth_image = gr.Image(label="Depth", interactive=False, height=IMAGE_HEIGHT)
                confidence_image = gr.Image(
                    label="Depth confidence (log)", interactive=False, height=IMAGE_HEIGHT
                )
        with gr.Tab("Pose comparison"):
            with gr.Row():
                trajectory_plot = gr.Plot(label="Trajectories from above", show_label=False)
                differences_plot = gr.Plot(label="Per-frame differences", show_label=False)
            metrics_table = gr.Dataframe(
                headers=plots.METRICS_HEADERS, label="ATE / RPE", interactive=False,
                elem_id="metrics",
            )  # fmt: skip
        with gr.Tab("Downloads"):
            prepare_button = gr.Button("Prepare downloads (result, GLB, PLY, TUM, mp4)")
            downloads = gr.File(
                label="Files", file_count="multiple", interactive=False, elem_id="downloads"
            )
    return _Widgets(
        source_kind=gr.State(first_kind),
        version=gr.State(-1),
        synced=gr.State(None),
        example_tab=source_tabs["example_tab"],
        upload_tab=source_tabs["upload_tab"],
        path_tab=source_tabs["path_tab"],
        run_inputs={**source_tabs["inputs"], **sampling, **model},
        run_button=run_button,
        cancel_button=cancel_button,
        status=status,
        result_upload=result_upload,
        open_file_button=open_file_button,
        runs=runs,
        refresh_runs_button=refresh_runs_button,
        open_run_button=open_run_button,
        frame=frame,
        opacity=opacity,
        threshold=threshold,
        overlay_image=overlay_image,
        depth_image=depth_image,
        confidence_image=confidence_image,
        trajectory_plot=trajectory_plot,
        differences_plot=differences_plot,
        metrics_table=metrics_table,
        prepare_button=prepare_button,
        downloads=downloads,
        timer=gr.Timer(POLL_SECONDS),
    )


def _source_inputs(controller: ViewerController, samples: list[str], first: str) -> dict[str, Any]:
    with gr.Tabs(selected=first):
        with gr.Tab("Example", id=SOURCE_EXAMPLE) as example_tab:
            example = gr.Dropdown(
                choices=samples,
                value=samples[0] if samples else None,
                label="Bundled example clip",
                info=None if samples else "no sample clips found under assets/samples",
                elem_id="example",
            )
        with gr.Tab("Upload", id=SOURCE_UPLOAD) as upload_tab:
            uploads = gr.File(
                file_count="multiple",
                label="A video, several images, or a zip of images",
                elem_id="clip-upload",
            )
        with gr.Tab("Server path", id=SOURCE_PATH) as path_tab:
            server_path = gr.Textbox(
                label="Path on the server",
                placeholder="clips/walk.mp4",
                info=f"Only under: {controller.data_roots.describe()}",
                elem_id="server-path",
            )
    return {
        "example_tab": example_tab,
        "upload_tab": upload_tab,
        "path_tab": path_tab,
        "inputs": {"example": example, "uploads": uploads, "server_path": server_path},
    }


def _sampling_inputs() -> dict[str, gr.components.Component]:
    with gr.Accordion("Sampling", open=False):
        with gr.Row():
            stride = gr.Number(1, label="Stride", precision=0, minimum=1)
            fps = gr.Number(0, label="Target fps (0 = keep)", minimum=0)
            max_frames = gr.Number(
                DEFAULT_MAX_FRAMES, label="Max frames (0 = all)", precision=0, minimum=0,
                elem_id="max-frames",
            )  # fmt: skip
        with gr.Row():
            start = gr.Number(0, label="Start frame", precision=0, minimum=0)
            end = gr.Number(0, label="End frame (0 = last)", precision=0, minimum=0)
        mode = gr.Radio(list(CROP_MODES), value="crop", label="Fit to the model's input")
    return {
        "stride": stride, "fps": fps, "max_frames": max_frames, "start": start, "end": end,
        "mode": mode,
    }  # fmt: skip


def _model_inputs(
    backend: ModelBackend | None, device: str, precision: str
) -> dict[str, gr.components.Component]:
    checkpoints = backend.checkpoint_names() if backend is not None else []
    strength = _default_strength(backend, checkpoints[0]) if checkpoints else 0.0
    with gr.Accordion("Model", open=backend is not None):
        checkpoint = gr.Dropdown(
            choices=checkpoints,
            value=checkpoints[0] if checkpoints else None,
            label="Checkpoint",
            info=None if backend is not None else "no model: this app only views results",
            interactive=backend is not None,
        )
        with gr.Row():
            devices = list(dict.fromkeys([*DEVICES, device]))  # keep e.g. "cuda:1" from the CLI
            device_box = gr.Dropdown(devices, value=device, label="Device")
            precision_box = gr.Dropdown(list(PRECISION_CHOICES), value=precision, label="Precision")
        mask_strength = gr.Slider(
            0, MAX_MASK_STRENGTH, value=strength, step=1,
            label="Mask strength α (0 = off, 64 = as released)", elem_id="mask-strength",
        )  # fmt: skip
    return {
        "checkpoint": checkpoint, "device": device_box, "precision": precision_box,
        "mask_strength": mask_strength,
    }  # fmt: skip


class _Callbacks:
    """One method per widget event; each calls one controller action."""

    def __init__(self, controller: ViewerController, widgets: _Widgets) -> None:
        self.controller = controller
        self.w = widgets

    # ------------------------------------------------------------------ result on screen

    def full_view(self, shown: Shown | None) -> dict[Any, Any]:
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
        comparison = plots.compare_poses(shown.recon)
        notes = "".join(f"\n\n{note}" for note in shown.notes)
        record = shown.record
        return {
            w.status: status_markdown(shown) + notes,
            w.frame: gr.update(maximum=max(1, shown.recon.num_frames - 1), value=settings.frame),
            w.opacity: settings.mask_opacity,
            w.threshold: settings.mask_threshold,
            w.overlay_image: images.overlay,
            w.depth_image: images.depth,
            w.confidence_image: images.confidence,
            w.trajectory_plot: plots.trajectory_figure(comparison),
            w.differences_plot: plots.differences_figure(comparison),
            w.metrics_table: plots.metrics_rows(shown.recon),
            w.downloads: [str(record.result_path)] if record is not None else None,
            w.version: shown.version,
            w.synced: settings,
        }

    def failed(self, message: str) -> dict[Any, Any]:
        """Only the status line changes: the previous result stays on screen."""
        return {self.w.status: error_markdown(message, self.controller.current)}

    def cancelled(self, message: str) -> dict[Any, Any]:
        """The status line after Cancel; the result on screen stays."""
        return {self.w.status: error_markdown(message, self.controller.current, "Cancelled")}

    def show_or_fail(self, action: Callable[[], Shown]) -> dict[Any, Any]:
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

    def unchanged(self) -> dict[Any, Any]:
        """No update at all (Gradio reads an empty dict as a missing value, so skip one)."""
        return {self.w.version: gr.skip()}

    def runs_update(self) -> Any:
        """The recent-runs drop-down, newest selected."""
        choices = run_choices(self.controller.recent_runs())
        return gr.update(choices=choices, value=choices[0][1] if choices else None)

    # ------------------------------------------------------------------ events

    def on_load(self) -> dict[Any, Any]:
        return {**self.full_view(self.controller.current), self.w.runs: self.runs_update()}

    def on_run(
        self,
        values: dict[Any, Any],
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio reads this default)
    ) -> dict[Any, Any]:
        w = self.w
        named = {name: values[widget] for name, widget in w.run_inputs.items()}

        def report(fraction: float, message: str) -> None:
            progress(fraction, desc=message)

        def action() -> Shown:
            source = self.controller.resolve_source(
                values[w.source_kind], named["example"], named["uploads"], named["server_path"]
            )
            options = options_from_widgets(named)
            return self.controller.run(source, options, report, _session(request))

        return {**self.show_or_fail(action), w.runs: self.runs_update()}

    def on_cancel(self, request: gr.Request) -> dict[Any, Any]:
        # The run's own update may land before or after this one: both say "Cancelled".
        running = self.controller.cancel(_session(request))
        return self.cancelled("stopping the run" if running else "nothing was running")

    def on_open_file(self, path: str | None) -> dict[Any, Any]:
        if not path:
            return self.failed("choose a result file (.npz) first")
        return self.show_or_fail(lambda: self.controller.open_result(path))

    def on_open_run(self, run_id: str | None) -> dict[Any, Any]:
        if not run_id:
            return self.failed("pick a recent run first")
        return self.show_or_fail(lambda: self.controller.open_run(run_id))

    def on_tick(self, known_version: int, synced: SceneSettings | None) -> dict[Any, Any]:
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
        updates: dict[Any, Any] = {w.synced: settings}
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

    def on_frame(self, frame: float, synced: SceneSettings | None) -> dict[Any, Any]:
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
    ) -> dict[Any, Any]:
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

    def _synced_after(self, synced: SceneSettings | None, **set_by_page: Any) -> SceneSettings:
        """What the page shows of the scene after it set some values itself.

        The rest comes from the page's previous view, not from the scene: the Viser timeline
        may have moved meanwhile, and recording that move as seen would stop `on_tick` from
        ever bringing it to the panel.
        """
        base = synced if synced is not None else self.controller.scene_settings()
        return dataclasses.replace(base, **set_by_page)

    def on_checkpoint(self, name: str | None) -> Any:
        if self.controller.backend is None or not name:
            return gr.skip()
        return _default_strength(self.controller.backend, name)

    def on_prepare(self) -> list[str]:
        try:
            return [str(path) for path in self.controller.exports()]
        except Page4DError as error:
            raise gr.Error(" ".join(str(error).split())) from error


def _wire(demo: gr.Blocks, callbacks: _Callbacks, w: _Widgets) -> None:
    light: dict[str, Any] = {"concurrency_limit": None, "show_progress": "hidden"}
    w.example_tab.select(lambda: SOURCE_EXAMPLE, None, w.source_kind, **light)
    w.upload_tab.select(lambda: SOURCE_UPLOAD, None, w.source_kind, **light)
    w.path_tab.select(lambda: SOURCE_PATH, None, w.source_kind, **light)
    run_event = w.run_button.click(
        callbacks.on_run,
        {w.source_kind, *w.run_inputs.values()},
        [*w.view, w.runs],
        concurrency_limit=1,
        concurrency_id="model",
        show_progress_on=[w.status],
        trigger_mode="once",
    )
    # cancels= drops a queued run at once; a running one stops at its next progress report.
    w.cancel_button.click(callbacks.on_cancel, None, w.status, cancels=[run_event], **light)
    opening = {"concurrency_id": "open", "concurrency_limit": 1, "show_progress_on": [w.status]}
    w.open_file_button.click(callbacks.on_open_file, w.result_upload, w.view, **opening)
    w.open_run_button.click(callbacks.on_open_run, w.runs, w.view, **opening)
    w.refresh_runs_button.click(callbacks.runs_update, None, w.runs, **light)
    w.run_inputs["checkpoint"].change(
        callbacks.on_checkpoint, w.run_inputs["checkpoint"], w.run_inputs["mask_strength"]
    )
    images = [w.overlay_image, w.depth_image, w.confidence_image]
    w.frame.input(
        callbacks.on_frame, [w.frame, w.synced], [*images, w.synced],
        trigger_mode="always_last", **light,
    )  # fmt: skip
    mask_inputs = [w.opacity, w.threshold, w.frame, w.synced]
    for slider in (w.opacity, w.threshold):
        slider.input(
            callbacks.on_mask, mask_inputs, [w.overlay_image, w.status, w.synced],
            trigger_mode="always_last", **light,
        )  # fmt: skip
    w.prepare_button.click(
        callbacks.on_prepare, None, w.downloads, concurrency_id="export", concurrency_limit=1
    )
    w.timer.tick(
        callbacks.on_tick, [w.version, w.synced], w.view,
        trigger_mode="always_last", **light,
    )  # fmt: skip
    demo.load(callbacks.on_load, None, [*w.view, w.runs], **light)


def _default_strength(backend: ModelBackend | None, checkpoint: str) -> float:
    if backend is None:
        return 0.0
    try:
        return float(backend.default_mask_strength(checkpoint))
    except Page4DError as error:
        logger.warning("cannot read the default mask strength of %s: %s", checkpoint, error)
        return RELEASED_MASK_STRENGTH


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", "") or "")
