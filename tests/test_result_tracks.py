"""The Tracks of a Reconstruction: checks, file round trip, lifting to 3-D, seeds."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError, ResultFileError
from page4d_viewer.result.reconstruction import FORMAT_VERSION, Reconstruction
from page4d_viewer.result.tracks import (
    Tracks,
    lift,
    moving_tracks,
    query_dynamic_probability,
    seed_queries,
)

FRAMES, HEIGHT, WIDTH = 3, 28, 42  # 2 x 3 mask patches of 14 pixels


def _tracks(count: int = 4, seed: int = 0, query_frame: int = 0) -> Tracks:
    rng = np.random.default_rng(seed)
    xy = np.stack(
        [rng.uniform(0, WIDTH - 1, (FRAMES, count)), rng.uniform(0, HEIGHT - 1, (FRAMES, count))],
        axis=-1,
    )
    return Tracks(
        xy,
        rng.uniform(0, 1, (FRAMES, count)),
        rng.uniform(0, 1, (FRAMES, count)),
        np.full(count, query_frame),
    )


def test_tracks_round_trip_through_the_file(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=_tracks(5, query_frame=1))
    loaded = Reconstruction.load(recon.save(tmp_path / "r.npz"))
    assert FORMAT_VERSION >= 3  # the version that added tracks
    np.testing.assert_array_equal(loaded.tracks.xy, recon.tracks.xy)  # float32 kept exactly
    np.testing.assert_allclose(loaded.tracks.visibility, recon.tracks.visibility, atol=1e-3)
    np.testing.assert_allclose(loaded.tracks.confidence, recon.tracks.confidence, atol=1e-3)
    np.testing.assert_array_equal(loaded.tracks.query_frame, [1] * 5)


def test_a_version_2_file_without_tracks_still_opens(make_reconstruction, tmp_path) -> None:
    path = make_reconstruction(FRAMES, HEIGHT, WIDTH).save(tmp_path / "old.npz")
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["format_version"] = np.asarray(2)
    np.savez_compressed(path, **arrays)
    assert Reconstruction.load(path).tracks is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("track_query_frame", np.full(4, 7), "query_frame"),
        ("track_xy", np.full((FRAMES, 4, 2), np.nan, dtype=np.float32), "NaN"),
        ("track_visibility", np.full((FRAMES, 4), 3.0, dtype=np.float16), "probabilities"),
        ("track_confidence", np.zeros((FRAMES, 5), dtype=np.float16), "track_confidence"),
    ],
)
def test_damaged_tracks_are_one_line_errors(
    make_reconstruction, tmp_path: Path, name: str, value: np.ndarray, message: str
) -> None:
    path = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=_tracks()).save(tmp_path / "r.npz")
    with np.load(path) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays[name] = value
    np.savez_compressed(path, **arrays)
    with pytest.raises(ResultFileError, match=message) as caught:
        Reconstruction.load(path)
    assert "\n" not in str(caught.value)


def test_tracks_of_another_frame_count_are_refused(make_reconstruction) -> None:
    with pytest.raises(ValueError, match="tracks have 3 frames"):
        make_reconstruction(4, HEIGHT, WIDTH, tracks=_tracks())


def test_select_frames_keeps_tracks_seeded_on_kept_frames(make_reconstruction) -> None:
    tracks = _tracks(2, query_frame=0).concat(_tracks(3, seed=1, query_frame=2))
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=tracks)
    subset = recon.select_frames([1, 2])
    assert subset.tracks.num_tracks == 3
    np.testing.assert_array_equal(subset.tracks.query_frame, [1, 1, 1])
    np.testing.assert_array_equal(subset.tracks.xy, tracks.xy[[1, 2]][:, 2:])
    assert recon.select_frames([1]).tracks is None


def test_lift_reads_the_point_map_at_the_nearest_pixel(make_reconstruction) -> None:
    xy = np.array([[[3.4, 5.6], [41.2, 0.0], [-2.0, 3.0]]] * FRAMES, dtype=np.float32)
    xy[2, 0] = [10.0, 20.0]
    tracks = Tracks(xy, np.ones((FRAMES, 3)), np.ones((FRAMES, 3)), np.zeros(3))
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=tracks)
    paths = lift(recon)
    np.testing.assert_array_equal(paths[0, 0], recon.points[0, 6, 3])  # row = y, col = x
    np.testing.assert_array_equal(paths[2, 0], recon.points[2, 20, 10])
    np.testing.assert_array_equal(paths[1, 1], recon.points[1, 0, 41])
    assert np.isnan(paths[:, 2]).all()  # x = -2 is off the image


def test_lift_from_depth_unprojects_with_that_variants_cameras(make_reconstruction) -> None:
    xy = np.array([[[7.0, 9.0], [30.0, 2.0]]] * FRAMES, dtype=np.float32)
    tracks = Tracks(xy, np.ones((FRAMES, 2)), np.ones((FRAMES, 2)), np.zeros(2))
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=tracks)
    recon.depth[1, 2, 30] = 0.0  # no depth, no point
    for variant in ("masked", "unmasked"):
        cameras = recon.cameras[variant]
        expected = geometry.depth_to_world_points(
            recon.depth, cameras.extrinsics, cameras.intrinsics
        )
        paths = lift(recon, f"depth_{variant}")
        np.testing.assert_allclose(paths[:, 0], expected[:, 9, 7], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(paths[0, 1], expected[0, 2, 30], rtol=1e-5, atol=1e-5)
        assert np.isnan(paths[1, 1]).all()


def test_moving_tracks_read_the_mask_patch_under_the_query(make_reconstruction) -> None:
    # Patch grid 2 x 3: the query of track 0 is in patch (1, 2) of frame 1, track 1's in
    # patch (0, 0) of frame 2.
    mask_score = np.full((FRAMES, 2, 3), 0.4, dtype=np.float32)  # probability 0.1: static
    mask_score[1, 1, 2] = -0.4  # probability 0.9: moving
    xy = np.zeros((FRAMES, 2, 2), dtype=np.float32)
    xy[1, 0] = [35.0, 20.0]
    xy[2, 1] = [3.0, 3.0]
    tracks = Tracks(xy, np.ones((FRAMES, 2)), np.ones((FRAMES, 2)), [1, 2])
    recon = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=tracks, mask_score=mask_score)
    np.testing.assert_allclose(query_dynamic_probability(recon), [0.9, 0.1], atol=1e-6)
    np.testing.assert_array_equal(moving_tracks(recon, 0.5), [True, False])
    np.testing.assert_array_equal(moving_tracks(recon, 0.05), [True, True])


def test_a_result_without_tracks_says_so_in_one_line(make_reconstruction) -> None:
    with pytest.raises(Page4DError, match="no point tracks"):
        lift(make_reconstruction(FRAMES, HEIGHT, WIDTH))


def test_seeds_go_on_the_likeliest_moving_patches_of_the_frame_that_moves_most() -> None:
    mask_score = np.full((FRAMES, 2, 3), 0.5, dtype=np.float32)  # probability 0: static
    mask_score[1, 0, 1] = 0.1  # frame 1: one patch at 0.4
    mask_score[2, :, 2] = [0.2, 0.3]  # frame 2: 0.3 and 0.2, more in all; none reaches 0.5
    seeds = seed_queries(mask_score, (HEIGHT, WIDTH), count=4, moving_share=0.5)
    assert seeds.frame == 2
    # patch (row r, col c) of 14 pixels has its centre at pixel (14 c + 6.5, 14 r + 6.5)
    np.testing.assert_allclose(seeds.xy[:2], [[34.5, 6.5], [34.5, 20.5]])
    others = seeds.xy[2:]
    assert len(others) == 2 and not np.any(np.isclose(others[:, 0], 34.5))
    # Never more seeds than patches, and none twice.
    many = seed_queries(mask_score, (HEIGHT, WIDTH), count=50)
    assert len(many.xy) == 6 and len({tuple(p) for p in many.xy.tolist()}) == 6


def test_seeds_without_a_mask_spread_over_the_first_frame() -> None:
    seeds = seed_queries(None, (HEIGHT, WIDTH), count=6)
    assert seeds.frame == 0 and seeds.xy.shape == (6, 2)
    assert len({tuple(point) for point in seeds.xy.tolist()}) == 6
    assert (seeds.xy >= 0).all() and (seeds.xy[:, 0] < WIDTH).all()
    assert (seeds.xy[:, 1] < HEIGHT).all()


def test_the_file_schema_lists_every_track_array(make_reconstruction, tmp_path) -> None:
    from page4d_viewer.result.validate import ARRAYS

    path = make_reconstruction(FRAMES, HEIGHT, WIDTH, tracks=_tracks()).save(tmp_path / "r.npz")
    with zipfile.ZipFile(path) as archive:
        names = {info.filename[:-4] for info in archive.infolist()}
    assert {name for name in names if name.startswith("track")} <= set(ARRAYS)
