"""The Viser scene against a real ViserServer and a small hand-made Reconstruction."""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import viser
from conftest import wait_for
from viser import _messages

from page4d_viewer import geometry, settings
from page4d_viewer.errors import Page4DError
from page4d_viewer.result import points
from page4d_viewer.result.reconstruction import Cameras, Reconstruction
from page4d_viewer.viewer.scene import SceneView, display
from page4d_viewer.viewer.scene.cameras import HeadCameraLayer

FRAMES, HEIGHT, WIDTH = 5, 28, 42  # 2 x 3 patches of 14 pixels; 5 * 1176 = 5880 points


@pytest.fixture
def make_recon(sliding_plane):
    """`make_recon(with_mask=True, frames=FRAMES, variants=("masked", "unmasked"))`, built by
    the conftest factory: a plane 2 units in front of a camera sliding along x; the right
    patch column moves."""

    def build(
        with_mask: bool = True,
        frames: int = FRAMES,
        variants: tuple[str, ...] = ("masked", "unmasked"),
    ) -> Reconstruction:
        return _scene_recon(sliding_plane(frames, HEIGHT, WIDTH), with_mask, variants)

    return build


def _scene_recon(plane, with_mask: bool, variants: tuple[str, ...]) -> Reconstruction:
    """The scene's Reconstruction on `plane` (a conftest SlidingPlane): "unmasked" takes the
    drifting path, the geometric variants both scaled 1.5, ground truth the masked one."""
    rng = np.random.default_rng(0)
    frames = plane.depth.shape[0]
    extrinsics, unmasked, intrinsics = plane.extrinsics, plane.drifting, plane.intrinsics
    return plane.reconstruction(
        images=rng.integers(0, 255, (frames, HEIGHT, WIDTH, 3), dtype=np.uint8),
        depth_conf=1.0 + rng.random((frames, HEIGHT, WIDTH)),
        points_conf=1.0 + rng.random((frames, HEIGHT, WIDTH)),
        cameras={
            name: cameras
            for name, cameras in {
                "masked": Cameras(extrinsics, intrinsics),
                "unmasked": Cameras(unmasked, intrinsics),
                "geometry_masked": Cameras(extrinsics * 1.5, intrinsics),
                "geometry_unmasked": Cameras(unmasked * 1.5, intrinsics),
                "ground_truth": Cameras(extrinsics, intrinsics * [[1.1], [1.1], [1]]),
            }.items()
            if name in (*variants, "ground_truth")
        },
        mask_score=plane.mask_score if with_mask else None,
    )


DYNAMIC_PIXELS_PER_FRAME = HEIGHT * 14  # the right patch column


class MessageSpy:
    """Records the scene messages the server queues for its clients."""

    def __init__(self, server: viser.ViserServer) -> None:
        self.messages: list[Any] = []
        original = server.scene._queue_scene_message

        def record(message: Any) -> None:
            self.messages.append(message)
            original(message)

        server.scene._queue_scene_message = record  # type: ignore[method-assign]

    def clear(self) -> None:
        self.messages.clear()

    def point_clouds(self) -> list[Any]:
        return [m for m in self.messages if isinstance(m, _messages.PointCloudMessage)]

    def updated_props(self) -> set[str]:
        return {
            key
            for m in self.messages
            if isinstance(m, _messages.SceneNodeUpdateMessage)
            for key in m.updates
        }


@pytest.fixture
def server() -> Iterator[viser.ViserServer]:
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield server
    server.stop()


@pytest.fixture
def spy(server: viser.ViserServer) -> MessageSpy:
    return MessageSpy(server)


@pytest.fixture
def scene(server: viser.ViserServer, spy: MessageSpy) -> Iterator[SceneView]:
    view = SceneView(server)
    yield view
    view.close()


@pytest.fixture
def shown(make_recon, scene: SceneView, spy: MessageSpy) -> SceneView:
    scene.show(make_recon())
    assert scene.wait_until_sent(timeout=30)
    spy.clear()
    return scene


def bin_handle(scene: SceneView, frame: int, dynamic: bool) -> Any:
    """The shown cell of a frame with the highest (dynamic) or lowest (static) mask bin."""
    bins = {key: b for key, b in scene.points.frames[frame].bins.items() if b.handle.visible}
    bin_id = max(bins) if dynamic else min(bins)
    return bins[bin_id]


def mask_bin_of(node: str) -> int:
    """The mask bin of a cell node `.../m{b:02d}c{c}`."""
    return int(node.rsplit("/", 1)[1][1:3])


# ------------------------------------------------------------------------------ sending


