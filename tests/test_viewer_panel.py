"""The panel without a browser: pictures, plots, metrics table, and the controller's actions."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FakeScene

from page4d_viewer import geometry
from page4d_viewer.cli import app as app_command
from page4d_viewer.cli import view as view_command
from page4d_viewer.cli.app import backend_from_args
from page4d_viewer.cli.serving import config_from_args, silence_scene_banners
from page4d_viewer.errors import CheckpointError, Page4DError
from page4d_viewer.inference.jobs import OutOfMemoryError, PredictorBackend
from page4d_viewer.result.reconstruction import Cameras, Metadata, Reconstruction
from page4d_viewer.run_contract import RunCancelled, RunOptions
from page4d_viewer.sources.sampling import FrameSampling
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.callbacks import options_from_widgets
from page4d_viewer.viewer.controller import ViewerController, find_samples
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.status import error_markdown, status_markdown

HEIGHT, WIDTH = 28, 42  # a 2x3 patch grid


def _cameras(centres: np.ndarray, yaw_deg: np.ndarray) -> Cameras:
    """Cameras at `centres` (S, 3), turned about y by `yaw_deg` (S,), looking along +z."""
    yaw = np.radians(yaw_deg)
    R_world_cam = np.zeros((len(yaw), 3, 3))
    R_world_cam[:, 0, 0] = np.cos(yaw)
    R_world_cam[:, 0, 2] = np.sin(yaw)
    R_world_cam[:, 1, 1] = 1.0
    R_world_cam[:, 2, 0] = -np.sin(yaw)
    R_world_cam[:, 2, 2] = np.cos(yaw)
    T_world_cam = np.concatenate([R_world_cam, centres[:, :, None]], axis=-1)
    K = np.array([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]])
    return Cameras(geometry.invert_rigid(T_world_cam), np.repeat(K[None], len(yaw), axis=0))


@pytest.fixture
def make_recon(make_reconstruction):
    """`make_recon(frames=5, *, ground_truth=True, mask=True)`: a small result built by the
    conftest factory: a camera moving along x, the unmasked poses off by a growing yaw."""

    def build(frames: int = 5, *, ground_truth: bool = True, mask: bool = True) -> Reconstruction:
        return _panel_recon(make_reconstruction, frames, ground_truth=ground_truth, mask=mask)

    return build


def _panel_recon(make_reconstruction, frames: int, *, ground_truth: bool, mask: bool):
    rng = np.random.default_rng(0)
    steps = np.arange(frames, dtype=np.float64)
    centres = np.stack([0.1 * steps, 0.02 * steps**2, 0.05 * steps], axis=-1)
    cameras = {
        "masked": _cameras(centres, np.zeros(frames)),
        "unmasked": _cameras(centres + [0.0, 0.0, 0.03], 2.0 * steps),
    }
    if ground_truth:
        cameras["ground_truth"] = _cameras(2.0 * centres, np.zeros(frames))
    depth = rng.uniform(1.0, 3.0, (frames, HEIGHT, WIDTH)).astype(np.float32)
    score = np.full((frames, 2, 3), 0.4, np.float32)  # static everywhere...
    score[:, 0, 0] = -0.4  # ...but the top-left patch moves
    return make_reconstruction(
        frames,
        HEIGHT,
        WIDTH,
        images=np.full((frames, HEIGHT, WIDTH, 3), 100, np.uint8),
        depth=depth,
        depth_conf=rng.uniform(1.0, 50.0, depth.shape).astype(np.float32),
        points=rng.normal(size=(frames, HEIGHT, WIDTH, 3)).astype(np.float32),
        points_conf=np.ones(depth.shape, np.float32),
        cameras=cameras,
        mask_score=score if mask else None,
        metadata=Metadata(checkpoint_name="test.safetensors", mask_strength=64.0),
    )


def _line_labels(axes) -> list[str]:
    return [line.get_label() for line in axes.get_lines() if not line.get_label().startswith("_")]


def test_overlay_marks_only_dynamic_pixels(make_recon) -> None:
    images = plots.frame_images(
        make_recon(), frame=1, opacity=1.0, threshold=0.5, overlay="threshold"
    )
    assert images.overlay.shape == (HEIGHT, WIDTH, 3)
    moving = images.overlay[:14, :14]
    static = images.overlay[14:, 14:]
    assert np.all(static == 100)
    assert not np.any(np.all(moving == 100, axis=-1))


def test_overlay_opacity_zero_and_high_threshold_keep_the_image(make_recon) -> None:
    recon = make_recon()
    threshold = {"overlay": "threshold"}
    assert np.all(plots.frame_images(recon, 0, 0.0, 0.5, **threshold).overlay == 100)
    assert np.all(plots.frame_images(recon, 0, 1.0, 1.0, **threshold).overlay == 100)
    # Continuous (the default): every patch is tinted, in the colour of its own value.
    assert not np.any(np.all(plots.frame_images(recon, 0, 1.0, 1.0).overlay == 100, axis=-1))


def test_frame_images_without_mask_show_the_frame(make_recon) -> None:
    images = plots.frame_images(make_recon(mask=False), 0, opacity=1.0, threshold=0.0)
    assert np.all(images.overlay == 100)


def test_frame_images_clamp_the_frame_and_colour_depth(make_recon) -> None:
    recon = make_recon(frames=3)
    images = plots.frame_images(recon, frame=99, opacity=0.5, threshold=0.5)
    expected = plots.scalar_map_image(recon.depth[2], "turbo")
    np.testing.assert_array_equal(images.depth, expected)
    assert images.confidence.shape == (HEIGHT, WIDTH, 3)


def test_a_model_input_frame_is_enlarged_to_a_readable_width() -> None:
    image = np.arange(112 * 196 * 3, dtype=np.uint8).reshape(112, 196, 3)
    shown = plots.enlarge(image, plots.PANEL_IMAGE_WIDTH)
    assert plots.PANEL_IMAGE_WIDTH >= 480
    assert shown.shape == (336, 588, 3)  # 196 px wide -> x3, nearest: pixels stay blocks
    np.testing.assert_array_equal(shown[::3, ::3], image)
    np.testing.assert_array_equal(shown[2::3, 2::3], image)
    assert plots.enlarge(image, 100) is image


def test_ground_truth_depth_and_mask_are_drawn_when_present(make_recon) -> None:
    recon = make_recon(frames=3)
    assert plots.frame_images(recon, 0, 0.5, 0.5).ground_truth_depth is None
    moving = np.zeros((3, HEIGHT, WIDTH), bool)
    moving[:, :, :5] = True
    gt_depth = 2.0 * recon.depth
    gt_depth[:, 0, 0] = 0.0  # unknown
    recon = dataclasses.replace(recon, gt_depth=gt_depth, gt_dynamic_mask=moving)
    images = plots.frame_images(recon, 1, 0.5, 0.5, min_width=100)
    assert images.ground_truth_depth.shape == images.ground_truth_mask.shape == (84, 126, 3)
    truth_mask = plots.frame_images(recon, 1, 0.5, 0.5).ground_truth_mask
    assert np.all(truth_mask[:, 5:] == 100)
    assert not np.any(np.all(truth_mask[:, :5] == 100, axis=-1))
    rows = plots.metrics_rows(recon)
    depth_row = rows[-1]
    assert depth_row[0] == "depth vs ground truth"
    assert plots.METRICS_HEADERS[4:6] == ["AbsRel", "δ<1.25"]
    # Ground truth is the prediction doubled: after median scaling the depth is exact.
    assert float(depth_row[4]) == pytest.approx(0.0, abs=1e-4)
    assert float(depth_row[5]) == pytest.approx(1.0)


def test_scalar_map_handles_non_finite_and_constant_maps() -> None:
    values = np.array([[1.0, np.nan], [np.inf, 2.0]])
    assert plots.scalar_map_image(values).shape == (2, 2, 3)
    assert plots.scalar_map_image(np.full((2, 2), np.nan)).shape == (2, 2, 3)
    flat = plots.scalar_map_image(np.ones((3, 3)))
    assert np.all(flat == flat[0, 0])
    low_high = plots.scalar_map_image(np.array([[0.0, 1.0]]))
    assert not np.array_equal(low_high[0, 0], low_high[0, 1])


def test_pairs_include_ground_truth_only_when_present() -> None:
    assert plots.variant_pairs(["masked", "unmasked", "ground_truth"]) == [
        ("masked", "ground_truth"),
        ("unmasked", "ground_truth"),
        ("masked", "unmasked"),
    ]
    assert plots.variant_pairs(["masked", "unmasked"]) == [("masked", "unmasked")]
    assert plots.variant_pairs(["masked"]) == []


def test_comparison_measures_the_yaw_and_aligns_ground_truth(make_recon) -> None:
    comparison = plots.compare_poses(make_recon(frames=5))
    np.testing.assert_allclose(
        comparison.rotation_deg["masked vs unmasked"], 2.0 * np.arange(5), atol=1e-6
    )
    # Ground truth is the masked path at twice the scale: Sim(3) alignment removes that.
    np.testing.assert_allclose(comparison.translation["masked vs ground truth"], 0.0, atol=1e-9)
    np.testing.assert_allclose(
        comparison.centres["ground_truth"], comparison.centres["masked"], atol=1e-9
    )


def test_rotation_differences_ignore_a_rotated_ground_truth_world(make_recon) -> None:
    # Ground truth whose world frame is yawed by 90 degrees (every camera alike) has the same
    # orientations relative to its first frame: the difference must be zero, whatever Sim(3)
    # the centres give.
    recon = make_recon(frames=5)
    centres = recon.cameras["masked"].centers
    recon.cameras["ground_truth"] = _cameras(2.0 * centres, np.full(5, 90.0))
    comparison = plots.compare_poses(recon)
    np.testing.assert_allclose(comparison.rotation_deg["masked vs ground truth"], 0.0, atol=1e-6)


def test_rotation_angle_is_symmetric_and_bounded() -> None:
    a = _cameras(np.zeros((1, 3)), np.array([170.0])).T_world_cam[:, :3, :3]
    b = _cameras(np.zeros((1, 3)), np.array([-170.0])).T_world_cam[:, :3, :3]
    np.testing.assert_allclose(plots.rotation_angle_deg(a, b), [20.0], atol=1e-6)
    np.testing.assert_allclose(plots.rotation_angle_deg(b, a), [20.0], atol=1e-6)


def test_trajectory_figure_has_one_series_per_variant(make_recon) -> None:
    figure = plots.trajectory_figure(plots.compare_poses(make_recon()))
    (axes,) = figure.axes
    assert _line_labels(axes) == ["masked", "unmasked", "ground truth"]
    masked = next(line for line in axes.get_lines() if line.get_label() == "masked")
    assert len(masked.get_xdata()) == 5


def test_trajectory_figure_without_ground_truth(make_recon) -> None:
    figure = plots.trajectory_figure(plots.compare_poses(make_recon(ground_truth=False)))
    assert _line_labels(figure.axes[0]) == ["masked", "unmasked"]


def test_differences_figure_has_one_series_per_pair_on_both_axes(make_recon) -> None:
    figure = plots.differences_figure(plots.compare_poses(make_recon()))
    rotation_axes, translation_axes = figure.axes
    expected = ["masked vs ground truth", "unmasked vs ground truth", "masked vs unmasked"]
    assert _line_labels(rotation_axes) == expected
    assert _line_labels(translation_axes) == expected
    yaw = next(line for line in rotation_axes.get_lines() if line.get_label() == expected[2])
    np.testing.assert_allclose(yaw.get_ydata(), 2.0 * np.arange(5), atol=1e-6)


def test_figures_render_to_png(make_recon) -> None:
    import io

    buffer = io.BytesIO()
    plots.differences_figure(plots.compare_poses(make_recon())).savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_metrics_table_rows_per_pair(make_recon) -> None:
    rows = plots.metrics_rows(make_recon())
    assert [row[0] for row in rows] == [
        "masked vs ground truth",
        "unmasked vs ground truth",
        "masked vs unmasked",
    ]
    assert all(len(row) == len(plots.METRICS_HEADERS) for row in rows)
    assert float(rows[0][1]) == pytest.approx(0.0, abs=1e-4)  # GT is the masked path, scaled
    assert float(rows[2][3]) > 1.0  # the unmasked yaw drifts 2 degrees per frame


def test_metrics_table_explains_unscorable_pairs(make_recon) -> None:
    rows = plots.metrics_rows(make_recon(frames=1))
    assert rows[0][1] == ""
    assert "2 frames" in rows[0][-1]


# --- the controller, with a stand-in scene and model -----------------------------------------


class FakeBackend:
    """A model that returns `make()` (the `make_recon` fixture) and reports a few stages."""

    def __init__(self, make, fail: Exception | None = None) -> None:
        self.make = make
        self.fail = fail
        self.calls: list[tuple[object, RunOptions]] = []
        self.on_progress = None

    def checkpoint_names(self) -> list[str]:
        return ["default model"]

    def default_mask_strength(self, checkpoint: str) -> float:
        return 64.0

    def track_available(self, checkpoint: str) -> bool:
        return False  # like the shipped default model

    def run_model(self, source, options, progress):
        self.calls.append((source, options))
        for step, stage in enumerate(["reading", "encoding", "aggregating", "heads"]):
            progress(step / 4, stage)
            if self.on_progress is not None:
                self.on_progress(stage)
        if self.fail is not None:
            raise self.fail
        recon = self.make()
        recon.metadata.source = str(source)
        return recon


@pytest.fixture()
def controller(make_recon, tmp_path: Path) -> ViewerController:
    data = tmp_path / "data"
    data.mkdir()
    (data / "walk.mp4").write_bytes(b"v")
    made = ViewerController(
        FakeScene(),
        RunStore(tmp_path / "runs"),
        DataRoots([data]),
        FakeBackend(make_recon),
        samples={"room": data / "walk.mp4"},
    )
    yield made
    made.close()


def _progress_log() -> tuple[list[tuple[float, str]], object]:
    log: list[tuple[float, str]] = []
    return log, lambda fraction, message: log.append((fraction, message))


def test_run_saves_shows_and_reports_progress_in_order(controller: ViewerController) -> None:
    log, progress = _progress_log()
    shown = controller.run("clip.mp4", RunOptions(checkpoint="default model"), progress)
    assert controller.scene.shown == [shown.recon]
    assert shown.version == controller.version == 1
    assert shown.record is not None and shown.record.result_path.is_file()
    assert [r.run_id for r in controller.recent_runs()] == [shown.record.run_id]
    fractions = [fraction for fraction, _ in log]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [message for _, message in log]
    assert {"encoding", "aggregating", "heads", "sending to the scene"} <= set(messages)
    assert "clip.mp4 · 5 frames · 42x28" in status_markdown(shown)


def test_saved_run_reopens_equal(controller: ViewerController) -> None:
    first = controller.run("a.mp4", RunOptions(checkpoint="default model"), lambda f, m: None)
    reopened = controller.open_run(first.record.run_id)
    assert reopened.version == 2
    np.testing.assert_array_equal(reopened.recon.images, first.recon.images)


def test_cancel_stops_the_run_and_keeps_the_previous_result(
    controller: ViewerController,
) -> None:
    previous = controller.run("a.mp4", RunOptions(checkpoint="default model"), lambda f, m: None)
    backend = controller.backend
    backend.on_progress = lambda stage: stage == "encoding" and controller.cancel("tab-1")
    with pytest.raises(RunCancelled):
        controller.run("b.mp4", RunOptions(checkpoint="x"), lambda f, m: None, session="tab-1")
    assert controller.current is previous
    assert len(controller.recent_runs()) == 1
    assert controller.cancel("tab-1") is False  # the flag is gone with the run


def test_cancel_in_another_session_does_not_stop_this_run(controller: ViewerController) -> None:
    controller.backend.on_progress = lambda stage: controller.cancel("someone-else")
    shown = controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None, session="me")
    assert controller.current is shown


def test_model_error_keeps_the_previous_result(make_recon, tmp_path: Path) -> None:
    scene = FakeScene()
    made = ViewerController(
        scene, RunStore(tmp_path), DataRoots([tmp_path]), FakeBackend(make_recon)
    )
    previous = made.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    made.backend.fail = Page4DError("the device ran out of memory; try fewer frames")
    with pytest.raises(Page4DError, match="fewer frames"):
        made.run("b.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    assert made.current is previous and scene.shown == [previous.recon]
    message = error_markdown("the device ran out of memory; try fewer frames", made.current)
    assert message.startswith("**Error:** the device ran out of memory")
    assert "previous result is still shown" in message
    made.close()


def test_view_only_app_refuses_to_run(tmp_path: Path) -> None:
    made = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), None)
    assert not made.can_run
    with pytest.raises(Page4DError, match="no model"):
        made.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    made.close()


def test_open_result_file_and_damaged_file(
    make_recon, controller: ViewerController, tmp_path: Path
) -> None:
    path = make_recon(frames=3).save(tmp_path / "saved.npz")
    shown = controller.open_result(path)
    assert shown.record is None and shown.recon.num_frames == 3
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(Page4DError, match="bad.npz"):
        controller.open_result(bad)
    assert controller.current is shown


def test_the_scene_says_what_loads_before_it_shows_it(make_recon, tmp_path: Path) -> None:
    scene = FakeScene()
    store, roots, backend = (
        RunStore(tmp_path / "runs"),
        DataRoots([tmp_path]),
        FakeBackend(make_recon),
    )
    controller = ViewerController(scene, store, roots, backend)  # type: ignore[arg-type]
    first = controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    assert scene.loading == [(f"loading {first.title}", 0)]  # said before it was shown
    assert first.record is not None
    reopened = controller.open_run(first.record.run_id)
    assert scene.loading[-1] == (f"loading {first.title}", 1) and len(scene.shown) == 2
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(Page4DError):
        controller.open_result(bad)
    # The old result was taken down for the new one, which failed: the old one is back.
    assert scene.loading[-1] == ("loading bad.npz", 2)
    assert scene.shown[-1] is reopened.recon and controller.current is reopened
    controller.close()
    empty_scene = FakeScene()
    empty = ViewerController(empty_scene, RunStore(tmp_path), DataRoots([tmp_path]), None)  # type: ignore[arg-type]
    with pytest.raises(Page4DError):
        empty.open_result(bad)
    assert empty_scene.loading == [("loading bad.npz", 0), (None, 0)]  # nothing to put back
    empty.close()


def test_the_split_toggle_says_why_a_single_session_cannot_split(
    controller: ViewerController,
) -> None:
    from page4d_viewer.viewer.callbacks import PanelCallbacks
    from page4d_viewer.viewer.server.sessions import SessionRegistry

    names = ("status", "split_toggle", "split_labels", "scene")
    widgets = SimpleNamespace(**{name: name for name in names})
    callbacks = PanelCallbacks(SessionRegistry.single(controller), widgets)  # type: ignore[arg-type]
    updates: dict = callbacks.on_split(True)
    assert updates["split_toggle"] is False and "split view" in updates["status"]
    assert "scene" not in updates  # the scene box stays as it is


def test_sources_resolve_per_tab(controller: ViewerController, tmp_path: Path) -> None:
    walk = str(tmp_path / "data" / "walk.mp4")
    assert controller.resolve_source("example", "room", None, None) == walk
    assert controller.resolve_source("upload", None, ["/tmp/x.mp4"], None) == "/tmp/x.mp4"
    assert controller.resolve_source("upload", None, ["/a.png", "/b.png"], None) == [
        "/a.png",
        "/b.png",
    ]
    assert controller.resolve_source("path", None, None, "walk.mp4") == walk


def test_a_typed_sample_folder_is_run_as_its_clip(
    controller: ViewerController, tmp_path: Path
) -> None:
    from page4d_viewer.sources.clip import load_clip

    sample = Path(__file__).resolve().parents[1] / "assets" / "samples" / "orbit_movers"
    folder = tmp_path / "data" / "orbit_movers"
    folder.mkdir()
    for name in ("clip.mp4", "groundtruth.npz"):
        (folder / name).write_bytes((sample / name).read_bytes())
    source = controller.resolve_source("path", None, None, "orbit_movers")
    assert source == str(folder)
    assert Path(load_clip(source).source) == folder / "clip.mp4"
    shown = controller.run(source, RunOptions(checkpoint="default model"), lambda f, m: None)
    assert shown.title.startswith("orbit_movers · ")


def _mask_tab(images: list[str]):
    """The Mask and depth tab with its widgets named by these strings (no Gradio page)."""
    from page4d_viewer.viewer.frame_plots import FramePlot
    from page4d_viewer.viewer.tabs.mask import MaskTab, MaskWidgets

    tab = MaskTab()
    share = FramePlot("share", "share_axis", "share")  # type: ignore[arg-type]
    tab.widgets = MaskWidgets("opacity", "threshold", "mask_overlay", *images, share)  # type: ignore[arg-type]
    return tab


def test_ground_truth_pictures_show_only_for_results_that_have_them(make_recon) -> None:
    tab = _mask_tab(["overlay", "depth", "confidence", "gt_depth", "gt_mask"])
    recon = make_recon(frames=2)
    without = tab.image_updates(plots.frame_images(recon, 0, 0.5, 0.5))
    assert without["gt_depth"]["visible"] is False and without["gt_mask"]["visible"] is False
    truth = dataclasses.replace(recon, gt_depth=recon.depth, gt_dynamic_mask=recon.depth > 2)
    shown = tab.image_updates(plots.frame_images(truth, 0, 0.5, 0.5))
    assert shown["gt_depth"]["visible"] is True and shown["gt_mask"]["visible"] is True
    assert shown["gt_depth"]["value"].shape == (HEIGHT, WIDTH, 3)
    assert shown["overlay"].shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize(
    ("kind", "example", "uploads", "path", "message"),
    [
        ("example", None, None, None, "pick an example"),
        ("example", "nope", None, None, "unknown example"),
        ("upload", None, [], None, "upload a video"),
        ("upload", None, ["/tmp/result.npz"], None, "saved result, not a clip"),
        ("upload", None, ["/a.png", "/b.mp4"], None, "b.mp4 among them"),
        ("path", None, None, "/etc/passwd", "outside the allowed data folders"),
        ("path", None, None, "", "no server path"),
        ("wat", None, None, None, "unknown source kind"),
    ],
)
def test_bad_sources_are_refused(
    controller: ViewerController, kind, example, uploads, path, message
) -> None:
    with pytest.raises(Page4DError, match=message):
        controller.resolve_source(kind, example, uploads, path)


def test_mask_overlay_follows_the_scene(controller: ViewerController) -> None:
    controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    controller.set_mask_overlay(0.8, 0.33)
    assert controller.scene.opacity == 0.8
    assert controller.mask_threshold == pytest.approx(0.35)  # as the scene snapped it
    controller.scene.opacity = 0.2  # moved in the Viser sidebar
    assert controller.scene_settings().mask_opacity == 0.2
    assert controller.mask_opacity == 0.2
    with pytest.raises(Page4DError):
        controller.set_mask_overlay(2.0, 0.5)


def test_frame_is_clamped_and_pictures_follow(controller: ViewerController) -> None:
    assert controller.set_frame(3) == 0  # nothing shown yet
    assert controller.frame_images(0) is None
    controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    assert controller.set_frame(99) == 4
    assert controller.scene.frame == 4
    overlay = controller.frame_images(4).overlay  # enlarged for the panel, whole factor
    factor = -(-plots.PANEL_IMAGE_WIDTH // WIDTH)
    # ...with its caption (frame, name, colour bar) below: the picture's pixels stay put.
    assert overlay.shape[1:] == (WIDTH * factor, 3) and overlay.shape[0] > HEIGHT * factor
    bare = plots.frame_images(controller.current.recon, 4, 0.5, 0.5, min_width=WIDTH * factor)
    np.testing.assert_array_equal(overlay[: HEIGHT * factor], bare.overlay)


def test_exports_write_every_download(controller: ViewerController) -> None:
    with pytest.raises(Page4DError, match="nothing to download"):
        controller.exports()
    shown = controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    files = controller.exports()
    names = sorted(path.name for path in files)
    assert names == [
        "mask_overlay_continuous_opacity0.5_threshold0.5.mp4",
        "points_ply_conf25.zip",
        "result.npz",
        "scene_conf25.glb",
        "trajectory_ground_truth.txt",
        "trajectory_masked.txt",
        "trajectory_unmasked.txt",
    ]
    assert all(path.is_file() and path.stat().st_size > 0 for path in files)
    with zipfile.ZipFile(next(p for p in files if p.suffix == ".zip")) as archive:
        assert len(archive.namelist()) == shown.recon.num_frames
    assert controller.exports() == files  # made once, then listed


def test_downloads_follow_the_scene_settings(controller: ViewerController) -> None:
    import trimesh

    shown = controller.run("a.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    # Confidences that differ, so that the filter has something to drop.
    shown.recon.points_conf[:] = np.random.default_rng(0).uniform(
        1, 5, shown.recon.points_conf.shape
    )
    default_glb = next(p for p in controller.exports() if p.suffix == ".glb")
    controller.scene.percentile = 80.0
    controller.set_mask_overlay(0.8, 0.3)
    files = controller.exports()
    glb = next(p for p in files if p.suffix == ".glb")
    assert glb.name == "scene_conf80.glb"
    assert any(p.name == "mask_overlay_continuous_opacity0.8_threshold0.3.mp4" for p in files)

    def point_count(path: Path) -> int:
        scene = trimesh.load(path, file_type="glb")
        clouds = [g for name, g in scene.geometry.items() if name.startswith("points_frame_")]
        return sum(len(cloud.vertices) for cloud in clouds)

    assert point_count(glb) < point_count(default_glb)  # the stricter filter the scene shows


def test_options_from_widgets_maps_zero_to_unset() -> None:
    values = {
        "checkpoint": "c", "device": "cpu", "precision": "auto", "mask_strength": 32,
        "mode": "pad", "stride": 2, "fps": 0, "start": 0, "end": 0, "max_frames": 0,
    }  # fmt: skip
    options = options_from_widgets(values)
    assert options.sampling() == FrameSampling(stride=2)
    assert (options.mask_strength, options.mode, options.device) == (32.0, "pad", "cpu")
    with pytest.raises(Page4DError, match="stride"):
        options_from_widgets({**values, "stride": -1})
    with pytest.raises(Page4DError, match="max frames"):
        options_from_widgets({**values, "max_frames": 2.5})
    with pytest.raises(Page4DError, match="fps"):
        options_from_widgets({**values, "fps": None})


def test_samples_are_found_by_folder(tmp_path: Path) -> None:
    for name in ("b-room", "a-street"):
        (tmp_path / "samples" / name).mkdir(parents=True)
        (tmp_path / "samples" / name / "clip.mp4").write_bytes(b"v")
    (tmp_path / "samples" / "empty").mkdir()
    assert list(find_samples(tmp_path / "samples")) == ["a-street", "b-room"]
    assert find_samples(tmp_path / "missing") == {}


# --- the app's model side and command line ---------------------------------------------------


@pytest.fixture()
def fake_predictor(make_recon, monkeypatch):
    """Replace predictor.load_model / predict with recorders (no network is built)."""
    from page4d_viewer.inference import predictor

    calls = SimpleNamespace(loads=[], predicts=[], fail=None)

    def load_model(path):
        calls.loads.append(path)
        return "model", predictor.ModelInfo(name=str(path), default_mask_strength=32.0)

    def predict(source, model, **kwargs):
        calls.predicts.append((source, kwargs))
        if calls.fail is not None:
            raise calls.fail
        return make_recon()

    monkeypatch.setattr(predictor, "load_model", load_model)
    monkeypatch.setattr(predictor, "predict", predict)
    return calls


def test_backend_names_checkpoints_and_loads_each_once(fake_predictor) -> None:
    backend = PredictorBackend(["/x/a.safetensors", "/y/a.safetensors"])
    assert backend.checkpoint_names() == ["a.safetensors", "a.safetensors (2)", "default model"]
    assert backend.default_mask_strength("a.safetensors (2)") == 32.0
    options = RunOptions(checkpoint="a.safetensors (2)", device="auto", precision="bf16")
    backend.run_model("clip.mp4", options, lambda f, m: None)
    backend.run_model("clip.mp4", options, lambda f, m: None)
    assert fake_predictor.loads == ["/y/a.safetensors"]
    backend.run_model("clip.mp4", RunOptions(checkpoint="default model"), lambda f, m: None)
    assert fake_predictor.loads == ["/y/a.safetensors", None]
    source, kwargs = fake_predictor.predicts[0]
    assert source == "clip.mp4"
    assert kwargs["device"] is None and kwargs["precision"] == "bf16"
    assert kwargs["tracks"] == 0  # the panel's "Track points" (none by default)
    assert kwargs["sampling"] == options.sampling()
    with pytest.raises(Page4DError, match="unknown checkpoint"):
        backend.run_model("clip.mp4", RunOptions(checkpoint="nope"), lambda f, m: None)


def test_backend_turns_out_of_memory_into_advice(fake_predictor) -> None:
    import torch

    backend = PredictorBackend()
    fake_predictor.fail = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate")
    with pytest.raises(OutOfMemoryError, match="try fewer frames"):
        backend.run_model("clip.mp4", RunOptions(checkpoint="default model"), lambda f, m: None)
    fake_predictor.fail = RuntimeError("something else")
    with pytest.raises(RuntimeError, match="something else"):
        backend.run_model("clip.mp4", RunOptions(checkpoint="default model"), lambda f, m: None)


def test_backend_reports_an_unreadable_checkpoint(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    backend = PredictorBackend([str(broken)])
    with pytest.raises(CheckpointError):
        backend.default_mask_strength("broken.safetensors")


def _parse(argv: list[str]):
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    command = view_command if argv[0] == "view" else app_command
    command.configure_parser(sub.add_parser(argv[0]))
    return parser.parse_args(argv)


def test_app_options_reach_the_config(tmp_path: Path) -> None:
    args = _parse(
        ["app", "--checkpoint", "a.pt", "--checkpoint", "b.pt", "--device", "cuda:1",
         "--precision", "bf16", "--port", "9000", "--max-sessions", "3", "--shared-runs",
         "--data-root", str(tmp_path), "--runs-dir", str(tmp_path / "r"), "--clip", "c.mp4"]
    )  # fmt: skip
    config = config_from_args(args, environ={})
    assert backend_from_args(args).checkpoint_names() == ["a.pt", "b.pt", "default model"]
    assert (config.device, config.precision, config.port) == ("cuda:1", "bf16", 9000)
    assert config.data_roots == [tmp_path] and config.clip == "c.mp4"
    assert (config.max_sessions, config.shared_runs, config.auth) == (3, True, [])
    assert config.host == "127.0.0.1"


def test_app_runs_the_bundled_sample_unless_told_otherwise(make_recon, tmp_path: Path) -> None:
    from page4d_viewer.settings import DEFAULT_SAMPLE, samples_dir
    from page4d_viewer.viewer.controller import find_samples

    sample = samples_dir() / DEFAULT_SAMPLE / "clip.mp4"
    assert sample.is_file()
    samples = find_samples()
    assert len(samples) >= 2 and DEFAULT_SAMPLE == "orbit_movers"  # the clip the docs name
    # The panel's example list opens on the clip the app runs at start.
    controller = ViewerController(
        FakeScene(),
        RunStore(tmp_path),
        DataRoots([tmp_path]),
        FakeBackend(make_recon),
        samples=samples,
    )
    assert _block(_panel(controller), "example").value == DEFAULT_SAMPLE
    controller.close()
    assert config_from_args(_parse(["app"])).clip == str(sample)
    assert config_from_args(_parse(["app", "--no-clip"])).clip is None
    assert config_from_args(_parse(["app", "--result", "r.npz"])).clip is None


def test_view_needs_no_model() -> None:
    args = _parse(["view", "result.npz"])
    config = config_from_args(args, environ={})
    assert backend_from_args(args) is None and config.result == "result.npz"
    assert (config.host, config.port, config.shared_runs) == ("127.0.0.1", 7860, False)


def test_view_of_a_missing_file_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    from page4d_viewer.cli import main

    assert main(["view", str(tmp_path / "missing.npz")]) == 2
    assert capsys.readouterr().err.startswith("error: no result file at")


def test_panel_precisions_are_the_devices_names() -> None:
    from page4d_viewer.inference import device
    from page4d_viewer.settings import PRECISION_CHOICES as PRECISIONS

    assert set(PRECISIONS) == {device.AUTO, *device.DTYPES}


# What `page4d-viewer view RESULT` runs up to serving (cli/view.py's `run`, then `serve`
# without `app.wait()`), in an interpreter where `import torch` fails.
_VIEW_WITHOUT_TORCH = """
import json, sys
from pathlib import Path

