"""What a tab under the scene is (`PanelTab`), what it may use of the page (`Panel`), and the
Gradio event options every event of the page shares.

`panel.build_panel` makes each tab of `panel.RESULT_TABS` inside its own `gr.Tab` (`build`),
then lets each connect its events (`wire`), then starts the page's one poll timer, which asks
every tab that registered a poll (`Panel.poll`) in one request. A tab that shows part of the
result on screen lists those widgets (`view`) and fills them (`show`, and `follow` when the
timeline or the mask settings move), so the panel's callbacks refresh it with everything else.

Adding a tab is one module with a `PanelTab` class and one entry in `panel.RESULT_TABS`, as
nerfstudio's viewer does with `with tabs.add_tab(...): populate_X_tab(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, TypedDict, TypeVar

import gradio as gr
from gradio.blocks import Block
from gradio.components import Component

# Imported at run time, not only for the checker: Gradio reads each handler's annotations
# (typing.get_type_hints) to find its gr.Request parameter, and one unresolved name hides it.
from page4d_viewer.viewer.callbacks import (
    PanelCallbacks,
    PanelSession,
    PanelSessions,
    PanelWidgets,
    Updates,
)

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import SceneSettings, Shown


class EventOptions(TypedDict, total=False):
    """The queue and progress options of a Gradio event (keywords of `.click`, `.change`...)."""

    show_progress: Literal["full", "minimal", "hidden"]
    concurrency_limit: int | None | Literal["default"]
    concurrency_id: str | None


QUICK: Final[EventOptions] = {"concurrency_limit": None, "show_progress": "hidden"}
"""Cheap events (a slider moved, the poll, a tab's own state): they take no queue slot, so
they never wait behind a model run, and they show no spinner."""

OPENS_RESULT: Final[EventOptions] = {"concurrency_id": "open", "concurrency_limit": 1}
"""Opening a saved result (a file, a run, an index row, a comparison): one at a time."""

RUNS_MODEL: Final[EventOptions] = {"concurrency_id": "model", "concurrency_limit": 1}
"""Anything that runs the network (a clip, a click's track): one at a time, in the queue, so
a second user sees their position."""

EXPORTS: Final[EventOptions] = {"concurrency_id": "export", "concurrency_limit": 1}
"""Writing the downloads (GLB, PLY, mp4...): one at a time."""

RECORDS: Final[EventOptions] = {"concurrency_id": "record", "concurrency_limit": 1}
"""Recording the scene in a browser: one at a time."""


@dataclass(frozen=True)
class PanelSetup:
    """What a tab may read while it lays out its widgets (before any page has loaded).

    Attributes:
        sessions: The open sessions; their shared parts (model backend, data roots, the
            scene's default mask settings) set the widgets' first values.
        index: A batch index to list in the Dataset tab at load (None: none).
    """

    sessions: PanelSessions
    index: str | None = None


PollHandler = Callable[[dict[Component, Any], "gr.Request | None"], "Updates"]
"""handler(values of the poll's inputs by component, request) -> widget updates."""


@dataclass(frozen=True)
class Poll:
    """What one tab asks at each tick of the page's poll timer."""

    inputs: tuple[Component, ...]
    outputs: tuple[Component, ...]
    handler: PollHandler


class PanelTab(Protocol):
    """A tab under the scene: it lays out its widgets, connects their events, and may show
    part of the result on screen and follow the scene's timeline.

    Attributes:
        label: The text of the tab's button (browser tests find the tab by it).
        tab_id: Gradio's id of the tab.
        elem_id: The tab's element id on the page, if the tests or the CSS need one.
    """

    label: ClassVar[str]
    tab_id: ClassVar[str]
    elem_id: ClassVar[str | None] = None
    panel: Panel  # the page around the tab, kept by its `wire`

    def __init_subclass__(
        cls, *, label: str = "", tab_id: str = "", elem_id: str | None = None, **kwargs: Any
    ) -> None:
        """`class MaskTab(PanelTab, label="Mask and depth", tab_id="mask")`: a tab's button
        text, its Gradio id and its element id are given where the class is named."""
        super().__init_subclass__(**kwargs)
        if label:
            cls.label, cls.tab_id, cls.elem_id = label, tab_id or label.lower(), elem_id

    def build(self, setup: PanelSetup) -> None:
        """Make the tab's widgets (called inside its `gr.Tab`, which the panel opens)."""
        ...

    def wire(self, panel: Panel) -> None:
        """Connect the tab's events, once every tab is built (`panel.find` reaches the others);
        register a poll with `panel.poll` to follow what changes outside the page."""
        ...

    def view(self) -> list[Component]:
        """The widgets that show the result on screen (filled by `show` and `follow`)."""
        return []

    def show(self, session: PanelSession, shown: Shown | None, settings: SceneSettings) -> Updates:
        """Fill `view` for the result on screen (None: nothing shown yet)."""
        return {}

    def follow(
        self, session: PanelSession, settings: SceneSettings, synced: SceneSettings | None
    ) -> Updates:
        """The page's view of the scene moved from `synced` (None: unknown) to `settings`
        (a new frame, or new mask settings): the `view` widgets that change with it."""
        return {}


TabT = TypeVar("TabT", bound=PanelTab)


@dataclass
class Panel:
    """What a tab may use of the page around it when it wires its events.

    Attributes:
        demo: The page (for `demo.load`).
        widgets: The page's own widgets: the frame slider, the status line, the result's
            version, the Model section's inputs, ...
        callbacks: Finds a page's session and fills the whole result view.
        tabs: Every tab, in their order on the page.
    """

    demo: gr.Blocks
    widgets: PanelWidgets
    callbacks: PanelCallbacks
    tabs: Sequence[PanelTab]
    polls: list[Poll] = field(default_factory=list)

    def find(self, kind: type[TabT]) -> TabT:
        """The page's tab of this class (a tab that works with another's widgets).

        Raises:
            LookupError: the page has no such tab.
        """
        for tab in self.tabs:
            if isinstance(tab, kind):
                return tab
        raise LookupError(f"the panel has no {kind.__name__}")

    def poll(
        self, inputs: Iterable[Component], outputs: Iterable[Component], handler: PollHandler
    ) -> None:
        """Ask `handler` at each tick of the page's poll timer (for changes made outside the
        page: in the Viser scene, or by a run that finished)."""
        self.polls.append(Poll(tuple(inputs), tuple(outputs), handler))

    def start_polling(self, timer: gr.Timer) -> None:
        """One event per tick for every registered poll: one request, not one per tab."""
        inputs: set[Block] = {component for poll in self.polls for component in poll.inputs}
        inputs.add(self.widgets.tab_id)
        outputs = list(dict.fromkeys(c for poll in self.polls for c in poll.outputs))
        timer.tick(self.on_tick, inputs, outputs, trigger_mode="always_last", **QUICK)

    def on_tick(self, values: dict[Component, Any], request: gr.Request) -> Updates:
        """Each poll's updates, together (each reads only its own inputs from `values`),
        after the tick has kept the page's session live (`PanelCallbacks.keep_page`)."""
        self.callbacks.keep_page(values[self.widgets.tab_id], request)
        updates: Updates = {}
        for poll in self.polls:
            updates.update(poll.handler(values, request))
        return updates


def error_line(error: Exception) -> str:
    """A tab's one-line error message (line breaks in the message folded)."""
    return f"**Error:** {' '.join(str(error).split())}"