def test_show_sends_one_node_per_frame(make_recon, scene: SceneView, spy: MessageSpy) -> None:
    scene.show(make_recon())
    assert scene.wait_until_sent(timeout=30)
    state = scene.state()
    assert state.num_frames == FRAMES
    assert state.points.frame_nodes == tuple(f"/frames/t{i:04d}/points" for i in range(FRAMES))
    assert state.geometry_sends == (1,) * FRAMES
    assert 0 < sum(state.points.point_counts) <= 20_000
    # Every point cloud the server queued belongs to exactly one frame node, each sent once.
    names = [m.name for m in spy.point_clouds()]
    assert len(names) == len(set(names))
    frames_seen = {name.rsplit("/", 1)[0] for name in names}
    assert frames_seen == set(state.points.frame_nodes)
    sent_points = sum(len(m.props.points) for m in spy.point_clouds())
    assert sent_points == sum(state.points.point_counts)


def test_show_returns_with_the_first_frame_visible(make_recon, scene: SceneView) -> None:
    reports: list[tuple[float, str]] = []
    scene.show(make_recon(), progress=lambda fraction, text: reports.append((fraction, text)))
    state = scene.state()
    assert state.points.frames_sent >= 1
    assert state.points.visible_frames == (0,)
    assert scene.wait_until_sent(timeout=30)
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def filtered_count(recon: Reconstruction, percentile: float, source: str = "points") -> int:
    """Points of every frame that result.points keeps at a (snapped) percentile."""
    confidence = points.source_confidence(recon, source)
    cut = points.confidence_threshold(confidence, percentile)
    return sum(
        len(points.frame_points(recon, i, threshold=cut, source=source).points)
        for i in range(recon.num_frames)
    )


def test_confidence_filter_toggles_bins_without_resending(
    make_recon, scene: SceneView, spy: MessageSpy
) -> None:
    recon = make_recon()
    scene.show(recon)
    assert scene.wait_until_sent(timeout=30)
    scene.points.set_display("all")
    total = FRAMES * HEIGHT * WIDTH
    assert sum(scene.state().points.point_counts) == total  # every point is sent once
    default = scene.state().points.visible_points
    assert default == filtered_count(recon, settings.DEFAULT_CONF_PERCENTILE)
    assert default == pytest.approx(total * 0.75, rel=0.03)  # 25 % dropped by default
    bytes_before = scene.state().bytes_sent
    spy.clear()
    scene.points.set_confidence_percentile(47)  # snaps to 50, as the exports apply it
    state = scene.state()
    assert state.points.confidence_percentile == 50.0
    assert scene.points.controls.percentile.value == 50.0
    assert state.points.visible_points == filtered_count(recon, 50.0)
    assert state.points.visible_points == pytest.approx(total * 0.5, rel=0.03)
    assert spy.point_clouds() == [] and not scene.state().streaming
    assert state.geometry_sends == (1,) * FRAMES and state.bytes_sent == bytes_before
    assert {type(m).__name__ for m in spy.messages} == {"SetSceneNodeVisibilityMessage"}
    scene.points.set_confidence_percentile(0)
    assert scene.state().points.visible_points == total


def test_point_source_switch_resends_depth_points_with_chosen_cameras(
    make_recon, shown: SceneView, spy: MessageSpy
) -> None:
    shown.points.set_point_source("depth_unmasked")
    assert shown.wait_until_sent(timeout=30)
    state = shown.state()
    assert state.points.point_source == "depth_unmasked"
    assert state.geometry_sends == (2,) * FRAMES
    # Frame 3 of the unmasked cameras sits 0.15 higher (its t_y = 0.15 -> y shifted by -0.15).
    clouds = [m for m in spy.point_clouds() if m.name.startswith("/frames/t0003/")]
    y = np.concatenate([np.asarray(m.props.points, dtype=np.float64)[:, 1] for m in clouds])
    recon = make_recon()
    expected = recon.points[3][..., 1]
    assert y.min() == pytest.approx(expected.min() - 0.15, abs=2e-3)
    assert y.max() == pytest.approx(expected.max() - 0.15, abs=2e-3)


def test_switching_back_reuses_the_points_already_sent(shown: SceneView, spy: MessageSpy) -> None:
    shown.points.set_display("all")
    before = shown.state()
    shown.points.set_point_source("depth_masked")
    assert shown.wait_until_sent(timeout=30)
    shown.points.set_downsample(2)
    assert shown.wait_until_sent(timeout=30)
    assert shown.state().geometry_sends == (3,) * FRAMES  # each new set sent once
    spy.clear()
    shown.points.set_downsample(1)
    shown.points.set_point_source("points")
    assert shown.wait_until_sent(timeout=30)
    state = shown.state()
    assert spy.point_clouds() == [] and state.geometry_sends == (3,) * FRAMES
    assert (
        state.points.frame_nodes == before.points.frame_nodes
        and state.points.visible_nodes == before.points.visible_nodes
    )
    assert state.points.visible_points == before.points.visible_points
    # The other sets stay in the browser, hidden.
    hidden = {
        m.name for m in spy.messages if isinstance(m, _messages.SetSceneNodeVisibilityMessage)
    }
    assert any(
        name.startswith("/frames/t0000/points") and name != "/frames/t0000/points"
        for name in hidden
    )


