"""The "Pose comparison" tab: the camera paths from above, their per-frame differences, the
camera head against the geometry per frame (click a frame to go there), and the ATE / RPE
and depth metrics; a compared run (Compare tab) is drawn with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import PanelSession, Updates, synced_after
from page4d_viewer.viewer.controller import SceneSettings
from page4d_viewer.viewer.tabs.base import QUICK, Panel, PanelSetup, PanelTab

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import Shown


@dataclass
class PoseWidgets:
    """The tab's components."""

    trajectory_plot: gr.Plot
    differences_plot: gr.Plot
    disagreement_image: gr.Image
    disagreement_axis: gr.State  # plots.FrameAxis of the picture: a click's x to a frame
    metrics_table: gr.Dataframe


class PoseComparisonTab(PanelTab):
    """The camera paths, their differences and the metrics of the result on screen."""

    label: ClassVar[str] = "Pose comparison"
    tab_id: ClassVar[str] = "poses"
    widgets: PoseWidgets
    panel: Panel

    def build(self, setup: PanelSetup) -> None:
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
            interactive=False, elem_id="metrics",
        )  # fmt: skip
        self.widgets = PoseWidgets(
            trajectory_plot, differences_plot, disagreement_image, gr.State(None), metrics_table
        )

    def wire(self, panel: Panel) -> None:
        self.panel = panel
        page, widgets = panel.widgets, self.widgets
        widgets.disagreement_image.select(
            self.on_disagreement_click, [widgets.disagreement_axis, page.synced],
            [page.frame, page.synced, *page.tab_views], **QUICK,
        )  # fmt: skip

    def view(self) -> list[Component]:
        widgets = self.widgets
        return [
            widgets.trajectory_plot, widgets.differences_plot, widgets.disagreement_image,
            widgets.disagreement_axis, widgets.metrics_table,
        ]  # fmt: skip

    def show(self, session: PanelSession, shown: Shown | None, settings: SceneSettings) -> Updates:
        if shown is None:
            return {}
        widgets = self.widgets
        poses = session.comparer.pose_views(shown)
        curve = plots.figure_picture(
            plots.disagreement_figure(shown.recon, settings.frame), shown.recon.num_frames
        )
        return {
            widgets.disagreement_image: curve.image,
            widgets.disagreement_axis: curve.axis,
            widgets.trajectory_plot: poses.trajectory,
            widgets.differences_plot: poses.differences,
            widgets.metrics_table: poses.metrics,
        }

    def on_disagreement_click(
        self,
        axis: plots.FrameAxis | None,
        synced: SceneSettings | None,
        event: gr.SelectData,
        request: gr.Request | None = None,
    ) -> Updates:
        """A click on the disagreement curve moves the timeline to the clicked frame."""
        callbacks = self.panel.callbacks
        try:
            session = callbacks.session_of(request)
        except Page4DError as error:
            return callbacks.status_error(error)
        shown = session.controller.current
        if axis is None or shown is None or not isinstance(event.index, (list, tuple)):
            return callbacks.unchanged()
        applied = session.controller.set_frame(axis.frame_at(float(event.index[0])))
        updates = callbacks.followed(session, synced_after(session, synced, frame=applied), synced)
        curve = plots.figure_picture(
            plots.disagreement_figure(shown.recon, applied), shown.recon.num_frames
        )
        return {
            **updates,
            self.panel.widgets.frame: applied,
            self.widgets.disagreement_image: curve.image,
        }
