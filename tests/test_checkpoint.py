"""Checkpoint loading: every supported format, and a clear one-line error for each bad file."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from page4d_viewer.errors import CheckpointError, Page4DError
from page4d_viewer.model import Page4D, build_model, load_checkpoint, save_checkpoint
from page4d_viewer.model import checkpoint as checkpoint_module
from page4d_viewer.model.checkpoint import describe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> Page4D:
    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.rand(2, 3, 28, 42, generator=torch.Generator().manual_seed(3))


def run(model: Page4D, clip: torch.Tensor, strength: float = 64.0) -> torch.Tensor:
    with torch.no_grad():
        return model(clip, mask_strength=strength).world_points


def authors_state(model: Page4D) -> dict[str, torch.Tensor]:
    """State dict as the authors' trainer saved it: DDP prefix, tracker included."""
    return {f"module.{k}": v.clone() for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- formats


def test_authors_pickle_with_prefix_and_tracker(
    tiny: Page4D, clip: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "checkpoint_mask.pt"
    torch.save({"model": authors_state(tiny), "epoch": 12, "prev_epoch": 11}, path)
    model, info = load_checkpoint(path, preset="tiny")
    assert info.variant == "PAGE-4D (mask)" and info.default_mask_strength == 64.0
    assert info.mask_available and model.mask_available
    assert info.dropped_keys == () and info.track_available and model.track_available
    assert info.parameter_count == sum(p.numel() for p in tiny.parameters())
    assert info.dtype == "float32" and info.path == path and info.config.name == "tiny"
    assert not model.training
    assert torch.equal(run(model, clip), run(tiny, clip))
    assert "PAGE-4D (mask)" in describe(info)


def test_bare_state_dict_named_nomask(tiny: Page4D, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_nomask.pt"
    torch.save(tiny.state_dict(), path)
    _, info = load_checkpoint(path, preset="tiny")
    assert info.variant == "PAGE-4D (no mask)" and info.default_mask_strength == 0.0
    assert info.mask_available and info.dropped_keys == ()


def test_vggt_checkpoint_has_no_mask(tiny: Page4D, clip: torch.Tensor, tmp_path: Path) -> None:
    state = {k: v for k, v in tiny.state_dict().items() if "spatial_mask_head" not in k}
    path = tmp_path / "model.pt"
    torch.save(state, path)
    model, info = load_checkpoint(path, preset="tiny")
    assert info.variant == "VGGT" and not info.mask_available
    assert info.default_mask_strength == 0.0 and not model.config.has_mask_head
    # Same weights, mask off: exactly the PAGE-4D model's unmasked output.
    assert torch.equal(run(model, clip, 64.0), run(tiny, clip, 0.0))
    assert info.track_available  # VGGT-1B's tracker loads too


def test_checkpoint_without_tracker_builds_no_track_head(
    tiny: Page4D, clip: torch.Tensor, tmp_path: Path
) -> None:
    state = {k: v for k, v in tiny.state_dict().items() if not k.startswith("track_head.")}
    path = tmp_path / "checkpoint_mask.pt"
    torch.save({"model": state}, path)
    model, info = load_checkpoint(path, preset="tiny")
    assert not info.track_available and model.track_head is None
    assert not model.config.has_track_head
    assert torch.equal(run(model, clip), run(tiny, clip))
    with pytest.raises(Page4DError, match="no track head"):
        model(clip, query_points=torch.zeros(2, 2))


def test_our_checkpoint_from_before_the_track_head_loads_without_one(
    tiny: Page4D, clip: torch.Tensor, tmp_path: Path
) -> None:
    """Like the shipped default model: config metadata without track fields, no track weights."""
    path = save_checkpoint(tiny, tmp_path / "ours.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
        state = {k: handle.get_tensor(k) for k in handle.keys() if not k.startswith("track_head.")}  # noqa: SIM118
    config = {
        k: v
        for k, v in json.loads(metadata["config"]).items()
        if not k.startswith("track_") and k != "has_track_head"
    }
    old = tmp_path / "old.safetensors"
    save_file(state, str(old), metadata={**metadata, "config": json.dumps(config)})
    model, info = load_checkpoint(old)
    assert info.variant == "page4d_viewer" and not info.track_available
    assert model.track_head is None and info.dropped_keys == ()
    assert torch.equal(run(model, clip), run(tiny, clip))
    # Written again, it says so explicitly and loads the same way.
    again, again_info = load_checkpoint(save_checkpoint(model, tmp_path / "again.safetensors"))
    assert again.config == model.config and not again_info.track_available


def test_shipped_default_model_loads_without_track_head() -> None:
    from page4d_viewer.settings import default_checkpoint_path

    path = default_checkpoint_path()
    if not path.is_file():
        pytest.skip(f"{path} not present")
    model, info = load_checkpoint(path)
    assert model.config.name == "small" and not info.track_available
    assert model.track_head is None and info.dropped_keys == ()


def test_our_safetensors_round_trip(clip: torch.Tensor, tmp_path: Path) -> None:
    torch.manual_seed(1)
    original = build_model("tiny", depth=12, dpt_layers=(2, 5, 8, 11), masked_layers=(10,))
    original.eval()
    path = save_checkpoint(original, tmp_path / "ours.safetensors", default_mask_strength=32)
    model, info = load_checkpoint(path)  # no preset needed: the config travels along
    assert info.variant == "page4d_viewer" and info.default_mask_strength == 32.0
    assert model.config == original.config and info.track_available
    assert torch.equal(run(model, clip), run(original, clip))
    points = torch.tensor([[5.0, 7.0], [30.0, 20.0]])
    with torch.no_grad():
        tracked = model(clip, mask_strength=64.0, query_points=points)
        expected = original(clip, mask_strength=64.0, query_points=points)
    assert torch.equal(tracked.track, expected.track)


def test_official_names_in_safetensors(tiny: Page4D, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.state_dict().items()}, str(path))
    _, info = load_checkpoint(path, preset="tiny")
    assert info.variant == "PAGE-4D (mask)" and info.content_hash.startswith("sha256:")


def test_dtype_and_device_arguments(tiny: Page4D, tmp_path: Path) -> None:
    path = save_checkpoint(tiny, tmp_path / "ours.safetensors")
    model, info = load_checkpoint(path, dtype=torch.float64, device="cpu")
    assert info.dtype == "float64" and info.default_mask_strength == 64.0
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in model.parameters())


def test_content_hash_is_sha256_for_small_files(tiny: Page4D, tmp_path: Path) -> None:
    path = save_checkpoint(tiny, tmp_path / "ours.safetensors")
    _, info = load_checkpoint(path)
    assert info.content_hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_content_hash_samples_large_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(checkpoint_module, "FULL_HASH_LIMIT", 1024)
    monkeypatch.setattr(checkpoint_module, "_HASH_SLICE_BYTES", 16)
    path = tmp_path / "big.bin"
    data = bytearray(os.urandom(100_000))
    path.write_bytes(data)
    first = checkpoint_module.content_hash(path)
    assert first.startswith("sha256-sampled:")
    data[-1] ^= 0xFF  # the last slice is always sampled
    path.write_bytes(data)
    assert checkpoint_module.content_hash(path) != first


# ----------------------------------------------------------------------------- refusals


class WritesAFile:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "code ran"))


