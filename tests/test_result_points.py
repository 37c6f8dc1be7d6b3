"""The one point filter: the scene and the GLB/PLY exports keep the same points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trimesh
import viser
from viser import _messages

from page4d_viewer import settings
from page4d_viewer.result import export, points
from page4d_viewer.result.mask import DisplayError
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer.scene import SceneView, display

PERCENTILE = 44.0  # not the default nor a step: both paths must snap it alike (to 50)


def sorted_rows(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array[np.lexsort(array.T[::-1])]


def test_frame_points_filters_by_clip_wide_confidence(make_reconstruction) -> None:
    recon = make_reconstruction()
    everything = points.frame_points(recon, 1, threshold=-np.inf)
    assert everything.points.shape == (28 * 42, 3) and everything.points.dtype == np.float32
    np.testing.assert_array_equal(everything.colors, recon.images[1].reshape(-1, 3))
    cut = points.confidence_threshold(recon.points_conf, 50)
    assert cut == pytest.approx(np.percentile(recon.points_conf, 50))
    half = points.frame_points(recon, 1, threshold=cut)
    assert len(half.points) == int((recon.points_conf[1] >= cut).sum())
    np.testing.assert_array_equal(half.points, recon.points[1].reshape(-1, 3)[half.pixel_index])
    recon.points[1, 0, 0] = np.nan
    assert len(points.frame_points(recon, 1, threshold=-np.inf).points) == 28 * 42 - 1


def test_frame_points_rejects_bad_input(make_reconstruction) -> None:
    recon = make_reconstruction()
    with pytest.raises(DisplayError, match="out of range"):
        points.frame_points(recon, 3, threshold=0.0)
    with pytest.raises(DisplayError, match="point source"):
        points.frame_points(recon, 0, threshold=0.0, source="depth")
    with pytest.raises(DisplayError, match="percentile"):
        points.confidence_threshold(recon.points_conf, 100)


def test_depth_sources_unproject_and_drop_missing_depth(make_reconstruction) -> None:
    recon = make_reconstruction()
    cloud = points.frame_points(recon, 2, threshold=-np.inf, source="depth_masked")
    np.testing.assert_allclose(cloud.points, recon.points[2].reshape(-1, 3), atol=1e-4)
    recon.depth[2, 3, 4] = 0.0  # no depth, no point (the point map has no such rule)
    cloud = points.frame_points(recon, 2, threshold=-np.inf, source="depth_unmasked")
    assert len(cloud.points) == 28 * 42 - 1 and 3 * 42 + 4 not in cloud.pixel_index
    confidence = points.source_confidence(recon, "depth_unmasked")
    assert confidence is recon.depth_conf


def test_rows_and_cols_downsample_on_a_grid(make_reconstruction) -> None:
    recon = make_reconstruction()
    rows, cols = display.pixel_grid(28, 42, 3)
    cloud = points.frame_points(recon, 0, threshold=-np.inf, rows=rows, cols=cols)
    expected = (rows[:, None] * 42 + cols[None, :]).reshape(-1)
    np.testing.assert_array_equal(cloud.pixel_index, expected)


@pytest.fixture
def scene() -> Iterator[tuple[SceneView, list]]:
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    sent: list = []
    original = server.scene._queue_scene_message

    def record(message: object) -> None:
        sent.append(message)
        original(message)

    server.scene._queue_scene_message = record  # type: ignore[method-assign]
    view = SceneView(server)
    yield view, sent
    view.close()
    server.stop()


def scene_points(view: SceneView, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and colours of one frame's point cells on screen."""
    cells = [b.handle for b in view.points.frames[frame].bins.values() if b.handle.visible]
    positions = np.concatenate([np.asarray(h.points, dtype=np.float64) for h in cells])
    colors = np.concatenate([np.asarray(h.colors) for h in cells])
    return positions, colors


def glb_points(recon: Reconstruction, path: Path, frame: int, percentile: float) -> np.ndarray:
    export.export_glb(recon, path, conf_percentile=percentile)
    return np.asarray(
        trimesh.load(path, file_type="glb").geometry[f"points_frame_{frame:04d}"].vertices
    )


