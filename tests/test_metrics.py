"""Trajectory (evo), depth and mask metrics on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.depth import depth_errors
from page4d_viewer.evaluation.errors import DegenerateTrajectoryError, MetricsError
from page4d_viewer.evaluation.masks import average_precision, mask_average_precision, mask_iou
from page4d_viewer.evaluation.report import evaluate_reconstruction
from page4d_viewer.evaluation.trajectory import trajectory_errors
from page4d_viewer.result.reconstruction import Cameras, Metadata, Reconstruction
from page4d_viewer.sources.groundtruth import GroundTruth


def rotation_about(axis: str, degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    rotation = np.eye(3)
    rotation[i, i], rotation[i, j], rotation[j, i], rotation[j, j] = c, -s, s, c
    return rotation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def extrinsics_from_poses(rotations_world_cam: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(S, 3, 4) camera-from-world from camera-to-world rotations and centres."""
    rotation_cam_world = np.swapaxes(rotations_world_cam, 1, 2)
    translation = -(rotation_cam_world @ centers[..., None])
    return np.concatenate([rotation_cam_world, translation], axis=-1)


def circle_trajectory(frames: int = 12, radius: float = 2.0) -> np.ndarray:
    """(S, 3, 4) cameras on a circle in the xz-plane with a little height change."""
    phase = np.linspace(0, 1.5 * math.pi, frames)
    centers = np.stack([radius * np.cos(phase), 0.1 * phase, radius * np.sin(phase)], axis=-1)
    rotations = np.stack([rotation_about("y", math.degrees(-p)) for p in phase])
    return extrinsics_from_poses(rotations, centers)


def similarity_of_world(
    extrinsics: np.ndarray, scale: float, rotation: np.ndarray, translation: np.ndarray
) -> np.ndarray:
    """The same cameras in a world moved by X' = s R X + t (scene scaled by s)."""
    rotation_world_cam = np.swapaxes(extrinsics[:, :, :3], 1, 2)
    centers = -(rotation_world_cam @ extrinsics[:, :, 3:])[..., 0]
    new_centers = scale * centers @ rotation.T + translation
    return extrinsics_from_poses(rotation @ rotation_world_cam, new_centers)


def numpy_umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Independent Sim(3) least squares (Umeyama 1991): target ~ s R source + t."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_c, target_c = source - source_mean, target - target_mean
    u, d, vt = np.linalg.svd(target_c.T @ source_c / len(source))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / np.mean(np.sum(source_c**2, axis=1))
    return scale, rotation, target_mean - scale * rotation @ source_mean


def centers_of(extrinsics: np.ndarray) -> np.ndarray:
    return -(np.swapaxes(extrinsics[:, :, :3], 1, 2) @ extrinsics[:, :, 3:])[..., 0]


# ------------------------------------------------------------------------------ trajectory


def test_trajectory_equal_up_to_similarity_has_zero_error_and_recovers_it():
    gt = circle_trajectory()
    rotation = random_rotation(np.random.default_rng(0))
    pred = similarity_of_world(gt, 0.25, rotation, np.array([3.0, -1.0, 0.5]))
    errors = trajectory_errors(pred, gt)
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rpe_trans == pytest.approx(0, abs=1e-9)
    assert errors.rpe_rot == pytest.approx(0, abs=1e-6)
    assert errors.scale == pytest.approx(4.0)
    np.testing.assert_allclose(errors.rotation, rotation.T, atol=1e-9)
    np.testing.assert_allclose(errors.aligned_centers, centers_of(gt), atol=1e-9)
    np.testing.assert_allclose(errors.gt_centers, centers_of(gt), atol=1e-12)
    assert errors.ate_per_frame.shape == (12,)
    assert errors.rpe_trans_per_frame.shape == (11,)
    assert errors.rpe_rot_per_frame.shape == (11,)


