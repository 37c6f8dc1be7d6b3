"""Training data: synthetic clips rendered on the fly, turned into normalised targets.

The clip used at step k is a pure function of (seed, k), so a resumed run sees the same data
as an uninterrupted one. Training seeds are below :data:`MAX_TRAIN_SEED`; evaluation uses
seeds from :data:`FIRST_EVAL_SEED` on, which training never renders.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch

from page4d_viewer import geometry
from page4d_viewer.sources import synthetic
from page4d_viewer.sources.synthetic import track_ground_truth
from page4d_viewer.training.losses import Targets, static_fraction_per_patch
from page4d_viewer.training.matching import clip_match_truth, match_queries, training_pairs
from page4d_viewer.training.tracks import clip_tracks, query_rng

if TYPE_CHECKING:
    from page4d_viewer.sources.synthetic import GroundTruthTracks, SyntheticClip
    from page4d_viewer.training.train import TrainConfig

MAX_TRAIN_SEED = 1_000_000
FIRST_EVAL_SEED = 9_000_000
PATCH_SIZE = 14
"""The network's patch size in pixels: image sizes are multiples of it, the mask is per patch."""


@dataclass
class TrainingSample:
    """One clip's network input and ground truth as numpy arrays.

    Attributes:
        images: (S, 3, H, W) float32 in [0, 1].
        pose_enc: (S, 9) float32 ground-truth pose encoding, translation in normalised units.
        depth: (S, H, W) float32 depth in normalised units.
        world_points: (S, H, W, 3) float32 points in the first camera's frame, normalised units.
        valid: (S, H, W) bool.
        dynamic_mask: (S, H, W) bool, True on moving objects.
        scene_scale: the normalisation divisor (scene units per normalised unit).
        query_points: (N, 2) track queries in the first frame, pixel (x, y), or None.
        tracks: (S, N, 2) their ground-truth positions in every frame, or None.
        track_visible: (S, N) bool visibility of the tracked points, or None.
        extrinsics: (S, 3, 4) camera-from-first-camera, translation in normalised units.
        match_target_xy: (P, N, 2) true positions of the match queries of each keyframe pair
            (``training.matching.training_pairs``) in its target frame, or None.
        match_visible: (P, N) bool, where those are seen, or None.
    """

    images: npt.NDArray[np.float32]
    pose_enc: npt.NDArray[np.float32]
    depth: npt.NDArray[np.float32]
    world_points: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    dynamic_mask: npt.NDArray[np.bool_]
    scene_scale: float
    query_points: npt.NDArray[np.float32] | None = None
    tracks: npt.NDArray[np.float32] | None = None
    track_visible: npt.NDArray[np.bool_] | None = None
    extrinsics: npt.NDArray[np.float32] | None = None
    match_target_xy: npt.NDArray[np.float32] | None = None
    match_visible: npt.NDArray[np.bool_] | None = None


def clip_to_sample(
    clip: SyntheticClip, frame_indices: Sequence[int] | npt.NDArray[np.integer]
) -> TrainingSample:
    """Pick frames from a synthetic clip and express its ground truth as the network predicts it.

    The world becomes the first picked camera's frame and everything is divided by the mean
    distance of the valid points to that camera (VGGT's normalisation).

    Args:
        clip: a synthetic clip (images (N, H, W, 3) uint8, depth (N, H, W), extrinsics
            (N, 3, 4) camera-from-world, intrinsics (N, 3, 3), world_points (N, H, W, 3) world
            frame, dynamic_mask (N, H, W)).
        frame_indices: the S frames to use, first one defines the world.

    Returns:
        The normalised sample.
    """
    index = np.asarray(frame_indices)
    images = np.asarray(clip.images)[index]
    depth = np.asarray(clip.depth, dtype=np.float64)[index]
    extrinsics = np.asarray(clip.extrinsics, dtype=np.float64)[index]
    intrinsics = np.asarray(clip.intrinsics, dtype=np.float64)[index]
    points_world = np.asarray(clip.world_points, dtype=np.float64)[index]
    dynamic = np.asarray(clip.dynamic_mask, dtype=bool)[index]
    height, width = depth.shape[-2:]

    extrinsics_cam0, points = synthetic.in_first_camera(extrinsics, points_world)
    valid = np.isfinite(depth) & (depth > 0) & np.isfinite(points).all(axis=-1)

    distances = np.linalg.norm(np.where(valid[..., None], points, 0.0), axis=-1)
    scale = float(distances[valid].mean()) if valid.any() else 1.0
    scale = max(scale, 1e-6)
    extrinsics_cam0[..., :3, 3] /= scale
    pose_enc = geometry.cameras_to_pose_encoding(extrinsics_cam0, intrinsics, (height, width))
    return TrainingSample(
        images=np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0,
        pose_enc=pose_enc.astype(np.float32),
        depth=np.where(valid, depth / scale, 0.0).astype(np.float32),
        world_points=np.where(valid[..., None], points / scale, 0.0).astype(np.float32),
        valid=valid,
        dynamic_mask=dynamic,
        scene_scale=scale,
        extrinsics=extrinsics_cam0.astype(np.float32),
    )


