"""The match head: dual softmax with an unmatched bin, sub-patch refinement, the model contract,
and checkpoints with and without one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from page4d_viewer.errors import Page4DError
from page4d_viewer.model import ModelConfig, Page4D, load_checkpoint, save_checkpoint
from page4d_viewer.model.match_head import (
    MATCH_SOURCE,
    MatchFeatures,
    MatchHead,
    assignment_log_probs,
    patch_centres,
    patch_index,
)
from page4d_viewer.model.pose_solver import keyframe_pairs

MATCHING = {"has_match_head": True, "match_layer": 1, "match_dim": 8, "match_fine_dim": 4}


def _head(**overrides: object) -> MatchHead:
    torch.manual_seed(0)
    return MatchHead(ModelConfig.from_name("tiny", **{**MATCHING, **overrides})).double()


def _orthonormal(count: int, dim: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return torch.linalg.qr(matrix)[0][:count]


def test_patch_centres_lie_in_their_own_patch() -> None:
    centres = patch_centres((3, 4), 14, dtype=torch.float64)
    assert centres[0].tolist() == [6.5, 6.5] and centres[5].tolist() == [20.5, 20.5]
    torch.testing.assert_close(patch_index(centres, (3, 4), 14), torch.arange(12))
    # A patch spans -0.5 .. 13.5 around integer pixel centres.
    edges = torch.tensor([[-0.5, 0.0], [13.49, 0.0], [13.5, 0.0]], dtype=torch.float64)
    assert patch_index(edges, (3, 4), 14).tolist() == [0, 0, 1]


def test_dual_softmax_rows_and_bins_are_distributions() -> None:
    generator = torch.Generator().manual_seed(2)
    reference = F.normalize(torch.randn(2, 5, 8, generator=generator, dtype=torch.float64), dim=-1)
    target = F.normalize(torch.randn(2, 7, 8, generator=generator, dtype=torch.float64), dim=-1)
    log_probs = assignment_log_probs(reference, target, 0.1, torch.tensor(1.0))
    assert log_probs.shape == (2, 6, 8)
    probabilities = log_probs.exp()
    # Each product entry is at most either softmax; the bins are plain softmax entries.
    assert (probabilities[:, :5, :7].sum(-1) + probabilities[:, :5, 7] <= 1 + 1e-9).all()
    assert (probabilities[:, :5, :7].sum(-2) + probabilities[:, 5, :7] <= 1 + 1e-9).all()


def test_perfect_descriptors_match_with_confidence_and_a_stranger_is_unmatched() -> None:
    head = _head()
    descriptors = _orthonormal(6, 8)  # 2 x 3 patches, one spare direction per frame
    stranger = _orthonormal(8, 8)[7]
    coarse = torch.stack((descriptors, descriptors.roll(1, dims=0)))  # frame 1: shifted by one
    coarse[0, 4] = stranger  # reference patch 4 has no counterpart in frame 1
    fine = torch.randn(1, 2, 4, 28, 42, dtype=torch.float64)
    features = MatchFeatures(coarse.reshape(1, 2, 2, 3, 8), fine)
    matches = head.match(features, [(0, 1)], (28, 42))
    assert matches.source == MATCH_SOURCE and matches.target_xy.shape == (1, 6, 2)
    expected_patch = (torch.arange(6) + 1) % 6
    # The fine maps are noise, so the refined position may be anywhere in the window around
    # the coarse match: within match_fine_radius of the right patch's centre.
    centres = patch_centres((2, 3), 14, dtype=torch.float64)
    offset = (matches.target_xy[0] - centres[expected_patch]).abs().amax(dim=-1)
    matched = torch.arange(6) != 4
    assert (offset[matched] <= head.config.match_fine_radius).all()
    assert (matches.weight[0, matched] > 0.9).all() and matches.weight[0, 4] == 0.0


def test_refinement_finds_a_sub_patch_shift() -> None:
    head = _head(match_fine_dim=16)
    with torch.no_grad():
        head.fine_log_scale.fill_(math.log(200.0))
    generator = torch.Generator().manual_seed(3)
    # 16 channels: in a 17 x 17 window, 4-channel noise has near-copies of any descriptor.
    image = torch.randn(16, 28, 56, generator=generator, dtype=torch.float64)
    shift = (3, -2)  # (dx, dy) pixels: the target shows the reference moved by this
    target = image.roll(shifts=(shift[1], shift[0]), dims=(1, 2))
    fine = torch.stack((image, target))[None]
    coarse = F.normalize(torch.ones(1, 2, 2, 4, 8, dtype=torch.float64), dim=-1)
    features = MatchFeatures(coarse, fine)
    pairs = torch.tensor([[0, 1]])
    own_patch = torch.arange(8)[None]  # each window centred on the query's own patch
    refined = head.refine(features, pairs, own_patch)
    centres = patch_centres((2, 4), 14, dtype=torch.float64)
    expected = centres + torch.tensor(shift, dtype=torch.float64)
    torch.testing.assert_close(refined[0], expected, atol=0.05, rtol=0)
    # Matching averages around the peak only: a flat correlation elsewhere does not pull it.
    around_peak = head.refine(features, pairs, own_patch, peak_radius=1)
    torch.testing.assert_close(around_peak[0], expected, atol=0.05, rtol=0)
    with torch.no_grad():
        head.fine_log_scale.fill_(0.0)  # a nearly flat correlation
    flat_window = head.refine(features, pairs, own_patch)
    flat_peak = head.refine(features, pairs, own_patch, peak_radius=0)
    # The whole-window average drifts to the window's centre ("no motion"), the peak does not.
    to_centre = (flat_window[0] - centres).norm(dim=-1)
    assert (to_centre < (flat_window[0] - expected).norm(dim=-1)).all()
    torch.testing.assert_close(flat_peak[0], expected, atol=1e-9, rtol=0)


def test_the_model_fills_match_features_and_both_variants_share_them(
    few_layer_model, clip_images
) -> None:
    model = few_layer_model(has_match_head=True, match_layer=1, match_dim=8, match_fine_dim=4)
    assert model.match_available and model.config.match_layer < model.config.shared_layers
    images = clip_images(frames=3)
    with torch.no_grad():
        single = model(images, 64.0)
        masked, unmasked = model.forward_pair(images, 64.0)
    assert single.match_features.coarse.shape == (1, 3, 2, 3, 8)
    assert single.match_features.fine.shape == (1, 3, 4, 28, 42)
    assert unmasked.match_features is masked.match_features
    torch.testing.assert_close(masked.match_features.coarse, single.match_features.coarse)
    matches = model.match_head.match(single.match_features.clip(0), keyframe_pairs(3), (28, 42))
    assert matches.weight.shape == (3, 6) and ((matches.weight >= 0) & (matches.weight <= 1)).all()
    with pytest.raises(ValueError, match="image_hw"):
        model.match_head.match(single.match_features.clip(0), [(0, 1)], (42, 28))


def test_presets_without_match_head_are_unchanged(few_layer_model, clip_images) -> None:
    assert not ModelConfig.from_name("official").has_match_head
    assert not ModelConfig.from_name("tiny").has_match_head
    small = ModelConfig.from_name("small")
    assert small.has_match_head and small.match_layer < small.shared_layers
    plain = few_layer_model()
    assert not plain.match_available and plain.match_head is None
    with torch.no_grad():
        output = plain(clip_images(frames=2), 64.0)
    assert output.match_features is None
    # A match head is built last: the rest of a seeded build is the same as without it.
    builds = []
    for overrides in ({}, MATCHING):
        torch.manual_seed(5)
        builds.append(Page4D(ModelConfig.from_name("tiny", **overrides)).state_dict())
    for name, tensor in builds[0].items():
        assert torch.equal(builds[1][name], tensor), name


def test_bad_match_settings_are_refused() -> None:
    with pytest.raises(Page4DError, match="match_layer"):
        ModelConfig.from_name("tiny", has_match_head=True, match_layer=24)
    with pytest.raises(Page4DError, match="half a patch"):
        ModelConfig.from_name("tiny", has_match_head=True, match_fine_radius=6)


def test_a_checkpoint_with_match_head_round_trips(tmp_path: Path, few_layer_model) -> None:
    model = few_layer_model(has_match_head=True, match_layer=1).float()
    path = save_checkpoint(model, tmp_path / "matcher.safetensors")
    loaded, info = load_checkpoint(path)
    assert info.match_available and loaded.match_available
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_the_shipped_model_loads_without_match_head_and_starts_a_run_with_one(tmp_path) -> None:
    from page4d_viewer.settings import default_checkpoint_path
    from page4d_viewer.training.train import load_initial_weights

    path = default_checkpoint_path()
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model, info = load_checkpoint(path)
    assert not info.match_available and model.match_head is None
    torch.manual_seed(0)
    fresh = Page4D(ModelConfig.from_name("small"))
    initial = {name: t.clone() for name, t in fresh.match_head.state_dict().items()}
    new_keys = load_initial_weights(fresh, path)
    assert {key.split(".")[0] for key in new_keys} == {"match_head", "track_head"}
    for name, tensor in fresh.match_head.state_dict().items():
        assert torch.equal(tensor, initial[name]), name  # left at its initialisation
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name


def test_position_embeddings_are_made_once_per_pass_and_change_nothing(
    few_layer_model, clip_images
) -> None:
    from page4d_viewer.model import heads

    model = few_layer_model()
    images = clip_images(frames=2)
    made = []
    original = heads.uv_embedding

    def counting(*args: object) -> torch.Tensor:
        made.append(args[:3])
        return original(*args)

    heads.uv_embedding = counting
    try:
        with torch.no_grad():
            masked, unmasked = model.forward_pair(images, 64.0)
    finally:
        heads.uv_embedding = original
    assert len(made) == len(set(made))  # each shape once, for both heads and both variants
    with torch.no_grad():
        single = model(images, 64.0)
        alone = model(images, 0.0)
    torch.testing.assert_close(masked.depth, single.depth, rtol=0, atol=0)
    torch.testing.assert_close(unmasked.world_points, alone.world_points, rtol=0, atol=0)
