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

The frame slider follows the scene within a frame during playback, in presenter mode and out
of it. While the scene plays, a fast timer (`FOLLOW_SECONDS`) reads the scene's clock (its
frame, the server's time of the reading, fps, frame count, loop) into a hidden box
(`#follow-clock`), and the page (`FOLLOW_JS`) moves the slider from the latest reading at the
scene's fps until the next one. A Gradio round trip takes 0.2-0.6 s on a loaded two-core
machine (measured), so copying the frame alone would lag 2-6 frames at 10 fps; advancing from
a timed reading keeps the slider on the scene's frame whatever the round trip takes. The
page's slow poll (`tabs.base`) still brings the tabs along, and turns the fast timer on when
playback starts in the Viser sidebar. Browser tests find the controls by their element ids
(`presenter-on`, `presenter-play`, `presenter-reset`, `presenter-opacity`, `presenter-exit`,
`presenter-legend`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import gradio as gr
from gradio.components import Component

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.callbacks import PanelCallbacks, PanelSession, PanelWidgets, Updates
from page4d_viewer.viewer.tabs.base import QUICK

if TYPE_CHECKING:
    from page4d_viewer.viewer.tabs.base import Panel

FOLLOW_SECONDS: Final = 0.1
"""How often the page reads the scene's clock while it plays (each reading re-anchors the
page's own advance, `FOLLOW_JS`)."""

FOLLOW_JS: Final = """
// The latest reading of the scene's clock (#follow-clock's data- attributes) moves the frame
// slider: frame + (time since the reading) x fps, wrapped or clamped as the scene plays.
// The reading's time is the server's clock. Each reading also carries when this page sent
// its request (`sent`): the reading was taken about half its round trip after that. The
// fastest round trip seen gives the best estimate of the two clocks' offset; when that
// estimate is within its own uncertainty of zero (the usual case: both clocks are set by
// NTP, or it is one machine), the clocks are taken as they are.
const follow = {stamp: null, offset: 0, trip: Infinity, playing: false};
const show = (frame) => {
  const range = document.querySelector('#frame input[type=range]');
  const number = document.querySelector('#frame input[type=number]');
  if (!range || range.value === String(frame)) { return; }
  range.value = String(frame);
  if (number) { number.value = String(frame); }
  const span = (Number(range.max) - Number(range.min)) || 1;
  range.style.setProperty('--range_progress', ((frame - Number(range.min)) / span * 100) + '%');
};
const advance = () => {
  const clock = element.querySelector('.follow-clock');
  if (!clock) { return; }
  const reading = clock.dataset;
  const now = Date.now() / 1000;
  if (reading.time !== follow.stamp) {
    follow.stamp = reading.time;
    const sent = Number(reading.sent);
    const trip = now - sent;
    if (sent > 0 && trip >= 0 && trip < follow.trip) {
      follow.trip = trip;
      const offset = sent + trip / 2 - Number(reading.time);
      follow.offset = Math.abs(offset) <= trip / 2 ? 0 : offset;
    }
  }
  const playing = reading.playing === '1';
  if (!playing) {
    if (follow.playing) { show(Number(reading.frame)); }  // where playback stopped
    follow.playing = false;
    return;
  }
  follow.playing = true;
  const frames = Number(reading.frames);
  const fps = Number(reading.fps);
  // At most a second past the reading: a scene that stalls is not run ahead of.
  const since = Math.min(Math.max(now - follow.offset - Number(reading.time), 0), 1);
  // The frame had been on screen for half its time, on average, when it was read.
  const steps = Math.floor(since * fps + 0.5);
  const frame = Number(reading.frame) + steps;
  show(reading.loop === '1' ? frame % frames : Math.min(frame, frames - 1));
};
const ticker = setInterval(() => {
  if (!element.isConnected) { clearInterval(ticker); return; }
  advance();
}, 20);
"""
"""Runs once in the page (the follow clock's `js_on_load`): every 20 ms while the scene plays,
the frame slider shows the scene's frame, advanced from the latest reading."""


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

SENT_JS: Final = "(ignored) => Date.now() / 1000"
"""The follow timer's input: this page's clock when it asks for a reading (s)."""

PRESENTER_CSS: Final = f"""
#follow-clock, #follow-sent {{ display: none !important; }}
#stage-bar .form:has(> #follow-sent) {{ display: none !important; }}  /* its empty box */
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
        follow_timer: Reads the scene's clock while the scene plays.
        following: Whether `follow_timer` is on (what the page last set it to).
        clock: The latest reading (hidden; `FOLLOW_JS` moves the frame slider from it).
        sent: When the page asked for the reading (hidden; set by `SENT_JS`).
    """

    enter: gr.Button
    play: gr.Button
    reset: gr.Button
    opacity: gr.Slider
    leave: gr.Button
    legend: gr.HTML
    follow_timer: gr.Timer
    following: gr.State
    clock: gr.HTML
    sent: gr.Number


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
        sent=gr.Number(0, elem_id="follow-sent"),
        clock=gr.HTML(
            clock_html(ClockReading.stopped(0)), elem_id="follow-clock", js_on_load=FOLLOW_JS
        ),
    )


