"""The panel's Dataset and Compare tabs: a batch index as a table, and a second run laid over.

Layout (`build_tabs`, called inside the panel's result tabs) and thin callbacks
(`DatasetCallbacks`): each reads the widgets, calls one function of `viewer.dataset` or
`viewer.comparison`, and returns widget updates. Opening a row or comparing refreshes the
panel's whole result view through `PanelCallbacks`, so a failure changes only the status line.
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
from page4d_viewer.viewer.callbacks import PanelCallbacks, PanelWidgets, Updates
from page4d_viewer.viewer.comparison import Comparer
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.status import run_choices

logger = logging.getLogger(__name__)

RUN_PREFIX, ROW_PREFIX = "run:", "row:"


@dataclass
class DatasetWidgets:
    """The Dataset and Compare tabs' components."""

    index_state: gr.State  # the open index file (str), or None
    keys_state: gr.State  # row keys in table order
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
    compare_choice: gr.Dropdown
    refresh_compare_button: gr.Button
    compare_button: gr.Button
    compare_upload: gr.File
    compare_file_button: gr.Button
    show_second: gr.Checkbox
    clear_button: gr.Button
    compare_status: gr.Markdown  # the tab's own outcome line: its errors show where they arose

    @property
    def listing(self) -> list[gr.components.Component]:
        """What a new listing of the index changes."""
        return [
            self.index_state, self.keys_state, self.dataset_status, self.table, self.scatter,
            self.geometry_scatter, self.row_choice, self.compare_choice,
        ]  # fmt: skip


def build_tabs(index_help: str, index: str | None) -> DatasetWidgets:
    """The Dataset and Compare tabs (call inside a `gr.Tabs()`)."""
    with gr.Tab("Dataset", id="dataset"):
        # Inside the tab: anything placed directly in the parent gr.Tabs shifts the order
        # Gradio gives the tabs after it, and each of those gains a second button when visited.
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
    with gr.Tab("Compare", id="compare"):
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
    return DatasetWidgets(
        index_state, keys_state, index_path, open_index_button, sort_by, descending,
        filter_text, dataset_status, table, scatter, geometry_scatter, row_choice, open_row_button,
        compare_choice, refresh_compare_button, compare_button, compare_upload,
        compare_file_button, show_second, clear_button, compare_status,
    )  # fmt: skip