def test_kept_point_sets_stay_within_the_point_budget(
    make_recon, server: viser.ViserServer
) -> None:
    view = SceneView(server, max_points=FRAMES * HEIGHT * WIDTH + 1)  # room for one full set
    try:
        view.show(make_recon())
        assert view.wait_until_sent(timeout=30)
        view.points.set_point_source("depth_masked")
        assert view.wait_until_sent(timeout=30)
        view.points.set_point_source("points")  # the first set was dropped: sent again
        assert view.wait_until_sent(timeout=30)
        assert view.state().geometry_sends == (3,) * FRAMES
    finally:
        view.close()


def test_first_frame_is_visible_before_the_rest_are_sent(
    make_recon, scene: SceneView, spy: MessageSpy
) -> None:
    scene.show(make_recon())
    assert scene.wait_until_sent(timeout=30)
    frame_of = [
        (int(m.name[len("/frames/t") :][:4]), m)
        for m in spy.messages
        if getattr(m, "name", "").startswith("/frames/t")
    ]
    first_other = next(i for i, (frame, _) in enumerate(frame_of) if frame != 0)
    before = [m for frame, m in frame_of[:first_other]]
    assert all(frame != 0 for frame, _ in frame_of[first_other:])  # frame 0 sent in one go
    visibility = {
        m.name: m.visible for m in before if isinstance(m, _messages.SetSceneNodeVisibilityMessage)
    }
    assert visibility["/frames/t0000/points"]  # the root of frame 0, shown
    shown_cells = [
        m for m in before if isinstance(m, _messages.PointCloudMessage) and visibility[m.name]
    ]
    assert sum(len(m.props.points) for m in shown_cells) > 0
    roots = [m.name for _, m in frame_of if isinstance(m, _messages.FrameMessage)]
    assert [name for name in roots if name.endswith("/points")] == [
        f"/frames/t{i:04d}/points" for i in range(FRAMES)
    ]


def test_depth_source_needs_its_cameras(make_recon, scene: SceneView) -> None:
    scene.show(make_recon(variants=("masked",)))
    with pytest.raises(Page4DError, match="no unmasked cameras"):
        scene.points.set_point_source("depth_unmasked")
    scene.points.controls.source.value = (
        "depth_unmasked"  # the same choice made in the viser sidebar
    )
    assert scene.points.controls.source.value == "points"  # refused and put back
    assert scene.state().points.point_source == "points"
    assert scene.state().cameras.variants == ("masked", "ground_truth")


def test_depth_source_falls_back_when_the_next_result_lacks_its_cameras(
    make_recon,
    shown: SceneView,
) -> None:
    shown.points.set_point_source("depth_unmasked")
    shown.show(make_recon(variants=("masked",)))
    assert shown.wait_until_sent(timeout=30)
    assert shown.state().points.point_source == "points"
    assert shown.points.controls.source.value == "points"


def test_broken_predictions_still_show(make_recon, scene: SceneView) -> None:
    recon = make_recon()
    recon.cameras["unmasked"].extrinsics[2] = np.nan  # a pose the model got wrong
    recon.cameras["masked"].intrinsics[3, 0, 0] = 0.0  # a degenerate focal length
    recon.points[1, :5] = np.nan
    recon.mask_score[4, 0, 0] = np.nan
    scene.show(recon)
    assert scene.wait_until_sent(timeout=30)
    state = scene.state()
    assert state.points.frames_sent == FRAMES
    frusta = scene.layer(HeadCameraLayer).frusta
    assert 2 not in frusta["unmasked"].plain and 2 in frusta["masked"].plain
    assert frusta["masked"].plain[3].fov == pytest.approx(display.FALLBACK_FOV)
    assert state.points.point_counts[1] < state.points.point_counts[0]
    assert all(
        re.fullmatch(r"m\d\dc\d", name.rsplit("/", 1)[1]) for name in state.points.visible_nodes
    )
    scene.set_frame(4)
    scene.set_mask_overlay(1.0, 0.0)  # tint everything, the NaN-scored patch included
    assert scene.state().color_sends[4] == 1


def test_single_frame_clip(make_recon, scene: SceneView) -> None:
    scene.show(make_recon(frames=1))
    assert scene.wait_until_sent(timeout=30)
    state = scene.state()
    assert state.points.frame_nodes == (
        "/frames/t0000/points",
    ) and state.points.visible_frames == (0,)
    scene.set_playing(True)
    scene.set_frame(3)
    assert scene.frame == 0
    scene.set_playing(False)


