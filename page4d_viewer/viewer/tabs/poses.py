"""The "Pose comparison" tab: the camera paths from above, their per-frame differences, the
camera head against the geometry per frame, and the ATE / RPE and depth metrics; a compared
run (Compare tab) is drawn with them. The per-frame plots mark the current frame and a click
on one goes to its frame (`frame_plots`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
from gradio.components import Component

from page4d_viewer.viewer import plot_cache, plots
from page4d_viewer.viewer.callbacks import PanelSession, Updates
from page4d_viewer.viewer.controller import SceneSettings
from page4d_viewer.viewer.frame_plots import FramePlot, frame_plot
from page4d_viewer.viewer.tabs.base import Panel, PanelSetup, PanelTab

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import Shown


@dataclass
class PoseWidgets:
    """The tab's components."""

    trajectory_plot: gr.Plot
    differences: FramePlot
    disagreement: FramePlot
    metrics_table: gr.Dataframe


class PoseComparisonTab(PanelTab, label="Pose comparison", tab_id="poses"):
    """The camera paths, their differences and the metrics of the result on screen."""

    widgets: PoseWidgets

    def build(self, setup: PanelSetup) -> None:
        with gr.Row():
            trajectory_plot = gr.Plot(label="Trajectories from above", show_label=False)
            # Per-frame plots are pictures that mark the current frame; a click goes there.
            differences = frame_plot(
                "pose-differences", "Per-frame differences: click a frame to go there"
            )
        disagreement = frame_plot(
            "disagreement", "Camera head vs geometry per frame: click a frame to go there"
        )
        metrics_table = gr.Dataframe(
            headers=plots.METRICS_HEADERS, label="ATE / RPE, depth AbsRel / δ<1.25",
            interactive=False, elem_id="metrics",
        )  # fmt: skip
        self.widgets = PoseWidgets(trajectory_plot, differences, disagreement, metrics_table)

    def wire(self, panel: Panel) -> None:
        self.panel = panel
        for plot in (self.widgets.differences, self.widgets.disagreement):
            plot.wire(panel.callbacks, panel.widgets)

    def view(self) -> list[Component]:
        widgets = self.widgets
        return [
            widgets.trajectory_plot, widgets.differences.picture, widgets.differences.axis,
            widgets.disagreement.picture, widgets.disagreement.axis, widgets.metrics_table,
        ]  # fmt: skip

    def show(self, session: PanelSession, shown: Shown | None, settings: SceneSettings) -> Updates:
        """Draw the plots once per result: the page moves their frame marks itself."""
        if shown is None:
            return {}
        widgets, plot = self.widgets, self.widgets.trajectory_plot
        # Drawn once per result (and B) for every session and page: see plot_cache.
        second = session.comparer.compared_with(shown)
        poses = plot_cache.pose_pictures(shown.recon, second, plot.postprocess, plot.format)
        curve = plot_cache.disagreement_picture(shown.recon)
        return {
            **widgets.disagreement.update(curve),
            **widgets.differences.update(poses.differences),
            widgets.trajectory_plot: poses.trajectory,
            widgets.metrics_table: poses.metrics_rows(),
        }
