"""The Gradio panel: pick a clip, run PAGE-4D, inspect the mask, compare poses, download.

`build_panel` lays out the page (`_layout`, one builder per section) and wires each widget
event to one method of `callbacks.PanelCallbacks`, which calls one `ViewerController` action
and turns its outcome, or its Page4DError, into widget updates.

Queueing: model runs go through Gradio's queue one at a time (a second user sees a queue
position); cheap events (slider moves, the timeline poll) skip the concurrency limit.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from page4d_viewer.run_contract import DEFAULT_MAX_FRAMES, ModelBackend
from page4d_viewer.settings import DEFAULT_MASK_OVERLAY, PRECISION_CHOICES
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import PanelCallbacks, PanelWidgets, default_strength
from page4d_viewer.viewer.controller import (
    SOURCE_EXAMPLE,
    SOURCE_PATH,
    SOURCE_UPLOAD,
    ViewerController,
)
from page4d_viewer.viewer.server.sessions import SessionRegistry
from page4d_viewer.viewer.status import run_choices, status_markdown
from page4d_viewer.viewer.tabs import dataset as dataset_tab
from page4d_viewer.viewer.tabs import inspect as inspect_tab
from page4d_viewer.viewer.tabs import record as record_tab
from page4d_viewer.viewer.tabs import tracks as tracks_tab

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "mps")
# The names page4d_viewer.inference.device understands (kept here: the panel does not import torch).
CROP_MODES = ("crop", "pad")
MAX_MASK_STRENGTH = 128
# How often each open page asks the scene where its timeline is (seconds).
POLL_SECONDS = 0.5
IMAGE_HEIGHT = "auto"  # the box takes the picture's own shape: no empty bands around it
# The panel's words for settings.MASK_OVERLAYS.
MASK_OVERLAY_CHOICES = (
    ("continuous probability", "continuous"),
    ("above the threshold only", "threshold"),
)

PANEL_CSS = """
#status { min-height: 3.5em; }
.frame-image img { image-rendering: pixelated; width: 100%; height: auto; object-fit: contain; }
#scene-frame iframe { width: 100%; height: 620px; border: 1px solid #8884; border-radius: 6px; }
"""

SCENE_PATH = "scene"  # the proxy's route (server.SCENE_PREFIX), relative to the page


# Runs in the page before `on_load`: the tab's id, kept in sessionStorage (per tab, across
# reloads; localStorage would be shared by every tab). Plain-HTTP remote origins have no
# crypto.randomUUID, so it falls back to getRandomValues, then to Math.random and the clock.
TAB_ID_JS = """(ignored) => {
  const key = "page4d-tab";
  let id = null;
  try { id = window.sessionStorage.getItem(key); } catch (error) { id = null; }
  if (!id || !/^[A-Za-z0-9-]{8,64}$/.test(id)) {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      id = c.randomUUID();
    } else if (c && typeof c.getRandomValues === "function") {
      id = Array.from(c.getRandomValues(new Uint8Array(16)),
        (b) => b.toString(16).padStart(2, "0")).join("");
    } else {
      id = Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + "-"
        + Math.random().toString(36).slice(2);
    }
    try { window.sessionStorage.setItem(key, id); } catch (error) { /* a new id per load */ }
  }
  return id;
}"""


def scene_url(session: str) -> str:
    """The address of a session's scene, relative to the panel's page (same origin)."""
    return f"{SCENE_PATH}/{session}/"


def scene_iframe_html(url: str | None) -> str:
    """The session's Viser scene embedded in the page, plus a link to open it alone.

    The address is relative, so the scene is reached through the panel's own host and port
    (one port to forward; the scene's websocket accepts only this page's origin).
    """
    if url is None:
        return '<div id="scene-frame"><p>The 3-D scene opens when the page has loaded.</p></div>'
    return (
        f'<div id="scene-frame" data-src="{url}">'
        f'<iframe src="{url}" title="3-D scene (Viser)" allow="fullscreen"></iframe>'
        f'<a href="{url}" target="_blank" rel="noopener">Open the 3-D scene in its own tab</a>'
        "</div>"
    )


def build_panel(
    controller: ViewerController | SessionRegistry,
    *,
    device: str = "auto",
    precision: str = "auto",
    title: str = "PAGE-4D viewer",
    index: str | None = None,
) -> gr.Blocks:
    """Lay out the Gradio page and wire its callbacks to `controller`.

    Args:
        controller: The open sessions (each page gets its own controller and scene, opened
            when the page loads and closed when it goes), or one controller for every page
            (tests; no embedded scene).
        device: Device preselected in the Model section ("auto", "cpu", "cuda", ...).
        precision: Precision preselected ("auto", "fp32", "bf16", "fp16").
        title: Browser tab title.
        index: A batch index (folder or index.sqlite) to list in the Dataset tab at load.

    Returns:
        The `gradio.Blocks`, queued (model runs one at a time; a second user sees a queue
        position), not launched. Launch it with `css=PANEL_CSS`.
    """
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        widgets, tabs, record, inside_tab, tracks = _layout(controller, device, precision, index)
        if isinstance(controller, SessionRegistry):
            callbacks = PanelCallbacks(
                None, widgets, controller, lambda session: scene_iframe_html(scene_url(session))
            )
        else:
            callbacks = PanelCallbacks(controller, widgets)
        _wire(demo, callbacks, widgets)
        record_tab.wire(record_tab.RecordCallbacks(callbacks.controller_of), record)
        tab_callbacks = dataset_tab.DatasetCallbacks(callbacks, tabs)
        dataset_tab.wire(tab_callbacks, tabs, widgets)
        inside = inspect_tab.InspectCallbacks(callbacks.controller_of, inside_tab, widgets)
        inspect_tab.wire(inside, inside_tab, widgets)
        tracked = tracks_tab.TrackCallbacks(
            callbacks.controller_of, tracks, widgets, controller.backend
        )
        tracks_tab.wire(tracked, tracks, widgets)
        query = [tabs.index_state, tabs.sort_by, tabs.descending, tabs.filter_text]
        demo.load(tab_callbacks.on_query, query, tabs.listing, show_progress="hidden")
    demo.queue(default_concurrency_limit=1)
    return demo


def _layout(
    controller: ViewerController | SessionRegistry, device: str, precision: str, index: str | None
) -> tuple[
    PanelWidgets,
    dataset_tab.DatasetWidgets,
    record_tab.RecordWidgets,
    inspect_tab.InspectWidgets,
    tracks_tab.TrackWidgets,
]:
    backend = controller.backend
    samples = list(controller.samples)
    first_kind = SOURCE_EXAMPLE if samples else SOURCE_UPLOAD
    gr.Markdown(
        "## PAGE-4D viewer\nRun PAGE-4D on a clip, play it back in 4-D, inspect the learned "
        "dynamic mask and compare the masked and unmasked camera poses."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340):
            sources = _source_inputs(controller, samples, first_kind)
            sampling = _sampling_inputs()
            model = _model_inputs(backend, device, precision)
            actions = _run_and_open(controller)
        with gr.Column(scale=2, min_width=480):
            scene = gr.HTML(scene_iframe_html(None), elem_id="scene")
            frame = gr.Slider(
                0, 1, value=0, step=1, label="Frame (follows the scene's timeline)", elem_id="frame"
            )
    views, tabs, record, inside, tracks = _result_tabs(controller, index)
    widgets = PanelWidgets(
        source_kind=gr.State(first_kind),
        version=gr.State(-1),
        synced=gr.State(None),
        example_tab=sources.example_tab,
        upload_tab=sources.upload_tab,
        path_tab=sources.path_tab,
        run_inputs={**sources.inputs, **sampling, **model},
        frame=frame,
        timer=gr.Timer(POLL_SECONDS),
        scene=scene,
        **_fields_of(actions),
        **_fields_of(views),
    )
    return widgets, tabs, record, inside, tracks


def _fields_of(section: _RunAndOpen | _ResultTabs) -> dict[str, object]:
    """A section dataclass's components by field name (shallow, unlike dataclasses.asdict)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


