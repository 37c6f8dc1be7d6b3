"""The split view's scenes (issue 20): masked | unmasked, locked in time, settings, viewpoint."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import viser

from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.split import (
    SharedSettings,
    SplitScenes,
    Viewpoint,
    copy_viewpoint,
    merged_settings,
)

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


@pytest.fixture
def split(make_reconstruction) -> Iterator[SplitScenes]:
    servers = [viser.ViserServer(host="127.0.0.1", port=0, verbose=False) for _ in range(2)]
    scenes = [SceneView(server) for server in servers]
    linked = SplitScenes(*scenes)
    recon = make_reconstruction(6, 28, 42, variants=VARIANTS, ground_truth=True)
    linked.show(recon)
    for scene in scenes:
        assert scene.wait_until_sent(timeout=30)
    yield linked
    linked.close()
    for scene, server in zip(scenes, servers, strict=True):
        scene.close()
        server.stop()


def _shown_variants(scene: SceneView) -> set[str]:
    visible = scene.state().cameras.variant_visible or {}
    return {name for name in scene.state().cameras.variants if visible[name]}


def test_each_side_draws_its_own_poses_and_points(split: SplitScenes) -> None:
    left, right = split.scenes
    assert _shown_variants(left) == {"masked", "geometry_masked", "ground_truth"}
    assert _shown_variants(right) == {"unmasked", "geometry_unmasked", "ground_truth"}
    assert left.state().points.point_source == "depth_masked"
    assert right.state().points.point_source == "depth_unmasked"

    # Depth unprojected with each side's own cameras: the two point clouds differ.
    def first_points(scene: SceneView) -> np.ndarray:
        cells = scene.points.frames[1].bins
        return np.concatenate([np.asarray(cell.handle.points) for cell in cells.values()])

    assert not np.allclose(first_points(left), first_points(right), atol=1e-3)


def test_time_is_locked_both_ways(split: SplitScenes) -> None:
    left, right = split.scenes
    left.user_moved_frame(3)  # the slider or a frustum click on the left
    assert right.frame == 3
    right.user_moved_frame(5)
    assert left.frame == 5
    right.set_playing(True)
    split.set_playing(True)  # one clock: the left plays, the right follows it
    assert left.timeline.playing.is_set() and not right.timeline.playing.is_set()
    split.set_playing(False)


def test_a_setting_changed_on_one_side_reaches_the_other(split: SplitScenes) -> None:
    left, right = split.scenes
    right.set_mask_overlay(0.9, 0.3, "threshold")
    right.points.set_display("all")
    split.sync_settings()
    state = left.state()
    assert (state.mask.opacity, state.mask.threshold, state.mask.overlay) == (
        pytest.approx(0.9),
        pytest.approx(0.3),
        "threshold",
    )
    assert state.points.display_mode == "all"
    left.points.set_confidence_percentile(50)
    split.sync_settings()
    assert right.state().points.confidence_percentile == 50
    # Each side keeps its own point source: that is what differs between the sides.
    assert right.state().points.point_source == "depth_unmasked"


def test_a_viewpoint_is_copied_once_and_its_echo_stops() -> None:
    camera = SimpleNamespace(position=np.zeros(3), look_at=np.ones(3), up_direction=np.array(
        [0.0, -1.0, 0.0]), fov=1.0)  # fmt: skip
    client = SimpleNamespace(camera=camera, atomic=contextlib.nullcontext)
    there = Viewpoint(np.array([1.0, 2, 3]), np.array([0.0, 0, 5]), np.array([0.0, -1, 0]), 0.8)
    assert copy_viewpoint(there, client)
    np.testing.assert_array_equal(camera.position, [1, 2, 3])
    np.testing.assert_array_equal(camera.look_at, [0, 0, 5])
    assert camera.fov == 0.8
    assert not copy_viewpoint(there, client)  # already there: the echo ends


def test_per_setting_the_side_that_changed_it_wins() -> None:
    """A new result fits the point size on both sides at once; a mask setting changed on the
    right meanwhile must survive (a whole-snapshot "left wins" copied the left's back)."""
    last = SharedSettings("current", 5, 25.0, 0.01, 1, 0.5, 0.5, "continuous", None)
    left = dataclasses.replace(last, point_size=0.14, percentile=50.0)
    right = dataclasses.replace(last, point_size=0.14, opacity=0.9, percentile=10.0)
    merged = merged_settings(last, left, right)
    assert merged == dataclasses.replace(last, point_size=0.14, opacity=0.9, percentile=50.0)
    assert merged_settings(last, last, last) == last
