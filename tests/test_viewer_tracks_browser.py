"""Point tracks in headless Chromium: run a tiny clip with "Track points", see the scene draw
the tracks' segments, move the timeline and see them change, then add a track by clicking the
Tracks tab's picture.

The app runs in this process with a random tiny stand-in network at 112 px whose tracker
calls every point visible (random weights say ~0.1, which would hide every segment); Debian's
Chromium is driven through Playwright (never `playwright install`). The scene's page is not
loaded (no WebGL needed): assertions read the page's own session on the server (its scene's
track layer and the Viser handles it sent), as the other browser tests do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000  # two shared CPU cores


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, sliding_square_clip) -> Path:
    """A folder with a 4-frame mp4, walk.mp4: a white square sliding over a red ramp."""
    folder = tmp_path_factory.mktemp("tracks-data")
    sliding_square_clip(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, sure_tracker) -> Path:
    torch = pytest.importorskip("torch")
    from page4d_viewer.model import build_model, save_checkpoint

    torch.manual_seed(0)
    # A stand-in with a track head, only for tests; and a match head, as the shipped preset
    # has, so its geometric poses do not track every keyframe pair on top of the run.
    model = build_model("tiny", img_size=112, has_match_head=True)
    assert model.track_available
    sure_tracker(model)
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "tracker.safetensors")


@pytest.fixture(scope="module")
def app(tmp_path_factory, data_dir: Path, checkpoint: Path) -> Iterator:
    from page4d_viewer.inference.jobs import PredictorBackend

    with running_app(
        PredictorBackend([str(checkpoint)]),
        runs_dir=tmp_path_factory.mktemp("runs"), data_roots=[data_dir], max_points=20_000,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def page(app, panel_page) -> Iterator:
    with panel_page(app.url, timeout_ms=TIMEOUT_MS, ready="#run") as opened:
        yield opened


def _wait_until_still(page, image) -> None:
    """Wait until an image stops being replaced (the same source for a second)."""
    image.wait_for()
    previous, still = None, 0
    for _ in range(TIMEOUT_MS // 250):
        source = image.get_attribute("src")
        still = still + 1 if source == previous else 0
        if still >= 4:
            return
        previous = source
        page.wait_for_timeout(250)
    raise AssertionError("the picture kept changing")


def _set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _segments(session) -> np.ndarray:
    """The track segments the scene sent: the points of its visible line-segment nodes."""
    nodes = session.scene.tracks._nodes
    lines = [nodes[name] for name in ("recent", "older") if name in nodes]
    visible = [handle.points for handle in lines if handle.visible]
    return np.concatenate(visible) if visible else np.zeros((0, 2, 3), np.float32)


def test_tracks_are_drawn_follow_the_timeline_and_can_be_seeded(
    page_session, app, page, data_dir: Path
) -> None:
    box = page.locator("#track-points input[type=number]")
    assert box.input_value() == "64"  # this checkpoint has a track head
    _set_number(page, "track-points", 8)
    page.get_by_role("tab", name="Server path").click()
    page.locator("#server-path textarea").fill(str(data_dir / "walk.mp4"))
    page.locator("#run").click()
    page.locator("#status").get_by_text("walk.mp4 · 4 frames").wait_for()
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    session = page_session(app, page)
    scene = session.scene
    assert scene.wait_until_sent(timeout=60)
    assert scene.state().tracks.count == 8

    # The scene's timeline moves (its Viser slider, or playback): the segments follow it.
    scene.user_moved_frame(1)
    at_one = _segments(session)
    assert len(at_one) == scene.state().tracks.segments > 0
    assert set(scene.tracks.segments.age.tolist()) == {0}  # one frame of history
    sends = scene.state().tracks.sends
    scene.user_moved_frame(3)
    at_three = _segments(session)
    assert len(at_three) == scene.state().tracks.segments > len(at_one)
    assert scene.state().tracks.sends > sends
    np.testing.assert_allclose(np.sort(at_three.reshape(-1)), np.sort(
        scene.tracks.segments.points.reshape(-1)
    ))  # fmt: skip

    # A click on the Tracks tab's picture adds a track from the frame the panel shows (it
    # follows the scene's timeline).
    # Let the panel catch up with the scene first (the app browser test checks that it does);
    # the click is checked against whatever frame the panel then shows.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            "() => document.querySelector('#frame input[type=number]').value === '3'",
            timeout=30_000,
        )
    page.get_by_role("tab", name="Tracks").first.click()
    picture = page.locator("#tracks-picture img")
    _wait_until_still(page, picture)  # a click while the picture is replaced is lost
    shown_frame = int(page.locator("#frame input[type=number]").input_value())
    box = picture.bounding_box()
    assert box is not None
    picture.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    page.locator("#tracks-status").get_by_text("Added a track").wait_for()
    tracks = session.controller.current.recon.tracks
    assert tracks.num_tracks == 9 and tracks.query_frame[-1] == shown_frame
    assert scene.state().tracks.count == 9
    page.locator("#tracks-note").get_by_text("9 tracks").wait_for()
