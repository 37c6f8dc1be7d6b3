"""Predictor: model outputs -> Reconstruction, both mask variants, progress, checkpoints."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from page4d_viewer import geometry, settings
from page4d_viewer.errors import CheckpointError, Page4DError
from page4d_viewer.inference import predictor
from page4d_viewer.model.network import ModelOutput
from page4d_viewer.sources.clip import Clip
from page4d_viewer.sources.sampling import FrameSampling


def make_clip(frames: int = 3, height: int = 60, width: int = 80) -> Clip:
    rng = np.random.default_rng(0)
    return Clip(
        frames=rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8),
        frame_indices=np.arange(frames, dtype=np.int64) * 2,
        timestamps=np.arange(frames, dtype=np.float64) / 12.5,
        source="memory://test",
        source_fps=25.0,
        original_sizes=np.tile([height, width], (frames, 1)),
        frame_names=[f"frame {i}" for i in range(frames)],
        kind="video",
        source_frame_count=2 * frames,
    )


class StandInNetwork(torch.nn.Module):
    """Known outputs in the ModelOutput contract: camera i sits at x = i (+ 0.5 if unmasked)."""

    def __init__(self, mask_available: bool = True) -> None:
        super().__init__()
        self.config = SimpleNamespace(img_size=56, name="stand-in", patch_size=14)
        self.mask_available = mask_available
        self.calls: list[float] = []

    def forward_pair(
        self,
        images: torch.Tensor,
        mask_strength: float,
        progress: object = None,
        unmasked_geometry: bool = True,
    ) -> tuple[ModelOutput, ModelOutput]:
        self.calls.append(mask_strength)
        self.unmasked_geometry = unmasked_geometry
        for stage, total in (("encoding", 2), ("aggregating", 3), ("heads", 3)):
            for done in range(1, total + 1):
                progress(stage, done, total)
        masked = self._output(images, mask_strength, shift=0.0)
        if mask_strength == 0.0:
            return masked, masked
        return masked, self._output(images, 0.0, shift=0.5)

    def _output(self, images: torch.Tensor, strength: float, shift: float) -> ModelOutput:
        frames, _, height, width = images.shape
        pose_enc = torch.zeros(1, frames, 9)
        pose_enc[0, :, 0] = -(torch.arange(frames) + shift)  # t = -R c with R = identity
        pose_enc[0, :, 6] = 1.0
        pose_enc[0, :, 7:] = 1.2
        depth = images.mean(dim=1)[None, ..., None] + 1.0
        mask = None
        if self.mask_available:
            mask = torch.linspace(-0.4, 0.4, frames * (height // 14) * (width // 14))
            mask = mask.reshape(1, frames, height // 14, width // 14)
        return ModelOutput(
            pose_enc=pose_enc,
            pose_enc_list=[pose_enc],
            depth=depth,
            depth_conf=torch.full((1, frames, height, width), 2.0),
            world_points=torch.ones(1, frames, height, width, 3),
            world_points_conf=torch.full((1, frames, height, width), 3.0),
            mask_score=mask,
            mask_strength=strength,
        )


def test_predict_converts_outputs_and_records_metadata() -> None:
    network = StandInNetwork()
    progress: list[tuple[float, str]] = []
    recon = predictor.predict(
        make_clip(), network, device="cpu", progress=lambda f, m: progress.append((f, m))
    )
    assert network.calls == [64.0]  # the released mask strength by default
    assert network.unmasked_geometry is False  # only the unmasked cameras are kept
    assert recon.image_hw == (42, 56)  # crop mode at the model's 56 px width
    assert recon.num_frames == 3
    np.testing.assert_allclose(recon.cameras["masked"].centers[:, 0], [0, 1, 2], atol=1e-6)
    np.testing.assert_allclose(recon.cameras["unmasked"].centers[:, 0], [0.5, 1.5, 2.5], atol=1e-6)
    np.testing.assert_allclose(
        recon.cameras["masked"].intrinsics[0, 0, 0],
        geometry.focal_from_fov(1.2, 56),
        rtol=1e-6,
    )
    np.testing.assert_allclose(recon.depth, recon.images.mean(axis=-1) / 255.0 + 1.0, atol=1e-5)
    assert recon.mask_score.shape == (3, 3, 4)
    assert recon.points_conf.min() == 3.0
    meta = recon.metadata
    assert meta.mask_strength == 64.0 and meta.mask_available
    assert meta.frame_indices == [0, 2, 4]
    assert meta.timestamps == pytest.approx([0.0, 0.08, 0.16])
    assert meta.preprocessing.mode == "crop" and meta.preprocessing.target_size == 56
    assert meta.preprocessing.mapping["original_size"] == [60, 80]
    assert meta.device == "cpu" and meta.source == "memory://test"
    assert {"read", "preprocess", "model", "convert", "model.aggregating"} <= set(meta.timings)
    fractions = [fraction for fraction, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("aggregating" in message for _, message in progress)


def test_without_mask_head_one_pass_fills_both_variants() -> None:
    network = StandInNetwork(mask_available=False)
    recon = predictor.predict(make_clip(), network, device="cpu", mask_strength=64.0)
    assert network.calls == [0.0]
    assert recon.mask_score is None and recon.metadata.mask_strength == 0.0
    np.testing.assert_array_equal(
        recon.cameras["masked"].extrinsics, recon.cameras["unmasked"].extrinsics
    )


def test_zero_strength_is_one_pass() -> None:
    network = StandInNetwork()
    recon = predictor.predict(make_clip(), network, device="cpu", mask_strength=0.0)
    assert network.calls == [0.0]
    assert recon.has_mask  # the mask head still scores patches at alpha 0


def test_checkpoint_info_sets_default_strength_and_names() -> None:
    info = predictor.ModelInfo("w.safetensors", "f00d", "small", True, default_mask_strength=32.0)
    network = StandInNetwork()
    recon = predictor.predict(make_clip(), network, device="cpu", checkpoint_info=info)
    assert network.calls == [32.0]
    assert recon.metadata.checkpoint_name == "w.safetensors"
    assert recon.metadata.checkpoint_hash == "f00d"
    assert recon.metadata.model_variant == "small"


def test_bad_strength_is_refused() -> None:
    with pytest.raises(Page4DError, match="mask strength"):
        predictor.predict(make_clip(), StandInNetwork(), device="cpu", mask_strength=-1.0)


def test_raising_progress_cancels() -> None:
    class Cancelled(Exception):
        pass

    def cancel(fraction: float, message: str) -> None:
        if "aggregating" in message:
            raise Cancelled

    with pytest.raises(Cancelled):
        predictor.predict(make_clip(), StandInNetwork(), device="cpu", progress=cancel)


def test_predict_from_a_folder_of_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for index in range(4):
        image = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
        Image.fromarray(image).save(tmp_path / f"frame{index}.png")
    recon = predictor.predict(
        tmp_path, StandInNetwork(), device="cpu", mode="pad", sampling=FrameSampling(stride=2)
    )
    assert recon.num_frames == 2
    assert recon.image_hw == (56, 56)
    assert recon.metadata.frame_indices == [0, 2]
    assert recon.metadata.timestamps == []  # still images have no timing
    np.testing.assert_allclose(recon.timestamps(), [0.0, 1.0])


@pytest.mark.slow
def test_real_tiny_network_end_to_end(tmp_path: Path) -> None:
    from page4d_viewer.model import build_model

    torch.manual_seed(0)
    network = build_model("tiny", img_size=56)
    recon = predictor.predict(make_clip(frames=2), network, device="cpu", precision="fp32")
    assert recon.image_hw == (42, 56)
    assert recon.mask_score.shape == (2, 3, 4)
    assert np.all(np.abs(recon.mask_score) < 0.5)
    assert np.all(recon.depth_conf >= 1.0)
    assert not np.allclose(recon.cameras["masked"].extrinsics, recon.cameras["unmasked"].extrinsics)
    loaded = type(recon).load(recon.save(tmp_path / "tiny.npz"))
    assert loaded.metadata.model_variant == "tiny"


@pytest.mark.slow
def test_attention_and_features_are_stored_only_when_asked(tmp_path: Path) -> None:
    from page4d_viewer.model import AttentionRequest, build_model

    torch.manual_seed(0)
    network = build_model("tiny", img_size=56)
    plain = predictor.predict(make_clip(frames=2), network, device="cpu", precision="fp32")
    assert plain.inside is None
    recon = predictor.predict(
        make_clip(frames=2), network, device="cpu", precision="fp32", attention=True
    )
    inside = recon.inside
    assert inside is not None and inside.attention is not None
    assert inside.attention_special is not None and inside.feature_pca is not None
    assert inside.attention_layers == (10, 15, 19) and inside.attention_query_frames == (0, 1)
    assert inside.attention["masked"].shape == (3, 2, 2, 3, 4)
    assert set(inside.attention) == {"masked", "unmasked"}
    total = inside.attention["unmasked"].sum(axis=(2, 3, 4))
    total += inside.attention_special["unmasked"].sum(axis=2)
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
    assert inside.feature_layers == (9, 19) and inside.feature_pca.shape == (2, 2, 3, 4, 3)
    np.testing.assert_array_equal(recon.depth, plain.depth)
    loaded = type(recon).load(recon.save(tmp_path / "inside.npz")).inside
    assert loaded is not None and loaded.attention is not None
    np.testing.assert_allclose(loaded.attention["masked"], inside.attention["masked"], atol=1e-3)
    subset = predictor.predict(
        make_clip(frames=2),
        network,
        device="cpu",
        precision="fp32",
        attention=AttentionRequest(layers=(19,), query_frames=(1,), feature_layers=()),
    )
    assert subset.inside is not None and subset.inside.attention is not None
    assert subset.inside.attention["unmasked"].shape == (1, 1, 2, 3, 4)
    assert subset.inside.feature_pca is None


def test_default_checkpoint_path_and_missing_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.DEFAULT_CHECKPOINT_ENV, raising=False)
    default = settings.default_checkpoint_path()
    assert default.name == "page4d_small.safetensors" and default.parent.name == "assets"
    monkeypatch.setenv(settings.DEFAULT_CHECKPOINT_ENV, str(tmp_path / "absent.safetensors"))
    with pytest.raises(CheckpointError, match="no default model is shipped.*--checkpoint"):
        predictor.load_default_model()
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        predictor.load_model(tmp_path / "other.pt")


def test_device_and_precision_are_recorded_and_checked() -> None:
    recon = predictor.predict(make_clip(), StandInNetwork(), device="cpu", precision="fp32")
    assert recon.metadata.device == "cpu" and recon.metadata.precision == "float32"
    with pytest.raises(Page4DError, match="device"):
        predictor.predict(make_clip(), StandInNetwork(), device="no-such-device")
    with pytest.raises(Page4DError, match="precision"):
        predictor.predict(make_clip(), StandInNetwork(), device="cpu", precision="fp8")


@pytest.fixture(scope="module")
def synthetic_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from page4d_viewer.sources import synthetic

    clip = synthetic.make_clip(3, num_frames=4, width=80, height=60, camera="orbit")
    return synthetic.save_ground_truth(clip, tmp_path_factory.mktemp("sample"))


def test_ground_truth_beside_the_source_is_attached(synthetic_sample: Path) -> None:
    from page4d_viewer.sources import groundtruth

    source = synthetic_sample / "clip.mp4"
    assert predictor.find_ground_truth(source) == synthetic_sample
    recon = predictor.predict(
        source, StandInNetwork(), device="cpu", sampling=FrameSampling(stride=2)
    )
    assert recon.variants == (
        "masked",
        "unmasked",
        "geometry_masked",
        "geometry_unmasked",
        "ground_truth",
    )
    assert recon.metadata.frame_indices == [0, 2]
    truth = groundtruth.load_ground_truth(synthetic_sample, frame_indices=[0, 2])
    expected = geometry.compose_rigid(
        truth.extrinsics[1], geometry.invert_rigid(truth.extrinsics[0])
    )
    np.testing.assert_allclose(recon.cameras["ground_truth"].extrinsics[1], expected, atol=1e-9)
    # 80x60 frames crop to 56x42: the intrinsics scale by 0.7 with the half-pixel shift.
    np.testing.assert_allclose(
        recon.cameras["ground_truth"].intrinsics[0, 0, 0], truth.intrinsics[0, 0, 0] * 0.7
    )
    assert recon.gt_depth.shape == (2, 42, 56) and recon.gt_depth.min() > 0
    assert recon.gt_dynamic_mask.shape == (2, 42, 56)
    without = predictor.predict(source, StandInNetwork(), device="cpu", ground_truth=None)
    assert "ground_truth" not in without.variants


def test_explicit_ground_truth_that_does_not_fit_is_an_error(
    synthetic_sample: Path, tmp_path: Path
) -> None:
    with pytest.raises(Page4DError, match="ground truth"):
        predictor.predict(
            make_clip(frames=6), StandInNetwork(), device="cpu", ground_truth=synthetic_sample
        )


def test_ground_truth_beside_a_confined_source_is_confined_too(
    synthetic_sample: Path, tmp_path: Path
) -> None:
    import shutil

    from page4d_viewer.sources.confine import confined

    root = tmp_path / "root"
    sample = shutil.copytree(synthetic_sample, root / "sample")
    with confined([root]):
        inside = predictor.predict(sample / "clip.mp4", StandInNetwork(), device="cpu")
    assert "ground_truth" in inside.variants
    # The same folder whose ground truth is a link to a file outside the data root.
    (sample / "groundtruth.npz").unlink()
    (sample / "groundtruth.npz").symlink_to(synthetic_sample / "groundtruth.npz")
    with confined([root]):
        linked = predictor.predict(sample / "clip.mp4", StandInNetwork(), device="cpu")
    assert "ground_truth" not in linked.variants  # refused (a warning), the run goes on
    unconfined = predictor.predict(sample / "clip.mp4", StandInNetwork(), device="cpu")
    assert "ground_truth" in unconfined.variants  # the CLI may read anywhere
