"""Seeing inside the model: camera-token attention maps and patch-feature PCA, on request.

Nothing here runs unless a caller asks (`Page4D.forward(..., return_attention=True)`): plain
inference never builds a probe. Two things are recorded while the aggregator runs:

- **Camera-token attention.** In each requested masked layer's global block, the softmax row
  of every requested frame's camera token over all S * P keys (P = 1 + registers + h * w
  tokens per frame), *averaged* over heads (so one row sums to 1), with the rank-one mask bias
  `r_i * c_j` included when the layer runs with it. Only these S_query rows are computed:
  (heads, S_query, S * P) logits, never the (S * P)^2 matrix. The patch part is returned as
  (S_query, S, h, w) maps; the mass that went to the camera and register tokens of each key
  frame is returned separately as (S_query, S), so patch maps plus special mass sum to 1.
- **Feature PCA.** For requested layers, the patch tokens the heads read (frame and global
  halves, 2C channels) of all frames, projected on their first three principal components
  (fitted over the whole clip), each scaled to [0, 1] between its 1st and 99th percentile,
  as uint8 RGB (S, h, w, 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from page4d_viewer.errors import Page4DError
from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.layers import RankOneBias

# Robust range of each principal component: values at these percentiles map to 0 and 1.
PCA_PERCENTILES = (0.01, 0.99)


def default_attention_layers(config: ModelConfig) -> tuple[int, ...]:
    """First, middle and last masked layer: what a result file stores unless asked otherwise.

    All masked layers of both variants would be (2 * L, S, S, h, w) float16; at 32 frames of
    the official 518 x 294 layout (37 x 21 patches, 10 masked layers) that is 31.9 MB, more
    than the 25 % of a result file that attention may take (docs/benchmarks.md).
    """
    layers = config.masked_layers
    if not layers:
        return ()
    return tuple(sorted({layers[0], layers[len(layers) // 2], layers[-1]}))


def default_feature_layers(config: ModelConfig) -> tuple[int, ...]:
    """The mask head's layer and the last masked layer (where dynamic content shows up)."""
    layers = {config.mask_after_layer}
    if config.masked_layers:
        layers.add(config.masked_layers[-1])
    return tuple(sorted(layers))


@dataclass(frozen=True)
class AttentionRequest:
    """What to record: which layers' camera attention, which frames' queries, which features.

    Attributes:
        layers: masked layers whose camera-token attention is recorded; None: the default
            (`default_attention_layers`).
        query_frames: frames (positions 0..S-1) whose camera token is the query; None: all.
        feature_layers: aggregator layers whose patch tokens get a PCA; None: the default
            (`default_feature_layers`); () for none.
    """

    layers: tuple[int, ...] | None = None
    query_frames: tuple[int, ...] | None = None
    feature_layers: tuple[int, ...] | None = None

    def resolve(self, config: ModelConfig, frames: int) -> ResolvedRequest:
        """Fill in the defaults and check the indices against the model and the clip.

        Raises:
            Page4DError: a layer that is not masked (attention) or not in the model
                (features), or a query frame outside 0..frames-1.
        """
        layers = default_attention_layers(config) if self.layers is None else self.layers
        layers = tuple(sorted({int(i) for i in layers}))
        if any(i not in config.masked_layers for i in layers):
            raise Page4DError(
                f"attention layers {list(layers)}: only masked layers "
                f"{list(config.masked_layers)} can be recorded"
            )
        features = self.feature_layers
        features = default_feature_layers(config) if features is None else features
        features = tuple(sorted({int(i) for i in features}))
        if any(not 0 <= i < config.depth for i in features):
            raise Page4DError(f"feature layers {list(features)} outside 0..{config.depth - 1}")
        queries = tuple(range(frames)) if self.query_frames is None else self.query_frames
        queries = tuple(sorted({int(i) for i in queries}))
        if not queries or any(not 0 <= i < frames for i in queries):
            raise Page4DError(
                f"attention query frames {list(queries)}: need at least one, within 0..{frames - 1}"
            )
        return ResolvedRequest(layers, queries, features)


