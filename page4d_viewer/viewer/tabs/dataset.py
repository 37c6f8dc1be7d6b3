"""The panel's Dataset tab: a batch index as a table, its ATE scatters, and opening a row.

`DatasetTab` lays out the tab and holds thin callbacks: each reads the widgets, calls one
function of `viewer.dataset`, and returns widget updates. Opening a row refreshes the panel's
whole result view through `PanelCallbacks`, so a failure changes only the status line. The
Compare tab (`tabs/compare.py`) offers the open index's rows too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer import dataset
from page4d_viewer.viewer.callbacks import Updates
from page4d_viewer.viewer.tabs.base import (
    OPENS_RESULT,
    QUICK,
    Panel,
    PanelSetup,
    PanelTab,
    error_line,
)

logger = logging.getLogger(__name__)


@dataclass
class DatasetWidgets:
    """The Dataset tab's components."""

    index_state: gr.State  # the open index file (str), or None
    keys_state: gr.State  # row keys in table order (each a list of str)
    index_path: gr.Textbox
    open_index_button: gr.Button
    sort_by: gr.Dropdown
    descending: gr.Checkbox
    filter_text: gr.Textbox
    dataset_status: gr.Markdown
    table: gr.Dataframe
    scatter: gr.Plot
    geometry_scatter: gr.Plot
    row_choice: gr.Dropdown
    open_row_button: gr.Button

    @property
    def listing(self) -> list[Component]:
        """What a new listing of the index changes."""
        return [
            self.index_state, self.keys_state, self.dataset_status, self.table, self.scatter,
            self.geometry_scatter, self.row_choice,
        ]  # fmt: skip

    @property
    def query(self) -> list[Component]:
        """How the table is listed, in `DatasetTab.on_query`'s order after the index."""
        return [self.sort_by, self.descending, self.filter_text]


