"""Point tracks in the exports: the CSV read back with `csv`, the GLB lines read back with
trimesh (and their colours from the file's own buffers), and the shared track colours."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh

from page4d_viewer.errors import Page4DError
from page4d_viewer.result import export
from page4d_viewer.result.tracks import Tracks, lift, track_colors

# Four tracks through three 28 x 42 frames (2 x 3 mask patches of 14 pixels; the right
# column moves). Track 0 starts on the moving column; track 1 is hidden on frame 1; track 2
# leaves the image on frame 2; track 3 starts on the moving column on frame 2, at
# fractional pixels (nearest pixel: (40, 27), (39, 27), (40, 26)).
TRACK_XY = np.array(
    [
        [[30, 5], [5, 5], [10, 20], [40.4, 27.2]],
        [[31, 5], [6, 6], [10, 20], [39.3, 26.6]],
        [[32, 6], [7, 7], [-3, 21], [39.6, 25.8]],
    ],
    dtype=np.float32,
)
TRACK_VISIBILITY = np.array(
    [[0.9, 0.9, 0.8, 0.7], [0.9, 0.2, 0.8, 0.7], [0.9, 0.9, 0.6, 0.7]], dtype=np.float32
)
TRACK_QUERY_FRAME = np.array([0, 0, 1, 2])
MOVING = np.array([True, False, False, True])


@pytest.fixture
def tracked(make_reconstruction):
    mask = np.full((3, 2, 3), 0.4, dtype=np.float32)  # dynamic probability 0.1: static
    mask[:, :, 2] = -0.4  # 0.9: moving
    confidence = np.linspace(0.1, 0.9, 12, dtype=np.float32).reshape(3, 4)
    tracks = Tracks(TRACK_XY, TRACK_VISIBILITY, confidence, TRACK_QUERY_FRAME)
    return make_reconstruction(frames=3, mask_score=mask, tracks=tracks)


def _nearest_points(recon, frame: int, track: int) -> np.ndarray:
    """The stored world point at a track's nearest pixel (independent of `lift`)."""
    x, y = np.rint(TRACK_XY[frame, track]).astype(int)
    return recon.points[frame, y, x]


def test_tracks_csv_round_trip(tracked, tmp_path: Path) -> None:
    path = export.export_tracks_csv(tracked, tmp_path / "tracks.csv")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(export.tracks_csv.COLUMNS)
    assert len(rows) == 4 * 3
    for row in rows:
        track, frame = int(row["track"]), int(row["frame"])
        assert int(row["query_frame"]) == TRACK_QUERY_FRAME[track]
        assert row["moving"] == str(int(MOVING[track]))
        assert (np.float32(row["x"]), np.float32(row["y"])) == tuple(TRACK_XY[frame, track])
        assert np.float32(row["visibility"]) == tracked.tracks.visibility[frame, track]
        assert np.float32(row["confidence"]) == tracked.tracks.confidence[frame, track]
        assert row["visible"] == str(int(TRACK_VISIBILITY[frame, track] >= 0.5))
        world = [row["X"], row["Y"], row["Z"]]
        if (track, frame) == (2, 2):  # off the image: no point
            assert world == ["", "", ""]
        else:
            np.testing.assert_array_equal(
                np.array(world, dtype=np.float32), _nearest_points(tracked, frame, track)
            )
    assert [(row["track"], row["frame"]) for row in rows[:4]] == [
        ("0", "0"),
        ("0", "1"),
        ("0", "2"),
        ("1", "0"),
    ]


def test_tracks_csv_reads_the_chosen_point_source(tracked, tmp_path: Path) -> None:
    path = export.export_tracks_csv(tracked, tmp_path / "t.csv", source="depth_unmasked")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = lift(tracked, "depth_unmasked")
    # the unmasked cameras differ from the ones the points were made with
    assert not np.allclose(expected[0, 0], _nearest_points(tracked, 0, 0), atol=1e-3)
    for row in rows:
        track, frame = int(row["track"]), int(row["frame"])
        values = [np.float32(row[axis]) if row[axis] else np.nan for axis in "XYZ"]
        np.testing.assert_array_equal(values, expected[frame, track])


