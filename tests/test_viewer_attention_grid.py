"""The Inside the model tab's attention grid reads: its colour scale tops at the selection's
99th percentile (said on its colour bar), and the key frames show through where attention is
low, so the picture is not mostly black (issue 20). On `inspected_recon` (one hot patch per
selection over a flat rest), on a heavy-tailed attention like a real model's, and on the
attention the tiny network records in a real (CPU) run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from page4d_viewer.result.mask import heat_colors
from page4d_viewer.viewer import inside_views
from page4d_viewer.viewer.inside_views import DIFFERENCE, AttentionChoice


def _heavy_tailed(recon):
    """`recon` with log-normal attention (a few patches take most of it), rows summing to 1."""
    rng = np.random.default_rng(1)
    maps = {}
    for name, values in recon.inside.attention.items():
        weights = rng.lognormal(0.0, 2.5, values.shape)
        maps[name] = (weights / weights.sum(axis=(2, 3, 4), keepdims=True)).astype(np.float32)
    return dataclasses.replace(recon, inside=dataclasses.replace(recon.inside, attention=maps))


def _median_brightness(picture: np.ndarray) -> float:
    return float(np.median(picture.astype(np.float32).mean(axis=-1)))


@pytest.mark.parametrize("heavy_tailed", [False, True])
def test_the_grid_is_not_mostly_black(inspected_recon, heavy_tailed: bool) -> None:
    recon = inspected_recon()
    recon = _heavy_tailed(recon) if heavy_tailed else recon
    frames = recon.num_frames
    for choice in (AttentionChoice(4, 0), AttentionChoice(9, 2, DIFFERENCE)):
        grid = inside_views.attention_grid(recon, choice, columns=frames)  # no empty tiles
        images = _median_brightness(recon.images)
        assert _median_brightness(grid) > 0.8 * images, choice
        # The old look (max scale, the heat everywhere at HEAT_OPACITY) was dark on the flat
        # attention: the test tells the two apart.
        if not choice.diverging and not heavy_tailed:
            heat = inside_views.attention_heat(recon, choice)
            old = inside_views.blend_colors(
                recon.images, inside_views.upsample_mask(heat, *recon.image_hw),
                inside_views.HEAT_OPACITY,
            )  # fmt: skip
            assert _median_brightness(old) < 0.6 * images


def test_the_hottest_patch_takes_the_top_colour(inspected_recon) -> None:
    recon = inspected_recon()
    choice = AttentionChoice(4, 0)  # hottest at patch (0, 0) of key frame 0
    grid = inside_views.attention_grid(recon, choice, columns=recon.num_frames)
    top = heat_colors(1.0).astype(np.float32)
    expected = recon.images[0, 0, 0] + inside_views.HEAT_OPACITY * (top - recon.images[0, 0, 0])
    np.testing.assert_allclose(grid[0, 0], expected, atol=1.0)


def test_attention_scale_is_a_robust_top() -> None:
    values = np.concatenate([np.full(995, 0.001), np.full(5, 0.5)]).reshape(10, 10, 10)
    assert inside_views.attention_scale(values, diverging=False) == pytest.approx(0.001)
    assert inside_views.attention_scale(-values, diverging=True) == pytest.approx(0.001)
    few = np.zeros((2, 10, 10))
    few[0, 0, 0] = 0.3  # the 99th percentile is 0: the largest value tops the scale
    assert inside_views.attention_scale(few, diverging=False) == pytest.approx(0.3)
    assert inside_views.attention_scale(np.zeros((2, 3, 4)), diverging=True) == 1.0
    assert inside_views.attention_scale(np.full((1, 2, 2), np.nan), diverging=False) == 1.0
    np.testing.assert_allclose(
        inside_views.heat_values(np.array([-2.0, 0.0, 0.5, 3.0]), diverging=True, top=1.0),
        [0.0, 0.5, 0.75, 1.0],
    )


def test_the_colour_bar_says_the_scale(inspected_recon) -> None:
    recon = _heavy_tailed(inspected_recon())
    for choice in (AttentionChoice(4, 0), AttentionChoice(4, 0, DIFFERENCE)):
        raw = inside_views.attention_values(recon, choice)
        top = inside_views.attention_scale(raw, choice.diverging)
        bar = inside_views.attention_bar(recon, choice)
        assert bar.high == pytest.approx(top)
        assert bar.low == (pytest.approx(-top) if choice.diverging else 0.0)
        assert "99th pct" in bar.note
        assert bar.above == bool(np.abs(raw).max() > top)
        assert bar.above  # heavy tails: some values lie beyond the top colour


@pytest.mark.slow
def test_a_real_run_with_attention_reads() -> None:
    torch = pytest.importorskip("torch")
    from test_predictor import make_clip

    from page4d_viewer.inference import predictor
    from page4d_viewer.model import AttentionRequest, build_model

    torch.manual_seed(0)
    network = build_model("tiny", img_size=56)
    request = AttentionRequest(layers=(19,), query_frames=(0,), feature_layers=())
    recon = predictor.predict(
        make_clip(frames=3), network, device="cpu", precision="fp32", attention=request
    )
    images = _median_brightness(recon.images)
    for choice in (AttentionChoice(19, 0), AttentionChoice(19, 0, DIFFERENCE)):
        grid = inside_views.attention_grid(recon, choice, columns=recon.num_frames)
        assert _median_brightness(grid) > 0.8 * images, choice
        bar = inside_views.attention_bar(recon, choice)
        raw = inside_views.attention_values(recon, choice)
        assert bar.high == pytest.approx(inside_views.attention_scale(raw, choice.diverging))
