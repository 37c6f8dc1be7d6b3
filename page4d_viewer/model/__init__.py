"""The PAGE-4D network: configuration, model, checkpoint loading. No files, no UI.

model = build_model("tiny")
output = model(images, mask_strength=64.0)           # ModelOutput
masked, unmasked = model.forward_pair(images, 64.0)  # shares the unmasked prefix
output = model(images, 64.0, return_attention=True)  # + output.inspection (attention, PCA)
model, info = load_checkpoint("checkpoint_mask.pt")  # CheckpointInfo
"""

from page4d_viewer.model.attention import AttentionRequest, Inspection
from page4d_viewer.model.checkpoint import CheckpointInfo, load_checkpoint, save_checkpoint
from page4d_viewer.model.config import PRESETS, ModelConfig
from page4d_viewer.model.network import ModelOutput, Page4D, ProgressCallback, build_model

__all__ = [
    "PRESETS",
    "AttentionRequest",
    "CheckpointInfo",
    "Inspection",
    "ModelConfig",
    "ModelOutput",
    "Page4D",
    "ProgressCallback",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]
