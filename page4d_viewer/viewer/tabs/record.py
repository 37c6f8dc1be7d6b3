"""The panel's Record tab: an mp4 of the 3-D playback, and the scene as an offline share.

"Record video" renders every frame of the clip in the browser that shows the 3-D scene (from
its current view, circling the scene, or flying along keyframes) and encodes an mp4
(`viewer.recording`). "Add keyframe" takes that browser's current view as the next keyframe of
the path (kept per page in a `gr.State`, listed in the tab); "Clear keyframes" empties it.
"Share as a folder (zip)" writes the folder of `page4d-viewer export --share`
(`result.export.share`) and zips it. Both are written next to the result's other downloads and
offered as files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

import gradio as gr
import numpy as np

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export.share import export_share
from page4d_viewer.viewer import recording
from page4d_viewer.viewer.callbacks import PanelSession
from page4d_viewer.viewer.tabs.base import RECORDS, Panel, PanelSetup, PanelTab

if TYPE_CHECKING:
    from page4d_viewer.viewer.controller import Shown, ViewerController

logger = logging.getLogger(__name__)

RESOLUTIONS: dict[str, tuple[int, int]] = {
    "320x240": (240, 320),
    "640x360": (360, 640),
    "1280x720 (720p)": (720, 1280),
    "1920x1080 (1080p)": (1080, 1920),
}
"""Video sizes offered, label -> (height, width); all even, as yuv420p needs."""
DEFAULT_RESOLUTION = "1280x720 (720p)"
RecordCamera = Literal["Current view", "Orbit around the scene", "Along the keyframes"]
"""Where the video's camera is: the browser's current view, circling the scene, or flying
along the keyframes added in the tab."""
CURRENT_VIEW: Final[RecordCamera] = "Current view"
ORBIT: Final[RecordCamera] = "Orbit around the scene"
KEYFRAMES: Final[RecordCamera] = "Along the keyframes"
CAMERAS: tuple[RecordCamera, ...] = get_args(RecordCamera)
CAMERA_PATHS: dict[RecordCamera, recording.CameraPath] = {
    CURRENT_VIEW: "view",
    ORBIT: "orbit",
    KEYFRAMES: "keyframes",
}
NO_KEYFRAMES = "No keyframes yet: orbit the 3-D view, then **Add keyframe** for each stop."


@dataclass
class RecordWidgets:
    """The Record tab's components."""

    resolution: gr.Dropdown
    camera: gr.Radio
    add_keyframe: gr.Button
    clear_keyframes: gr.Button
    keyframe_list: gr.Markdown
    keyframes: gr.State
    """This page's keyframes: a list of `recording.ViewPose`."""
    record_button: gr.Button
    share_button: gr.Button
    record_status: gr.Markdown
    files: gr.File


class RecordTab(PanelTab, label="Record", tab_id="record"):
    """An mp4 of the 3-D playback, and the scene as a folder to share."""

    widgets: RecordWidgets

    def build(self, setup: PanelSetup) -> None:
        with gr.Row():
            resolution = gr.Dropdown(
                list(RESOLUTIONS), value=DEFAULT_RESOLUTION, label="Video size",
                elem_id="record-resolution",
            )  # fmt: skip
            camera = gr.Radio(
                list(CAMERAS), value=CURRENT_VIEW, label="Camera", elem_id="record-view"
            )
        with gr.Row():
            add_keyframe = gr.Button(
                "Add keyframe (current view)", size="sm", elem_id="record-add-keyframe"
            )
            clear_keyframes = gr.Button(
                "Clear keyframes", size="sm", elem_id="record-clear-keyframes"
            )
        keyframe_list = gr.Markdown(NO_KEYFRAMES, elem_id="record-keyframes")
        keyframes = gr.State([])
        with gr.Row():
            record_button = gr.Button("Record video (mp4)", elem_id="record-video")
            share_button = gr.Button("Share as a folder (zip)", elem_id="record-share")
        record_status = gr.Markdown(
            "The video is drawn by the browser that shows the 3-D scene, one frame at a time.",
            elem_id="record-status",
        )
        files = gr.File(
            label="Files", file_count="multiple", interactive=False, elem_id="record-files"
        )
        self.widgets = RecordWidgets(
            resolution, camera, add_keyframe, clear_keyframes, keyframe_list, keyframes,
            record_button, share_button, record_status, files,
        )  # fmt: skip

    def wire(self, panel: Panel) -> None:
        """Connect the tab's buttons; one recording at a time."""
        self.panel = panel
        widgets = self.widgets
        outputs = [widgets.files, widgets.record_status]
        widgets.record_button.click(
            self.on_record,
            [widgets.resolution, widgets.camera, widgets.keyframes],
            outputs,
            **RECORDS,
        )
        keyframe_outputs = [widgets.keyframes, widgets.keyframe_list]
        widgets.add_keyframe.click(self.on_add_keyframe, widgets.keyframes, keyframe_outputs)
        widgets.clear_keyframes.click(self.on_clear_keyframes, None, keyframe_outputs)
        widgets.share_button.click(self.on_share, None, outputs, **RECORDS)

    def on_record(
        self,
        resolution: str,
        camera: RecordCamera,
        keyframes: list[recording.ViewPose] | None = None,
        request: gr.Request | None = None,
    ) -> tuple[list[str] | None, str]:
        try:
            session = self.panel.callbacks.session_of(request)
            path = record_video(session, resolution, camera, keyframes or [])
        except Page4DError as error:
            return None, _error(error)
        return [str(path)], f"Recorded `{path.name}`."

    def on_add_keyframe(
        self, keyframes: list[recording.ViewPose] | None, request: gr.Request | None = None
    ) -> tuple[list[recording.ViewPose], str]:
        """Append the scene's browser's current view to this page's keyframes."""
        keyframes = list(keyframes or [])
        try:
            session = self.panel.callbacks.session_of(request)
            client = recording.newest_client(session.scene.server)
            keyframes.append(recording.current_view(client))
        except Page4DError as error:
            return keyframes, keyframe_table(keyframes) + "\n\n" + _error(error)
        return keyframes, keyframe_table(keyframes)

    def on_clear_keyframes(self) -> tuple[list[recording.ViewPose], str]:
        return [], keyframe_table([])

    def on_share(self, request: gr.Request | None = None) -> tuple[list[str] | None, str]:
        try:
            path = share_zip(self.panel.callbacks.session_of(request))
        except Page4DError as error:
            return None, _error(error)
        return [str(path)], (
            f"Wrote `{path.name}`: unzip it, run `python -m http.server` inside and open the "
            "address it prints."
        )


