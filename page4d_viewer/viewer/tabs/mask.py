"""The "Mask and depth" tab: the mask overlay's settings and the current frame's pictures
(the frame with its dynamic mask, depth, confidence, and the ground truth's when the result
has it). The pictures follow the timeline; a click on the overlay probes a pixel (the
"Inside the model" tab wires that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.callbacks import PanelSession, Updates, synced_after
from page4d_viewer.viewer.controller import SceneSettings
from page4d_viewer.viewer.frame_plots import FramePlot, frame_plot
from page4d_viewer.viewer.plot_cache import mask_share_picture
from page4d_viewer.viewer.tabs.base import QUICK, Panel, PanelSetup, PanelTab

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import Shown
    from page4d_viewer.viewer.plots import FrameImages

IMAGE_HEIGHT = "auto"  # the box takes the picture's own shape: no empty bands around it
MASK_OVERLAY_CHOICES = (
    ("continuous probability", "continuous"),
    ("above the threshold only", "threshold"),
)
"""The tab's words for settings.MASK_OVERLAYS."""


@dataclass
class MaskWidgets:
    """The tab's components."""

    opacity: gr.Slider
    threshold: gr.Slider
    mask_overlay: gr.Radio  # "continuous" or "threshold"
    overlay_image: gr.Image
    depth_image: gr.Image
    confidence_image: gr.Image
    ground_truth_depth_image: gr.Image
    ground_truth_mask_image: gr.Image
    share: FramePlot  # the mask's share of each frame: marks the frame, a click goes there

    @property
    def images(self) -> list[gr.Image]:
        """The frame pictures, in `plots.FrameImages` field order."""
        return [
            self.overlay_image, self.depth_image, self.confidence_image,
            self.ground_truth_depth_image, self.ground_truth_mask_image,
        ]  # fmt: skip

    @property
    def settings(self) -> list[gr.Slider | gr.Radio]:
        """The mask overlay's settings, in `MaskTab.on_mask`'s order."""
        return [self.opacity, self.threshold, self.mask_overlay]


def frame_image(label: str, visible: bool) -> gr.Image:
    """A frame picture: drawn large (plots.PANEL_IMAGE_WIDTH) with sharp pixels, and a
    fullscreen button to look closer."""
    return gr.Image(
        label=label, interactive=False, height=IMAGE_HEIGHT, visible=visible,
        buttons=["download", "fullscreen"], elem_classes=["frame-image"],
    )  # fmt: skip


