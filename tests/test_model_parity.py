"""Parity with the authors' implementation on the tiny fixture, in both mask modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from page4d_viewer.model import ModelConfig, ModelOutput, Page4D, build_model, load_checkpoint
from page4d_viewer.model.checkpoint import map_keys

STRENGTHS = {"mask_off": 0.0, "mask_on": 64.0}
FIELDS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
TRACK_FIELDS = ("track", "track_vis", "track_conf")
FLOAT64_TOLERANCE = 1e-6
FLOAT32_TOLERANCE = 1e-3
# Fixture metadata name -> our ModelConfig field.
FIXTURE_FIELDS = {
    "img_size": "img_size",
    "patch_size": "patch_size",
    "embed_dim": "embed_dim",
    "depth": "depth",
    "num_heads": "num_heads",
    "mlp_ratio": "mlp_ratio",
    "num_register_tokens": "num_register_tokens",
    "dino_depth": "encoder_depth",
    "dino_heads": "encoder_heads",
    "camera_heads": "camera_heads",
    "camera_trunk_depth": "camera_trunk_depth",
    "dpt_features": "dpt_features",
    "dpt_out_channels": "dpt_out_channels",
    "dpt_intermediate_layer_idx": "dpt_layers",
    "track_features": "track_features",
    "track_hidden_size": "track_hidden",
    "track_iters": "track_iterations",
    "track_corr_levels": "track_corr_levels",
    "track_corr_radius": "track_corr_radius",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference over the largest reference magnitude."""
    assert actual.shape == expected.shape
    return ((actual.double() - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module")
def fixture(parity_fixture_path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(parity_fixture_path))


@pytest.fixture(scope="module")
def fixture_config(parity_fixture_path: Path) -> dict:
    with safe_open(str(parity_fixture_path), framework="pt") as handle:
        return json.loads(handle.metadata()["config"])


@pytest.fixture(scope="module")
def model64(fixture: dict[str, torch.Tensor]) -> Page4D:
    state = {k.removeprefix("state."): v for k, v in fixture.items() if k.startswith("state.")}
    state, dropped = map_keys(state)
    assert dropped == []
    model = build_model("tiny").double().eval()
    model.load_state_dict(state, strict=True)
    return model


@pytest.fixture(scope="module")
def outputs64(model64: Page4D, fixture: dict[str, torch.Tensor]) -> dict[str, ModelOutput]:
    with torch.no_grad():
        return {
            tag: model64(
                fixture["input.images"],
                mask_strength=strength,
                query_points=fixture["input.query_points"],
            )
            for tag, strength in STRENGTHS.items()
        }


def test_tiny_preset_is_the_fixture_configuration(fixture_config: dict) -> None:
    config = ModelConfig.from_name("tiny")
    assert set(fixture_config) <= set(FIXTURE_FIELDS), "fixture field without a mapping"
    for theirs, ours in FIXTURE_FIELDS.items():
        value = getattr(config, ours)
        expected = fixture_config[theirs]
        assert (list(value) if isinstance(value, tuple) else value) == expected, ours


def test_state_loads_with_nothing_dropped(fixture: dict[str, torch.Tensor]) -> None:
    state = {k.removeprefix("state."): v for k, v in fixture.items() if k.startswith("state.")}
    mapped, dropped = map_keys(state)
    assert dropped == [] and len(mapped) == len(state)
    assert any(name.startswith("track_head.") for name in mapped)
    model = build_model("tiny").double()
    result = model.load_state_dict(mapped, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []


@pytest.mark.parametrize("tag", STRENGTHS)
@pytest.mark.parametrize("name", (*FIELDS, *TRACK_FIELDS))
def test_float64_outputs_match(
    outputs64: dict[str, ModelOutput], fixture: dict[str, torch.Tensor], tag: str, name: str
) -> None:
    # relative_error first asserts that the shapes agree (the tracks' included).
    actual = getattr(outputs64[tag], name)
    assert relative_error(actual, fixture[f"{tag}.{name}"]) < FLOAT64_TOLERANCE


def test_plain_forward_does_not_run_the_track_head(
    model64: Page4D, outputs64: dict[str, ModelOutput], fixture: dict[str, torch.Tensor]
) -> None:
    calls = []
    handle = model64.track_head.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            plain = model64(fixture["input.images"], mask_strength=64.0)
            masked, unmasked = model64.forward_pair(fixture["input.images"], 64.0)
    finally:
        handle.remove()
    assert calls == []
    for output in (plain, masked, unmasked):
        assert output.track is None and output.track_vis is None and output.track_conf is None
    # Asking for tracks changes nothing else.
    for name in FIELDS:
        assert torch.equal(getattr(plain, name), getattr(outputs64["mask_on"], name)), name


@pytest.mark.parametrize("tag", STRENGTHS)
def test_every_refinement_step_matches(
    outputs64: dict[str, ModelOutput], fixture: dict[str, torch.Tensor], tag: str
) -> None:
    steps = outputs64[tag].pose_enc_list
    assert len(steps) == sum(k.startswith(f"{tag}.pose_enc_list.") for k in fixture)
    for index, step in enumerate(steps):
        expected = fixture[f"{tag}.pose_enc_list.{index}"]
        assert relative_error(step, expected) < FLOAT64_TOLERANCE, index


@pytest.mark.parametrize("tag", STRENGTHS)
def test_mask_scores_match(
    outputs64: dict[str, ModelOutput], fixture: dict[str, torch.Tensor], tag: str
) -> None:
    score = outputs64[tag].mask_score
    batch, frames, grid_h, grid_w = score.shape
    key_logit = fixture[f"{tag}.mask.key_logit"].reshape(batch, frames, -1)
    specials = key_logit.shape[-1] - grid_h * grid_w
    assert torch.all(key_logit[..., :specials] == 0)
    expected = key_logit[..., specials:].reshape(batch, frames, grid_h, grid_w)
    assert relative_error(score, expected) < FLOAT64_TOLERANCE
    assert score.abs().max() < 0.5


def test_mask_changes_the_cameras(outputs64: dict[str, ModelOutput]) -> None:
    """The two fixture modes differ, so parity in both is not parity in one twice."""
    off, on = outputs64["mask_off"], outputs64["mask_on"]
    assert relative_error(on.pose_enc, off.pose_enc) > 1e-6
    assert torch.equal(on.mask_score, off.mask_score)


@pytest.mark.parametrize("tag", STRENGTHS)
def test_float32_run_is_close(model64: Page4D, fixture: dict[str, torch.Tensor], tag: str) -> None:
    model32 = build_model("tiny").eval()
    model32.load_state_dict({k: v.float() for k, v in model64.state_dict().items()})
    with torch.no_grad():
        output = model32(fixture["input.images"].float(), mask_strength=STRENGTHS[tag])
    for name in FIELDS:
        actual = getattr(output, name)
        assert actual.dtype == torch.float32
        assert relative_error(actual, fixture[f"{tag}.{name}"]) < FLOAT32_TOLERANCE, name
    with torch.no_grad():
        tracked = model32(
            fixture["input.images"].float(),
            mask_strength=STRENGTHS[tag],
            query_points=fixture["input.query_points"].float(),
        )
    for name in TRACK_FIELDS:
        actual = getattr(tracked, name)
        assert actual.dtype == torch.float32
        assert relative_error(actual, fixture[f"{tag}.{name}"]) < FLOAT32_TOLERANCE, name


def test_forward_pair_equals_two_calls(
    model64: Page4D, outputs64: dict[str, ModelOutput], fixture: dict[str, torch.Tensor]
) -> None:
    with torch.no_grad():
        masked, unmasked = model64.forward_pair(
            fixture["input.images"], 64.0, query_points=fixture["input.query_points"]
        )
    for pair_output, tag in ((masked, "mask_on"), (unmasked, "mask_off")):
        single = outputs64[tag]
        for name in (*FIELDS, *TRACK_FIELDS, "mask_score"):
            assert torch.equal(getattr(pair_output, name), getattr(single, name)), (tag, name)
        steps = zip(pair_output.pose_enc_list, single.pose_enc_list, strict=True)
        assert all(torch.equal(step_pair, step_single) for step_pair, step_single in steps)
    assert masked.mask_strength == 64.0 and unmasked.mask_strength == 0.0


def test_fixture_as_authors_pickle_loads_and_matches(
    fixture: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """End to end: the authors' checkpoint format through load_checkpoint, mask on, tracks."""
    state = {
        f"module.{k.removeprefix('state.')}": v
        for k, v in fixture.items()
        if k.startswith("state.")
    }
    path = tmp_path / "checkpoint_mask.pt"
    torch.save({"model": state, "epoch": 3}, path)
    model, info = load_checkpoint(path, preset="tiny")
    assert info.variant == "PAGE-4D (mask)" and info.dtype == "float64"
    assert info.dropped_keys == () and info.track_available and model.track_available
    with torch.no_grad():
        output = model(
            fixture["input.images"],
            mask_strength=info.default_mask_strength,
            query_points=fixture["input.query_points"],
        )
    for name in (*FIELDS, *TRACK_FIELDS):
        expected = fixture[f"mask_on.{name}"]
        assert relative_error(getattr(output, name), expected) < FLOAT64_TOLERANCE, name