sys.modules["torch"] = None  # `import torch` now raises ImportError

import argparse

from page4d_viewer.cli import view
from page4d_viewer.cli.serving import config_from_args
from page4d_viewer.viewer.server.app import ViewerApp


result, runs = sys.argv[1:3]
parser = argparse.ArgumentParser()
view.configure_parser(parser.add_subparsers(dest="command").add_parser("view"))
ports = ["--port", "0"]  # the app binds a free port itself
args = parser.parse_args(["view", result, *ports, "--runs-dir", runs, "--max-points", "5000"])
config = config_from_args(args)
assert Path(config.result).is_file()
app = ViewerApp(config, backend=None)
try:
    app.start()
    session = app.sessions.open("a-page")  # what a page's load does
    assert session.scene.wait_until_sent(timeout=60)
    state = session.scene.state()
    loaded = [m for m in sys.modules if m.startswith(("torch.", "page4d_viewer.inference"))]
    print("REPORT", json.dumps({"frames": state.num_frames, "sent": state.points.frames_sent,
                      "can_run": session.controller.can_run, "loaded": loaded}))
finally:
    app.close()
"""


def test_view_runs_without_torch(make_recon, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    result = tmp_path / "result.npz"
    make_recon(frames=3).save(result)
    done = subprocess.run(
        [sys.executable, "-c", _VIEW_WITHOUT_TORCH, str(result), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("REPORT "))
    report = json.loads(line.removeprefix("REPORT "))
    assert report == {"frames": 3, "sent": 3, "can_run": False, "loaded": []}


def _block(demo, elem_id: str):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _panel(controller: ViewerController, **options):
    """The panel of one controller (every page attaches to its one session)."""
    from page4d_viewer.viewer.panel import build_panel
    from page4d_viewer.viewer.server.sessions import SessionRegistry

    return build_panel(SessionRegistry.single(controller), **options)


def test_tabs_hold_only_tabs(tmp_path: Path) -> None:
    """Anything else placed directly in a gr.Tabs shifts the order Gradio gives the tabs after
    it, and each of those gains a second button when it is first visited."""
    made = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), None)
    config = _panel(made).get_config_file()
    types = {component["id"]: component["type"] for component in config["components"]}
    found: list[list[str]] = []

    def walk(node: dict) -> None:
        children = node.get("children", [])
        if types.get(node["id"]) == "tabs":
            found.append([types[child["id"]] for child in children])
        for child in children:
            walk(child)

    walk(config["layout"])
    assert len(found) == 2  # the clip source's tabs and the result's
    assert all(kinds == ["tabitem"] * len(kinds) for kinds in found), found
    made.close()


def test_view_only_panel_disables_run(make_recon, tmp_path: Path) -> None:
    made = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), None)
    demo = _panel(made)
    assert _block(demo, "run").interactive is False
    assert _block(demo, "cancel").interactive is False  # nothing to cancel without a model
    assert "<iframe" not in _block(demo, "scene").value  # each page's scene comes on load
    with_model = ViewerController(
        FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), FakeBackend(make_recon)
    )
    demo = _panel(with_model, device="cuda:1")
    assert _block(demo, "run").interactive is not False
    assert _block(demo, "mask-strength").value == 64.0
    # No track head (the shipped default model, or no model): "Track points" says so.
    for panel in (_panel(made), demo):
        box = _block(panel, "track-points")
        assert box.value == 0 and box.interactive is False and "no track head" in box.info
    with_model.backend.track_available = lambda checkpoint: True
    box = _block(_panel(with_model), "track-points")
    assert box.value == 64 and box.interactive is not False
    made.close()
    with_model.close()


def test_clip_given_at_start_is_run_and_shown(make_recon, tmp_path: Path, caplog) -> None:
    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp
    from page4d_viewer.viewer.server.sessions import SessionRegistry

    app = ViewerApp(AppConfig(clip="start.mp4", runs_dir=tmp_path), backend=FakeBackend(make_recon))
    store = RunStore(tmp_path)
    made = []

    def make(scene, owner):
        made.append(ViewerController(FakeScene(), store, DataRoots([tmp_path]), app.backend,
                                     owner=owner, shared_runs=False))  # fmt: skip
        return made[-1]

    app.sessions = SessionRegistry(make, backend=app.backend, data_roots=DataRoots([tmp_path]),
                                   samples={})  # fmt: skip
    waiting = make(None, "early")  # a session open before the start-up run finished
    app._run_clip_at_start("start.mp4")
    app.sessions.adopt_initial(waiting)
    assert waiting.current.recon.metadata.source == "start.mp4"
    # Every session may see the start-up run, however private the runs are.
    assert [r.title for r in waiting.recent_runs()] == [waiting.current.record.title]
    app.backend.fail = Page4DError("bad clip")
    app._run_clip_at_start("bad.mp4")
    assert "could not run bad.mp4: bad clip" in caplog.text
    waiting.close()


class _RacingController:
    """A controller whose Viser timeline moves on to frame 3 right after the panel sets one."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.backend, self.samples = None, {}
        self.scene = SimpleNamespace(state=lambda: SimpleNamespace(playing=False))
        self.data_roots = DataRoots([Path(__file__).parent])
        self.frame = 0
        self.current = SimpleNamespace(version=1)
        self._images = plots.FrameImages(overlay="overlay", depth="depth", confidence="conf")

    def set_frame(self, frame: int) -> int:
        self.frame = 3  # a Viser user (or playback) moves the timeline meanwhile
        return frame

    def scene_settings(self):
        from page4d_viewer.viewer.controller import SceneSettings

        return SceneSettings(self.frame, 0.5, 0.5)

    def frame_images(self, frame: int):
        return self._images