class MaskTab(PanelTab, label="Mask and depth", tab_id="mask"):
    """The mask overlay's settings and the current frame's pictures."""

    widgets: MaskWidgets

    def build(self, setup: PanelSetup) -> None:
        sessions = setup.sessions
        with gr.Row():
            opacity = gr.Slider(
                0, 1, value=sessions.mask_opacity, step=0.05, label="Mask opacity",
                elem_id="mask-opacity",
            )  # fmt: skip
            threshold = gr.Slider(
                0, 1, value=sessions.mask_threshold, step=0.05,
                label="Mask threshold (dynamic probability)", elem_id="mask-threshold",
            )  # fmt: skip
            mask_overlay = gr.Radio(
                list(MASK_OVERLAY_CHOICES), value=sessions.mask_overlay,
                label="Draw the mask", elem_id="mask-overlay",
                info="continuous: every patch in the colour of its probability",
            )  # fmt: skip
        with gr.Row():
            overlay, depth, confidence = (
                frame_image(label, True)
                for label in ("Frame + dynamic mask", "Depth", "Depth confidence (log)")
            )
        with gr.Row():
            truth_depth, truth_mask = (
                frame_image(label, False)
                for label in ("Ground-truth depth", "Ground-truth moving pixels")
            )
        share = frame_plot("mask-share", "Dynamic mask per frame: click a frame to go there")
        self.widgets = MaskWidgets(
            opacity, threshold, mask_overlay, overlay, depth, confidence, truth_depth, truth_mask,
            share,
        )  # fmt: skip

    def wire(self, panel: Panel) -> None:
        self.panel = panel
        page = panel.widgets
        for setting in self.widgets.settings:
            setting.input(
                self.on_mask, [*self.widgets.settings, page.frame, page.synced],
                [self.widgets.overlay_image, page.status, page.synced, *self.share_widgets],
                trigger_mode="always_last", **QUICK,
            )  # fmt: skip
        self.widgets.share.wire(panel.callbacks, page)

    @property
    def share_widgets(self) -> list[Component]:
        """The mask share plot's picture and axis."""
        return [self.widgets.share.picture, self.widgets.share.axis]

    def view(self) -> list[Component]:
        return [*self.widgets.settings, *self.widgets.images, *self.share_widgets]

    def show(self, session: PanelSession, shown: Shown | None, settings: SceneSettings) -> Updates:
        updates: Updates = {
            self.widgets.opacity: settings.mask_opacity,
            self.widgets.threshold: settings.mask_threshold,
        }
        if shown is None:
            return updates
        updates[self.widgets.mask_overlay] = settings.mask_overlay
        updates |= self.share_update(shown, settings.mask_threshold)
        return updates | self.image_updates(session.controller.frame_images(settings.frame))

    def follow(
        self, session: PanelSession, settings: SceneSettings, synced: SceneSettings | None
    ) -> Updates:
        widgets, updates = self.widgets, Updates()
        changed = synced is None or settings != synced
        if synced is None or settings.mask_opacity != synced.mask_opacity:
            updates[widgets.opacity] = settings.mask_opacity
        if synced is None or settings.mask_threshold != synced.mask_threshold:
            updates[widgets.threshold] = settings.mask_threshold
            updates |= self.share_update(session.controller.current, settings.mask_threshold)
        if synced is None or settings.mask_overlay != synced.mask_overlay:
            updates[widgets.mask_overlay] = settings.mask_overlay
        if changed:
            updates |= self.image_updates(session.controller.frame_images(settings.frame))
        return updates

    def share_update(self, shown: Shown | None, threshold: float) -> Updates:
        """The mask share plot, drawn for a threshold (only when it or the result changes:
        the page moves its frame mark during playback)."""
        if shown is None:
            return {}
        # Drawn once per result and threshold for every session and page: see plot_cache.
        return self.widgets.share.update(mask_share_picture(shown.recon, threshold))

    def image_updates(self, images: FrameImages | None) -> Updates:
        """The frame pictures; the ground truth's are shown only when the result has them."""
        if images is None:
            return {}
        pictures = dict(zip(self.widgets.images, images.pictures(), strict=True))
        truth = (self.widgets.ground_truth_depth_image, self.widgets.ground_truth_mask_image)
        return {
            widget: gr.update(value=picture, visible=picture is not None)
            if widget in truth
            else picture
            for widget, picture in pictures.items()
        }

    def on_mask(
        self,
        opacity: float,
        threshold: float,
        mask_overlay: str | None,
        frame: float,
        synced: SceneSettings | None,
        request: gr.Request | None = None,
    ) -> Updates:
        """A mask setting moved: the scene redraws its overlay, the tab its frame overlay."""
        callbacks = self.panel.callbacks
        try:
            session = callbacks.session_of(request)
        except Page4DError as error:
            return callbacks.status_error(error)
        controller = session.controller
        try:
            controller.set_mask_overlay(opacity, threshold, mask_overlay or None)
        except Page4DError as error:
            return callbacks.failed(session, str(error))
        images = controller.frame_images(int(frame or 0))
        if images is None:
            return {self.panel.widgets.status: gr.skip()}
        applied = controller.scene_settings()
        synced_now = synced_after(
            session, synced, mask_opacity=applied.mask_opacity,
            mask_threshold=applied.mask_threshold, mask_overlay=applied.mask_overlay,
        )  # fmt: skip
        page = self.panel.widgets
        updates: Updates = {self.widgets.overlay_image: images.overlay, page.synced: synced_now}
        if synced is None or applied.mask_threshold != synced.mask_threshold:
            updates |= self.share_update(controller.current, applied.mask_threshold)
        return updates
