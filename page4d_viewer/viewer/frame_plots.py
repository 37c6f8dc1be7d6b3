"""Per-frame plots linked to the timeline: the current frame marked, a click goes there.

A per-frame plot (frames along x) is drawn once per result with matplotlib
(`plots.figure_picture`), which also says where its frame axis lies (`plots.FrameAxis`). The
page shows it in a `FramePlot`: the picture with the axis in `data-` attributes and a thin
marker. The page itself moves the marker to the panel's frame slider (`MARK_JS`, a few times a
second), so playback never redraws a plot; a click on the picture sends its column back, the
server reads it as a frame with the same `FrameAxis` and moves the timeline, as the frame
slider does.

Browser tests find the plots by the class `frame-plot` and their marker by `frame-mark`
(whose `data-frame` says the frame it marks).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.callbacks import PanelCallbacks, PanelWidgets, Updates, synced_after
from page4d_viewer.viewer.controller import SceneSettings
from page4d_viewer.viewer.plots import FrameAxis, PlotPicture
from page4d_viewer.viewer.tabs.base import QUICK

MARK_JS = """
const sliderInput = () => document.querySelector('#frame input[type=range]');
const place = () => {
  const box = element.querySelector('.frame-plot-box');
  const input = sliderInput();
  if (!box || !input) { return; }
  const picture = box.querySelector('img');
  const mark = box.querySelector('.frame-mark');
  if (!picture || !mark || !picture.naturalWidth || !picture.clientWidth) { return; }
  const axis = box.dataset;
  const frame = Number(input.value);
  const span = (Number(axis.last) - Number(axis.first)) || 1;
  const column = Number(axis.left)
    + (frame - Number(axis.first)) / span * (Number(axis.right) - Number(axis.left));
  const scale = picture.clientWidth / picture.naturalWidth;
  mark.style.left = (picture.offsetLeft + column * scale - 1) + 'px';
  mark.style.top = (picture.offsetTop + Number(axis.top) * scale) + 'px';
  mark.style.height = ((Number(axis.bottom) - Number(axis.top)) * scale) + 'px';
  mark.style.display = 'block';
  mark.dataset.frame = String(frame);
};
const ticker = setInterval(() => {
  if (!element.isConnected) { clearInterval(ticker); return; }
  place();
}, 100);
element.addEventListener('click', (event) => {
  const picture = event.target.closest('.frame-plot-box img');
  if (!picture || !picture.naturalWidth) { return; }
  const box = picture.getBoundingClientRect();
  trigger('click', {column: (event.clientX - box.left) * picture.naturalWidth / box.width});
});
"""
"""Runs once per plot on the page (`element` is the plot): moves its marker to the frame
slider's value every 100 ms (the column `FrameAxis.column_at` gives, scaled to the drawn
picture), and sends a click's picture column to the server (the plot's `click` event)."""

PLOT_CSS = """
.frame-plot-box { position: relative; display: block; cursor: crosshair; }
.frame-plot-box img { display: block; width: 100%; max-width: 800px; height: auto; }
.frame-plot-box .frame-mark {
  position: absolute; display: none; width: 2px; pointer-events: none;
  background: rgba(220, 40, 40, 0.85);
}
.frame-plot-title { font-size: 0.9em; margin: 0 0 4px 0; }
"""


@dataclass
class FramePlot:
    """A per-frame plot on the page and the axis of the picture it shows.

    Attributes:
        picture: the plot (a `gr.HTML`, class `frame-plot`), its marker and click handler.
        axis: `plots.FrameAxis` of the shown picture (None: no picture yet), which reads a
            click's column as a frame.
        title: the line above the picture.
    """

    picture: gr.HTML
    axis: gr.State
    title: str

    def update(self, drawn: PlotPicture | None) -> Updates:
        """The plot showing `drawn` (None: empty, no marker)."""
        if drawn is None:
            return {self.picture: "", self.axis: None}
        return {self.picture: picture_html(drawn, self.title), self.axis: drawn.axis}

    def wire(self, callbacks: PanelCallbacks, widgets: PanelWidgets) -> None:
        """A click on the plot moves the timeline (the scene, the frame slider, every tab)."""

        def on_click(
            axis: FrameAxis | None,
            synced: SceneSettings | None,
            event: gr.EventData,
            request: gr.Request | None = None,
        ) -> Updates:
            return jump_to_click(callbacks, widgets, axis, synced, event, request)

        outputs = [widgets.frame, widgets.synced, widgets.status, *widgets.tab_views]
        self.picture.click(on_click, [self.axis, widgets.synced], outputs, **QUICK)


def frame_plot(elem_id: str, title: str) -> FramePlot:
    """Make an empty per-frame plot (inside the layout being built)."""
    picture = gr.HTML(
        "", elem_id=elem_id, elem_classes=["frame-plot"], js_on_load=MARK_JS,
        css_template=PLOT_CSS, min_height=40,
    )  # fmt: skip
    return FramePlot(picture, gr.State(None), title)


def picture_html(drawn: PlotPicture, title: str) -> str:
    """The plot's HTML: its title, the picture (PNG) with its frame axis in `data-`
    attributes (picture pixels), and the marker the page moves."""
    axis = drawn.axis
    attributes = " ".join(
        f'data-{name}="{value:.3f}"'
        for name, value in (
            ("left", axis.left), ("right", axis.right), ("first", axis.first),
            ("last", axis.last), ("top", axis.top), ("bottom", axis.bottom),
        )
    )  # fmt: skip
    label = html.escape(title)
    return (
        f'<p class="frame-plot-title">{label}</p>'
        f'<div class="frame-plot-box" {attributes} data-frames="{axis.num_frames}">'
        f'<img src="{png_data_url(drawn)}" alt="{label}" draggable="false">'
        '<div class="frame-mark"></div></div>'
    )


def png_data_url(drawn: PlotPicture) -> str:
    """The picture as a PNG `data:` address (a plot is a few tens of kB)."""
    buffer = io.BytesIO()
    Image.fromarray(drawn.image).save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def clicked_column(event: gr.EventData) -> float | None:
    """The picture column a plot's click reports (None: the event carries none)."""
    data: Any = getattr(event, "_data", None)
    column = data.get("column") if isinstance(data, dict) else None
    return float(column) if isinstance(column, (int, float)) else None


def jump_to_click(
    callbacks: PanelCallbacks,
    widgets: PanelWidgets,
    axis: FrameAxis | None,
    synced: SceneSettings | None,
    event: gr.EventData,
    request: gr.Request | None,
) -> Updates:
    """Move the page's timeline to the frame under a click on a per-frame plot."""
    try:
        session = callbacks.session_of(request)
    except Page4DError as error:
        return callbacks.status_error(error)
    column = clicked_column(event)
    if axis is None or column is None or session.controller.current is None:
        return {widgets.frame: gr.skip()}
    applied = session.controller.set_frame(axis.frame_at(column))
    updates = callbacks.followed(session, synced_after(session, synced, frame=applied), synced)
    return {**updates, widgets.frame: applied}
