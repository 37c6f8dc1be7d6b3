"""Every event of the panel answers with updates of its own outputs only.

Gradio fails an event whose answer names a component that is not among its outputs: a
ValueError in the server's log, and the page is left as it was. The answers that did so were
the rare ones (a page whose session closed, a tab with nothing to show yet), so each event's
handler is called here as Gradio calls it (its inputs' values, a request, event data), in
three states of a page: no session, a session with no result, and a session showing one.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest
from gradio.helpers import special_args

from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.panel import build_panel
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.server.sessions import SessionRegistry

# What a click or a selection carries (the handlers that take event data read only these).
EVENT_DATA = {"index": [0, 0], "value": None, "selected": True}


def _answers_outside_outputs(demo: gr.Blocks) -> list[str]:
    """Call every event handler of `demo` with its inputs' current values; each one that
    answers with a component that is not among its outputs, or fails other than with a
    `gr.Error` (Gradio's message to the page), as 'handler: what'."""
    found = []
    for block_fn in demo.fns.values():
        if block_fn.fn is None:
            continue
        values = {component: getattr(component, "value", None) for component in block_fn.inputs}
        arguments = [values] if block_fn.inputs_as_dict else list(values.values())
        arguments, *_ = special_args(block_fn.fn, arguments, None, gr.EventData(None, EVENT_DATA))
        name = getattr(block_fn.fn, "__qualname__", block_fn.name)
        try:
            answer = block_fn.fn(*arguments)
        except gr.Error:
            continue
        except Exception as error:
            found.append(f"{name}: raised {error!r}")
            continue
        if inspect.isgenerator(answer) or not isinstance(answer, dict) or "__type__" in answer:
            continue
        outside = [k for k in answer if k not in block_fn.outputs]
        if outside:
            found.append(f"{name}: {[f'{type(k).__name__} {k.elem_id}' for k in outside]}")
    return found


@pytest.fixture()
def controller(scene, tmp_path: Path) -> Iterator[ViewerController]:
    made = ViewerController(scene, RunStore(tmp_path / "runs"), DataRoots([tmp_path]), None)
    yield made
    made.close()


def test_a_page_without_a_session_gets_answers_of_its_own_outputs(tmp_path: Path) -> None:
    registry = SessionRegistry(
        lambda scene, owner: None,  # never called: no page is attached here
        backend=None, data_roots=DataRoots([tmp_path]), samples={},
    )  # fmt: skip
    try:
        assert _answers_outside_outputs(build_panel(registry)) == []
    finally:
        registry.close_all()


def test_a_session_with_and_without_a_result_gets_answers_of_its_own_outputs(
    controller: ViewerController, make_reconstruction, tmp_path: Path
) -> None:
    demo = build_panel(SessionRegistry.single(controller))
    assert _answers_outside_outputs(demo) == []  # nothing shown yet
    saved = make_reconstruction(frames=4, height=28, width=42).save(tmp_path / "shown.npz")
    controller.open_result(saved)
    assert _answers_outside_outputs(demo) == []
