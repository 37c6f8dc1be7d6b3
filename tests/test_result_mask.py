"""The one reading of the mask: the mp4 export, the panel and the scene draw the same overlay."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from page4d_viewer import settings
from page4d_viewer.result import export, mask
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.scene import display

# Non-default settings, so a hidden default in either path would show.
OPACITY, THRESHOLD, COLORMAP = 0.8, 0.3, "viridis"


def test_dynamic_probability_is_clipped_half_minus_score() -> None:
    score = np.array([-0.7, -0.5, 0.0, 0.25, 0.5, 0.9])
    np.testing.assert_allclose(mask.dynamic_probability(score), [1, 1, 0.5, 0.25, 0, 0])


def test_upsampling_is_nearest_patch_at_any_size() -> None:
    patches = np.array([[[0.0, 1.0, 2.0]]])
    pixels = mask.upsample_mask(patches, 2, 7)
    # 7 pixels over 3 patches: patch_index = column * 3 // 7.
    np.testing.assert_array_equal(pixels[0, 0], [0, 0, 0, 1, 1, 2, 2])
    assert pixels.dtype == patches.dtype


def test_the_viewer_calls_the_result_mask_functions() -> None:
    for name in ("dynamic_probability", "upsample_mask", "patch_index", "heat_colors"):
        assert getattr(display, name) is getattr(mask, name)
    for name in ("blend_colors", "overlay_weight", "check_overlay", "overlay_image"):
        assert getattr(display, name) is getattr(mask, name)
    assert plots.overlay_image is mask.overlay_image


@pytest.mark.parametrize("frame", [0, 2])
def test_mp4_frame_equals_the_panel_overlay(make_reconstruction, frame: int) -> None:
    recon = make_reconstruction(frames=3)
    exported = export.mp4_frame(recon, frame, OPACITY, THRESHOLD, COLORMAP)
    shown = plots.frame_images(recon, frame, OPACITY, THRESHOLD, COLORMAP).overlay
    np.testing.assert_array_equal(exported, shown)
    # ...and the overlay really draws something at these settings.
    assert not np.array_equal(exported, recon.images[frame])


def test_mp4_frame_at_defaults_equals_the_panel_at_defaults(make_reconstruction) -> None:
    recon = make_reconstruction(frames=2, seed=4)
    shown = plots.frame_images(
        recon, 1, settings.DEFAULT_MASK_OPACITY, settings.DEFAULT_MASK_THRESHOLD
    ).overlay
    np.testing.assert_array_equal(export.mp4_frame(recon, 1), shown)


def test_mp4_frame_is_the_one_overlay_of_the_scene(make_reconstruction) -> None:
    recon = make_reconstruction(frames=2, seed=2)
    image = export.mp4_frame(recon, 1, OPACITY, THRESHOLD, COLORMAP, "threshold")
    probability = mask.upsample_mask(mask.dynamic_probability(recon.mask_score[1]), 28, 42)
    weight = mask.overlay_weight(probability, OPACITY, THRESHOLD)
    top = mask.mask_scale(recon.mask_score)  # the clip's scale, as the scene's
    np.testing.assert_array_equal(
        image, mask.blend_colors(recon.images[1], probability, weight, COLORMAP, top)
    )
    # Below the threshold the frame is untouched (the old export blended every pixel).
    below = probability < THRESHOLD
    assert below.any()
    np.testing.assert_array_equal(image[below], recon.images[1][below])


def test_mp4_encodes_the_mp4_frames(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=4, seed=1)
    path = export.export_mp4(
        recon,
        tmp_path / "mask.mp4",
        frames=[0, 1, 3],
        opacity=OPACITY,
        threshold=THRESHOLD,
        colormap=COLORMAP,
    )
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 3
    assert decoded[2].shape == (28, 42, 3)
    # H.264 is lossy: the decoded frame is near the encoded picture, far from the plain frame.
    expected = export.mp4_frame(recon, 3, OPACITY, THRESHOLD, COLORMAP).astype(float)
    assert np.abs(decoded[2] - expected).mean() < np.abs(decoded[2] - recon.images[3]).mean()


def test_mp4_rejects_a_bad_threshold_before_writing(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2)
    with pytest.raises(mask.DisplayError, match=r"mask threshold must be in \[0, 1\]"):
        export.export_mp4(recon, tmp_path / "never.mp4", threshold=1.5)
    assert not (tmp_path / "never.mp4").exists()


def test_the_mask_scale_is_the_clips_99th_percentile() -> None:
    scores = np.linspace(-0.5, 0.3, 1000).reshape(10, 10, 10)  # probabilities 0.2 .. 1.0
    probability = mask.dynamic_probability(scores)
    assert mask.mask_scale(scores) == pytest.approx(np.percentile(probability, 99))
    assert mask.mask_scale(None) == 1.0
    assert mask.mask_scale(np.full((2, 2, 2), 0.5)) == 1.0  # all static: the full range
    # The colours reach the top colour at the scale, and never rescale the values shown.
    top = mask.mask_scale(scores)
    np.testing.assert_array_equal(mask.heat_colors(top, top=top), mask.heat_colors(1.0))
    np.testing.assert_array_equal(mask.heat_colors(1.0, top=top), mask.heat_colors(1.0))


def test_the_continuous_overlay_tints_every_patch_and_the_threshold_one_some() -> None:
    probability = np.array([0.1, 0.6])
    np.testing.assert_array_equal(
        mask.overlay_weight(probability, 0.5, 0.5, "continuous"), [0.5, 0.5]
    )
    np.testing.assert_array_equal(mask.overlay_weight(probability, 0.5, 0.5), [0.0, 0.5])
    with pytest.raises(mask.DisplayError, match="mask overlay must be one of"):
        mask.overlay_weight(probability, 0.5, 0.5, "sometimes")
