"""The scene's point tracks: the segments drawn for hand-built tracks, and the track layer in a
real ViserServer (frame changes, settings, point sources, the moving/static split)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from page4d_viewer.result.mask import DisplayError
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import Tracks, lift, moving_tracks, track_colors
from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.tracks import (
    BACKGROUND,
    FADE,
    choose_tracks,
    fade,
    track_segments,
)

FRAMES, HEIGHT, WIDTH = 6, 28, 42  # 2 x 3 patches of 14 pixels; the right column moves


def hand_tracks() -> Tracks:
    """Four tracks through six frames.

    0: seeded on the moving right column (x 35), sliding left one pixel a frame, visible.
    1: a static pixel (5, 5), visible throughout.
    2: static at (20, 20), occluded (visibility 0.1) on frame 3.
    3: static, leaves the image (x < 0) from frame 4 on.
    """
    xy = np.zeros((FRAMES, 4, 2), np.float32)
    steps = np.arange(FRAMES, dtype=np.float32)
    xy[:, 0] = np.stack([35 - steps, np.full(FRAMES, 10.0)], -1)
    xy[:, 1] = (5, 5)
    xy[:, 2] = (20, 20)
    xy[:, 3] = np.stack([np.array([8, 6, 3, 1, -5, -9], np.float32), np.full(FRAMES, 14.0)], -1)
    visibility = np.full((FRAMES, 4), 0.9, np.float32)
    visibility[3, 2] = 0.1
    return Tracks(xy, visibility, np.full((FRAMES, 4), 0.8), np.zeros(4, np.int64))


@pytest.fixture
def tracked(sliding_plane) -> Reconstruction:
    """A plane 2 in front of a camera sliding along x (every pixel has a point; conftest's
    SlidingPlane), with `hand_tracks`."""
    return sliding_plane(FRAMES, HEIGHT, WIDTH).reconstruction(tracks=hand_tracks())


def segments_of(recon: Reconstruction, frame: int, trail: int, source: str = "points"):
    tracks = recon.tracks
    assert tracks is not None
    moving = moving_tracks(recon, 0.5)
    return track_segments(
        lift(recon, source), tracks.visible(), track_colors(moving),
        np.arange(tracks.num_tracks), frame, trail,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the segments


def test_segments_join_the_lifted_points_of_consecutive_frames(tracked: Reconstruction) -> None:
    paths = lift(tracked, "points")
    segments = segments_of(tracked, frame=5, trail=3)
    for (start, end), track, age in zip(segments.points, segments.track, segments.age, strict=True):
        ends_on = 5 - age
        np.testing.assert_allclose(start, paths[ends_on - 1, track], atol=1e-5)
        np.testing.assert_allclose(end, paths[ends_on, track], atol=1e-5)
    pairs = set(zip(segments.track.tolist(), segments.age.tolist(), strict=True))
    # track 0 and 1: ends on 3, 4, 5; track 2 is occluded on 3 (segments ending on 3 and 4
    # touch it); track 3 has no point from frame 4 on.
    expected = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (3, 2)}
    assert pairs == expected
    assert len(segments.points) == len(expected)


def test_no_segment_touches_an_invisible_or_missing_point(tracked: Reconstruction) -> None:
    for frame in range(FRAMES):
        segments = segments_of(tracked, frame, trail=FRAMES)
        ends_on = frame - segments.age
        occluded = (segments.track == 2) & np.isin(ends_on, (3, 4))
        gone = (segments.track == 3) & (ends_on >= 4)
        assert not occluded.any() and not gone.any()
        assert np.isfinite(segments.points).all()
        # The dots: only tracks visible with a point on this frame.
        expected_heads = (
            {0, 1, 2, 3} - ({2} if frame == 3 else set()) - ({3} if frame >= 4 else set())
        )
        assert set(segments.head_tracks.tolist()) == expected_heads


def test_trail_length_limits_the_segments(tracked: Reconstruction) -> None:
    assert segments_of(tracked, frame=0, trail=8).points.shape == (0, 2, 3)
    for trail in (1, 2, 4):
        segments = segments_of(tracked, frame=5, trail=trail)
        assert set(segments.age[segments.track == 1].tolist()) == set(range(trail))
    whole = segments_of(tracked, frame=5, trail=50)
    assert set(whole.age[whole.track == 1].tolist()) == {0, 1, 2, 3, 4}


def test_older_segments_fade_toward_the_background(tracked: Reconstruction) -> None:
    trail = 4
    segments = segments_of(tracked, frame=5, trail=trail)
    colour = track_colors(moving_tracks(tracked, 0.5))[1].astype(float)
    mine = segments.track == 1
    ages, ends = segments.age[mine], segments.colors[mine, 1].astype(float)
    order = np.argsort(ages)
    distance = np.linalg.norm(ends[order] - BACKGROUND, axis=1)
    assert (np.diff(distance) < 0).all()  # older: nearer the background
    np.testing.assert_array_equal(ends[order][0], colour)  # the newest end: the track's colour
    # Each segment runs from its older end's shade to its newer end's.
    starts = segments.colors[mine, 0].astype(float)
    assert (
        np.linalg.norm(starts - BACKGROUND, axis=1) < np.linalg.norm(ends - BACKGROUND, axis=1)
    ).all()
    oldest = fade(colour.astype(np.uint8)[None], np.array([trail]), trail)[0]
    np.testing.assert_allclose(oldest, (1 - FADE) * colour + FADE * BACKGROUND, atol=0.5)


def test_moving_and_static_tracks_are_chosen_apart(tracked: Reconstruction) -> None:
    moving = moving_tracks(tracked, 0.5)
    assert moving.tolist() == [True, False, False, False]
    assert choose_tracks(moving, "moving", 10).tolist() == [0]
    assert choose_tracks(moving, "static", 10).tolist() == [1, 2, 3]
    assert choose_tracks(moving, "both", 10).tolist() == [0, 1, 2, 3]
    assert not moving_tracks(tracked, 0.95).any()  # above every patch's probability


def test_at_most_max_count_tracks_spread_evenly_keeping_the_newest() -> None:
    moving = np.zeros(10, bool)
    assert choose_tracks(moving, "both", 2).tolist() == [0, 9]
    assert choose_tracks(moving, "both", 4).tolist() == [0, 3, 6, 9]
    assert len(choose_tracks(moving, "both", 9)) == 9


def test_track_colours_are_warm_when_moving_and_cool_when_static() -> None:
    colours = track_colors(np.array([True] * 8 + [False] * 8)).astype(int)
    assert colours.shape == (16, 3) and colours.dtype == np.int64
    assert (colours[:8, 0] > colours[:8, 2]).all()  # red over blue
    assert (colours[8:, 2] > colours[8:, 0]).all()  # blue over red
    assert len({tuple(c) for c in colours}) == 16


# ------------------------------------------------------------------------------ in the scene


def test_the_scene_draws_the_tracks_and_follows_the_timeline(
    tracked: Reconstruction, scene: SceneView
) -> None:
    scene.show(tracked)
    assert scene.wait_until_sent(timeout=30)
    state = scene.state()
    assert state.tracks.count == 4 and state.tracks.segments == 0  # frame 0: no history yet
    assert state.tracks.heads == 4
    sends, geometry = state.tracks.sends, state.geometry_sends
    scene.set_frame(5)
    state = scene.state()
    expected = segments_of(tracked, 5, scene.tracks.settings.trail)
    drawn = scene.tracks.segments
    assert drawn is not None
    np.testing.assert_allclose(drawn.points, expected.points)
    assert state.tracks.segments == len(expected.points) and state.tracks.drawn == 4
    assert state.tracks.sends == sends + 1
    assert state.geometry_sends == geometry  # no point was sent again
    lines = scene.tracks._nodes
    total = sum(len(lines[name].points) for name in ("recent", "older") if lines[name].visible)
    assert total == len(expected.points)
    scene.set_mask_overlay(0.5, 0.5)  # nothing the tracks depend on changed
    assert scene.state().tracks.sends == sends + 1


def test_track_settings_redraw_only_the_tracks(tracked: Reconstruction, scene: SceneView) -> None:
    scene.show(tracked)
    scene.set_frame(5)
    scene.tracks.set(which="moving")
    assert set(scene.tracks.segments.track.tolist()) == {0}
    scene.tracks.set(which="static", trail=1)
    segments = scene.tracks.segments
    assert set(segments.track.tolist()) == {1, 2} and set(segments.age.tolist()) == {0}
    assert scene.tracks.controls.which.value == "static"
    scene.tracks.controls.which.value = "both"  # as if chosen in the Viser sidebar
    assert scene.state().tracks.settings.which == "both"
    scene.tracks.set(visible=False)
    state = scene.state()
    assert state.tracks.segments == 0 and not scene.tracks._root.visible
    with pytest.raises(DisplayError, match="one of both, moving, static"):
        scene.tracks.set(which="fast")
    with pytest.raises(DisplayError, match="trail"):
        scene.tracks.set(trail=0)


def test_the_mask_threshold_moves_tracks_between_moving_and_static(
    tracked: Reconstruction, scene: SceneView
) -> None:
    scene.show(tracked)
    scene.set_frame(5)
    scene.tracks.set(which="moving")
    assert scene.state().tracks.drawn == 1
    scene.set_mask_overlay(0.5, 0.95)  # the moving patches' 0.9 is now below the threshold
    assert scene.state().tracks.drawn == 0


def test_tracks_follow_the_point_source(tracked: Reconstruction, scene: SceneView) -> None:
    scene.show(tracked)
    scene.set_frame(5)
    scene.points.set_point_source("depth_unmasked")
    expected = segments_of(tracked, 5, scene.tracks.settings.trail, "depth_unmasked")
    np.testing.assert_allclose(scene.tracks.segments.points, expected.points, atol=1e-5)
    points_source = segments_of(tracked, 5, scene.tracks.settings.trail)
    assert not np.allclose(expected.points, points_source.points)  # the unmasked poses differ


def test_added_tracks_are_drawn_without_resending_points(
    make_reconstruction, tracked: Reconstruction, scene: SceneView
) -> None:
    scene.show(dataclasses.replace(tracked, tracks=None))
    assert scene.wait_until_sent(timeout=30)
    assert scene.state().tracks.count == 0 and scene.tracks.controls.visible.disabled
    geometry = scene.state().geometry_sends
    scene.set_frame(2)
    scene.update_tracks(tracked)
    state = scene.state()
    assert state.tracks.count == 4 and state.tracks.segments > 0
    assert state.geometry_sends == geometry and state.frame == 2
    assert not scene.tracks.controls.visible.disabled
    other = make_reconstruction(3, HEIGHT, WIDTH)  # another result: 3 frames
    with pytest.raises(DisplayError, match="result on screen"):
        scene.update_tracks(other)
    scene.clear()
    assert scene.state().tracks.count == 0 and scene.tracks._root is None


def test_clicks_go_to_the_callbacks_of_the_click_mode(scene: SceneView) -> None:
    probed, seeded = [], []
    scene.clicks.add(lambda origin, direction: probed.append(origin))
    scene.clicks.add(lambda origin, direction: seeded.append(origin), mode="track")
    scene.clicks.dispatch(np.zeros(3), np.ones(3))
    scene.clicks.set_mode("track")
    assert scene.state().click_mode == "track"
    scene.clicks.dispatch(np.ones(3), np.ones(3))
    assert len(probed) == 1 and len(seeded) == 1
    np.testing.assert_array_equal(seeded[0], np.ones(3))
    with pytest.raises(DisplayError, match="click mode"):
        scene.clicks.set_mode("paint")


def test_ground_truth_trails_are_drawn_beside_the_predicted_ones(
    tracked: Reconstruction, scene: SceneView
) -> None:
    # The truth of track 0 slides two pixels a frame (the prediction one); track 2 is seen.
    truth_xy = tracked.tracks.xy.copy()
    truth_xy[:, 0, 0] = 35 - 2 * np.arange(FRAMES)
    seen = np.ones((FRAMES, 4), np.float32)
    seen[4:, 3] = 0.0  # track 3 leaves the image
    truth = Tracks(truth_xy, seen, np.ones((FRAMES, 4)), tracked.tracks.query_frame)
    with_truth = dataclasses.replace(tracked, gt_tracks=truth)
    scene.show(tracked)
    assert scene.tracks.controls.truth.disabled  # no ground truth, no toggle
    assert scene.state().tracks.truth_segments == 0
    scene.show(with_truth)
    assert not scene.tracks.controls.truth.disabled
    scene.set_frame(5)
    trail = scene.tracks.settings.trail
    expected = track_segments(
        lift(with_truth, "points", truth), truth.visible(), np.zeros((4, 3), np.uint8),
        np.arange(4), 5, trail,
    )  # fmt: skip
    drawn = scene.tracks.truth_segments
    np.testing.assert_allclose(drawn.points, expected.points)
    assert scene.state().tracks.truth_segments == len(expected.points) > 0
    node = scene.tracks._nodes["truth"]
    assert node.visible and len(node.points) == len(expected.points)
    # the truth's track 0 ends two pixels a frame further left than the prediction's
    end_truth = drawn.points[(drawn.track == 0) & (drawn.age == 0)][0, 1]
    end_pred = scene.tracks.segments.points[
        (scene.tracks.segments.track == 0) & (scene.tracks.segments.age == 0)
    ][0, 1]
    assert end_truth[0] < end_pred[0]
    scene.tracks.set(truth=False)
    assert scene.state().tracks.truth_segments == 0 and not node.visible
    assert not scene.tracks.controls.truth.value
