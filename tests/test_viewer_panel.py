"""The panel's pure parts: frame pictures, pose comparison plots and the metrics table."""

from __future__ import annotations

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.reconstruction import Cameras, Metadata, Reconstruction
from page4d_viewer.viewer import plots

HEIGHT, WIDTH = 28, 42  # a 2x3 patch grid


def _cameras(centres: np.ndarray, yaw_deg: np.ndarray) -> Cameras:
    """Cameras at `centres` (S, 3), turned about y by `yaw_deg` (S,), looking along +z."""
    yaw = np.radians(yaw_deg)
    R_world_cam = np.zeros((len(yaw), 3, 3))
    R_world_cam[:, 0, 0] = np.cos(yaw)
    R_world_cam[:, 0, 2] = np.sin(yaw)
    R_world_cam[:, 1, 1] = 1.0
    R_world_cam[:, 2, 0] = -np.sin(yaw)
    R_world_cam[:, 2, 2] = np.cos(yaw)
    T_world_cam = np.concatenate([R_world_cam, centres[:, :, None]], axis=-1)
    K = np.array([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]])
    return Cameras(geometry.invert_rigid(T_world_cam), np.repeat(K[None], len(yaw), axis=0))


def make_recon(frames: int = 5, *, ground_truth: bool = True, mask: bool = True) -> Reconstruction:
    """A small result: a camera moving along x, the unmasked poses off by a growing yaw."""
    rng = np.random.default_rng(0)
    steps = np.arange(frames, dtype=np.float64)
    centres = np.stack([0.1 * steps, 0.02 * steps**2, 0.05 * steps], axis=-1)
    cameras = {
        "masked": _cameras(centres, np.zeros(frames)),
        "unmasked": _cameras(centres + [0.0, 0.0, 0.03], 2.0 * steps),
    }
    if ground_truth:
        cameras["ground_truth"] = _cameras(2.0 * centres, np.zeros(frames))
    depth = rng.uniform(1.0, 3.0, (frames, HEIGHT, WIDTH)).astype(np.float32)
    score = np.full((frames, 2, 3), 0.4, np.float32)  # static everywhere...
    score[:, 0, 0] = -0.4  # ...but the top-left patch moves
    return Reconstruction(
        images=np.full((frames, HEIGHT, WIDTH, 3), 100, np.uint8),
        depth=depth,
        depth_conf=rng.uniform(1.0, 50.0, depth.shape).astype(np.float32),
        points=rng.normal(size=(frames, HEIGHT, WIDTH, 3)).astype(np.float32),
        points_conf=np.ones(depth.shape, np.float32),
        cameras=cameras,
        mask_score=score if mask else None,
        metadata=Metadata(checkpoint_name="test.safetensors", mask_strength=64.0),
    )


def _line_labels(axes) -> list[str]:
    return [line.get_label() for line in axes.get_lines() if not line.get_label().startswith("_")]


def test_overlay_marks_only_dynamic_pixels() -> None:
    images = plots.frame_images(make_recon(), frame=1, opacity=1.0, threshold=0.5)
    assert images.overlay.shape == (HEIGHT, WIDTH, 3)
    moving = images.overlay[:14, :14]
    static = images.overlay[14:, 14:]
    assert np.all(static == 100)
    assert not np.any(np.all(moving == 100, axis=-1))


def test_overlay_opacity_zero_and_high_threshold_keep_the_image() -> None:
    recon = make_recon()
    assert np.all(plots.frame_images(recon, 0, opacity=0.0, threshold=0.5).overlay == 100)
    assert np.all(plots.frame_images(recon, 0, opacity=1.0, threshold=1.0).overlay == 100)


def test_frame_images_without_mask_show_the_frame() -> None:
    images = plots.frame_images(make_recon(mask=False), 0, opacity=1.0, threshold=0.0)
    assert np.all(images.overlay == 100)


def test_frame_images_clamp_the_frame_and_colour_depth() -> None:
    recon = make_recon(frames=3)
    images = plots.frame_images(recon, frame=99, opacity=0.5, threshold=0.5)
    expected = plots.scalar_map_image(recon.depth[2], "turbo")
    np.testing.assert_array_equal(images.depth, expected)
    assert images.confidence.shape == (HEIGHT, WIDTH, 3)


