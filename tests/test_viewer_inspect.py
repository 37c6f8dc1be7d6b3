"""Inside the model: attention heat maps, feature pictures, points coloured by attention, and
the point probe both ways (3-D click -> pixel, pixel -> 3-D point), on a small hand-made
Reconstruction (`inspected_recon` in conftest) and a real ViserServer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.mask import heat_colors
from page4d_viewer.viewer import inside_views, plots, probe
from page4d_viewer.viewer.inside_views import DIFFERENCE, AttentionChoice
from page4d_viewer.viewer.inspector import CURRENT_FRAME, Inspector
from page4d_viewer.viewer.scene import SceneView, picking

HEIGHT, WIDTH = 28, 42


# ------------------------------------------------------------------------------ heat maps


def test_attention_grid_tiles_every_key_frame(inspected_recon) -> None:
    recon = inspected_recon()
    grid = inside_views.attention_grid(recon, AttentionChoice(4, 0))
    # 3 key frames: 2 columns, 2 rows of 28 x 42 tiles
    assert grid.shape == (2 * HEIGHT, 2 * WIDTH, 3) and grid.dtype == np.uint8
    assert inside_views.attention_grid(recon, AttentionChoice(4, 0), columns=3).shape == (
        HEIGHT,
        3 * WIDTH,
        3,
    )


def test_difference_is_zero_when_the_variants_agree(inspected_recon) -> None:
    recon = inspected_recon(same_variants=True)
    choice = AttentionChoice(9, 2, DIFFERENCE)
    assert not inside_views.attention_values(recon, choice).any()
    heat = inside_views.attention_heat(recon, choice)
    np.testing.assert_array_equal(heat, 0.5)  # the diverging colormap's centre
    differing = inside_views.attention_heat(inspected_recon(), choice)
    assert differing.min() == 0.0 and differing.max() == 1.0  # symmetric range


def test_diverging_heat_is_centred_and_symmetric() -> None:
    heat = inside_views.heat_values(np.array([-2.0, 0.0, 1.0]), diverging=True)
    np.testing.assert_allclose(heat, [0.0, 0.5, 0.75])
    np.testing.assert_allclose(
        inside_views.heat_values(np.array([0.0, 1.0, 4.0]), diverging=False), [0, 0.25, 1]
    )


def test_the_selected_layer_and_query_change_the_picture(inspected_recon) -> None:
    recon = inspected_recon()
    first = inside_views.attention_grid(recon, AttentionChoice(4, 0))
    other_layer = inside_views.attention_grid(recon, AttentionChoice(9, 0))
    other_query = inside_views.attention_grid(recon, AttentionChoice(4, 2))
    other_variant = inside_views.attention_grid(recon, AttentionChoice(4, 0, "unmasked"))
    for changed in (other_layer, other_query, other_variant):
        assert not np.array_equal(first, changed)
    # query 0, layer 4 attends most to patch (0, 0) of key frame 0: hottest there
    heat = inside_views.attention_heat(recon, AttentionChoice(4, 0))
    assert np.unravel_index(np.argmax(heat), heat.shape) == (0, 0, 0)


def test_unknown_selections_are_refused(inspected_recon) -> None:
    recon = inspected_recon()
    with pytest.raises(Page4DError, match="layer 5"):
        inside_views.attention_values(recon, AttentionChoice(5, 0))
    with pytest.raises(Page4DError, match="query frame"):
        inside_views.attention_values(recon, AttentionChoice(4, 1))
    with pytest.raises(Page4DError, match="no 'sideways' attention"):
        inside_views.attention_values(recon, AttentionChoice(4, 0, "sideways"))


def test_nearest_query_special_mass_and_features(inspected_recon) -> None:
    recon = inspected_recon()
    assert [inside_views.nearest_query(recon, f) for f in (0, 1, 2)] == [0, 0, 2]
    text = inside_views.special_mass_text(recon, AttentionChoice(4, 2))
    expected = 100 * recon.inside.attention_special["masked"][0, 1].sum()
    assert f"masked {expected:.1f} %" in text
    assert inside_views.feature_image(recon, 9, 1).shape == (HEIGHT, WIDTH, 3)
    assert inside_views.mask_score_image(recon, 1).shape == (HEIGHT, WIDTH, 3)
    with pytest.raises(Page4DError, match="feature PCA of layer 3"):
        inside_views.feature_image(recon, 3, 0)


# ------------------------------------------------------------------------------ probe, pure


def test_nearest_to_ray_hand_made() -> None:
    points = np.array([[0.0, 0.0, 5.0], [1.0, 0.0, 2.0], [0.1, 0.0, -3.0]])
    assert picking.nearest_to_ray(points, np.zeros(3), np.array([0, 0, 2.0])) == 0
    assert picking.nearest_to_ray(points, np.zeros(3), np.array([1.0, 0, 2.0])) == 1
    # the point behind the origin is never picked, however close to the line
    assert picking.nearest_to_ray(points[2:], np.zeros(3), np.array([0, 0, 1.0])) is None
    with pytest.raises(Page4DError, match="points must be"):
        picking.nearest_to_ray(points[:, :2], np.zeros(3), np.ones(3))
    with pytest.raises(Page4DError, match="no direction"):
        picking.nearest_to_ray(points, np.zeros(3), np.zeros(3))


def _ray_through(recon, frame: int, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    """A click ray from camera `frame`'s centre through the centre of a pixel."""
    cameras = recon.cameras["masked"]
    centre = geometry.camera_centers(cameras.extrinsics)[frame]
    target = recon.points[frame, row, col]
    return centre, target - centre