@dataclass
class _SourceTabs:
    example_tab: gr.Tab
    upload_tab: gr.Tab
    path_tab: gr.Tab
    inputs: dict[str, gr.components.Component]


def _source_inputs(
    controller: ViewerController | SessionRegistry, samples: list[str], first: str
) -> _SourceTabs:
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
    inputs = {"example": example, "uploads": uploads, "server_path": server_path}
    return _SourceTabs(example_tab, upload_tab, path_tab, inputs)


@dataclass
class _RunAndOpen:
    run_button: gr.Button
    cancel_button: gr.Button
    status: gr.Markdown
    result_upload: gr.File
    open_file_button: gr.Button
    runs: gr.Dropdown
    runs_search: gr.Textbox
    refresh_runs_button: gr.Button
    open_run_button: gr.Button


def _run_and_open(controller: ViewerController | SessionRegistry) -> _RunAndOpen:
    """Run and Cancel, the status line, and the "Open a result" section."""
    backend = controller.backend
    with gr.Row():
        run_button = gr.Button(
            "Run", variant="primary", interactive=backend is not None, elem_id="run"
        )
        # Nothing to cancel without a model: greyed out like Run, not a bright red button.
        cancel_button = gr.Button(
            "Cancel", variant="stop", interactive=backend is not None, elem_id="cancel"
        )
    status = gr.Markdown(status_markdown(None), elem_id="status")
    with gr.Accordion("Open a result", open=backend is None):
        result_upload = gr.File(
            label="Saved result (.npz)", file_types=[".npz"], elem_id="result-upload"
        )
        open_file_button = gr.Button("Open result file", elem_id="open-result")
        runs = gr.Dropdown(
            choices=run_choices(controller.recent_runs()),
            label="Recent runs (saved as each run finishes; the 50 newest that match)",
            elem_id="recent-runs",
        )
        runs_search = gr.Textbox(
            label="Search runs", placeholder="words of the title, checkpoint, strength (Enter)",
            elem_id="runs-search",
        )  # fmt: skip
        with gr.Row():
            refresh_runs_button = gr.Button("Refresh list", size="sm")
            open_run_button = gr.Button("Open run", size="sm", elem_id="open-run")
    return _RunAndOpen(
        run_button, cancel_button, status, result_upload, open_file_button, runs, runs_search,
        refresh_runs_button, open_run_button,
    )  # fmt: skip


