"""The PAGE-4D network: aggregator + camera, depth, point and track heads, with typed outputs.

`Page4D.forward` runs one mask strength; `Page4D.forward_pair` runs the masked and unmasked
variants, sharing the encoder and the layers before the first masked layer. The track head runs
only when query points are given: plain reconstruction never pays for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from page4d_viewer.errors import Page4DError
from page4d_viewer.model.aggregator import Aggregator, AggregatorState
from page4d_viewer.model.attention import AttentionRequest, Inspection, as_request
from page4d_viewer.model.config import ModelConfig
from page4d_viewer.model.heads import CameraHead, DPTHead, PositionEmbeddings
from page4d_viewer.model.match_head import MatchFeatures, MatchHead
from page4d_viewer.model.track_head import TrackHead

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]
HEAD_STEPS = 3  # camera, depth, points (the track head, when asked for, is one more)


@dataclass
class ModelOutput:
    """Predictions for B clips of S frames of H x W pixels.

    Attributes:
        pose_enc: (B, S, 9) translation, quaternion (xyzw), field of view (fov_h, fov_w) in
            radians; camera-from-world, the world being the first frame's camera.
        pose_enc_list: the camera head's refinement steps, each (B, S, 9); the last is pose_enc.
        depth: (B, S, H, W, 1) depth along the optical axis (scene units).
        depth_conf: (B, S, H, W) confidence >= 1.
        world_points: (B, S, H, W, 3) point per pixel in the first camera's frame.
        world_points_conf: (B, S, H, W) confidence >= 1.
            The four dense fields are None only for the unmasked output of
            `forward_pair(..., unmasked_geometry=False)`.
        mask_score: (B, S, H/p, W/p) mask head score m = sigmoid - 0.5 in (-0.5, 0.5) per
            patch (p = 14; not a logit), or
            None for a model without mask head (VGGT). The masked layers add
            mask_strength * m to the camera/register tokens' logits, so patches with negative m
            are what the camera path is steered away from.
        mask_strength: the alpha these predictions were made with.
        track: (B, S, N, 2) pixel (x, y) of each query point in each frame (frame 0: the
            query itself), or None when no query points were given.
        track_vis: (B, S, N) visibility probability, or None.
        track_conf: (B, S, N) confidence probability, or None.
        inspection: camera-token attention maps and feature PCA (`model.attention.Inspection`)
            when the run was asked for them (`return_attention`), else None.
        match_features: the match head's descriptors (`model.match_head.MatchFeatures`) when
            the model has a match head (`Page4D.match_available`), else None; turn them into
            matches with `model.match_head.match(features.clip(b), pairs, (H, W))`.
    """

    pose_enc: Tensor
    pose_enc_list: list[Tensor]
    depth: Tensor | None
    depth_conf: Tensor | None
    world_points: Tensor | None
    world_points_conf: Tensor | None
    mask_score: Tensor | None
    mask_strength: float
    track: Tensor | None = None
    track_vis: Tensor | None = None
    track_conf: Tensor | None = None
    inspection: Inspection | None = None
    match_features: MatchFeatures | None = None


class _Progress:
    """Counts finished work per stage and reports it to the caller's callback."""

    def __init__(self, callback: ProgressCallback | None, totals: dict[str, int]) -> None:
        self._callback = callback
        self._totals = totals
        self._done = dict.fromkeys(totals, 0)

    def step(self, stage: str) -> None:
        self._done[stage] += 1
        if self._callback is not None:
            # Exceptions propagate on purpose: raising here is how the viewer cancels a run.
            self._callback(stage, self._done[stage], self._totals[stage])

    def layer_done(self, layer: int) -> None:
        """Aggregator hook: one more layer finished."""
        self.step("aggregating")

    def encoder_block_done(self, done: int, total: int) -> None:
        """Encoder hook: one more block finished."""
        self.step("encoding")


