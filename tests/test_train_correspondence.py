"""Training levers for correspondence: the track loss, per-step mask strength, --init-weights
from a checkpoint without a track head."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from page4d_viewer.training.losses import LossWeights, Targets
from page4d_viewer.training.tracks import TrackCapture, clip_tracks, track_errors, track_loss
from tests.test_train import MICRO_MODEL, _micro_config

TRACKING = dict(loss_weights=LossWeights(track=0.05), track_queries=8)


def _track_targets(frames: int = 3, points: int = 4, seed: int = 0) -> Targets:
    generator = torch.Generator().manual_seed(seed)
    tracks = torch.rand(1, frames, points, 2, generator=generator) * 40
    visible = torch.rand(1, frames, points, generator=generator) > 0.3
    visible[:, 0] = True
    zeros = torch.zeros(1, frames, 9)
    return Targets(
        pose_enc=zeros,
        depth=zeros,
        world_points=zeros,
        valid=zeros.bool(),
        query_points=tracks[:, 0],
        tracks=tracks,
        track_visible=visible,
    )


# ------------------------------------------------------------------------------------------
# The track loss
# ------------------------------------------------------------------------------------------


def test_track_position_loss_is_zero_on_the_truth_and_ignores_hidden_points() -> None:
    targets = _track_targets()
    weights = LossWeights(track_visibility=0.0)
    visibility = targets.track_visible.float()
    perfect = targets.tracks.clone()
    assert float(track_loss([perfect, perfect], visibility, targets, weights)) == 0.0
    # Anything at hidden points (and at frame 0, the query itself) does not count.
    garbage = perfect.clone()
    hidden = ~targets.track_visible
    hidden[:, 0] = True
    garbage[hidden] = 1e3
    assert float(track_loss([garbage], visibility, targets, weights)) == 0.0
    # A visible point 3 px off costs: Huber(delta 1) on each coordinate = 2.5 per coordinate.
    wrong = perfect.clone()
    frame, point = [int(i) for i in torch.nonzero(targets.track_visible[0, 1:])[0]]
    wrong[0, frame + 1, point] += 3.0
    count = float(targets.track_visible[:, 1:].sum())
    loss = float(track_loss([wrong], visibility, targets, weights))
    assert loss == pytest.approx(2 * 2.5 / count)


def test_later_tracker_steps_weigh_more_and_visibility_is_supervised() -> None:
    targets = _track_targets()
    weights = LossWeights(track_visibility=0.0)
    visibility = targets.track_visible.float()
    perfect, wrong = targets.tracks, targets.tracks + 2.0
    early_wrong = float(track_loss([wrong, perfect], visibility, targets, weights))
    late_wrong = float(track_loss([perfect, wrong], visibility, targets, weights))
    assert early_wrong == pytest.approx(weights.camera_step_gamma * late_wrong)
    with_bce = LossWeights(track_visibility=1.0)
    right = float(track_loss([perfect], visibility, targets, with_bce))
    flipped = float(track_loss([perfect], 1 - visibility, targets, with_bce))
    assert right < 1e-4 < 1.0 < flipped


def test_track_errors_compare_with_a_still_guess() -> None:
    targets = _track_targets()
    predicted, still = track_errors(targets.tracks, targets)
    assert predicted == 0.0 and still > 0.0
    still_guess = targets.query_points[:, None].expand_as(targets.tracks)
    predicted, still_again = track_errors(still_guess, targets)
    assert predicted == pytest.approx(still) and still_again == still


# ------------------------------------------------------------------------------------------
# Ground truth for training samples, and the pixel convention
# ------------------------------------------------------------------------------------------


def test_clip_tracks_start_at_the_queries_in_the_first_input_frame() -> None:
    from page4d_viewer.sources import synthetic

    clip = synthetic.make_clip(11, num_frames=8, width=84, height=56)
    frames = [6, 4, 2]  # strided and backwards, as batch_for_step may pick them
    rng = np.random.default_rng(0)
    queries, tracks, visible = clip_tracks(clip, frames, 20, 1.0, rng)
    assert queries.shape == (20, 2) and tracks.shape == (3, 20, 2) and visible.shape == (3, 20)
    np.testing.assert_array_equal(tracks[0], queries)
    assert visible[0].all()
    # Queries are pixel centres (u, v) = (column, row) of the query frame: with
    # moving_fraction 1 every one lies on a moving pixel of frame 6.
    columns, rows = queries[:, 0].astype(int), queries[:, 1].astype(int)
    np.testing.assert_array_equal(queries, np.stack([columns, rows], axis=-1))
    moving = clip.dynamic_mask[6][rows, columns]
    assert moving.mean() == 1.0 or moving.sum() == clip.dynamic_mask[6].sum()


def test_the_tracker_samples_pixel_centres_at_integer_coordinates() -> None:
    """The tracker reads its maps with (0, 0) at the first pixel's centre, as the ground truth
    numbers pixels: a query at (u, v) reads column u, row v of a map at stride 1."""
    from page4d_viewer.model.track_head import sample_points

    height, width = 5, 7
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    image = torch.stack([columns, rows]).float()[None]  # channel 0: column, 1: row
    points = torch.tensor([[[0.0, 0.0], [6.0, 4.0], [3.0, 2.0], [2.5, 1.0]]])
    np.testing.assert_allclose(sample_points(image, points)[0].numpy(), points[0].numpy())


def test_batches_carry_tracks_only_with_a_track_loss(tmp_path) -> None:
    from page4d_viewer.training.data import ClipPool, batch_for_step, samples_to_tensors

    config = _micro_config(tmp_path, **TRACKING)
    sample = batch_for_step(config, 3, ClipPool(config))[0]
    again = batch_for_step(config, 3, ClipPool(config))[0]
    np.testing.assert_array_equal(sample.tracks, again.tracks)
    assert sample.tracks.shape == (len(sample.images), 8, 2)
    _, targets = samples_to_tensors([sample], torch.device("cpu"))
    assert targets.tracks.shape == (1, len(sample.images), 8, 2)
    plain = batch_for_step(_micro_config(tmp_path), 3, ClipPool(config))[0]
    np.testing.assert_array_equal(plain.images, sample.images)  # same clip and frames
    assert plain.tracks is None
    assert samples_to_tensors([plain], torch.device("cpu"))[1].tracks is None


def test_the_track_loss_reaches_the_aggregator(tmp_path) -> None:
    from page4d_viewer.training.data import ClipPool, batch_for_step, samples_to_tensors
    from page4d_viewer.training.train import build_training_model

    config = _micro_config(tmp_path, **TRACKING)
    model = build_training_model(config)
    batch = batch_for_step(config, 0, ClipPool(config))
    images, targets = samples_to_tensors(batch, torch.device("cpu"))
    with TrackCapture(model) as capture:
        output = model(images, mask_strength=64.0, query_points=targets.query_points)
    assert len(capture.tracks.steps) == model.config.track_iterations
    torch.testing.assert_close(capture.tracks.steps[-1], output.track)
    track_loss(capture.tracks.steps, capture.tracks.visibility, targets, LossWeights()).backward()
    gradient = model.aggregator.global_blocks[0].attn.qkv.weight.grad
    assert gradient is not None and float(gradient.abs().sum()) > 0


# ------------------------------------------------------------------------------------------
# Mask strength per step
# ------------------------------------------------------------------------------------------


def test_mask_strength_sampling(tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError, step_mask_strength

    def strengths(mode: str) -> list[float]:
        config = _micro_config(tmp_path, mask_strength_sampling=mode)
        return [step_mask_strength(config, step) for step in range(200)]

    assert set(strengths("fixed")) == {64.0}
    binary = strengths("binary")
    assert set(binary) == {0.0, 64.0} and 60 < binary.count(0.0) < 140
    assert binary == strengths("binary")  # a function of (seed, step)
    uniform = strengths("uniform")
    assert min(uniform) >= 0.0 and max(uniform) <= 64.0 and len(set(uniform)) == 200
    scheduled = _micro_config(tmp_path, mask_strength_sampling="uniform", mask_hold_start=0)
    scheduled.mask_hold_end = 0
    assert step_mask_strength(scheduled, 5) == 0.0  # draws stay below the schedule's alpha
    with pytest.raises(TrainingError, match="mask_strength_sampling"):
        _micro_config(tmp_path, mask_strength_sampling="sometimes")


def test_training_with_tracks_and_sampled_mask_resumes_to_the_same_weights(tmp_path) -> None:
    from page4d_viewer.training.train import LOSS_CSV_NAME, train

    options = dict(TRACKING, mask_strength_sampling="binary", max_steps=3)
    straight, _ = train(_micro_config(tmp_path / "straight", **options))
    train(_micro_config(tmp_path / "resumed", **{**options, "max_steps": 1}))
    resumed, steps = train(_micro_config(tmp_path / "resumed", **options))
    assert steps == 3
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    rows = list(csv.DictReader((tmp_path / "straight" / LOSS_CSV_NAME).open()))
    assert all(float(row["track"]) > 0 and float(row["still_px"]) > 0 for row in rows)


def test_cli_parses_the_correspondence_options(tmp_path) -> None:
    from page4d_viewer.cli.train import config_from_args, configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    argv = ["--out", str(tmp_path), "--track-loss-weight", "0.1", "--track-queries", "32"]
    argv += ["--track-moving-fraction", "0.25", "--mask-strength-sampling", "binary"]
    argv += ["--track-visibility-weight", "0.5"]
    config = config_from_args(parser.parse_args(argv))
    assert (config.loss_weights.track, config.loss_weights.track_visibility) == (0.1, 0.5)
    assert (config.track_queries, config.track_moving_fraction) == (32, 0.25)
    assert config.mask_strength_sampling == "binary"
    defaults = config_from_args(parser.parse_args(argv[:2]))
    assert defaults.mask_strength_sampling == "fixed"
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:2], "--mask-strength-sampling", "often"])


# ------------------------------------------------------------------------------------------
# --init-weights from a checkpoint without a track head
# ------------------------------------------------------------------------------------------


def test_init_weights_without_a_track_head_loads_the_rest(tmp_path) -> None:
    from page4d_viewer.training.train import (
        build_training_model,
        export_weights,
        load_initial_weights,
        train,
    )

    no_tracker = {**MICRO_MODEL, "has_track_head": False}
    source_config = _micro_config(tmp_path / "source", max_steps=1, model_overrides=no_tracker)
    source, _ = train(source_config)
    weights = export_weights(source, tmp_path / "w.safetensors", source_config, 1)
    model = build_training_model(_micro_config(tmp_path / "next"))
    fresh = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    new_keys = load_initial_weights(model, weights)
    assert new_keys and all(key.startswith("track_head.") for key in new_keys)
    assert set(new_keys) == {key for key in fresh if key.startswith("track_head.")}
    for name, tensor in model.state_dict().items():
        expected = fresh[name] if name in new_keys else source.state_dict()[name]
        torch.testing.assert_close(tensor, expected, rtol=0, atol=0, msg=name)
    # The other way round (a tracker the run's model lacks) is another architecture.
    with_tracker = _micro_config(tmp_path / "with", max_steps=1)
    tracked, _ = train(with_tracker)
    tracked_weights = export_weights(tracked, tmp_path / "t.safetensors", with_tracker, 1)
    from page4d_viewer.training.train import TrainingError

    with pytest.raises(TrainingError, match="another architecture"):
        load_initial_weights(build_training_model(source_config), tracked_weights)


def test_init_weights_from_the_shipped_model_into_the_small_preset(tmp_path) -> None:
    from page4d_viewer.model import load_checkpoint
    from page4d_viewer.settings import default_checkpoint_path
    from page4d_viewer.training.train import TrainConfig, build_training_model, load_initial_weights

    shipped_path = Path(default_checkpoint_path())
    model = build_training_model(TrainConfig(out_dir=tmp_path, preset="small"))
    new_keys = load_initial_weights(model, shipped_path)
    # The small preset has a tracker and a match head; the shipped file has neither.
    assert {key.split(".", 1)[0] for key in new_keys} == {"track_head", "match_head"}
    shipped, _ = load_checkpoint(shipped_path)
    for name, tensor in shipped.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)


def test_held_out_track_errors_score_a_model_against_a_still_guess(tmp_path) -> None:
    from page4d_viewer.errors import Page4DError
    from page4d_viewer.orchestration.held_out import HeldOutClips, held_out_track_errors
    from page4d_viewer.training.train import build_training_model

    model = build_training_model(_micro_config(tmp_path)).eval()
    scores = held_out_track_errors(
        model, HeldOutClips([9_000_100], num_frames=3, stride=2), count=16
    )
    assert set(scores) == {
        "epe",
        "median_epe",
        "still_epe",
        "still_median_epe",
        "within_2px",
        "still_within_2px",
        "visibility_accuracy",
        "visible_share",
    }
    assert scores["still_epe"] > 0 and 0 <= scores["within_2px"] <= 1
    assert 0 < scores["still_median_epe"] <= 2 * scores["still_epe"]
    assert 0 <= scores["visibility_accuracy"] <= 1 and 0 < scores["visible_share"] <= 1
    with pytest.raises(Page4DError, match="training"):
        held_out_track_errors(model, HeldOutClips([5], num_frames=3, stride=2), count=16)
