"""The geometric camera variants in the real app, in headless Chromium.

The app starts as `python launch.py` does: the shipped default model runs the bundled
`orbit_movers` sample at start-up. Its camera head learned no motion, so the head's frusta sit
nearly on one spot; the geometric ones, solved from the same network's depth and matches,
must move with the camera. A click on the head-vs-geometry curve moves the timeline.
Assertions read the page's own session on the server (its scene and controller).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import running_app

from page4d_viewer.viewer.scene.cameras import HeadCameraLayer
from page4d_viewer.viewer.scene.geometric_cameras import GeometricCameraLayer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "samples" / "orbit_movers"
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    from page4d_viewer.inference.jobs import PredictorBackend

    with running_app(
        PredictorBackend(),
        runs_dir=tmp_path_factory.mktemp("runs"),
        data_roots=[SAMPLE.parent],
        clip=str(SAMPLE),
        max_points=60_000,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, panel_page) -> Iterator:
    with panel_page(app.url, 1200, TIMEOUT_MS, ready="#status") as opened:
        opened.wait_for_function(
            "() => document.querySelector('#status').innerText.includes('orbit_movers')"
        )
        yield opened


def test_geometric_frusta_of_distant_frames_are_apart(page_session, app, page) -> None:
    session = page_session(app, page)
    assert session.scene.wait_until_sent(timeout=120)
    state = session.scene.state()
    assert {"geometry_masked", "geometry_unmasked"} <= set(state.cameras.variants)
    assert state.cameras.variant_visible["geometry_masked"]
    head = session.scene.layer(HeadCameraLayer)
    geometric = session.scene.layer(GeometricCameraLayer)
    last = state.num_frames - 1

    def travel(variant: str) -> float:
        cameras = geometric if variant.startswith("geometry") else head
        first_pose, last_pose = cameras.camera_pose(variant, 0), cameras.camera_pose(variant, last)
        assert first_pose is not None and last_pose is not None
        return float(np.linalg.norm(last_pose[1] - first_pose[1]))

    recon = session.controller.current.recon
    scene_depth = float(np.median(recon.depth))
    # The geometric cameras travel a visible share of the scene; the head's barely move.
    assert travel("geometry_masked") > 0.1 * scene_depth
    assert travel("geometry_masked") > 5 * travel("masked")
    assert travel("geometry_unmasked") > 0.1 * scene_depth


def test_a_click_on_the_disagreement_curve_moves_the_timeline(page_session, app, page) -> None:
    from page4d_viewer.viewer import plots

    session = page_session(app, page)
    recon = session.controller.current.recon
    page.get_by_role("tab", name="Pose comparison").click()
    picture = page.locator("#disagreement img")
    picture.wait_for()
    page.wait_for_function("() => document.querySelector('#disagreement img').naturalWidth > 0")
    # The same layout the panel drew: where frame `target` sits in the picture's pixels.
    axis = plots.figure_picture(plots.disagreement_figure(recon, 0), recon.num_frames).axis
    target = recon.num_frames - 5
    column = axis.left + (target - axis.first) / (axis.last - axis.first) * (axis.right - axis.left)
    natural_width = page.evaluate("() => document.querySelector('#disagreement img').naturalWidth")
    box = picture.bounding_box()
    assert box is not None
    picture.click(position={"x": column * box["width"] / natural_width, "y": box["height"] / 2})
    page.wait_for_function(
        "frame => document.querySelector('#frame input[type=number]').value == String(frame)",
        arg=target,
    )
    assert session.scene.state().frame == target
