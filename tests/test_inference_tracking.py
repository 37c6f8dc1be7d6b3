"""Tracking from any query frame, predict(tracks=N), click seeds, and tracker-only training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import few_layer_training

from page4d_viewer.errors import Page4DError
from page4d_viewer.inference import tracking
from page4d_viewer.inference.predictor import predict
from page4d_viewer.result.tracks import Seeds

QUERIES = torch.tensor([[4.0, 6.0], [20.0, 13.0], [33.5, 21.0]], dtype=torch.float64)


def test_tracking_from_frame_t_equals_the_clip_reordered_with_t_first(
    few_layer_model, clip_images
) -> None:
    model, images = few_layer_model(), clip_images(frames=4)
    track, visibility, confidence = model.track(images, QUERIES, query_frame=2, mask_strength=64)
    order = [2, 0, 1, 3]
    with torch.no_grad():
        direct = model(images[order], 64.0, query_points=QUERIES)
    for position, frame in enumerate(order):
        torch.testing.assert_close(track[0, frame], direct.track[0, position])
        torch.testing.assert_close(visibility[0, frame], direct.track_vis[0, position])
        torch.testing.assert_close(confidence[0, frame], direct.track_conf[0, position])
    torch.testing.assert_close(track[0, 2], QUERIES)  # the query frame holds the queries


def test_a_query_frame_outside_the_clip_is_refused(few_layer_model, clip_images) -> None:
    with pytest.raises(Page4DError, match="query frame 3 is out of range"):
        few_layer_model().track(clip_images(), QUERIES, query_frame=3)


def _model_with_float_weights(few_layer_model, **overrides):
    return few_layer_model(**overrides).float()


def _frames(tmp_path, count: int = 3):
    """A folder of `count` 42x28 PNG frames (the few-layer model's 42-pixel input)."""
    import imageio.v3 as iio

    rng = np.random.default_rng(3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(count):
        iio.imwrite(folder / f"{index:03d}.png", rng.integers(0, 256, (28, 42, 3), np.uint8))
    return folder


def test_predict_with_tracks_seeds_and_tracks_through_the_clip(few_layer_model, tmp_path) -> None:
    model = _model_with_float_weights(few_layer_model, img_size=42)
    seen: list[float] = []
    recon = predict(_frames(tmp_path), model, tracks=5, progress=lambda f, _: seen.append(f))
    tracks = recon.tracks
    assert tracks.num_tracks == 5 and tracks.num_frames == recon.num_frames
    expected = tracking.automatic_seeds(recon, 5)
    np.testing.assert_array_equal(tracks.query_frame, [expected.frame] * 5)
    np.testing.assert_allclose(tracks.query_xy, expected.xy, atol=1e-5)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert recon.metadata.timings["tracks"] > 0


def test_predict_without_tracks_stores_none(few_layer_model, tmp_path) -> None:
    model = _model_with_float_weights(few_layer_model, img_size=42)
    assert predict(_frames(tmp_path), model).tracks is None


def test_tracks_need_a_track_head_and_say_so_before_running(few_layer_model, tmp_path) -> None:
    model = _model_with_float_weights(few_layer_model, img_size=42, has_track_head=False)
    with pytest.raises(Page4DError, match="no track head"):
        predict(_frames(tmp_path), model, tracks=4, progress=lambda *_: pytest.fail("ran"))


@pytest.mark.parametrize("count", [-1, 10**6, 2.5, True])
def test_a_bad_track_count_is_a_one_line_error(count) -> None:
    with pytest.raises(Page4DError, match="number of tracks"):
        tracking.check_track_count(count)


def test_click_seeds_are_added_to_the_tracks_a_result_has(few_layer_model, tmp_path) -> None:
    model = _model_with_float_weights(few_layer_model, img_size=42)
    recon = predict(_frames(tmp_path), model, tracks=2)
    clicked = np.array([[10.0, 12.0]], dtype=np.float32)
    more = tracking.add_tracks(model, recon, Seeds(1, clicked))
    assert more.tracks.num_tracks == 3
    np.testing.assert_array_equal(more.tracks.xy[:, :2], recon.tracks.xy)
    np.testing.assert_allclose(more.tracks.xy[1, 2], clicked[0], atol=1e-5)
    assert more.tracks.query_frame[2] == 1
    assert recon.tracks.num_tracks == 2  # the original is unchanged


@pytest.mark.parametrize(
    ("frame", "xy", "message"),
    [(5, [[1.0, 1.0]], "out of range"), (0, [[50.0, 1.0]], "inside the 42x28")],
)
def test_seeds_outside_the_result_are_refused(
    few_layer_model, make_reconstruction, frame, xy, message
) -> None:
    model = _model_with_float_weights(few_layer_model, img_size=42)
    recon = make_reconstruction(3, 28, 42)
    with pytest.raises(Page4DError, match=message):
        tracking.add_tracks(model, recon, Seeds(frame, np.asarray(xy, dtype=np.float32)))


def _tracker_training(few_layer_config: dict, tmp_path, train_only: tuple[str, ...]):
    """Two steps of a few-layer run with the track loss, training only `train_only`."""
    from page4d_viewer.training.losses import LossWeights

    return few_layer_training(
        tmp_path / "run",
        model_overrides={**few_layer_config, "img_size": 42},
        loss_weights=LossWeights(track=1.0),
        track_queries=8,
        train_only=train_only,
        checkpoint_every=10,
    )


def test_training_only_the_tracker_leaves_every_other_weight_unchanged(
    few_layer_config, tmp_path
) -> None:
    from page4d_viewer.training.train import build_training_model, train

    config = _tracker_training(few_layer_config, tmp_path, ("track_head",))
    start = build_training_model(config).state_dict()
    trained, _ = train(config)
    changed = {
        name
        for name, value in trained.state_dict().items()
        if value.is_floating_point() and not torch.equal(value, start[name])
    }
    assert changed and all(name.startswith("track_head.") for name in changed)


def test_train_only_an_unknown_module_is_a_one_line_error(few_layer_config, tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError, train

    with pytest.raises(TrainingError, match="tracker is not a module"):
        train(_tracker_training(few_layer_config, tmp_path, ("tracker",)))