@dataclass
class _ResultTabs:
    opacity: gr.Slider
    threshold: gr.Slider
    mask_overlay: gr.Radio
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


def _result_tabs(
    controller: ViewerController | SessionRegistry, index: str | None
) -> tuple[
    _ResultTabs,
    dataset_tab.DatasetWidgets,
    record_tab.RecordWidgets,
    inspect_tab.InspectWidgets,
    tracks_tab.TrackWidgets,
]:
    """The tabs under the scene: mask and depth, pose comparison, downloads, record, dataset,
    compare, inside the model, tracks."""
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
                mask_overlay = gr.Radio(
                    list(MASK_OVERLAY_CHOICES),
                    value=getattr(controller, "mask_overlay", DEFAULT_MASK_OVERLAY),
                    label="Draw the mask", elem_id="mask-overlay",
                    info="continuous: every patch in the colour of its probability",
                )  # fmt: skip
            with gr.Row():
                overlay, depth, confidence = (
                    _frame_image(label, True)
                    for label in ("Frame + dynamic mask", "Depth", "Depth confidence (log)")
                )
            with gr.Row():
                truth_depth, truth_mask = (
                    _frame_image(label, False)
                    for label in ("Ground-truth depth", "Ground-truth moving pixels")
                )
        with gr.Tab("Pose comparison"):
            with gr.Row():
                trajectory_plot = gr.Plot(label="Trajectories from above", show_label=False)
                differences_plot = gr.Plot(label="Per-frame differences", show_label=False)
            # A picture, not a gr.Plot: a click on it reports a pixel, which reads as a frame.
            disagreement_image = gr.Image(
                label="Camera head vs geometry per frame: click a frame to go there",
                interactive=False, elem_id="disagreement", format="png",
            )  # fmt: skip
            metrics_table = gr.Dataframe(
                headers=plots.METRICS_HEADERS, label="ATE / RPE, depth AbsRel / δ<1.25",
                interactive=False,
                elem_id="metrics",
            )  # fmt: skip
        with gr.Tab("Downloads"):
            prepare_button = gr.Button("Prepare downloads (result, GLB, PLY, TUM, mp4)")
            downloads = gr.File(
                label="Files", file_count="multiple", interactive=False, elem_id="downloads"
            )
        record = record_tab.build_tab()
        tabs = dataset_tab.build_tabs(controller.data_roots.describe(), index)
        inside = inspect_tab.build_tab()
        tracks = tracks_tab.build_tab()
    return _ResultTabs(
        opacity, threshold, mask_overlay, overlay, depth, confidence, truth_depth, truth_mask,
        trajectory_plot, differences_plot, disagreement_image, gr.State(None), metrics_table,
        prepare_button, downloads,
    ), tabs, record, inside, tracks  # fmt: skip


