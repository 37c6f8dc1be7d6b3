"""The panel's Compare tab: a second run ("B") laid over the result on screen.

B is a recent run, a row of the index open in the Dataset tab, or a saved file. Each callback
calls one action of the session's `Comparer` and refreshes the panel's whole result view, so
the pose plots and the scene show B at once; a comparison that cannot be made says why in
this tab (where it was asked for) and in the status line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer import dataset
from page4d_viewer.viewer.callbacks import PanelSession, Updates
from page4d_viewer.viewer.status import run_choices
from page4d_viewer.viewer.tabs.base import OPENS_RESULT, QUICK, Panel, PanelSetup, PanelTab
from page4d_viewer.viewer.tabs.dataset import DatasetTab

logger = logging.getLogger(__name__)

RUN_PREFIX, ROW_PREFIX = "run:", "row:"


@dataclass
class CompareWidgets:
    """The Compare tab's components."""

    compare_choice: gr.Dropdown
    refresh_compare_button: gr.Button
    compare_button: gr.Button
    compare_upload: gr.File
    compare_file_button: gr.Button
    show_second: gr.Checkbox
    clear_button: gr.Button
    compare_status: gr.Markdown  # the tab's own outcome line: its errors show where they arose


class CompareTab(PanelTab, label="Compare", tab_id="compare"):
    """Lay a second run over the first: pick it, compare, show or hide it, clear it."""

    widgets: CompareWidgets

    def build(self, setup: PanelSetup) -> None:
        compare_choice = gr.Dropdown(
            [], label="Compare with… (a recent run or a row of the open index)",
            elem_id="compare-choice", interactive=True,
        )  # fmt: skip
        with gr.Row():
            refresh_compare_button = gr.Button("Refresh list", size="sm")
            compare_button = gr.Button("Compare", variant="primary", elem_id="compare")
        compare_upload = gr.File(
            label="…or a saved result (.npz)", file_types=[".npz"], elem_id="compare-upload"
        )
        compare_file_button = gr.Button("Compare with file", elem_id="compare-file")
        with gr.Row():
            show_second = gr.Checkbox(True, label="Show B's cameras", elem_id="show-second")
            clear_button = gr.Button("Clear comparison", variant="stop", elem_id="clear-compare")
        compare_status = gr.Markdown("", elem_id="compare-status")
        self.widgets = CompareWidgets(
            compare_choice, refresh_compare_button, compare_button, compare_upload,
            compare_file_button, show_second, clear_button, compare_status,
        )  # fmt: skip

    def wire(self, panel: Panel) -> None:
        """Connect the tab's events; comparing refreshes the panel's result view."""
        self.panel = panel
        widgets, page = self.widgets, panel.widgets
        index = panel.find(DatasetTab).widgets
        compared = [*page.view, widgets.show_second, widgets.compare_status]
        opening = {"show_progress_on": page.status, **OPENS_RESULT}
        widgets.compare_button.click(
            self.on_compare, [widgets.compare_choice, index.index_state], compared, **opening
        )
        widgets.compare_file_button.click(
            self.on_compare_file, widgets.compare_upload, compared, **opening
        )
        widgets.clear_button.click(
            self.on_clear, None, [*page.view, widgets.compare_status], **opening
        )
        widgets.show_second.input(self.on_show_second, widgets.show_second, None, **QUICK)
        # A new listing of the Dataset tab (another index, order or filter) offers its rows.
        for listed in (widgets.refresh_compare_button.click, index.keys_state.change):
            listed(self.on_refresh_choices, index.index_state, widgets.compare_choice, **QUICK)

    def compare_choices(
        self, index: str | None, request: gr.Request | None = None
    ) -> list[tuple[str, str]]:
        """Recent runs, then the open index's rows, as (label, "run:ID" / "row:KEY")."""
        try:
            runs = run_choices(self.panel.callbacks.session_of(request).controller.recent_runs())
        except Page4DError:  # the page's session is not open yet (the table lists at load)
            runs = []
        choices = [(f"run · {label}", RUN_PREFIX + run_id) for label, run_id in runs]
        if index:
            try:
                rows = dataset.list_table(Path(index), "clip", descending=False).row_choices()
            except Page4DError as error:
                logger.warning("cannot list %s: %s", index, error)
                rows = []
            choices += [(f"index · {label}", ROW_PREFIX + key) for label, key in rows]
        return choices

    def on_refresh_choices(self, index: str | None, request: gr.Request | None = None) -> Any:
        return gr.update(choices=self.compare_choices(index, request))

    def on_compare(
        self, choice: str | None, index: str | None, request: gr.Request | None = None
    ) -> Updates:
        try:
            session = self.panel.callbacks.session_of(request)
        except Page4DError as error:
            return self.panel.callbacks.status_error(error)
        comparer = session.comparer
        if not choice:
            return self._refused(session, "pick a run or an index row to compare with")
        if choice.startswith(RUN_PREFIX):
            run_id = choice[len(RUN_PREFIX) :]
            return self._compared(session, lambda: comparer.compare_with_run(run_id))
        if not index:
            return self._refused(session, "open the index of that row first")
        key = dataset.decode_key(choice.removeprefix(ROW_PREFIX))
        return self._compared(session, lambda: dataset.compare_with_row(comparer, Path(index), key))

    def on_compare_file(self, path: str | None, request: gr.Request | None = None) -> Updates:
        try:
            session = self.panel.callbacks.session_of(request)
        except Page4DError as error:
            return self.panel.callbacks.status_error(error)
        if not path:
            return self._refused(session, "choose a result file (.npz) to compare with")
        return self._compared(session, lambda: session.comparer.compare_with_file(path))

    def on_clear(self, request: gr.Request | None = None) -> Updates:
        callbacks = self.panel.callbacks
        try:
            session = callbacks.session_of(request)
        except Page4DError as error:
            return callbacks.status_error(error)
        session.comparer.clear()
        view = callbacks.full_view(session, session.controller.current)
        return {**view, self.widgets.compare_status: session.comparer.describe()}

    def on_show_second(self, visible: bool, request: gr.Request | None = None) -> None:
        try:
            session = self.panel.callbacks.session_of(request)
        except Page4DError:
            return  # a page without a session has no B to show
        session.comparer.set_visible(bool(visible))

    def _compared(self, session: PanelSession, action: Callable[[], object]) -> Updates:
        try:
            action()
        except Page4DError as error:
            return self._refused(session, str(error))
        view = self.panel.callbacks.full_view(session, session.controller.current)
        widgets = self.widgets
        described = session.comparer.describe()
        return {**view, widgets.show_second: True, widgets.compare_status: described}

    def _refused(self, session: PanelSession, message: str) -> Updates:
        """A comparison that cannot be made: said in the Compare tab, where it was asked for,
        as well as in the status line; what is on screen stays."""
        line = f"**Cannot compare:** {' '.join(message.split())}"
        failed = self.panel.callbacks.failed(session, message)
        return {**failed, self.widgets.compare_status: line}