@dataclass(frozen=True)
class ResolvedRequest:
    """An `AttentionRequest` with defaults filled in (sorted, checked indices)."""

    layers: tuple[int, ...]
    query_frames: tuple[int, ...]
    feature_layers: tuple[int, ...]


def as_request(value: bool | AttentionRequest | None) -> AttentionRequest | None:
    """`return_attention` argument -> a request (True: the defaults) or None (False/None)."""
    if value is None or value is False:
        return None
    if value is True:
        return AttentionRequest()
    if isinstance(value, AttentionRequest):
        return value
    raise Page4DError(f"return_attention must be a bool or an AttentionRequest, got {value!r}")


@dataclass
class Inspection:
    """What the model showed of itself in one run (batch of B clips of S frames).

    Attributes:
        attention_layers: the L recorded layers, ascending.
        query_frames: the S_query frames whose camera token is the query, ascending.
        attention: (B, L, S_query, S, h, w) camera-token attention on each key frame's patches,
            averaged over heads (float32).
        attention_special: (B, L, S_query, S) attention mass on each key frame's camera and
            register tokens; attention summed over (S, h, w) plus this summed over S is 1.
        feature_layers: the L_f layers with a feature PCA, ascending.
        feature_pca: (B, L_f, S, h, w, 3) uint8 first three principal components as RGB.
    """

    attention_layers: tuple[int, ...]
    query_frames: tuple[int, ...]
    feature_layers: tuple[int, ...]
    attention: Tensor | None = None
    attention_special: Tensor | None = None
    feature_pca: Tensor | None = None
    _attention: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)
    _features: dict[int, Tensor] = field(default_factory=dict, repr=False)

    @classmethod
    def for_request(cls, request: ResolvedRequest) -> Inspection:
        """An empty record that the aggregator fills layer by layer."""
        return cls(request.layers, request.query_frames, request.feature_layers)

    def branch(self) -> Inspection:
        """A copy sharing the layers recorded so far (see `AggregatorState.branch`)."""
        copy = Inspection(self.attention_layers, self.query_frames, self.feature_layers)
        copy._attention, copy._features = dict(self._attention), dict(self._features)
        return copy

    def record_attention(
        self, layer: int, q: Tensor, k: Tensor, bias: RankOneBias | None, layout: TokenLayout
    ) -> None:
        """Keep the camera rows' attention of one global block (q, k: (B, heads, S*P, d))."""
        self._attention[layer] = camera_attention(q, k, bias, self.query_frames, layout)

    def record_features(self, layer: int, tokens: Tensor, layout: TokenLayout) -> None:
        """Keep the PCA colours of one layer's output tokens (B, S, P, 2C)."""
        self._features[layer] = feature_pca(tokens[:, :, layout.specials :], layout.grid)

    def finish(self) -> Inspection:
        """Stack the per-layer records into the public (B, L, ...) tensors; returns self.

        Raises:
            RuntimeError: a requested layer never ran.
        """
        missing = [i for i in self.attention_layers if i not in self._attention]
        missing += [i for i in self.feature_layers if i not in self._features]
        if missing:
            raise RuntimeError(f"layers {missing} were requested but not recorded")
        if self.attention_layers:
            maps = [self._attention[i] for i in self.attention_layers]
            self.attention = torch.stack([patch for patch, _ in maps], dim=1)
            self.attention_special = torch.stack([special for _, special in maps], dim=1)
        if self.feature_layers:
            self.feature_pca = torch.stack([self._features[i] for i in self.feature_layers], 1)
        return self


@dataclass(frozen=True)
class TokenLayout:
    """How the global blocks' S * P tokens are laid out: per frame, specials then patches."""

    frames: int
    specials: int
    grid: tuple[int, int]

    @property
    def per_frame(self) -> int:
        """P: tokens per frame."""
        return self.specials + self.grid[0] * self.grid[1]