@pytest.mark.parametrize("later", [63.0, 0.0])
def test_glb_holds_the_points_the_scene_shows(
    make_reconstruction, scene: tuple[SceneView, list], tmp_path: Path, later: float
) -> None:
    view, sent = scene
    recon = make_reconstruction(frames=3, seed=7)
    recon.points[1, 2, :5] = np.nan  # dropped by both
    view.points.set_confidence_percentile(PERCENTILE)
    view.points.set_downsample(1)
    view.set_mask_overlay(0.0, 0.5)  # image colours, comparable with the export's
    view.show(recon)
    assert view.wait_until_sent(timeout=30)
    assert view.state().points.confidence_percentile == points.snap_percentile(PERCENTILE) == 50.0
    assert view.state().points.downsample == 1
    sent.clear()
    for percentile in (PERCENTILE, later):  # the second one only toggles bins
        view.points.set_confidence_percentile(percentile)
        for frame in range(3):
            view.set_frame(frame)
            exported = glb_points(recon, tmp_path / "scene.glb", frame, percentile)
            shown, colors = scene_points(view, frame)
            assert len(exported) == len(shown) <= 28 * 42
            # The scene sends float16 positions: the same set once the export is rounded alike.
            np.testing.assert_array_equal(
                sorted_rows(shown), sorted_rows(exported.astype(np.float32).astype(np.float16))
            )
            # And the scene's filter is exactly result.points.frame_points at that percentile.
            cut = points.confidence_threshold(recon.points_conf, percentile)
            expected = points.frame_points(recon, frame, threshold=cut)
            assert len(shown) == len(expected.points)
            np.testing.assert_array_equal(sorted_rows(colors), sorted_rows(expected.colors))
    assert not any(isinstance(m, _messages.PointCloudMessage) for m in sent)


def test_snapped_percentile_and_bins_match_the_threshold(make_reconstruction) -> None:
    recon = make_reconstruction(frames=2, seed=5)
    assert points.CONFIDENCE_STEP == 25.0
    assert [points.snap_percentile(p) for p in (0, 12, 12.5, 30, 44, 96, 99.9)] == [
        0, 0, 25, 25, 50, 75, 75,
    ]  # fmt: skip
    edges = points.confidence_edges(recon.points_conf)
    bins = points.confidence_bins(recon.points_conf, edges)
    for percentile in (10, 37, 50, 75):
        cut = points.confidence_threshold(recon.points_conf, percentile)
        kept = recon.points_conf >= cut
        np.testing.assert_array_equal(kept, bins >= points.percentile_bin(percentile))
    assert points.confidence_threshold(recon.points_conf, 12) == float("-inf")
    with pytest.raises(DisplayError, match="percentile"):
        points.snap_percentile(100)


@pytest.mark.parametrize("low", [1.0, 1.5, 3.0, 7.25])
def test_bins_and_threshold_agree_between_adjacent_float32_values(low: float) -> None:
    # The clip's median falls halfway between two adjacent float32 values: a float64 cut
    # would sit between them while the filter compares in float32.
    low32 = np.float32(low)
    confidence = np.array([low32, np.nextafter(low32, np.float32(np.inf))] * 50, np.float32)
    edges = points.confidence_edges(confidence)
    cut = points.confidence_threshold(confidence, 50)
    kept = confidence >= cut
    np.testing.assert_array_equal(kept, points.confidence_bins(confidence, edges) >= 2)


def test_ply_and_glb_default_to_the_scene_percentile(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2, seed=3)
    cut = points.confidence_threshold(recon.points_conf, settings.DEFAULT_CONF_PERCENTILE)
    expected = points.frame_points(recon, 1, threshold=cut)
    (_, ply) = export.export_ply(recon, tmp_path / "ply")
    np.testing.assert_allclose(trimesh.load(ply).vertices, expected.points, atol=1e-6)
    glb = export.export_glb(recon, tmp_path / "s.glb")
    vertices = trimesh.load(glb, file_type="glb").geometry["points_frame_0001"].vertices
    np.testing.assert_allclose(vertices, expected.points, atol=1e-6)
