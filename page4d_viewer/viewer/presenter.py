"""Presenter mode: the scene fills the browser window, under a bar of a few big controls.

Nothing is laid out twice. The page's stage (the scene box, its labels and the bar holding
the frame slider) is the normal layout's right column; presenter mode is the class
`presenting` on the page's `<body>` (`PRESENTER_CSS`): the rest of the page is hidden, the
scene's iframe (or the split view's pair) covers the window, and the bar floats over its
bottom edge with play/pause, the frame slider, reset view, the mask opacity and "Exit
presenter mode". The bar's other controls and the legend (the scene's own legend HTML, read
from the scene, since the Viser sidebar's copy sits in its floating panel) show only in
presenter mode. Esc exits, also while the scene's iframe has the keyboard (it is served from
the same origin, so the page can listen to it).

The frame slider follows the scene within a frame during playback: while the scene plays, a
fast timer (`FOLLOW_SECONDS`) copies the scene's frame into the slider, and nothing else; the
page's slow poll (`tabs.base`) still brings the tabs along, and turns the fast timer on when
playback starts in the Viser sidebar. Browser tests find the controls by their element ids
(`presenter-on`, `presenter-play`, `presenter-reset`, `presenter-opacity`, `presenter-exit`,
`presenter-legend`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.callbacks import PanelCallbacks, PanelSession, PanelWidgets, Updates
from page4d_viewer.viewer.tabs.base import QUICK

if TYPE_CHECKING:
    from page4d_viewer.viewer.tabs.base import Panel

FOLLOW_SECONDS: Final = 0.05
"""How often the page reads the scene's frame while it plays: a twentieth of a second, so at
10 fps the slider is never more than one frame behind (the round trip takes a few ms)."""

PLAY_LABEL: Final = "▶ Play"
PAUSE_LABEL: Final = "❚❚ Pause"

PRESENTING_CLASS: Final = "presenting"
"""The class on `<body>` while presenter mode is on."""

ENTER_JS: Final = f"() => {{ document.body.classList.add('{PRESENTING_CLASS}'); }}"
EXIT_JS: Final = f"() => {{ document.body.classList.remove('{PRESENTING_CLASS}'); }}"

ESC_JS: Final = f"""
const presenting = '{PRESENTING_CLASS}';
const onKey = (event) => {{
  if (event.key === 'Escape' && document.body.classList.contains(presenting)) {{
    document.body.classList.remove(presenting);
  }}
}};
if (!window.page4dPresenterKeys) {{
  window.page4dPresenterKeys = true;
  document.addEventListener('keydown', onKey);
  // The scene's iframes are same-origin (the proxy serves them on the panel's port): a key
  // pressed while one has the focus goes to its document, so listen there too.
  const listened = new WeakSet();
  setInterval(() => {{
    for (const frame of document.querySelectorAll('#scene-frame iframe')) {{
      try {{
        const inner = frame.contentWindow;
        if (inner && !listened.has(inner)) {{
          inner.addEventListener('keydown', onKey);
          listened.add(inner);
        }}
      }} catch (error) {{ /* not loaded yet, or refused: the page's own listener still works */ }}
    }}
  }}, 500);
}}
"""
"""Runs once when the page loads (the legend's `js_on_load`): Esc leaves presenter mode."""

PRESENTER_CSS: Final = f"""
body:not(.{PRESENTING_CLASS}) .presenter-only {{ display: none !important; }}
#stage-bar {{ align-items: center; }}
body.{PRESENTING_CLASS} {{ overflow: hidden; }}
body.{PRESENTING_CLASS} gradio-app {{ visibility: hidden; }}
body.{PRESENTING_CLASS} #stage-options {{ display: none !important; }}
body.{PRESENTING_CLASS} #scene-frame a {{ display: none; }}
body.{PRESENTING_CLASS} #scene-frame iframe {{
  visibility: visible; position: fixed !important; top: 0 !important; left: 0 !important;
  width: 100vw !important; height: 100vh !important; border: 0 !important;
  border-radius: 0 !important; z-index: 1000; background: var(--body-background-fill);
}}
body.{PRESENTING_CLASS} #scene-frame.split iframe {{ width: 50vw !important; }}
body.{PRESENTING_CLASS} #scene-frame.split iframe#scene-right {{ left: 50vw !important; }}
body.{PRESENTING_CLASS} #split-labels-box {{
  visibility: visible; position: fixed !important; top: 8px; left: 8px; right: 8px;
  z-index: 1001; pointer-events: none;
}}
body.{PRESENTING_CLASS} #stage-bar {{
  visibility: visible; position: fixed !important; left: 12px; right: 12px; bottom: 12px;
  z-index: 1002; width: auto !important; padding: 8px 12px; border-radius: 10px; gap: 12px;
  flex-wrap: nowrap; background: var(--block-background-fill); opacity: 0.93;
  box-shadow: 0 2px 12px #0006;
}}
body.{PRESENTING_CLASS} #stage-bar button {{
  font-size: 1.15em !important; min-height: 48px; white-space: nowrap;
}}
body.{PRESENTING_CLASS} #presenter-legend {{
  visibility: visible; position: fixed !important; left: 12px; top: 12px; z-index: 1002;
  max-width: 40vw; padding: 6px 10px; border-radius: 8px;
  background: var(--block-background-fill); opacity: 0.93;
}}
body.{PRESENTING_CLASS}:has(#scene-frame.split) #presenter-legend {{ top: 56px; }}
"""
"""Presenter mode's layout, added to the panel's CSS: only the scene, the bar, the legend
and (split view) the labels are visible; the scene covers the window, the others float.
Gradio adds a copy of each rule scoped under `.gradio-container ... .contain`, which outranks
these on specificity, so the properties the normal layout also sets are `!important`."""


@dataclass
class PresenterControls:
    """Presenter mode's widgets (the frame slider is the page's own, in the same bar).

    Attributes:
        enter: "Presenter mode" (beside the split view toggle).
        play: Play / pause the scene's timeline.
        reset: Put the scene's viewpoint back behind the first camera.
        opacity: The mask overlay's opacity in the scene.
        leave: "Exit presenter mode" (Esc does the same).
        legend: The scene's legend, shown in presenter mode.
        follow_timer: Copies the scene's frame into the frame slider while the scene plays.
        following: Whether `follow_timer` is on (what the page last set it to).
    """

    enter: gr.Button
    play: gr.Button
    reset: gr.Button
    opacity: gr.Slider
    leave: gr.Button
    legend: gr.HTML
    follow_timer: gr.Timer
    following: gr.State


def enter_button() -> gr.Button:
    """The "Presenter mode" button (placed by the panel beside the split view toggle)."""
    return gr.Button("Presenter mode", size="sm", elem_id="presenter-on", scale=0, min_width=160)


def bar_before_slider() -> gr.Button:
    """Play / pause, left of the frame slider in the stage's bar (presenter mode only)."""
    return gr.Button(
        PLAY_LABEL, elem_id="presenter-play", elem_classes=["presenter-only"], scale=0,
        min_width=120,
    )  # fmt: skip


def bar_after_slider(enter: gr.Button, play: gr.Button, mask_opacity: float) -> PresenterControls:
    """Reset view, mask opacity and exit, right of the frame slider, then the legend and the
    follow timer (inside the layout being built)."""
    reset = gr.Button(
        "⟲ Reset view", elem_id="presenter-reset", elem_classes=["presenter-only"], scale=0,
        min_width=140,
    )  # fmt: skip
    opacity = gr.Slider(
        0, 1, value=mask_opacity, step=0.05, label="Mask opacity", elem_id="presenter-opacity",
        elem_classes=["presenter-only"], scale=1, min_width=160,
    )  # fmt: skip
    leave = gr.Button(
        "✕ Exit (Esc)", elem_id="presenter-exit", elem_classes=["presenter-only"], scale=0,
        min_width=120,
    )  # fmt: skip
    return PresenterControls(
        enter=enter,
        play=play,
        reset=reset,
        opacity=opacity,
        leave=leave,
        legend=legend_box(),
        follow_timer=gr.Timer(FOLLOW_SECONDS, active=False),
        following=gr.State(False),
    )


def legend_box() -> gr.HTML:
    """The legend shown in presenter mode; loading it installs the Esc key (`ESC_JS`)."""
    return gr.HTML(
        "", elem_id="presenter-legend", elem_classes=["presenter-only"], js_on_load=ESC_JS
    )


def play_label(playing: bool) -> str:
    """The play button's text: what a click does."""
    return PAUSE_LABEL if playing else PLAY_LABEL


def scene_frame(session: PanelSession) -> tuple[int, bool]:
    """The scene's current frame and whether it plays.

    Read without the scene's lock: two plain attributes the playback thread writes, and the
    lock may be held for a whole redraw, which would make the fast follow wait behind it.
    """
    timeline = session.scene.timeline
    return int(timeline.frame), bool(timeline.is_playing)


class PresenterCallbacks:
    """Presenter mode's events: enter, play/pause, reset view, opacity, and the follow timer.

    Args:
        callbacks: The page's callbacks (they find a page's session).
        widgets: The page's own widgets (the frame slider).
        controls: Presenter mode's widgets.
    """

    def __init__(
        self, callbacks: PanelCallbacks, widgets: PanelWidgets, controls: PresenterControls
    ) -> None:
        self.callbacks = callbacks
        self.widgets = widgets
        self.controls = controls

    def _session(self, request: gr.Request | None) -> PanelSession | None:
        try:
            return self.callbacks.session_of(request)
        except Page4DError:
            return None

    def following(self, playing: bool) -> Updates:
        """The fast follow on while the scene plays, off when it stops, and the play label."""
        controls = self.controls
        return {
            controls.follow_timer: gr.Timer(active=playing),
            controls.following: playing,
            controls.play: play_label(playing),
        }

    def on_enter(self, request: gr.Request | None = None) -> Updates:
        """Presenter mode on (the page adds its class): the legend and opacity of the scene,
        the play button's label."""
        session = self._session(request)
        if session is None:
            return {self.controls.legend: ""}
        frame, playing = scene_frame(session)
        return {
            self.controls.legend: session.scene.legend.html,
            self.controls.opacity: session.controller.scene_settings().mask_opacity,
            self.widgets.frame: frame,
            **self.following(playing),
        }

    def on_play(self, label: str | None, request: gr.Request | None = None) -> Updates:
        """Play or pause the scene's timeline (as its own Play checkbox does): what the
        button said when clicked, so a click that crosses a change made in the sidebar
        still does what it showed."""
        session = self._session(request)
        if session is None:
            return {self.controls.following: gr.skip()}
        playing = label != PAUSE_LABEL
        session.scene.set_playing(playing)
        return self.following(playing)

    def on_reset(self, request: gr.Request | None = None) -> None:
        """Reset every viewer's viewpoint of the page's scene (the sidebar's Reset view)."""
        session = self._session(request)
        if session is not None:
            session.scene.reset_view()

    def on_opacity(self, opacity: float, request: gr.Request | None = None) -> Updates:
        """The mask overlay's opacity; its threshold and drawing stay (the Mask tab's slider
        follows at the page's next poll)."""
        session = self._session(request)
        if session is None:
            return {self.controls.following: gr.skip()}
        controller = session.controller
        settings = controller.scene_settings()
        try:
            controller.set_mask_overlay(float(opacity), settings.mask_threshold)
        except Page4DError as error:
            return self.callbacks.failed(session, str(error))
        return {self.controls.following: gr.skip()}

    def on_follow(self, shown_frame: float | None, request: gr.Request | None = None) -> Updates:
        """A fast tick while the scene plays: the frame slider shows the scene's frame; the
        timer stops once the scene does."""
        session = self._session(request)
        if session is None:
            return self.following(False)
        frame, playing = scene_frame(session)
        updates: Updates = {} if playing else self.following(False)
        if shown_frame is None or int(shown_frame) != frame:
            updates[self.widgets.frame] = frame
        return updates or {self.controls.following: gr.skip()}

    def on_poll(self, values: dict[Component, Any], request: gr.Request | None) -> Updates:
        """The page's slow poll: turn the fast follow on when playback started elsewhere
        (the Viser sidebar), off when it stopped."""
        session = self._session(request)
        if session is None:
            return {}
        _, playing = scene_frame(session)
        if playing == bool(values[self.controls.following]):
            return {}
        return self.following(playing)


def wire_presenter(panel: Panel, controls: PresenterControls) -> None:
    """Connect presenter mode's buttons, its Esc key (`ESC_JS`) and the fast follow."""
    events = PresenterCallbacks(panel.callbacks, panel.widgets, controls)
    frame = panel.widgets.frame
    following_outputs = [controls.follow_timer, controls.following, controls.play]
    controls.enter.click(None, js=ENTER_JS)
    controls.enter.click(
        events.on_enter, None,
        [controls.legend, controls.opacity, frame, *following_outputs], **QUICK,
    )  # fmt: skip
    controls.leave.click(None, js=EXIT_JS)
    controls.play.click(events.on_play, controls.play, following_outputs, **QUICK)
    controls.reset.click(events.on_reset, None, None, **QUICK)
    controls.opacity.input(
        events.on_opacity, controls.opacity, [controls.following, panel.widgets.status],
        trigger_mode="always_last", **QUICK,
    )  # fmt: skip
    controls.follow_timer.tick(
        events.on_follow, frame, [frame, *following_outputs], trigger_mode="always_last",
        **QUICK,
    )  # fmt: skip
    panel.poll([controls.following], following_outputs, events.on_poll)
