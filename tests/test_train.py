"""Losses, the mask schedule, and the training loop (micro config, resume determinism)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FEW_LAYERS, few_layer_training

from page4d_viewer.training import losses
from page4d_viewer.training.losses import LossWeights, Targets

# ------------------------------------------------------------------------------------------
# Mask schedule
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1.0),
        (100, 1.0),  # hold_start itself is still full strength
        (150, 0.5 * (1 + math.cos(math.pi * 0.5))),
        (125, 0.5 * (1 + math.cos(math.pi * 0.25))),
        (200, 0.0),
        (10_000, 0.0),
    ],
)
def test_mask_alpha_follows_the_cosine_formula(step: int, expected: float) -> None:
    assert losses.mask_alpha(step, 100, 200) == pytest.approx(expected)
    assert losses.mask_strength(step, 100, 200) == pytest.approx(64.0 * expected)


def test_mask_alpha_is_monotone_and_a_step_cut_when_start_equals_end() -> None:
    values = [losses.mask_alpha(step, 10, 50) for step in range(60)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert losses.mask_alpha(10, 10, 10) == 1.0
    assert losses.mask_alpha(11, 10, 10) == 0.0


# ------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------


def _perfect_output(targets: Targets, steps: int = 4) -> SimpleNamespace:
    ones = torch.ones_like(targets.depth)
    return SimpleNamespace(
        pose_enc_list=[targets.pose_enc.clone() for _ in range(steps)],
        depth=targets.depth.unsqueeze(-1).clone(),
        depth_conf=ones.clone(),
        world_points=targets.world_points.clone(),
        world_points_conf=ones.clone(),
        mask_score=targets.static_fraction - 0.5,
    )


def _random_targets(seed: int = 0) -> Targets:
    generator = torch.Generator().manual_seed(seed)
    batch, frames, height, width = 2, 3, 28, 42
    valid = torch.rand(batch, frames, height, width, generator=generator) > 0.1
    dynamic = torch.zeros(batch, frames, height, width, dtype=torch.bool)
    dynamic[..., :14, :14] = True
    return Targets(
        pose_enc=torch.randn(batch, frames, 9, generator=generator),
        depth=torch.rand(batch, frames, height, width, generator=generator) + 0.5,
        world_points=torch.randn(batch, frames, height, width, 3, generator=generator),
        valid=valid,
        static_fraction=losses.static_fraction_per_patch(dynamic, 14),
    )


def test_losses_are_zero_for_perfect_predictions() -> None:
    targets = _random_targets()
    result = losses.page4d_loss(_perfect_output(targets), targets, LossWeights())
    for name in ("camera", "depth", "points", "mask", "total"):
        assert float(result[name]) == pytest.approx(0.0, abs=1e-5), name


@pytest.mark.parametrize("field", ["pose", "depth", "points", "mask"])
def test_each_loss_is_positive_when_its_prediction_is_wrong(field: str) -> None:
    targets = _random_targets()
    output = _perfect_output(targets)
    if field == "pose":
        output.pose_enc_list[-1] = output.pose_enc_list[-1] + 0.1
        name = "camera"
    elif field == "depth":
        output.depth = output.depth * 1.2
        name = "depth"
    elif field == "points":
        output.world_points = output.world_points + 0.05
        name = "points"
    else:
        output.mask_score = torch.zeros_like(output.mask_score)
        name = "mask"
    result = losses.page4d_loss(output, targets, LossWeights())
    assert float(result[name]) > 1e-4
    assert float(result["total"]) > 1e-4


def test_later_camera_refinement_steps_weigh_more() -> None:
    targets = _random_targets()
    early, late = _perfect_output(targets), _perfect_output(targets)
    early.pose_enc_list[0] = early.pose_enc_list[0] + 0.2
    late.pose_enc_list[-1] = late.pose_enc_list[-1] + 0.2
    weights = LossWeights()
    early_loss = losses.camera_loss(early.pose_enc_list, targets.pose_enc, weights)
    late_loss = losses.camera_loss(late.pose_enc_list, targets.pose_enc, weights)
    assert float(late_loss) == pytest.approx(float(early_loss) / weights.camera_step_gamma**3)


def test_confidence_term_rewards_low_confidence_on_large_errors() -> None:
    targets = _random_targets()
    pred = targets.depth.unsqueeze(-1) + 1.0
    weights = LossWeights()
    sure = losses.confidence_regression_loss(
        pred,
        torch.full_like(targets.depth, 5.0),
        targets.depth.unsqueeze(-1),
        targets.valid,
        weights,
    )
    unsure = losses.confidence_regression_loss(
        pred, torch.ones_like(targets.depth), targets.depth.unsqueeze(-1), targets.valid, weights
    )
    assert float(unsure) < float(sure)


def test_invalid_pixels_do_not_count() -> None:
    targets = _random_targets()
    output = _perfect_output(targets)
    output.depth = torch.where(targets.valid.unsqueeze(-1), output.depth, output.depth + 100.0)
    result = losses.page4d_loss(output, targets, LossWeights())
    assert float(result["depth"]) == pytest.approx(0.0, abs=1e-5)


def test_scene_scale_is_the_mean_distance_of_valid_points() -> None:
    points = torch.zeros(1, 1, 1, 3, 3)
    points[0, 0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # distance 5
    points[0, 0, 0, 1] = torch.tensor([0.0, 0.0, 1.0])  # distance 1
    points[0, 0, 0, 2] = torch.tensor([100.0, 0.0, 0.0])  # invalid
    valid = torch.tensor([[[[True, True, False]]]])
    scale, normalised = losses.normalize_scene_scale(points, valid)
    assert float(scale[0]) == pytest.approx(3.0)
    assert torch.allclose(normalised[0, 0, 0, 0], torch.tensor([1.0, 4.0 / 3.0, 0.0]))


def test_static_fraction_per_patch_counts_static_pixels() -> None:
    dynamic = torch.zeros(1, 1, 14, 28, dtype=torch.bool)
    dynamic[0, 0, :7, :14] = True  # half of the first patch moves
    fraction = losses.static_fraction_per_patch(dynamic, 14)
    assert fraction.shape == (1, 1, 1, 2)
    assert fraction[0, 0, 0].tolist() == pytest.approx([0.5, 1.0])


def test_losses_backpropagate_into_predictions() -> None:
    targets = _random_targets()
    output = _perfect_output(targets)
    output.depth = (output.depth + 0.3).requires_grad_(True)
    result = losses.page4d_loss(output, targets, LossWeights())
    result["total"].backward()
    assert output.depth.grad is not None and float(output.depth.grad.abs().sum()) > 0
    assert np.isfinite(float(result["total"].detach()))


# ------------------------------------------------------------------------------------------
# Data and the training loop (a micro network so that a step takes well under a second)
# ------------------------------------------------------------------------------------------

# The network these tests train (test_train_matching adds a match head to it).
MICRO_MODEL = FEW_LAYERS


def _micro_config(out_dir, **changes):
    """`few_layer_training` over the tiny preset, warming up for 5 steps, checkpointing and
    logging every step; `changes`: other TrainConfig fields."""
    tiny = dict(preset="tiny", warmup_steps=5, checkpoint_every=1, log_every=1)
    return few_layer_training(out_dir, **{**tiny, **changes})


def test_clip_to_sample_puts_the_first_camera_at_the_origin_with_unit_mean_distance() -> None:
    from page4d_viewer import geometry
    from page4d_viewer.sources import synthetic
    from page4d_viewer.training.data import clip_to_sample

    clip = synthetic.make_clip(123, num_frames=4, width=42, height=28)
    sample = clip_to_sample(clip, [2, 0, 3])
    assert sample.images.shape == (3, 3, 28, 42) and sample.images.max() <= 1.0
    extrinsics, intrinsics = geometry.pose_encoding_to_cameras(sample.pose_enc, (28, 42))
    np.testing.assert_allclose(extrinsics[0], np.eye(3, 4), atol=1e-5)
    distances = np.linalg.norm(sample.world_points[sample.valid], axis=-1)
    assert distances.mean() == pytest.approx(1.0, rel=1e-4)
    # The normalised points seen by camera i project to depth_i: targets agree with each other.
    camera_points = geometry.transform_points(extrinsics[1], sample.world_points[1].reshape(-1, 3))
    np.testing.assert_allclose(camera_points[:, 2], sample.depth[1].ravel(), rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(sample.dynamic_mask, clip.dynamic_mask[[2, 0, 3]])


def test_batches_are_a_function_of_seed_and_step(tmp_path) -> None:
    from page4d_viewer.training.data import MAX_TRAIN_SEED, ClipPool, batch_for_step, clip_seed

    config = _micro_config(tmp_path)
    pool = ClipPool(config)
    first = batch_for_step(config, 3, pool)[0]
    again = batch_for_step(config, 3, ClipPool(config))[0]
    np.testing.assert_array_equal(first.images, again.images)
    seeds = {clip_seed(config, step, slot) for step in range(0, 5000, 97) for slot in range(4)}
    assert max(seeds) < MAX_TRAIN_SEED and len(seeds) > 4


def test_training_runs_and_resumes_to_the_same_weights(tmp_path) -> None:
    from page4d_viewer.training.train import LOSS_CSV_NAME, train

    straight, straight_steps = train(_micro_config(tmp_path / "straight"))
    resumed_dir = tmp_path / "resumed"
    _, first_steps = train(_micro_config(resumed_dir, max_steps=1))
    resumed, resumed_steps = train(_micro_config(resumed_dir))
    assert (straight_steps, first_steps, resumed_steps) == (2, 1, 2)
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    rows = list(csv.DictReader((resumed_dir / LOSS_CSV_NAME).open()))
    straight_rows = list(csv.DictReader((tmp_path / "straight" / LOSS_CSV_NAME).open()))
    assert [row["step"] for row in rows] == ["0", "1"]
    assert [row["total"] for row in rows] == [row["total"] for row in straight_rows]
    assert all(float(row["total"]) > 0 for row in rows)


def test_resuming_with_another_model_is_refused(tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError, train

    train(_micro_config(tmp_path, max_steps=1))
    other = {**MICRO_MODEL, "embed_dim": 48, "num_heads": 2}
    with pytest.raises(TrainingError, match="model_overrides"):
        train(_micro_config(tmp_path, model_overrides=other))


def test_exported_weights_load_as_a_checkpoint(tmp_path) -> None:
    from page4d_viewer.model import load_checkpoint
    from page4d_viewer.training.train import export_weights, train

    config = _micro_config(tmp_path, max_steps=1)
    model, steps = train(config)
    path = export_weights(model, tmp_path / "w.safetensors", config, steps)
    loaded, info = load_checkpoint(path)
    assert info.config.embed_dim == MICRO_MODEL["embed_dim"]
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)


def test_bad_training_options_are_one_line_errors(tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError

    with pytest.raises(TrainingError, match="multiples of 14"):
        _micro_config(tmp_path, image_hw=(30, 42))
    with pytest.raises(TrainingError, match="source frames"):
        _micro_config(tmp_path, max_frames=3, max_stride=3, source_frames=4)


def test_cli_parses_train_options(tmp_path) -> None:
    import argparse

    from page4d_viewer.cli.train import config_from_args, configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args(
        [
            "--out",
            str(tmp_path),
            "--max-steps",
            "7",
            "--image-size",
            "56",
            "98",
            "--mask-loss-weight",
            "0",
        ]
    )
    config = config_from_args(args)
    assert config.max_steps == 7 and config.image_hw == (56, 98)
    assert config.loss_weights.mask == 0.0 and config.out_dir == tmp_path


def test_a_fresh_training_model_starts_with_a_live_field_of_view(tmp_path) -> None:
    from page4d_viewer.training.train import build_training_model

    model = build_training_model(_micro_config(tmp_path))
    with torch.no_grad():
        output = model(torch.rand(1, 3, 3, 28, 42), mask_strength=64.0)
    field_of_view = output.pose_enc[..., 7:]
    # Positive (so the ReLU passes gradients) and near the 1 rad the head is initialised to.
    assert bool((field_of_view > 0.5).all()) and bool((field_of_view < 1.5).all())


def test_camera_loss_slope_is_one_beyond_the_huber_delta() -> None:
    target = torch.zeros(1, 1, 9)
    pred = torch.full((1, 1, 9), 0.3, requires_grad=True)
    weights = LossWeights(camera_step_gamma=1.0, translation=1.0, rotation=1.0, field_of_view=1.0)
    losses.camera_loss([pred], target, weights).backward()
    # Each part is a mean over its components: slope 1/3, 1/4 and 1/2 per component.
    expected = torch.tensor([1 / 3] * 3 + [1 / 4] * 4 + [1 / 2] * 2)
    torch.testing.assert_close(pred.grad[0, 0], expected)


def test_init_weights_starts_a_fresh_run_from_exported_weights(tmp_path) -> None:
    from page4d_viewer.training.train import export_weights, train

    source_config = _micro_config(tmp_path / "source", max_steps=1)
    source, _ = train(source_config)
    weights = export_weights(source, tmp_path / "w.safetensors", source_config, 1)
    # Learning rate 0: the step changes nothing, so the result is the run's starting point.
    frozen = dict(max_steps=1, learning_rate=0.0, init_weights=weights)
    started, steps = train(_micro_config(tmp_path / "next", **frozen))
    assert steps == 1  # step 0 of a new run, not the source's step count
    for name, tensor in source.state_dict().items():
        torch.testing.assert_close(started.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    fresh, _ = train(_micro_config(tmp_path / "fresh", max_steps=1, learning_rate=0.0))
    name = "camera_head.pose_branch.fc2.weight"
    assert not torch.equal(fresh.state_dict()[name], source.state_dict()[name])
    # With OUT/last.pt present the run resumes from it and --init-weights is not applied again.
    _, resumed_steps = train(_micro_config(tmp_path / "next", max_steps=2, init_weights=weights))
    assert resumed_steps == 2


def test_init_weights_with_another_architecture_is_refused(tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError, export_weights, train

    other = {**MICRO_MODEL, "embed_dim": 48, "num_heads": 2}
    source_config = _micro_config(tmp_path / "source", max_steps=1, model_overrides=other)
    source, _ = train(source_config)
    weights = export_weights(source, tmp_path / "w.safetensors", source_config, 1)
    with pytest.raises(TrainingError, match="another architecture"):
        train(_micro_config(tmp_path / "next", init_weights=weights))
    with pytest.raises(TrainingError, match="init-weights"):
        train(_micro_config(tmp_path / "missing", init_weights=tmp_path / "nope.safetensors"))


def test_cli_parses_init_weights_and_camera_loss_weight(tmp_path) -> None:
    import argparse

    from page4d_viewer.cli.train import config_from_args, configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    argv = ["--out", str(tmp_path), "--init-weights", "w.safetensors"]
    config = config_from_args(parser.parse_args([*argv, "--camera-loss-weight", "20"]))
    assert config.init_weights == Path("w.safetensors") and config.loss_weights.camera == 20.0
    assert '"init_weights": "w.safetensors"' in config.to_json()
    assert config_from_args(parser.parse_args(argv[:2])).init_weights is None