def test_known_per_frame_offset_gives_the_analytic_ate():
    # Square in z = 0; offsets +-d along z are uncorrelated with x and y, so the fit keeps
    # R = I and t = 0 but shrinks the scale to s = 2 / (2 + d^2).
    corners = np.array([[1.0, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]])
    d = 0.3
    offsets = np.array([d, -d, d, -d])[:, None] * np.array([0.0, 0.0, 1.0])
    identity = np.repeat(np.eye(3)[None], 4, axis=0)
    gt = extrinsics_from_poses(identity, corners)
    pred = extrinsics_from_poses(identity, corners + offsets)
    errors = trajectory_errors(pred, gt)
    scale = 2 / (2 + d**2)
    expected_per_frame = math.sqrt(2 * (scale - 1) ** 2 + (scale * d) ** 2)
    assert errors.scale == pytest.approx(scale)
    np.testing.assert_allclose(errors.rotation, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(errors.ate_per_frame, expected_per_frame, rtol=1e-9)
    assert errors.ate == pytest.approx(expected_per_frame)


def test_known_relative_rotation_error_gives_known_rpe():
    # Same centres as GT, but the predicted camera spins an extra 3 degrees per frame about
    # y (the circle's axis): every relative rotation is off by 3 degrees, and the relative
    # translation of pair i is turned by 3 i degrees about y: its error is
    # 2 |dc_xz| sin(3 i / 2 degrees), dc_xz the step's part perpendicular to y.
    gt = circle_trajectory(frames=8)
    rotation_world_cam = np.swapaxes(gt[:, :, :3], 1, 2)
    centers = centers_of(gt)
    drift = np.stack([rotation_about("y", 3.0 * i) for i in range(8)])
    pred = extrinsics_from_poses(rotation_world_cam @ drift, centers)
    errors = trajectory_errors(pred, gt)
    assert errors.ate == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(errors.rpe_rot_per_frame, 3.0, rtol=1e-9)
    assert errors.rpe_rot == pytest.approx(3.0)
    step = np.linalg.norm(np.diff(centers, axis=0)[:, [0, 2]], axis=1)
    expected = 2 * step * np.sin(np.radians(3.0 * np.arange(7)) / 2)
    np.testing.assert_allclose(errors.rpe_trans_per_frame, expected, atol=1e-9)


def test_evo_ate_matches_an_independent_numpy_umeyama():
    rng = np.random.default_rng(7)
    gt = circle_trajectory(frames=20)
    pred = similarity_of_world(gt, 1.7, random_rotation(rng), rng.normal(size=3))
    rotations = np.swapaxes(pred[:, :, :3], 1, 2)
    noisy = extrinsics_from_poses(rotations, centers_of(pred) + 0.05 * rng.normal(size=(20, 3)))
    errors = trajectory_errors(noisy, gt)

    scale, rotation, translation = numpy_umeyama(centers_of(noisy), centers_of(gt))
    aligned = scale * centers_of(noisy) @ rotation.T + translation
    per_frame = np.linalg.norm(aligned - centers_of(gt), axis=1)
    assert errors.ate > 0.01
    assert errors.ate == pytest.approx(float(np.sqrt(np.mean(per_frame**2))), rel=1e-9)
    np.testing.assert_allclose(errors.ate_per_frame, per_frame, rtol=1e-9)
    assert errors.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(errors.rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(errors.translation, translation, atol=1e-9)
    np.testing.assert_allclose(errors.aligned_centers, aligned, atol=1e-9)


def test_collinear_ground_truth_is_aligned_even_though_evo_refuses_it():
    identity = np.repeat(np.eye(3)[None], 6, axis=0)
    line = np.stack([np.arange(6.0), np.zeros(6), np.zeros(6)], axis=-1)
    gt = extrinsics_from_poses(identity, line)
    pred = similarity_of_world(gt, 0.5, rotation_about("z", 30), np.array([1.0, 2.0, 3.0]))
    errors = trajectory_errors(pred, gt)
    assert errors.ate == pytest.approx(0, abs=1e-9)
    assert errors.rpe_rot == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(errors.aligned_centers, line, atol=1e-9)
    # A noisy prediction on a line: same ATE as the independent Umeyama.
    noisy_centers = centers_of(pred) + np.random.default_rng(1).normal(scale=0.05, size=(6, 3))
    noisy = extrinsics_from_poses(np.swapaxes(pred[:, :, :3], 1, 2), noisy_centers)
    scale, rotation, translation = numpy_umeyama(noisy_centers, line)
    expected = np.linalg.norm(scale * noisy_centers @ rotation.T + translation - line, axis=1)
    np.testing.assert_allclose(trajectory_errors(noisy, gt).ate_per_frame, expected, atol=1e-9)


def test_static_prediction_scores_the_ground_truth_spread():
    gt = circle_trajectory(frames=10)
    pred = np.repeat(np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)[None], 10, axis=0)
    errors = trajectory_errors(pred, gt)
    centers = centers_of(gt)
    spread = np.linalg.norm(centers - centers.mean(0), axis=1)
    np.testing.assert_allclose(errors.ate_per_frame, spread, atol=1e-9)
    assert errors.scale == 1.0


def test_float16_extrinsics_are_accepted():
    gt = circle_trajectory()
    errors = trajectory_errors(gt.astype(np.float16), gt)
    assert errors.ate < 1e-2
    assert errors.rpe_rot < 0.2


def test_static_ground_truth_is_a_clear_error():
    gt = np.repeat(np.concatenate([np.eye(3), np.ones((3, 1))], axis=1)[None], 5, axis=0)
    with pytest.raises(DegenerateTrajectoryError, match="does not move"):
        trajectory_errors(circle_trajectory(frames=5), gt)


@pytest.mark.parametrize(
    ("pred", "gt", "message"),
    [
        (circle_trajectory(1), circle_trajectory(1), "at least 2 frames"),
        (circle_trajectory(5), circle_trajectory(6), "differ in length"),
        (np.zeros((5, 3, 3)), circle_trajectory(5), r"\(S, 3, 4\)"),
        (np.full((5, 3, 4), np.nan), circle_trajectory(5), "NaN"),
        (circle_trajectory(5) * 2, circle_trajectory(5), "not a rotation"),
    ],
)
def test_bad_trajectories_are_rejected_with_one_line(pred, gt, message):
    with pytest.raises(MetricsError, match=message) as info:
        trajectory_errors(pred, gt)
    assert isinstance(info.value, Page4DError)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ depth


def test_depth_with_a_known_scale_is_perfect_after_median_scaling():
    gt = np.random.default_rng(0).uniform(1, 10, size=(3, 4, 5))
    errors = depth_errors(gt / 3.0, gt)
    assert errors.abs_rel == pytest.approx(0, abs=1e-12)
    assert errors.delta_1_25 == 1.0
    assert errors.scale == pytest.approx(3.0)
    assert errors.shift == 0.0
    assert errors.valid_pixels == 60


def test_scale_and_shift_alignment_undoes_an_affine_depth():
    gt = np.random.default_rng(1).uniform(1, 10, size=(2, 6, 6))
    errors = depth_errors(2.0 * gt + 1.0, gt, alignment="scale_shift")
    assert errors.abs_rel == pytest.approx(0, abs=1e-12)
    assert errors.scale == pytest.approx(0.5)
    assert errors.shift == pytest.approx(-0.5)


def test_depth_metrics_by_hand_ignore_invalid_pixels():
    # Frame 0: gt 1 everywhere, pred [1, 1, 1, 2, 2] -> median scale 1.
    # AbsRel = (0 + 0 + 0 + 1 + 1) / 5 = 0.4, delta = 3 / 5. Frame 1 has no valid pixel.
    gt = np.array([[[1.0, 1, 1, 1, 1, 0, np.nan]], [[0.0, 0, 0, 0, 0, 0, 0]]])
    pred = np.array([[[1.0, 1, 1, 2, 2, -5, np.inf]], [[9.0, 9, 9, 9, 9, 9, 9]]])
    errors = depth_errors(pred, gt)
    assert errors.scale == 1.0
    assert errors.abs_rel == pytest.approx(0.4)
    assert errors.delta_1_25 == pytest.approx(0.6)
    assert errors.abs_rel_per_frame[0] == pytest.approx(0.4)
    assert math.isnan(errors.abs_rel_per_frame[1])
    assert math.isnan(errors.delta_1_25_per_frame[1])
    assert errors.valid_pixels == 5


def test_depth_valid_mask_and_max_depth_restrict_the_pixels():
    gt = np.array([[[1.0, 2.0, 100.0]]])
    pred = np.array([[[1.0, 4.0, 1.0]]])
    assert depth_errors(pred, gt, max_depth=70).valid_pixels == 2
    only_first = depth_errors(pred, gt, valid=np.array([[[True, False, False]]]))
    assert only_first.abs_rel == 0.0


def test_negative_aligned_depth_never_counts_as_accurate():
    gt = np.array([[[1.0, 1.0, 1.0]]])
    pred = np.array([[[1.0, 1.0, -1.0]]])
    assert depth_errors(pred, gt).delta_1_25 == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("pred", "gt", "kwargs", "message"),
    [
        (np.ones((2, 3, 3)), np.ones((2, 3, 4)), {}, "one shape"),
        (np.ones((2, 3, 3)), np.zeros((2, 3, 3)), {}, "no valid"),
        (np.full((1, 2, 2), np.nan), np.ones((1, 2, 2)), {}, "NaN"),
        (np.ones((1, 2, 2)), np.ones((1, 2, 2)), {"alignment": "mean"}, "unknown depth"),
        (-np.ones((1, 2, 2)), np.ones((1, 2, 2)), {}, "positive median"),
        (np.ones((1, 2, 2)), np.ones((1, 2, 2)), {"alignment": "scale_shift"}, "non-constant"),
    ],
)
def test_bad_depth_input_is_rejected(pred, gt, kwargs, message):
    with pytest.raises(MetricsError, match=message):
        depth_errors(pred, gt, **kwargs)


