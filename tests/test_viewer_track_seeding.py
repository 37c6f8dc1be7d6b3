"""Point tracks in the app: "Track points" on a run, and seeding tracks by clicking a pixel of
the Tracks tab's picture or a point in the scene, with a real few-layer network (a track head,
random weights) behind a real `PredictorBackend`, a real ViserServer and `ViewerController`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import viser

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import RunOptions
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import options_from_widgets
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.inspector import Inspector
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.tabs.tracks import TracksTab, TrackWidgets, track_points_state
from page4d_viewer.viewer.track_seeding import TrackSeeder

TRACKER, OTHER, PLAIN = "tracker.safetensors", "other.safetensors", "plain.safetensors"


@pytest.fixture(scope="module")
def data(
    tmp_path_factory: pytest.TempPathFactory, few_layer_model, sure_tracker, sliding_square_clip
) -> Path:
    """A 4-frame clip and three checkpoints: with a track head (two different ones), without."""
    from page4d_viewer.model import save_checkpoint

    folder = tmp_path_factory.mktemp("seeding")
    sliding_square_clip(folder)
    save_checkpoint(sure_tracker(few_layer_model(0)).float(), folder / TRACKER)
    save_checkpoint(sure_tracker(few_layer_model(1)).float(), folder / OTHER)
    save_checkpoint(few_layer_model(0, has_track_head=False).float(), folder / PLAIN)
    return folder


@pytest.fixture
def controller(data: Path, tmp_path: Path, one_torch_thread) -> Iterator[ViewerController]:
    from page4d_viewer.inference.jobs import PredictorBackend

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    scene = SceneView(server)
    backend = PredictorBackend([str(data / name) for name in (TRACKER, OTHER, PLAIN)])
    made = ViewerController(scene, RunStore(tmp_path / "runs"), DataRoots([data]), backend)
    yield made
    made.close()
    scene.close()
    server.stop()


def _run(controller: ViewerController, data: Path, checkpoint: str = TRACKER, tracks: int = 8):
    options = RunOptions(checkpoint=checkpoint, device="cpu", tracks=tracks, max_frames=None)
    return controller.run(str(data / "walk.mp4"), options, lambda fraction, message: None)


def _seeder(controller: ViewerController, checkpoint: str = TRACKER) -> TrackSeeder:
    seeder = TrackSeeder(controller)
    seeder.set_model(checkpoint, "cpu", "auto")
    return seeder


def test_a_run_with_track_points_draws_its_tracks(controller, data: Path) -> None:
    shown = _run(controller, data, tracks=8)
    assert shown.recon.tracks is not None and shown.recon.tracks.num_tracks == 8
    scene = controller.scene
    assert scene.state().tracks.count == 8
    controller.set_frame(3)
    state = scene.state()
    assert 0 < state.tracks.segments <= 8 * 3  # a trail of 3 frames at most so far
    assert (scene.tracks.segments.age <= 2).all()


def test_a_click_on_the_picture_tracks_that_pixel(controller, data: Path) -> None:
    shown = _run(controller, data, tracks=4)
    assert controller.scene.wait_until_sent(timeout=30)
    geometry_sends = controller.scene.state().geometry_sends
    seeder = _seeder(controller)
    height, width = shown.recon.image_hw
    factor = plots.enlargement(width, plots.PANEL_IMAGE_WIDTH)
    picture = seeder.picture(2)
    # The frame, enlarged, with its caption strip below.
    assert picture.shape[1:] == (width * factor, 3) and picture.shape[0] > height * factor
    row, col = 20, 30
    message = seeder.image_click(2, (col + 0.5) * factor, (row + 0.5) * factor)
    assert message.startswith(f"Added a track at pixel (x {col}, y {row}) of frame 2; 5 tracks")
    tracks = controller.current.recon.tracks
    assert tracks.num_tracks == 5 and tracks.query_frame[-1] == 2
    np.testing.assert_allclose(tracks.xy[2, -1], (col, row))
    state = controller.scene.state()
    assert state.tracks.count == 5 and state.geometry_sends == geometry_sends
    assert controller.current.version == shown.version  # the same result, one more track
    assert "**5 tracks**" in seeder.note()
    # The new track's dot is drawn on its own frame, at its pixel.
    colour = picture[row * factor + factor // 2, col * factor + factor // 2]
    after = seeder.picture(2)[row * factor + factor // 2, col * factor + factor // 2]
    assert not np.array_equal(colour, after)


def _ray_to(recon, frame: int, row: int, col: int) -> tuple[np.ndarray, np.ndarray]:
    centre = geometry.camera_centers(recon.cameras["masked"].extrinsics)[frame]
    return centre, recon.points[frame, row, col] - centre


def test_scene_clicks_seed_tracks_only_in_seeding_mode(controller, data: Path) -> None:
    shown = _run(controller, data, tracks=2)
    scene = controller.scene
    assert scene.wait_until_sent(timeout=30)
    inspector = Inspector(controller)  # the probe keeps the clicks of the default mode
    seeder = _seeder(controller)
    scene.points.set_display("current")
    controller.set_frame(1)
    ray = _ray_to(shown.recon, 1, 10, 12)
    picked = scene.points.pick_pixel(*ray)
    assert picked is not None and picked.frame == 1
    assert "Click a point" in seeder.set_seeding(True)
    scene.clicks.dispatch(*ray)
    assert seeder.wait(timeout=60)
    tracks = controller.current.recon.tracks
    assert tracks.num_tracks == 3 and tracks.query_frame[-1] == 1
    np.testing.assert_allclose(tracks.xy[1, -1], (picked.col, picked.row))
    assert inspector.pixel is None and scene.state().points.probe_point is None
    assert seeder.message.startswith("Added a track")
    seeder.set_seeding(False)
    assert scene.state().click_mode == "probe"
    scene.clicks.dispatch(*ray)
    assert inspector.pixel == picked and controller.current.recon.tracks.num_tracks == 3


def test_without_a_track_head_clicks_say_so_in_one_line(controller, data: Path) -> None:
    backend = controller.backend
    assert track_points_state(backend, PLAIN) == {
        "value": 0, "interactive": False,
        "info": "this checkpoint has no track head, so it cannot track points",
    }  # fmt: skip
    assert track_points_state(backend, TRACKER)["value"] == 64
    assert track_points_state(None, TRACKER)["interactive"] is False  # a view-only app
    with pytest.raises(Page4DError, match="no track head"):
        _run(controller, data, checkpoint=PLAIN, tracks=4)
    _run(controller, data, checkpoint=PLAIN, tracks=0)
    seeder = _seeder(controller, PLAIN)
    message = seeder.image_click(0, 10.0, 10.0)
    assert message == f"Cannot add a track: {PLAIN} has no track head, so it cannot track points."
    assert "\n" not in seeder.set_seeding(True) and "no track head" in seeder.message
    assert controller.current.recon.tracks is None
    # Said up front, before any click: the note leads with it and the toggle is disabled.
    assert seeder.note().startswith(f"**Clicks cannot add tracks:** {PLAIN} has no track head")
    assert "has no point tracks" in seeder.note() and "click a pixel" not in seeder.note()
    callbacks = _tracks_tab(controller)
    updates = callbacks.on_model(PLAIN, "cpu", "auto")
    assert updates["seeding"]["interactive"] is False
    assert "cannot add tracks" in updates["picture"]["label"]
    assert callbacks.on_model(TRACKER, "cpu", "auto")["seeding"]["interactive"] is True


def test_tracks_are_only_added_by_the_checkpoint_that_made_the_result(
    controller, data: Path
) -> None:
    _run(controller, data, tracks=2)
    message = _seeder(controller, OTHER).image_click(1, 40.0, 40.0)
    assert message.startswith(f"Cannot add a track: this result came from {TRACKER}, not {OTHER}")
    assert controller.current.recon.tracks.num_tracks == 2


def test_the_tab_callbacks_seed_and_report(controller, data: Path) -> None:
    _run(controller, data, tracks=2)
    callbacks = _tracks_tab(controller)
    updates = callbacks.on_seeding(True, TRACKER, "cpu", "auto")
    assert "Click a point" in updates["status"] and controller.scene.state().click_mode == "track"
    seeding = callbacks.on_view(0)["seeding"]
    assert seeding["value"] is True  # a reloaded page shows the scene's mode
    assert seeding["interactive"] is True
    event = SimpleNamespace(index=(20, 20))
    updates = callbacks.on_picture_click(0, TRACKER, "cpu", "auto", event)
    assert updates["status"].startswith("Added a track") and updates["picture"] is not None
    assert "**3 tracks**" in updates["note"]
    unchanged = callbacks.on_tick(updates["seen"], 0)
    assert set(unchanged) == {"seen"}  # nothing new to bring
    assert callbacks.on_checkpoint(PLAIN)["interactive"] is False


def _tracks_tab(controller) -> TracksTab:
    """The Tracks tab of a panel of one controller, its widgets named by strings (no page)."""
    from page4d_viewer.viewer.callbacks import PanelCallbacks
    from page4d_viewer.viewer.server.sessions import SessionRegistry
    from page4d_viewer.viewer.tabs.base import Panel

    tab = TracksTab()
    tab.widgets = TrackWidgets("note", "seeding", "picture", "status", "seen")  # type: ignore[arg-type]
    callbacks = PanelCallbacks(SessionRegistry.single(controller), None)  # type: ignore[arg-type]
    tab.panel = Panel(None, None, callbacks, [tab])  # type: ignore[arg-type]
    return tab


def test_track_points_reach_the_run_options() -> None:
    values = {
        "checkpoint": TRACKER, "device": "cpu", "precision": "auto", "mask_strength": 64,
        "mode": "crop", "stride": 1, "fps": 0, "start": 0, "end": 0, "max_frames": 0,
    }  # fmt: skip
    assert options_from_widgets(values).tracks == 0
    assert options_from_widgets({**values, "tracks": None}).tracks == 0  # a disabled box
    assert options_from_widgets({**values, "tracks": 16}).tracks == 16
    with pytest.raises(Page4DError, match="track points"):
        options_from_widgets({**values, "tracks": 2.5})


def test_clicked_tracks_are_saved_with_the_run_and_in_the_downloads(controller, data) -> None:
    import csv

    from page4d_viewer.result.reconstruction import Reconstruction

    shown = _run(controller, data, tracks=4)
    before = {path.name: path.read_bytes() for path in controller.exports()}
    assert "tracks.csv" in before
    _seeder(controller).image_click(1, 10.0, 10.0)
    saved = Reconstruction.load(shown.record.result_path)
    assert saved.tracks.num_tracks == 5  # the run's own file holds the clicked track
    files = {path.name: path for path in controller.exports()}
    with files["tracks.csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 * saved.num_frames
    glb = next(path for name, path in files.items() if name.endswith(".glb"))
    assert glb.read_bytes() != before[glb.name]  # drawn again, with the new track's line
    # Reopened from the runs list, the run still has its clicked track.
    assert controller.open_run(shown.record.run_id).recon.tracks.num_tracks == 5


def test_clicked_tracks_on_an_opened_file_never_overwrite_it(controller, data, tmp_path) -> None:
    from page4d_viewer.result.reconstruction import Reconstruction

    shown = _run(controller, data, tracks=4)
    opened = tmp_path / "mine.npz"
    shown.recon.save(opened)
    original = opened.read_bytes()
    controller.open_result(opened)
    _seeder(controller).image_click(0, 12.0, 12.0)
    assert opened.read_bytes() == original
    download = next(path for path in controller.exports() if path.suffix == ".npz")
    assert download != opened and Reconstruction.load(download).tracks.num_tracks == 5


def test_the_tracks_note_scores_tracks_against_ground_truth(controller, data) -> None:
    import dataclasses

    from page4d_viewer.result.tracks import Tracks

    shown = _run(controller, data, tracks=4)
    seeder = _seeder(controller)
    assert "ground truth" not in seeder.note()
    tracks = shown.recon.tracks
    truth_xy = tracks.xy + np.array([3.0, 4.0], np.float32)  # 5 px off everywhere...
    truth_xy[tracks.query_frame, np.arange(tracks.num_tracks)] = tracks.query_xy  # ...but queries
    truth = Tracks(truth_xy, np.ones_like(tracks.visibility), tracks.confidence, tracks.query_frame)
    controller._current = dataclasses.replace(
        shown, recon=dataclasses.replace(shown.recon, gt_tracks=truth)
    )
    assert "median error 5.0 px" in seeder.note()
