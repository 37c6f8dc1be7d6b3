"""The panel's "Inside the model" tab: camera-token attention, feature PCA and the point probe.

Layout (`build_tab`, called inside the panel's result tabs) and thin callbacks
(`InspectCallbacks`): each reads the widgets, calls one `Inspector` action and returns widget
updates. A click in the Viser scene reaches the page through the tab's own timer, which
brings a new probe to the panel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import PanelWidgets, PerSession, Updates
from page4d_viewer.viewer.inside_views import ATTENTION_CHOICES
from page4d_viewer.viewer.inspector import CURRENT_FRAME, Inspector
from page4d_viewer.viewer.scene.colouring import COLOUR_MODES, DEFAULT_COLOUR_MODE

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import ViewerController

logger = logging.getLogger(__name__)

PROBE_POLL_SECONDS = 1.0
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
    probe_seen: gr.State
    timer: gr.Timer

    @property
    def selectors(self) -> list[gr.components.Component]:
        """The inputs of a refresh, in `InspectCallbacks.on_change`'s order."""
        return [self.layer, self.query, self.variant, self.colour_by, self.feature_layer]

    @property
    def pictures(self) -> list[gr.components.Component]:
        """What a refresh changes."""
        return [self.note, self.grid, self.special, self.feature, self.mask, self.probe_text]


def build_tab() -> InspectWidgets:
    """The "Inside the model" tab (call inside a `gr.Tabs()`)."""
    with gr.Tab("Inside the model", id="inside", elem_id="inside-tab"):
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
        # Inside the tab: anything placed directly in the parent gr.Tabs becomes a tab itself.
        probe_seen, timer = gr.State(0), gr.Timer(PROBE_POLL_SECONDS)
    return InspectWidgets(
        note, layer, query, variant, colour_by, grid, special, feature_layer, feature, mask,
        probe_text, probe_image, probe_seen, timer,
    )  # fmt: skip


class InspectCallbacks:
    """One method per event of the tab; each calls one `Inspector` action."""

    def __init__(
        self,
        controller_of: Callable[[gr.Request | None], ViewerController],
        widgets: InspectWidgets,
        panel: PanelWidgets,
    ):
        self.controller_of = controller_of
        self.i = widgets
        self.w = panel
        # One inspector per session (its scene's clicks, its probe), gone with its controller.
        self._inspectors = PerSession(controller_of, Inspector)

    def inspector_of(self, request: gr.Request | None) -> Inspector:
        """The inspector of the page's session (Page4DError when it is not open)."""
        return self._inspectors.of(request)

    def on_result(self, frame: float, request: gr.Request | None = None) -> Updates:
        """A new result on screen: fresh selector choices, defaults, pictures."""
        try:
            inspector = self.inspector_of(request)
        except Page4DError:
            return {self.i.probe_seen: gr.skip()}
        i, recon = self.i, inspector.recon()
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
            i.layer: gr.update(choices=layers, value=layers[0] if layers else None),
            i.query: gr.update(choices=query_choices, value=CURRENT_FRAME),
            i.variant: ATTENTION_CHOICES[0],
            i.colour_by: DEFAULT_COLOUR_MODE,
            i.feature_layer: gr.update(choices=features, value=features[-1] if features else None),
            i.probe_image: inspector.probe_picture(int(frame or 0)),
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
        i, frame = self.i, int(frame or 0)
        try:
            inspector = self.inspector_of(request)
            choice = inspector.resolve(layer, query, variant, frame)
            inspector.set_colouring(colour_by, choice)
            view = inspector.view(choice, feature_layer, frame)
        except Page4DError as error:
            return {i.note: f"**Error:** {' '.join(str(error).split())}"}
        return {
            i.note: view.note,
            i.grid: view.grid,
            i.special: view.special,
            i.feature: view.feature,
            i.mask: view.mask,
            i.probe_text: inspector.probe_text(),
        }

    def on_image_click(
        self, frame: float, event: gr.SelectData, request: gr.Request | None = None
    ) -> Updates:
        """A click on the panel's frame overlay: probe that pixel of the current frame."""
        return self._probed(request, int(frame or 0), event, self.w.overlay_image)

    def on_probe_click(
        self, frame: float, event: gr.SelectData, request: gr.Request | None = None
    ) -> Updates:
        """A click on the probe picture: probe that pixel of the frame it shows."""
        try:
            shown = self.inspector_of(request).pixel
        except Page4DError as error:
            return {self.i.probe_text: f"**Error:** {' '.join(str(error).split())}"}
        picture_frame = shown.frame if shown is not None else int(frame or 0)
        return self._probed(request, picture_frame, event, None)

    def on_tick(self, seen: int, frame: float, request: gr.Request | None = None) -> Updates:
        """Bring a probe made in the scene to the panel."""
        try:
            inspector = self.inspector_of(request)
        except Page4DError:
            return {self.i.probe_seen: gr.skip()}
        version = inspector.probe_version
        if version == seen:
            return {self.i.probe_seen: gr.skip()}
        return {
            self.i.probe_seen: version,
            self.i.probe_text: inspector.probe_text(),
            self.i.probe_image: inspector.probe_picture(int(frame or 0)),
        }

    def _probed(
        self,
        request: gr.Request | None,
        frame: float,
        event: gr.SelectData,
        clicked: gr.Image | None,
    ) -> dict[gr.components.Component, Any]:
        i = self.i
        try:
            inspector = self.inspector_of(request)
            x, y = event.index
            enlarged = clicked is not None  # the panel draws its frames enlarged
            inspector.probe_image_click(int(frame), float(x), float(y), enlarged)
        except (Page4DError, TypeError, ValueError) as error:
            return {i.probe_text: f"**Error:** {' '.join(str(error).split())}"}
        picture = inspector.probe_picture(int(frame))
        updates: Updates = {
            i.probe_seen: inspector.probe_version,
            i.probe_text: inspector.probe_text(),
            i.probe_image: picture,
        }
        if clicked is not None and picture is not None:
            updates[clicked] = plots.enlarge(picture, plots.PANEL_IMAGE_WIDTH)
        return updates


def wire(callbacks: InspectCallbacks, i: InspectWidgets, w: PanelWidgets) -> None:
    """Connect the tab's events: its selectors, the panel's frame and result, the probe."""
    light: dict[str, Any] = {"concurrency_limit": None, "show_progress": "hidden"}
    refreshed = [*i.pictures, i.layer, i.query, i.variant, i.colour_by, i.feature_layer]
    w.version.change(
        callbacks.on_result, w.frame, [*refreshed, i.probe_image], **light
    )  # fmt: skip
    for selector in i.selectors:
        selector.input(
            callbacks.on_change, [*i.selectors, w.frame], i.pictures,
            trigger_mode="always_last", **light,
        )  # fmt: skip
    w.frame.change(
        callbacks.on_change, [*i.selectors, w.frame], i.pictures,
        trigger_mode="always_last", **light,
    )  # fmt: skip
    probed = [i.probe_seen, i.probe_text, i.probe_image]
    w.overlay_image.select(
        callbacks.on_image_click, w.frame, [*probed, w.overlay_image], **light
    )  # fmt: skip
    i.probe_image.select(callbacks.on_probe_click, w.frame, probed, **light)
    i.timer.tick(callbacks.on_tick, [i.probe_seen, w.frame], probed, **light)