def test_tracks_csv_without_tracks_is_one_error(make_reconstruction, tmp_path: Path) -> None:
    with pytest.raises(Page4DError, match="no point tracks"):
        export.export_tracks_csv(make_reconstruction(), tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


def _sorted_segments(segments: np.ndarray) -> np.ndarray:
    """(M, 2, 3) segments in a fixed order, to compare sets of segments."""
    flat = segments.reshape(len(segments), 6)
    return flat[np.lexsort(flat.T[::-1])]


def _expected_segments(recon, pairs: list[tuple[int, int, int]]) -> np.ndarray:
    """Segments of (track, frame a, frame b) from the stored points, (M, 2, 3)."""
    return np.array(
        [[_nearest_points(recon, a, t), _nearest_points(recon, b, t)] for t, a, b in pairs]
    )


def _glb_line_colors(path: Path, name: str) -> np.ndarray:
    """(V, 4) uint8 COLOR_0 of the mesh ``name``, read from the GLB's JSON and binary chunks."""
    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + json_length])
    binary = data[20 + json_length + 8 :]
    (mesh,) = [mesh for mesh in document["meshes"] if mesh["name"] == name]
    accessor = document["accessors"][mesh["primitives"][0]["attributes"]["COLOR_0"]]
    view = document["bufferViews"][accessor["bufferView"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    return np.frombuffer(binary, np.uint8, accessor["count"] * 4, start).reshape(-1, 4)


def test_glb_draws_visible_finite_track_segments(tracked, tmp_path: Path) -> None:
    path = export.export_glb(tracked, tmp_path / "scene.glb")
    lines = trimesh.load(path, file_type="glb").geometry["tracks"]
    assert isinstance(lines, trimesh.path.Path3D)
    segments = lines.vertices.reshape(-1, 2, 3)
    # track 0: 0-1, 1-2; track 1: hidden on 1, none; track 2: off the image on 2, 0-1 only
    pairs = [(0, 0, 1), (0, 1, 2), (2, 0, 1), (3, 0, 1), (3, 1, 2)]
    assert len(segments) == len(pairs)
    np.testing.assert_array_equal(
        _sorted_segments(segments.astype(np.float32)),
        _sorted_segments(_expected_segments(tracked, pairs)),
    )
    colors = _glb_line_colors(path, "tracks")[:, :3].reshape(-1, 2, 3)
    palette = track_colors(MOVING)
    for segment, color in zip(segments, colors, strict=True):
        (track,) = [
            t for t, a, b in pairs if np.allclose(segment[0], _nearest_points(tracked, a, t))
        ]
        assert (color == palette[track]).all()


def test_glb_tracks_follow_the_chosen_frames_and_can_be_left_out(tracked, tmp_path: Path) -> None:
    path = export.export_glb(tracked, tmp_path / "a.glb", frames=[0, 2])
    segments = trimesh.load(path, file_type="glb").geometry["tracks"].vertices.reshape(-1, 2, 3)
    # frames 0 and 2 are consecutive now: track 1 is visible on both, track 2 is off the image
    pairs = [(0, 0, 2), (1, 0, 2), (3, 0, 2)]
    np.testing.assert_array_equal(
        _sorted_segments(segments.astype(np.float32)),
        _sorted_segments(_expected_segments(tracked, pairs)),
    )
    path = export.export_glb(tracked, tmp_path / "b.glb", tracks=False)
    assert "tracks" not in trimesh.load(path, file_type="glb").geometry


def test_track_colors_are_warm_when_moving_cool_when_static_and_stable() -> None:
    moving = np.array([True, False, True, True, False, False, True, False])
    colors = track_colors(moving).astype(int)
    assert colors.shape == (8, 3)
    red, blue = colors[:, 0], colors[:, 2]
    assert (red[moving] > blue[moving]).all() and (blue[~moving] > red[~moving]).all()
    assert len({tuple(color) for color in colors}) == 8
    # appending tracks keeps the colours of the earlier ones
    np.testing.assert_array_equal(track_colors(moving[:5]), colors[:5])
