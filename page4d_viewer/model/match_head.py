"""A match head for the small preset: coarse patch matching, then sub-patch refinement.

Not part of the authors' model (``ModelConfig.has_match_head`` is False for the official
preset). It gives the pose solver (:mod:`page4d_viewer.model.pose_solver`) pixel matches that
come from the network itself, after LoFTR's coarse-to-fine design:

* **Coarse.** The patch tokens of one aggregator layer (``config.match_layer``) go through a
  small MLP and are L2-normalised. Two frames' descriptors are compared by cosine similarity
  over ``match_temperature``, with one extra "unmatched" bin per row and column holding a
  learned score, and turned into an assignment by a dual softmax: the product of the
  softmax over the row and over the column. A reference patch is unmatched when its bin
  scores more than its best target patch.
* **Fine.** A small convolution on the image gives per-pixel descriptors. The reference
  query's descriptor is correlated with those in a window of ``match_fine_radius`` pixels
  around the matched patch's centre; the soft-argmax of that correlation is the match's
  pixel position, so the position is differentiable (the pose loss trains through it).
  Training averages over the whole window; matching only over ``match_peak_radius`` pixels
  around the correlation's peak.

Queries sit at the patch centres of each reference frame. Pixel convention as everywhere:
pixel (row i, column j) is centred at ``(x, y) = (j, i)``, so patch ``(r, c)`` covers
``x`` in ``[p c - 0.5, p c + p - 0.5)`` and its centre is ``(p c + (p - 1) / 2, ...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.pose_solver import Matches

MATCH_SOURCE = "match_head"
"""``Matches.source`` of the matches this head makes."""

_FINE_SCALE_INIT = 10.0  # the fine correlation starts as sharp as the coarse one (1 / 0.1)
_UNMATCHED_INIT = 1.0  # SuperGlue's starting bin score, in units of similarity / temperature


@dataclass
class MatchFeatures:
    """What the match head computed for B clips of S frames of H x W pixels.

    Attributes:
        coarse: (B, S, h, w, D) L2-normalised patch descriptors (h = H / p, w = W / p).
        fine: (B, S, F, H, W) per-pixel descriptors for the sub-patch refinement.
    """

    coarse: Tensor
    fine: Tensor

    def clip(self, index: int) -> MatchFeatures:
        """The features of batch item ``index`` (still with a batch dimension of 1)."""
        return MatchFeatures(self.coarse[index : index + 1], self.fine[index : index + 1])


def patch_centres(grid: tuple[int, int], patch_size: int, device=None, dtype=None) -> Tensor:
    """(h * w, 2) pixel (x, y) of the patch centres, row by row (the query grid).

    Args:
        grid: (h, w) patches.
        patch_size: p, pixels per patch side.
    """
    rows, columns = grid
    half = (patch_size - 1) / 2.0
    y = torch.arange(rows, device=device, dtype=dtype or torch.float32) * patch_size + half
    x = torch.arange(columns, device=device, dtype=dtype or torch.float32) * patch_size + half
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def patch_index(xy: Tensor, grid: tuple[int, int], patch_size: int) -> Tensor:
    """Row-major index of the patch holding each pixel position (clamped into the grid).

    Args:
        xy: (..., 2) pixel (x, y).
        grid: (h, w).
        patch_size: p.

    Returns:
        (...) int64 index ``r * w + c``.
    """
    rows, columns = grid
    column = torch.floor((xy[..., 0] + 0.5) / patch_size).long().clamp(0, columns - 1)
    row = torch.floor((xy[..., 1] + 0.5) / patch_size).long().clamp(0, rows - 1)
    return row * columns + column


def assignment_log_probs(
    reference: Tensor, target: Tensor, temperature: float, unmatched: Tensor
) -> Tensor:
    """Log of the dual-softmax assignment with an "unmatched" bin (LoFTR / SuperGlue style).

    Args:
        reference: (P, N, D) L2-normalised descriptors of each pair's reference patches.
        target: (P, M, D) those of its target patches.
        temperature: similarities are divided by it.
        unmatched: () score of the bin (same units as similarity / temperature).

    Returns:
        (P, N + 1, M + 1): ``[i, j]`` for i < N, j < M is log(row softmax * column softmax);
        ``[i, M]`` is the log row-softmax probability that reference patch i has no match,
        ``[N, j]`` the log column-softmax probability that target patch j has none.
    """
    scores = reference @ target.transpose(-1, -2) / temperature
    pairs, rows, columns = scores.shape
    padded = torch.cat((scores, unmatched.expand(pairs, rows, 1)), dim=-1)
    padded = torch.cat((padded, unmatched.expand(pairs, 1, columns + 1)), dim=-2)
    by_row = F.log_softmax(padded, dim=-1)
    by_column = F.log_softmax(padded, dim=-2)
    inner = by_row[:, :rows, :columns] + by_column[:, :rows, :columns]
    top = torch.cat((inner, by_row[:, :rows, columns:]), dim=-1)
    bottom = torch.cat((by_column[:, rows:, :columns], by_row[:, rows:, columns:]), dim=-1)
    return torch.cat((top, bottom), dim=-2)


def window_offsets(radius: int, like: Tensor) -> Tensor:
    """((2r + 1)^2, 2) integer pixel offsets (dx, dy) of the refinement window, row by row,
    on ``like``'s device and dtype (made per call, so a model built on the meta device
    needs nothing re-created)."""
    offsets = torch.arange(-radius, radius + 1, device=like.device, dtype=like.dtype)
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    return torch.stack((dx.reshape(-1), dy.reshape(-1)), dim=-1)


class MatchHead(nn.Module):
    """Coarse descriptors from one layer's patch tokens, fine descriptors from the image."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        token_dim, dim, fine = 2 * config.embed_dim, config.match_dim, config.match_fine_dim
        self.project = nn.Sequential(
            nn.LayerNorm(token_dim),
            nn.Linear(token_dim, dim),
            nn.GELU(),
            nn.Linear(dim, dim),
        )
        self.fine = nn.Sequential(
            nn.Conv2d(3, fine, kernel_size=5, padding=2),
            nn.GELU(),
            nn.Conv2d(fine, fine, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(fine, fine, kernel_size=3, padding=1),
        )
        self.unmatched_score = nn.Parameter(torch.tensor(_UNMATCHED_INIT))
        self.fine_log_scale = nn.Parameter(torch.tensor(math.log(_FINE_SCALE_INIT)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise for training (truncated-normal linear weights, PyTorch's conv defaults)."""
        for module in self.project.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.unmatched_score.fill_(_UNMATCHED_INIT)
            self.fine_log_scale.fill_(math.log(_FINE_SCALE_INIT))

    def forward(
        self, layer_tokens: Tensor, grid: tuple[int, int], patch_start_idx: int, images: Tensor
    ) -> MatchFeatures:
        """Descriptors of every frame.

        Args:
            layer_tokens: (B, S, P, 2C) output of layer ``match_layer`` (specials first).
            grid: (h, w) patch grid.
            patch_start_idx: index of the first patch token.
            images: (B, S, 3, H, W) the network's input, RGB in [0, 1].

        Returns:
            The coarse and fine descriptors.
        """
        batch, frames = layer_tokens.shape[:2]
        patches = layer_tokens[:, :, patch_start_idx:]
        coarse = F.normalize(self.project(patches), dim=-1)
        coarse = coarse.reshape(batch, frames, grid[0], grid[1], -1)
        flat = images.reshape(batch * frames, *images.shape[2:]).to(coarse.dtype)
        fine = self.fine(flat - 0.5)
        return MatchFeatures(coarse, fine.reshape(batch, frames, *fine.shape[1:]))

    def assignment(self, features: MatchFeatures, pairs: Tensor) -> Tensor:
        """(P, N + 1, M + 1) log assignment of each pair (see :func:`assignment_log_probs`).

        Args:
            features: one clip's features (batch dimension 1).
            pairs: (P, 2) int64 (reference, target) frame positions.
        """
        coarse = features.coarse[0].flatten(1, 2)  # (S, N, D)
        return assignment_log_probs(
            coarse[pairs[:, 0]],
            coarse[pairs[:, 1]],
            self.config.match_temperature,
            self.unmatched_score.to(coarse.dtype),
        )

    def refine(
        self,
        features: MatchFeatures,
        pairs: Tensor,
        centre_patch: Tensor,
        peak_radius: int | None = None,
    ) -> Tensor:
        """Soft-argmax of the fine correlation in a window around each coarse match.

        The queries are the reference frames' patch centres, in row-major order.

        Args:
            features: one clip's features (batch dimension 1).
            pairs: (P, 2) int64 (reference, target) frame positions.
            centre_patch: (P, N) int64 target patch of each query (the coarse match); the
                window is centred on that patch's centre.
            peak_radius: None averages over the whole window (training: every position gets
                a gradient); r averages only over the (2r + 1)^2 positions around the
                correlation's peak (matching: a flat correlation would otherwise pull the
                position towards the window's centre, i.e. towards "no motion").

        Returns:
            (P, N, 2) refined pixel (x, y) in each target frame.
        """
        fine = features.fine[0]  # (S, F, H, W)
        patch = self.config.patch_size
        grid = (int(features.coarse.shape[2]), int(features.coarse.shape[3]))
        windows, inside, queries = self._fine_windows(fine, grid)
        # Each query's window in its target frame, (P, N, K, F): index_select on the flattened
        # windows is the fastest gather, and matmul the fastest dot product, on a CPU.
        frames, count = windows.shape[:2]
        rows = (pairs[:, 1][:, None] * count + centre_patch).reshape(-1)
        candidates = windows.reshape(frames * count, -1).index_select(0, rows)
        candidates = candidates.reshape(*centre_patch.shape, *windows.shape[2:])
        logits = (candidates @ queries[pairs[:, 0]][..., None])[..., 0]
        logits = logits * self.fine_log_scale.exp()
        # A window never lies wholly outside: its centre is a patch centre inside the image.
        logits = logits.masked_fill(~inside[centre_patch], float("-inf"))
        centres = patch_centres(grid, patch, fine.device, fine.dtype)[centre_patch]
        window = window_offsets(self.config.match_fine_radius, centres)
        if peak_radius is not None:
            peak = window[logits.argmax(dim=-1)]  # (P, N, 2)
            near = ((window - peak[:, :, None]).abs() <= peak_radius).all(dim=-1)
            logits = logits.masked_fill(~near, float("-inf"))
        probability = logits.softmax(dim=-1)
        return centres + (probability[..., None] * window).sum(dim=-2)

    def _fine_windows(self, fine: Tensor, grid: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """Unit fine descriptors around and at every patch centre of every frame.

        Patch centres sit at half pixels for an even patch size; there, and at the integer
        offsets around them, bilinear sampling is the mean of the 2 x 2 pixels around, so one
        2 x 2 average pool serves every sample and the windows are plain gathers.

        Args:
            fine: (S, F, H, W) fine feature maps.
            grid: (h, w) patches.

        Returns:
            windows (S, N, K, F) in `window_offsets` order, inside (N, K) bool (the window
            position lies between the image's outer pixel centres), and the queries' own
            descriptors (S, N, F).
        """
        patch, radius = self.config.patch_size, self.config.match_fine_radius
        half_pixel = patch % 2 == 0
        # Channels last, so that every gather below copies whole descriptors.
        pooled = fine.permute(0, 2, 3, 1)
        if half_pixel:  # the 2 x 2 mean, as four slices: much faster than avg_pool2d on a CPU
            pooled = 0.25 * (
                pooled[:, :-1, :-1] + pooled[:, 1:, :-1] + pooled[:, :-1, 1:] + pooled[:, 1:, 1:]
            )
        height, width = pooled.shape[1:3]
        # Index of each patch centre in `pooled`: x = p c + (p - 1) / 2, minus the pool's 0.5.
        centre = (patch - 1) // 2
        rows = torch.arange(grid[0], device=fine.device) * patch + centre
        cols = torch.arange(grid[1], device=fine.device) * patch + centre
        rows, cols = (t.reshape(-1) for t in torch.meshgrid(rows, cols, indexing="ij"))
        offsets = torch.arange(-radius, radius + 1, device=fine.device)
        window_rows = rows[:, None, None] + offsets[None, :, None]  # (N, K1, 1): dy outer
        window_cols = cols[:, None, None] + offsets[None, None, :]  # (N, 1, K1): dx inner
        inside = (
            (window_rows >= 0) & (window_rows < height) & (window_cols >= 0) & (window_cols < width)
        ).reshape(rows.shape[0], -1)
        values = pooled[:, window_rows.clamp(0, height - 1), window_cols.clamp(0, width - 1)]
        windows = F.normalize(values.flatten(2, 3), dim=-1)  # (S, N, K, F)
        queries = F.normalize(pooled[:, rows, cols], dim=-1)
        return windows, inside, queries

    def match(
        self,
        features: MatchFeatures,
        pairs: list[tuple[int, int]],
        image_hw: tuple[int, int],
    ) -> Matches:
        """Matches of each reference frame's patch-centre grid in its target frame.

        Args:
            features: the features of one clip (``ModelOutput.match_features``, batch
                dimension 1; use ``MatchFeatures.clip(b)`` for item b of a batch).
            pairs: (reference, target) frame positions.
            image_hw: (H, W) of the network's input.

        Returns:
            ``Matches`` with ``source="match_head"``, M = h * w queries per pair (the patch
            centres, in row-major order), weight = the assignment probability of the best
            target patch, or 0 where the "unmatched" bin scores higher.
        """
        if features.coarse.shape[0] != 1:
            raise ValueError("match() takes one clip's features: use MatchFeatures.clip(b)")
        grid = (int(features.coarse.shape[2]), int(features.coarse.shape[3]))
        dtype, device = features.coarse.dtype, features.coarse.device
        patch = self.config.patch_size
        if (grid[0] * patch, grid[1] * patch) != tuple(image_hw):
            raise ValueError(f"image_hw {tuple(image_hw)} does not fit the {grid} patch grid")
        index = torch.as_tensor(pairs, dtype=torch.int64, device=device).reshape(-1, 2)
        centres = patch_centres(grid, patch, device, dtype)  # (N, 2)
        count = centres.shape[0]
        query_xy = centres.expand(index.shape[0], count, 2)
        log_probs = self.assignment(features, index)
        best, best_index = log_probs[:, :count, :count].max(dim=-1)
        unmatched = log_probs[:, :count, count]
        weight = torch.where(best > unmatched, best.exp(), torch.zeros_like(best))
        target_xy = self.refine(features, index, best_index, self.config.match_peak_radius)
        return Matches(
            reference=index[:, 0],
            target=index[:, 1],
            reference_xy=query_xy,
            target_xy=target_xy,
            weight=weight,
            source=MATCH_SOURCE,
        )
