"""The shipped default model: it loads, runs on a held-out synthetic clip, beats a trivial guess."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from page4d_viewer.cli import main
from page4d_viewer.model import load_checkpoint
from page4d_viewer.orchestration import default_model
from page4d_viewer.settings import default_checkpoint_path
from page4d_viewer.sources.datasets import parse_seeds
from page4d_viewer.training.train import FIRST_EVAL_SEED, default_image_hw

ASSET = default_checkpoint_path()
DOCS = ASSET.parents[1] / "docs" / "default-model.md"
MAX_ASSET_BYTES = 25 * 2**20
# Held out: training renders seeds below 1,000,000 only.
HELD_OUT_SEED = FIRST_EVAL_SEED + 1


@pytest.fixture(scope="module")
def shipped():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_checkpoint(ASSET)


@pytest.fixture(scope="module")
def held_out_sample(shipped):
    model, _ = shipped
    config = model.config
    overrides = {k: v for k, v in config.to_dict().items() if k != "name"}
    image_hw = default_image_hw(config.name, overrides)
    # The clip of the docs' table: 8 frames, every 2nd rendered frame.
    return default_model.held_out_sample(HELD_OUT_SEED, 8, image_hw, stride=2)


def test_the_asset_is_small_and_is_the_small_preset_with_a_mask(shipped) -> None:
    model, info = shipped
    assert ASSET.stat().st_size <= MAX_ASSET_BYTES
    assert model.config.name == "small"
    assert info.mask_available and info.default_mask_strength == 64.0
    assert info.variant == "page4d_viewer"


def test_the_default_checkpoint_path_is_the_asset() -> None:
    from page4d_viewer.settings import default_checkpoint_path

    assert default_checkpoint_path().resolve() == ASSET.resolve()


def test_shipped_model_runs_on_a_held_out_clip(shipped, held_out_sample) -> None:
    model, _ = shipped
    images = torch.from_numpy(held_out_sample.images)
    with torch.no_grad():
        output = model(images, mask_strength=64.0)
    frames, _, height, width = images.shape
    assert output.pose_enc.shape == (1, frames, 9)
    assert output.depth.shape == (1, frames, height, width, 1)
    assert output.mask_score.shape == (1, frames, height // 14, width // 14)
    assert torch.isfinite(output.depth).all() and torch.isfinite(output.pose_enc).all()


def test_shipped_model_beats_the_trivial_baseline(shipped, held_out_sample) -> None:
    model, _ = shipped
    sample = held_out_sample
    gt_extrinsics = default_model.gt_extrinsics_of(sample)
    trained = default_model.score_clip(
        sample, gt_extrinsics, default_model.model_predictor(model)(sample)
    )
    trivial = default_model.score_clip(
        sample, gt_extrinsics, default_model.trivial_predictor(sample)
    )
    assert trained["abs_rel"] < trivial["abs_rel"]
    assert trained["delta_1_25"] > trivial["delta_1_25"]
    # No ATE assertion: the shipped model's cameras barely move (docs/default-model.md), so an
    # ATE below the identity baseline's would say little about its camera path.
    assert np.isfinite(trained["mask_ap"]) and trained["mask_ap"] > trivial["mask_ap"]


def test_evaluation_seeds_parse_and_training_seeds_are_refused(tmp_path) -> None:
    from page4d_viewer.errors import Page4DError

    assert parse_seeds("9000000-9000002,9000007") == [
        9000000,
        9000001,
        9000002,
        9000007,
    ]
    with pytest.raises(Page4DError, match="cannot read seeds"):
        parse_seeds("nine")
    with pytest.raises(Page4DError, match="used in training"):
        default_model.evaluate({}, [12], 2, (28, 42))
    assert main(["evaluate-default", "--seeds", "x", "--checkpoint", str(tmp_path / "none")]) == 2


def test_trivial_baseline_mask_ap_is_the_share_of_moving_pixels(held_out_sample) -> None:
    sample = held_out_sample
    scores = default_model.score_clip(
        sample,
        default_model.gt_extrinsics_of(sample),
        default_model.trivial_predictor(sample),
    )
    assert scores["mask_ap"] == pytest.approx(sample.dynamic_mask.mean())
    assert scores["ate_masked"] == scores["ate_unmasked"] > 0
    assert scores["path_ratio_masked"] == 0.0


def test_a_perfect_prediction_scores_zero_error_and_path_ratio_one(held_out_sample) -> None:
    sample = held_out_sample
    truth = default_model.gt_extrinsics_of(sample)
    perfect = default_model.Prediction(
        extrinsics={"masked": truth, "unmasked": truth},
        depth=sample.depth.astype(np.float64),
        dynamic_score=sample.dynamic_mask.astype(np.float64),
    )
    scores = default_model.score_clip(sample, truth, perfect)
    assert scores["ate_masked"] == pytest.approx(0.0, abs=1e-9)
    assert scores["path_ratio_masked"] == pytest.approx(1.0)
    assert scores["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert scores["mask_ap"] == pytest.approx(1.0)


def _docs_row(seed: int, predictor: str) -> dict[str, float]:
    """The row of docs/default-model.md's per-clip table for (seed, predictor)."""
    lines = DOCS.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| seed | predictor |"))
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    prefix = f"| {seed} | {predictor} |"
    row = next(line for line in lines if line.startswith(prefix))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # "-" marks a metric the predictor has no value for (the trivial one has no geometry).
    return {
        name: math.nan if cell == "-" else float(cell)
        for name, cell in zip(columns[3:], cells[3:], strict=True)
    }


def test_the_evaluation_command_reproduces_the_docs_table(tmp_path, capsys) -> None:
    # The docs' command on one of its seeds; the printed row must match the committed one.
    figure = tmp_path / "figure.png"
    argv = ["--seeds", str(HELD_OUT_SEED), "--frames", "8", "--stride", "2", "--threads", "2"]
    assert main(["evaluate-default", *argv, "--figure", str(figure)]) == 0
    printed = capsys.readouterr().out
    for predictor in ("trained", "trivial"):
        documented = _docs_row(HELD_OUT_SEED, predictor)
        row = next(
            line
            for line in printed.splitlines()
            if line.startswith(f"| {HELD_OUT_SEED} | {predictor} |")
        )
        cells = [cell.strip() for cell in row.strip("|").split("|")][3:]
        for (name, expected), cell in zip(documented.items(), cells, strict=True):
            if math.isnan(expected):
                assert cell == "-", (predictor, name)
                continue
            assert float(cell) == pytest.approx(expected, abs=2e-3), (predictor, name)
    assert figure.is_file() and figure.with_name("figure-truth.png").is_file()