def test_second_show_replaces_the_first(make_recon, scene: SceneView) -> None:
    scene.show(make_recon())
    scene.show(make_recon(frames=3))
    assert scene.wait_until_sent(timeout=30)
    state = scene.state()
    assert state.num_frames == 3
    assert state.points.frame_nodes == tuple(f"/frames/t{i:04d}/points" for i in range(3))
    assert state.geometry_sends == (1, 1, 1)


def test_clear_removes_everything(shown: SceneView, spy: MessageSpy) -> None:
    shown.clear()
    state = shown.state()
    assert (
        state.num_frames == 0
        and state.points.frame_nodes == ()
        and state.points.visible_nodes == ()
    )
    removed = {m.name for m in spy.messages if isinstance(m, _messages.RemoveSceneNodeMessage)}
    assert "/frames/t0000/points" in removed and "/cameras/masked" in removed


# ------------------------------------------------------------------------------ timeline


def test_set_frame_toggles_visibility_without_sending(shown: SceneView, spy: MessageSpy) -> None:
    shown.set_frame(3)
    state = shown.state()
    assert state.frame == 3 and state.points.visible_frames == (3,)
    assert all(name.startswith("/frames/t0003/") for name in state.points.visible_nodes)
    assert spy.point_clouds() == []
    assert not {"points", "colors"} & spy.updated_props()
    visibility = [m for m in spy.messages if isinstance(m, _messages.SetSceneNodeVisibilityMessage)]
    assert visibility, "moving the timeline must toggle visibility"
    assert state.geometry_sends == (1,) * FRAMES


def test_set_frame_clamps_to_the_clip(shown: SceneView) -> None:
    shown.set_frame(99)
    assert shown.frame == FRAMES - 1
    shown.set_frame(-4)
    assert shown.frame == 0


def test_frame_callbacks_fire_for_viser_moves_only(shown: SceneView) -> None:
    seen: list[int] = []
    shown.on_frame_change(seen.append)
    shown.set_frame(2)  # the panel's own move: not echoed back
    assert seen == []
    shown.timeline_controls.frame.value = 4  # as if the viser slider were dragged
    assert shown.frame == 4 and seen == [4]


def test_playback_plays_to_the_end_without_resending(shown: SceneView, spy: MessageSpy) -> None:
    seen: list[int] = []
    shown.on_frame_change(seen.append)
    shown.set_loop(False)
    shown.set_fps(60)
    shown.set_playing(True)
    wait_for(lambda: not shown.state().playing, 10, "the playback to stop")
    state = shown.state()
    assert state.frame == FRAMES - 1
    assert seen == list(range(1, FRAMES))
    assert spy.point_clouds() == [] and "points" not in spy.updated_props()
    assert state.geometry_sends == (1,) * FRAMES


def test_play_at_the_end_without_loop_restarts_from_the_first_frame(shown: SceneView) -> None:
    shown.set_loop(False)
    shown.set_frame(FRAMES - 1)
    seen: list[int] = []
    shown.on_frame_change(seen.append)
    shown.set_fps(60)
    shown.set_playing(True)
    wait_for(lambda: not shown.state().playing, 10, "the playback to stop")
    assert seen == list(range(FRAMES))


def test_playback_loops(shown: SceneView) -> None:
    seen: list[int] = []
    shown.on_frame_change(seen.append)
    shown.set_fps(60)
    shown.set_playing(True)
    wait_for(lambda: len(seen) > FRAMES + 1, 10, "the playback to loop")
    shown.set_playing(False)
    assert seen[: FRAMES + 1] == [1, 2, 3, 4, 0, 1]


def test_close_stops_the_playback_thread(server: viser.ViserServer) -> None:
    view = SceneView(server)
    view.set_playing(True)
    view.close()
    assert not view.timeline.playback_alive


# ------------------------------------------------------------------------------ display modes


def test_trail_and_all_modes(shown: SceneView) -> None:
    shown.set_frame(3)
    shown.points.set_display("trail", 2)
    assert shown.state().points.visible_frames == (2, 3)
    shown.points.set_display("all")
    assert shown.state().points.visible_frames == tuple(range(FRAMES))
    assert shown.state().points.trail == 2


