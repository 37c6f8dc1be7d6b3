"""Attention maps and feature PCA in a Reconstruction: checks, frame subsets, save/load, v1."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import page4d_viewer.result.reconstruction as reconstruction_module
from page4d_viewer.errors import ResultFileError
from page4d_viewer.result.inspection import Inside, stored_attention_bytes
from page4d_viewer.result.reconstruction import Cameras, Metadata, Reconstruction

FRAMES, HEIGHT, WIDTH = 3, 28, 42
GRID = (HEIGHT // 14, WIDTH // 14)


def attention_maps(rng: np.random.Generator, layers: int, queries: int) -> tuple[np.ndarray, ...]:
    """(L, S_query, S, h, w) maps and (L, S_query, S) special mass, each row summing to 1."""
    weights = rng.uniform(size=(layers, queries, FRAMES, GRID[0] * GRID[1] + 1))
    weights /= weights.sum(axis=(2, 3), keepdims=True)
    return weights[..., 1:].reshape(layers, queries, FRAMES, *GRID), weights[..., 0]


@pytest.fixture
def inspected(make_reconstruction):
    """`inspected(seed=0)`: a minimal Reconstruction built by the conftest factory, with
    attention for both variants (2 layers, queries 0 and 2) and feature PCA of 2 layers."""

    def build(seed: int = 0) -> Reconstruction:
        return _inspected_recon(make_reconstruction, seed)

    return build


def _inspected_recon(make_reconstruction, seed: int) -> Reconstruction:
    rng = np.random.default_rng(seed)
    pose_enc = np.zeros((FRAMES, 9))
    pose_enc[:, 6], pose_enc[:, 7:] = 1.0, 1.0
    pose_enc[:, 0] = np.arange(FRAMES)
    cameras = Cameras.from_pose_encoding(pose_enc, (HEIGHT, WIDTH))
    masked, masked_special = attention_maps(rng, 2, 2)
    unmasked, unmasked_special = attention_maps(rng, 2, 2)
    return make_reconstruction(
        FRAMES,
        HEIGHT,
        WIDTH,
        images=rng.integers(0, 256, size=(FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8),
        depth=np.ones((FRAMES, HEIGHT, WIDTH)),
        depth_conf=np.ones((FRAMES, HEIGHT, WIDTH)),
        points=np.ones((FRAMES, HEIGHT, WIDTH, 3)),
        points_conf=np.ones((FRAMES, HEIGHT, WIDTH)),
        cameras={"masked": cameras, "unmasked": cameras},
        mask_score=rng.uniform(-0.5, 0.5, size=(FRAMES, *GRID)),
        inside=Inside(
            attention={"masked": masked, "unmasked": unmasked},
            attention_special={"masked": masked_special, "unmasked": unmasked_special},
            attention_layers=(10, 19),
            attention_query_frames=(0, 2),
            feature_pca=rng.integers(0, 256, size=(2, FRAMES, *GRID, 3), dtype=np.uint8),
            feature_layers=(9, 19),
        ),
        metadata=Metadata(),
    )


def without_inside(recon: Reconstruction) -> Reconstruction:
    return dataclasses.replace(recon, inside=None)


def test_round_trip_keeps_attention_within_float16(inspected, tmp_path: Path) -> None:
    original = inspected()
    path = original.save(tmp_path / "run.npz")
    with np.load(path) as archive:
        assert archive["attention.masked"].dtype == np.float16
        assert archive["feature_pca"].dtype == np.uint8
        assert int(archive["format_version"]) == reconstruction_module.FORMAT_VERSION
    loaded, original = Reconstruction.load(path).inside, original.inside
    assert loaded is not None and original is not None
    assert loaded.attention is not None and original.attention is not None
    assert loaded.attention_special is not None and original.attention_special is not None
    assert loaded.attention_layers == (10, 19) and loaded.attention_query_frames == (0, 2)
    assert loaded.feature_layers == (9, 19)
    for name in ("masked", "unmasked"):
        np.testing.assert_allclose(
            loaded.attention[name], original.attention[name], rtol=1e-3, atol=1e-6
        )
        np.testing.assert_allclose(
            loaded.attention_special[name], original.attention_special[name], rtol=1e-3
        )
    np.testing.assert_array_equal(loaded.feature_pca, original.feature_pca)


def test_a_version_1_file_still_opens(
    inspected, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = without_inside(inspected())
    monkeypatch.setattr(reconstruction_module, "FORMAT_VERSION", 1)
    path = plain.save(tmp_path / "v1.npz")
    monkeypatch.undo()
    with np.load(path) as archive:
        assert int(archive["format_version"]) == 1
        assert not any(name.startswith(("attention", "feature")) for name in archive.files)
    assert Reconstruction.load(path).inside is None


def test_select_frames_keeps_the_query_frames_it_keeps(inspected) -> None:
    inside = inspected().inside
    subset = inspected().select_frames([2, 1]).inside
    assert inside is not None and inside.attention is not None and inside.feature_pca is not None
    assert subset is not None and subset.attention is not None
    assert subset.attention_query_frames == (0,)  # frame 2 is now position 0; frame 1 no query
    np.testing.assert_array_equal(
        subset.attention["masked"], inside.attention["masked"][:, [1]][:, :, [2, 1]]
    )
    np.testing.assert_array_equal(subset.feature_pca, inside.feature_pca[:, [2, 1]])
    no_queries = inspected().select_frames([1]).inside
    assert no_queries is not None and no_queries.feature_pca is not None
    assert no_queries.attention is None and no_queries.attention_layers == ()
    assert no_queries.feature_pca.shape == (2, 1, *GRID, 3)


def test_a_result_without_queries_or_features_has_no_inside(inspected) -> None:
    recon = inspected()
    assert recon.inside is not None
    no_features = dataclasses.replace(recon.inside, feature_pca=None, feature_layers=())
    subset = dataclasses.replace(recon, inside=no_features).select_frames([1])
    assert subset.inside is None
    assert dataclasses.replace(recon, inside=Inside()).inside is None


def _replaced(inspected, **changes: object) -> dict[str, object]:
    """The fields of `inspected()`, with `changes` made to its `inside` record."""
    recon = inspected()
    fields = {f: getattr(recon, f) for f in recon.__dataclass_fields__}
    return {**fields, "inside": dataclasses.replace(recon.inside, **changes)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"attention_special": None}, "go together"),
        ({"attention": None, "attention_special": None}, "without attention"),
        ({"attention_layers": [10]}, r"must be \(1, 2, 3\)"),
        ({"attention_query_frames": [0, 3]}, "ascending positions"),
        ({"attention_query_frames": [2, 0]}, "ascending positions"),
        ({"attention_layers": [1.5, 2.5]}, "list of integers"),
        (
            {
                "attention": {
                    "masked": np.zeros((2, 2, 3, 2, 4)),
                    "unmasked": np.zeros((2, 2, 3, 2, 4)),
                }
            },
            "patch grid",
        ),
        ({"attention": {"other": np.zeros((2, 2, 3, *GRID))}}, "same variants"),
        ({"feature_pca": np.zeros((2, 3, *GRID, 3), np.float32)}, "feature_pca must be uint8"),
        ({"feature_layers": [9]}, "feature_pca must be uint8"),
        ({"feature_pca": None}, "without feature_pca"),
    ],
)
def test_inconsistent_fields_are_refused(
    inspected, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Reconstruction(**_replaced(inspected, **changes))


def test_attention_values_must_be_probabilities(inspected) -> None:
    attention = inspected().inside.attention
    bad = {**attention, "masked": attention["masked"] - 0.5}
    with pytest.raises(ValueError, match="probabilities"):
        Reconstruction(**_replaced(inspected, attention=bad))


def test_a_damaged_attention_array_is_one_clear_error(inspected, tmp_path: Path) -> None:
    path = inspected().save(tmp_path / "run.npz")
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["attention.masked"] = arrays["attention.masked"][:, :1]
    np.savez_compressed(path, **arrays)
    with pytest.raises(ResultFileError, match="attention.*must be"):
        Reconstruction.load(path)


def test_stored_attention_bytes_by_arithmetic() -> None:
    # The official layout at 32 frames: 37 x 21 patches, all 10 masked layers, both variants.
    assert stored_attention_bytes(10, 32, 32, (21, 37)) == 2 * 2 * 10 * 32 * 32 * 778