def test_scalar_map_handles_non_finite_and_constant_maps() -> None:
    values = np.array([[1.0, np.nan], [np.inf, 2.0]])
    assert plots.scalar_map_image(values).shape == (2, 2, 3)
    assert plots.scalar_map_image(np.full((2, 2), np.nan)).shape == (2, 2, 3)
    flat = plots.scalar_map_image(np.ones((3, 3)))
    assert np.all(flat == flat[0, 0])
    low_high = plots.scalar_map_image(np.array([[0.0, 1.0]]))
    assert not np.array_equal(low_high[0, 0], low_high[0, 1])


def test_pairs_include_ground_truth_only_when_present() -> None:
    assert plots.variant_pairs(["masked", "unmasked", "ground_truth"]) == [
        ("masked", "ground_truth"),
        ("unmasked", "ground_truth"),
        ("masked", "unmasked"),
    ]
    assert plots.variant_pairs(["masked", "unmasked"]) == [("masked", "unmasked")]
    assert plots.variant_pairs(["masked"]) == []


def test_comparison_measures_the_yaw_and_aligns_ground_truth() -> None:
    comparison = plots.compare_poses(make_recon(frames=5))
    np.testing.assert_allclose(
        comparison.rotation_deg["masked vs unmasked"], 2.0 * np.arange(5), atol=1e-6
    )
    # Ground truth is the masked path at twice the scale: Sim(3) alignment removes that.
    np.testing.assert_allclose(comparison.translation["masked vs ground truth"], 0.0, atol=1e-9)
    np.testing.assert_allclose(
        comparison.centres["ground_truth"], comparison.centres["masked"], atol=1e-9
    )


def test_rotation_angle_is_symmetric_and_bounded() -> None:
    a = _cameras(np.zeros((1, 3)), np.array([170.0])).T_world_cam[:, :3, :3]
    b = _cameras(np.zeros((1, 3)), np.array([-170.0])).T_world_cam[:, :3, :3]
    np.testing.assert_allclose(plots.rotation_angle_deg(a, b), [20.0], atol=1e-6)
    np.testing.assert_allclose(plots.rotation_angle_deg(b, a), [20.0], atol=1e-6)


def test_trajectory_figure_has_one_series_per_variant() -> None:
    figure = plots.trajectory_figure(plots.compare_poses(make_recon()))
    (axes,) = figure.axes
    assert _line_labels(axes) == ["masked", "unmasked", "ground truth"]
    masked = next(line for line in axes.get_lines() if line.get_label() == "masked")
    assert len(masked.get_xdata()) == 5


def test_trajectory_figure_without_ground_truth() -> None:
    figure = plots.trajectory_figure(plots.compare_poses(make_recon(ground_truth=False)))
    assert _line_labels(figure.axes[0]) == ["masked", "unmasked"]


def test_differences_figure_has_one_series_per_pair_on_both_axes() -> None:
    figure = plots.differences_figure(plots.compare_poses(make_recon()))
    rotation_axes, translation_axes = figure.axes
    expected = ["masked vs ground truth", "unmasked vs ground truth", "masked vs unmasked"]
    assert _line_labels(rotation_axes) == expected
    assert _line_labels(translation_axes) == expected
    yaw = next(line for line in rotation_axes.get_lines() if line.get_label() == expected[2])
    np.testing.assert_allclose(yaw.get_ydata(), 2.0 * np.arange(5), atol=1e-6)


def test_figures_render_to_png() -> None:
    import io

    buffer = io.BytesIO()
    plots.differences_figure(plots.compare_poses(make_recon())).savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_metrics_table_rows_per_pair() -> None:
    rows = plots.metrics_rows(make_recon())
    assert [row[0] for row in rows] == [
        "masked vs ground truth",
        "unmasked vs ground truth",
        "masked vs unmasked",
    ]
    assert all(len(row) == len(plots.METRICS_HEADERS) for row in rows)
    assert float(rows[0][1]) == pytest.approx(0.0, abs=1e-4)  # GT is the masked path, scaled
    assert float(rows[2][3]) > 1.0  # the unmasked yaw drifts 2 degrees per frame


def test_metrics_table_explains_unscorable_pairs() -> None:
    rows = plots.metrics_rows(make_recon(frames=1))
    assert rows[0][1] == ""
    assert "2 frames" in rows[0][4]
