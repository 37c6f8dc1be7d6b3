"""The pose solver (model/pose_solver.py): Procrustes, robustness, chaining, and the oracle
checks of the geometric poses (ground-truth depth and matches give the true cameras; movers
spoil an unweighted solve and the true static mask repairs it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from page4d_viewer import geometry
from page4d_viewer.evaluation.trajectory import path_length, trajectory_errors
from page4d_viewer.model.pose_solver import (
    IRLS_ITERATIONS,
    Matches,
    huber_weights,
    keyframe_pairs,
    refine_by_reprojection,
    robust_procrustes,
    sample_depth,
    sample_maps,
    solve_poses,
    weighted_procrustes,
)
from page4d_viewer.sources.synthetic import ground_truth_matches, make_clip


def _random_rigid(generator: torch.Generator, batch: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    quaternion = torch.randn(*batch, 4, generator=generator, dtype=torch.float64)
    R = torch.as_tensor(geometry.quaternion_to_rotation(quaternion.numpy()))
    t = torch.randn(*batch, 3, generator=generator, dtype=torch.float64)
    return R, t


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_weighted_procrustes_recovers_a_rigid_motion(batch):
    generator = torch.Generator().manual_seed(0)
    R, t = _random_rigid(generator, batch)
    source = torch.randn(*batch, 40, 3, generator=generator, dtype=torch.float64)
    target = (R[..., None, :, :] @ source[..., None])[..., 0] + t[..., None, :]
    weight = torch.rand(*batch, 40, generator=generator, dtype=torch.float64) + 0.1
    R_found, t_found = weighted_procrustes(source, target, weight)
    assert R_found.shape == (*batch, 3, 3) and t_found.shape == (*batch, 3)
    torch.testing.assert_close(R_found, R, atol=1e-9, rtol=0)
    torch.testing.assert_close(t_found, t, atol=1e-9, rtol=0)


def test_weighted_procrustes_never_returns_a_reflection():
    generator = torch.Generator().manual_seed(1)
    source = torch.randn(30, 3, generator=generator, dtype=torch.float64)
    mirrored = source * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    R, _ = weighted_procrustes(source, mirrored, torch.ones(30, dtype=torch.float64))
    assert torch.linalg.det(R).item() == pytest.approx(1.0)


def test_zero_weights_ignore_their_points():
    generator = torch.Generator().manual_seed(2)
    R, t = _random_rigid(generator, ())
    source = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    target = source @ R.T + t
    target[:5] += 10.0  # gross errors, weighted out
    weight = torch.ones(20, dtype=torch.float64)
    weight[:5] = 0.0
    R_found, t_found = weighted_procrustes(source, target, weight)
    torch.testing.assert_close(R_found, R, atol=1e-9, rtol=0)
    torch.testing.assert_close(t_found, t, atol=1e-9, rtol=0)


def test_huber_irls_shrugs_off_outliers_that_spoil_a_plain_solve():
    generator = torch.Generator().manual_seed(3)
    R, t = _random_rigid(generator, ())
    source = torch.randn(200, 3, generator=generator, dtype=torch.float64)
    source[:, 2] += 6.0
    target = source @ R.T + t
    target[:, 2] = target[:, 2].abs() + 1.0  # keep the target in front of the camera
    source = (target - t) @ R  # consistent again after the shift
    outliers = torch.arange(200) < 40
    target_noisy = target.clone()
    target_noisy[outliers] += 2.0 * torch.randn(40, 3, generator=generator, dtype=torch.float64)
    weight = torch.ones(200, dtype=torch.float64)
    R_plain, _ = weighted_procrustes(source, target_noisy, weight)
    R_robust, _, final = robust_procrustes(source, target_noisy, weight, iterations=10)
    plain_error = torch.linalg.matrix_norm(R_plain - R).item()
    robust_error = torch.linalg.matrix_norm(R_robust - R).item()
    assert robust_error < 0.1 * plain_error
    assert final[outliers].mean() < 0.5 * final[~outliers].mean()


def test_reprojection_refinement_finds_the_camera_from_a_rough_start():
    generator = torch.Generator().manual_seed(5)
    R, t = _random_rigid(generator, ())
    K = torch.tensor([[150.0, 0, 98], [0, 150, 56], [0, 0, 1]], dtype=torch.float64)
    camera = torch.rand(300, 3, generator=generator, dtype=torch.float64) * 2 - 1
    camera[:, 2] += 5.0
    world = (camera - t) @ R  # the points the true camera sees at `camera`
    pixels = (camera @ K.T)[:, :2] / camera[:, 2:]
    rough = torch.linalg.matrix_exp(
        torch.tensor([[0, -0.05, 0.02], [0.05, 0, -0.03], [-0.02, 0.03, 0]], dtype=torch.float64)
    )
    weight = torch.ones(300, dtype=torch.float64)
    R_found, t_found, final = refine_by_reprojection(rough @ R, t + 0.2, world, pixels, K, weight)
    torch.testing.assert_close(R_found, R, atol=1e-8, rtol=0)
    torch.testing.assert_close(t_found, t, atol=1e-8, rtol=0)
    assert final.min() == 1.0

    # A tenth of the matches 40 px off: the Huber weights keep them from pulling the pose.
    wrong = pixels.clone()
    wrong[:30] += 40.0
    robust, _, final = refine_by_reprojection(rough @ R, t + 0.2, world, wrong, K, weight)
    plain, _, _ = refine_by_reprojection(rough @ R, t + 0.2, world, wrong, K, weight, delta_px=1e6)
    robust_error = torch.linalg.matrix_norm(robust - R).item()
    assert robust_error < 0.2 * torch.linalg.matrix_norm(plain - R).item()
    assert final[:30].max() < 0.1 and final[30:].min() == 1.0


def test_huber_weights_are_one_inside_delta_and_fall_as_one_over_r():
    residual = torch.tensor([0.0, 0.01, 0.05, 0.1, 0.5])
    expected = torch.tensor([1.0, 1.0, 1.0, 0.5, 0.1])
    torch.testing.assert_close(huber_weights(residual, delta=0.05), expected)


def test_solver_gradients_are_finite():
    generator = torch.Generator().manual_seed(4)
    source = torch.randn(25, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    target = source.detach() + torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64)
    R, t = weighted_procrustes(source, target, torch.ones(25, dtype=torch.float64))
    (R.sum() + t.sum()).backward()
    assert source.grad is not None and torch.isfinite(source.grad).all()


def test_sample_maps_hits_pixel_centres_exactly():
    maps = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4)
    xy = torch.tensor([[[0.0, 0.0], [3.0, 2.0], [1.0, 1.0]]], dtype=torch.float64)
    values = sample_maps(maps, torch.tensor([1]), xy)
    torch.testing.assert_close(values, torch.tensor([[12.0, 23.0, 17.0]], dtype=torch.float64))
    halfway = sample_maps(maps, torch.tensor([0]), torch.tensor([[[0.5, 0.0]]]))
    assert halfway.item() == pytest.approx(0.5)


def test_sample_depth_is_exact_on_a_plane_and_flags_edges():
    # A plane z = 1 / (a u + b v + c): inverse depth is affine in the pixel coordinates.
    rows, columns = np.mgrid[0:6, 0:8].astype(np.float64)
    plane = 1.0 / (0.02 * columns + 0.03 * rows + 0.5)
    depth = torch.as_tensor(np.stack([plane, plane]))
    depth[1, :, 4:] = 9.0  # a depth edge between columns 3 and 4 of frame 1
    xy = torch.tensor([[[2.5, 1.5], [3.5, 2.0]]], dtype=torch.float64)
    values, smooth = sample_depth(depth, torch.tensor([0]), xy)
    expected = 1.0 / (0.02 * xy[0, :, 0] + 0.03 * xy[0, :, 1] + 0.5)
    torch.testing.assert_close(values[0], expected)
    assert smooth.all()
    _, smooth_edge = sample_depth(depth, torch.tensor([1]), xy)
    assert smooth_edge.tolist() == [[True, False]]


def test_keyframe_pairs_chain_every_frame_to_earlier_ones():
    pairs = keyframe_pairs(6, offsets=(1, 2, 4))
    assert pairs == [
        (0, 1),
        (1, 2),
        (0, 2),
        (2, 3),
        (1, 3),
        (3, 4),
        (2, 4),
        (0, 4),
        (4, 5),
        (3, 5),
        (1, 5),
    ]
    assert all(reference < target for reference, target in pairs)
    assert {target for _, target in pairs} == set(range(1, 6))


def test_matches_check_their_shapes():
    with pytest.raises(ValueError, match="target_xy"):
        Matches(
            reference=torch.zeros(2, dtype=torch.int64),
            target=torch.ones(2, dtype=torch.int64),
            reference_xy=torch.zeros(2, 5, 2),
            target_xy=torch.zeros(2, 4, 2),
            weight=torch.ones(2, 5),
        )


def test_a_frame_without_matches_keeps_the_previous_pose():
    depth = torch.ones(3, 4, 4, dtype=torch.float64)
    intrinsics = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1)
    grid = torch.tensor([[x, y] for x in range(4) for y in range(4)], dtype=torch.float64)
    matches = Matches(
        reference=torch.tensor([0, 1]),
        target=torch.tensor([1, 2]),
        reference_xy=grid.repeat(2, 1, 1),
        target_xy=grid.repeat(2, 1, 1),
        weight=torch.tensor([[1.0] * 16, [0.0] * 16], dtype=torch.float64),
    )
    solved = solve_poses(depth, intrinsics, matches)
    assert solved.solved.tolist() == [True, True, False]
    torch.testing.assert_close(solved.extrinsics[2], solved.extrinsics[1])


# ---------------------------------------------------------------------------------------
# Oracle: ground-truth depth and ground-truth matches
# ---------------------------------------------------------------------------------------


def _relative_to_first(extrinsics: np.ndarray) -> np.ndarray:
    """(S, 3, 4) cameras re-expressed in the first camera's frame (the solver's world)."""
    T_cam_world0 = geometry.compose_rigid(extrinsics, geometry.invert_rigid(extrinsics[0]))
    return T_cam_world0[:, :3]


def _solve_from_truth(clip, point_weight=None, iterations=IRLS_ITERATIONS):
    pairs = keyframe_pairs(clip.num_frames)
    matches = Matches.from_arrays(*ground_truth_matches(clip, pairs, step=8))
    solved = solve_poses(
        torch.as_tensor(clip.depth, dtype=torch.float64),
        torch.as_tensor(clip.intrinsics),
        matches,
        None if point_weight is None else torch.as_tensor(point_weight, dtype=torch.float64),
        iterations=iterations,
    )
    assert solved.solved.all()
    return solved.extrinsics.numpy()


def _path_ratio_and_ate(extrinsics: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    length = path_length(truth)
    return path_length(extrinsics) / length, trajectory_errors(extrinsics, truth).ate / length


@pytest.mark.parametrize("seed,camera", [(3, "walk"), (11, "orbit"), (21, "handheld"), (30, None)])
def test_ground_truth_depth_and_matches_give_the_true_cameras(seed, camera):
    clip = make_clip(
        seed,
        num_frames=8,
        width=196,
        height=112,
        fps=6.0,
        camera=camera,
        num_movers=0,
        person=False,
    )
    truth = _relative_to_first(clip.extrinsics)
    solved = _solve_from_truth(clip)
    path_ratio, ate = _path_ratio_and_ate(solved, truth)
    assert path_ratio == pytest.approx(1.0, abs=1e-3)
    assert ate <= 1e-3


def test_movers_spoil_an_unweighted_solve_and_the_true_static_mask_repairs_it():
    clip = make_clip(
        5, num_frames=8, width=196, height=112, fps=6.0, movers="large", num_movers=3, person=True
    )
    assert clip.dynamic_mask.mean() >= 0.08  # a clip with large movers
    truth = _relative_to_first(clip.extrinsics)
    # Plain least squares (no reweighting): the weights alone decide what the pose sees.
    _, ate_unweighted = _path_ratio_and_ate(_solve_from_truth(clip, iterations=0), truth)
    static = (~clip.dynamic_mask).astype(np.float64)
    path_ratio, ate_masked = _path_ratio_and_ate(
        _solve_from_truth(clip, static, iterations=0), truth
    )
    assert ate_unweighted > 5e-3  # the movers pull the cameras off
    assert ate_masked <= 1e-3  # with them weighted out, the truth again
    assert path_ratio == pytest.approx(1.0, abs=2e-3)


def test_non_finite_depth_or_intrinsics_never_give_non_finite_cameras():
    clip = make_clip(3, num_frames=4, width=98, height=56, num_movers=0, person=False)
    matches = Matches.from_arrays(*ground_truth_matches(clip, keyframe_pairs(4), step=4))
    depth = torch.as_tensor(clip.depth, dtype=torch.float64)
    depth[1, :20] = float("nan")  # part of a frame: still solvable from the rest
    intrinsics = torch.as_tensor(clip.intrinsics).clone()
    intrinsics[3, 0, 0] = float("inf")  # a frame whose camera cannot be lifted at all
    solved = solve_poses(depth, intrinsics, matches, torch.full_like(depth, float("nan")))
    assert torch.isfinite(solved.extrinsics).all()
    assert solved.solved.tolist() == [True, False, False, False]  # NaN weights: no support
    solved = solve_poses(depth, intrinsics, matches)
    assert torch.isfinite(solved.extrinsics).all()
    assert solved.solved[:3].tolist() == [True, True, True] and not solved.solved[3]
