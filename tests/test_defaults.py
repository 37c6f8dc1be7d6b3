"""One default per setting: the scene, the panel, the export command and the exporters all
start from page4d_viewer.settings."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from page4d_viewer import settings
from page4d_viewer.cli import export as export_command
from page4d_viewer.result import export, mask
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.scene import SceneView, display


def default_of(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default


def test_the_scene_starts_from_the_settings(scene: SceneView) -> None:
    state = scene.state()
    assert state.points.confidence_percentile == settings.DEFAULT_CONF_PERCENTILE
    assert state.mask.opacity == settings.DEFAULT_MASK_OPACITY
    assert state.mask.threshold == settings.DEFAULT_MASK_THRESHOLD
    # The scene colours points with display.blend_colors' default colormap.
    assert default_of(display.blend_colors, "colormap") == settings.DEFAULT_COLORMAP
    assert display.DEFAULT_COLORMAP == settings.DEFAULT_COLORMAP


def test_the_tracks_start_from_the_settings(scene: SceneView) -> None:
    from types import SimpleNamespace

    from page4d_viewer.viewer.tabs.tracks import track_points_state

    tracks = scene.state().tracks.settings
    assert (tracks.trail, tracks.max_count) == (
        settings.DEFAULT_TRACK_TRAIL,
        settings.DEFAULT_TRACKS_SHOWN,
    )
    folder = scene.tracks.controls
    assert folder.trail.value == settings.DEFAULT_TRACK_TRAIL
    assert folder.max_count.value == settings.DEFAULT_TRACKS_SHOWN
    assert folder.max_count.max == settings.MAX_TRACKS
    with_tracker = SimpleNamespace(track_available=lambda checkpoint: True)
    assert track_points_state(with_tracker, "x")["value"] == settings.DEFAULT_TRACK_POINTS


def test_the_panel_sliders_start_from_the_settings(scene: SceneView, tmp_path: Path) -> None:
    # The panel's opacity and threshold sliders start at the controller's values.
    controller = ViewerController(scene, RunStore(tmp_path / "runs"), DataRoots([tmp_path]))
    try:
        assert controller.mask_opacity == settings.DEFAULT_MASK_OPACITY
        assert controller.mask_threshold == settings.DEFAULT_MASK_THRESHOLD
    finally:
        controller.close()


def test_the_export_command_defaults_are_the_settings() -> None:
    parser = argparse.ArgumentParser()
    export_command.configure_parser(parser)
    args = parser.parse_args(["result.npz"])
    assert args.conf_percentile == settings.DEFAULT_CONF_PERCENTILE
    assert args.opacity == settings.DEFAULT_MASK_OPACITY
    assert args.threshold == settings.DEFAULT_MASK_THRESHOLD
    assert args.colormap == settings.DEFAULT_COLORMAP


def test_the_exporters_and_the_overlay_default_to_the_settings() -> None:
    for function in (export.export_glb, export.export_ply):
        assert default_of(function, "conf_percentile") == settings.DEFAULT_CONF_PERCENTILE
    for function in (export.export_mp4, export.mp4_frame):
        assert default_of(function, "opacity") == settings.DEFAULT_MASK_OPACITY
        assert default_of(function, "threshold") == settings.DEFAULT_MASK_THRESHOLD
        assert default_of(function, "colormap") == settings.DEFAULT_COLORMAP
    for function in (mask.heat_colors, mask.blend_colors, mask.overlay_image):
        assert default_of(function, "colormap") == settings.DEFAULT_COLORMAP
