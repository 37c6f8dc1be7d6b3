"""The panel's "Inside the model" tab: camera-token attention, feature PCA and the point probe.

`InsideTab` lays out the tab and holds thin callbacks: each reads the widgets, calls one
action of the session's `Inspector` and returns widget updates. A click in the Viser scene
reaches the page through the page's poll, which brings a new probe to the tab.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.result.inspection import ATTENTION_VARIANTS
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import Updates
from page4d_viewer.viewer.frame_plots import FramePlot, frame_plot
from page4d_viewer.viewer.inside_views import ATTENTION_CHOICES, AttentionChoice, attention_values
from page4d_viewer.viewer.inspector import CURRENT_FRAME, Inspector
from page4d_viewer.viewer.scene.colouring import COLOUR_MODES, DEFAULT_COLOUR_MODE
from page4d_viewer.viewer.tabs.base import QUICK, Panel, PanelSetup, PanelTab, error_line
from page4d_viewer.viewer.tabs.mask import MaskTab

logger = logging.getLogger(__name__)

IMAGE_HEIGHT = "auto"  # each box takes its picture's shape (the panel's CSS draws it full width)
FILL = ["frame-image"]  # the panel's CSS class for pictures drawn at their box's width


@dataclass
class InspectWidgets:
    """The tab's components."""

    note: gr.Markdown
    layer: gr.Dropdown
    query: gr.Dropdown
    variant: gr.Radio
    colour_by: gr.Radio
    grid: gr.Image
    special: gr.Markdown
    feature_layer: gr.Dropdown
    feature: gr.Image
    mask: gr.Image
    probe_text: gr.Markdown
    probe_image: gr.Image
    probe_seen: gr.State  # the probe version the page shows
    attention_plot: FramePlot  # attention per key frame: marks the frame, a click goes there
    attention_drawn: gr.State  # (result version, layer, query) the plot shows, or None

    @property
    def selectors(self) -> list[gr.Dropdown | gr.Radio]:
        """The inputs of a refresh, in `InsideTab.on_change`'s order."""
        return [self.layer, self.query, self.variant, self.colour_by, self.feature_layer]

    @property
    def pictures(self) -> list[Component]:
        """What a refresh changes."""
        return [self.note, self.grid, self.special, self.feature, self.mask, self.probe_text]


