"""VGGT's track head: follow query points of the first frame through all frames.

A DPT feature extractor turns four aggregator layers into per-frame feature maps at
1 / `track_stride` of the image resolution. The tracker then refines, `track_iterations` times,
every query's position in every frame: it samples a pyramid of correlations between the
query's current feature and the frame's map around the current estimate, and an update
transformer (attention over time per point, and across points through a few learned virtual
tracks) predicts a position delta and a feature delta. Visibility and confidence come from the
final features.

Parameter names follow the released checkpoints (`track_head.feature_extractor.*`,
`track_head.tracker.*`, including the authors' spelling `virual_tracks`).

Numerical notes, kept because the released weights were trained with them: the flow and
position embeddings are rounded to float32 and the query's position embedding is sampled in
float32, whatever the run's dtype (float64 runs then match the reference to ~1e-15); the
attention blocks add their residual to the *normalised* input; flows are divided by the
encoder's pretraining size (VGGT's `max_scale`, 518). The authors' feature extractor adds no
image-plane position embedding (the parity fixture shows it); `track_position_embedding`
switches VGGT's on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.heads import DPTHead
from page4d_viewer.model.layers import Mlp

_FLOW_FREQUENCY_SPAN = 1000.0  # flow embedding: frequency k * span / channels, k = 0, 2, 4, ...
_POSITION_OMEGA = 10000.0
_TOKEN_INIT_STD = 1.0
_FLOW_HEAD_INIT_STD = 0.001


@dataclass
class TrackPredictions:
    """The track head's predictions for N query points through S frames of B clips (pixel
    coordinates); a result keeps one clip's last step as ``result.tracks.Tracks``.

    Attributes:
        steps: every refinement step's positions, each (B, S, N, 2) (x, y); the last is the
            answer. Frame 0 holds the query points themselves.
        visibility: (B, S, N) probability that the point is visible in the frame.
        confidence: (B, S, N) probability that the position is right (within a few pixels).
    """

    steps: list[Tensor]
    visibility: Tensor
    confidence: Tensor


class TrackHead(nn.Module):
    """DPT feature extractor + iterative tracker (VGGT's `TrackHead`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.feature_extractor = DPTHead(
            config,
            output_dim=None,
            features=config.track_features,
            down_ratio=config.track_stride,
            position_embedding=config.track_position_embedding,
        )
        self.tracker = Tracker(config)

    def reset_parameters(self) -> None:
        """Initialise for training from scratch (convolutions keep PyTorch's defaults)."""
        self.tracker.reset_parameters()

    def forward(
        self,
        layers: Sequence[Tensor],
        grid: tuple[int, int],
        query_points: Tensor,
        patch_start_idx: int,
        chunk_frames: int,
        iterations: int,
    ) -> TrackPredictions:
        """Track query points of the first frame.

        Args:
            layers: four (B, S, P, 2C) aggregator outputs (the DPT layers), shallow to deep.
            grid: (h, w) patch grid of the images.
            query_points: (B, N, 2) pixel (x, y) positions in frame 0.
            patch_start_idx: index of the first patch token in P.
            chunk_frames: frames per feature-extractor chunk (memory only).
            iterations: tracker refinement steps.

        Returns:
            The tracks.
        """
        feature_maps = self.feature_extractor.features(layers, grid, patch_start_idx, chunk_frames)
        return self.tracker(query_points, feature_maps, iterations)