def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "checkpoint_mask.pt"
    torch.save({"model": {"w": torch.ones(1)}, "payload": WritesAFile(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path, preset="tiny")
    assert not marker.exists()


def test_raw_pickle_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps(WritesAFile(marker), protocol=2))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path, preset="tiny")
    assert not marker.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pt is not a checkpoint"):
        load_checkpoint(path)


def test_pickle_without_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.ones(2)], path)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_checkpoint(path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_file(tiny: Page4D, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pt":
        torch.save(tiny.state_dict(), path)
    else:
        save_checkpoint(tiny, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(path, preset="tiny")


def test_wrong_preset_names_wrong_shapes(tiny: Page4D, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_mask.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(
        CheckpointError,
        match=r"wrong shape .*aggregator\.camera_token \(1, 2, 1, 64\) vs model \(1, 2, 1, 1024\)",
    ):
        load_checkpoint(path, preset="official")


def test_wrong_shapes_are_named(tiny: Page4D, tmp_path: Path) -> None:
    state = {**tiny.state_dict(), "depth_head.norm.weight": torch.ones(7)}
    path = tmp_path / "checkpoint_mask.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 tensor.*depth_head\.norm\.weight \(7,\) vs"):
        load_checkpoint(path, preset="tiny")


def test_missing_keys_are_named(tiny: Page4D, tmp_path: Path) -> None:
    state = tiny.state_dict()
    gone = sorted(k for k in state if k.startswith("camera_head.trunk.0."))
    for key in gone:
        del state[key]
    path = tmp_path / "checkpoint_mask.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"{len(gone)} missing key.*{gone[0]}.*, \\.\\.\\."):
        load_checkpoint(path, preset="tiny")


def test_unexpected_keys_are_named(tiny: Page4D, tmp_path: Path) -> None:
    state = {**tiny.state_dict(), "aggregator.extra_head.weight": torch.ones(1)}
    path = tmp_path / "checkpoint_mask.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="1 unexpected key.*aggregator.extra_head.weight"):
        load_checkpoint(path, preset="tiny")


def test_unknown_preset_is_a_checkpoint_error(tiny: Page4D, tmp_path: Path) -> None:
    path = tmp_path / "checkpoint_mask.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(CheckpointError, match="unknown model preset"):
        load_checkpoint(path, preset="huge")


def test_our_format_with_unknown_version_is_refused(tiny: Page4D, tmp_path: Path) -> None:
    path = tmp_path / "future.safetensors"
    tensors = {k: v.contiguous() for k, v in tiny.state_dict().items()}
    metadata = {"format": "page4d_viewer", "format_version": "99", "config": "{}"}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="unsupported page4d_viewer checkpoint version"):
        load_checkpoint(path)


def test_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("x")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)
