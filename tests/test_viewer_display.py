"""The scene's display rules, on hand-made arrays (no Viser)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from page4d_viewer.errors import Page4DError
from page4d_viewer.viewer.scene import display

# ------------------------------------------------------------------------------ mask reading


def test_dynamic_probability_reads_low_mask_score_as_dynamic() -> None:
    # The camera tokens get +alpha*m: low m is what the camera path ignores, i.e. motion.
    probability = display.dynamic_probability(np.array([-0.5, 0.0, 0.5, 0.25]))
    np.testing.assert_allclose(probability, [1.0, 0.5, 0.0, 0.25])


def test_upsample_mask_gives_each_pixel_its_patch() -> None:
    mask = np.arange(6, dtype=np.float32).reshape(2, 3)
    pixels = display.upsample_mask(mask, 28, 42)  # 14x14 patches
    assert pixels.shape == (28, 42)
    assert pixels[0, 0] == 0 and pixels[13, 13] == 0
    assert pixels[0, 14] == 1 and pixels[13, 41] == 2
    assert pixels[14, 0] == 3 and pixels[27, 41] == 5


def test_upsample_mask_keeps_leading_frame_axis() -> None:
    mask = np.stack([np.zeros((2, 3)), np.ones((2, 3))])
    pixels = display.upsample_mask(mask, 4, 6)
    assert pixels.shape == (2, 4, 6)
    assert pixels[0].max() == 0 and pixels[1].min() == 1


# ------------------------------------------------------------------------------ colours


def test_heat_colors_match_matplotlib_colormap_ends() -> None:
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
    colors = display.heat_colors(np.array([0.0, 1.0]), "inferno")
    expected = np.rint(np.array([cmap(0.0)[:3], cmap(1.0)[:3]]) * 255).astype(np.uint8)
    np.testing.assert_array_equal(colors, expected)


def test_heat_colors_rejects_unknown_colormap() -> None:
    with pytest.raises(Page4DError, match="unknown colormap"):
        display.heat_colors(np.zeros(2), "no-such-map")


def test_blend_colors_hand_computed() -> None:
    image = np.array([[200, 100, 0]], dtype=np.uint8)
    heat = display.heat_colors(np.array([0.8])).astype(np.float64)
    blended = display.blend_colors(image, np.array([0.8]), 0.25)
    expected = np.rint(0.75 * image + 0.25 * heat).astype(np.uint8)
    np.testing.assert_array_equal(blended, expected)


def test_blend_colors_endpoints() -> None:
    image = np.array([[10, 20, 30], [40, 50, 60]], dtype=np.uint8)
    probability = np.array([0.1, 0.9])
    np.testing.assert_array_equal(display.blend_colors(image, probability, 0.0), image)
    np.testing.assert_array_equal(
        display.blend_colors(image, probability, 1.0), display.heat_colors(probability)
    )


def test_overlay_weight_applies_opacity_only_at_or_above_threshold() -> None:
    weights = display.overlay_weight(np.array([0.2, 0.5, 0.9]), opacity=0.6, threshold=0.5)
    np.testing.assert_allclose(weights, [0.0, 0.6, 0.6])


def test_overlay_image_colours_only_dynamic_patches() -> None:
    image = np.full((28, 28, 3), 128, dtype=np.uint8)
    # Left patch column static (m = +0.4), right column dynamic (m = -0.4).
    score = np.array([[0.4, -0.4], [0.4, -0.4]], dtype=np.float32)
    out = display.overlay_image(image, score, opacity=1.0, threshold=0.5)
    np.testing.assert_array_equal(out[:, :14], image[:, :14])
    heat = display.heat_colors(np.array(0.9))
    assert np.all(out[:, 14:] == heat)


def test_overlay_image_without_mask_is_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(display.overlay_image(image, None, 0.7, 0.1), image)


@pytest.mark.parametrize(("opacity", "threshold"), [(-0.1, 0.5), (1.5, 0.5), (0.5, 2.0)])
def test_overlay_rejects_out_of_range(opacity: float, threshold: float) -> None:
    with pytest.raises(Page4DError, match=r"must be in \[0, 1\]"):
        display.overlay_image(np.zeros((2, 2, 3), np.uint8), np.zeros((1, 1)), opacity, threshold)


def test_variant_colours_are_distinct() -> None:
    colors = [display.VARIANT_COLORS[name] for name in display.VARIANTS]
    assert len(set(colors)) == len(display.VARIANTS)
    differences = [
        np.abs(np.subtract(a, b)).sum() for i, a in enumerate(colors) for b in colors[i + 1 :]
    ]
    assert min(differences) > 100


# ------------------------------------------------------------------------------ frame selection


@pytest.mark.parametrize(
    ("mode", "current", "trail", "expected"),
    [
        ("current", 3, 4, [3]),
        ("trail", 3, 2, [2, 3]),
        ("trail", 1, 4, [0, 1]),  # clipped at the first frame
        ("trail", 9, 1, [9]),
        ("all", 3, 4, list(range(10))),
        ("split", 3, 4, list(range(10))),
    ],
)
def test_frames_to_show(mode: str, current: int, trail: int, expected: list[int]) -> None:
    frames = display.frames_to_show(mode, current, 10, trail)
    assert frames.tolist() == expected


def test_frames_to_show_empty_clip() -> None:
    assert display.frames_to_show("all", 0, 0, 1).size == 0


@pytest.mark.parametrize(
    ("mode", "trail", "message"), [("nope", 2, "display mode"), ("trail", 0, "trail")]
)
def test_frames_to_show_rejects_bad_settings(mode: str, trail: int, message: str) -> None:
    with pytest.raises(Page4DError, match=message):
        display.frames_to_show(mode, 0, 5, trail)


def test_dynamic_points_only_at_their_time_in_split_mode() -> None:
    assert display.dynamic_visible("split", frame=4, current=4)
    assert not display.dynamic_visible("split", frame=3, current=4)
    assert display.dynamic_visible("all", frame=3, current=4)


# ------------------------------------------------------------------------------ split


def test_split_static_dynamic_hand_checked() -> None:
    probability = np.array([0.0, 0.49, 0.5, 0.51, 1.0])
    np.testing.assert_array_equal(
        display.split_static_dynamic(probability, 0.5), [False, False, True, True, True]
    )
    assert not display.split_static_dynamic(probability, 1.0).any()
    assert display.split_static_dynamic(probability, 0.0).all()


def test_threshold_snaps_to_bin_steps() -> None:
    assert display.snap_threshold(0.52) == pytest.approx(0.5)
    assert display.snap_threshold(0.53) == pytest.approx(0.55)
    assert display.threshold_bin(0.0) == 0
    assert display.threshold_bin(1.0) == display.MASK_BINS


@settings(max_examples=60, deadline=None)
@given(
    probability=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50),
    step=st.integers(0, display.MASK_BINS),
)
def test_bins_and_threshold_agree(probability: list[float], step: int) -> None:
    # Split by bins == split by value for thresholds on the 1/n grid (what the scene relies on).
    values = np.array(probability)
    threshold = step / display.MASK_BINS
    by_bin = display.split_static_dynamic(values, threshold)
    by_value = values >= threshold
    near_edge = np.abs(values * display.MASK_BINS - np.rint(values * display.MASK_BINS)) < 1e-9
    np.testing.assert_array_equal(by_bin[~near_edge], by_value[~near_edge])
    bins = display.mask_bins(values)
    assert bins.min() >= 0 and bins.max() < display.MASK_BINS


# ------------------------------------------------------------------------------ confidence, grid


def test_confidence_threshold_percentile() -> None:
    confidence = np.arange(1, 101, dtype=np.float32).reshape(10, 10)
    assert display.confidence_threshold(confidence, 0) == -math.inf
    cut = display.confidence_threshold(confidence, 25)
    assert (confidence >= cut).sum() == 75


def test_confidence_threshold_samples_large_inputs() -> None:
    confidence = np.random.default_rng(1).random(2_000_000).astype(np.float32)
    cut = display.confidence_threshold(confidence, 50, max_samples=100_000)
    assert abs(cut - 0.5) < 0.01


@pytest.mark.parametrize("percentile", [-1, 100, float("nan")])
def test_confidence_threshold_rejects_bad_percentile(percentile: float) -> None:
    with pytest.raises(Page4DError, match="percentile"):
        display.confidence_threshold(np.ones(4), percentile)


def test_pixel_grid_and_auto_stride() -> None:
    rows, cols = display.pixel_grid(5, 7, 2)
    assert rows.tolist() == [0, 2, 4] and cols.tolist() == [0, 2, 4, 6]
    with pytest.raises(Page4DError, match="stride"):
        display.pixel_grid(5, 7, 0)
    assert display.auto_stride(100, 294, 518, 4_000_000) == 2
    assert display.auto_stride(5, 28, 42, 4_000_000) == 1


# ------------------------------------------------------------------------------ frusta


def test_frustum_fov_aspect_from_intrinsics() -> None:
    # H = 100, W = 200, fy = 50 -> tan(fov_y/2) = 1 -> fov_y = 90 degrees.
    K = np.array([[[100.0, 0, 100], [0, 50.0, 50], [0, 0, 1]]])
    fov, aspect = display.frustum_fov_aspect(K, height=100, width=200)
    assert fov[0] == pytest.approx(math.pi / 2)
    # Horizontal half-extent at depth 1 must be (W/2)/fx = 1 = tan(fov/2) * aspect.
    assert math.tan(fov[0] / 2) * aspect[0] == pytest.approx(1.0)
    assert aspect[0] == pytest.approx(1.0)  # not W/H = 2: fx != fy here


def test_camera_poses_hand_checked() -> None:
    # Camera rotated 90 degrees about y, centre at (1, 2, 3).
    R_world_cam = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    centre = np.array([1.0, 2.0, 3.0])
    R = R_world_cam.T
    extrinsic = np.concatenate([R, (-R @ centre)[:, None]], axis=1)[None]
    wxyz, centres = display.camera_poses(extrinsic)
    np.testing.assert_allclose(centres[0], centre, atol=1e-12)
    half = math.sqrt(0.5)
    np.testing.assert_allclose(wxyz[0], [half, 0, half, 0], atol=1e-12)


def test_camera_poses_agree_with_viser_transforms() -> None:
    import viser.transforms as vtf

    rng = np.random.default_rng(2)
    q = rng.normal(size=(6, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    R_world_cam = np.stack([vtf.SO3(wxyz=qi).as_matrix() for qi in q])
    centres = rng.normal(size=(6, 3))
    R = np.swapaxes(R_world_cam, 1, 2)
    extrinsics = np.concatenate([R, -np.einsum("sij,sj->si", R, centres)[..., None]], axis=-1)
    wxyz, got_centres = display.camera_poses(extrinsics)
    np.testing.assert_allclose(got_centres, centres, atol=1e-9)
    for got, rotation in zip(wxyz, R_world_cam, strict=True):
        np.testing.assert_allclose(vtf.SO3(wxyz=got).as_matrix(), rotation, atol=1e-9)


def test_trajectory_segments_join_consecutive_centres() -> None:
    centres = np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]])
    segments = display.trajectory_segments(centres)
    assert segments.shape == (2, 2, 3)
    np.testing.assert_array_equal(segments[1], [[1, 0, 0], [1, 1, 0]])
    assert display.trajectory_segments(centres[:1]).shape == (0, 2, 3)


def test_frustum_length_follows_scene_size() -> None:
    centres = np.zeros((3, 3))
    assert display.frustum_length(centres, np.full((4, 4), 2.0)) == pytest.approx(0.12)
    moving = np.array([[0.0, 0, 0], [3, 4, 0]])
    assert display.frustum_length(moving, None) == pytest.approx(0.5)
    assert display.frustum_length(centres, None) > 0


def test_viser_frustum_scale_puts_the_image_plane_at_the_length() -> None:
    # Viser's own formula (CameraFrustumHandle.compute_canonical_frustum_size): plane depth at
    # scale 1 is 1 / cbrt(x * y / 3) with y = tan(fov/2), x = y * aspect.
    import viser

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    try:
        fov, aspect = 0.8, 1.7
        frustum = server.scene.add_camera_frustum("/f", fov=fov, aspect=aspect)
        canonical_depth = frustum.compute_canonical_frustum_size()[2]
    finally:
        server.stop()
    scale = display.viser_frustum_scale(0.3, fov, aspect)
    assert scale * canonical_depth == pytest.approx(0.3)


def test_degenerate_intrinsics_fall_back_to_a_drawable_frustum() -> None:
    K = np.zeros((3, 3, 3))
    K[:, 2, 2] = 1
    K[1, 0, 0] = K[1, 1, 1] = np.inf
    K[2, 0, 0] = K[2, 1, 1] = np.nan
    fov, aspect = display.frustum_fov_aspect(K, height=100, width=150)
    np.testing.assert_allclose(fov, display.FALLBACK_FOV)
    np.testing.assert_allclose(aspect, 1.5)
    assert np.isfinite(display.viser_frustum_scale(0.1, fov[0], aspect[0]))


def test_trajectory_skips_segments_with_broken_centres() -> None:
    centres = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1, 0, 0], [2, 0, 0]])
    segments = display.trajectory_segments(centres)
    np.testing.assert_array_equal(segments, [[[1, 0, 0], [2, 0, 0]]])


def test_initial_view_survives_a_broken_first_pose() -> None:
    position, look_at, up = display.initial_view(np.full((3, 4), np.nan), float("nan"))
    assert np.isfinite(position).all() and np.isfinite(look_at).all() and np.isfinite(up).all()


def test_mask_bins_put_broken_scores_with_the_static_points() -> None:
    bins = display.mask_bins(np.array([np.nan, -np.inf, np.inf, 0.97]))
    assert bins.tolist() == [0, 0, display.MASK_BINS - 1, display.MASK_BINS - 1]