def test_split_mode_static_background_dynamic_at_its_time(
    make_recon, shown: SceneView, spy: MessageSpy
) -> None:
    shown.set_frame(2)
    shown.points.set_display("split")
    state = shown.state()
    counts = np.array(state.points.point_counts)
    assert state.points.visible_frames == tuple(range(FRAMES))
    threshold_bin = display.threshold_bin(state.mask.threshold)
    dynamic_names = [n for n in state.points.visible_nodes if mask_bin_of(n) >= threshold_bin]
    assert dynamic_names and all(n.startswith("/frames/t0002/") for n in dynamic_names)
    # Roughly a third of each frame is dynamic (the right patch column), minus dropped points.
    assert 0.2 * counts[2] < state.points.visible_dynamic_points < 0.4 * counts[2]
    static_points = state.points.visible_points - state.points.visible_dynamic_points
    assert static_points > 0.4 * counts.sum()
    # Moving the threshold above every score makes everything static: still no resend.
    shown.set_mask_overlay(0.5, 1.0)
    state = shown.state()
    assert state.points.visible_dynamic_points == 0
    assert state.points.visible_points == filtered_count(
        make_recon(), state.points.confidence_percentile
    )
    assert spy.point_clouds() == [] and "points" not in spy.updated_props()


def test_without_a_mask_everything_is_static(make_recon, scene: SceneView) -> None:
    scene.show(make_recon(with_mask=False))
    assert scene.wait_until_sent(timeout=30)
    scene.points.set_display("split")
    state = scene.state()
    assert not state.mask.has_mask
    assert state.points.visible_dynamic_points == 0
    recon = make_recon(with_mask=False)
    assert state.points.visible_points == filtered_count(recon, state.points.confidence_percentile)


# ------------------------------------------------------------------------------ mask overlay


def test_mask_overlay_recolours_only_colours(shown: SceneView, spy: MessageSpy) -> None:
    dynamic = bin_handle(shown, 0, dynamic=True)
    static = bin_handle(shown, 0, dynamic=False)
    shown.set_mask_overlay(1.0, 0.5, "threshold")
    assert spy.updated_props() == {"colors"}
    assert spy.point_clouds() == []
    state = shown.state()
    heat = display.heat_colors(dynamic.cell.probability, top=state.mask.top)
    np.testing.assert_array_equal(dynamic.handle.colors, heat)
    np.testing.assert_array_equal(static.handle.colors, static.cell.colors)
    assert (state.mask.opacity, state.mask.threshold) == (1.0, 0.5)
    assert state.mask.overlay == "threshold"
    assert state.geometry_sends == (1,) * FRAMES


def test_the_default_overlay_tints_every_point_on_the_clips_scale(
    make_recon, shown: SceneView
) -> None:
    """Continuous by default: static points are tinted too (a weak mask stays visible), in
    the heat colour of their own value on a scale that tops out at the clip's 99th
    percentile; the threshold still splits static from dynamic."""
    state = shown.state()
    assert state.mask.overlay == "continuous"
    probability = display.dynamic_probability(make_recon().mask_score)
    assert state.mask.top == pytest.approx(np.percentile(probability, 99), rel=1e-5)
    assert state.mask.top < 0.99  # this clip's scores stop short of 1
    static = bin_handle(shown, 0, dynamic=False)
    expected = display.blend_colors(
        static.cell.colors, static.cell.probability, state.mask.opacity, top=state.mask.top
    )
    np.testing.assert_array_equal(static.handle.colors, expected)
    assert not np.array_equal(static.handle.colors, static.cell.colors)
    assert 0 < state.points.visible_dynamic_points < state.points.visible_points


def test_the_legend_names_every_colour_on_screen(shown: SceneView) -> None:
    from page4d_viewer.viewer.scene.mask_overlay import mask_gradient_css

    legend = shown.legend.html
    for variant in shown.state().cameras.variants:
        red, green, blue = display.VARIANT_COLORS[variant]
        assert f"#{red:02x}{green:02x}{blue:02x}" in legend
        assert display.VARIANT_LABELS[variant] in legend
    top = shown.state().mask.top
    assert mask_gradient_css(top) in legend and f"&ge; {top:.2f}" in legend
    assert "99th percentile" in legend and "every point is tinted" in legend
    shown.set_mask_overlay(0.5, 0.6, "threshold")
    assert "only points at or above 0.60" in shown.legend.html


def test_mask_overlay_opacity_zero_restores_image_colours(shown: SceneView) -> None:
    shown.set_mask_overlay(0.0, 0.5)
    dynamic = bin_handle(shown, 0, dynamic=True)
    np.testing.assert_array_equal(dynamic.handle.colors, dynamic.cell.colors)


def test_hidden_frames_are_recoloured_when_they_appear(shown: SceneView) -> None:
    shown.set_mask_overlay(0.9, 0.5)
    assert shown.state().color_sends == (1, 0, 0, 0, 0)  # only the frame on screen
    shown.set_frame(2)
    assert shown.state().color_sends == (1, 0, 1, 0, 0)
    top = shown.state().mask.top
    expected = display.blend_colors(
        bin_handle(shown, 2, True).cell.colors, bin_handle(shown, 2, True).cell.probability, 0.9,
        top=top,
    )  # fmt: skip
    np.testing.assert_array_equal(bin_handle(shown, 2, True).handle.colors, expected)


