"""Captions under the panel's pictures: the picture keeps its pixels, the bar its colours."""

from __future__ import annotations

import numpy as np
import pytest

from page4d_viewer.result.mask import heat_colors
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.captions import (
    MARGIN,
    ColourBar,
    _font,
    caption_strip,
    captioned,
    format_value,
    plain_text,
)
from page4d_viewer.viewer.inside_views import DIFFERENCE


def test_a_caption_goes_below_and_its_bar_is_the_pictures_colormap() -> None:
    picture = np.full((30, 200, 3), 7, np.uint8)
    shown = captioned(picture, "frame 0/2 · depth", ColourBar("turbo", 1.0, 2.0))
    assert shown.shape[1:] == (200, 3) and shown.shape[0] > 30
    np.testing.assert_array_equal(shown[:30], picture)  # clicks land on the same pixels
    strip = shown[30:]
    expected = heat_colors(np.linspace(0, 1, 200 - 2 * MARGIN), "turbo")
    rows = [row for row in strip if np.array_equal(row[MARGIN : 200 - MARGIN], expected)]
    assert rows, "no row of the strip is the colour bar"


def _glyph(character: str) -> bytes:
    mask = _font(14).getmask(character)
    return np.asarray(mask).tobytes() + bytes(str(mask.size), "ascii")


def test_captions_draw_no_empty_boxes() -> None:
    """The bundled font has no minus sign: "masked − unmasked" was drawn with a box."""
    missing = _glyph("\uffff")  # a code point no font has: the empty box
    assert _glyph("\u2212") == missing  # the reason for plain_text
    for text in (DIFFERENCE, "frame 3/12 · mask", "ATE masked − unmasked (m)"):
        assert all(_glyph(c) != missing for c in plain_text(text) if not c.isspace()), text
    # The caption draws the plain text: a minus sign looks like the hyphen it becomes.
    hyphen = caption_strip(300, "masked - unmasked")
    np.testing.assert_array_equal(caption_strip(300, DIFFERENCE), hyphen)


@pytest.mark.parametrize(("value", "text"), [(0.0, "0"), (0.3561, "0.356"), (12345.0, "1.23e+04")])
def test_tick_labels(value: float, text: str) -> None:
    assert format_value(value) == text


def test_the_mask_bar_reads_the_clips_scale(make_reconstruction) -> None:
    bar = plots.mask_bar(0.36, "continuous", 0.5)
    assert (bar.low, bar.high, bar.above) == (0.0, 0.36, True)
    assert "99th" in bar.note
    assert "0.50" in plots.mask_bar(0.36, "threshold", 0.5).note
    recon = make_reconstruction(frames=2)
    captioned_images = plots.frame_images(recon, 1, 0.5, 0.5, captions=True)
    bare = plots.frame_images(recon, 1, 0.5, 0.5)
    for shown, picture in zip(captioned_images.pictures(), bare.pictures(), strict=True):
        if picture is not None:
            np.testing.assert_array_equal(shown[: picture.shape[0]], picture)


def test_pose_plots_keep_legends_off_the_curves_and_titles_inside(make_reconstruction) -> None:
    variants = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")
    recon = make_reconstruction(frames=4, variants=variants, ground_truth=True)
    comparison = plots.compare_poses(recon)
    for figure in (
        plots.trajectory_figure(comparison, comparison),
        plots.differences_figure(comparison, comparison),
    ):
        figure.draw_without_rendering()  # runs the constrained layout
        box = figure.bbox
        assert all(axes.get_legend() is None for axes in figure.axes)  # none over a curve
        (legend,) = figure.legends
        drawn = legend.get_window_extent()
        assert drawn.x0 >= box.x0 - 1 and drawn.x1 <= box.x1 + 1  # not clipped at the sides
        for axes in figure.axes:
            assert drawn.y1 <= axes.get_window_extent().y0 + 1  # below every axes
            title = axes.title.get_window_extent()
            assert title.x0 >= box.x0 and title.x1 <= box.x1 + 1  # the title fits


def test_inside_the_model_pictures_carry_their_captions(inspected_recon) -> None:
    from page4d_viewer.viewer import inside_views
    from page4d_viewer.viewer.inside_views import DIFFERENCE, AttentionChoice

    recon = inspected_recon()
    mask = inside_views.captioned_mask(recon, 1, plots.PANEL_IMAGE_WIDTH)
    bare = plots.enlarge(inside_views.mask_score_image(recon, 1), plots.PANEL_IMAGE_WIDTH)
    np.testing.assert_array_equal(mask[: bare.shape[0]], bare)
    choice = AttentionChoice(4, 0)
    bar = inside_views.attention_bar(recon, choice)
    raw = inside_views.attention_values(recon, choice)
    top = inside_views.attention_scale(raw, diverging=False)
    assert (bar.low, bar.high) == (0.0, pytest.approx(top))  # the raw shares, robust top
    difference = inside_views.attention_bar(recon, AttentionChoice(4, 0, DIFFERENCE))
    assert difference.low == -difference.high and difference.colormap == "RdBu_r"
    grid = inside_views.captioned_grid(recon, choice)
    bare_grid = inside_views.attention_grid(recon, choice)
    np.testing.assert_array_equal(grid[: bare_grid.shape[0]], bare_grid)