def test_panel_follows_a_timeline_move_made_while_it_set_the_frame() -> None:
    from types import SimpleNamespace

    from page4d_viewer.viewer.callbacks import PanelCallbacks
    from page4d_viewer.viewer.controller import SceneSettings
    from page4d_viewer.viewer.server.sessions import SessionRegistry

    widgets = SimpleNamespace(synced="synced", frame="frame", version="version")
    mask = _mask_tab(["overlay_image", "depth_image", "confidence_image", "gt_depth", "gt_mask"])
    sessions = SessionRegistry.single(_RacingController())  # type: ignore[arg-type]
    callbacks = PanelCallbacks(sessions, widgets, [mask])  # type: ignore[arg-type]
    after_input = callbacks.on_frame(2, SceneSettings(0, 0.5, 0.5))
    assert after_input["synced"].frame == 2  # what the page shows, not the scene's new frame
    assert after_input["overlay_image"] == "overlay"  # the Mask and depth tab follows
    after_tick = callbacks.on_tick(1, after_input["synced"])
    assert after_tick["frame"] == 3  # so the next poll brings the panel to the scene
    assert after_tick["overlay_image"] == "overlay" and "opacity" not in after_tick


def test_multi_image_upload_is_titled_by_its_files(controller: ViewerController) -> None:
    cache = "/tmp/gradio"  # Gradio keeps each upload in its own hashed folder
    uploads = [f"{cache}/{digest}/walk_{i:04d}.png" for i, digest in enumerate("abc")]
    shown = controller.run(uploads, RunOptions(checkpoint="default model"), lambda f, m: None)
    assert shown.title.startswith("walk_*.png (3 images) · 5 frames")
    assert "gradio" not in shown.title
    label = controller.recent_runs()[0].label()
    assert "walk_*.png (3 images)" in label and "α 64" in label