class DatasetTab(PanelTab, label="Dataset", tab_id="dataset"):
    """A batch index as a sortable table; a click on a row opens its run."""

    widgets: DatasetWidgets

    def build(self, setup: PanelSetup) -> None:
        index, index_help = setup.index, setup.sessions.data_roots.describe()
        index_state, keys_state = gr.State(index), gr.State([])
        with gr.Row():
            index_path = gr.Textbox(
                value=index or "", label="Batch folder or index.sqlite", scale=4,
                info=f"Only under: {index_help}", elem_id="index-path",
            )  # fmt: skip
            open_index_button = gr.Button("Open index", scale=1, elem_id="open-index")
        with gr.Row():
            sort_by = gr.Dropdown(
                list(dataset.SORT_OPTIONS), value=dataset.DEFAULT_SORT, label="Sort by",
                elem_id="dataset-sort",
            )  # fmt: skip
            descending = gr.Checkbox(True, label="Largest first", elem_id="dataset-descending")
            filter_text = gr.Textbox(
                label="Filter (clip, checkpoint, error)", elem_id="dataset-filter"
            )
        dataset_status = gr.Markdown("No index open.", elem_id="dataset-status")
        table = gr.Dataframe(
            headers=dataset.HEADERS, interactive=False, label="Runs (click a row to open it)",
            elem_id="dataset-table", max_height=360,
        )  # fmt: skip
        with gr.Row():
            scatter = gr.Plot(label="ATE masked vs unmasked", show_label=False)
            geometry_scatter = gr.Plot(
                label="Geometric ATE masked vs unmasked", show_label=False,
                elem_id="dataset-geometry-scatter",
            )  # fmt: skip
            with gr.Column():
                row_choice = gr.Dropdown(
                    [], label="Clip (one dot each)", elem_id="dataset-clip", interactive=True
                )
                open_row_button = gr.Button("Open this run", elem_id="open-row")
        self.widgets = DatasetWidgets(
            index_state, keys_state, index_path, open_index_button, sort_by, descending,
            filter_text, dataset_status, table, scatter, geometry_scatter, row_choice,
            open_row_button,
        )  # fmt: skip

    def wire(self, panel: Panel) -> None:
        """Connect the tab's events; opening a row refreshes the panel's result view."""
        self.panel = panel
        widgets, page = self.widgets, panel.widgets
        query, listing = widgets.query, widgets.listing
        typed = [widgets.index_path, *query]
        widgets.open_index_button.click(self.on_open_index, typed, listing)
        widgets.index_path.submit(self.on_open_index, typed, listing)
        for widget in (widgets.sort_by, widgets.descending):
            widget.input(self.on_query, [widgets.index_state, *query], listing, **QUICK)
        widgets.filter_text.submit(self.on_query, [widgets.index_state, *query], listing, **QUICK)
        opening = {"show_progress_on": page.status, **OPENS_RESULT}
        widgets.table.select(
            self.on_select, [widgets.index_state, widgets.keys_state], page.view, **opening
        )
        widgets.open_row_button.click(
            self.on_open_row, [widgets.index_state, widgets.row_choice], page.view, **opening
        )
        # The index given at start is listed as the page loads.
        panel.demo.load(self.on_query, [widgets.index_state, *query], listing, **QUICK)

    # ------------------------------------------------------------------ the index

    def on_open_index(
        self,
        text: str,
        sort_label: str,
        descending: bool,
        needle: str,
        request: gr.Request | None = None,
    ) -> Updates:
        try:
            session = self.panel.callbacks.session_of(request)
            index = dataset.resolve_index(session.controller.data_roots, text or "")
        except Page4DError as error:
            return {self.widgets.dataset_status: error_line(error)}
        return self.on_query(str(index), sort_label, descending, needle)

    def on_query(
        self, index: str | None, sort_label: str, descending: bool, needle: str
    ) -> Updates:
        widgets = self.widgets
        if not index:
            return {
                widgets.dataset_status: "No index open: type a batch folder and press **Open**."
            }
        try:
            listed = dataset.list_table(Path(index), sort_label, bool(descending), needle or "")
        except Page4DError as error:
            return {widgets.dataset_status: error_line(error)}
        choices = listed.row_choices()
        failed = sum(not row.ok for row in listed.rows)
        head_scatter, geometry_scatter = dataset.ate_scatters(listed.rows)
        return {
            widgets.index_state: str(listed.index),
            widgets.keys_state: [list(key) for key in listed.row_keys()],
            widgets.dataset_status: f"`{listed.index}`: {len(listed.rows)} runs ({failed} failed)",
            widgets.table: listed.table(),
            widgets.scatter: head_scatter,
            widgets.geometry_scatter: geometry_scatter,
            widgets.row_choice: gr.update(
                choices=choices, value=choices[0][1] if choices else None
            ),
        }

    def on_select(
        self,
        index: str | None,
        keys: list[list[str]],
        event: gr.SelectData,
        request: gr.Request | None = None,
    ) -> Updates:
        """A click on a table cell: open that row's run (found by its "#" column)."""
        position = _clicked_position(event)
        if not index or position is None or not 0 <= position < len(keys):
            return self._failed(request, "open an index and click one of its rows")
        clip, checkpoint, settings = keys[position]
        key = dataset.encode_key((clip, checkpoint, settings))
        return self.on_open_row(index, key, request)

    def on_open_row(
        self, index: str | None, key: str | None, request: gr.Request | None = None
    ) -> Updates:
        callbacks = self.panel.callbacks
        if not index or not key:
            return self._failed(request, "open an index and pick one of its clips first")
        try:
            session = callbacks.session_of(request)
        except Page4DError as error:
            return callbacks.status_error(error)
        return callbacks.show_or_fail(
            session,
            lambda: dataset.open_row(session.controller, Path(index), dataset.decode_key(key)),
        )

    def _failed(self, request: gr.Request | None, message: str) -> Updates:
        """The status line says `message`; the result on screen stays."""
        callbacks = self.panel.callbacks
        try:
            return callbacks.failed(callbacks.session_of(request), message)
        except Page4DError as error:
            return callbacks.status_error(error)


def _clicked_position(event: gr.SelectData) -> int | None:
    """The "#" of the clicked row (the table may be sorted in the browser), else its index."""
    row = getattr(event, "row_value", None)
    try:
        if row:
            return int(row[0])
        return int(event.index[0])
    except (TypeError, ValueError, IndexError):
        return None
