"""The geometric pose variants (inference/geometric_poses.py) and their match sources
(inference/matching.py): optical flow, the track head, and the masked/unmasked weighting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from page4d_viewer import geometry
from page4d_viewer.evaluation.trajectory import path_length, trajectory_errors
from page4d_viewer.inference import geometric_poses, matching
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs
from page4d_viewer.result.cameras import GEOMETRY_MASKED, GEOMETRY_UNMASKED
from page4d_viewer.result.reconstruction import GeometricPosesRecord, Reconstruction
from page4d_viewer.sources.synthetic import ground_truth_matches, make_clip, track_ground_truth
from page4d_viewer.training.losses import static_fraction_per_patch

SAMPLES = Path(__file__).resolve().parents[1] / "assets" / "samples"


@pytest.fixture(scope="module")
def orbit_clip():
    """8 frames of a room with large movers, at the small preset's 196 x 112."""
    return make_clip(
        5, num_frames=8, width=196, height=112, fps=6.0, movers="large", num_movers=3, person=True
    )


def _first_camera_world(extrinsics: np.ndarray) -> np.ndarray:
    return geometry.compose_rigid(extrinsics, geometry.invert_rigid(extrinsics[0]))[:, :3]


def _mask_score_of(clip) -> np.ndarray:
    """(S, h, w) a mask score that says exactly which patches move (m = static share - 0.5)."""
    moving = torch.as_tensor(clip.dynamic_mask)
    static_share = static_fraction_per_patch(moving[None], patch_size=14)[0].numpy()
    return static_share.astype(np.float32) - 0.5


def test_confidence_weight_reads_the_network_confidence():
    weights = geometric_poses.confidence_weight(np.array([0.5, 1.0, 2.0, 10.0]))
    np.testing.assert_allclose(weights, [0.0, 0.0, 0.5, 0.9])


def test_optical_flow_matches_land_where_the_surface_went(orbit_clip):
    pairs = [(0, 1), (3, 4)]
    matches = matching.flow_matches(orbit_clip.images, pairs)
    assert matches.source == "optical_flow"
    assert matches.reference_xy.shape[:2] == matches.weight.shape == (2, matches.weight.shape[1])
    for row, (reference, target) in enumerate(pairs):
        queries = matches.reference_xy[row].numpy()
        truth = track_ground_truth(orbit_clip, reference, queries)
        seen = truth.visible[target]
        error = np.linalg.norm(matches.target_xy[row].numpy() - truth.tracks[target], axis=-1)
        trusted = seen & (matches.weight[row].numpy() > 0.5)
        still = np.linalg.norm(queries - truth.tracks[target], axis=-1)
        assert trusted.mean() > 0.3
        # Far better than guessing "nothing moved", and mostly within a pixel.
        assert np.median(error[trusted]) < 0.25 * np.median(still[seen])
        assert np.median(error[trusted]) < 1.0


def test_the_mask_weights_movers_out_of_the_masked_variant_only(orbit_clip):
    # Exact depth and matches, and a mask score that marks exactly the moving patches: the
    # masked variant recovers the cameras, the unmasked one is pulled by the movers.
    matches = Matches.from_arrays(*ground_truth_matches(orbit_clip, keyframe_pairs(8), step=4))
    depth_conf = np.full(orbit_clip.depth.shape, 100.0)
    poses = geometric_poses.solve_geometric_poses(
        orbit_clip.depth, depth_conf, orbit_clip.intrinsics, _mask_score_of(orbit_clip), matches
    )
    truth = _first_camera_world(orbit_clip.extrinsics)
    length = path_length(truth)
    ate = {
        name: trajectory_errors(poses.cameras[name].extrinsics, truth).ate / length
        for name in (GEOMETRY_MASKED, GEOMETRY_UNMASKED)
    }
    assert ate[GEOMETRY_MASKED] < 0.5 * ate[GEOMETRY_UNMASKED]
    assert ate[GEOMETRY_MASKED] < 0.01
    assert poses.unsolved == {GEOMETRY_MASKED: [], GEOMETRY_UNMASKED: []}
    np.testing.assert_array_equal(poses.cameras[GEOMETRY_MASKED].intrinsics, orbit_clip.intrinsics)


def test_without_a_mask_head_both_variants_are_one_solve(orbit_clip):
    matches = Matches.from_arrays(*ground_truth_matches(orbit_clip, keyframe_pairs(8), step=8))
    poses = geometric_poses.solve_geometric_poses(
        orbit_clip.depth, np.full(orbit_clip.depth.shape, 5.0), orbit_clip.intrinsics, None,
        matches,
    )  # fmt: skip
    np.testing.assert_array_equal(
        poses.cameras[GEOMETRY_MASKED].extrinsics, poses.cameras[GEOMETRY_UNMASKED].extrinsics
    )