class InsideTab(PanelTab, label="Inside the model", tab_id="inside", elem_id="inside-tab"):
    """Camera-token attention, feature PCA and the point probe of the result on screen; one
    method per event, each calling one action of the session's `Inspector`."""

    widgets: InspectWidgets
    panel: Panel
    overlay_image: gr.Image  # the Mask and depth tab's frame overlay: a click there probes

    def build(self, setup: PanelSetup) -> None:
        note = gr.Markdown("", elem_id="inspect-note")
        with gr.Row():
            layer = gr.Dropdown([], label="Layer (masked global)", elem_id="attention-layer")
            query = gr.Dropdown(
                [("current frame", CURRENT_FRAME)], value=CURRENT_FRAME, label="Query frame",
                elem_id="attention-query",
            )  # fmt: skip
            variant = gr.Radio(
                list(ATTENTION_CHOICES), value=ATTENTION_CHOICES[0], label="Attention",
                elem_id="attention-variant",
            )  # fmt: skip
        colour_by = gr.Radio(
            list(COLOUR_MODES), value=DEFAULT_COLOUR_MODE, label="Colour points by",
            elem_id="colour-points-by",
        )  # fmt: skip
        grid = gr.Image(
            label="Camera-token attention over the key frames", interactive=False,
            elem_id="attention-grid", format="png",
        )  # fmt: skip
        special = gr.Markdown("", elem_id="attention-special")
        attention_plot = frame_plot(
            "attention-share", "Attention per key frame: click a frame to go there"
        )
        with gr.Row():
            feature_layer = gr.Dropdown([], label="Feature layer", elem_id="feature-layer")
        with gr.Row():
            feature = gr.Image(
                label="Feature PCA (current frame)", interactive=False, height=IMAGE_HEIGHT,
                elem_classes=FILL,
                elem_id="feature-pca",
            )  # fmt: skip
            mask = gr.Image(
                label="Mask head: dynamic probability", interactive=False, height=IMAGE_HEIGHT,
                elem_classes=FILL,
                elem_id="mask-score",
            )  # fmt: skip
        with gr.Row():
            probe_image = gr.Image(
                label="Probe (click a pixel)", interactive=False, height=IMAGE_HEIGHT,
                elem_classes=FILL,
                elem_id="probe-image", format="png",
            )  # fmt: skip
            probe_text = gr.Markdown("", elem_id="probe-text")
        probe_seen = gr.State(0)
        self.widgets = InspectWidgets(
            note, layer, query, variant, colour_by, grid, special, feature_layer, feature, mask,
            probe_text, probe_image, probe_seen, attention_plot, gr.State(None),
        )  # fmt: skip

    def wire(self, panel: Panel) -> None:
        """Connect the tab's selectors, the panel's frame and result, and the probe's clicks
        (on its picture, on the frame overlay, and in the scene, which the poll brings)."""
        self.panel = panel
        self.overlay_image = panel.find(MaskTab).widgets.overlay_image
        widgets, page = self.widgets, panel.widgets
        selectors, pictures = widgets.selectors, widgets.pictures
        refreshed = [*pictures, *selectors, widgets.probe_image]
        page.version.change(self.on_result, page.frame, refreshed, **QUICK)
        for selector in selectors:
            selector.input(
                self.on_change, [*selectors, page.frame], pictures,
                trigger_mode="always_last", **QUICK,
            )  # fmt: skip
        page.frame.change(
            self.on_change, [*selectors, page.frame], pictures, trigger_mode="always_last",
            **QUICK,
        )  # fmt: skip
        probed = [widgets.probe_seen, widgets.probe_text, widgets.probe_image]
        self.overlay_image.select(
            self.on_image_click, page.frame, [*probed, self.overlay_image], **QUICK
        )
        widgets.probe_image.select(self.on_probe_click, page.frame, probed, **QUICK)
        panel.poll([widgets.probe_seen, page.frame], probed, self.on_poll)
        self.wire_attention_plot(panel)

    def wire_attention_plot(self, panel: Panel) -> None:
        """The attention plot is drawn when the result, the layer or the query frame change
        (the page moves its frame mark); a click on it moves the timeline."""
        widgets, page = self.widgets, panel.widgets
        plot = widgets.attention_plot
        inputs = [widgets.layer, widgets.query, page.frame, widgets.attention_drawn]
        outputs = [plot.picture, plot.axis, widgets.attention_drawn]
        for trigger in (page.version.change, widgets.layer.input, widgets.query.input):
            trigger(self.on_attention_plot, inputs, outputs, **QUICK)
        # With "current frame" as the query, the query follows the frame (nearest recorded).
        page.frame.change(
            self.on_attention_plot, inputs, outputs, trigger_mode="always_last", **QUICK
        )
        plot.wire(panel.callbacks, page)

    def on_attention_plot(
        self,
        layer: int | None,
        query: int | None,
        frame: float,
        drawn: tuple[int, int, int] | None,
        request: gr.Request | None = None,
    ) -> Updates:
        """Draw the attention per key frame of the selected layer and query frame, unless
        the page shows it already (`drawn`)."""
        widgets = self.widgets
        plot = widgets.attention_plot
        try:
            inspector = self._inspector(request)
            choice = inspector.resolve(layer, query, None, int(frame or 0))
        except Page4DError:
            return {widgets.attention_drawn: gr.skip()}
        shown, recon = inspector.controller.current, inspector.recon()
        if choice is None or shown is None or recon is None:
            return {**plot.update(None), widgets.attention_drawn: None}
        key = (shown.version, choice.layer, choice.query)
        if drawn is not None and tuple(drawn) == key:
            return {widgets.attention_drawn: gr.skip()}
        maps = recon.inside.attention if recon.inside is not None else None
        attention = {
            name: attention_values(recon, AttentionChoice(choice.layer, choice.query, name))
            for name in ATTENTION_VARIANTS
            if maps is not None and name in maps
        }
        figure = plots.attention_share_figure(attention, choice.layer, choice.query)
        drawn_now = plots.figure_picture(figure, recon.num_frames)
        return {**plot.update(drawn_now), widgets.attention_drawn: key}

    def _inspector(self, request: gr.Request | None) -> Inspector:
        """The inspector of the page's session (Page4DError when it is not open)."""
        return self.panel.callbacks.session_of(request).inspector

    def on_poll(self, values: dict[Component, Any], request: gr.Request | None) -> Updates:
        """The tab's part of the page's poll: `on_tick` with its inputs."""
        seen, frame = values[self.widgets.probe_seen], values[self.panel.widgets.frame]
        return self.on_tick(seen, frame, request)

    def on_result(self, frame: float, request: gr.Request | None = None) -> Updates:
        """A new result on screen: fresh selector choices, defaults, pictures."""
        try:
            inspector = self._inspector(request)
        except Page4DError:
            return {self.widgets.probe_image: gr.skip()}
        widgets, recon = self.widgets, inspector.recon()
        inside = None if recon is None else recon.inside
        layers = [] if inside is None else list(inside.attention_layers)
        queries = [] if inside is None else list(inside.attention_query_frames)
        features = [] if inside is None else list(inside.feature_layers)
        query_choices = [("current frame", CURRENT_FRAME)]
        query_choices += [(f"frame {q}", q) for q in queries]
        updates = self.on_change(
            layers[0] if layers else None, CURRENT_FRAME, ATTENTION_CHOICES[0],
            DEFAULT_COLOUR_MODE, features[-1] if features else None, frame, request,
        )  # fmt: skip
        return {
            **updates,
            widgets.layer: gr.update(choices=layers, value=layers[0] if layers else None),
            widgets.query: gr.update(choices=query_choices, value=CURRENT_FRAME),
            widgets.variant: ATTENTION_CHOICES[0],
            widgets.colour_by: DEFAULT_COLOUR_MODE,
            widgets.feature_layer: gr.update(
                choices=features, value=features[-1] if features else None
            ),
            widgets.probe_image: inspector.probe_picture(int(frame or 0)),
        }

    def on_change(
        self,
        layer: int | None,
        query: int | None,
        variant: str,
        colour_by: str,
        feature_layer: int | None,
        frame: float,
        request: gr.Request | None = None,
    ) -> Updates:
        """A selector or the frame moved: new pictures, and the points' colouring."""
        widgets, frame = self.widgets, int(frame or 0)
        try:
            inspector = self._inspector(request)
            choice = inspector.resolve(layer, query, variant, frame)
            inspector.set_colouring(colour_by, choice)
            view = inspector.view(choice, feature_layer, frame)
        except Page4DError as error:
            return {widgets.note: error_line(error)}
        return {
            widgets.note: view.note,
            widgets.grid: view.grid,
            widgets.special: view.special,
            widgets.feature: view.feature,
            widgets.mask: view.mask,
            widgets.probe_text: inspector.probe_text(),
        }

    def on_image_click(
        self, frame: float, event: gr.SelectData, request: gr.Request | None = None
    ) -> Updates:
        """A click on the panel's frame overlay: probe that pixel of the current frame."""
        return self._probed(request, int(frame or 0), event, self.overlay_image)

    def on_probe_click(
        self, frame: float, event: gr.SelectData, request: gr.Request | None = None
    ) -> Updates:
        """A click on the probe picture: probe that pixel of the frame it shows."""
        try:
            shown = self._inspector(request).pixel
        except Page4DError as error:
            return {self.widgets.probe_text: error_line(error)}
        picture_frame = shown.frame if shown is not None else int(frame or 0)
        return self._probed(request, picture_frame, event, None)

    def on_tick(self, seen: int, frame: float, request: gr.Request | None = None) -> Updates:
        """Bring a probe made in the scene to the panel."""
        try:
            inspector = self._inspector(request)
        except Page4DError:
            return {self.widgets.probe_seen: gr.skip()}
        version = inspector.probe_version
        if version == seen:
            return {self.widgets.probe_seen: gr.skip()}
        return {
            self.widgets.probe_seen: version,
            self.widgets.probe_text: inspector.probe_text(),
            self.widgets.probe_image: inspector.probe_picture(int(frame or 0)),
        }

    def _probed(
        self,
        request: gr.Request | None,
        frame: float,
        event: gr.SelectData,
        clicked: gr.Image | None,
    ) -> Updates:
        widgets = self.widgets
        try:
            inspector = self._inspector(request)
            x, y = event.index
            enlarged = clicked is not None  # the panel draws its frames enlarged
            inspector.probe_image_click(int(frame), float(x), float(y), enlarged)
        except (Page4DError, TypeError, ValueError) as error:
            return {widgets.probe_text: error_line(error)}
        picture = inspector.probe_picture(int(frame))
        updates: Updates = {
            widgets.probe_seen: inspector.probe_version,
            widgets.probe_text: inspector.probe_text(),
            widgets.probe_image: picture,
        }
        if clicked is not None and picture is not None:
            updates[clicked] = plots.enlarge(picture, plots.PANEL_IMAGE_WIDTH)
        return updates
