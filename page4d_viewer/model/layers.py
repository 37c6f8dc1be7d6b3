"""Transformer building blocks shared by the encoder, the aggregator and the camera head.

Module and parameter names follow the released checkpoints (`qkv`, `q_norm`, `ls1.gamma`,
`mlp.fc1`, ...), so a state dict loads without renaming.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from typing_extensions import Unpack


@dataclass(frozen=True)
class RotaryTables:
    """Per-token cosines and sines of the 2-D rotary embedding.

    Attributes:
        cos: (N, head_dim); first half rotates with the row position, second with the column.
        sin: (N, head_dim), negated on the first quarter of each half, so that a rotation is
            x * cos + swap(x) * sin with swap([a, b]) = [b, a] within each half.
    """

    cos: Tensor
    sin: Tensor


QueryKeyProbe = Callable[[Tensor, Tensor], None]
"""Called with the rotated (q, k), each (B, heads, N, d), of an attention that is inspected."""


def patch_positions(grid_h: int, grid_w: int, num_special: int, device: torch.device) -> Tensor:
    """Integer (row, col) positions of one frame's tokens for the 2-D RoPE.

    Special tokens (camera, registers) sit at (0, 0); patches start at (1, 1), so that no
    patch shares the special tokens' position.

    Returns:
        (num_special + grid_h * grid_w, 2) int64.
    """
    rows = torch.arange(grid_h, device=device).view(grid_h, 1).expand(grid_h, grid_w)
    cols = torch.arange(grid_w, device=device).view(1, grid_w).expand(grid_h, grid_w)
    patches = torch.stack((rows, cols), dim=-1).reshape(grid_h * grid_w, 2) + 1
    special = torch.zeros(num_special, 2, dtype=patches.dtype, device=device)
    return torch.cat((special, patches), dim=0)


def rotary_tables(
    positions: Tensor, head_dim: int, frequency: float, dtype: torch.dtype
) -> RotaryTables:
    """Cosine and sine tables of the 2-D RoPE for given token positions.

    Each half of a head (row half, column half) is rotated as a 1-D RoPE over head_dim / 2
    features. The angles are computed in float32 whatever `dtype` is: that is what the released
    implementation does, so float32 runs match it bit for bit and float64 runs agree to ~1e-7.

    Args:
        positions: (N, 2) int64 (row, col).
        head_dim: attention head width (multiple of 4).
        frequency: RoPE base frequency.
        dtype: dtype of the returned tables.
    """
    half = head_dim // 2
    exponents = torch.arange(0, half, 2, device=positions.device).float() / half
    inv_freq = 1.0 / (frequency**exponents)  # (half / 2,)
    parts_cos, parts_sin = [], []
    for axis in range(2):
        angles = positions[:, axis].float()[:, None] * inv_freq[None, :]
        angles = angles.to(dtype)  # (N, half / 2)
        sin, cos = angles.sin(), angles.cos()
        parts_cos.append(torch.cat((cos, cos), dim=-1))
        parts_sin.append(torch.cat((-sin, sin), dim=-1))
    return RotaryTables(cos=torch.cat(parts_cos, dim=-1), sin=torch.cat(parts_sin, dim=-1))


def apply_rotary(x: Tensor, tables: RotaryTables) -> Tensor:
    """Rotate queries or keys.

    Args:
        x: (batch, heads, N, head_dim).
        tables: cos/sin of shape (N, head_dim).

    Returns:
        (batch, heads, N, head_dim).
    """
    quarter = x.shape[-1] // 4
    # Within each half [a, b] -> [b, a]; the sign of the rotation lives in tables.sin.
    swapped = x.unflatten(-1, (2, 2, quarter)).flip(-2).flatten(-3)
    return x * tables.cos + swapped * tables.sin


@dataclass(frozen=True)
class RankOneBias:
    """An additive attention-logit term `r_i * c_j` (PAGE-4D's masked global attention).

    Only a few queries carry a weight r_i != 0 (the camera and register tokens); every other
    query attends without bias.

    Attributes:
        query_index: (M,) int64 positions of the weighted queries among the N tokens.
        query_weight: (B, M) their weights r (the mask strength).
        key_score: (B, N) score c of every key (mask score m on patches, 0 elsewhere).
    """

    query_index: Tensor
    query_weight: Tensor
    key_score: Tensor


def attention_with_bias(q: Tensor, k: Tensor, v: Tensor, bias: RankOneBias | None) -> Tensor:
    """Scaled dot-product attention, optionally with a rank-one additive logit bias.

    Queries with r_i = 0 are unaffected by the bias, so all queries first attend plainly (fast
    fused kernels, no extra memory); the M weighted queries are then recomputed with the
    additive mask r_i * c_j, which is only (B, 1, M, N). Exact, and much cheaper than
    widening every query and key by one channel.

    Args:
        q, k, v: (B, heads, N, d).
        bias: optional rank-one bias over the N tokens.

    Returns:
        (B, heads, N, d).
    """
    out = F.scaled_dot_product_attention(q, k, v)
    if bias is None:
        return out
    index = bias.query_index
    logit_bias = bias.query_weight[:, None, :, None] * bias.key_score[:, None, None, :]
    weighted = F.scaled_dot_product_attention(
        q.index_select(2, index), k, v, attn_mask=logit_bias.to(q.dtype)
    )
    return out.index_copy(2, index, weighted)


class LayerScale(nn.Module):
    """Per-channel residual scale (`gamma`)."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with optional qk-LayerNorm, 2-D RoPE and rank-one bias."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm: nn.Module = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: Tensor,
        rope: RotaryTables | None = None,
        bias: RankOneBias | None = None,
        probe: QueryKeyProbe | None = None,
    ) -> Tensor:
        """Attend over the N tokens of each batch row.

        Args:
            x: (B, N, dim).
            rope: rotary tables for the N tokens, or None.
            bias: rank-one logit bias, or None.
            probe: optional observer of the rotated queries and keys (does not change them).

        Returns:
            (B, N, dim).
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rotary(q, rope), apply_rotary(k, rope)
        if probe is not None:
            probe(q, k)
        out = attention_with_bias(q, k, v, bias)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class AttentionExtras(TypedDict, total=False):
    """The keywords `Attention.forward` takes besides the tokens; a `Block` passes them on."""

    rope: RotaryTables | None
    bias: RankOneBias | None
    probe: QueryKeyProbe | None


class Block(nn.Module):
    """Pre-norm transformer block with layer scale: x + ls1(attn(norm1 x)), + ls2(mlp(norm2 x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        layer_scale: float,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, layer_scale)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, layer_scale)

    def forward(self, x: Tensor, **extras: Unpack[AttentionExtras]) -> Tensor:
        """Args: x (B, N, dim); ``extras`` go to `Attention` as they are. Returns (B, N, dim)."""
        x = x + self.ls1(self.attn(self.norm1(x), **extras))
        return x + self.ls2(self.mlp(self.norm2(x)))
