"""The match loss, the pose loss through the solver, gradient accumulation and their flags."""

from __future__ import annotations

import csv
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from page4d_viewer.model import ModelConfig
from page4d_viewer.model.match_head import (
    MatchFeatures,
    MatchHead,
    assignment_log_probs,
    patch_centres,
)
from page4d_viewer.orchestration.held_out import HeldOutClips, held_out_match_errors
from page4d_viewer.training import matching
from page4d_viewer.training.losses import LossWeights, Targets
from tests.test_train import MICRO_MODEL, _micro_config

MATCHING_MODEL = {
    **MICRO_MODEL,
    "has_match_head": True,
    "match_layer": 1,
    "match_dim": 8,
    "match_fine_dim": 4,
}
MATCHING = dict(
    model_overrides=MATCHING_MODEL,
    loss_weights=LossWeights(match=1.0, pose=1.0),
    pose_loss_start=1,
)


def _assignment(shuffle: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Log assignment of 6 queries whose true patches are known, and those patches."""
    descriptors = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))[0]
    reference = descriptors[:6]
    target_patch = torch.tensor([[2, 0, 1, 5, 3, -1]])  # the last query is unmatched
    target = torch.zeros(6, 8)
    target[target_patch[0, :5]] = reference[:5]
    target[4] = descriptors[7]  # a target patch nobody maps to
    if shuffle:
        target = target[torch.tensor([1, 2, 3, 4, 5, 0])]
    log_probs = assignment_log_probs(reference[None], target[None], 0.05, torch.tensor(0.5 / 0.05))
    return log_probs, target_patch


def test_match_loss_is_near_zero_for_the_true_assignment_and_large_when_shuffled() -> None:
    perfect = matching.coarse_match_loss(*_assignment(shuffle=False))
    shuffled = matching.coarse_match_loss(*_assignment(shuffle=True))
    assert float(perfect) < 0.05
    assert float(shuffled) > 5.0


def test_refine_loss_is_zero_at_the_truth_and_counts_only_visible_queries() -> None:
    truth = torch.tensor([[[3.0, 4.0], [10.0, 10.0]]])
    visible = torch.tensor([[True, False]])
    assert float(matching.refine_loss(truth, truth, visible)) == 0.0
    wrong_hidden = truth.clone()
    wrong_hidden[0, 1] += 50
    assert float(matching.refine_loss(wrong_hidden, truth, visible)) == 0.0
    off = truth + torch.tensor([3.0, 0.0])
    assert float(matching.refine_loss(off, truth, visible)) == pytest.approx(2.5)  # Huber, 1 px


def _rotation_y(angle: float) -> torch.Tensor:
    c, s = np.cos(angle), np.sin(angle)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)


def _path(frames: int = 3, step: float = 0.05) -> torch.Tensor:
    """(S, 3, 4) camera-from-world poses: a yaw and a sideways step per frame."""
    poses = [
        torch.cat((_rotation_y(step * i), torch.tensor([[-step * i], [0.0], [0.0]])), dim=1)
        for i in range(frames)
    ]
    return torch.stack(poses).double()


def test_relative_pose_loss_is_zero_at_the_truth_and_grows_with_the_error() -> None:
    truth = _path()
    weights = LossWeights()
    assert float(matching.relative_pose_loss(truth, truth, weights)) < 1e-5
    errors = []
    for angle in (0.02, 0.1, 0.3):
        wrong = truth.clone()
        wrong[2, :, :3] = _rotation_y(angle) @ truth[2, :, :3]
        errors.append(float(matching.relative_pose_loss(wrong, truth, weights)))
        rotation, _ = matching.relative_rotation_errors(wrong, truth)
        assert float(rotation.max()) == pytest.approx(angle, rel=0.02)  # chordal ~ angle
    assert errors[0] < errors[1] < errors[2]


def _plane_scene(frames: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images-free scene: a fronto-parallel wall at depth 2 seen by a camera that slides
    sideways. Returns depth (S, H, W), intrinsics (S, 3, 3) and the true extrinsics."""
    height, width = 42, 70
    depth = torch.full((frames, height, width), 2.0, dtype=torch.float64)
    intrinsics = torch.tensor([[60.0, 0, 35], [0, 60.0, 21], [0, 0, 1]], dtype=torch.float64)
    extrinsics = torch.stack(
        [
            torch.cat((torch.eye(3), torch.tensor([[-0.1 * i], [0.0], [0.0]])), 1)
            for i in range(frames)
        ]
    ).double()
    return depth, intrinsics.expand(frames, 3, 3), extrinsics


def test_the_pose_loss_reaches_the_depth_through_the_solver() -> None:
    torch.manual_seed(0)
    config = ModelConfig.from_name("tiny", **{**MATCHING_MODEL, "match_fine_dim": 16})
    head = MatchHead(config).double()
    depth, intrinsics, extrinsics = _plane_scene()
    frames, height, width = depth.shape
    grid = (height // 14, width // 14)
    # Every frame has the same descriptors: each patch matches itself with high confidence.
    coarse = F.normalize(torch.randn(grid[0] * grid[1], 8, dtype=torch.float64), dim=-1)
    coarse = coarse.reshape(1, 1, *grid, 8).expand(1, frames, *grid, 8).contiguous()
    fine = torch.randn(1, 1, 16, height, width, dtype=torch.float64).expand(1, frames, -1, -1, -1)
    with torch.no_grad():
        head.fine_log_scale.fill_(np.log(200.0))
    predicted_depth = depth[None, ..., None].clone().requires_grad_(True)
    fov = 2 * torch.atan(torch.tensor([21.0 / 60.0, 35.0 / 60.0], dtype=torch.float64))
    pose_enc = torch.zeros(1, frames, 9, dtype=torch.float64)
    pose_enc[..., 6], pose_enc[..., 7:] = 1.0, fov
    output = SimpleNamespace(
        depth=predicted_depth,
        pose_enc=pose_enc,
        mask_score=None,
        match_features=MatchFeatures(coarse, fine.contiguous()),
    )
    pairs = tuple(matching.training_pairs(frames))
    targets = Targets(
        pose_enc=pose_enc.float(),
        depth=depth[None].float(),
        world_points=torch.zeros(1, frames, height, width, 3),
        valid=torch.ones(1, frames, height, width, dtype=torch.bool),
        extrinsics=extrinsics[None],
        match_pairs=pairs,
    )
    # The matches say "nothing moved", the truth says the camera slid: a real pose error.
    solved = matching.solve_clip_poses(head, output, 0, list(pairs), masked=False)
    torch.testing.assert_close(solved[:, :, :3], torch.eye(3).expand(frames, 3, 3).double())
    loss = matching.pose_loss(head, output, targets, LossWeights(), masked=False)
    assert float(loss.detach()) > 0.01
    loss.backward()
    assert predicted_depth.grad is not None and torch.isfinite(predicted_depth.grad).all()
    assert float(predicted_depth.grad.abs().sum()) > 0


def test_intrinsics_from_the_pose_encoding_match_the_geometry_module() -> None:
    from page4d_viewer import geometry

    pose_enc = np.zeros((2, 9))
    pose_enc[:, 6], pose_enc[:, 7], pose_enc[:, 8] = 1.0, [0.8, 0.9], [1.2, 1.3]
    _, expected = geometry.pose_encoding_to_cameras(pose_enc, (112, 196))
    got = matching.intrinsics_from_pose_encoding(torch.from_numpy(pose_enc), (112, 196))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_batches_carry_exact_matches_of_the_patch_centres(tmp_path) -> None:
    from page4d_viewer.training.data import ClipPool, batch_for_step

    config = _micro_config(tmp_path, **MATCHING)
    sample = batch_for_step(config, 0, ClipPool(config))[0]
    frames = sample.images.shape[0]
    pairs = matching.training_pairs(frames)
    assert sample.match_target_xy.shape == (len(pairs), 6, 2)  # 2 x 3 patch centres
    assert sample.match_visible.shape == (len(pairs), 6) and sample.match_visible.any()
    seen = sample.match_target_xy[sample.match_visible]
    assert (seen >= -0.5).all() and (seen[:, 0] < 41.5).all() and (seen[:, 1] < 27.5).all()
    # Unseen queries stay where they were, so "no motion" is their placeholder.
    centres = patch_centres((2, 3), 14).numpy()
    hidden = ~sample.match_visible
    np.testing.assert_allclose(
        sample.match_target_xy[hidden], np.broadcast_to(centres, hidden.shape + (2,))[hidden]
    )
    assert sample.extrinsics.shape == (frames, 3, 4)
    np.testing.assert_allclose(sample.extrinsics[0], np.eye(3, 4), atol=1e-6)
    plain = batch_for_step(_micro_config(tmp_path), 0, ClipPool(_micro_config(tmp_path)))[0]
    assert plain.match_target_xy is None


def _one_step_state(tmp_path, name: str, **changes) -> dict:
    from page4d_viewer.training.train import CHECKPOINT_NAME, train

    config = _micro_config(tmp_path / name, max_steps=1, learning_rate=0.0, **changes)
    train(config)
    return torch.load(tmp_path / name / CHECKPOINT_NAME, weights_only=True)["optimizer"]


def test_accumulating_two_clips_equals_one_step_on_their_mean(tmp_path) -> None:
    from page4d_viewer.training.data import ClipPool, batch_for_step, samples_to_tensors
    from page4d_viewer.training.losses import page4d_loss
    from page4d_viewer.training.train import build_training_model, step_mask_strength

    changes = dict(MATCHING, pose_loss_start=0, accumulate=2)
    accumulated = _one_step_state(tmp_path, "accumulated", **changes)
    single = _one_step_state(tmp_path, "single", **{**changes, "accumulate": 1})

    config = _micro_config(tmp_path / "manual", max_steps=1, learning_rate=0.0, **changes)
    model = build_training_model(config)
    model.train()
    pool = ClipPool(config)
    alpha = step_mask_strength(config, 0)
    total = torch.zeros(())
    for micro in range(2):
        images, targets = samples_to_tensors(batch_for_step(config, 0, pool, micro), "cpu")
        output = model(images, mask_strength=alpha)
        losses = page4d_loss(
            output, targets, config.loss_weights, match_head=model.match_head, masked=alpha != 0
        )
        total = total + losses["total"] / 2
    total.backward()
    parameters = list(model.parameters())
    torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
    # With learning rate 0 AdamW moves nothing but its first moment: 0.1 * the clipped gradient.
    differs = False
    for index, parameter in enumerate(parameters):
        if parameter.grad is None:  # the unused track head
            assert index not in accumulated["state"]
            continue
        moment = accumulated["state"][index]["exp_avg"]
        torch.testing.assert_close(moment, 0.1 * parameter.grad, rtol=1e-4, atol=1e-9)
        differs |= not torch.allclose(single["state"][index]["exp_avg"], moment)
    assert differs  # the second clip counted


def test_a_matching_run_with_accumulation_resumes_to_the_same_weights(tmp_path) -> None:
    from page4d_viewer.training.train import LOSS_CSV_NAME, train

    changes = dict(MATCHING, accumulate=2, max_steps=3)
    straight, _ = train(_micro_config(tmp_path / "straight", **changes))
    resumed_dir = tmp_path / "resumed"
    train(_micro_config(resumed_dir, **{**changes, "max_steps": 1}))
    resumed, steps = train(_micro_config(resumed_dir, **changes))
    assert steps == 3
    for name, tensor in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    rows = list(csv.DictReader((resumed_dir / LOSS_CSV_NAME).open()))
    assert [row["step"] for row in rows] == ["0", "1", "2"]
    assert float(rows[0]["pose"]) == 0.0  # before pose_loss_start
    assert all(float(row["match"]) > 0 and float(row["skipped"]) == 0 for row in rows)


def test_resuming_with_another_accumulation_is_refused(tmp_path) -> None:
    from page4d_viewer.training.train import TrainingError, train

    train(_micro_config(tmp_path, max_steps=1))
    with pytest.raises(TrainingError, match="accumulate"):
        train(_micro_config(tmp_path, max_steps=2, accumulate=2))


def test_cli_parses_the_matching_options(tmp_path) -> None:
    import argparse

    from page4d_viewer.cli.train import config_from_args, configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    plain = config_from_args(parser.parse_args(["--out", str(tmp_path)]))
    assert (plain.loss_weights.match, plain.loss_weights.pose, plain.accumulate) == (0.0, 0.0, 1)
    assert plain.pose_loss_start == 0
    args = parser.parse_args(
        ["--out", str(tmp_path), "--match-loss-weight", "0.5", "--match-refine-weight", "0.2"]
        + ["--pose-loss-weight", "2", "--pose-loss-start", "300", "--accumulate", "4"]
    )
    config = config_from_args(args)
    assert dataclasses.astuple(config.loss_weights)[-3:] == (0.5, 0.2, 2.0)
    assert (config.accumulate, config.pose_loss_start) == (4, 300)
    with pytest.raises(Exception, match="accumulate"):
        _micro_config(tmp_path, accumulate=0)


def test_held_out_match_errors_score_the_head_against_a_still_guess(tmp_path) -> None:
    from page4d_viewer.errors import Page4DError
    from page4d_viewer.training.train import build_training_model

    model = build_training_model(_micro_config(tmp_path, **MATCHING)).eval()
    scores = held_out_match_errors(model, HeldOutClips([9_000_100], num_frames=3, stride=2))
    assert set(scores) == {
        "median_px",
        "mean_px",
        "within_2px",
        "still_median_px",
        "still_mean_px",
        "still_within_2px",
        "coarse_accuracy",
        "matched_share",
        "false_match_share",
    }
    assert all(0 <= scores[name] <= 1 for name in ("within_2px", "coarse_accuracy"))
    assert scores["still_median_px"] >= 0
    with pytest.raises(Page4DError, match="training"):
        held_out_match_errors(model, HeldOutClips([5], num_frames=3))
    plain = build_training_model(_micro_config(tmp_path)).eval()
    with pytest.raises(Page4DError, match="no match head"):
        held_out_match_errors(plain, HeldOutClips([9_000_100], num_frames=3))


def test_export_can_leave_out_an_untrained_head(tmp_path) -> None:
    from page4d_viewer.model import load_checkpoint
    from page4d_viewer.training.train import TrainingError, export_weights, train

    config = _micro_config(tmp_path, **{**MATCHING, "max_steps": 1})
    model, steps = train(config)
    assert model.track_available and model.match_available
    path = export_weights(model, tmp_path / "w.safetensors", config, steps, ("track_head",))
    loaded, info = load_checkpoint(path)
    assert not info.track_available and info.match_available
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    with pytest.raises(TrainingError, match="export-without"):
        export_weights(model, tmp_path / "x.safetensors", config, steps, ("camera_head",))
