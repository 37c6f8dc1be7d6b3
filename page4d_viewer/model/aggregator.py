"""The aggregator: alternating frame/global attention with PAGE-4D's dynamic mask.

Work is split into resumable steps (`start`, then `advance` over a range of layers) so that
the masked and unmasked variants can share the encoder and the layers before the first masked
layer: `AggregatorState.branch()` forks a state without copying tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from page4d_viewer.model.attention import Inspection, TokenLayout
from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.encoder import DinoEncoder
from page4d_viewer.model.layers import (
    Block,
    QueryKeyProbe,
    RankOneBias,
    RotaryTables,
    patch_positions,
    rotary_tables,
)

# ImageNet statistics the encoder was trained with. Rounded to float32 first because the
# released model holds them as float32 buffers (float64 runs then match it exactly). Not
# buffers here, so that a model built on the meta device needs nothing re-created.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class MaskHead(nn.Module):
    """Scores every patch of every frame: m in (-0.5, 0.5).

    Tokens are normalised per channel over the frame (mean, unbiased std clamped at 1e-6),
    then depthwise 3x3 conv -> GELU -> 1x1 conv -> GELU -> 1x1 conv to one channel z, and
    m = sigmoid(z + channel-mean of the normalised tokens) - 0.5.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.head0 = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, hidden, kernel_size=1),
            nn.GELU(),
            nn.Conv2d(hidden, 1, kernel_size=1),
        )

    def forward(self, patch_tokens: Tensor, grid_h: int, grid_w: int) -> Tensor:
        """Args: patch_tokens (F, grid_h * grid_w, dim). Returns m, (F, grid_h, grid_w)."""
        frames, _, dim = patch_tokens.shape
        image = patch_tokens.transpose(1, 2).reshape(frames, dim, grid_h, grid_w)
        mean = image.mean(dim=(2, 3), keepdim=True)
        std = image.std(dim=(2, 3), keepdim=True).clamp(min=1e-6)
        normalised = (image - mean) / std
        logit = self.head0(normalised) + normalised.mean(dim=1, keepdim=True)
        return (torch.sigmoid(logit) - 0.5)[:, 0]


@dataclass
class AggregatorState:
    """Where an aggregator run stands: the running tokens and what the heads will read.

    Attributes:
        tokens: (B*S, P, C) tokens after layer `next_layer - 1` (P = specials + patches).
        batch, frames: B and S.
        grid: (h, w) patch grid.
        next_layer: first layer still to run.
        kept: layer index -> (B, S, P, 2C) output of that layer (frame and global halves).
        mask_score: (B, S, h, w) mask score m once the mask head has run, else None.
        inspection: what to record of the attention and features (see `model.attention`),
            or None (plain inference records nothing).
    """

    tokens: Tensor
    batch: int
    frames: int
    grid: tuple[int, int]
    next_layer: int = 0
    kept: dict[int, Tensor] = field(default_factory=dict)
    mask_score: Tensor | None = None
    inspection: Inspection | None = None

    def branch(self) -> AggregatorState:
        """A copy that can advance independently (tensors are shared, never modified in place)."""
        inspection = None if self.inspection is None else self.inspection.branch()
        return replace(self, kept=dict(self.kept), inspection=inspection)


