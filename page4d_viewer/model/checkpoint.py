"""Read any supported checkpoint into a `Page4D` model, or fail with one clear line.

Supported:
- the authors' PAGE-4D pickles (`{"model": state_dict, ...}` or a bare state dict, keys with
  or without DistributedDataParallel's `module.` prefix);
- VGGT-1B (same layout without `aggregator.spatial_mask_head.*`): built without mask head;
- all of these with their track head (`track_head.*`), loaded strictly like the rest;
- safetensors with official key names (e.g. VGGT's `model.safetensors`);
- our own safetensors (`save_checkpoint`): the model config travels in the metadata.

Pickles are untrusted input: they are only ever read with `torch.load(weights_only=True)`,
which refuses anything but tensors and plain containers without running code.

Content hash: a released checkpoint is ~5 GB, and hashing all of it costs many seconds on
every load. Files up to `FULL_HASH_LIMIT` bytes get a full SHA-256 ("sha256:<hex>"); larger
ones a SHA-256 over their size and 64 evenly spaced 1 MiB slices, first and last included
("sha256-sampled:<hex>"). That identifies a file for the result metadata; it is not a
tamper check.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import struct
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from page4d_viewer.errors import CheckpointError, Page4DError
from page4d_viewer.model.config import ModelConfig, check_budget
from page4d_viewer.model.network import Page4D
from page4d_viewer.settings import RELEASED_MASK_STRENGTH, Device

logger = logging.getLogger(__name__)

FORMAT_NAME = "page4d_viewer"
FORMAT_VERSION = "1"
FULL_HASH_LIMIT = 256 * 2**20
_HASH_SLICES = 64
_HASH_SLICE_BYTES = 2**20
_SHOWN_KEYS = 3

# The key map: how checkpoint names become this model's names. Everything not listed here
# must match by name and shape, in both directions. `track_head.*` used to be dropped here; the
# model now has VGGT's track head and loads it like any other part.
STRIPPED_PREFIXES = ("module.",)  # added by DistributedDataParallel when the authors saved
DROPPED_ON_PURPOSE: dict[str, str] = {}  # prefix -> why (nothing is dropped at present)
MASK_HEAD_PREFIX = "aggregator.spatial_mask_head."  # absent from VGGT: model built without it
# Absent from checkpoints without a tracker (ours from before the track head, such as the
# shipped default model): the model is then built without one rather than with a random one.
TRACK_HEAD_PREFIX = "track_head."
# Our match head (not the authors'): absent from every file written before it, the shipped
# default model included; the model is then built without one, as for the track head.
MATCH_HEAD_PREFIX = "match_head."

VARIANT_MASK = "PAGE-4D (mask)"
VARIANT_NO_MASK = "PAGE-4D (no mask)"
VARIANT_VGGT = "VGGT"
VARIANT_OURS = "page4d_viewer"


@dataclass(frozen=True)
class CheckpointInfo:
    """What was loaded, for the viewer's labels and the result's metadata.

    Attributes:
        path: the checkpoint file.
        variant: "PAGE-4D (mask)", "PAGE-4D (no mask)" (file name says "nomask"), "VGGT" or
            "page4d_viewer" (our safetensors).
        default_mask_strength: alpha to run it with (64 mask checkpoint, 0 no-mask and VGGT,
            ours: from its metadata).
        mask_available: whether the model has a mask head.
        track_available: whether the model has a track head (the file carries its weights).
        match_available: whether the model has a match head (the file carries its weights).
        parameter_count: parameters of the built model.
        dtype: parameter dtype after loading, e.g. "float32".
        dropped_keys: checkpoint keys dropped on purpose (see `DROPPED_ON_PURPOSE`).
        content_hash: "sha256:<hex>" or, for large files, "sha256-sampled:<hex>".
        config: the model configuration.
    """

    path: Path
    variant: str
    default_mask_strength: float
    mask_available: bool
    track_available: bool
    match_available: bool
    parameter_count: int
    dtype: str
    dropped_keys: tuple[str, ...]
    content_hash: str
    config: ModelConfig


def load_checkpoint(
    path: str | Path,
    *,
    preset: str = "official",
    device: torch.device | Device | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Page4D, CheckpointInfo]:
    """Read a checkpoint into an eval-mode model.

    Args:
        path: a PAGE-4D/VGGT pickle, a safetensors file with official names, or ours.
        preset: configuration for files that do not carry one (ignored for ours).
        device: where the model goes (default CPU).
        dtype: parameter dtype (default: the checkpoint's).

    Returns:
        (model, info).

    Raises:
        CheckpointError: missing file, not a checkpoint, damaged/truncated file, refused
            pickle, missing/unexpected keys or wrong shapes (first few named).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    state, metadata = _read_state(path)
    state, dropped = map_keys(state)
    config = _config_for(path, state, metadata, preset)
    with torch.device("meta"):
        model = Page4D(config)  # free: no memory, no initialisation
    check_state_dict(state, model, path)
    _adopt(model, state, device, dtype)
    variant, strength = _variant(path, config, metadata)
    first = next(model.parameters())
    info = CheckpointInfo(
        path=path,
        variant=variant,
        default_mask_strength=strength,
        mask_available=config.has_mask_head,
        track_available=config.has_track_head,
        match_available=config.has_match_head,
        parameter_count=sum(p.numel() for p in model.parameters()),
        dtype=str(first.dtype).removeprefix("torch."),
        dropped_keys=tuple(dropped),
        content_hash=content_hash(path),
        config=config,
    )
    if metadata.get("format") == FORMAT_NAME and not config.has_match_head:
        logger.info("%s carries no match head: the model is built without one", path.name)
    logger.info(
        "loaded %s (%s, %d parameters, %s); dropped %d keys on purpose",
        path.name,
        variant,
        info.parameter_count,
        info.dtype,
        len(dropped),
    )
    return model, info


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and (for safetensors) the metadata of a checkpoint file."""
    if _sniff(path) != "safetensors":
        return _read_pickle(path), {}
    metadata = _safetensors_metadata(path)
    if metadata.get("format") == FORMAT_NAME:
        # Refuse a hostile config before reading any tensor, let alone building the model.
        _config_from_metadata(path, metadata, has_track_head=False, has_match_head=False)
    return _read_safetensors(path)


def save_checkpoint(model: Page4D, path: str | Path, **extra_metadata: object) -> Path:
    """Write a model as our safetensors format, config and metadata included.

    Args:
        model: the network.
        path: output file (conventionally `.safetensors`).
        **extra_metadata: stored as strings; `default_mask_strength` sets the alpha the
            viewer starts with (default 64 with a mask head, 0 without).

    Returns:
        The path written.
    """
    path = Path(path)
    metadata = {key: str(value) for key, value in extra_metadata.items()}
    default = RELEASED_MASK_STRENGTH if model.config.has_mask_head else 0.0
    metadata.setdefault("default_mask_strength", str(default))
    float(metadata["default_mask_strength"])  # fail early on a non-number
    metadata.update(
        format=FORMAT_NAME, format_version=FORMAT_VERSION, config=model.config.to_json()
    )
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return path


def map_keys(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Apply the key map: strip wrapper prefixes, drop what is dropped on purpose.

    Returns:
        (state dict with this model's names, sorted names dropped on purpose).
    """
    mapped: dict[str, Tensor] = {}
    dropped = []
    for name, tensor in state.items():
        for prefix in STRIPPED_PREFIXES:
            name = name.removeprefix(prefix)
        if any(name.startswith(prefix) for prefix in DROPPED_ON_PURPOSE):
            dropped.append(name)
        else:
            mapped[name] = tensor
    return mapped, sorted(dropped)


def check_state_dict(state: dict[str, Tensor], model: Page4D, path: Path) -> None:
    """Raise CheckpointError unless `state` has exactly the model's names and shapes."""
    config = model.config
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    # Shapes first: with the wrong preset, that is the clearest symptom.
    wrong = [
        f"{name} {tuple(state[name].shape)} vs model {shape}"
        for name, shape in expected.items()
        if name in state and tuple(state[name].shape) != shape
    ]
    if wrong:
        raise CheckpointError(
            f"{path.name}: {len(wrong)} tensor(s) with wrong shape for preset "
            f"{config.name!r}: {_first(wrong)}"
        )
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(
            f"{path.name}: {len(missing)} missing key(s) for preset {config.name!r}: "
            f"{_first(missing)}"
        )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(
            f"{path.name}: {len(unexpected)} unexpected key(s) for preset {config.name!r}: "
            f"{_first(unexpected)}"
        )


def content_hash(path: Path) -> str:
    """Full SHA-256 for small files, sampled SHA-256 for large ones (see module docstring)."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        digest.update(str(size).encode())
        last = size - _HASH_SLICE_BYTES
        for index in range(_HASH_SLICES):
            handle.seek(last * index // (_HASH_SLICES - 1))
            digest.update(handle.read(_HASH_SLICE_BYTES))
    return f"sha256-sampled:{digest.hexdigest()}"


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS])
    return shown + (", ..." if len(items) > _SHOWN_KEYS else "")


def _sniff(path: Path) -> str:
    """'safetensors' or 'pickle' from the first bytes; CheckpointError for anything else."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "pickle"  # torch.save zip archive, or a legacy raw pickle
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"  # 8-byte little-endian header length, then a JSON header
    raise CheckpointError(
        f"{path.name} is not a checkpoint (expected a PyTorch .pt/.pth or a .safetensors file)"
    )


def _safetensors_metadata(path: Path) -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors."""
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is truncated or damaged ({_short(error)})") from None


def _check_safetensors_header(path: Path) -> None:
    with path.open("rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
    if 8 + header_length > path.stat().st_size:
        raise CheckpointError(f"{path.name} is truncated or damaged (safetensors header)")


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    _check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is truncated or damaged ({_short(error)})") from None
    return state, metadata


def _read_pickle(path: Path) -> dict[str, Tensor]:
    try:
        # torch warns about the pickles it then refuses (protocol, legacy format); the
        # refusal below is the one line the user gets.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            content = _torch_load(path)
    except pickle.UnpicklingError as error:
        if "weights_only" in str(error) or "Unsupported" in str(error):
            raise CheckpointError(
                f"{path.name} holds more than weights (objects that would run code on load); "
                "refused: only plain tensor checkpoints are read"
            ) from None
        raise CheckpointError(f"{path.name} is truncated or damaged ({_short(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"{path.name} is truncated or damaged ({_short(error)})") from None
    state = content.get("model", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path.name} is not a checkpoint: it holds no state dict")
    if not all(isinstance(key, str) and isinstance(t, Tensor) for key, t in state.items()):
        raise CheckpointError(f"{path.name} is not a checkpoint: its state dict is not all tensors")
    return state


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        # Legacy (non-zip) pickles cannot be memory-mapped.
        return torch.load(path, map_location="cpu", weights_only=True)


def _short(error: BaseException) -> str:
    return " ".join(str(error).split())[:160] or type(error).__name__


def _has_mask_head(state: dict[str, Tensor]) -> bool:
    return any(name.startswith(MASK_HEAD_PREFIX) for name in state)


def _config_for(
    path: Path, state: dict[str, Tensor], metadata: dict[str, str], preset: str
) -> ModelConfig:
    """Ours: the config in the metadata. Others: `preset`, with the mask and track heads
    the file carries weights for."""
    if metadata.get("format") == FORMAT_NAME:
        return _config_from_metadata(
            path, metadata, _has_track_head(state), _has_prefix(state, MATCH_HEAD_PREFIX)
        )
    try:
        return ModelConfig.from_name(
            preset,
            has_mask_head=_has_mask_head(state),
            has_track_head=_has_track_head(state),
            has_match_head=_has_prefix(state, MATCH_HEAD_PREFIX),
        )
    except Page4DError as error:
        raise CheckpointError(str(error)) from None


def _has_track_head(state: dict[str, Tensor]) -> bool:
    return _has_prefix(state, TRACK_HEAD_PREFIX)


def _has_prefix(state: dict[str, Tensor], prefix: str) -> bool:
    return any(name.startswith(prefix) for name in state)


def _config_from_metadata(
    path: Path, metadata: dict[str, str], has_track_head: bool, has_match_head: bool
) -> ModelConfig:
    """The config in our metadata; one written before the track (match) head existed (no
    `has_track_head` / `has_match_head` field) gets one exactly when the file carries its
    weights."""
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path.name}: unsupported page4d_viewer checkpoint version "
            f"{metadata.get('format_version')!r} (this build reads {FORMAT_VERSION})"
        )
    try:
        config = ModelConfig.from_json(
            metadata.get("config", ""),
            has_track_head=has_track_head,
            has_match_head=has_match_head,
        )
        check_budget(config)
        return config
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise CheckpointError(f"{path.name}: bad config in metadata ({error})") from None


def _variant(path: Path, config: ModelConfig, metadata: dict[str, str]) -> tuple[str, float]:
    """(variant label, default mask strength)."""
    if metadata.get("format") == FORMAT_NAME:
        try:
            strength = float(metadata.get("default_mask_strength", "0"))
        except ValueError:
            raise CheckpointError(f"{path.name}: default_mask_strength is not a number") from None
        return VARIANT_OURS, strength if config.has_mask_head else 0.0
    if not config.has_mask_head:
        return VARIANT_VGGT, 0.0
    # The two PAGE-4D releases share one layout; only the file name tells them apart.
    compact = path.name.lower().replace("_", "").replace("-", "")
    if "nomask" in compact:
        return VARIANT_NO_MASK, 0.0
    return VARIANT_MASK, RELEASED_MASK_STRENGTH


def _adopt(
    model: Page4D,
    state: dict[str, Tensor],
    device: torch.device | Device | None,
    dtype: torch.dtype | None,
) -> None:
    """Give a meta-device model the checkpoint's tensors (no second copy) and eval mode."""
    if dtype is None:
        counts = Counter(t.dtype for t in state.values() if t.is_floating_point())
        dtype = counts.most_common(1)[0][0] if counts else torch.float32
    target = torch.device(device) if device is not None else torch.device("cpu")
    state = {
        name: t.to(device=target, dtype=dtype if t.is_floating_point() else t.dtype)
        for name, t in state.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()


def describe(info: CheckpointInfo) -> str:
    """One line for logs and the panel: variant, size, dtype and mask availability."""
    mask = f"mask strength {info.default_mask_strength:g}" if info.mask_available else "no mask"
    millions = info.parameter_count / 1e6
    return f"{info.variant}: {info.path.name}, {millions:.1f} M parameters, {info.dtype}, {mask}"
