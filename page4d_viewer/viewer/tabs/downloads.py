"""The "Downloads" tab: the result on screen and its exports (GLB, PLY, TUM, mp4) as files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.callbacks import PanelSession, Updates
from page4d_viewer.viewer.tabs.base import EXPORTS, Panel, PanelSetup, PanelTab

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import SceneSettings, Shown


class DownloadsTab(PanelTab, label="Downloads", tab_id="downloads"):
    """The saved result at once; the exports when asked (they take a while)."""

    prepare_button: gr.Button
    downloads: gr.File

    def build(self, setup: PanelSetup) -> None:
        self.prepare_button = gr.Button("Prepare downloads (result, GLB, PLY, TUM, mp4)")
        self.downloads = gr.File(
            label="Files", file_count="multiple", interactive=False, elem_id="downloads"
        )

    def wire(self, panel: Panel) -> None:
        self.panel = panel
        self.prepare_button.click(self.on_prepare, None, self.downloads, **EXPORTS)

    def view(self) -> list[Component]:
        return [self.downloads]

    def show(self, session: PanelSession, shown: Shown | None, settings: SceneSettings) -> Updates:
        if shown is None:
            return {}
        record = shown.record
        return {self.downloads: [str(record.result_path)] if record is not None else None}

    def on_prepare(self, request: gr.Request | None = None) -> list[str]:
        """Write the exports of the page's result; a failure is Gradio's error pop-up."""
        try:
            session = self.panel.callbacks.session_of(request)
            return [str(path) for path in session.controller.exports()]
        except Page4DError as error:
            raise gr.Error(" ".join(str(error).split())) from error