def test_overlay_controls_follow_set_mask_overlay(shown: SceneView) -> None:
    shown.set_mask_overlay(0.3, 0.72)
    assert shown.mask.controls.opacity.value == pytest.approx(0.3)
    assert shown.mask.controls.threshold.value == pytest.approx(0.7)  # snapped to 1/20 steps
    assert shown.state().mask.threshold == pytest.approx(0.7)


def test_overlay_sliders_in_viser_drive_the_scene(shown: SceneView) -> None:
    shown.mask.controls.opacity.value = 0.8  # as if moved in the viser sidebar
    shown.mask.controls.threshold.value = 0.95
    state = shown.state()
    assert state.mask.opacity == pytest.approx(0.8)
    assert state.mask.threshold == pytest.approx(0.95)


def test_point_size_is_a_property_update(shown: SceneView, spy: MessageSpy) -> None:
    shown.points.set_point_size(0.02)
    assert spy.updated_props() == {"point_size"}
    assert shown.state().points.point_size == 0.02
    assert all(b.handle.point_size == 0.02 for b in shown.points.frames[3].bins.values())


# ------------------------------------------------------------------------------ cameras


def test_frusta_per_variant_with_the_current_one_imaged(shown: SceneView) -> None:
    shown.set_frame(1)
    nodes = shown.state().cameras.visible_nodes
    for variant in ("masked", "unmasked", "ground_truth"):
        assert f"/cameras/{variant}/images/t0001" in nodes
        assert f"/cameras/{variant}/frusta/t0001" not in nodes
        assert f"/cameras/{variant}/frusta/t0003" in nodes
    imaged = shown.layer(HeadCameraLayer).frusta["masked"].imaged[1]
    assert imaged.image is not None
    # Field of view from the predicted intrinsics: fy = 40 for H = 28.
    assert imaged.fov == pytest.approx(2 * np.arctan(14 / 40))
    frusta = shown.layer(HeadCameraLayer).frusta
    colors = {frusta[v].plain[0].color for v in ("masked", "unmasked", "ground_truth")}
    assert len(colors) == 3


def test_variant_can_be_hidden(shown: SceneView) -> None:
    shown.layer(HeadCameraLayer).set_variant_visible("unmasked", False)
    state = shown.state()
    assert state.cameras.variant_visible["unmasked"] is False
    assert not any(n.startswith("/cameras/unmasked/") for n in state.cameras.visible_nodes)
    assert any(n.startswith("/cameras/masked/") for n in state.cameras.visible_nodes)
    assert shown.layer(HeadCameraLayer).checkboxes["unmasked"].value is False
    shown.layer(HeadCameraLayer).checkboxes["unmasked"].value = True
    assert shown.state().cameras.variant_visible["unmasked"] is True


def test_clicking_a_frustum_moves_the_view_to_that_camera(make_recon, shown: SceneView) -> None:
    camera = SimpleNamespace(wxyz=None, position=None, fov=None)
    client = SimpleNamespace(camera=camera, atomic=contextlib.nullcontext)
    seen: list[int] = []
    shown.on_frame_change(seen.append)
    shown.layer(HeadCameraLayer).frustum_clicked(client, "unmasked", 3)
    wxyz, centres = display.camera_poses(make_recon().cameras["unmasked"].extrinsics)
    np.testing.assert_allclose(camera.position, centres[3])
    np.testing.assert_allclose(camera.wxyz, wxyz[3])
    assert camera.fov == pytest.approx(2 * np.arctan(14 / 40))
    assert shown.frame == 3 and seen == [3]


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.points.set_display("sideways", 2), "display mode"),
        (lambda s: s.points.set_display("trail", 0), "trail"),
        (lambda s: s.points.set_point_source("lidar"), "point source"),
        (lambda s: s.set_mask_overlay(1.5, 0.5), "opacity"),
        (lambda s: s.set_mask_overlay(0.5, -0.1), "threshold"),
        (lambda s: s.points.set_confidence_percentile(100), "percentile"),
        (lambda s: s.points.set_point_size(0), "point size"),
        (lambda s: s.layer(HeadCameraLayer).set_variant_visible("best", True), "variant"),
        (lambda s: s.points.set_downsample(0), "downsampling"),
        (lambda s: s.set_fps(0), "fps"),
    ],
)
def test_bad_settings_are_refused(
    shown: SceneView, call: Callable[[SceneView], None], message: str
) -> None:
    with pytest.raises(Page4DError, match=message):
        call(shown)