@pytest.mark.parametrize(("frame", "row", "col"), [(0, 3, 5), (1, 20, 40), (2, 14, 21)])
def test_a_click_ray_finds_its_pixel(inspected_recon, frame: int, row: int, col: int) -> None:
    recon = inspected_recon()
    origin, direction = _ray_through(recon, frame, row, col)
    assert picking.pick_pixel(recon, [frame], origin, direction) == picking.Pixel(frame, row, col)
    # with a downsampling grid, the nearest kept pixel
    picked = picking.pick_pixel(
        recon, [frame], origin, direction, rows=np.arange(0, HEIGHT, 2), cols=np.arange(WIDTH)
    )
    assert picked is not None and abs(picked.row - row) <= 1 and picked.col == col
    assert picking.pick_pixel(recon, [], origin, direction) is None


def test_probe_reads_every_value_of_a_pixel(inspected_recon) -> None:
    recon = inspected_recon()
    choice = AttentionChoice(4, 0)
    probed = probe.probe(recon, picking.Pixel(0, 2, 3), choice=choice)
    np.testing.assert_allclose(probed.position, recon.points[0, 2, 3])
    assert (probed.depth, probed.depth_conf, probed.points_conf) == (2.0, 3.0, 5.0)
    assert probed.probability == pytest.approx(0.1)  # a static patch
    assert probed.attention == pytest.approx(recon.inside.attention["masked"][0, 0, 0, 0, 0])
    dynamic = probe.probe(recon, picking.Pixel(0, 2, 40))
    assert dynamic.probability == pytest.approx(0.9) and dynamic.attention is None
    text = probe.describe(probed, choice)
    assert "Frame 0, pixel (x 3, y 2)" in text and "dynamic probability: 0.10" in text
    with pytest.raises(Page4DError, match="outside"):
        probe.probe(recon, picking.Pixel(3, 0, 0))


def test_image_clicks_and_the_cross() -> None:
    assert picking.pixel_from_image_click(10.7, 3.2, (28, 42)) == (3, 10)
    assert picking.pixel_from_image_click(84, 56, (28, 42), shown_hw=(56, 84)) == (27, 41)
    image = np.zeros((28, 42, 3), np.uint8)
    marked = probe.mark_pixel(image, 10, 20, size=3)
    assert (marked[10, 17:24] == 255).all() and (marked[7:14, 20] == 255).all()
    assert not marked[0, 0].any() and not image.any()


# ------------------------------------------------------------------------------ the scene


def _shown(scene: SceneView, recon) -> SceneView:
    scene.show(recon)
    assert scene.wait_until_sent(timeout=30)
    scene.points.set_display("all")
    return scene


def test_attention_colours_points_without_resending_geometry(scene, inspected_recon) -> None:
    recon = inspected_recon()
    _shown(scene, recon)
    before = scene.state()
    choice = AttentionChoice(4, 0)
    scene.points.set_colouring("attention", inside_views.attention_heat(recon, choice), key=choice)
    after = scene.state()
    assert after.points.point_colouring == "attention"
    assert after.geometry_sends == before.geometry_sends  # positions never re-sent
    assert all(a > b for a, b in zip(after.color_sends, before.color_sends, strict=True))
    # key frame 0: the points of patch (0, 0) got the most attention -> the hottest colour
    hot = heat_colors(1.0)
    for point_bin in scene.points.frames[0].bins.values():
        rows = point_bin.cell.pixel_index // WIDTH
        cols = point_bin.cell.pixel_index % WIDTH
        in_hot_patch = (rows < 14) & (cols < 14)
        colours = np.asarray(point_bin.handle.colors)
        assert (colours[in_hot_patch] == hot).all()
        assert not (colours[~in_hot_patch] == hot).all(axis=1).any()
    # key frame 1 got the same small share on every patch: one lukewarm colour
    lukewarm = heat_colors(inside_views.attention_heat(recon, choice)[1].max())
    assert not (lukewarm == hot).all()
    for point_bin in scene.points.frames[1].bins.values():
        assert (np.asarray(point_bin.handle.colors) == lukewarm).all()
    # another layer recolours (colours only); the same selection sends nothing
    scene.points.set_colouring("attention", inside_views.attention_heat(recon, choice), key=choice)
    assert scene.state().color_sends == after.color_sends
    other = AttentionChoice(9, 0)
    scene.points.set_colouring("attention", inside_views.attention_heat(recon, other), key=other)
    assert scene.state().geometry_sends == before.geometry_sends
    assert scene.state().color_sends != after.color_sends


