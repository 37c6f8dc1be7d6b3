"""Prediction heads: the camera head and the DPT heads for depth, world points and track features.

Parameter names follow the released checkpoints (`camera_head.*`, `depth_head.*`,
`point_head.*`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.layers import Block, Mlp

POSE_ENCODING_SIZE = 9  # translation (3), quaternion xyzw (4), field of view (2)
_DPT_HIDDEN = 32  # channels of the last DPT convolution before the output projection
_DPT_POS_EMBED_WEIGHT = 0.1
_DPT_POS_EMBED_OMEGA = 100.0


class CameraHead(nn.Module):
    """Iterative pose regression from the last layer's camera tokens.

    Each iteration embeds the current pose encoding, uses it to modulate the (normalised)
    camera tokens adaLN-style, runs a small transformer over the frames and adds a delta.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.token_dim
        self.trunk = nn.Sequential(
            *(
                Block(
                    dim, config.camera_heads, config.mlp_ratio, layer_scale=config.layer_scale_init
                )
                for _ in range(config.camera_trunk_depth)
            )
        )
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_SIZE))
        self.embed_pose = nn.Linear(POSE_ENCODING_SIZE, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_ENCODING_SIZE)

    def forward(self, camera_tokens: Tensor, iterations: int) -> list[Tensor]:
        """Refine the pose encodings.

        Args:
            camera_tokens: (B, S, 2C) camera tokens of the last aggregator layer.
            iterations: refinement steps.

        Returns:
            `iterations` activated pose encodings, each (B, S, 9); the last is the answer.
        """
        tokens = self.token_norm(camera_tokens)
        batch, frames, _ = tokens.shape
        raw: Tensor | None = None
        steps = []
        for _ in range(iterations):
            if raw is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(batch, frames, -1))
            else:
                condition = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            modulated = gate * (self.adaln_norm(tokens) * (1 + scale) + shift) + tokens
            delta: Tensor = self.pose_branch(self.trunk_norm(self.trunk(modulated)))
            raw = delta if raw is None else raw + delta
            steps.append(activate_pose(raw))
        return steps


def activate_pose(raw: Tensor) -> Tensor:
    """Translation and quaternion pass through; the field of view goes through ReLU."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)


class ResidualConvUnit(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus a skip.

    The skip adds relu(x), not x: the reference implementation applies an in-place ReLU to
    its input before keeping it for the skip, and the released weights were trained that way.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """DPT fusion: add a refined skip, refine, upsample (bilinear, aligned corners), 1x1 conv."""

    def __init__(self, features: int, has_skip: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features) if has_skip else None
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(
        self, x: Tensor, skip: Tensor | None = None, size: Sequence[int] | None = None
    ) -> Tensor:
        """Args: x, skip (F, C, h, w); size: output (h', w'), default twice the input size."""
        if skip is not None and self.resConfUnit1 is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTScratch(nn.Module):
    """The DPT fusion path (named `scratch` in the checkpoints)."""

    def __init__(self, in_channels: Sequence[int], features: int, output_dim: int | None) -> None:
        """Args: output_dim: channels predicted, or None for a feature extractor (no output_conv2,
        and output_conv1 keeps all `features` channels)."""
        super().__init__()
        c1, c2, c3, c4 = in_channels
        self.layer1_rn = nn.Conv2d(c1, features, kernel_size=3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(c2, features, kernel_size=3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(c3, features, kernel_size=3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(c4, features, kernel_size=3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features, has_skip=False)
        if output_dim is None:
            self.output_conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
            return
        self.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, _DPT_HIDDEN, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(_DPT_HIDDEN, output_dim, kernel_size=1),
        )

    def fuse(self, features: Sequence[Tensor]) -> Tensor:
        """Fuse four maps (coarsest last) into one map at the finest map's double resolution."""
        l1 = self.layer1_rn(features[0])
        l2 = self.layer2_rn(features[1])
        l3 = self.layer3_rn(features[2])
        l4 = self.layer4_rn(features[3])
        out = self.refinenet4(l4, size=l3.shape[-2:])
        out = self.refinenet3(out, l3, size=l2.shape[-2:])
        out = self.refinenet2(out, l2, size=l1.shape[-2:])
        out = self.refinenet1(out, l1)
        return self.output_conv1(out)