class Aggregator(nn.Module):
    """Encoder + camera/register tokens + `depth` layers of frame and global attention."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = DinoEncoder(config)
        self.frame_blocks = nn.ModuleList(self._block(config) for _ in range(config.depth))
        self.global_blocks = nn.ModuleList(self._block(config) for _ in range(config.depth))
        # Index 0: the first frame's tokens; index 1: every other frame's.
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, config.num_register_tokens, dim))
        self.spatial_mask_head = (
            MaskHead(dim, config.mask_head_hidden) if config.has_mask_head else None
        )

    @staticmethod
    def _block(config: ModelConfig) -> Block:
        return Block(
            config.embed_dim,
            config.num_heads,
            config.mlp_ratio,
            layer_scale=config.layer_scale_init,
            qk_norm=True,
        )

    def _special_tokens(self, batch: int, frames: int) -> Tensor:
        """(B*S, 1 + registers, C): first frame gets index 0 tokens, the others index 1."""
        special = torch.cat((self.camera_token, self.register_token), dim=2)  # (1, 2, 1+R, C)
        first = special[:, :1].expand(batch, 1, -1, -1)
        others = special[:, 1:].expand(batch, frames - 1, -1, -1)
        return torch.cat((first, others), dim=1).reshape(batch * frames, *special.shape[2:])

    def start(
        self, images: Tensor, on_encoder_block: Callable[[int, int], None] | None = None
    ) -> AggregatorState:
        """Encode the frames and build the aggregator's input tokens.

        Args:
            images: (B, S, 3, H, W) RGB in [0, 1], H and W multiples of patch_size.
            on_encoder_block: progress hook, on_encoder_block(done, total).
        """
        batch, frames, _, height, width = images.shape
        flat = images.reshape(batch * frames, 3, height, width)
        mean, std = (
            torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1).to(flat)
            for values in (_IMAGENET_MEAN, _IMAGENET_STD)
        )
        flat = (flat - mean) / std
        patches = self.patch_embed(flat, on_block=on_encoder_block)
        tokens = torch.cat((self._special_tokens(batch, frames), patches), dim=1)
        patch = self.config.patch_size
        return AggregatorState(tokens, batch, frames, (height // patch, width // patch))

    def advance(
        self,
        state: AggregatorState,
        stop: int,
        mask_strength: float,
        on_layer: Callable[[int], None] | None = None,
    ) -> AggregatorState:
        """Run layers state.next_layer .. stop - 1 in place on `state` and return it.

        Args:
            state: from `start` (or a `branch` of an advanced state).
            stop: layer to stop before (<= depth).
            mask_strength: alpha, the weight of the mask bias in the masked layers.
            on_layer: progress hook called with each finished layer index.
        """
        config = self.config
        batch, frames = state.batch, state.frames
        tokens = state.tokens
        specials, dim = config.patch_start_idx, config.embed_dim
        per_frame = tokens.shape[1]
        rope_frame = self._rope(state.grid, tokens)
        rope_global = RotaryTables(
            rope_frame.cos.repeat(frames, 1), rope_frame.sin.repeat(frames, 1)
        )
        bias = None
        for layer in range(state.next_layer, stop):
            tokens = self.frame_blocks[layer](tokens, rope=rope_frame)
            frame_out = tokens
            if self.spatial_mask_head is not None and layer == config.mask_after_layer:
                grid_h, grid_w = state.grid
                score = self.spatial_mask_head(tokens.detach()[:, specials:], grid_h, grid_w)
                state.mask_score = score.reshape(batch, frames, grid_h, grid_w)
            if layer in config.masked_layers and mask_strength != 0.0:
                if bias is None:
                    bias = self._mask_bias(state, mask_strength, per_frame)
                layer_bias = bias
            else:
                layer_bias = None
            tokens = tokens.reshape(batch, frames * per_frame, dim)
            probe = self._probe(state, layer, layer_bias)
            tokens = self.global_blocks[layer](
                tokens, rope=rope_global, bias=layer_bias, probe=probe
            )
            tokens = tokens.reshape(batch * frames, per_frame, dim)
            self._keep(state, layer, frame_out, tokens)
            state.tokens, state.next_layer = tokens, layer + 1
            if on_layer is not None:
                on_layer(layer)
        return state

    def _probe(
        self, state: AggregatorState, layer: int, bias: RankOneBias | None
    ) -> QueryKeyProbe | None:
        """The camera-attention recorder for this layer's global block, if one is asked for."""
        inspection = state.inspection
        if inspection is None or layer not in inspection.attention_layers:
            return None
        layout = TokenLayout(state.frames, self.config.patch_start_idx, state.grid)

        def probe(q: Tensor, k: Tensor) -> None:
            inspection.record_attention(layer, q, k, bias, layout)

        return probe

    def _keep(
        self, state: AggregatorState, layer: int, frame_out: Tensor, global_out: Tensor
    ) -> None:
        """Keep a layer's output (B, S, P, 2C) for the heads, and its PCA if one is asked for.

        Args:
            frame_out, global_out: (B*S, P, C) outputs of the layer's frame and global blocks.
        """
        inspection = state.inspection
        wanted = inspection is not None and layer in inspection.feature_layers
        if layer not in self.config.kept_layers and not wanted:
            return
        batch, frames = state.batch, state.frames
        output = torch.cat((frame_out, global_out), dim=-1)
        output = output.reshape(batch, frames, output.shape[1], output.shape[2])
        if layer in self.config.kept_layers:
            state.kept[layer] = output
        if inspection is not None and wanted:
            layout = TokenLayout(frames, self.config.patch_start_idx, state.grid)
            inspection.record_features(layer, output, layout)

    def _rope(self, grid: tuple[int, int], tokens: Tensor) -> RotaryTables:
        positions = patch_positions(*grid, self.config.patch_start_idx, tokens.device)
        return rotary_tables(
            positions, self.config.head_dim, self.config.rope_frequency, tokens.dtype
        )

    def _mask_bias(self, state: AggregatorState, strength: float, per_frame: int) -> RankOneBias:
        """Rank-one bias: strength on camera/register queries, m on patch keys."""
        if state.mask_score is None:
            raise RuntimeError("masked layer reached before the mask head ran")
        batch, frames = state.batch, state.frames
        specials = self.config.patch_start_idx
        scores = state.mask_score.reshape(batch, frames, -1)
        key_score = torch.cat((scores.new_zeros(batch, frames, specials), scores), dim=-1)
        starts = torch.arange(frames, device=scores.device)[:, None] * per_frame
        query_index = (starts + torch.arange(specials, device=scores.device)).reshape(-1)
        query_weight = scores.new_full((batch, query_index.numel()), strength)
        return RankOneBias(query_index, query_weight, key_score.reshape(batch, -1))