def test_image_and_mask_colouring(scene, inspected_recon) -> None:
    recon = inspected_recon()
    _shown(scene, recon)
    scene.points.set_colouring("image")
    for nodes in scene.points.frames.values():
        for point_bin in nodes.bins.values():
            np.testing.assert_array_equal(point_bin.handle.colors, point_bin.cell.colors)
    with pytest.raises(Page4DError, match="colour points by"):
        scene.points.set_colouring("rainbow")
    scene.show(recon)  # a new result starts with the mask colouring again
    assert scene.state().points.point_colouring == "mask"


def test_probe_both_ways_through_the_inspector(scene, inspected_recon) -> None:
    recon = inspected_recon()
    _shown(scene, recon)
    controller = SimpleNamespace(
        current=SimpleNamespace(recon=recon),
        scene=scene,
        mask_opacity=0.5,
        mask_threshold=0.5,
        mask_overlay="continuous",
    )
    inspector = Inspector(controller)  # type: ignore[arg-type]
    choice = inspector.resolve(None, CURRENT_FRAME, None, frame=1)
    assert choice == AttentionChoice(4, 0, "masked")
    inspector.set_colouring("attention", choice)
    # pixel -> 3-D: the marker sits on the pixel's point
    inspector.probe_image_click(2, x=30.4, y=9.9)
    assert inspector.pixel == picking.Pixel(2, 9, 30)
    # A click on the panel's enlarged copy of the frame lands on the same pixel.
    factor = plots.enlargement(WIDTH, plots.PANEL_IMAGE_WIDTH)
    assert factor > 1
    inspector.probe_image_click(2, x=30.4 * factor, y=9.9 * factor, enlarged=True)
    assert inspector.pixel == picking.Pixel(2, 9, 30)
    np.testing.assert_allclose(scene.state().points.probe_point, recon.points[2, 9, 30], atol=1e-5)
    picture = inspector.probe_picture(frame=0)
    assert picture.shape == (HEIGHT, WIDTH, 3) and (picture[9, 30] == 255).all()
    # 3-D click -> pixel, through the scene's click callback (frame 1 alone on screen: the
    # frames overlap on one plane)
    scene.points.set_display("current")
    scene.set_frame(1)
    version = inspector.probe_version
    inspector.scene_clicked(*_ray_through(recon, 1, 5, 7))
    assert inspector.pixel == picking.Pixel(1, 5, 7) and inspector.probe_version == version + 1
    text = inspector.probe_text()
    assert "Frame 1, pixel (x 7, y 5)" in text and "attention received from frame 0" in text
    scene.show(recon)
    assert scene.state().points.probe_point is None


def test_a_result_without_attention_gets_the_note(scene, inspected_recon) -> None:
    import dataclasses

    recon = inspected_recon()
    recon = dataclasses.replace(
        recon, inside=dataclasses.replace(recon.inside, attention=None, attention_special=None,
        attention_layers=(), attention_query_frames=()),
    )  # fmt: skip
    _shown(scene, recon)
    controller = SimpleNamespace(current=SimpleNamespace(recon=recon), scene=scene)
    inspector = Inspector(controller)  # type: ignore[arg-type]
    choice = inspector.resolve(None, None, None, frame=0)
    view = inspector.view(choice, None, 0)
    assert choice is None and view.grid is None and "--attention" in view.note
    assert "Record attention" in view.note and view.feature is not None


# ------------------------------------------------------------------------------ run options


def test_record_attention_reaches_predict(monkeypatch, inspected_recon) -> None:
    from page4d_viewer.inference import predictor
    from page4d_viewer.inference.jobs import PredictorBackend
    from page4d_viewer.viewer.callbacks import options_from_widgets

    values = {
        "checkpoint": "default model", "device": "cpu", "precision": "auto",
        "mask_strength": 64, "mode": "crop", "stride": 1, "fps": 0, "start": 0, "end": 0,
        "max_frames": 0,
    }  # fmt: skip
    assert options_from_widgets(values).attention is False
    options = options_from_widgets({**values, "attention": True})
    assert options.attention is True
    calls: list[dict] = []

    def predict(source, model, **kwargs):
        calls.append(kwargs)
        return inspected_recon()

    monkeypatch.setattr(
        predictor, "load_model", lambda path: ("model", predictor.ModelInfo(name="m"))
    )
    monkeypatch.setattr(predictor, "predict", predict)
    PredictorBackend().run_model("clip.mp4", options, lambda fraction, message: None)
    assert calls[0]["attention"] is True