class DPTHead(nn.Module):
    """Dense per-pixel prediction (value + confidence) from four aggregator layers.

    With `output_dim=None` it is a feature extractor (VGGT's `feature_only` mode, used by the
    track head): the fused, position-embedded map at 1 / `down_ratio` of the image resolution,
    without the output convolutions and activations.
    """

    def __init__(
        self,
        config: ModelConfig,
        output_dim: int | None,
        activation: str | None = None,
        features: int | None = None,
        down_ratio: int = 1,
        position_embedding: bool = True,
    ) -> None:
        """Args:
        config: sizes (token width, DPT projection channels, patch size).
        output_dim: predicted channels (values + 1 confidence), or None for features.
        activation: "exp" or "inv_log" for the values; None for features.
        features: channels of the fusion path (default `config.dpt_features`).
        down_ratio: output resolution divisor (features only; 1 for predictions).
        position_embedding: add the image-plane sinusoidal embedding to the projections and
            to the fused map.
        """
        super().__init__()
        if output_dim is not None and activation not in ("exp", "inv_log"):
            raise ValueError(f"unknown DPT activation {activation!r}")
        dim, channels = config.token_dim, config.dpt_out_channels
        self.patch_size = config.patch_size
        self.activation = activation
        self.down_ratio = down_ratio
        self.position_embedding = position_embedding
        self.norm = nn.LayerNorm(dim)
        self.projects = nn.ModuleList(nn.Conv2d(dim, c, kernel_size=1) for c in channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(channels[0], channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(channels[1], channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(channels[3], channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = DPTScratch(channels, features or config.dpt_features, output_dim)

    def forward(
        self,
        layers: Sequence[Tensor],
        grid: tuple[int, int],
        patch_start_idx: int,
        chunk_frames: int,
        embeddings: PositionEmbeddings | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Predict per-pixel values, processing `chunk_frames` frames at a time.

        Args:
            layers: four (B, S, P, 2C) aggregator outputs, shallow to deep.
            grid: (h, w) patch grid; the output is (h * patch_size, w * patch_size) pixels.
            patch_start_idx: index of the first patch token in P.
            chunk_frames: frames per chunk (memory only).
            embeddings: the position embeddings already made in this pass (shared with the
                other DPT head and the other mask variant); None makes them for this call.

        Returns:
            values (B, S, H, W, output_dim - 1) and confidence (B, S, H, W) >= 1.
        """
        embeddings = PositionEmbeddings() if embeddings is None else embeddings
        values, confidences = [], []
        for chunk in _frame_chunks(layers, patch_start_idx, chunk_frames):
            value, confidence = self._predict(chunk, grid, embeddings)
            values.append(value)
            confidences.append(confidence)
        return torch.cat(values, dim=1), torch.cat(confidences, dim=1)

    def features(
        self,
        layers: Sequence[Tensor],
        grid: tuple[int, int],
        patch_start_idx: int,
        chunk_frames: int,
    ) -> Tensor:
        """The feature map of a head built with `output_dim=None`, chunked like `forward`.

        Returns:
            (B, S, features, H', W') with H' = int(h * patch_size / down_ratio), W' likewise.
        """
        maps = []
        embeddings = PositionEmbeddings()
        for chunk in _frame_chunks(layers, patch_start_idx, chunk_frames):
            batch, frames = chunk[0].shape[:2]
            fused = self._fuse(chunk, grid, embeddings)
            maps.append(fused.reshape(batch, frames, *fused.shape[1:]))
        return torch.cat(maps, dim=1)

    def _fuse(
        self, layers: Sequence[Tensor], grid: tuple[int, int], embeddings: PositionEmbeddings
    ) -> Tensor:
        """(B, S, h * w, 2C) patch tokens x 4 -> (B * S, channels, H', W') fused map."""
        batch, frames, _, dim = layers[0].shape
        grid_h, grid_w = grid
        aspect = grid_w / grid_h
        maps = []
        for index, tokens in enumerate(layers):
            x = self.norm(tokens.reshape(batch * frames, grid_h * grid_w, dim))
            x = x.transpose(1, 2).reshape(batch * frames, dim, grid_h, grid_w)
            x = self.projects[index](x)
            x = self._add_position(x, aspect, embeddings)
            maps.append(self.resize_layers[index](x))
        out = self.scratch.fuse(maps)
        size = (
            int(grid_h * self.patch_size / self.down_ratio),
            int(grid_w * self.patch_size / self.down_ratio),
        )
        out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
        return self._add_position(out, aspect, embeddings)

    def _predict(
        self, layers: Sequence[Tensor], grid: tuple[int, int], embeddings: PositionEmbeddings
    ) -> tuple[Tensor, Tensor]:
        batch, frames = layers[0].shape[:2]
        fused = self._fuse(layers, grid, embeddings)
        out = self.scratch.output_conv2(fused).permute(0, 2, 3, 1)
        raw_value, raw_conf = out[..., :-1], out[..., -1]
        if self.activation == "exp":
            value = torch.exp(raw_value)
        else:
            value = torch.sign(raw_value) * torch.expm1(raw_value.abs())
        confidence = 1 + torch.exp(raw_conf)
        return (
            value.reshape(batch, frames, *value.shape[1:]),
            confidence.reshape(batch, frames, *confidence.shape[1:]),
        )

    def _add_position(self, x: Tensor, aspect: float, embeddings: PositionEmbeddings) -> Tensor:
        """Add 0.1 x a sinusoidal embedding of image-plane coordinates (aspect = W / H).

        Identity without `position_embedding`.
        """
        if not self.position_embedding:
            return x
        return x + embeddings.get(x.shape[-2], x.shape[-1], x.shape[1], aspect, x.dtype, x.device)


class PositionEmbeddings:
    """The DPT heads' scaled position embeddings, each made once per forward pass.

    Both DPT heads, every frame chunk and both mask variants of `forward_pair` add the same
    embeddings; at full resolution one costs about a tenth of a DPT head on a CPU (float64
    sinusoids of every pixel). Kept for one pass only, so no memory outlives it.
    """

    def __init__(self) -> None:
        self._made: dict[tuple, Tensor] = {}

    def get(
        self,
        height: int,
        width: int,
        channels: int,
        aspect: float,
        dtype: torch.dtype,
        device: torch.device,
    ) -> Tensor:
        """(channels, height, width) ``0.1 * uv_embedding(...)`` in ``dtype``.

        The embedding is scaled in float32 before the cast, as the reference does; this keeps
        float64 runs bit-identical to it.
        """
        key = (height, width, channels, aspect, dtype, device)
        if key not in self._made:
            embedding = uv_embedding(height, width, channels, aspect, dtype, device)
            self._made[key] = (embedding * _DPT_POS_EMBED_WEIGHT).to(dtype)
        return self._made[key]


def _frame_chunks(
    layers: Sequence[Tensor], patch_start_idx: int, chunk_frames: int
) -> list[list[Tensor]]:
    """Split four (B, S, P, 2C) layers into chunks of <= `chunk_frames` frames, patches only."""
    frames = layers[0].shape[1]
    return [
        [layer[:, first : first + chunk_frames, patch_start_idx:] for layer in layers]
        for first in range(0, frames, chunk_frames)
    ]


def uv_embedding(
    height: int,
    width: int,
    channels: int,
    aspect: float,
    dtype: torch.dtype,
    device: torch.device,
) -> Tensor:
    """Sinusoidal embedding of a height x width grid of image-plane coordinates.

    Coordinates span the image diagonal-normalised: u in (-w/d, w/d), v in (-h/d, h/d) with
    d = sqrt(w^2 + h^2) for the image's aspect ratio (width / height), at cell centres. Half of the
    channels encode u, half v, each as [sin, cos] of 1/omega^(k/n) frequencies. The grid is
    sampled in `dtype`, the sinusoids are computed in float64 and, as in the reference, the
    result is rounded to float32.

    Returns:
        (channels, height, width) float32.
    """
    diagonal = (aspect**2 + 1.0) ** 0.5
    span_u, span_v = aspect / diagonal, 1.0 / diagonal
    end_u = span_u * (width - 1) / width
    end_v = span_v * (height - 1) / height
    u = torch.linspace(-end_u, end_u, width, dtype=dtype, device=device)
    v = torch.linspace(-end_v, end_v, height, dtype=dtype, device=device)
    grid_u, grid_v = torch.meshgrid(u, v, indexing="xy")  # (height, width) each
    parts = [_sincos(coord.reshape(-1), channels // 2) for coord in (grid_u, grid_v)]
    embedding = torch.cat(parts, dim=-1).float()
    return embedding.reshape(height, width, channels).permute(2, 0, 1)


def _sincos(positions: Tensor, channels: int) -> Tensor:
    """(M,) positions -> (M, channels) float64 [sin | cos] embedding."""
    steps = torch.arange(channels // 2, dtype=torch.float64, device=positions.device)
    omega = 1.0 / _DPT_POS_EMBED_OMEGA ** (steps / (channels / 2.0))
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)
