"""The Dataset and Compare tabs in headless Chromium: sort the table, open a row, compare.

A view-only app (no model) started with `--index` on a small batch folder whose rows are
three runs of one clip; Playwright drives Debian's Chromium (never `playwright install`).
Assertions read the server-side scene state and visible text.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import running_app, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000
# clip, checkpoint, ATE masked, ATE unmasked (all three are runs of the same clip)
RUNS = [("alley", "a.safetensors", 0.1, 0.3), ("bamboo", "b.safetensors", 0.5, 0.2),
        ("cave", "c.safetensors", 0.25, 0.25)]  # fmt: skip
# clip -> geometric ATE masked, unmasked, head vs geometry rotation (deg)
GEOMETRY = {"alley": (0.05, 0.1, 30.0), "bamboo": (0.2, 0.1, 2.0), "cave": (0.1, 0.3, 9.0)}


def _result(checkpoint: str, scale: float):
    from page4d_viewer import geometry
    from page4d_viewer.result.reconstruction import Cameras, Metadata, Reconstruction

    frames, height, width = 3, 28, 42
    steps = np.arange(frames, dtype=np.float64)
    T_world_cam = np.tile(np.eye(4)[:3], (frames, 1, 1))
    T_world_cam[:, :, 3] = scale * np.stack([0.1 * steps, 0.02 * steps**2, 0.05 * steps], -1)
    K = np.repeat(np.array([[[30.0, 0, 21], [0, 30.0, 14], [0, 0, 1]]]), frames, 0)
    extrinsics = geometry.invert_rigid(T_world_cam)
    depth = np.full((frames, height, width), 2.0, np.float32)
    return Reconstruction(
        images=np.full((frames, height, width, 3), 100, np.uint8), depth=depth,
        depth_conf=np.ones_like(depth), points_conf=np.ones_like(depth),
        points=np.random.default_rng(0).normal(size=(frames, height, width, 3)).astype(np.float32),
        cameras={"masked": Cameras(extrinsics, K), "unmasked": Cameras(extrinsics, K)},
        mask_score=np.zeros((frames, 2, 3), np.float32),
        metadata=Metadata(checkpoint_name=checkpoint, mask_strength=64.0, source="walk.mp4"),
    )  # fmt: skip


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from page4d_viewer.evaluation import index as run_index

    folder = tmp_path_factory.mktemp("data") / "batch"
    with contextlib.closing(run_index.connect(folder / run_index.INDEX_NAME)) as connection:
        for number, (clip, checkpoint, masked, unmasked) in enumerate(RUNS):
            relative = Path("results") / f"{clip}.npz"
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            _result(checkpoint, 1.0 + number).save(folder / relative)
            run_index.write_row(connection, run_index.RunRow(**{
                "clip": clip, "checkpoint": checkpoint, "settings_hash": "s",
                "checkpoint_name": checkpoint, "status": "ok", "mask_strength": 64.0,
                "frames": 3, "ate_masked": masked, "ate_unmasked": unmasked,
                "ate_geometry_masked": GEOMETRY[clip][0],
                "ate_geometry_unmasked": GEOMETRY[clip][1],
                "head_geometry_rot_deg": GEOMETRY[clip][2],
                "result_path": relative.as_posix(), "created_at": "2026-01-01T00:00:00",
            }))  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, batch: Path) -> Iterator:
    with running_app(
        runs_dir=tmp_path_factory.mktemp("runs"),
        data_roots=[batch.parent], index=str(batch), max_points=20_000,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="module")
def page(app, panel_page) -> Iterator:
    # The page's session exists once its load event has named its scene (the iframe); a sort
    # clicked before that (a busy machine) has no session to answer it.
    with panel_page(app.url, 1200, TIMEOUT_MS, ready="#scene-frame iframe") as opened:
        opened.get_by_role("tab", name="Dataset").click()
        _wait_order(opened, ["bamboo", "cave", "alley"])  # listed at build, worst first
        yield opened


def _table_clips(page) -> list[str]:
    text = page.locator("#dataset-table").inner_text()
    found = {clip: text.find(clip) for clip, *_ in RUNS if clip in text}
    return sorted(found, key=found.get)


def _wait_order(page, expected: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while _table_clips(page) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"table shows {_table_clips(page)}, expected {expected}")
        page.wait_for_timeout(200)


def test_dataset_table_sorts(page) -> None:
    # Each step's order differs from the one before it, so waiting for it also waits for that
    # step's answer (a late answer to an earlier step would otherwise overwrite a later one).
    page.locator("#dataset-descending input").click()  # smallest difference first
    _wait_order(page, ["alley", "cave", "bamboo"])
    page.locator("#dataset-sort input").click()
    page.get_by_role("option", name="ATE unmasked", exact=True).click()
    _wait_order(page, ["bamboo", "cave", "alley"])  # unmasked 0.2, 0.25, 0.3
    page.locator("#dataset-descending input").click()  # largest first
    _wait_order(page, ["alley", "cave", "bamboo"])
    page.locator("#dataset-sort input").click()
    page.get_by_role("option", name="ATE geometry masked − unmasked", exact=True).click()
    _wait_order(page, ["bamboo", "alley", "cave"])  # +0.1, -0.05, -0.2
    page.locator("#dataset-sort input").click()
    page.get_by_role("option", name="head vs geometry rotation", exact=True).click()
    _wait_order(page, ["alley", "cave", "bamboo"])  # 30, 9, 2 degrees
    page.locator("#dataset-descending input").click()  # smallest first
    _wait_order(page, ["bamboo", "cave", "alley"])
    page.locator("#dataset-geometry-scatter").wait_for(state="visible", timeout=TIMEOUT_MS)


def test_clicking_a_row_opens_its_run(page_session, app, page) -> None:
    session = page_session(app, page)
    before = session.controller.version
    page.locator("#dataset-table").get_by_text("cave", exact=True).first.click()
    wait_for(lambda: session.controller.version > before, what="the row's run to open")
    assert session.controller.current.result_file.name == "cave.npz"
    assert session.scene.wait_until_sent(timeout=60)
    assert session.scene.state().num_frames == 3
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('cave.npz')",
        timeout=TIMEOUT_MS,
    )


def test_compare_overlays_the_second_runs_cameras(page_session, app, page) -> None:
    session = page_session(app, page)
    current = session.controller.current
    if current is None or current.result_file.name != "cave.npz":
        pytest.skip("needs the run opened by test_clicking_a_row_opens_its_run")
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-choice input").click()
    page.get_by_role("option", name=re.compile(r"index · alley")).click()
    page.locator("#compare").click()
    wait_for(lambda: session.scene.state().comparison.title is not None, what="the comparison")
    state = session.scene.state()
    assert "alley.npz" in state.comparison.title and state.comparison.visible
    assert state.cameras.variants == ("masked", "unmasked")
    assert state.comparison.variants == ("masked", "unmasked")
    assert len(state.comparison.camera_nodes) == 6  # 3 frames x 2 variants
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.includes('alley.npz')",
        timeout=TIMEOUT_MS,
    )
    page.locator("#clear-compare").click()
    wait_for(lambda: session.scene.state().comparison.title is None, what="the comparison to clear")
