"""Camera-token attention and feature PCA: brute-force parity, request checks, no cost unasked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.model import AttentionRequest, ModelConfig, Page4D
from page4d_viewer.model.attention import (
    default_attention_layers,
    default_feature_layers,
    feature_pca,
)
from page4d_viewer.model.layers import apply_rotary, patch_positions, rotary_tables

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The conftest few-layer network, with its mask head drawn wide too so the bias matters.
ATTENTION_MODEL = {"camera_iterations": 2, "has_track_head": False, "perturb_mask_head": True}


def capture_global_blocks(
    model: Page4D, clip: torch.Tensor, strength: float
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Layer -> (input (1, N, C) of its global block, output (1, N, C) of its attention)."""
    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}
    handles = []
    for layer, block in enumerate(model.aggregator.global_blocks):
        handles.append(
            block.register_forward_pre_hook(
                lambda _module, args, layer=layer: inputs.__setitem__(layer, args[0])
            )
        )
        handles.append(
            block.attn.register_forward_hook(
                lambda _module, _args, out, layer=layer: outputs.__setitem__(layer, out)
            )
        )
    try:
        with torch.no_grad():
            model(clip, strength)
    finally:
        for handle in handles:
            handle.remove()
    return {layer: (inputs[layer], outputs[layer]) for layer in inputs}