def test_new_viewers_start_behind_the_first_camera(
    shown: SceneView, server: viser.ViserServer
) -> None:
    np.testing.assert_allclose(server.initial_camera.look_at, [0.0, 0.0, 2.0], atol=1e-6)
    assert server.initial_camera.position[2] < 0


def test_connected_viewers_are_moved_and_fresh_ones_tolerated() -> None:
    from page4d_viewer.viewer.scene import move_view

    class NotReportedYet:
        @property
        def position(self) -> np.ndarray:
            raise AssertionError("no camera message from this client yet")

        @position.setter
        def position(self, value: np.ndarray) -> None:
            raise AssertionError("no camera message from this client yet")

    fresh = SimpleNamespace(camera=NotReportedYet(), atomic=contextlib.nullcontext)
    move_view(fresh, np.zeros(3), np.ones(3), np.array([0.0, -1, 0]))  # must not raise
    ready = SimpleNamespace(
        camera=SimpleNamespace(position=None, look_at=None, up_direction=None),
        atomic=contextlib.nullcontext,
    )
    move_view(ready, np.zeros(3), np.ones(3), np.array([0.0, -1, 0]))
    np.testing.assert_array_equal(ready.camera.look_at, np.ones(3))
    np.testing.assert_array_equal(ready.camera.up_direction, [0, -1, 0])


def test_scene_controls_start_collapsed() -> None:
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    sent: list[Any] = []
    interface = server.gui._websock_interface
    original = interface.queue_message

    def record(message: Any) -> None:
        sent.append(message)
        original(message)

    interface.queue_message = record  # type: ignore[method-assign]
    view = SceneView(server)
    try:
        collapsed = [m for m in sent if isinstance(m, _messages.GuiSetPanelCollapsedMessage)]
        assert [m.collapsed for m in collapsed] == [True]
    finally:
        view.close()
        server.stop()


def test_flying_to_a_camera_hides_its_image(shown: SceneView) -> None:
    client = SimpleNamespace(camera=SimpleNamespace(), atomic=contextlib.nullcontext)
    shown.layer(HeadCameraLayer).frustum_clicked(client, "unmasked", 3)
    nodes = shown.state().cameras.visible_nodes
    assert "/cameras/unmasked/images/t0003" not in nodes
    assert "/cameras/unmasked/frusta/t0003" not in nodes
    assert "/cameras/masked/images/t0003" in nodes
    assert "/cameras/ground_truth/images/t0003" in nodes
    shown.layer(HeadCameraLayer).frustum_clicked(client, "masked", 3)
    nodes = shown.state().cameras.visible_nodes
    assert "/cameras/unmasked/images/t0003" in nodes
    assert "/cameras/masked/images/t0003" not in nodes


def _viewer() -> SimpleNamespace:
    """A stand-in for a connected browser: its camera's pose, look-at and field of view."""
    camera = SimpleNamespace(wxyz=None, position=None, fov=None, look_at=None, up_direction=None)
    return SimpleNamespace(camera=camera, atomic=contextlib.nullcontext)


def test_fly_into_the_current_frames_camera_then_reset_the_view(
    make_recon, shown: SceneView, server: viser.ViserServer
) -> None:
    """Issue 20, the stage: each camera folder flies a viewer into the chosen variant's camera
    of the current frame; "Reset view" brings it back behind the first camera and shows the
    image that was hidden while looking through it."""
    cameras = shown.layer(HeadCameraLayer)
    assert cameras.fly_choice is not None and "unmasked" in cameras.fly_choice.options
    viewer = _viewer()
    shown.set_frame(4)
    cameras.fly_to_current(viewer, "unmasked")  # what the folder's button does
    wxyz, centres = display.camera_poses(make_recon().cameras["unmasked"].extrinsics)
    np.testing.assert_allclose(viewer.camera.position, centres[4])
    np.testing.assert_allclose(viewer.camera.wxyz, wxyz[4])
    assert shown.frame == 4  # flying does not move the timeline
    assert "/cameras/unmasked/images/t0004" not in shown.state().cameras.visible_nodes
    shown.reset_view(viewer)
    np.testing.assert_allclose(viewer.camera.position, server.initial_camera.position)
    np.testing.assert_allclose(viewer.camera.look_at, server.initial_camera.look_at)
    assert "/cameras/unmasked/images/t0004" in shown.state().cameras.visible_nodes
    before = viewer.camera.position
    cameras.fly_to_current(viewer, "ground_truth_missing_variant")  # no such camera: stays
    assert viewer.camera.position is before