class Tracker(nn.Module):
    """Iterative point tracker on per-frame feature maps (VGGT's `BaseTrackerPredictor`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        features = config.track_features
        self.features = features
        self.stride = config.track_stride
        self.corr_levels = config.track_corr_levels
        self.corr_radius = config.track_corr_radius
        self.flow_scale = float(config.img_size)
        corr_channels = self.corr_levels * (2 * self.corr_radius + 1) ** 2
        # Input per point and frame: flow embedding (features + 4), correlations, feature.
        self.token_dim = 3 * features + 4
        self.corr_mlp = Mlp(corr_channels, config.track_hidden, features)
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.token_dim))
        self.updateformer = UpdateFormer(config, self.token_dim, features + 2)
        self.fmap_norm = nn.LayerNorm(features)
        self.ffeat_norm = nn.GroupNorm(1, features)
        self.ffeat_updater = nn.Sequential(nn.Linear(features, features), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(features, 1))
        self.conf_predictor = nn.Sequential(nn.Linear(features, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform linear and attention weights, zero biases, unit-normal tokens."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.xavier_uniform_(module.in_proj_weight)
                nn.init.zeros_(module.in_proj_bias)
        nn.init.trunc_normal_(self.updateformer.flow_head.weight, std=_FLOW_HEAD_INIT_STD)
        nn.init.normal_(self.query_ref_token, std=_TOKEN_INIT_STD)
        nn.init.normal_(self.updateformer.virual_tracks, std=_TOKEN_INIT_STD)

    def forward(
        self, query_points: Tensor, feature_maps: Tensor, iterations: int
    ) -> TrackPredictions:
        """Args: query_points (B, N, 2) pixels in frame 0; feature_maps (B, S, C, h, w)."""
        batch, points, _ = query_points.shape
        frames = feature_maps.shape[1]
        feature_maps = self.fmap_norm(feature_maps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        query = query_points / float(self.stride)  # in feature-map pixels
        coords = query[:, None].repeat(1, frames, 1, 1)  # (B, S, N, 2)
        query_feature = sample_points(feature_maps[:, 0], query)  # (B, N, C)
        track_features = query_feature[:, None].repeat(1, frames, 1, 1)  # (B, S, N, C)
        pyramid = correlation_pyramid(feature_maps, self.corr_levels)
        height, width = feature_maps.shape[-2:]
        # The query's position embedding, sampled in float32 as the reference does (its table
        # is float32 and the sampler casts the points to it), and the first-frame token.
        table = grid_position_embedding(self.token_dim, height, width, query.device)
        position = sample_points(table.expand(batch, -1, -1, -1), query.float())
        position = position.to(feature_maps.dtype).reshape(batch * points, 1, self.token_dim)
        frame_token = torch.cat(
            (self.query_ref_token[:, :1], self.query_ref_token[:, 1:].expand(-1, frames - 1, -1)),
            dim=1,
        ).to(feature_maps.dtype)
        steps = []
        for _ in range(iterations):
            coords, track_features = self._refine(
                coords.detach(), track_features, pyramid, position, frame_token
            )
            coords = torch.cat((query[:, None], coords[:, 1:]), dim=1)  # frame 0 stays the query
            steps.append(coords * self.stride)
        flat = track_features.reshape(batch * frames * points, self.features)
        visibility = torch.sigmoid(self.vis_predictor(flat)).reshape(batch, frames, points)
        confidence = torch.sigmoid(self.conf_predictor(flat)).reshape(batch, frames, points)
        return TrackPredictions(steps=steps, visibility=visibility, confidence=confidence)

    def _refine(
        self,
        coords: Tensor,
        track_features: Tensor,
        pyramid: list[Tensor],
        position: Tensor,
        frame_token: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """One refinement step: (B, S, N, 2) coords and (B, S, N, C) features, updated."""
        batch, frames, points, _ = coords.shape
        channels = self.features
        corr = sample_correlations(pyramid, track_features, coords, self.corr_radius)
        corr = self.corr_mlp(corr.permute(0, 2, 1, 3).reshape(batch * points, frames, -1))
        flows = (coords - coords[:, :1]).permute(0, 2, 1, 3).reshape(batch * points, frames, 2)
        flow_embedding = torch.cat(
            (
                flow_sincos_embedding(flows, channels // 2),
                flows / self.flow_scale,
                flows / self.flow_scale,
            ),
            dim=-1,
        )
        features = track_features.permute(0, 2, 1, 3).reshape(batch * points, frames, channels)
        tokens = torch.cat((flow_embedding, corr, features), dim=2) + position
        tokens = tokens + frame_token
        delta = self.updateformer(tokens.reshape(batch, points, frames, self.token_dim))
        delta = delta.reshape(batch * points * frames, channels + 2)
        features = features.reshape(batch * points * frames, channels)
        features = self.ffeat_updater(self.ffeat_norm(delta[:, 2:])) + features
        track_features = features.reshape(batch, points, frames, channels).permute(0, 2, 1, 3)
        coords = coords + delta[:, :2].reshape(batch, points, frames, 2).permute(0, 2, 1, 3)
        return coords, track_features


class UpdateFormer(nn.Module):
    """Transformer predicting per point and frame a position delta and a feature delta.

    Each block attends over time for every point, then across points: virtual tracks read
    the points, attend among themselves, and the points read them back.
    """

    def __init__(self, config: ModelConfig, input_dim: int, output_dim: int) -> None:
        super().__init__()
        hidden, heads = config.track_hidden, config.track_heads
        depth, ratio = config.track_depth, config.mlp_ratio
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden)
        self.output_norm = nn.LayerNorm(hidden)
        self.flow_head = nn.Linear(hidden, output_dim)
        self.virual_tracks = nn.Parameter(torch.randn(1, config.track_virtual_tracks, 1, hidden))
        self.time_blocks = nn.ModuleList(
            SelfAttentionBlock(hidden, heads, ratio) for _ in range(depth)
        )
        self.space_virtual_blocks = nn.ModuleList(
            SelfAttentionBlock(hidden, heads, ratio) for _ in range(depth)
        )
        self.space_point2virtual_blocks = nn.ModuleList(
            CrossAttentionBlock(hidden, heads, ratio) for _ in range(depth)
        )
        self.space_virtual2point_blocks = nn.ModuleList(
            CrossAttentionBlock(hidden, heads, ratio) for _ in range(depth)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        """Args: tokens (B, N, S, input_dim). Returns (B, N, S, output_dim)."""
        initial = self.input_transform(self.input_norm(tokens))
        batch, points, frames, hidden = initial.shape
        virtual = self.virual_tracks.repeat(batch, 1, frames, 1)
        tokens = torch.cat((initial, virtual), dim=1)
        total = tokens.shape[1]
        for index, time_block in enumerate(self.time_blocks):
            tokens = time_block(tokens.reshape(batch * total, frames, hidden))
            space = tokens.reshape(batch, total, frames, hidden).permute(0, 2, 1, 3)
            space = space.reshape(batch * frames, total, hidden)
            point_tokens, virtual = space[:, :points], space[:, points:]
            virtual = self.space_virtual2point_blocks[index](virtual, point_tokens)
            virtual = self.space_virtual_blocks[index](virtual)
            point_tokens = self.space_point2virtual_blocks[index](point_tokens, virtual)
            space = torch.cat((point_tokens, virtual), dim=1)
            tokens = space.reshape(batch, frames, total, hidden).permute(0, 2, 1, 3)
        tokens = tokens[:, :points] + initial
        return self.flow_head(self.output_norm(tokens))


class SelfAttentionBlock(nn.Module):
    """y = norm1(x); y = y + attn(y); y + mlp(norm2(y)) (the residual is the normalised x)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (B, L, dim). Returns (B, L, dim)."""
        x = self.norm1(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """Like `SelfAttentionBlock`, with keys and values from a (normalised) context."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """Args: x (B, L, dim), context (B, M, dim). Returns (B, L, dim)."""
        x = self.norm1(x)
        context = self.norm_context(context)
        x = x + self.cross_attn(x, context, context, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def sample_bilinear(image: Tensor, coords: Tensor, padding_mode: str) -> Tensor:
    """Bilinear samples at pixel coordinates (0 = first pixel centre, W - 1 = last).

    Args:
        image: (B, C, H, W).
        coords: (B, h, w, 2) pixel (x, y).
        padding_mode: "zeros" or "border", as in `grid_sample`.

    Returns:
        (B, C, h, w).
    """
    height, width = image.shape[-2:]
    scale = torch.tensor(
        [2 / max(width - 1, 1), 2 / max(height - 1, 1)], dtype=image.dtype, device=image.device
    )
    grid = coords.to(image.dtype) * scale - 1
    return F.grid_sample(image, grid, align_corners=True, padding_mode=padding_mode)


def sample_points(image: Tensor, points: Tensor) -> Tensor:
    """Features of (B, C, H, W) maps at (B, N, 2) pixel points (border-clamped) -> (B, N, C)."""
    sampled = sample_bilinear(image, points[:, :, None], padding_mode="border")  # (B, C, N, 1)
    return sampled[..., 0].transpose(1, 2)


def correlation_pyramid(feature_maps: Tensor, levels: int) -> list[Tensor]:
    """(B, S, C, H, W) maps, then each level 2x2-average-pooled from the previous one."""
    pyramid = [feature_maps]
    for _ in range(levels - 1):
        batch, frames, channels, height, width = pyramid[-1].shape
        pooled = F.avg_pool2d(pyramid[-1].reshape(batch * frames, channels, height, width), 2, 2)
        pyramid.append(pooled.reshape(batch, frames, channels, *pooled.shape[-2:]))
    return pyramid


def sample_correlations(
    pyramid: list[Tensor], targets: Tensor, coords: Tensor, radius: int
) -> Tensor:
    """Correlations of each point's feature with its frame's maps, around its estimate.

    Level l's correlation volume (dot products / sqrt(C)) is sampled on a (2r + 1)^2 grid of
    unit steps around coords / 2^l, zero outside the map. The grid's first axis offsets x and
    its second y, the order the released weights were trained with.

    Args:
        pyramid: from `correlation_pyramid`, levels of (B, S, C, H_l, W_l).
        targets: (B, S, N, C) the points' current features.
        coords: (B, S, N, 2) current estimates in level-0 pixels.
        radius: r.

    Returns:
        (B, S, N, levels * (2r + 1)^2).
    """
    batch, frames, points, channels = targets.shape
    offsets = torch.linspace(
        -radius, radius, 2 * radius + 1, dtype=coords.dtype, device=coords.device
    )
    delta = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)
    sampled = []
    for level, maps in enumerate(pyramid):
        height, width = maps.shape[-2:]
        volume = torch.matmul(targets, maps.reshape(batch, frames, channels, height * width))
        volume = volume / math.sqrt(channels)
        centres = coords.reshape(batch * frames * points, 1, 1, 2) / (2**level)
        window = sample_bilinear(
            volume.reshape(batch * frames * points, 1, height, width),
            centres + delta[None],
            padding_mode="zeros",
        )
        sampled.append(window.reshape(batch, frames, points, -1))
    return torch.cat(sampled, dim=-1)


def flow_sincos_embedding(flows: Tensor, channels: int) -> Tensor:
    """[sin, cos] pairs of a flow's x then y at frequencies k * 1000 / channels, k = 0, 2, ...

    Rounded to float32 as in the reference, then returned in the flows' dtype.

    Args:
        flows: (..., 2) displacements in feature-map pixels.
        channels: per axis (even).

    Returns:
        (..., 2 * channels).
    """
    frequencies = torch.arange(0, channels, 2, dtype=torch.float32, device=flows.device)
    frequencies = frequencies * (_FLOW_FREQUENCY_SPAN / channels)
    angles = flows[..., None] * frequencies  # (..., 2, channels / 2)
    pairs = torch.stack((angles.sin(), angles.cos()), dim=-1)  # interleaved sin, cos
    return pairs.flatten(-3).float().to(flows.dtype)


def grid_position_embedding(channels: int, height: int, width: int, device: torch.device) -> Tensor:
    """2-D sin/cos embedding of a pixel grid, rounded to float32 as in the reference.

    The first half of the channels encodes the column (x), the second the row (y); each half
    is [sin | cos] of position x 1 / 10000^(k / (channels / 4)), computed in float64.

    Returns:
        (1, channels, height, width) float32.
    """
    quarter = channels // 4
    omega = torch.arange(quarter, dtype=torch.float64, device=device) / (channels / 4.0)
    omega = 1.0 / _POSITION_OMEGA**omega
    cols = torch.arange(width, dtype=torch.float64, device=device).repeat(height)
    rows = torch.arange(height, dtype=torch.float64, device=device).repeat_interleave(width)
    parts = []
    for position in (cols, rows):
        angles = position[:, None] * omega[None, :]
        parts.extend((angles.sin(), angles.cos()))
    embedding = torch.cat(parts, dim=-1).float()  # (height * width, channels)
    return embedding.reshape(1, height, width, channels).permute(0, 3, 1, 2)