def legend_box() -> gr.HTML:
    """The legend shown in presenter mode; loading it installs the Esc key (`ESC_JS`)."""
    return gr.HTML(
        "", elem_id="presenter-legend", elem_classes=["presenter-only"], js_on_load=ESC_JS
    )


def play_label(playing: bool) -> str:
    """The play button's text: what a click does."""
    return PAUSE_LABEL if playing else PLAY_LABEL


@dataclass(frozen=True)
class ClockReading:
    """The scene's timeline at one moment, for the page to advance from.

    Attributes:
        frame: The frame on screen.
        time: The server's wall clock at the reading (s; the page maps it to its own clock).
        sent: The page's clock when it asked for the reading (s; 0: unknown).
        fps: Playback speed.
        frames: Frames in the clip.
        loop: Whether playback wraps around at the end.
        playing: Whether the timeline plays.
    """

    frame: int
    time: float
    sent: float
    fps: float
    frames: int
    loop: bool
    playing: bool

    @classmethod
    def stopped(cls, frame: int) -> ClockReading:
        """A reading of a timeline that does not play."""
        return cls(frame, time.time(), 0.0, 1.0, 1, True, False)

    @classmethod
    def of(cls, session: PanelSession, sent: float = 0.0) -> ClockReading:
        """Read the page's scene (its state snapshot: frame, playing, fps, loop)."""
        state = session.controller.scene.state()
        return cls(
            int(state.frame), time.time(), float(sent), float(state.fps),
            max(1, int(state.num_frames)), bool(state.loop), bool(state.playing),
        )  # fmt: skip


def clock_html(reading: ClockReading) -> str:
    """The reading in the hidden box's data- attributes (`FOLLOW_JS` reads them)."""
    return (
        f'<span class="follow-clock" data-frame="{reading.frame}" data-time="{reading.time:.4f}"'
        f' data-sent="{reading.sent:.4f}"'
        f' data-fps="{reading.fps:g}" data-frames="{reading.frames}"'
        f' data-loop="{int(reading.loop)}" data-playing="{int(reading.playing)}"></span>'
    )


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
        reading = ClockReading.of(session)
        return {
            self.controls.legend: session.scene.legend.html,
            self.controls.opacity: session.controller.scene_settings().mask_opacity,
            self.widgets.frame: reading.frame,
            **self.following(reading.playing),
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

    def on_follow(self, sent: float | None, request: gr.Request | None = None) -> Updates:
        """A fast tick while the scene plays: a new reading of its clock; the timer stops
        once the scene does (and the slider gets the frame it stopped on)."""
        session = self._session(request)
        if session is None:
            return self.following(False)
        reading = ClockReading.of(session, float(sent or 0.0))
        if not reading.playing:
            return self.stopped(reading)
        return {self.controls.clock: clock_html(reading)}

    def on_poll(self, values: dict[Component, Any], request: gr.Request | None) -> Updates:
        """The page's slow poll: turn the fast follow on when playback started elsewhere
        (the Viser sidebar), off when it stopped.

        Turning it off, the poll also sends the stopped reading and its frame, as the fast
        tick would have: the poll may come first, and the page's slider would then stay on
        the frame it predicted last (`FOLLOW_JS`), which no later poll corrects."""
        session = self._session(request)
        if session is None:
            return {}
        reading = ClockReading.of(session)
        if reading.playing == bool(values[self.controls.following]):
            return {}
        if reading.playing:
            return self.following(True)
        return self.stopped(reading)

    def stopped(self, reading: ClockReading) -> Updates:
        """The fast follow off, with the reading of the stopped scene and its frame."""
        return {
            **self.following(False),
            self.controls.clock: clock_html(reading),
            self.widgets.frame: reading.frame,
        }


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
        events.on_follow, controls.sent, [controls.clock, frame, *following_outputs],
        js=SENT_JS, trigger_mode="always_last", **QUICK,
    )  # fmt: skip
    panel.poll([controls.following], [controls.clock, frame, *following_outputs], events.on_poll)
