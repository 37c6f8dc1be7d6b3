"""Linked time without a browser: each per-frame plot's picture knows where its frames lie
(`plots.FrameAxis`), a column reads back as the same frame, and the page is sent that axis."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from page4d_viewer.viewer import plots
from page4d_viewer.viewer.frame_plots import picture_html

FRAMES = 9
VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


def _attention(frames: int) -> dict[str, np.ndarray]:
    """(S, 2, 3) attention of one camera token per variant: frame f gets f+1 shares."""
    shares = np.arange(1, frames + 1, dtype=np.float64)
    masked = np.repeat(shares[:, None, None] / 6.0, 6, axis=1).reshape(frames, 2, 3)
    return {"masked": masked / shares.sum(), "unmasked": masked[::-1] / shares.sum()}


def _figures(recon) -> dict:
    """Every per-frame plot the panel draws, by name."""
    return {
        "pose differences": plots.differences_figure(plots.compare_poses(recon)),
        "disagreement": plots.disagreement_figure(recon),
        "mask share": plots.mask_share_figure(recon, 0.5),
        "attention share": plots.attention_share_figure(_attention(FRAMES), 4, 2),
    }


@pytest.fixture(scope="module")
def recon(make_reconstruction):
    return make_reconstruction(frames=FRAMES, variants=VARIANTS, ground_truth=True)


@pytest.mark.parametrize(
    "name", ["pose differences", "disagreement", "mask share", "attention share"]
)
def test_each_plot_reads_a_column_as_its_frame(recon, name: str) -> None:
    figure = _figures(recon)[name]
    drawn = plots.figure_picture(figure, FRAMES)
    height, width = drawn.image.shape[:2]
    axis = drawn.axis
    assert 0 < axis.left < axis.right < width
    assert 0 <= axis.top < axis.bottom <= height
    step = (axis.right - axis.left) / (axis.last - axis.first)  # pixels per frame
    for frame in range(FRAMES):
        column = axis.column_at(frame)
        # The column is where matplotlib drew that frame (rows counted from the top).
        drawn_at = figure.axes[-1].transData.transform((frame, 0.0))[0]
        assert column == pytest.approx(drawn_at, abs=0.5)
        for off in (-0.4 * step, 0.0, 0.4 * step):
            assert axis.frame_at(column + off) == frame
    assert axis.frame_at(0.0) == 0 and axis.frame_at(float(width)) == FRAMES - 1


def test_the_frame_mark_spans_the_plot_area_of_every_axes(recon) -> None:
    """Both axes of the two-row plots lie between the mark's top and bottom."""
    figure = plots.disagreement_figure(recon)
    axis = plots.figure_picture(figure, FRAMES).axis
    height = figure.canvas.get_width_height()[1]
    rows = [height - y for each in figure.axes for y in each.get_window_extent().intervaly]
    assert axis.top == pytest.approx(min(rows)) and axis.bottom == pytest.approx(max(rows))
    assert len(figure.axes) == 2


def test_mask_share_counts_patches_and_moving_pixels(make_reconstruction) -> None:
    score = np.full((4, 2, 3), 0.4, np.float32)  # probability 0.1: static
    score[1, :, -1] = -0.4  # frame 1: one column of three at probability 0.9
    moving = np.zeros((4, 28, 42), bool)
    moving[2, :, :21] = True  # frame 2: half the pixels move
    recon = make_reconstruction(frames=4, mask_score=score, gt_dynamic_mask=moving)
    curves = plots.mask_share(recon, threshold=0.5)
    np.testing.assert_allclose(curves["patches ≥ 0.50"], [0, 1 / 3, 0, 0])
    np.testing.assert_allclose(curves["mean probability"], [0.1, (4 * 0.1 + 2 * 0.9) / 6, 0.1, 0.1])
    np.testing.assert_allclose(curves["ground truth moving pixels"], [0, 0, 0.5, 0])
    assert plots.mask_share(make_reconstruction(frames=4, with_mask=False), 0.5) == {}


def test_the_attention_plot_sums_each_key_frame() -> None:
    attention = _attention(4)
    figure = plots.attention_share_figure(attention, layer=4, query=2)
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    expected = np.arange(1, 5) / 10.0

    def values(label: str, axis: str = "y") -> np.ndarray:
        line = lines[label]
        return np.asarray(line.get_ydata() if axis == "y" else line.get_xdata(), dtype=float)

    np.testing.assert_allclose(values("masked"), expected)
    np.testing.assert_allclose(values("unmasked"), expected[::-1])
    assert values("query frame 2", "x").tolist() == [2.0]


def test_the_page_gets_the_picture_and_its_axis(recon) -> None:
    drawn = plots.figure_picture(plots.mask_share_figure(recon, 0.5), FRAMES)
    page = picture_html(drawn, "Mask <share>")
    sent = {key: float(value) for key, value in re.findall(r'data-(\w+)="([\d.]+)"', page)}
    axis = drawn.axis
    for key in ("left", "right", "first", "last", "top", "bottom"):
        assert sent[key] == pytest.approx(getattr(axis, key), abs=1e-3)
    assert sent["frames"] == FRAMES
    assert 'class="frame-mark"' in page and "Mask &lt;share&gt;" in page
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert encoded is not None
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded.group(1)))))
    np.testing.assert_array_equal(picture, drawn.image)
