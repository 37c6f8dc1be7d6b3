"""The Gradio panel: pick a clip, run PAGE-4D, inspect the mask, compare poses, download.

`build_panel` lays out the page: the clip source, Run and "Open a result" on the left, the
session's 3-D scene and its frame slider on the right, and under them the result tabs of
`RESULT_TABS` (`viewer/tabs/`), each built inside its own `gr.Tab` and wired by itself. The
page's own events go to `callbacks.PanelCallbacks`; one poll timer asks every tab that follows
the scene in one request.

Queueing (`tabs.base`): model runs go through Gradio's queue one at a time (a second user sees
a queue position); cheap events (slider moves, the poll) skip the concurrency limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal, get_args

import gradio as gr
from gradio.components import Component

from page4d_viewer.run_contract import DEFAULT_MAX_FRAMES, ModelBackend
from page4d_viewer.settings import PRECISION_CHOICES
from page4d_viewer.sources.framing import PreprocessMode
from page4d_viewer.viewer.callbacks import (
    ModelInputs,
    PanelCallbacks,
    PanelSessions,
    PanelWidgets,
    RunAndOpenWidgets,
    default_strength,
)
from page4d_viewer.viewer.controller import SOURCE_EXAMPLE, SOURCE_PATH, SOURCE_UPLOAD
from page4d_viewer.viewer.presenter import (
    PRESENTER_CSS,
    PresenterControls,
    bar_after_slider,
    bar_before_slider,
    enter_button,
    wire_presenter,
)
from page4d_viewer.viewer.split_panel import SPLIT_CSS, split_scene_html
from page4d_viewer.viewer.status import run_choices, status_markdown
from page4d_viewer.viewer.tabs import tracks as tracks_tab
from page4d_viewer.viewer.tabs.base import (
    OPENS_RESULT,
    QUICK,
    RUNS_MODEL,
    Panel,
    PanelSetup,
    PanelTab,
)
from page4d_viewer.viewer.tabs.compare import CompareTab
from page4d_viewer.viewer.tabs.dataset import DatasetTab
from page4d_viewer.viewer.tabs.downloads import DownloadsTab
from page4d_viewer.viewer.tabs.inspect import InsideTab
from page4d_viewer.viewer.tabs.mask import MaskTab
from page4d_viewer.viewer.tabs.poses import PoseComparisonTab
from page4d_viewer.viewer.tabs.record import RecordTab
from page4d_viewer.viewer.tabs.tracks import TracksTab

logger = logging.getLogger(__name__)

RESULT_TABS: Final[tuple[type[PanelTab], ...]] = (
    MaskTab,
    PoseComparisonTab,
    DownloadsTab,
    RecordTab,
    DatasetTab,
    CompareTab,
    InsideTab,
    TracksTab,
)
"""The tabs under the scene, in their order on the page: adding a tab is one module in
`viewer/tabs/` with a `PanelTab` class, and one entry here."""

DeviceChoice = Literal["auto", "cpu", "cuda", "mps"]
"""The devices the Model section offers (page4d_viewer.inference.device's names; kept here:
the panel does not import torch). The CLI may add one, e.g. "cuda:1"."""
DEVICES: tuple[DeviceChoice, ...] = get_args(DeviceChoice)
CROP_MODES: tuple[PreprocessMode, ...] = get_args(PreprocessMode)
MAX_MASK_STRENGTH = 128
POLL_SECONDS = 0.5
"""How often each open page asks its session what changed outside it (the scene's timeline,
a probe or a track clicked in the scene, a run that finished)."""

PANEL_CSS = (
    """
