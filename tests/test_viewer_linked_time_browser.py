"""Linked time in headless Chromium: every per-frame plot marks the current frame and follows
playback, and a click on a plot moves the timeline there.

A view-only app shows a small saved result with every camera variant and ground truth, so the
Pose comparison tab has both per-frame plots and the Mask and depth tab its mask share plot.
The scene's page is not loaded: its playback runs on the server, and the assertions read the
page's own session there.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from conftest import open_panel, page_report, session_report, viewing_app, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRAMES = 12
VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")
PLOTS = {
    "Pose comparison": ("disagreement", "pose-differences"),
    "Mask and depth": ("mask-share",),
    "Inside the model": ("attention-share",),
}
"""The page's per-frame plots (element ids), by the tab that holds them."""

# Where the plot's marker is and which frame it marks; null while it is not drawn.
MARK_JS = """id => {
  const mark = document.querySelector('#' + id + ' .frame-mark');
  if (!mark || mark.style.display !== 'block') { return null; }
  return {left: parseFloat(mark.style.left), frame: Number(mark.dataset.frame)};
}"""

# The page x offset (in CSS pixels, from the picture's left edge) of a frame, from the
# axis the page was sent with the picture; null before the picture has loaded.
FRAME_X_JS = """([id, frame]) => {
  const box = document.querySelector('#' + id + ' .frame-plot-box');
  const picture = box && box.querySelector('img');
  if (!picture || !picture.naturalWidth) { return null; }
  const axis = box.dataset;
  const column = Number(axis.left) + (frame - Number(axis.first))
    / (Number(axis.last) - Number(axis.first)) * (Number(axis.right) - Number(axis.left));
  return column * picture.clientWidth / picture.naturalWidth;
}"""


def _attention(frames: int, grid: tuple[int, int]):
    """Random camera-token attention: one layer, query frames 0 and 6, both variants."""
    from page4d_viewer.result.inspection import Inside

    rng = np.random.default_rng(0)
    weights = rng.uniform(0.5, 1.5, (1, 2, frames, grid[0] * grid[1] + 1))
    weights /= weights.sum(axis=(2, 3), keepdims=True)
    maps = weights[..., 1:].reshape(1, 2, frames, *grid).astype(np.float32)
    special = weights[..., 0].astype(np.float32)
    return Inside(
        attention={"masked": maps, "unmasked": maps[..., ::-1].copy()},
        attention_special={"masked": special, "unmasked": special},
        attention_layers=(4,),
        attention_query_frames=(0, 6),
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, make_reconstruction) -> Iterator:
    recon = make_reconstruction(
        frames=FRAMES, height=56, width=84, variants=VARIANTS, ground_truth=True,
        inside=_attention(FRAMES, (4, 6)),
    )  # fmt: skip
    with viewing_app(recon, tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, browser):
    return open_panel(browser, app.url)  # closed with the module's browser


# What the page shows of the scene's timeline: its slider and the latest clock reading.
PAGE_TIME_JS = """() => {
  const number = document.querySelector('#frame input[type=number]');
  const clock = document.querySelector('#follow-clock .follow-clock');
  return {slider: number && number.value, clock: clock && Object.assign({}, clock.dataset)};
}"""


def _timeline_report(page, session) -> str:
    """The scene's timeline on the server beside the page's view of it (for a failure)."""
    state = session.scene.state()
    return f"scene frame {state.frame}, playing {state.playing}; page {page.evaluate(PAGE_TIME_JS)}"


def _mark(page, plot: str) -> dict | None:
    return page.evaluate(MARK_JS, plot)


def _show_plot(page, tab: str, plot: str) -> None:
    page.get_by_role("tab", name=tab, exact=True).click()
    page.wait_for_function(
        "id => { const p = document.querySelector('#' + id + ' .frame-plot-box img');"
        " return p && p.naturalWidth > 0 && p.clientWidth > 0; }",
        arg=plot,
    )
    wait_for(lambda: _mark(page, plot) is not None, 30, f"{plot}'s frame mark", page=page)


def test_the_frame_mark_follows_playback(page_session, app, page) -> None:
    session = page_session(app, page)
    assert session.scene.wait_until_sent(timeout=60)
    _show_plot(page, "Pose comparison", "disagreement")
    session.scene.set_fps(3.0)
    session.scene.set_playing(True)
    try:
        positions: set[float] = set()
        marked: set[int] = set()

        def moved_twice() -> bool:
            mark = _mark(page, "disagreement")
            if mark is not None:
                positions.add(round(mark["left"], 1))
                marked.add(mark["frame"])
            return len(positions) >= 3

        try:
            wait_for(moved_twice, 30, "the mark moving with playback", page=page)
        except AssertionError as error:
            report = f"{_timeline_report(page, session)}; {session_report(page, app)}"
            raise AssertionError(f"{error}; {report}") from None
    finally:
        session.scene.set_playing(False)
    assert len(marked) >= 3  # each position marked its own frame, as playback went on


@pytest.mark.parametrize(("tab", "plot"), [(t, p) for t, ps in PLOTS.items() for p in ps])
def test_a_click_on_a_plot_moves_the_timeline(page_session, app, page, tab, plot) -> None:
    session = page_session(app, page)
    session.scene.set_playing(False)
    _show_plot(page, tab, plot)
    # Wait for the panel to catch up with the stopped scene, then aim half a clip away.
    try:
        page.wait_for_function(
            "frame => document.querySelector('#frame input[type=number]').value == String(frame)",
            arg=session.scene.frame,
            timeout=30_000,
        )
    except Exception as error:
        raise AssertionError(
            f"the panel never showed the stopped scene's frame; {_timeline_report(page, session)}"
            f"; {page_report(page, app)}"
        ) from error
    target = (session.scene.frame + FRAMES // 2) % FRAMES
    x = page.evaluate(FRAME_X_JS, [plot, target])
    picture = page.locator(f"#{plot} .frame-plot-box img")
    box = picture.bounding_box()
    assert x is not None and box is not None
    picture.click(position={"x": x, "y": box["height"] / 2})
    page.wait_for_function(
        "frame => document.querySelector('#frame input[type=number]').value == String(frame)",
        arg=target,
    )
    assert session.scene.state().frame == target
    # The mark now stands where the click was, on the clicked frame.
    wait_for(lambda: (_mark(page, plot) or {}).get("frame") == target, 10, "the mark", page=page)
    mark = _mark(page, plot)
    assert mark is not None and abs(mark["left"] + 1 - x) < 2.0