def brute_force_rows(
    model: Page4D, tokens: torch.Tensor, layer: int, mask_score: torch.Tensor, strength: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full (N x N) softmax(QK^T/sqrt(d) + r_i c_j) of one global block, from its weights.

    Returns the camera rows averaged over heads (S, N), all probabilities (heads, N, N), and
    the values (heads, N, d).
    """
    config = model.config
    attention = model.aggregator.global_blocks[layer].attn
    normed = model.aggregator.global_blocks[layer].norm1(tokens)[0]  # (N, C)
    tokens_n, frames = normed.shape[0], mask_score.shape[1]
    per_frame = tokens_n // frames
    heads, head_dim = attention.num_heads, attention.head_dim
    q, k, v = attention.qkv(normed).reshape(tokens_n, 3, heads, head_dim).permute(1, 2, 0, 3)
    q, k = attention.q_norm(q), attention.k_norm(k)
    grid = tuple(mask_score.shape[-2:])
    positions = patch_positions(*grid, config.patch_start_idx, q.device).repeat(frames, 1)
    tables = rotary_tables(positions, head_dim, config.rope_frequency, q.dtype)
    q, k = apply_rotary(q[None], tables)[0], apply_rotary(k[None], tables)[0]
    is_special = torch.arange(tokens_n) % per_frame < config.patch_start_idx
    row = torch.where(is_special, strength, 0.0).double()
    column = torch.zeros(frames, per_frame, dtype=torch.float64)
    column[:, config.patch_start_idx :] = mask_score[0].reshape(frames, -1)
    bias = row[:, None] * column.reshape(-1)[None, :]
    probabilities = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias, dim=-1)
    camera_rows = probabilities[:, ::per_frame].mean(dim=0)  # (S, N)
    return camera_rows, probabilities, v


@pytest.mark.parametrize("strength", [0.0, 64.0])
def test_camera_attention_matches_a_brute_force_softmax(
    clip_images, few_layer_model, strength: float
) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL), clip_images()
    with torch.no_grad():
        output = model(clip, strength, return_attention=True)
    blocks = capture_global_blocks(model, clip, strength)
    inspection = output.inspection
    assert inspection is not None and inspection.attention_layers == (2, 3, 4)
    frames, (grid_h, grid_w) = clip.shape[0], output.mask_score.shape[-2:]
    assert inspection.attention.shape == (1, 3, frames, frames, grid_h, grid_w)
    assert inspection.attention_special.shape == (1, 3, frames, frames)
    specials = model.config.patch_start_idx
    for index, layer in enumerate(inspection.attention_layers):
        tokens, attention_out = blocks[layer]
        rows, probabilities, values = brute_force_rows(
            model, tokens, layer, output.mask_score, strength
        )
        # The brute force is the model's own attention: it reproduces the block's output.
        mixed = (probabilities @ values).transpose(0, 1).reshape(1, values.shape[1], -1)
        with torch.no_grad():
            reproduced = model.aggregator.global_blocks[layer].attn.proj(mixed)
        torch.testing.assert_close(reproduced, attention_out, rtol=1e-9, atol=1e-11)
        rows = rows.reshape(frames, frames, -1)
        torch.testing.assert_close(
            inspection.attention[0, index],
            rows[..., specials:].reshape(frames, frames, grid_h, grid_w),
            rtol=1e-10,
            atol=1e-13,
        )
        torch.testing.assert_close(
            inspection.attention_special[0, index],
            rows[..., :specials].sum(-1),
            rtol=1e-10,
            atol=1e-13,
        )
    total = inspection.attention.sum(dim=(-3, -2, -1)) + inspection.attention_special.sum(-1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)


def test_pair_records_each_variant_and_matches_single_passes(clip_images, few_layer_model) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL), clip_images()
    request = AttentionRequest(layers=(2, 4), query_frames=(0, 2), feature_layers=(1, 4))
    with torch.no_grad():
        masked, unmasked = model.forward_pair(
            clip, 64.0, unmasked_geometry=False, return_attention=request
        )
        alone = model(clip, 0.0, return_attention=request).inspection
    for inspection in (masked.inspection, unmasked.inspection):
        assert inspection.attention.shape == (1, 2, 2, 3, 2, 3)
        assert inspection.feature_pca.shape == (1, 2, 3, 2, 3, 3)
        assert inspection.feature_pca.dtype == torch.uint8
    torch.testing.assert_close(unmasked.inspection.attention, alone.attention)
    torch.testing.assert_close(unmasked.inspection.feature_pca, alone.feature_pca)
    # The mask bias moves the camera tokens' attention; layer 1 precedes it (shared features).
    assert not torch.allclose(masked.inspection.attention, unmasked.inspection.attention)
    assert torch.equal(masked.inspection.feature_pca[:, 0], unmasked.inspection.feature_pca[:, 0])


def test_query_frame_subset_is_a_slice_of_all_frames(clip_images, few_layer_model) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL), clip_images()
    with torch.no_grad():
        full = model(clip, 64.0, return_attention=True).inspection
        part = model(clip, 64.0, return_attention=AttentionRequest(query_frames=(1,))).inspection
    assert part.query_frames == (1,)
    torch.testing.assert_close(part.attention, full.attention[:, :, 1:2])
    torch.testing.assert_close(part.attention_special, full.attention_special[:, :, 1:2])


def test_mask_steers_camera_attention_away_from_low_scores(clip_images, few_layer_model) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL), clip_images()
    with torch.no_grad():
        masked, unmasked = model.forward_pair(clip, 64.0, return_attention=True)
    low = (masked.mask_score < 0)[:, None, None]  # (1, 1, 1, S, h, w) over key patches
    on_low = [(out.inspection.attention * low).sum() for out in (masked, unmasked)]
    assert on_low[0] < on_low[1]


def test_plain_inference_is_unchanged_and_records_nothing(clip_images, few_layer_model) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL), clip_images()
    with torch.no_grad():
        plain = model(clip, 64.0)
        inspected = model(clip, 64.0, return_attention=True)
    assert plain.inspection is None
    for name in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert torch.equal(getattr(plain, name), getattr(inspected, name)), name


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (AttentionRequest(layers=(1,)), "only masked layers"),
        (AttentionRequest(feature_layers=(6,)), "feature layers"),
        (AttentionRequest(query_frames=(3,)), "query frames"),
        (AttentionRequest(query_frames=()), "query frames"),
        ("yes", "bool or an AttentionRequest"),
    ],
)
def test_bad_requests_are_refused(
    clip_images, few_layer_model, request_: object, message: str
) -> None:
    with pytest.raises(Page4DError, match=message):
        few_layer_model(**ATTENTION_MODEL)(clip_images(), 64.0, return_attention=request_)


def test_default_layers_follow_the_config() -> None:
    official = ModelConfig.from_name("official")
    assert default_attention_layers(official) == (10, 15, 19)
    assert default_feature_layers(official) == (9, 19)
    small = ModelConfig.from_name("small")
    assert default_attention_layers(small) == (5, 7, 9)
    assert default_feature_layers(small) == (4, 9)


def test_feature_pca_matches_numpy_svd() -> None:
    generator = torch.Generator().manual_seed(3)
    frames, grid, channels = 4, (3, 5), 12
    basis = torch.linalg.qr(
        torch.randn(channels, channels, generator=generator, dtype=torch.float64)
    )[0]
    scales = torch.tensor([9.0, 5.0, 3.0] + [0.3] * (channels - 3), dtype=torch.float64)
    coefficients = torch.randn(frames * 15, channels, generator=generator, dtype=torch.float64)
    tokens = (coefficients * scales) @ basis.T + 2.0
    rgb = feature_pca(tokens.reshape(1, frames, 15, channels), grid)
    assert rgb.shape == (1, frames, *grid, 3) and rgb.dtype == torch.uint8

    centred = (tokens - tokens.mean(0)).numpy()
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:3].T
    components *= np.sign(components[np.abs(components).argmax(0), range(3)])
    projected = centred @ components
    low, high = np.quantile(projected, [0.01, 0.99], axis=0)
    expected = np.round(np.clip((projected - low) / (high - low), 0, 1) * 255)
    difference = np.abs(rgb.reshape(-1, 3).numpy().astype(float) - expected)
    assert difference.max() <= 1


def test_bf16_autocast_still_gives_float32_probabilities(clip_images, few_layer_model) -> None:
    model, clip = few_layer_model(**ATTENTION_MODEL).float(), clip_images().float()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        inspection = model(clip, 64.0, return_attention=True).inspection
    assert inspection.attention.dtype == torch.float32
    total = inspection.attention.sum(dim=(-3, -2, -1)) + inspection.attention_special.sum(-1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-5)
    assert inspection.feature_pca.dtype == torch.uint8