# ------------------------------------------------------------------------------ mask


def test_average_precision_by_hand():
    # Thresholds 0.9, 0.8, 0.7, 0.6: (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1)
    # AP = .5 * 1 + 0 * .5 + .5 * 2/3 + 0 = 5/6.
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([True, False, True, False])
    assert average_precision(scores, labels) == pytest.approx(5 / 6)
    # Tied scores are one threshold: P = 1/2 at R = 1.
    assert average_precision(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert average_precision(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
    assert math.isnan(average_precision(np.array([0.1, 0.9]), np.array([False, False])))


def brute_force_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """The textbook sum over every distinct threshold, highest first."""
    total, previous_recall = 0.0, 0.0
    for threshold in np.unique(scores)[::-1]:
        predicted = scores >= threshold
        true_positives = np.count_nonzero(predicted & labels)
        recall = true_positives / np.count_nonzero(labels)
        total += (recall - previous_recall) * true_positives / np.count_nonzero(predicted)
        previous_recall = recall
    return total


def test_average_precision_matches_the_textbook_sum_with_ties():
    rng = np.random.default_rng(11)
    for _ in range(30):
        size = int(rng.integers(2, 80))
        scores = rng.integers(0, 6, size).astype(np.float64)  # many ties
        labels = rng.random(size) < 0.4
        labels[0] = True
        expected = brute_force_average_precision(scores, labels)
        assert average_precision(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_mask_iou_and_ap_at_full_resolution_by_hand():
    probability = np.array([[[0.9, 0.3], [0.6, 0.1]]])
    truth = np.array([[[True, True], [False, False]]])
    # Predicted dynamic (>= 0.5, the overlay's default): pixels 0 and 2; truth 0 and 1: 1 / 3.
    assert mask_iou(probability, truth) == pytest.approx(1 / 3)
    # Ranking 0.9 (T), 0.6 (F), 0.3 (T), 0.1 (F): AP = .5 * 1 + .5 * 2/3.
    assert mask_average_precision(probability, truth) == pytest.approx(5 / 6)
    assert mask_iou(probability, truth, threshold=0.8) == pytest.approx(1 / 2)
    # At the threshold counts as dynamic, as in the viewer's overlay.
    assert mask_iou(probability, truth, threshold=0.9) == pytest.approx(1 / 2)
    assert mask_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool)) == 1.0
    restricted = mask_iou(probability, truth, valid=np.array([[True, True], [False, False]]))
    assert restricted == pytest.approx(1 / 2)


def test_patch_probability_is_upsampled_like_the_viewer():
    patch = np.array([[[1.0, 0.0], [1.0, 0.0]]])
    truth = np.zeros((1, 4, 6), bool)
    truth[:, :, :3] = True
    assert mask_iou(patch, truth) == 1.0
    assert mask_average_precision(patch, truth) == 1.0
    with pytest.raises(MetricsError, match="frames"):
        mask_iou(np.zeros((2, 2, 2)), truth)


def test_report_reads_the_mask_through_result_mask(small_reconstruction):
    gt_extrinsics = circle_trajectory(frames=2)
    mask_score = np.array([[[0.4, -0.4, 0.0]], [[0.4, -0.4, 0.0]]], np.float32)
    recon = small_reconstruction(gt_extrinsics, mask_score=np.repeat(mask_score, 2, axis=1))
    truth = np.zeros((2, 28, 28), bool)
    # Patch columns of 28 pixels over 3 patches: pixels 10..18 lie in the middle one (moving).
    truth[:, :, 10:19] = True
    recon.gt_dynamic_mask = truth
    # m = 0.0 reads as probability 0.5: dynamic at the default threshold, not at 0.6.
    assert evaluate_reconstruction(recon).mask_iou == pytest.approx(1 / 2)
    assert evaluate_reconstruction(recon, mask_threshold=0.6).mask_iou == 1.0


# ------------------------------------------------------------------------------ report


@pytest.fixture
def small_reconstruction(make_reconstruction):
    """`small_reconstruction(gt_extrinsics, **fields)`, built by the conftest factory: the
    masked cameras a similarity of the ground truth, the unmasked ones noisy centres."""

    def build(gt_extrinsics: np.ndarray, **fields) -> Reconstruction:
        return _metrics_recon(make_reconstruction, gt_extrinsics, **fields)

    return build


def _metrics_recon(make_reconstruction, gt_extrinsics: np.ndarray, **fields) -> Reconstruction:
    frames, height, width = len(gt_extrinsics), 28, 28
    rng = np.random.default_rng(5)
    intrinsics = np.repeat(np.array([[[30.0, 0, 14], [0, 30, 14], [0, 0, 1]]]), frames, axis=0)
    masked = similarity_of_world(gt_extrinsics, 0.5, rotation_about("x", 20), np.ones(3))
    noisy_centers = centers_of(gt_extrinsics) + 0.1 * rng.normal(size=(frames, 3))
    unmasked = extrinsics_from_poses(np.swapaxes(gt_extrinsics[:, :, :3], 1, 2), noisy_centers)
    depth = rng.uniform(1, 5, size=(frames, height, width)).astype(np.float32)
    defaults = dict(
        images=np.zeros((frames, height, width, 3), np.uint8),
        depth=depth,
        depth_conf=np.ones((frames, height, width), np.float32),
        points=np.zeros((frames, height, width, 3), np.float32),
        points_conf=np.ones((frames, height, width), np.float32),
        cameras={
            "masked": Cameras(masked, intrinsics),
            "unmasked": Cameras(unmasked, intrinsics),
            "ground_truth": Cameras(gt_extrinsics, intrinsics),
        },
        mask_score=None,
        metadata=Metadata(),
    )
    return make_reconstruction(frames, height, width, **(defaults | fields))


def test_evaluate_reconstruction_reports_each_variant_depth_and_mask(small_reconstruction):
    gt_extrinsics = circle_trajectory(frames=4)
    truth_mask = np.zeros((4, 28, 28), bool)
    truth_mask[:, :, :14] = True
    mask_score = np.full((4, 2, 2), 0.3, np.float32)
    mask_score[:, :, 0] = -0.3  # low m = dynamic: the left patch column
    recon = small_reconstruction(gt_extrinsics, mask_score=mask_score)
    recon.gt_depth = recon.depth * 4.0
    recon.gt_dynamic_mask = truth_mask
    report = evaluate_reconstruction(recon)
    assert set(report.trajectory) == {"masked", "unmasked"}
    assert report.trajectory["masked"].ate == pytest.approx(0, abs=1e-6)
    assert report.trajectory["unmasked"].ate > 0.01
    assert report.depth["median"].abs_rel == pytest.approx(0, abs=1e-6)
    assert report.depth["scale_shift"].abs_rel == pytest.approx(0, abs=1e-6)
    assert report.mask_iou == 1.0
    assert report.mask_ap == pytest.approx(1.0)
    assert report.notes == []

    table = report.format_table()
    lines = table.splitlines()
    assert lines[0].startswith("variant   ATE     RPE trans  RPE rot(deg)  AbsRel(med)")
    assert lines[2].startswith("masked") and lines[3].startswith("unmasked")
    assert len({len(line) for line in lines[:4]}) == 1  # aligned columns
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["rows"][1]["variant"] == "unmasked"
    assert data["rows"][0]["mask_iou"] == 1.0


def test_evaluate_reconstruction_uses_external_ground_truth_through_the_crop(small_reconstruction):
    gt_extrinsics = circle_trajectory(frames=3)
    recon = small_reconstruction(gt_extrinsics)
    # The clip was 56 x 84 (H x W); the model saw the rows 14..70 of it, resized by 1/2.
    recon.metadata.preprocessing.mapping = {
        "model_size": [28, 28],
        "original_size": [56, 84],
        "scale_x": 0.5,
        "scale_y": 0.5,
        "offset_x": -14,
        "offset_y": 0,
    }
    clip_depth = np.zeros((3, 56, 84), np.float32)
    clip_depth[:, :, 28:84] = np.repeat(np.repeat(recon.depth * 2, 2, axis=1), 2, axis=2)
    gt = GroundTruth(
        extrinsics=gt_extrinsics,
        intrinsics=None,
        depth=clip_depth,
        dynamic_mask=None,
        source_format="synthetic",
    )
    report = evaluate_reconstruction(recon, gt)
    assert report.depth["median"].abs_rel == pytest.approx(0, abs=1e-6)
    assert report.depth["median"].valid_pixels == 3 * 28 * 28
    assert any("mask" in note for note in report.notes)


def test_evaluate_reconstruction_notes_a_static_camera_and_missing_depth(small_reconstruction):
    still = np.repeat(np.concatenate([np.eye(3), np.zeros((3, 1))], axis=1)[None], 3, axis=0)
    recon = small_reconstruction(circle_trajectory(frames=3))
    report = evaluate_reconstruction(recon, GroundTruth(still, None, None, None, "tum"))
    assert report.trajectory == {}
    assert any("does not move" in note for note in report.notes)
    assert any("no ground-truth depth" in note for note in report.notes)
    assert "note:" in report.format_table()


def test_evaluate_reconstruction_rejects_a_frame_count_mismatch(small_reconstruction):
    recon = small_reconstruction(circle_trajectory(frames=3))
    with pytest.raises(MetricsError, match="frames"):
        evaluate_reconstruction(recon, GroundTruth(circle_trajectory(4), None, None, None, "tum"))