def test_flying_to_ground_truth_uses_its_aligned_pose(make_recon, scene: SceneView) -> None:
    recon = make_recon()
    # Ground truth in its own world: rotated a quarter turn, twice the scale, shifted.
    turn = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    similarity = geometry.Similarity(2.0, turn, np.array([5.0, -1.0, 3.0]))
    truth = recon.cameras["ground_truth"].transformed(similarity)
    recon = dataclasses.replace(recon, cameras={**recon.cameras, "ground_truth": truth})
    scene.show(recon)
    assert scene.wait_until_sent(timeout=30)
    camera = SimpleNamespace(wxyz=None, position=None, fov=None)
    client = SimpleNamespace(camera=camera, atomic=contextlib.nullcontext)
    scene.layer(HeadCameraLayer).frustum_clicked(client, "ground_truth", 2)
    wxyz, centres = display.camera_poses(recon.aligned_cameras("ground_truth").extrinsics)
    np.testing.assert_allclose(camera.position, centres[2], atol=1e-6)
    np.testing.assert_allclose(np.abs(camera.wxyz @ wxyz[2]), 1.0, atol=1e-6)
    _, raw_centres = display.camera_poses(truth.extrinsics)
    assert np.linalg.norm(camera.position - raw_centres[2]) > 1.0
    assert "/cameras/ground_truth/images/t0002" not in scene.state().cameras.visible_nodes


def test_the_geometric_poses_are_a_layer_of_their_own(make_recon, scene: SceneView) -> None:
    """Issue 19: the geometric variants are one module (`scene/geometric_cameras.py`) plus one
    entry in `scene.layers.LAYERS`: their own frusta, sidebar folder, legend line and state
    slice; hiding them leaves the head's cameras alone."""
    from page4d_viewer.viewer.scene.geometric_cameras import GeometricCameraLayer

    variants = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")
    scene.show(make_recon(variants=variants))
    assert scene.wait_until_sent(timeout=30)
    geometric = scene.layer(GeometricCameraLayer)
    state = scene.state()
    assert state.layers["geometry"].variants == ("geometry_masked", "geometry_unmasked")
    assert state.layers["cameras"].variants == ("masked", "unmasked", "ground_truth")
    assert set(state.cameras.variants) == {*variants, "ground_truth"}
    assert "Geometric poses</b> (solved from the network" in scene.legend.html
    assert set(geometric.checkboxes) == {"geometry_masked", "geometry_unmasked"}
    geometric.checkboxes["geometry_unmasked"].value = False  # as if unticked in the sidebar
    nodes = scene.state().cameras.visible_nodes
    assert not any(n.startswith("/cameras/geometry_unmasked/") for n in nodes)
    assert any(n.startswith("/cameras/geometry_masked/") for n in nodes)
    assert any(n.startswith("/cameras/unmasked/") for n in nodes)
    # A result without geometric poses (an older file): the layer draws nothing and says so.
    scene.show(make_recon())
    assert scene.state().layers["geometry"].variants == ()
    assert "Geometric poses" not in scene.legend.html
    assert geometric.checkboxes["geometry_masked"].disabled


def test_scenes_showing_one_result_bin_its_points_once(make_recon) -> None:
    """Issue 21, load: sessions showing the same result share its prepared frames (points
    binned, thumbnails) instead of computing them again; a result's entries go with it."""
    import gc

    from page4d_viewer.viewer.scene.shared import SHARED_WORK

    recon = make_recon()
    servers = [viser.ViserServer(host="127.0.0.1", port=0, verbose=False) for _ in range(2)]
    views = [SceneView(server) for server in servers]
    try:
        views[0].show(recon)
        assert views[0].wait_until_sent(timeout=30)
        misses, hits = SHARED_WORK.misses, SHARED_WORK.hits
        views[1].show(recon)
        assert views[1].wait_until_sent(timeout=30)
        assert SHARED_WORK.misses == misses  # nothing computed again
        assert SHARED_WORK.hits - hits >= 2 * FRAMES  # binned points and a thumbnail per frame
        first = [v.points.frames[0].bins for v in views]
        assert first[0].keys() == first[1].keys()
        held = SHARED_WORK.nbytes
        assert held > 0
    finally:
        for view, server in zip(views, servers, strict=True):
            view.close()
            server.stop()
    del views, servers, view, server, first, recon
    gc.collect()
    assert SHARED_WORK.nbytes < held  # the result is gone, and its shared work with it


def test_a_chosen_result_takes_the_old_one_down_and_says_it_is_loading(
    make_recon, shown: SceneView
) -> None:
    """Issue 20, a scene that keeps up: from the moment a result is chosen the old one is
    gone and the viewers see what is loading, until the new one's first frame is sent."""
    shown.set_loading("walk.mp4 · 24 frames")
    state = shown.state()
    assert state.loading == "walk.mp4 · 24 frames"
    assert state.num_frames == 0 and state.points.visible_nodes == ()
    assert state.cameras.visible_nodes == ()
    shown.show(make_recon())
    state = shown.state()
    assert state.loading is None and state.points.visible_frames == (0,)
