"""The per-frame image encoder: a DINOv2 ViT with register tokens.

Parameter names follow the released checkpoints (`aggregator.patch_embed.*`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.layers import Block

# DINOv2 layer-scale initial value; only matters for freshly initialised models.
_ENCODER_LAYER_SCALE = 1.0


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size convolution to embed_dim channels."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        """Args: images (F, 3, H, W). Returns (F, H/p * W/p, embed_dim), row-major patches."""
        return self.proj(images).flatten(2).transpose(1, 2)


class DinoEncoder(nn.Module):
    """DINOv2 ViT with registers; returns the final-norm patch tokens of every frame."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.embed_dim
        grid = config.img_size // config.patch_size
        self.patch_size = config.patch_size
        self.patch_embed = PatchEmbed(config.patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
        # Unused at inference (DINOv2's masked-image-modelling token); kept so checkpoints load.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.blocks = nn.ModuleList(
            Block(
                dim,
                config.encoder_heads,
                config.mlp_ratio,
                layer_scale=_ENCODER_LAYER_SCALE,
                norm_eps=1e-6,
            )
            for _ in range(config.encoder_depth)
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.num_register_tokens = config.num_register_tokens

    def position_embedding(self, grid_h: int, grid_w: int, dtype: torch.dtype) -> Tensor:
        """The learned position embedding resized to a grid_h x grid_w patch grid.

        Bicubic with antialias and no offset, computed in float32 as the released encoder does
        (whatever the model dtype), then cast to `dtype`.

        Returns:
            (1, 1 + grid_h * grid_w, embed_dim): class-token entry first, then row-major patches.
        """
        side = int(round((self.pos_embed.shape[1] - 1) ** 0.5))
        if grid_h == side and grid_w == side:
            return self.pos_embed.to(dtype)
        table = self.pos_embed.float()
        dim = table.shape[-1]
        patches = table[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patches = patches.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat((table[:, :1], patches), dim=1).to(dtype)

    def embed(self, images: Tensor) -> Tensor:
        """Tokens entering the first block: [cls, registers, patches] with position embedding.

        Args:
            images: (F, 3, H, W), already normalised with the ImageNet mean and std.

        Returns:
            (F, 1 + registers + H/p * W/p, embed_dim).
        """
        frames, _, height, width = images.shape
        patches = self.patch_embed(images)
        # torch.cat promotes: under autocast the residual stream stays in the parameters' dtype.
        tokens = torch.cat((self.cls_token.expand(frames, -1, -1), patches), dim=1)
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        tokens = tokens + self.position_embedding(grid_h, grid_w, tokens.dtype)
        registers = self.register_tokens.expand(frames, -1, -1)
        return torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)

    def forward(self, images: Tensor, on_block: Callable[[int, int], None] | None = None) -> Tensor:
        """Encode frames.

        Args:
            images: (F, 3, H, W), normalised.
            on_block: called as on_block(done, total) after each block.

        Returns:
            (F, H/p * W/p, embed_dim) final-norm patch tokens.
        """
        tokens = self.embed(images)
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if on_block is not None:
                on_block(index + 1, len(self.blocks))
        return self.norm(tokens)[:, 1 + self.num_register_tokens :]
