"""The Dataset view and two runs side by side, without a browser.

Results are small Reconstructions written to a temp folder with index rows written through
`evaluation.index`'s writer, as `page4d-viewer batch` lays them out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation import index as run_index
from page4d_viewer.result.reconstruction import Cameras, Metadata, Reconstruction
from page4d_viewer.viewer import dataset
from page4d_viewer.viewer.comparison import (
    Comparer,
    ComparisonError,
    align_second_run,
    pose_views,
)
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.paths import DataRoots, PathNotAllowedError
from page4d_viewer.viewer.runs import RunStore

HEIGHT, WIDTH = 28, 42


def make_result(
    frames: int = 5,
    *,
    source: str = "walk.mp4",
    checkpoint: str = "a.safetensors",
    strength: float = 64.0,
    world: geometry.Similarity | None = None,
) -> Reconstruction:
    """A small result of a camera moving along a curve; `world` re-expresses it in another
    world and scale (what a second run of the same clip looks like)."""
    rng = np.random.default_rng(frames)
    steps = np.arange(frames, dtype=np.float64)
    centres = np.stack([0.1 * steps, 0.02 * steps**2, 0.05 * steps], axis=-1)
    T_world_cam = np.tile(np.eye(4)[:3], (frames, 1, 1))
    T_world_cam[:, :, 3] = centres
    extrinsics = geometry.invert_rigid(T_world_cam)
    unmasked = extrinsics.copy()
    unmasked[:, 0, 3] += 0.02 * steps
    K = np.repeat(np.array([[[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]]]), frames, 0)
    cameras = {"masked": Cameras(extrinsics, K), "unmasked": Cameras(unmasked, K)}
    if world is not None:
        cameras = {name: cams.transformed(world) for name, cams in cameras.items()}
    depth = rng.uniform(1.0, 3.0, (frames, HEIGHT, WIDTH)).astype(np.float32)
    return Reconstruction(
        images=np.full((frames, HEIGHT, WIDTH, 3), 100, np.uint8),
        depth=depth,
        depth_conf=np.ones(depth.shape, np.float32),
        points=rng.normal(size=(frames, HEIGHT, WIDTH, 3)).astype(np.float32),
        points_conf=np.ones(depth.shape, np.float32),
        cameras=cameras,
        mask_score=np.full((frames, 2, 3), 0.4, np.float32),
        metadata=Metadata(checkpoint_name=checkpoint, mask_strength=strength, source=source),
    )


# clip, checkpoint, ATE masked, ATE unmasked, status
ROWS = [
    ("alley", "a.safetensors", 0.10, 0.30, "ok"),
    ("bamboo", "a.safetensors", 0.50, 0.20, "ok"),
    ("cave", "b.safetensors", 0.25, 0.25, "ok"),
    ("dragon", "b.safetensors", None, None, "failed"),
]


# clip -> geometric ATE masked, unmasked, head vs geometry rotation (deg) and path share
GEOMETRY = {
    "alley": (0.04, 0.12, 3.0, 0.2),
    "bamboo": (0.09, 0.06, 25.0, 0.9),
    "cave": (0.20, 0.05, 11.0, None),
}


@pytest.fixture()
def batch(tmp_path: Path) -> Path:
    """A batch folder: four rows (one failed), a result file per successful row."""
    folder = tmp_path / "data" / "batch"
    with contextlib.closing(run_index.connect(folder / run_index.INDEX_NAME)) as connection:
        for number, (clip, checkpoint, masked, unmasked, status) in enumerate(ROWS):
            geometry_masked, geometry_unmasked, rotation, path = GEOMETRY.get(clip, (None,) * 4)
            relative = Path("results") / checkpoint / f"{clip}.npz"
            if status == "ok":
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                make_result(source=f"{clip}.mp4", checkpoint=checkpoint).save(folder / relative)
            run_index.write_row(connection, run_index.RunRow(**{
                "clip": clip, "checkpoint": checkpoint, "settings_hash": "s",
                "checkpoint_name": checkpoint, "status": status, "mask_strength": 64.0,
                "frames": 5, "ate_masked": masked, "ate_unmasked": unmasked,
                "ate_geometry_masked": geometry_masked, "ate_geometry_unmasked": geometry_unmasked,
                "head_geometry_rot_deg": rotation, "head_geometry_trans": path,
                "seconds": float(number), "error": "out of memory" if status != "ok" else None,
                "result_path": relative.as_posix() if status == "ok" else None,
                "created_at": "2026-01-01T00:00:00",
            }))  # fmt: skip
    return folder


class _ComparisonLayer:
    """Records the second run the comparer lays over the scene."""

    def __init__(self) -> None:
        self.shown: tuple[str, dict[str, Cameras]] | None = None

    def compare(self, title, cameras) -> None:
        self.shown = (title, dict(cameras))

    def set_visible(self, visible) -> None: ...

    def clear(self) -> None:
        self.shown = None


class _Scene:
    """Records what the controller and the comparer send to the scene."""

    num_frames = 0
    frame = 0

    def __init__(self) -> None:
        self.shown: list[Reconstruction] = []
        self.comparison = _ComparisonLayer()

    def show(self, recon, progress=None) -> None:
        self.shown.append(recon)
        self.comparison.clear()  # a new result removes the comparison, as SceneView does

    def set_frame(self, index) -> None: ...

    def set_loading(self, message: str) -> None: ...

    def stop_loading(self) -> None: ...

    def set_mask_overlay(self, opacity, threshold) -> None: ...

    def state(self):
        return SimpleNamespace(
            frame=0, mask=SimpleNamespace(opacity=0.5, threshold=0.5, overlay="continuous")
        )


@pytest.fixture()
def controller(tmp_path: Path) -> Iterator[ViewerController]:
    made = ViewerController(_Scene(), RunStore(tmp_path / "runs"), DataRoots([tmp_path / "data"]))
    yield made
    made.close()


def _clips(table: dataset.DatasetTable) -> list[str]:
    return [row[1] for row in table.table()]


def test_table_sorts_by_the_chosen_column_both_ways(batch: Path) -> None:
    index = batch / run_index.INDEX_NAME
    # Masked minus unmasked ATE: bamboo +0.3, cave 0, alley -0.2; the failed run has none.
    assert _clips(dataset.list_table(index)) == ["bamboo", "cave", "alley", "dragon"]
    assert _clips(dataset.list_table(index, descending=False)) == [
        "alley", "cave", "bamboo", "dragon",
    ]  # fmt: skip
    assert _clips(dataset.list_table(index, "ATE unmasked")) == [
        "alley",
        "cave",
        "bamboo",
        "dragon",
    ]
    assert _clips(dataset.list_table(index, "clip", False)) == ["alley", "bamboo", "cave", "dragon"]
    with pytest.raises(Page4DError, match="cannot sort by 'colour'"):
        dataset.list_table(index, "colour")


@pytest.mark.parametrize(
    ("label", "largest_first", "smallest_first"),
    [
        # Geometric masked minus unmasked: cave +0.15, bamboo +0.03, alley -0.08.
        (
            "ATE geometry masked − unmasked",
            ["cave", "bamboo", "alley"],
            ["alley", "bamboo", "cave"],
        ),
        ("ATE geometry masked", ["cave", "bamboo", "alley"], ["alley", "bamboo", "cave"]),
        ("ATE geometry unmasked", ["alley", "bamboo", "cave"], ["cave", "bamboo", "alley"]),
        ("head vs geometry rotation", ["bamboo", "cave", "alley"], ["alley", "cave", "bamboo"]),
        ("head vs geometry path", ["bamboo", "alley", "cave"], ["alley", "bamboo", "cave"]),
    ],
)
def test_table_sorts_by_the_geometric_cameras(
    batch: Path, label: str, largest_first: list[str], smallest_first: list[str]
) -> None:
    # Rows without the value come last either way, by name (cave has no path share).
    index = batch / run_index.INDEX_NAME
    assert _clips(dataset.list_table(index, label)) == [*largest_first, "dragon"]
    assert _clips(dataset.list_table(index, label, descending=False)) == [*smallest_first, "dragon"]


def test_table_shows_the_geometric_columns(batch: Path) -> None:
    rows = dataset.list_table(batch / run_index.INDEX_NAME).table()
    cells = [dict(zip(dataset.HEADERS, row, strict=True)) for row in rows]
    bamboo, cave, _, dragon = cells
    assert (bamboo["ATE geometry masked"], bamboo["ATE geometry unmasked"]) == ("0.0900", "0.0600")
    assert bamboo["ATE geometry masked − unmasked"] == "+0.0300"
    assert (bamboo["head vs geometry (deg)"], bamboo["head vs geometry (path)"]) == (
        "25.00", "0.900",
    )  # fmt: skip
    assert cave["head vs geometry (path)"] == ""
    assert all(dragon[name] == "" for name in dataset.HEADERS if "geometry" in name)


def test_a_version_1_index_lists_with_empty_geometric_columns(batch: Path) -> None:
    import sqlite3

    index = batch / run_index.INDEX_NAME
    with contextlib.closing(sqlite3.connect(index)) as connection:
        for name in run_index.ADDED_COLUMNS:
            connection.execute(f"ALTER TABLE runs DROP COLUMN {name}")
        connection.commit()
    table = dataset.list_table(index, "head vs geometry rotation")
    assert _clips(table) == ["alley", "bamboo", "cave", "dragon"]  # none has it: by name
    assert all(
        cell == ""
        for row in table.table()
        for name, cell in zip(dataset.HEADERS, row, strict=True)
        if "geometry" in name
    )


def test_the_two_scatters_share_one_scale(batch: Path) -> None:
    head, geometric = dataset.ate_scatters(dataset.list_table(batch / run_index.INDEX_NAME).rows)
    (head_axes,), (geometry_axes,) = head.axes, geometric.axes
    assert head_axes.get_xlim() == geometry_axes.get_ylim() == pytest.approx((0, 0.5 * 1.05))
    assert "geometry" in geometry_axes.get_xlabel() and "geometry" not in head_axes.get_xlabel()
    assert [len(axes.texts) for axes in (head_axes, geometry_axes)] == [3, 3]  # clips named


def test_table_filters_and_shows_the_promised_columns(batch: Path) -> None:
    index = batch / run_index.INDEX_NAME
    table = dataset.list_table(index, filter_text="B.SAFE")
    assert _clips(table) == ["cave", "dragon"]
    assert _clips(dataset.list_table(index, filter_text="memory")) == ["dragon"]
    rows = dataset.list_table(index).table()
    assert len(rows[0]) == len(dataset.HEADERS)
    bamboo = dict(zip(dataset.HEADERS, rows[0], strict=True))
    assert bamboo["#"] == 0 and bamboo["checkpoint"] == "a.safetensors" and bamboo["α"] == "64"
    assert (bamboo["ATE masked"], bamboo["ATE unmasked"]) == ("0.5000", "0.2000")
    assert bamboo["ATE masked − unmasked"] == "+0.3000" and bamboo["status"] == "ok"
    # Only rows with a result can be opened or compared.
    assert [label for label, _ in table.row_choices()] == ["cave · b.safetensors · α 64"]


def test_typed_index_path_is_checked_against_the_data_roots(batch: Path, tmp_path: Path) -> None:
    roots = DataRoots([tmp_path / "data"])
    assert dataset.resolve_index(roots, "batch") == batch / run_index.INDEX_NAME
    assert dataset.resolve_index(roots, str(batch / "index.sqlite")) == batch / "index.sqlite"
    with pytest.raises(PathNotAllowedError, match="outside the allowed"):
        dataset.resolve_index(roots, str(tmp_path / "runs"))
    (tmp_path / "data" / "empty").mkdir()
    with pytest.raises(Page4DError, match="no batch index"):
        dataset.resolve_index(roots, "empty")


def test_opening_a_row_shows_its_result(batch: Path, controller: ViewerController) -> None:
    index = batch / run_index.INDEX_NAME
    table = dataset.list_table(index, "clip", False)
    shown = dataset.open_row(controller, index, table.row_keys()[1])
    assert shown.recon.metadata.source == "bamboo.mp4"
    assert controller.current is shown and controller.scene.shown == [shown.recon]
    assert shown.result_file == batch / "results" / "a.safetensors" / "bamboo.npz"
    with pytest.raises(Page4DError, match="dragon failed in the batch.*out of memory"):
        dataset.open_row(controller, index, table.row_keys()[3])
    assert controller.current is shown  # the failure leaves the result on screen


def test_a_row_pointing_outside_its_folder_is_refused(batch: Path, tmp_path: Path) -> None:
    index = batch / run_index.INDEX_NAME
    with contextlib.closing(run_index.connect(index)) as connection:
        run_index.write_row(connection, run_index.RunRow(**{
            "clip": "evil", "checkpoint": "a", "settings_hash": "s", "status": "ok",
            "result_path": "../../elsewhere.npz", "created_at": "now",
        }))  # fmt: skip
    row = run_index.get_run(index, ("evil", "a", "s"))
    with pytest.raises(Page4DError, match="no result file of evil inside"):
        dataset.row_result_file(index, row)


def test_key_round_trips_and_bad_keys_are_refused() -> None:
    key = ("clip 1", 'ck"pt', "abc")
    assert dataset.decode_key(dataset.encode_key(key)) == key
    with pytest.raises(Page4DError, match="not an index row"):
        dataset.decode_key("nonsense")


# ------------------------------------------------------------------------- comparison


def _turn(scale: float) -> geometry.Similarity:
    angle = np.radians(30.0)
    rotation = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    return geometry.Similarity(scale, rotation, np.array([1.0, -2.0, 0.5]))


def test_second_run_is_aligned_into_the_first_runs_world() -> None:
    first = make_result()
    second = make_result(checkpoint="b.safetensors", world=_turn(3.0))
    similarity, cameras = align_second_run(first, second)
    assert set(cameras) == {"masked", "unmasked"}
    np.testing.assert_allclose(
        cameras["masked"].centers, first.cameras["masked"].centers, atol=1e-9
    )
    # The unmasked cameras move with the same transform, keeping B's own offset.
    np.testing.assert_allclose(
        cameras["unmasked"].centers, first.cameras["unmasked"].centers, atol=1e-9
    )
    assert similarity.scale == pytest.approx(1 / 3.0)


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (make_result(frames=4), "4-frame result with the shown 5-frame"),
        (make_result(source="other/run.mp4"), "different clips: run.mp4 and the shown walk.mp4"),
    ],
)
def test_mismatched_pairs_are_refused(second: Reconstruction, message: str) -> None:
    with pytest.raises(ComparisonError, match=message):
        align_second_run(make_result(), second)


def test_other_frames_of_the_clip_are_refused() -> None:
    first, second = make_result(), make_result()
    first.metadata.frame_indices = [0, 1, 2, 3, 4]
    second.metadata.frame_indices = [0, 2, 4, 6, 8]
    with pytest.raises(ComparisonError, match="different frames"):
        align_second_run(first, second)


def test_same_clip_from_another_folder_is_comparable() -> None:
    align_second_run(
        make_result(source="/data/a/synthetic/9000001/clip.mp4"),
        make_result(source="/data/b/synthetic/9000001/clip.mp4"),
    )


def _comparer(controller: ViewerController, tmp_path: Path) -> tuple[Comparer, Path]:
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    make_result().save(first)
    make_result(checkpoint="b.safetensors", strength=32.0, world=_turn(2.0)).save(second)
    controller.open_result(first)
    return Comparer(controller, controller.scene), second


def test_comparison_reaches_the_scene_and_goes_with_a_new_result(
    controller: ViewerController, tmp_path: Path
) -> None:
    comparer, second = _comparer(controller, tmp_path)
    compared = comparer.compare_with_file(second)
    title, cameras = controller.scene.comparison.shown
    assert title == compared.title and "b.safetensors · α 32 · 5 frames" in title
    assert set(cameras) == {"masked", "unmasked"}
    assert "b.safetensors" in comparer.describe()
    comparer.clear()
    assert controller.scene.comparison.shown is None and comparer.current is None
    comparer.compare_with_file(second)
    controller.open_result(tmp_path / "first.npz")  # a new A: the comparison is gone
    assert comparer.current is None


def test_refused_comparison_keeps_the_earlier_one(
    controller: ViewerController, tmp_path: Path
) -> None:
    comparer, second = _comparer(controller, tmp_path)
    compared = comparer.compare_with_file(second)
    other = tmp_path / "other.npz"
    make_result(frames=3).save(other)
    with pytest.raises(ComparisonError, match="3-frame"):
        comparer.compare_with_file(other)
    assert comparer.current is compared and controller.scene.comparison.shown[0] == compared.title


def test_nothing_shown_means_nothing_to_compare_with(
    controller: ViewerController, tmp_path: Path
) -> None:
    make_result().save(tmp_path / "b.npz")
    with pytest.raises(ComparisonError, match="open or run a result first"):
        Comparer(controller, controller.scene).compare_with_file(tmp_path / "b.npz")


def _labels(axes) -> list[str]:
    return [line.get_label() for line in axes.get_lines() if not line.get_label().startswith("_")]


def test_pose_plots_and_metrics_show_both_runs(
    controller: ViewerController, tmp_path: Path
) -> None:
    comparer, second = _comparer(controller, tmp_path)
    shown = controller.current
    alone = pose_views(shown.recon, comparer.compared_with(shown))
    assert _labels(alone.trajectory.axes[0]) == ["masked", "unmasked"]
    comparer.compare_with_file(second)
    views = pose_views(shown.recon, comparer.compared_with(shown))
    assert _labels(views.trajectory.axes[0]) == ["masked", "unmasked", "B: masked", "B: unmasked"]
    # B's lines are drawn in A's world: its masked path lies on A's.
    a_line, b_line = (
        views.trajectory.axes[0].get_lines()[0],
        views.trajectory.axes[0].get_lines()[4],
    )
    np.testing.assert_allclose(b_line.get_xdata(), a_line.get_xdata(), atol=1e-9)
    assert _labels(views.differences.axes[0]) == ["masked vs unmasked", "B: masked vs unmasked"]
    labels = [row[0] for row in views.metrics]
    assert labels == [
        "A: masked vs unmasked", "B: masked vs unmasked", "B: masked vs A: masked",
        "B: unmasked vs A: unmasked",
    ]  # fmt: skip
    cross = views.metrics[2]
    assert float(cross[1]) == pytest.approx(0.0, abs=1e-6)  # same path, other world and scale


def test_comparing_with_an_index_row(
    batch: Path, controller: ViewerController, tmp_path: Path
) -> None:
    index = batch / run_index.INDEX_NAME
    key = ("cave", "b.safetensors", "s")
    dataset.open_row(controller, index, ("alley", "a.safetensors", "s"))
    comparer = Comparer(controller, controller.scene)
    with pytest.raises(ComparisonError, match="different clips"):
        dataset.compare_with_row(comparer, index, key)
    cave = tmp_path / "cave.npz"
    make_result(source="cave.mp4").save(cave)
    controller.open_result(cave)
    assert dataset.compare_with_row(comparer, index, key).title.startswith("cave.npz")


def test_scene_state_shows_both_runs_cameras() -> None:
    import viser

    from page4d_viewer.viewer.scene import SceneView

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    scene = SceneView(server)
    try:
        first = make_result(frames=3)
        scene.show(first)
        assert scene.wait_until_sent(timeout=30)
        _, cameras = align_second_run(first, make_result(frames=3, world=_turn(2.0)))
        scene.comparison.compare("B run", cameras)
        state = scene.state()
        assert state.comparison.title == "B run" and state.comparison.visible
        assert state.cameras.variants == ("masked", "unmasked")
        assert state.comparison.variants == ("masked", "unmasked")
        assert state.comparison.camera_nodes == tuple(
            f"/compare/{variant}/frusta/t{i:04d}" for variant in ("masked", "unmasked")
            for i in range(3)
        )  # fmt: skip
        assert any(node.startswith("/cameras/masked/") for node in state.cameras.visible_nodes)
        # One "B" label (one per variant overprinted: aligned first cameras coincide); the
        # legend names B's lighter shades instead.
        assert [n.labelled for n in scene.comparison.nodes.values()] == [True, False]
        assert "B: masked" in scene.legend.html and "B: unmasked" in scene.legend.html
        scene.comparison.set_visible(False)
        assert scene.state().comparison.camera_nodes == ()
        scene.comparison.set_visible(True)
        with pytest.raises(Page4DError, match="4 frames, the shown result 3"):
            scene.comparison.compare("bad", align_second_run(
                make_result(frames=4), make_result(frames=4))[1])  # fmt: skip
        assert scene.state().comparison.title == "B run"
        scene.comparison.clear()
        cleared = scene.state()
        assert (cleared.comparison.title, cleared.comparison.variants) == (None, ())
        assert "B: masked" not in scene.legend.html
        scene.comparison.compare("B run", cameras)
        scene.show(first)  # a new result removes the comparison with the rest
        assert scene.state().comparison.title is None
    finally:
        scene.close()
        server.stop()


def test_index_option_reaches_the_config_and_view_needs_a_result_or_an_index(
    batch: Path, capsys
) -> None:
    import argparse

    from page4d_viewer.cli import main
    from page4d_viewer.cli import view as view_command
    from page4d_viewer.cli.serving import config_from_args

    parser = argparse.ArgumentParser()
    view_command.configure_parser(parser.add_subparsers(dest="command").add_parser("view"))
    config = config_from_args(parser.parse_args(["view", "--index", str(batch)]))
    assert (config.index, config.result) == (str(batch), None)
    assert main(["view"]) == 2
    assert "give a result file to view, or --index DIR" in capsys.readouterr().err
    assert main(["view", "--index", str(batch / "missing")]) == 2
    assert "no batch index at" in capsys.readouterr().err


def test_app_refuses_an_unreadable_index_before_serving(tmp_path: Path) -> None:
    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

    broken = tmp_path / "index.sqlite"
    broken.write_bytes(b"not sqlite at all, not even close" * 10)
    app = ViewerApp(AppConfig(index=str(broken)))
    with pytest.raises(Page4DError, match="is not a batch index"):
        app.start()
    assert app.http is None and app.sessions is None  # nothing was started