def _frame_image(label: str, visible: bool) -> gr.Image:
    """A frame picture: drawn large (plots.PANEL_IMAGE_WIDTH) with sharp pixels, and a
    fullscreen button to look closer."""
    return gr.Image(
        label=label, interactive=False, height=IMAGE_HEIGHT, visible=visible,
        buttons=["download", "fullscreen"], elem_classes=["frame-image"],
    )  # fmt: skip


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
    strength = default_strength(backend, checkpoints[0]) if checkpoints else 0.0
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
        attention = gr.Checkbox(
            False, label="Record attention (for the Inside the model tab)",
            elem_id="record-attention",
        )  # fmt: skip
        tracks = tracks_tab.track_points_box(backend, checkpoints[0] if checkpoints else None)
    return {
        "checkpoint": checkpoint, "device": device_box, "precision": precision_box,
        "mask_strength": mask_strength, "attention": attention, "tracks": tracks,
    }  # fmt: skip


def _wire(demo: gr.Blocks, callbacks: PanelCallbacks, w: PanelWidgets) -> None:
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
    w.refresh_runs_button.click(callbacks.runs_update, w.runs_search, w.runs, **light)
    w.runs_search.submit(callbacks.runs_update, w.runs_search, w.runs, **light)
    w.run_inputs["checkpoint"].change(
        callbacks.on_checkpoint, w.run_inputs["checkpoint"], w.run_inputs["mask_strength"]
    )
    images = w.images
    w.frame.input(
        callbacks.on_frame, [w.frame, w.synced], [*images, w.synced],
        trigger_mode="always_last", **light,
    )  # fmt: skip
    mask_inputs = [w.opacity, w.threshold, w.mask_overlay, w.frame, w.synced]
    for slider in (w.opacity, w.threshold, w.mask_overlay):
        slider.input(
            callbacks.on_mask, mask_inputs, [w.overlay_image, w.status, w.synced],
            trigger_mode="always_last", **light,
        )  # fmt: skip
    w.disagreement_image.select(
        callbacks.on_disagreement_click, [w.disagreement_axis, w.synced],
        [w.frame, *images, w.synced, w.disagreement_image], **light,
    )  # fmt: skip
    w.prepare_button.click(
        callbacks.on_prepare, None, w.downloads, concurrency_id="export", concurrency_limit=1
    )
    w.timer.tick(
        callbacks.on_tick, [w.version, w.synced], w.view,
        trigger_mode="always_last", **light,
    )  # fmt: skip
    loaded = [*w.view, w.runs, w.scene, w.run_inputs["mask_strength"]]
    tab_id = gr.Textbox(visible=False, elem_id="tab-id")  # filled by TAB_ID_JS at each load
    demo.load(callbacks.on_load, tab_id, loaded, js=TAB_ID_JS, **light)
    demo.unload(callbacks.on_unload)
