"""Ground-truth tracks for synthetic scenes, through the clip's crop and resize, and errors."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.evaluation.report import evaluate_reconstruction
from page4d_viewer.evaluation.tracks import track_errors
from page4d_viewer.inference.tracking import ground_truth_tracks, with_ground_truth_tracks
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.result.tracks import Tracks

FRAMES, HEIGHT, WIDTH = 3, 28, 42


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory, few_layer_model):
    """A few-layer model's result, with tracks, on a saved 112x84 orbit sample (every 2nd of
    7 frames): the 42-pixel model input is a resize by 3/8 and a crop of the rows."""
    from page4d_viewer.inference.predictor import predict
    from page4d_viewer.sources.sampling import FrameSampling
    from page4d_viewer.sources.synthetic import make_clip, save_ground_truth

    folder = tmp_path_factory.mktemp("sample") / "orbit"
    save_ground_truth(make_clip(21, num_frames=7, width=112, height=84, camera="orbit"), folder)
    model = few_layer_model(img_size=42).float()
    recon = predict(folder, model, tracks=6, sampling=FrameSampling(stride=2))
    return recon, folder


def test_a_synthetic_sample_gives_ground_truth_for_the_predicted_queries(sample_result) -> None:
    recon, _ = sample_result
    truth = recon.gt_tracks
    assert truth is not None and truth.matches(recon.tracks)
    query = recon.tracks.query_frame[0]
    np.testing.assert_allclose(truth.xy[query], recon.tracks.xy[query], atol=1e-4)
    assert truth.visible()[query].all()
    assert recon.metadata.frame_indices == [0, 2, 4, 6]


def _static_pixels(recon: Reconstruction, frame: int) -> np.ndarray:
    """(N, 2) integer pixel (x, y) of frame `frame` on static surfaces, away from edges."""
    rows, cols = np.mgrid[3 : recon.image_hw[0] - 3 : 3, 3 : recon.image_hw[1] - 3 : 3]
    static = ~recon.gt_dynamic_mask[frame][rows, cols]
    return np.stack([cols[static], rows[static]], axis=-1).astype(np.float64)


def test_static_points_land_where_the_ground_truth_cameras_project_them(sample_result) -> None:
    # Independent of the tracker's mapping code: unproject a model-input pixel with the
    # ground-truth depth and cameras (both already in model-input pixels) and project it.
    recon, folder = sample_result
    query_frame = 1
    pixels = _static_pixels(recon, query_frame)
    count = len(pixels)
    queries = Tracks(
        np.repeat(pixels[None], recon.num_frames, axis=0),
        np.ones((recon.num_frames, count)),
        np.ones((recon.num_frames, count)),
        np.full(count, query_frame),
    )
    truth = ground_truth_tracks(dataclasses.replace(recon, tracks=queries, gt_tracks=None), folder)
    cameras = recon.cameras["ground_truth"]
    rows, cols = pixels[:, 1].astype(int), pixels[:, 0].astype(int)
    depth = recon.gt_depth[query_frame][rows, cols]
    camera_points = np.linalg.inv(cameras.intrinsics[query_frame]) @ np.stack(
        [cols, rows, np.ones(count)]
    )
    world = geometry.transform_points(
        geometry.invert_rigid(cameras.extrinsics[query_frame]), (camera_points * depth).T
    )
    for frame in range(recon.num_frames):
        seen = geometry.transform_points(cameras.extrinsics[frame], world)
        projected = (cameras.intrinsics[frame] @ seen.T).T
        expected = projected[:, :2] / projected[:, 2:]
        visible = truth.visible()[frame]
        assert visible.mean() > 0.5
        error = np.linalg.norm(truth.xy[frame] - expected, axis=-1)[visible]
        # 0.001-0.005 px measured; a half-pixel slip in the mapping gives 0.7 px.
        assert np.median(error) < 0.05 and np.percentile(error, 90) < 0.2, frame


def test_ground_truth_tracks_survive_the_file_and_the_csv(sample_result, tmp_path) -> None:
    from page4d_viewer.result.export.tracks_csv import export_tracks_csv

    recon, _ = sample_result
    loaded = Reconstruction.load(recon.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(loaded.gt_tracks.xy, recon.gt_tracks.xy)
    np.testing.assert_array_equal(loaded.gt_tracks.visible(), recon.gt_tracks.visible())
    with export_tracks_csv(loaded, tmp_path / "t.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    frames = recon.num_frames
    row = rows[2 * frames + 1]  # track 2, frame 1
    assert float(row["gt_x"]) == pytest.approx(recon.gt_tracks.xy[1, 2, 0], abs=1e-5)
    assert int(row["gt_visible"]) == int(recon.gt_tracks.visible()[1, 2])


def test_track_errors_count_seen_points_off_the_query_frame(make_reconstruction) -> None:
    truth_xy = np.zeros((FRAMES, 2, 2), dtype=np.float32)
    truth_xy[:, 0] = [[10, 10], [12, 10], [14, 10]]  # moves 2 px a frame
    truth_xy[:, 1] = [[5, 5], [5, 5], [5, 5]]
    seen = np.ones((FRAMES, 2))
    seen[2, 1] = 0  # hidden in frame 2: not scored
    predicted_xy = truth_xy.copy()
    predicted_xy[1, 0] += [3, 4]  # 5 px off
    predicted_xy[2, 1] += [30, 0]  # off, but hidden
    visibility = np.array([[1, 1], [1, 1], [1, 0.9]])  # says visible where the truth does not
    predicted = Tracks(predicted_xy, visibility, np.ones((FRAMES, 2)), [0, 0])
    truth = Tracks(truth_xy, seen, np.ones((FRAMES, 2)), [0, 0])
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=predicted, gt_tracks=truth)
    scores = track_errors(recon)
    assert scores["points"] == 3  # frames 1-2 of track 0, frame 1 of track 1
    assert scores["median_px"] == pytest.approx(0.0)
    assert scores["mean_px"] == pytest.approx(5 / 3, rel=1e-6)
    assert scores["within_2px"] == pytest.approx(2 / 3)
    # no motion: track 0 errs 2 and 4 px, track 1 is still
    assert scores["still_mean_px"] == pytest.approx(2.0, rel=1e-6)
    assert scores["visibility_accuracy"] == pytest.approx(3 / 4)
    report = evaluate_reconstruction(recon)
    assert report.tracks == scores
    assert "tracks: median 2-D error 0.00 px" in report.format_table()


def test_ground_truth_tracks_must_follow_the_same_queries(make_reconstruction) -> None:
    xy = np.zeros((FRAMES, 2, 2))
    tracks = Tracks(xy, np.ones((FRAMES, 2)), np.ones((FRAMES, 2)), [0, 0])
    other = Tracks(xy, np.ones((FRAMES, 2)), np.ones((FRAMES, 2)), [0, 1])
    with pytest.raises(ValueError, match="same queries"):
        make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=tracks, gt_tracks=other)
    with pytest.raises(ValueError, match="same queries"):
        make_reconstruction(FRAMES, HEIGHT, WIDTH, gt_tracks=tracks)


def test_a_sample_outside_the_allowed_roots_gives_no_ground_truth(
    sample_result, tmp_path: Path
) -> None:
    from page4d_viewer.sources.confine import confined

    recon, _ = sample_result
    with confined([tmp_path]):
        assert with_ground_truth_tracks(recon).gt_tracks is None
    assert with_ground_truth_tracks(recon).gt_tracks is not None
