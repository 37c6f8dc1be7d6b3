"""The real app in headless Chromium: run a clip, scrub, move the mask sliders, open, fail.

One app per module, started in this process on free ports with a tiny random stand-in
checkpoint (never shipped), driven through Debian's Chromium with Playwright (never
`playwright install`). Assertions read the server-side state of the page's own session (its
scene and controller; the scene iframe names the session) and visible text, not pixels.
Scenes stay small: a 4-frame 112x84 clip under a 20k-point budget.

The README screenshot is written by `scripts/screenshot.py`, not by these tests.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import open_panel, running_app, wait_for, wait_for_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MAX_POINTS = 20_000
TIMEOUT_MS = 120_000  # two shared CPU cores: a tiny run can still take a while


def _write_clip(path: Path, frames: int = 8) -> Path:
    """A small mp4: a white square sliding over a red ramp."""
    import imageio.v3 as iio

    video = np.zeros((frames, 48, 64, 3), np.uint8)
    video[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, None, :]
    for index in range(frames):
        video[index, 12:24, 4 + 6 * index : 16 + 6 * index] = 255
    iio.imwrite(path, video, fps=8, codec="libx264")
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    _write_clip(folder / "walk.mp4")
    (folder / "broken.mp4").write_bytes(b"this is not a video")
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch")
    from page4d_viewer.model import build_model, save_checkpoint

    torch.manual_seed(0)
    # A random tiny network at 112 px: a stand-in that runs in seconds, only for tests. With a
    # match head, as the shipped preset has: its geometric poses match in a fraction of a pass.
    model = build_model("tiny", img_size=112, has_match_head=True)
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "stand-in.safetensors")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, checkpoint: Path) -> Iterator:
    from page4d_viewer.inference.jobs import PredictorBackend

    with running_app(
        PredictorBackend([str(checkpoint)]),
        runs_dir=tmp_path_factory.mktemp("runs"),
        data_roots=[data_dir],
        max_points=MAX_POINTS,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, browser):
    # The embedded scene is not loaded (it would render WebGL in software on the shared CPU
    # cores): the tests read the scene's state on the server.
    return open_panel(browser, app.url, ready="#run")  # closed with the module's browser


def _status(page) -> str:
    return page.locator("#status").inner_text()


def _wait_text(page, selector: str, text: str) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    try:
        page.wait_for_function(
            "([selector, text]) => document.querySelector(selector).innerText.includes(text)",
            arg=[selector, text],
            timeout=TIMEOUT_MS,
        )
    except PlaywrightTimeoutError:
        # Say what the page showed instead, so a failure in CI can be understood from the log.
        shown = page.locator(selector).inner_text()
        errors = page.locator(".toast-body, .error").all_inner_texts()
        raise AssertionError(
            f"{selector} never showed {text!r}; it shows {shown!r}; error messages: {errors}"
        ) from None
    return page.locator(selector).inner_text()


def _wait_status(page, text: str) -> str:
    return _wait_text(page, "#status", text)


def _set_number(page, elem_id: str, value: float) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _upload(page, elem_id: str, path: Path) -> None:
    """Replace whatever the file box holds with one file, and wait until it is uploaded."""
    box = page.locator(f"#{elem_id}")
    clear = box.get_by_role("button", name="Clear")
    if clear.count():
        clear.first.click()
        box.locator("td.filename").first.wait_for(state="detached")
    box.locator("input[type=file]").set_input_files(str(path))
    # The download link appears once the file is on the server.
    box.locator(f'a[download="{path.name}"]').wait_for()


def _run_upload(page, path: Path) -> None:
    page.get_by_role("tab", name="Upload").click()
    _upload(page, "clip-upload", path)
    page.locator("#run").click()


@pytest.fixture(scope="module")
def first_run(page_session, app, page, data_dir: Path):
    """Upload the clip, limit it to 4 frames, run; returns the status line."""
    page.get_by_role("button", name="Sampling").click()
    _set_number(page, "max-frames", 4)
    _run_upload(page, data_dir / "walk.mp4")
    # The progress bar writes over the status line too ("preprocessing 4 frames"), so wait
    # for the title only the finished status has.
    status = _wait_status(page, "walk.mp4 · 4 frames")
    assert page_session(app, page).scene.wait_until_sent(timeout=60)
    return status


def test_run_shows_one_node_per_frame(page_session, app, page, first_run: str) -> None:
    state = page_session(app, page).scene.state()
    assert state.num_frames == 4, first_run
    assert state.points.frame_nodes == tuple(f"/frames/t{i:04d}/points" for i in range(4))
    assert sum(state.points.point_counts) <= MAX_POINTS
    assert "walk.mp4 · 4 frames · 112x84" in first_run
    assert "stand-in.safetensors" in first_run
    assert [record.title for record in page_session(app, page).controller.recent_runs()] == [
        "walk.mp4 · 4 frames · 112x84"
    ]
    page.get_by_role("tab", name="Pose comparison").click()
    table = _wait_text(page, "#metrics", "masked vs unmasked")
    assert "ATE" in table


def test_scene_is_embedded_and_linked(page_session, app, page) -> None:
    session = page_session(app, page)
    url = f"{app.url}scene/{session.session_id}/"  # same origin: the panel's own port
    frame = page.locator("#scene-frame iframe")
    page.wait_for_function(
        "url => document.querySelector('#scene-frame iframe').src === url", arg=url
    )
    link = page.locator("#scene-frame a").get_attribute("href")
    assert link == f"scene/{session.session_id}/"
    assert frame.get_attribute("title") == "3-D scene (Viser)"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert b"<html" in response.read().lower()


def test_panel_frame_slider_moves_the_scene_and_back(
    page_session, app, page, first_run: str
) -> None:
    scene = page_session(app, page).scene
    page.get_by_role("tab", name="Mask and depth").click()
    _set_number(page, "frame", 2)
    wait_for(lambda: scene.state().frame == 2, what="the scene to reach frame 2")
    assert scene.state().points.visible_frames == (2,)
    # The Viser timeline moves (as when played or scrubbed there): the panel follows.
    scene.set_frame(3)
    wait_for_page(
        page,
        "() => document.querySelector('#frame input[type=number]').value === '3'",
        "the panel's frame to follow the scene to 3",
        app=app,
    )


def test_mask_sliders_change_the_scene(page_session, app, page, first_run: str) -> None:
    scene = page_session(app, page).scene
    before = scene.state()
    _set_number(page, "mask-threshold", 0.8)
    wait_for(lambda: scene.state().mask.threshold == pytest.approx(0.8), what="threshold")
    _set_number(page, "mask-opacity", 0.2)
    wait_for(lambda: scene.state().mask.opacity == pytest.approx(0.2), what="opacity")
    after = scene.state()
    assert sum(after.color_sends) > sum(before.color_sends)
    assert after.geometry_sends == before.geometry_sends  # recoloured, never resent


def test_downloads_are_prepared(page_session, app, page, first_run: str) -> None:
    page.get_by_role("tab", name="Downloads").click()
    page.get_by_role("button", name="Prepare downloads").click()
    files = page.locator("#downloads")
    # The files carry the scene's settings in their names (earlier tests moved the sliders).
    state = page_session(app, page).scene.state()
    overlay = (
        f"{state.mask.overlay}_opacity{state.mask.opacity:g}_threshold{state.mask.threshold:g}"
    )
    conf = f"conf{state.points.confidence_percentile:g}"
    names = ["result.npz", f"scene_{conf}.glb", f"points_ply_{conf}.zip"]
    for name in [*names, f"mask_overlay_{overlay}.mp4"]:
        files.locator(f'a[download="{name}"]').wait_for()
    # One TUM file per camera variant: the head's masked and unmasked and the geometric pair
    # (the clip has no ground truth).
    assert files.locator('a[download^="trajectory_"]').count() == 4
    page.get_by_role("tab", name="Mask and depth").click()


def test_bad_upload_shows_an_error_and_keeps_the_result(
    page_session, app, page, first_run: str, data_dir: Path
) -> None:
    session = page_session(app, page)
    shown = session.controller.current
    _run_upload(page, data_dir / "broken.mp4")
    status = _wait_status(page, "Error:")
    assert "broken.mp4" in status
    assert "previous result is still shown" in status
    assert session.controller.current is shown
    assert session.scene.state().num_frames == 4
    # The app still answers: a path outside the data roots is refused with a clear message.
    page.get_by_role("tab", name="Server path").click()
    page.locator("#server-path textarea").fill("/etc/passwd")
    page.locator("#run").click()
    assert "outside the allowed data folders" in _wait_status(page, "outside")


def test_open_a_saved_result(page_session, app, page, first_run: str, tmp_path: Path) -> None:
    session = page_session(app, page)
    saved = session.controller.current.recon.select_frames([0, 2]).save(tmp_path / "two.npz")
    page.get_by_role("button", name="Open a result").click()
    _upload(page, "result-upload", saved)
    page.locator("#open-result").click()
    assert "two.npz" in _wait_status(page, "two.npz")
    assert session.scene.wait_until_sent(timeout=60)
    assert session.scene.state().num_frames == 2
    # And back to the saved run, from the recent-runs list.
    page.locator("#open-run").click()
    _wait_status(page, "walk.mp4 · 4 frames")
    assert session.scene.state().num_frames == 4


class _HeldBackend:
    """Wraps the app's model side: a run reports progress and waits until released.

    Progress reports are where a cancelled run stops, so this makes Cancel and the queue
    deterministic however fast the machine is.
    """

    def __init__(self, inner) -> None:
        self.inner_run = inner.run_model
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.runs = 0

    def run_model(self, source, options, progress):
        self.runs += 1
        self.started.set()
        try:
            while not self.release.wait(0.05):
                progress(0.05, "held by the test")
            return self.inner_run(source, options, progress)
        finally:
            self.finished.set()


@pytest.fixture()
def held(app, monkeypatch) -> Iterator[_HeldBackend]:
    # Every session's controller calls the one shared backend: hold it for all of them.
    backend = _HeldBackend(app.backend)
    monkeypatch.setattr(app.backend, "run_model", backend.run_model)
    yield backend
    backend.release.set()


def _run_path(page, path: str) -> None:
    page.get_by_role("tab", name="Server path").click()
    page.locator("#server-path textarea").fill(path)
    page.locator("#run").click()


def test_cancel_stops_a_run_and_keeps_the_result(
    page_session, app, page, first_run: str, held
) -> None:
    session = page_session(app, page)
    shown = session.controller.current
    runs_before = len(session.controller.recent_runs())
    _run_path(page, "walk.mp4")
    assert held.started.wait(60)
    page.locator("#cancel").click()
    assert "previous result is still shown" in _wait_status(page, "Cancelled:")
    assert held.finished.wait(60)
    assert session.controller.current is shown
    assert len(session.controller.recent_runs()) == runs_before
    assert session.scene.state().num_frames == shown.recon.num_frames


def test_second_user_waits_in_the_queue(
    page_session, app, page, browser, first_run: str, held
) -> None:
    mine = page_session(app, page).controller
    runs_before = len(mine.recent_runs())
    _run_path(page, "walk.mp4")
    assert held.started.wait(60)
    other = open_panel(browser, app.url, ready=None)
    _run_path(other, "walk.mp4")
    _wait_status(other, "queue")
    assert held.runs == 1  # the second run has not started
    held.release.set()
    theirs = page_session(app, other).controller
    wait_for(lambda: theirs.current is not None, what="the second run")
    wait_for(lambda: len(mine.recent_runs()) == runs_before + 1, what="the first run")
    assert held.runs == 2
    # Each page shows its own run (this page kept the default frame limit: all 8 frames),
    # and lists only its own runs.
    _wait_status(other, "walk.mp4 · 8 frames")
    wait_for(lambda: "queue" not in _status(other), what="the queue notice to go")
    assert theirs.current.record.run_id != mine.current.record.run_id
    assert [r.run_id for r in theirs.recent_runs()] == [theirs.current.record.run_id]
    assert theirs.current.record.run_id not in {r.run_id for r in mine.recent_runs()}
    other.close()


def test_a_refreshed_page_shows_the_shown_runs_settings(
    page_session, app, browser, data_dir: Path, first_run: str
) -> None:
    other = open_panel(browser, app.url, ready="#run")
    other.wait_for_timeout(1000)  # let the page's load event fill the widgets first
    other.get_by_role("button", name="Sampling").click()
    _set_number(other, "max-frames", 4)
    _set_number(other, "mask-strength", 100)
    _run_path(other, "walk.mp4")
    _wait_status(other, "mask strength 100")
    before = page_session(app, other)
    before.controller.set_mask_overlay(0.35, 0.65)
    before.controller.set_frame(2)
    run_id = before.controller.current.record.run_id
    other.reload()
    other.locator("#run").wait_for()
    # The reloaded page (a new Gradio session) is back in its tab's session: same scene, same
    # result, its run still listed (runs are owned by the tab, not by the page load).
    assert page_session(app, other) is before
    other.wait_for_function(
        "() => document.querySelector('#mask-strength input[type=number]').value === '100'"
    )
    other.wait_for_function(
        "() => document.querySelector('#mask-opacity input[type=number]').value === '0.35'"
    )
    other.wait_for_function(
        "() => document.querySelector('#mask-threshold input[type=number]').value === '0.65'"
    )
    other.wait_for_function(
        "() => document.querySelector('#frame input[type=number]').value === '2'"
    )
    assert "mask strength 100" in _status(other)
    assert before.controller.current.record.run_id == run_id
    assert run_id in {record.run_id for record in before.controller.recent_runs()}
    # The mask picture is drawn enlarged (112 px model input -> at least 480 px).
    other.get_by_role("tab", name="Mask and depth").click()
    picture = other.locator(".frame-image img").first
    picture.wait_for()
    other.wait_for_function("() => document.querySelector('.frame-image img').naturalWidth > 0")
    assert picture.evaluate("img => img.naturalWidth") >= 480
    assert picture.evaluate("img => getComputedStyle(img).imageRendering") == "pixelated"
    other.close()