def record_video(
    session: PanelSession,
    resolution: str,
    camera: RecordCamera,
    keyframes: Sequence[recording.ViewPose] = (),
) -> Path:
    """Record the shown result from the newest browser's view, an orbit or along keyframes,
    as an mp4."""
    if resolution not in RESOLUTIONS:
        raise Page4DError(
            f"unknown video size {resolution!r}; pick one of {', '.join(RESOLUTIONS)}"
        )
    if camera not in CAMERA_PATHS:
        raise Page4DError(f"unknown camera {camera!r}; pick one of {', '.join(CAMERAS)}")
    path = CAMERA_PATHS[camera]
    if path == "keyframes" and not keyframes:
        raise Page4DError("no keyframes: orbit the 3-D view and press **Add keyframe** first")
    shown = _shown(session.controller)
    height, width = RESOLUTIONS[resolution]
    scene = session.scene
    client = recording.newest_client(scene.server)
    shown.exports_dir.mkdir(parents=True, exist_ok=True)
    name = f"playback_{path}_{width}x{height}.mp4"
    return recording.record_scene_mp4(
        scene, shown.recon, client, shown.exports_dir / name, height=height, width=width,
        camera=path, keyframes=keyframes,
    )  # fmt: skip


def keyframe_table(keyframes: Sequence[recording.ViewPose]) -> str:
    """The keyframes as a Markdown table: where each camera is, where it looks, its fov."""
    if not keyframes:
        return NO_KEYFRAMES
    rows = [
        f"{len(keyframes)} keyframe{'s' if len(keyframes) != 1 else ''}; "
        f"**{KEYFRAMES}** flies through them in order over the clip.",
        "",
        "| # | camera at (x, y, z) | looking along | fov |",
        "|---|---|---|---|",
    ]
    for number, pose in enumerate(keyframes, start=1):
        xyzw = np.asarray(pose.wxyz, dtype=np.float64)[[1, 2, 3, 0]]
        forward = geometry.quaternion_to_rotation(xyzw[None])[0][:, 2]
        rows.append(
            f"| {number} | {_triple(pose.position)} | {_triple(forward)} "
            f"| {np.degrees(pose.fov):.0f}° |"
        )
    return "\n".join(rows)


def _triple(vector: np.ndarray) -> str:
    # round, then + 0.0: a tiny negative reads 0.00, not -0.00
    return "(" + ", ".join(f"{round(float(value), 2) + 0.0:.2f}" for value in vector) + ")"


def share_zip(session: PanelSession) -> Path:
    """The shown result's offline share, zipped, with the scene's point filter and mask
    overlay (the settings are in the name, so a changed setting writes a new zip)."""
    shown = _shown(session.controller)
    state = session.scene.state()
    percentile = float(state.points.confidence_percentile)
    opacity, threshold, overlay = state.mask.opacity, state.mask.threshold, state.mask.overlay
    stem = f"share_conf{percentile:g}_{overlay}_opacity{opacity:g}_threshold{threshold:g}"
    archive = shown.exports_dir / f"{stem}.zip"
    if archive.exists():
        return archive
    folder = shown.exports_dir / stem
    shutil.rmtree(folder, ignore_errors=True)
    export_share(
        shown.recon, folder, conf_percentile=percentile, opacity=opacity, threshold=threshold,
        overlay=overlay,
    )  # fmt: skip
    temporary = shutil.make_archive(str(shown.exports_dir / f".{stem}.tmp"), "zip", folder)
    Path(temporary).replace(archive)
    shutil.rmtree(folder, ignore_errors=True)
    return archive


def _shown(controller: ViewerController) -> Shown:
    shown = controller.current
    if shown is None:
        raise Page4DError("nothing to record yet: run a clip or open a result")
    return shown


def _error(error: Page4DError) -> str:
    logger.info("record tab: %s", error)
    return f"**Error:** {' '.join(str(error).split())}"
