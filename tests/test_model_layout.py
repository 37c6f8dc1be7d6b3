"""The "official" preset has exactly the released checkpoints' state-dict layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from page4d_viewer.model import ModelConfig, Page4D, build_model
from page4d_viewer.model.checkpoint import DROPPED_ON_PURPOSE, MASK_HEAD_PREFIX, TRACK_HEAD_PREFIX

# Values in the released model, track head included (the manifest's total).
OFFICIAL_PARAMETERS = 1_256_810_413


@pytest.fixture(scope="module")
def manifest(full_manifest_path: Path) -> dict[str, list[int]]:
    return json.loads(full_manifest_path.read_text())


@pytest.fixture(scope="module")
def official_layout() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build_model("official")
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def test_manifest_is_the_documented_release(manifest: dict[str, list[int]]) -> None:
    assert len(manifest) == 1803
    total = sum(int(torch.Size(shape).numel()) for shape in manifest.values())
    assert total == 1_256_810_413


def test_official_names_and_shapes_equal_the_manifest(
    manifest: dict[str, list[int]], official_layout: dict[str, tuple[int, ...]]
) -> None:
    expected = {name: tuple(shape) for name, shape in manifest.items()}
    assert any(name.startswith(TRACK_HEAD_PREFIX) for name in official_layout)
    assert sorted(set(expected) - set(official_layout)) == []
    assert sorted(set(official_layout) - set(expected)) == []
    wrong = [name for name, shape in expected.items() if official_layout[name] != shape]
    assert wrong == []


def test_nothing_is_dropped(manifest: dict[str, list[int]]) -> None:
    assert DROPPED_ON_PURPOSE == {}
    assert any(name.startswith(TRACK_HEAD_PREFIX) for name in manifest)


def test_official_parameter_count(manifest: dict[str, list[int]]) -> None:
    with torch.device("meta"):
        model = build_model("official")
    count = sum(p.numel() for p in model.parameters())
    total = sum(int(torch.Size(shape).numel()) for shape in manifest.values())
    assert count == total == OFFICIAL_PARAMETERS


@pytest.mark.parametrize(
    ("head_option", "head_prefix"),
    [
        pytest.param("has_mask_head", MASK_HEAD_PREFIX, id="vggt_layout_without_mask_head"),
        pytest.param("has_track_head", TRACK_HEAD_PREFIX, id="without_track_head"),
    ],
)
def test_leaving_out_a_head_removes_exactly_its_weights(
    official_layout: dict[str, tuple[int, ...]], head_option: str, head_prefix: str
) -> None:
    with torch.device("meta"):
        model = build_model("official", **{head_option: False})
    names = set(model.state_dict())
    assert names == {n for n in official_layout if not n.startswith(head_prefix)}
    assert any(n.startswith(head_prefix) for n in official_layout)


def test_nothing_assumes_the_official_sizes() -> None:
    """A smaller, shallower layout (like the future "small" preset) builds and runs."""
    config = ModelConfig(
        img_size=252,
        embed_dim=32,
        depth=8,
        num_heads=2,
        encoder_depth=1,
        encoder_heads=2,
        camera_heads=2,
        camera_trunk_depth=1,
        camera_iterations=2,
        dpt_features=16,
        dpt_out_channels=(8, 16, 32, 32),
        dpt_layers=(1, 3, 5, 7),
        mask_after_layer=2,
        masked_layers=(3, 4, 5),
        mask_head_hidden=8,
        track_features=8,
        track_hidden=16,
        track_iterations=2,
        track_corr_levels=2,
        track_corr_radius=1,
        track_depth=1,
        track_heads=2,
        track_virtual_tracks=4,
    )
    model = Page4D(config).eval()
    assert model.aggregator.patch_embed.pos_embed.shape == (1, 18 * 18 + 1, 32)
    with torch.no_grad():
        out = model(torch.rand(3, 3, 56, 84), mask_strength=64.0, query_points=torch.rand(5, 2))
    assert out.depth.shape == (1, 3, 56, 84, 1)
    assert out.track.shape == (1, 3, 5, 2) and out.track_vis.shape == (1, 3, 5)
    assert out.mask_score.shape == (1, 3, 4, 6)
    assert len(out.pose_enc_list) == 2
    assert config.shared_layers == 3 and config.kept_layers == (1, 3, 5, 7)