class DatasetCallbacks:
    """One method per Dataset/Compare event; each calls one dataset or comparison action."""

    def __init__(self, panel: PanelCallbacks, widgets: DatasetWidgets):
        self.panel = panel
        self.d = widgets

    def _session(self, request: gr.Request | None) -> tuple[ViewerController, Comparer]:
        """The page's session controller and its comparison (see PanelCallbacks)."""
        controller = self.panel.controller_of(request)
        return controller, self.panel.comparer_of(controller)

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
            controller, _ = self._session(request)
            index = dataset.resolve_index(controller.data_roots, text or "")
        except Page4DError as error:
            return {self.d.dataset_status: f"**Error:** {' '.join(str(error).split())}"}
        return self.on_query(str(index), sort_label, descending, needle, request)

    def on_query(
        self,
        index: str | None,
        sort_label: str,
        descending: bool,
        needle: str,
        request: gr.Request | None = None,
    ) -> Updates:
        d = self.d
        if not index:
            return {d.dataset_status: "No index open: type a batch folder and press **Open**."}
        try:
            listed = dataset.list_table(Path(index), sort_label, bool(descending), needle or "")
        except Page4DError as error:
            return {d.dataset_status: f"**Error:** {' '.join(str(error).split())}"}
        choices = listed.row_choices()
        failed = sum(not row.ok for row in listed.rows)
        head_scatter, geometry_scatter = dataset.ate_scatters(listed.rows)
        return {
            d.index_state: str(listed.index),
            d.keys_state: [list(key) for key in listed.row_keys()],
            d.dataset_status: f"`{listed.index}`: {len(listed.rows)} runs ({failed} failed)",
            d.table: listed.table(),
            d.scatter: head_scatter,
            d.geometry_scatter: geometry_scatter,
            d.row_choice: gr.update(choices=choices, value=choices[0][1] if choices else None),
            d.compare_choice: gr.update(choices=self.compare_choices(str(listed.index), request)),
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
            controller, _ = self._session(request)
            return self.panel.failed(controller, "open an index and click one of its rows")
        key = dataset.encode_key(tuple(keys[position]))  # type: ignore[arg-type]
        return self.on_open_row(index, key, request)

    def on_open_row(
        self, index: str | None, key: str | None, request: gr.Request | None = None
    ) -> Updates:
        controller, _ = self._session(request)
        if not index or not key:
            return self.panel.failed(controller, "open an index and pick one of its clips first")
        return self.panel.show_or_fail(
            controller,
            lambda: dataset.open_row(controller, Path(index), dataset.decode_key(key)),
        )

    # ------------------------------------------------------------------ comparison

    def compare_choices(
        self, index: str | None, request: gr.Request | None = None
    ) -> list[tuple[str, str]]:
        """Recent runs, then the open index's rows, as (label, "run:ID" / "row:KEY")."""
        try:
            runs = run_choices(self._session(request)[0].recent_runs())
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

    def on_refresh_choices(
        self, index: str | None, request: gr.Request | None = None
    ) -> dict[str, Any]:
        return gr.update(choices=self.compare_choices(index, request))

    def on_compare(
        self, choice: str | None, index: str | None, request: gr.Request | None = None
    ) -> Updates:
        controller, comparer = self._session(request)
        if not choice:
            return self._refused(controller, "pick a run or an index row to compare with")
        if choice.startswith(RUN_PREFIX):
            run_id = choice[len(RUN_PREFIX) :]
            return self._compared(controller, lambda: comparer.compare_with_run(run_id))
        if not index:
            return self._refused(controller, "open the index of that row first")
        key = dataset.decode_key(choice.removeprefix(ROW_PREFIX))
        return self._compared(
            controller, lambda: dataset.compare_with_row(comparer, Path(index), key)
        )

    def on_compare_file(self, path: str | None, request: gr.Request | None = None) -> Updates:
        controller, comparer = self._session(request)
        if not path:
            return self._refused(controller, "choose a result file (.npz) to compare with")
        return self._compared(controller, lambda: comparer.compare_with_file(path))

    def on_clear(self, request: gr.Request | None = None) -> Updates:
        controller, comparer = self._session(request)
        comparer.clear()
        view = self.panel.full_view(controller, controller.current)
        return {**view, self.d.compare_status: comparer.describe()}

    def on_show_second(self, visible: bool, request: gr.Request | None = None) -> None:
        _, comparer = self._session(request)
        comparer.set_visible(bool(visible))

    def _compared(self, controller: ViewerController, action: Callable[[], object]) -> Updates:
        try:
            action()
        except Page4DError as error:
            return self._refused(controller, str(error))
        view = self.panel.full_view(controller, controller.current)
        described = self.panel.comparer_of(controller).describe()
        return {**view, self.d.show_second: True, self.d.compare_status: described}

    def _refused(self, controller: ViewerController, message: str) -> Updates:
        """A comparison that cannot be made: said in the Compare tab, where it was asked for,
        as well as in the status line; what is on screen stays."""
        line = f"**Cannot compare:** {' '.join(message.split())}"
        return {**self.panel.failed(controller, message), self.d.compare_status: line}


def _clicked_position(event: gr.SelectData) -> int | None:
    """The "#" of the clicked row (the table may be sorted in the browser), else its index."""
    row = getattr(event, "row_value", None)
    try:
        if row:
            return int(row[0])
        return int(event.index[0])
    except (TypeError, ValueError, IndexError):
        return None


def wire(callbacks: DatasetCallbacks, d: DatasetWidgets, w: PanelWidgets) -> None:
    """Connect the tabs' events; opening and comparing refresh the panel's result view."""
    light: dict[str, Any] = {"concurrency_limit": None, "show_progress": "hidden"}
    query = [d.sort_by, d.descending, d.filter_text]
    d.open_index_button.click(callbacks.on_open_index, [d.index_path, *query], d.listing)
    d.index_path.submit(callbacks.on_open_index, [d.index_path, *query], d.listing)
    for widget in (d.sort_by, d.descending):
        widget.input(callbacks.on_query, [d.index_state, *query], d.listing, **light)
    d.filter_text.submit(callbacks.on_query, [d.index_state, *query], d.listing, **light)
    opening = {"concurrency_id": "open", "concurrency_limit": 1, "show_progress_on": [w.status]}
    d.table.select(callbacks.on_select, [d.index_state, d.keys_state], w.view, **opening)
    d.open_row_button.click(callbacks.on_open_row, [d.index_state, d.row_choice], w.view, **opening)
    compared = [*w.view, d.show_second, d.compare_status]
    d.compare_button.click(
        callbacks.on_compare, [d.compare_choice, d.index_state], compared, **opening
    )
    d.compare_file_button.click(callbacks.on_compare_file, d.compare_upload, compared, **opening)
    d.clear_button.click(callbacks.on_clear, None, [*w.view, d.compare_status], **opening)
    d.show_second.input(callbacks.on_show_second, d.show_second, None, **light)
    d.refresh_compare_button.click(
        callbacks.on_refresh_choices, d.index_state, d.compare_choice, **light
    )