def camera_attention(
    q: Tensor,
    k: Tensor,
    bias: RankOneBias | None,
    query_frames: Sequence[int],
    layout: TokenLayout,
) -> tuple[Tensor, Tensor]:
    """Softmax rows of the chosen frames' camera tokens, averaged over heads.

    Computes only S_query rows: (B, heads, S_query, S*P) logits q_i k_j / sqrt(d) + r_i c_j,
    in at least float32 with autocast off (bf16/fp16 runs are upcast).

    Args:
        q, k: (B, heads, S*P, d) rotated queries and keys of a global block.
        bias: the block's rank-one mask bias, or None (unmasked run).
        query_frames: S_query frame positions whose camera token (token 0 of the frame) queries.
        layout: the token layout (S, specials per frame, patch grid).

    Returns:
        patches (B, S_query, S, h, w) and specials (B, S_query, S): attention on each key
        frame's patches and the summed attention on its camera and register tokens.
    """
    batch, _, tokens, _ = q.shape
    if tokens != layout.frames * layout.per_frame:
        raise ValueError(f"{tokens} tokens do not match the layout {layout}")
    with torch.autocast(device_type=q.device.type, enabled=False):
        weights = _camera_rows(q, k, bias, query_frames, layout)
    weights = weights.reshape(batch, len(query_frames), layout.frames, layout.per_frame)
    special = weights[..., : layout.specials].sum(dim=-1)
    patches = weights[..., layout.specials :].reshape(*weights.shape[:3], *layout.grid)
    return patches, special


def _camera_rows(
    q: Tensor,
    k: Tensor,
    bias: RankOneBias | None,
    query_frames: Sequence[int],
    layout: TokenLayout,
) -> Tensor:
    """(B, S_query, S*P) softmax rows of the camera queries, averaged over heads."""
    batch, _, tokens, head_dim = q.shape
    dtype = torch.promote_types(q.dtype, torch.float32)
    frames = torch.as_tensor(list(query_frames), device=q.device, dtype=torch.long)
    rows = frames * layout.per_frame
    queries = q.index_select(2, rows).to(dtype)
    logits = queries @ k.to(dtype).transpose(-1, -2) / math.sqrt(head_dim)
    if bias is not None:
        weight = bias.query_weight.new_zeros(batch, tokens)
        weight = weight.index_copy(1, bias.query_index, bias.query_weight)
        row_weight = weight.index_select(1, rows).to(dtype)  # (B, S_query)
        logits = logits + row_weight[:, None, :, None] * bias.key_score[:, None, None].to(dtype)
    return logits.softmax(dim=-1).mean(dim=1)


def feature_pca(patch_tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    """First three principal components of a clip's patch tokens as uint8 RGB.

    The components are fitted over all frames of each clip (covariance eigenvectors, in at
    least float32, autocast off); each component's sign makes its largest loading positive,
    and its values are mapped to [0, 1] between the `PCA_PERCENTILES` of the clip, then
    clipped.

    Args:
        patch_tokens: (B, S, h*w, D) tokens.
        grid: (h, w).

    Returns:
        (B, S, h, w, 3) uint8.
    """
    with torch.autocast(device_type=patch_tokens.device.type, enabled=False):
        return _feature_pca(patch_tokens, grid)


def _feature_pca(patch_tokens: Tensor, grid: tuple[int, int]) -> Tensor:
    batch, frames, patches, channels = patch_tokens.shape
    dtype = torch.promote_types(patch_tokens.dtype, torch.float32)
    flat = patch_tokens.to(dtype).reshape(batch, frames * patches, channels)
    centred = flat - flat.mean(dim=1, keepdim=True)
    covariance = centred.transpose(1, 2) @ centred / max(frames * patches - 1, 1)
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    components = vectors[..., -3:].flip(-1)  # (B, D, k), k <= 3 when D < 3
    largest = components.abs().argmax(dim=1, keepdim=True)
    sign = components.gather(1, largest).sign()
    components = components * torch.where(sign == 0, torch.ones_like(sign), sign)
    projected = centred @ components  # (B, N, k)
    if projected.shape[-1] < 3:
        projected = torch.nn.functional.pad(projected, (0, 3 - projected.shape[-1]))
    quantiles = torch.tensor(PCA_PERCENTILES, dtype=dtype, device=flat.device)
    low, high = torch.quantile(projected, quantiles, dim=1, keepdim=True)
    scaled = ((projected - low) / (high - low).clamp(min=1e-12)).clamp(0.0, 1.0)
    rgb = (scaled * 255.0).round().to(torch.uint8)
    return rgb.reshape(batch, frames, *grid, 3)