def render_clip(
    seed: int, num_frames: int, image_hw: tuple[int, int], texture_detail: float = 0.0
) -> SyntheticClip:
    """Render one synthetic clip at the network's input size (``make_clip``'s detail)."""
    height, width = image_hw
    return synthetic.make_clip(
        seed, num_frames=num_frames, width=width, height=height, texture_detail=texture_detail
    )


class ClipPool:
    """A small least-recently-used cache of rendered clips; rendering is the CPU's bottleneck."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._clips: OrderedDict[int, SyntheticClip] = OrderedDict()
        self._match_tracks: dict[tuple[int, int], GroundTruthTracks] = {}

    def get(self, seed: int) -> SyntheticClip:
        """The clip of ``seed``, rendered on first use."""
        if seed in self._clips:
            self._clips.move_to_end(seed)
            return self._clips[seed]
        clip = render_clip(
            seed, self.config.source_frames, self.config.input_hw, self.config.texture_detail
        )
        self._clips[seed] = clip
        while len(self._clips) > self.config.pool_size:
            evicted, _ = self._clips.popitem(last=False)
            self._match_tracks = {
                key: value for key, value in self._match_tracks.items() if key[0] != evicted
            }
        return clip

    def match_tracks(self, seed: int, frame: int) -> GroundTruthTracks:
        """Exact tracks of the match queries (patch centres) of source frame ``frame`` of the
        clip of ``seed`` through all its frames, computed on first use."""
        key = (seed, frame)
        if key not in self._match_tracks:
            queries = match_queries(self.config.input_hw, PATCH_SIZE)
            self._match_tracks[key] = track_ground_truth(self.get(seed), frame, queries)
        return self._match_tracks[key]


def clip_seed(config: TrainConfig, step: int, slot: int) -> int:
    """Training seed of pool slot ``slot`` at ``step``: a function of the run seed, < 1e6."""
    generation = step // config.pool_refresh_steps if config.pool_refresh_steps > 0 else 0
    mixed = np.random.SeedSequence([config.seed, generation, slot]).generate_state(1)[0]
    return int(mixed % MAX_TRAIN_SEED)


def batch_for_step(
    config: TrainConfig, step: int, pool: ClipPool, micro: int = 0
) -> list[TrainingSample]:
    """The batch of ``step``: clip, frame count, stride and start, all drawn from (seed, step).

    ``micro`` numbers the batches one step accumulates (``TrainConfig.accumulate``); batch 0
    is the one a run without accumulation draws.
    """
    rng = np.random.default_rng([config.seed, step, 7919] + ([micro] if micro else []))
    num_frames = int(rng.integers(config.min_frames, config.max_frames + 1))
    samples = []
    for index in range(config.batch_size):
        slot = int(rng.integers(config.pool_size))
        stride_limit = min(config.max_stride, (config.source_frames - 1) // (num_frames - 1))
        stride = int(rng.integers(1, stride_limit + 1))
        span = (num_frames - 1) * stride + 1
        start = int(rng.integers(0, config.source_frames - span + 1))
        frames = np.arange(start, start + span, stride)
        if rng.random() < 0.5:
            # Play some clips backwards so the model does not learn "cameras move forward".
            frames = frames[::-1]
        seed = clip_seed(config, step, slot)
        clip = pool.get(seed)
        sample = clip_to_sample(clip, frames)
        if config.loss_weights.track > 0 and config.track_queries > 0:
            sample.query_points, sample.tracks, sample.track_visible = clip_tracks(
                clip,
                frames,
                config.track_queries,
                config.track_moving_fraction,
                query_rng(config.seed, step, index + micro * config.batch_size),
            )
        if config.loss_weights.match > 0 or config.loss_weights.pose > 0:
            sample.match_target_xy, sample.match_visible = clip_match_truth(
                lambda frame, seed=seed: pool.match_tracks(seed, frame),
                frames,
                training_pairs(num_frames),
            )
        samples.append(sample)
    return samples


def samples_to_tensors(
    samples: Sequence[TrainingSample], device: torch.device
) -> tuple[torch.Tensor, Targets]:
    """Stack samples into the network's input (B, S, 3, H, W) and the loss targets."""

    def stack(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(sample, name) for sample in samples])).to(device)

    dynamic = stack("dynamic_mask")
    targets = Targets(
        pose_enc=stack("pose_enc"),
        depth=stack("depth"),
        world_points=stack("world_points"),
        valid=stack("valid"),
        static_fraction=static_fraction_per_patch(dynamic, PATCH_SIZE),
    )
    if all(sample.tracks is not None for sample in samples):
        targets.query_points = stack("query_points")
        targets.tracks = stack("tracks")
        targets.track_visible = stack("track_visible")
    targets.extrinsics = stack("extrinsics")
    if all(sample.match_target_xy is not None for sample in samples):
        targets.match_pairs = tuple(training_pairs(samples[0].images.shape[0]))
        targets.match_target_xy = stack("match_target_xy")
        targets.match_visible = stack("match_visible")
    return stack("images"), targets