def test_frames_that_do_not_move_give_still_cameras():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (28, 42, 3), dtype=np.uint8)
    images = np.stack([frame, frame, frame])  # the same picture three times
    matches = geometric_poses.find_matches(images)
    intrinsics = np.tile(np.array([[30.0, 0, 21], [0, 30, 14], [0, 0, 1]]), (3, 1, 1))
    poses = geometric_poses.solve_geometric_poses(
        np.full((3, 28, 42), 2.0), np.full((3, 28, 42), 2.0), intrinsics, None, matches
    )
    assert poses.record() == GeometricPosesRecord(
        "optical_flow", {GEOMETRY_UNMASKED: [], GEOMETRY_MASKED: []}
    )
    still = np.tile(np.eye(3, 4), (3, 1, 1))
    np.testing.assert_allclose(poses.cameras[GEOMETRY_MASKED].extrinsics, still, atol=1e-6)


def test_the_track_head_is_the_source_when_the_model_has_one(few_layer_model, sure_tracker):
    model = sure_tracker(few_layer_model())
    assert model.track_available
    images = torch.rand(4, 3, 28, 42, dtype=torch.float64)
    images_uint8 = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    with torch.no_grad():
        matches = geometric_poses.find_matches(images_uint8, model, images, 0.0)
    assert matches.source == "track_head"
    pairs = keyframe_pairs(4)
    assert matches.num_pairs == len(pairs)
    assert matches.reference.tolist() == [reference for reference, _ in pairs]
    # Every grid point is tracked from frame 0, so a pair's reference pixels in frame 0 are
    # the grid itself.
    grid = geometry.sparse_pixel_grid((28, 42), matching.grid_step((28, 42)))
    np.testing.assert_allclose(matches.reference_xy[0].numpy(), grid, atol=1e-4)
    assert (matches.weight > 0).all()


def test_the_match_head_comes_first_when_the_model_has_one(few_layer_model, sure_tracker):
    model = sure_tracker(
        few_layer_model(has_match_head=True, match_layer=1, match_dim=8, match_fine_dim=4)
    )
    assert model.match_available and model.track_available
    images = torch.rand(3, 3, 28, 42, dtype=torch.float64)
    images_uint8 = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    with torch.no_grad():
        output = model(images)
        matches = geometric_poses.find_matches(
            images_uint8, model, images, 0.0, output.match_features
        )
    assert matches.source == "match_head"
    assert matches.num_pairs == len(keyframe_pairs(3))
    # Without the features (a result replayed without its run), the track head is next.
    with torch.no_grad():
        assert geometric_poses.find_matches(images_uint8, model, images).source == "track_head"


def test_a_run_on_the_bundled_sample_has_geometric_cameras_that_follow_the_truth(tmp_path):
    from page4d_viewer.inference.predictor import load_default_model, predict

    model, info = load_default_model()
    recon = predict(str(SAMPLES / "orbit_movers"), model, checkpoint_info=info)
    assert recon.metadata.geometric_poses is not None
    assert recon.metadata.geometric_poses.source == "optical_flow"
    assert "geometry" in recon.metadata.timings
    truth = recon.cameras["ground_truth"].extrinsics
    length = path_length(truth)
    geometric = trajectory_errors(recon.cameras[GEOMETRY_MASKED].extrinsics, truth).ate / length
    head = trajectory_errors(recon.cameras["masked"].extrinsics, truth).ate / length
    assert geometric < 0.08 and geometric < 0.5 * head
    # The geometric cameras move about as far as the truth does (in the network's units the
    # truth's length is unknown, so compare shapes: the aligned path against the true one).
    errors = trajectory_errors(recon.cameras[GEOMETRY_MASKED].extrinsics, truth)
    aligned_length = np.linalg.norm(np.diff(errors.aligned_centers, axis=0), axis=-1).sum()
    assert aligned_length == pytest.approx(length, rel=0.25)
    # And they survive the result file.
    loaded = Reconstruction.load(recon.save(tmp_path / "run.npz"))
    for name in (GEOMETRY_MASKED, GEOMETRY_UNMASKED):
        np.testing.assert_allclose(
            loaded.cameras[name].extrinsics, recon.cameras[name].extrinsics, atol=1e-12
        )
    assert loaded.metadata.geometric_poses == recon.metadata.geometric_poses


def test_a_result_without_geometric_cameras_still_loads(make_reconstruction, tmp_path):
    recon = make_reconstruction()
    loaded = Reconstruction.load(recon.save(tmp_path / "old.npz"))
    assert GEOMETRY_MASKED not in loaded.cameras
    assert loaded.alignment_reference == "masked"
    both = dataclasses.replace(
        recon, cameras={**recon.cameras, GEOMETRY_MASKED: recon.cameras["unmasked"]}
    )
    assert both.alignment_reference == GEOMETRY_MASKED
