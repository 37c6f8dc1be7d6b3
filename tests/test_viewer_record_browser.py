"""The Record tab in headless Chromium: a view-only app shows a small result, its embedded
scene renders in software WebGL, and the panel records 3 frames at 320x240 through Viser's
`get_render` (from the current view, and along two keyframes taken from it) and offers the
share zip."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator

import av
import numpy as np
import pytest
from conftest import open_panel, viewing_app, wait_for

from page4d_viewer.viewer import recording
from page4d_viewer.viewer.tabs.record import CURRENT_VIEW, KEYFRAMES

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Software WebGL (SwiftShader), so the embedded scene really draws and can render frames.
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def app(make_reconstruction, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    small = make_reconstruction(frames=3, height=56, width=84)
    with viewing_app(small, tmp_path_factory.mktemp("record")) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, launch_chromium) -> Iterator:
    with launch_chromium(webgl=True) as browser:
        yield open_panel(browser, app.url, timeout_ms=TIMEOUT_MS, load_scene=True, ready="#status")


def _wait_for_status(page, text: str) -> str:
    page.wait_for_function(
        "(text) => document.querySelector('#record-status').innerText.includes(text)"
        " || document.querySelector('#record-status').innerText.includes('Error')",
        arg=text,
        timeout=TIMEOUT_MS,
    )
    return page.locator("#record-status").inner_text()


def test_record_three_frames_at_320x240(page_session, app, page) -> None:
    session = page_session(app, page)
    # The panel embeds the scene: wait for that browser to join the session's Viser server.
    wait_for(lambda: bool(session.server.get_clients()), 60, "the embedded scene", page=page)
    page.get_by_role("tab", name="Record").click()
    page.locator("#record-resolution input").click()
    page.get_by_role("option", name="320x240").click()
    page.locator("#record-video").click()
    status = _wait_for_status(page, "Recorded")
    assert "Recorded" in status, status
    (path,) = session.controller.current.exports_dir.glob("playback_view_320x240.mp4")
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3
    assert all(frame.shape == (240, 320, 3) for frame in frames)
    assert all(frame.reshape(-1, 3).std(axis=0).max() > 5.0 for frame in frames), "one colour"
    assert session.scene.state().frame == 0  # the timeline is back where it was


def _wait_for_keyframes(page, text: str) -> str:
    page.wait_for_function(
        "(text) => document.querySelector('#record-keyframes').innerText.includes(text)",
        arg=text,
        timeout=TIMEOUT_MS,
    )
    return page.locator("#record-keyframes").inner_text()


def test_record_along_two_keyframes(page_session, app, page) -> None:
    session = page_session(app, page)
    wait_for(lambda: bool(session.server.get_clients()), 60, "the embedded scene", page=page)
    client = recording.newest_client(session.server)
    wait_for(lambda: client.camera.update_timestamp > 0, 60, "the scene's camera", page=page)
    page.get_by_role("tab", name="Record").click()
    page.locator("#record-clear-keyframes").click()
    _wait_for_keyframes(page, "No keyframes")
    start = np.array(client.camera.position)
    page.locator("#record-add-keyframe").click()
    _wait_for_keyframes(page, "1 keyframe")
    # Move the camera as a user would have (server-side here), then take the second stop.
    moved = start + np.array([0.6, -0.3, 0.2])
    client.camera.position = moved
    page.wait_for_timeout(1000)
    page.locator("#record-add-keyframe").click()
    table = _wait_for_keyframes(page, "2 keyframes")
    assert "(" + ", ".join(f"{v:.2f}" for v in moved) + ")" in table, table
    page.locator("#record-resolution input").click()
    page.get_by_role("option", name="320x240").click()
    page.get_by_label(KEYFRAMES).check()
    page.locator("#record-video").click()
    status = _wait_for_status(page, "keyframes_320x240")
    assert "Recorded" in status, status
    exports = session.controller.current.exports_dir
    frames = _decode(exports / "playback_keyframes_320x240.mp4")
    assert len(frames) == 3 and all(frame.shape == (240, 320, 3) for frame in frames)
    assert session.scene.state().frame == 0  # the timeline is back where it was
    # The same clip from the current view, which is the second keyframe: the keyframe video
    # ends there (frame 2 alike) but started elsewhere (frame 0 differs).
    page.get_by_label(CURRENT_VIEW).check()
    page.locator("#record-video").click()
    _wait_for_status(page, "view_320x240")
    still = _decode(exports / "playback_view_320x240.mp4")
    start_difference = np.abs(frames[0].astype(int) - still[0].astype(int)).mean()
    end_difference = np.abs(frames[2].astype(int) - still[2].astype(int)).mean()
    assert start_difference > 1.0, "the camera did not start at the first keyframe"
    assert end_difference < 0.5 * start_difference, (start_difference, end_difference)


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_share_zip_from_the_panel(page_session, app, page) -> None:
    page.get_by_role("tab", name="Record").click()
    page.locator("#record-share").click()
    status = _wait_for_status(page, "http.server")
    assert "Wrote" in status, status
    (archive,) = page_session(app, page).controller.current.exports_dir.glob("share_*.zip")
    with zipfile.ZipFile(archive) as opened:
        assert sorted(opened.namelist()) == ["index.html", "recording.viser"]
    assert np.isfinite(archive.stat().st_size)