def test_the_runs_list_can_be_searched(controller: ViewerController) -> None:
    from page4d_viewer.viewer.callbacks import PanelCallbacks
    from page4d_viewer.viewer.server.sessions import SessionRegistry

    controller.run("walk.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    controller.run("orbit.mp4", RunOptions(checkpoint="x"), lambda f, m: None)
    sessions = SessionRegistry.single(controller)
    callbacks = PanelCallbacks(sessions, None)  # type: ignore[arg-type]  # no widgets needed
    everything = callbacks.runs_update()["choices"]
    found = callbacks.runs_update("WALK")["choices"]
    assert len(everything) == 2 and len(found) == 1
    assert "walk" in found[0][0] and callbacks.runs_update("walk orbit")["choices"] == []


def test_pairs_with_the_geometric_variants() -> None:
    variants = ["masked", "unmasked", "geometry_masked", "geometry_unmasked", "ground_truth"]
    assert plots.variant_pairs(variants) == [
        ("masked", "ground_truth"),
        ("unmasked", "ground_truth"),
        ("geometry_masked", "ground_truth"),
        ("geometry_unmasked", "ground_truth"),
        ("masked", "unmasked"),
        ("masked", "geometry_masked"),
        ("geometry_masked", "geometry_unmasked"),
    ]


def test_disagreement_curves_compare_head_and_geometry(make_reconstruction) -> None:
    recon = make_reconstruction(frames=5)
    centres = recon.cameras["masked"].centers
    # The head agrees with the geometry exactly; the unmasked geometry turns 3 degrees a frame.
    recon.cameras["masked"] = _cameras(centres, np.zeros(5))
    recon.cameras["geometry_masked"] = _cameras(centres, np.zeros(5))
    recon.cameras["geometry_unmasked"] = _cameras(centres + 0.5, 3.0 * np.arange(5))
    curves = plots.disagreement(recon)
    rotation, translation = curves["masked vs geometry, masked"]
    np.testing.assert_allclose(rotation, 0.0, atol=1e-6)
    np.testing.assert_allclose(translation, 0.0, atol=1e-9)
    rotation, translation = curves["geometry, masked vs geometry, unmasked"]
    np.testing.assert_allclose(rotation, 3.0 * np.arange(5), atol=1e-6)
    # Centres 0.5 apart on each axis, in units of the median depth.
    expected = np.sqrt(3 * 0.25) / np.median(recon.depth)
    np.testing.assert_allclose(translation, expected, rtol=1e-6)
    assert plots.disagreement(make_reconstruction(frames=5)) == {}


def test_a_click_on_the_disagreement_picture_reads_as_its_frame(make_reconstruction) -> None:
    recon = make_reconstruction(
        frames=7, variants=("masked", "geometry_masked", "geometry_unmasked")
    )
    picture = plots.figure_picture(plots.disagreement_figure(recon, frame=3), recon.num_frames)
    height, width = picture.image.shape[:2]
    assert picture.image.dtype == np.uint8 and width > 300 and height > 200
    axis = picture.axis
    assert 0 < axis.left < axis.right < width
    for frame in range(recon.num_frames):
        column = axis.left + frame / (recon.num_frames - 1) * (axis.right - axis.left)
        assert axis.frame_at(column + 2.0) == frame  # a few pixels off still picks it
    assert axis.frame_at(0.0) == 0 and axis.frame_at(width) == recon.num_frames - 1
    # The marked frame draws a line: the pictures of two frames differ.
    other = plots.figure_picture(plots.disagreement_figure(recon, frame=5), recon.num_frames)
    assert not np.array_equal(picture.image, other.image)


def test_a_relative_path_climbing_out_of_its_root_is_outside(tmp_path: Path) -> None:
    """Read under the nested root, "../x" lands in the outer one: it is still outside (named
    as such, with --data-root), not "missing" there."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "clip.mp4").write_bytes(b"")
    roots = DataRoots([tmp_path / "assets", tmp_path])
    with pytest.raises(Page4DError, match="outside the allowed data folders.*--data-root"):
        roots.resolve("../elsewhere.mp4")
    assert roots.resolve("clip.mp4") == (tmp_path / "clip.mp4").resolve()  # under the outer
    with pytest.raises(Page4DError, match="does not exist"):
        roots.resolve("missing.mp4")


def test_the_app_prints_no_scene_port(capsys: pytest.CaptureFixture[str]) -> None:
    """One port: the sessions' internal Viser ports never reach the app's output."""
    import rich
    import viser

    console = rich.get_console()
    try:
        silence_scene_banners()
        server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
        port = server.get_port()
        server.stop()
        out = capsys.readouterr().out
        assert str(port) not in out and "viser" not in out
    finally:
        console.quiet = False


def test_every_handler_lets_gradio_see_its_request(tmp_path: Path) -> None:
    """Gradio finds a handler's gr.Request parameter through typing.get_type_hints; one
    annotation it cannot resolve (a name imported only for the type checker) hides it, and
    the handler then never finds its page's session."""
    import typing

    made = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), None)
    demo = _panel(made)
    handlers = [block_fn.fn for block_fn in demo.fns.values() if block_fn.fn is not None]
    assert len(handlers) > 30
    unresolved = []
    for handler in handlers:
        try:
            typing.get_type_hints(handler)
        except NameError as error:
            unresolved.append(f"{getattr(handler, '__qualname__', handler)}: {error}")
    assert unresolved == []
    made.close()


def test_one_poll_timer_asks_every_tab_in_one_request(tmp_path: Path) -> None:
    """The page polls its session once per tick: the panel's result view, the probe made in
    the scene (Inside the model) and the tracks clicked in it (Tracks) come in one answer."""
    made = ViewerController(FakeScene(), RunStore(tmp_path), DataRoots([tmp_path]), None)
    config = _panel(made).get_config_file()
    by_id = {component["id"]: component for component in config["components"]}
    # One poll timer; the other timer (presenter.FOLLOW_SECONDS) only runs during playback.
    timers = [
        key for key, component in by_id.items()
        if component["type"] == "timer" and component["props"].get("active", True)
    ]  # fmt: skip
    assert len(timers) == 1
    ticks = [
        event for event in config["dependencies"]
        if any(target[0] == timers[0] for target in event["targets"])
    ]  # fmt: skip
    assert len(ticks) == 1
    outputs = {by_id[key]["props"].get("elem_id") for key in ticks[0]["outputs"]}
    polled = {"status", "frame", "probe-text", "probe-image", "tracks-note", "tracks-status"}
    assert polled <= outputs
    made.close()