class Page4D(nn.Module):
    """PAGE-4D (or VGGT when `config.has_mask_head` is False).

    The track head exists when `config.has_track_head` is True and runs only when query
    points are given.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.aggregator = Aggregator(config)
        self.camera_head = CameraHead(config)
        self.depth_head = DPTHead(config, output_dim=2, activation="exp")
        self.point_head = DPTHead(config, output_dim=4, activation="inv_log")
        self._reset_reconstruction()
        # Built after the rest is initialised, so that a seeded build initialises the
        # reconstruction path exactly as one without track head does.
        self.track_head = TrackHead(config) if config.has_track_head else None
        # Built last for the same reason: presets without it initialise exactly as before.
        self.match_head = MatchHead(config) if config.has_match_head else None

    def reset_parameters(self) -> None:
        """Initialise for training from scratch (checkpoints overwrite all of it).

        ViT-style: truncated-normal (std 0.02) linear weights with zero biases and position
        table, near-zero special tokens; convolutions keep PyTorch's defaults. The track head
        has its own initialisation (`TrackHead.reset_parameters`).
        """
        self._reset_reconstruction()
        if self.track_head is not None:
            self.track_head.reset_parameters()
        if self.match_head is not None:
            self.match_head.reset_parameters()

    def _reset_reconstruction(self) -> None:
        reconstruction = (self.aggregator, self.camera_head, self.depth_head, self.point_head)
        for module in (m for part in reconstruction for m in part.modules()):
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        encoder = self.aggregator.patch_embed
        nn.init.trunc_normal_(encoder.pos_embed, std=0.02)
        for token in (
            encoder.cls_token,
            encoder.register_tokens,
            self.aggregator.camera_token,
            self.aggregator.register_token,
        ):
            nn.init.normal_(token, std=1e-6)

    @property
    def mask_available(self) -> bool:
        """Whether this model has a mask head (mask strength other than 0 is meaningful)."""
        return self.config.has_mask_head

    @property
    def track_available(self) -> bool:
        """Whether this model has a track head (query points can be tracked)."""
        return self.track_head is not None

    @property
    def match_available(self) -> bool:
        """Whether this model has a match head (`ModelOutput.match_features` is filled)."""
        return self.match_head is not None

    def forward(
        self,
        images: Tensor,
        mask_strength: float = 0.0,
        progress: ProgressCallback | None = None,
        query_points: Tensor | None = None,
        return_attention: bool | AttentionRequest = False,
    ) -> ModelOutput:
        """Reconstruct a clip, and track points if asked.

        Args:
            images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1]; H, W multiples of 14.
            mask_strength: alpha, the weight of the dynamic-mask bias (0 = VGGT's computation;
                the mask checkpoint was trained with 64). Forced to 0 without a mask head.
            progress: optional progress(stage, done, total), stage in "encoding",
                "aggregating", "heads"; called between steps on this thread.
            query_points: optional (N, 2) or (B, N, 2) pixel (x, y) positions in the first
                frame to track through the clip (needs a track head); None skips the tracker.
            return_attention: True records the camera-token attention of the default masked
                layers and the feature PCA (`ModelOutput.inspection`); an `AttentionRequest`
                chooses layers and query frames. False (default) records nothing and costs
                nothing.

        Returns:
            The predictions (see `ModelOutput`).

        Raises:
            Page4DError: bad images, query points or attention request, or query points
                without a track head.
        """
        images = self._prepare(images)
        queries = self._prepare_queries(query_points, images)
        strength = self._strength(mask_strength)
        config = self.config
        heads = HEAD_STEPS + (queries is not None)
        tracker = _Progress(
            progress,
            {"encoding": config.encoder_depth, "aggregating": config.depth, "heads": heads},
        )
        state = self._start(images, tracker, return_attention)
        self.aggregator.advance(state, config.depth, strength, tracker.layer_done)
        output = self._heads(state, strength, tracker, PositionEmbeddings(), queries=queries)
        output.inspection = _finish_inspection(state)
        output.match_features = self._match_features(state, images)
        return output

    def forward_pair(
        self,
        images: Tensor,
        mask_strength: float,
        progress: ProgressCallback | None = None,
        unmasked_geometry: bool = True,
        query_points: Tensor | None = None,
        return_attention: bool | AttentionRequest = False,
    ) -> tuple[ModelOutput, ModelOutput]:
        """Run the masked (alpha = mask_strength) and unmasked (alpha = 0) variants.

        The encoder and the layers before the first masked layer run once. Equal to two
        `forward` calls. With strength 0 (or no mask head, which forces it) one pass serves
        both: the two results are the same object.

        Args:
            images, mask_strength, progress, query_points, return_attention: as in
                `forward`; each variant records its own attention (the unmasked one's with no
                mask bias) and features.
            unmasked_geometry: False skips the depth, point and track heads for the unmasked
                variant (its depth/world_points/track fields are then None): cheaper when only
                its cameras are wanted.

        Returns:
            (masked, unmasked).
        """
        images = self._prepare(images)
        queries = self._prepare_queries(query_points, images)
        strength = self._strength(mask_strength)
        config = self.config
        if strength == 0.0:
            single = self.forward(images, 0.0, progress, queries, return_attention)
            return single, single
        shared, depth = config.shared_layers, config.depth
        per_variant = HEAD_STEPS + (queries is not None)
        tracker = _Progress(
            progress,
            {
                "encoding": config.encoder_depth,
                "aggregating": shared + 2 * (depth - shared),
                "heads": per_variant + (per_variant if unmasked_geometry else 1),
            },
        )
        state = self._start(images, tracker, return_attention)
        self.aggregator.advance(state, shared, strength, tracker.layer_done)
        unmasked_state = state.branch()
        self.aggregator.advance(state, depth, strength, tracker.layer_done)
        # Both variants' DPT heads add the same position embeddings: made once for the pair.
        embeddings = PositionEmbeddings()
        masked = self._heads(state, strength, tracker, embeddings, queries=queries)
        masked.inspection = _finish_inspection(state)
        masked.match_features = self._match_features(state, images)
        del state
        self.aggregator.advance(unmasked_state, depth, 0.0, tracker.layer_done)
        unmasked = self._heads(
            unmasked_state,
            0.0,
            tracker,
            embeddings,
            geometry=unmasked_geometry,
            queries=queries,
        )
        unmasked.inspection = _finish_inspection(unmasked_state)
        if config.match_layer < shared:
            # The matcher reads a layer both variants share: its features are the same.
            unmasked.match_features = masked.match_features
        return masked, unmasked

    def track(
        self,
        images: Tensor,
        query_points: Tensor,
        query_frame: int = 0,
        mask_strength: float = 0.0,
        progress: ProgressCallback | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Follow query pixels of any frame through the clip.

        The tracker follows queries of the first input frame, so the clip is run with
        ``query_frame`` moved to the front (as VGGT's demo does) and the tracks are put back
        in the clip's order. This is one full forward pass.

        Args:
            images: (S, 3, H, W) or (B, S, 3, H, W) RGB in [0, 1].
            query_points: (N, 2) or (B, N, 2) pixel (x, y) on frame ``query_frame``.
            query_frame: frame position (0..S-1) the queries lie on.
            mask_strength, progress: as in `forward`.

        Returns:
            track (B, S, N, 2) pixel (x, y), visibility (B, S, N) and confidence (B, S, N)
            probabilities, in the clip's frame order.

        Raises:
            Page4DError: bad images, query points or frame, or no track head.
        """
        images = self._prepare(images)
        frames = images.shape[1]
        if not 0 <= int(query_frame) < frames:
            raise Page4DError(f"query frame {query_frame} is out of range (0..{frames - 1})")
        order = [int(query_frame)] + [i for i in range(frames) if i != int(query_frame)]
        restore = torch.argsort(torch.tensor(order)).to(images.device)
        output = self.forward(images[:, order], mask_strength, progress, query_points=query_points)
        assert output.track is not None and output.track_vis is not None
        assert output.track_conf is not None
        return (
            output.track[:, restore],
            output.track_vis[:, restore],
            output.track_conf[:, restore],
        )

    def _prepare(self, images: Tensor) -> Tensor:
        if not isinstance(images, Tensor) or not images.is_floating_point():
            raise Page4DError("model input must be a floating-point tensor of RGB in [0, 1]")
        if images.ndim == 4:
            images = images.unsqueeze(0)
        patch = self.config.patch_size
        if images.ndim != 5 or images.shape[2] != 3:
            raise Page4DError(
                f"model input must be (S, 3, H, W) or (B, S, 3, H, W), got {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        if height % patch or width % patch or height == 0 or width == 0 or images.shape[1] == 0:
            raise Page4DError(
                f"model input {height}x{width}: height and width must be positive multiples "
                f"of {patch}, with at least one frame"
            )
        dtype = self.aggregator.patch_embed.pos_embed.dtype
        return images.to(dtype)

    def _prepare_queries(self, query_points: Tensor | None, images: Tensor) -> Tensor | None:
        """(N, 2) or (B, N, 2) query points -> (B, N, 2) in the images' dtype, or None."""
        if query_points is None:
            return None
        if self.track_head is None:
            raise Page4DError(
                "this model has no track head (its checkpoint carries no tracker weights): "
                "query_points cannot be tracked"
            )
        if not isinstance(query_points, Tensor) or not query_points.is_floating_point():
            raise Page4DError("query_points must be a floating-point tensor of pixel (x, y)")
        if query_points.ndim == 2:
            query_points = query_points.unsqueeze(0)
        batch = images.shape[0]
        if (
            query_points.ndim != 3
            or query_points.shape[-1] != 2
            or query_points.shape[1] == 0
            or query_points.shape[0] != batch
        ):
            raise Page4DError(
                f"query_points must be (N, 2) or ({batch}, N, 2) with N >= 1, "
                f"got {tuple(query_points.shape)}"
            )
        return query_points.to(device=images.device, dtype=images.dtype)

    def _strength(self, mask_strength: float) -> float:
        strength = float(mask_strength)
        if strength != 0.0 and not self.config.has_mask_head:
            logger.warning("this model has no mask head: mask strength %g forced to 0", strength)
            return 0.0
        return strength

    def _start(
        self,
        images: Tensor,
        tracker: _Progress,
        return_attention: bool | AttentionRequest = False,
    ) -> AggregatorState:
        # Resolve the request before the encoder runs, so a bad one fails at once.
        request = as_request(return_attention)
        resolved = None if request is None else request.resolve(self.config, images.shape[1])
        state = self.aggregator.start(images, tracker.encoder_block_done)
        if resolved is not None:
            state.inspection = Inspection.for_request(resolved)
        return state

    def _match_features(self, state: AggregatorState, images: Tensor) -> MatchFeatures | None:
        """The match head's descriptors of an aggregated state (None without a match head)."""
        if self.match_head is None:
            return None
        head_dtype = self.camera_head.embed_pose.weight.dtype
        with torch.autocast(device_type=state.tokens.device.type, enabled=False):
            tokens = state.kept[self.config.match_layer].to(head_dtype)
            return self.match_head(
                tokens, state.grid, self.config.patch_start_idx, images.to(head_dtype)
            )

    def _heads(
        self,
        state: AggregatorState,
        strength: float,
        tracker: _Progress,
        embeddings: PositionEmbeddings,
        geometry: bool = True,
        queries: Tensor | None = None,
    ) -> ModelOutput:
        """Run the heads on an aggregated state, in the heads' own dtype with autocast off.

        The track head runs only with `queries` ((B, N, 2) pixels) and `geometry`; the DPT
        heads take their position embeddings from `embeddings` (one per pass or pair).
        """
        config = self.config
        head_dtype = self.camera_head.embed_pose.weight.dtype
        device_type = state.tokens.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            last = state.kept[config.depth - 1]
            pose_list = self.camera_head(last[:, :, 0].to(head_dtype), config.camera_iterations)
            tracker.step("heads")
            if not geometry:
                return ModelOutput(
                    pose_list[-1], pose_list, None, None, None, None, state.mask_score, strength
                )
            layers = [state.kept[index].to(head_dtype) for index in config.dpt_layers]
            depth, depth_conf = self.depth_head(
                layers, state.grid, config.patch_start_idx, config.dpt_chunk_frames, embeddings
            )
            tracker.step("heads")
            points, points_conf = self.point_head(
                layers, state.grid, config.patch_start_idx, config.dpt_chunk_frames, embeddings
            )
            tracker.step("heads")
            output = ModelOutput(
                pose_enc=pose_list[-1],
                pose_enc_list=pose_list,
                depth=depth,
                depth_conf=depth_conf,
                world_points=points,
                world_points_conf=points_conf,
                mask_score=state.mask_score,
                mask_strength=strength,
            )
            if queries is not None and self.track_head is not None:
                tracks = self.track_head(
                    layers,
                    state.grid,
                    queries.to(head_dtype),
                    config.patch_start_idx,
                    config.dpt_chunk_frames,
                    config.track_iterations,
                )
                output.track = tracks.steps[-1]
                output.track_vis, output.track_conf = tracks.visibility, tracks.confidence
                tracker.step("heads")
        return output


def _finish_inspection(state: AggregatorState) -> Inspection | None:
    return None if state.inspection is None else state.inspection.finish()


def build_model(preset: str = "official", **overrides: object) -> Page4D:
    """Build an untrained PAGE-4D network from a preset name and config overrides.

    Build on the meta device (`with torch.device("meta"):`) to inspect the layout for free.

    Raises:
        Page4DError: unknown preset or invalid overrides.
    """
    return Page4D(ModelConfig.from_name(preset, **overrides))