#status { min-height: 3.5em; }
.frame-image img { image-rendering: pixelated; width: 100%; height: auto; object-fit: contain; }
#scene-frame iframe { width: 100%; height: 620px; border: 1px solid #8884; border-radius: 6px; }
"""
    + SPLIT_CSS
    + PRESENTER_CSS
)

SCENE_PATH = "scene"  # the proxy's route (server.SCENE_PREFIX), relative to the page


# Runs in the page before `on_load`: the tab's id, kept in sessionStorage (per tab, across
# reloads; localStorage would be shared by every tab). Plain-HTTP remote origins have no
# crypto.randomUUID, so it falls back to getRandomValues, then to Math.random and the clock.
# A tab the browser duplicates ("Duplicate tab", or window.open of this page) starts with a
# copy of its opener's sessionStorage, so with its id and session: one tab would then see and
# record the other's scene. So each page holds its id for as long as it lives, and a page
# that starts with a stored id someone holds takes a fresh one.
# - Where the browser has Web Locks (a secure context: https, or the loopback address), the
#   hold is a lock named by the id. The browser itself answers whether it is held, however
#   busy the holder's page is (a page drawing the 3-D scene in software can be busy for
#   seconds). A reload's old page lets go of its lock as it goes; the new one retries for a
#   second in case that release is still on its way.
# - Elsewhere (plain HTTP to a remote host), the page asks on a BroadcastChannel and a live
#   holder answers; a holder too busy to answer within 300 ms is missed.
TAB_ID_JS = """async (ignored) => {
  const key = "page4d-tab";
  if (window.page4dTab) { return window.page4dTab.id; }  // this page has its id already
  const fresh = () => {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") { return c.randomUUID(); }
    if (c && typeof c.getRandomValues === "function") {
      return Array.from(c.getRandomValues(new Uint8Array(16)),
        (b) => b.toString(16).padStart(2, "0")).join("");
    }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + "-"
      + Math.random().toString(36).slice(2);
  };
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const locks = window.isSecureContext && navigator.locks ? navigator.locks : null;
  const channels = typeof BroadcastChannel === "function";
  // Take the lock of `id` if no page holds it, and keep it until this page goes.
  const hold = (id) => new Promise((resolve) => {
    locks.request(key + ":" + id, {ifAvailable: true}, (lock) => {
      resolve(lock !== null);
      return lock === null ? undefined : new Promise(() => {});
    }).catch(() => resolve(false));
  });
  const heldByLock = async (id) => {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (await hold(id)) { return false; }
      await wait(200);  // a reload's old page may still be letting go
    }
    return true;
  };
  const heldByChannel = async (id) => {
    const ticket = Math.random();
    let taken = false;
    const asking = new BroadcastChannel(key);
    asking.onmessage = (event) => {
      const said = event.data || {};
      if (said.id === id && (said.held || said.ticket < ticket)) { taken = true; }
    };
    asking.postMessage({id: id, ticket: ticket, held: false});
    await wait(300);  // a live holder that is not busy answers in ms
    asking.close();
    return taken;
  };
  let id = null;
  try { id = window.sessionStorage.getItem(key); } catch (error) { id = null; }
  const stored = Boolean(id && /^[A-Za-z0-9-]{8,64}$/.test(id));
  if (!stored) {
    id = fresh();
    if (locks) { await hold(id); }
  } else if (locks ? await heldByLock(id) : channels && await heldByChannel(id)) {
    id = fresh();
    if (locks) { await hold(id); }
  }
  try { window.sessionStorage.setItem(key, id); } catch (error) { /* a new id per load */ }
  const held = {id: id, channel: null};
  if (!locks && channels) {
    held.channel = new BroadcastChannel(key);
    held.channel.onmessage = (event) => {
      const said = event.data || {};
      if (said.id === id && !said.held) { held.channel.postMessage({id: id, held: true}); }
    };
  }
  window.page4dTab = held;
  return id;
}"""


def scene_url(session: str) -> str:
    """The address of a session's scene, relative to the panel's page (same origin)."""
    return f"{SCENE_PATH}/{session}/"


def scene_box_html(session: str, split: bool) -> str:
    """The scene box of a session: its scene, or with the split view on its two scenes."""
    url = scene_url(session)
    return split_scene_html(url) if split else scene_iframe_html(url)


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
    sessions: PanelSessions,
    *,
    device: str = "auto",
    precision: str = "auto",
    title: str = "PAGE-4D viewer",
    index: str | None = None,
) -> gr.Blocks:
    """Lay out the Gradio page and wire its callbacks to the sessions.

    Args:
        sessions: The open sessions: each page gets its own controller and scene, opened
            when the page loads and closed when it goes; `SessionRegistry.single(controller)`
            gives every page one controller (tests; no embedded scene).
        device: Device preselected in the Model section ("auto", "cpu", "cuda", ...).
        precision: Precision preselected ("auto", "fp32", "bf16", "fp16").
        title: Browser tab title.
        index: A batch index (folder or index.sqlite) to list in the Dataset tab at load.

    Returns:
        The `gradio.Blocks`, queued (model runs one at a time; a second user sees a queue
        position), not launched. Launch it with `css=PANEL_CSS`.
    """
    setup = PanelSetup(sessions, index)
    tabs: list[PanelTab] = [kind() for kind in RESULT_TABS]
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        widgets, presenter = _layout(setup, tabs, device, precision)
        callbacks = PanelCallbacks(sessions, widgets, tabs, scene_box_html)
        panel = Panel(demo, widgets, callbacks, tabs)
        _wire(panel)
        wire_presenter(panel, presenter)
        for tab in tabs:
            tab.wire(panel)
        panel.start_polling(widgets.timer)
    demo.queue(default_concurrency_limit=1)
    return demo


def _layout(
    setup: PanelSetup, tabs: list[PanelTab], device: str, precision: str
) -> tuple[PanelWidgets, PresenterControls]:
    """The page: the clip and run controls beside the stage (the scene and the bar under it
    with the frame slider, and presenter mode's controls: `presenter.py`), the result tabs
    under them."""
    sessions = setup.sessions
    samples = list(sessions.samples)
    first_kind = SOURCE_EXAMPLE if samples else SOURCE_UPLOAD
    gr.Markdown(
        "## PAGE-4D viewer\nRun PAGE-4D on a clip, play it back in 4-D, inspect the learned "
        "dynamic mask and compare the masked and unmasked camera poses."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=340):
            sources = _source_inputs(sessions, samples, first_kind)
            sampling = _sampling_inputs()
            model = _model_inputs(sessions.backend, device, precision)
            actions = _run_and_open(sessions)
        with gr.Column(scale=2, min_width=480, elem_id="stage"):
            with gr.Row(elem_id="stage-options", equal_height=True):
                split_toggle = gr.Checkbox(
                    False, label="Split view: masked | unmasked", elem_id="split-toggle",
                    interactive=sessions.embeds_scenes,
                )  # fmt: skip
                enter = enter_button()
            split_labels = gr.HTML("", elem_id="split-labels-box", visible=False)
            scene = gr.HTML(scene_iframe_html(None), elem_id="scene")
            with gr.Row(elem_id="stage-bar", equal_height=True):
                play = bar_before_slider()
                frame = gr.Slider(
                    0, 1, value=0, step=1, label="Frame (follows the scene's timeline)",
                    elem_id="frame", scale=3,
                )  # fmt: skip
                presenter = bar_after_slider(enter, play, sessions.mask_opacity)
    # Each tab's widgets inside its own gr.Tab: anything placed directly in a gr.Tabs shifts
    # the order Gradio gives the tabs after it, and each of those gains a second button.
    with gr.Tabs():
        for tab in tabs:
            with gr.Tab(tab.label, id=tab.tab_id, elem_id=tab.elem_id):
                tab.build(setup)
    widgets = PanelWidgets(
        source_kind=gr.State(first_kind),
        version=gr.State(-1),
        synced=gr.State(None),
        tab_id=gr.Textbox(visible=False, elem_id="tab-id"),
        example_tab=sources.example_tab,
        upload_tab=sources.upload_tab,
        path_tab=sources.path_tab,
        run_inputs={**sources.inputs, **sampling, **model.by_name()},
        model=model,
        **vars(actions),
        frame=frame,
        scene=scene,
        split_toggle=split_toggle,
        split_labels=split_labels,
        timer=gr.Timer(POLL_SECONDS),
        tab_views=[widget for tab in tabs for widget in tab.view()],
    )
    return widgets, presenter


@dataclass
class _SourceTabs:
    example_tab: gr.Tab
    upload_tab: gr.Tab
    path_tab: gr.Tab
    inputs: dict[str, Component]


def _source_inputs(sessions: PanelSessions, samples: list[str], first: str) -> _SourceTabs:
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
                info=f"Only under: {sessions.data_roots.describe()}",
                elem_id="server-path",
            )
    inputs: dict[str, Component] = {
        "example": example, "uploads": uploads, "server_path": server_path
    }  # fmt: skip
    return _SourceTabs(example_tab, upload_tab, path_tab, inputs)


def _run_and_open(sessions: PanelSessions) -> RunAndOpenWidgets:
    """Run and Cancel, the status line, and the "Open a result" section."""
    backend = sessions.backend
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
            choices=run_choices(sessions.recent_runs()),
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
    return RunAndOpenWidgets(
        run_button, cancel_button, status, result_upload, open_file_button, runs, runs_search,
        refresh_runs_button, open_run_button,
    )  # fmt: skip


def _sampling_inputs() -> dict[str, Component]:
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


def _model_inputs(backend: ModelBackend | None, device: str, precision: str) -> ModelInputs:
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
    return ModelInputs(checkpoint, device_box, precision_box, mask_strength, attention, tracks)


def _wire(panel: Panel) -> None:
    """The page's own events: the source tabs, Run, Cancel, "Open a result", the frame
    slider, the page's load and unload, and its part of the poll."""
    callbacks, widgets = panel.callbacks, panel.widgets
    widgets.example_tab.select(lambda: SOURCE_EXAMPLE, None, widgets.source_kind, **QUICK)
    widgets.upload_tab.select(lambda: SOURCE_UPLOAD, None, widgets.source_kind, **QUICK)
    widgets.path_tab.select(lambda: SOURCE_PATH, None, widgets.source_kind, **QUICK)
    run_event = widgets.run_button.click(
        callbacks.on_run, {widgets.source_kind, *widgets.run_inputs.values()},
        [*widgets.view, widgets.runs], show_progress_on=[widgets.status], trigger_mode="once",
        **RUNS_MODEL,
    )  # fmt: skip
    # cancels= drops a queued run at once; a running one stops at its next progress report.
    widgets.cancel_button.click(
        callbacks.on_cancel, None, widgets.status, cancels=[run_event], **QUICK
    )
    opening = {"show_progress_on": [widgets.status], **OPENS_RESULT}
    widgets.open_file_button.click(
        callbacks.on_open_file, widgets.result_upload, widgets.view, **opening
    )
    widgets.open_run_button.click(callbacks.on_open_run, widgets.runs, widgets.view, **opening)
    for runs_event in (widgets.refresh_runs_button.click, widgets.runs_search.submit):
        runs_event(callbacks.runs_update, widgets.runs_search, widgets.runs, **QUICK)
    checkpoint = widgets.model.checkpoint
    checkpoint.change(callbacks.on_checkpoint, checkpoint, widgets.model.mask_strength)
    split_outputs = [widgets.scene, widgets.split_labels, widgets.split_toggle, widgets.status]
    widgets.split_toggle.input(callbacks.on_split, widgets.split_toggle, split_outputs, **QUICK)
    widgets.frame.input(
        callbacks.on_frame, [widgets.frame, widgets.synced],
        [widgets.synced, widgets.status, *widgets.tab_views], trigger_mode="always_last", **QUICK,
    )  # fmt: skip
    panel.poll([widgets.version, widgets.synced], widgets.view, callbacks.on_poll)
    loaded = [*widgets.view, widgets.runs, widgets.scene, widgets.model.mask_strength]
    loaded += [widgets.split_toggle, widgets.split_labels, widgets.tab_id]
    panel.demo.load(callbacks.on_load, widgets.tab_id, loaded, js=TAB_ID_JS, **QUICK)
    panel.demo.unload(callbacks.on_unload)
