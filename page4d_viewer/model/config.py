"""The one configuration of the PAGE-4D network: sizes, stage layout, presets by name.

A preset is a name for a set of field values. "official" is the authors' 1.26 B layout (the
released checkpoints), "tiny" is exactly the parity fixture's configuration. Every module reads
its sizes and layer indices from a `ModelConfig`; nothing in the network assumes 518 pixels,
24 layers or 1024 channels.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError

# name -> field values; `ModelConfig.from_name` fills in the rest from the field defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # The authors' layout: DINOv2 ViT-L/14 with registers, 24 alternating layers of dim 1024.
    "official": {},
    # The parity fixture (reference/page4d_tiny_parity.safetensors, metadata `config`).
    "tiny": {
        "embed_dim": 64,
        "num_heads": 4,
        "encoder_depth": 2,
        "encoder_heads": 4,
        "camera_heads": 4,
        "dpt_features": 32,
        "dpt_out_channels": (16, 32, 64, 64),
        "track_features": 16,
        "track_hidden": 32,
        "track_iterations": 2,
        "track_corr_levels": 3,
        "track_corr_radius": 2,
    },
}

# The shipped default model (assets/page4d_small.safetensors, docs/default-model.md): the same
# three-stage aggregator at half the depth and 1/10 of the width, with a 196 px input (14 x 8
# patches for 16:9 video), trained on synthetic scenes on two CPU cores. Stage layout scaled
# from the official 24 layers: mask head after layer 4 (official 9), masked global attention
# in 5-9 (10-19), DPT taps 2, 5, 8, 11 (4, 11, 17, 23). Trained from scratch, its residual
# branches start at LayerScale 1.0, not VGGT's 0.01: at 0.01 the aggregator stayed near the
# identity for a whole CPU hour (docs/default-model.md, "History"). Its track head is the
# official one at 1/4 of the feature width and 1/6 of the hidden width, with a shallower update
# transformer and a 4-level, radius-3 correlation pyramid (the shipped weights carry no tracker:
# loading them builds the model without one). Its match head (model/match_head.py) reads the
# last layer before the masked ones, so both mask variants share one set of matches; the
# shipped file predates it, and loading that file builds the model without one too.
PRESETS["small"] = {
    "img_size": 196,
    "embed_dim": 96,
    "depth": 12,
    "num_heads": 4,
    "encoder_depth": 3,
    "encoder_heads": 4,
    "camera_heads": 4,
    "camera_trunk_depth": 1,
    "dpt_features": 48,
    "dpt_out_channels": (24, 48, 96, 96),
    "dpt_layers": (2, 5, 8, 11),
    "mask_after_layer": 4,
    "masked_layers": tuple(range(5, 10)),
    "mask_head_hidden": 64,
    "layer_scale_init": 1.0,
    "track_features": 32,
    "track_hidden": 64,
    "track_corr_levels": 4,
    "track_corr_radius": 3,
    "track_depth": 2,
    "track_heads": 4,
    "track_virtual_tracks": 16,
    "has_match_head": True,
    "match_layer": 4,
    "match_dim": 64,
    "match_fine_dim": 16,
    "match_fine_radius": 8,
}

_POSITIVE_FIELDS = (
    "img_size",
    "patch_size",
    "embed_dim",
    "depth",
    "num_heads",
    "encoder_depth",
    "encoder_heads",
    "camera_heads",
    "camera_trunk_depth",
    "camera_iterations",
    "dpt_features",
    "mask_head_hidden",
    "dpt_chunk_frames",
    "track_features",
    "track_hidden",
    "track_iterations",
    "track_corr_levels",
    "track_corr_radius",
    "track_stride",
    "track_depth",
    "track_heads",
    "track_virtual_tracks",
    "match_dim",
    "match_fine_dim",
    "match_fine_radius",
)


@dataclass
class ModelConfig:
    """Sizes and stage layout of a PAGE-4D network (VGGT plus the dynamic mask head).

    Attributes:
        name: preset name this config came from ("custom" when built by hand).
        img_size: encoder pretraining size in pixels; sets its position-embedding grid
            (img_size / patch_size)^2. Inputs may have any size that is a multiple of patch_size.
        patch_size: pixels per patch side.
        embed_dim: token width of the encoder and the aggregator (heads read 2 * embed_dim).
        depth: number of aggregator layers (each one frame block and one global block).
        num_heads: attention heads in the aggregator blocks.
        mlp_ratio: MLP hidden width / token width, everywhere.
        num_register_tokens: register tokens, in the encoder and per frame in the aggregator.
        encoder_depth: DINOv2 encoder blocks.
        encoder_heads: DINOv2 encoder attention heads.
        rope_frequency: base frequency of the aggregator's 2-D rotary embedding.
        camera_heads: attention heads of the camera head trunk (width 2 * embed_dim).
        camera_trunk_depth: transformer blocks in the camera head trunk.
        camera_iterations: refinement steps of the camera head (one pose_enc_list entry each).
        dpt_features: channels of the DPT fusion path.
        dpt_out_channels: channels of the four DPT projections.
        dpt_layers: the four aggregator layers the DPT heads read.
        has_mask_head: False for plain VGGT checkpoints (no mask, mask strength forced to 0).
        mask_after_layer: the mask head scores patches after this layer's frame block.
        masked_layers: layers whose global block adds the mask bias (all after mask_after_layer).
        mask_head_hidden: channels of the mask head's pointwise convolution.
        dpt_chunk_frames: frames per DPT chunk (memory only; does not change results).
        layer_scale_init: starting LayerScale of the aggregator and camera-trunk blocks in a
            freshly initialised network (VGGT's 0.01); checkpoints hold the trained values,
            so this matters only for training from scratch.
        has_track_head: whether the network has VGGT's track head (False for checkpoints that
            carry no tracker weights, such as the shipped default model).
        track_features: channels of the track head's feature maps (its DPT feature extractor
            reads `dpt_layers` with `dpt_out_channels` projections, as VGGT's does).
        track_hidden: width of the tracker's correlation MLP and update transformer.
        track_iterations: refinement steps of the tracker.
        track_corr_levels: levels of the correlation pyramid (each halves the resolution).
        track_corr_radius: correlations are sampled on a (2r + 1)^2 grid around each estimate.
        track_stride: the feature maps have 1 / track_stride of the image resolution.
        track_depth: update-transformer blocks (each: attention over time, then over points
            through virtual tracks).
        track_heads: attention heads of the update transformer.
        track_virtual_tracks: learned tokens that carry attention between the query points.
        track_position_embedding: whether the track feature extractor adds the DPT heads'
            image-plane position embedding (VGGT's public TrackHead default; the authors'
            PAGE-4D implementation, and so the parity fixture, adds none).
        has_match_head: whether the network has our match head (model/match_head.py; not
            part of the authors' model, so False in the official and tiny presets).
        match_layer: the aggregator layer whose patch tokens the coarse matcher reads.
        match_dim: width of the coarse matching descriptors.
        match_fine_dim: channels of the fine feature map the sub-patch refinement reads.
        match_fine_radius: the refinement's soft-argmax window reaches this many pixels
            around the coarse match's patch centre (at least half a patch).
        match_temperature: the coarse similarities (cosines) are divided by this before the
            dual softmax.
        match_peak_radius: when matching, the refinement's soft-argmax averages only over
            the positions this many pixels around the correlation's peak (0: the peak).
    """

    name: str = "custom"
    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    encoder_depth: int = 24
    encoder_heads: int = 16
    rope_frequency: float = 100.0
    camera_heads: int = 16
    camera_trunk_depth: int = 4
    camera_iterations: int = 4
    dpt_features: int = 256
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)
    dpt_layers: tuple[int, ...] = (4, 11, 17, 23)
    has_mask_head: bool = True
    mask_after_layer: int = 9
    masked_layers: tuple[int, ...] = tuple(range(10, 20))
    mask_head_hidden: int = 256
    dpt_chunk_frames: int = 8
    layer_scale_init: float = 0.01
    has_track_head: bool = True
    track_features: int = 128
    track_hidden: int = 384
    track_iterations: int = 4
    track_corr_levels: int = 7
    track_corr_radius: int = 4
    track_stride: int = 2
    track_depth: int = 6
    track_heads: int = 8
    track_virtual_tracks: int = 64
    track_position_embedding: bool = False
    has_match_head: bool = False
    match_layer: int = 11
    match_dim: int = 64
    match_fine_dim: int = 16
    match_fine_radius: int = 8
    match_temperature: float = 0.1
    match_peak_radius: int = 1

    # Derived in __post_init__ (not constructor arguments, not serialised).
    head_dim: int = field(init=False, repr=False)
    token_dim: int = field(init=False, repr=False)
    patch_start_idx: int = field(init=False, repr=False)
    shared_layers: int = field(init=False, repr=False)
    kept_layers: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dpt_out_channels = tuple(int(c) for c in self.dpt_out_channels)
        self.dpt_layers = tuple(int(i) for i in self.dpt_layers)
        self.masked_layers = tuple(sorted(int(i) for i in self.masked_layers))
        self._validate()
        self.head_dim = self.embed_dim // self.num_heads
        self.token_dim = 2 * self.embed_dim
        self.patch_start_idx = 1 + self.num_register_tokens
        # Layers before the first masked one do not depend on the mask strength.
        if self.has_mask_head and self.masked_layers:
            self.shared_layers = self.masked_layers[0]
        else:
            self.shared_layers = self.depth
        match = {self.match_layer} if self.has_match_head else set()
        self.kept_layers = tuple(sorted({*self.dpt_layers, self.depth - 1, *match}))

    def _validate(self) -> None:
        for name in _POSITIVE_FIELDS:
            if int(getattr(self, name)) <= 0:
                raise Page4DError(f"model config: {name} must be positive")
        if self.num_register_tokens < 0:
            raise Page4DError("model config: num_register_tokens must be >= 0")
        if self.mlp_ratio <= 0 or self.rope_frequency <= 0 or self.layer_scale_init <= 0:
            raise Page4DError(
                "model config: mlp_ratio, rope_frequency and layer_scale_init must be positive"
            )
        if self.img_size % self.patch_size:
            raise Page4DError(
                f"model config: img_size {self.img_size} is not a multiple of "
                f"patch_size {self.patch_size}"
            )
        for dim_name, heads_name, dim in (
            ("embed_dim", "num_heads", self.embed_dim),
            ("embed_dim", "encoder_heads", self.embed_dim),
            ("2 * embed_dim", "camera_heads", 2 * self.embed_dim),
        ):
            heads = getattr(self, heads_name)
            if dim % heads:
                raise Page4DError(f"model config: {dim_name} {dim} not divisible by {heads_name}")
        if (self.embed_dim // self.num_heads) % 4:
            raise Page4DError("model config: 2-D RoPE needs a head width that is a multiple of 4")
        if len(self.dpt_out_channels) != 4 or len(self.dpt_layers) != 4:
            raise Page4DError("model config: the DPT heads take exactly four layers and channels")
        if self.dpt_features % 2:
            raise Page4DError("model config: dpt_features must be even")
        if any(not 0 <= i < self.depth for i in self.dpt_layers):
            raise Page4DError(
                f"model config: dpt_layers {self.dpt_layers} outside 0..{self.depth - 1}"
            )
        self._validate_tracker()
        self._validate_matcher()
        if not self.has_mask_head:
            return
        if not 0 <= self.mask_after_layer < self.depth:
            raise Page4DError(f"model config: mask_after_layer outside 0..{self.depth - 1}")
        if any(not self.mask_after_layer < i < self.depth for i in self.masked_layers):
            raise Page4DError(
                f"model config: masked_layers must lie after mask_after_layer "
                f"{self.mask_after_layer} and below depth {self.depth}"
            )

    def _validate_tracker(self) -> None:
        if self.track_hidden % self.track_heads:
            raise Page4DError("model config: track_hidden not divisible by track_heads")
        # The flow and position embeddings split the features into sin/cos pairs per axis.
        if self.track_features % 4:
            raise Page4DError("model config: track_features must be a multiple of 4")
        if self.patch_size % self.track_stride:
            raise Page4DError("model config: track_stride must divide patch_size")

    def _validate_matcher(self) -> None:
        if not self.has_match_head:
            return
        if not 0 <= self.match_layer < self.depth:
            raise Page4DError(f"model config: match_layer outside 0..{self.depth - 1}")
        if self.match_temperature <= 0:
            raise Page4DError("model config: match_temperature must be positive")
        if not 0 <= self.match_peak_radius <= self.match_fine_radius:
            raise Page4DError("model config: match_peak_radius outside 0..match_fine_radius")
        # The window must reach any pixel of the coarse match's patch from its centre.
        if 2 * self.match_fine_radius < self.patch_size:
            raise Page4DError("model config: match_fine_radius must be at least half a patch")

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelConfig:
        """Build a preset by name, with some fields overridden.

        Args:
            name: one of `PRESETS` ("official", "tiny", ...).
            **overrides: field values replacing the preset's.

        Raises:
            Page4DError: unknown preset or field name, or an invalid resulting config.
        """
        if name not in PRESETS:
            raise Page4DError(f"unknown model preset {name!r}; known: {', '.join(sorted(PRESETS))}")
        values = {**PRESETS[name], **overrides}
        values.setdefault("name", name)
        return cls._from_values(values)

    @classmethod
    def _from_values(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise Page4DError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The constructor fields as plain JSON-ready values (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """Serialise the constructor fields as one JSON object (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, **absent: Any) -> ModelConfig:
        """Inverse of `to_json`.

        Args:
            text: the JSON object.
            **absent: values for fields the JSON does not mention (written before they
                existed); fields it mentions keep their value.

        Raises:
            Page4DError: not a JSON object, unknown fields, or an invalid config.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise Page4DError(f"model config: not valid JSON ({error.msg})") from None
        if not isinstance(values, dict):
            raise Page4DError("model config: JSON must be an object")
        return cls._from_values({**absent, **values})


def _block_parameters(width: int, mlp_ratio: float) -> float:
    # Attention (qkv + projection) and the MLP, ignoring norms and biases.
    return 4 * width * width + 2 * width * int(width * mlp_ratio)


def estimate_size(config: ModelConfig) -> tuple[float, int]:
    """(parameters, transformer blocks) a config builds, computed without building it.

    The estimate counts the transformer blocks, the patch and position embeddings and the DPT
    projections; it is within a few percent of the real count for the presets, which is all a
    budget needs.
    """
    width, ratio = config.embed_dim, config.mlp_ratio
    grid = (config.img_size // config.patch_size) ** 2
    blocks = (
        2 * config.depth
        + config.encoder_depth
        + config.camera_trunk_depth
        + (config.track_depth * 2 if config.has_track_head else 0)
    )
    parameters = (2 * config.depth + config.encoder_depth) * _block_parameters(width, ratio)
    parameters += config.camera_trunk_depth * _block_parameters(2 * width, ratio)
    parameters += (grid + 3 * config.patch_size**2) * width
    dpt = sum(config.dpt_out_channels) * (2 * width + 9 * config.dpt_features)
    parameters += dpt * (3 if config.has_track_head else 2)
    if config.has_track_head:
        parameters += 2 * config.track_depth * _block_parameters(config.track_hidden, ratio)
    if config.has_match_head:
        parameters += 2 * width * config.match_dim + config.match_dim**2
        parameters += 15 * config.match_fine_dim**2
    return float(parameters), int(blocks)


def check_budget(config: ModelConfig) -> None:
    """Refuse a config over settings.MAX_MODEL_PARAMETERS or MAX_MODEL_BLOCKS, before building.

    A checkpoint's metadata names its config; a hostile one (a million layers, a width of
    10^6) would otherwise cost minutes and gigabytes before the weights fail to match.

    Raises:
        Page4DError: one line naming the limit and its environment variable.
    """
    parameters, blocks = estimate_size(config)
    if blocks > settings.MAX_MODEL_BLOCKS.value():
        raise Page4DError(settings.MAX_MODEL_BLOCKS.message("model config", blocks))
    iterations = max(config.camera_iterations, config.track_iterations, config.track_corr_levels)
    if iterations > settings.MAX_MODEL_BLOCKS.value():
        raise Page4DError(settings.MAX_MODEL_BLOCKS.message("model config iterations", iterations))
    if parameters > settings.MAX_MODEL_PARAMETERS.value():
        raise Page4DError(settings.MAX_MODEL_PARAMETERS.message("model config", parameters))
