"""The panel's Record tab: an mp4 of the 3-D playback, and the scene as an offline share.

"Record video" renders every frame of the clip in the browser that shows the 3-D scene (from
its current view, or circling the scene) and encodes an mp4 (`viewer.recording`). "Share as a
folder (zip)" writes the folder of `page4d-viewer export --share` (`result.export.share`) and
zips it. Both are written next to the result's other downloads and offered as files.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final, Literal, get_args

import gradio as gr

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
RecordCamera = Literal["Current view", "Orbit around the scene"]
"""Where the video's camera is: the browser's current view, or circling the scene."""
CURRENT_VIEW: Final[RecordCamera] = "Current view"
ORBIT: Final[RecordCamera] = "Orbit around the scene"
CAMERAS: tuple[RecordCamera, ...] = get_args(RecordCamera)


@dataclass
class RecordWidgets:
    """The Record tab's components."""

    resolution: gr.Dropdown
    camera: gr.Radio
    record_button: gr.Button
    share_button: gr.Button
    record_status: gr.Markdown
    files: gr.File


class RecordTab(PanelTab):
    """An mp4 of the 3-D playback, and the scene as a folder to share."""

    label: ClassVar[str] = "Record"
    tab_id: ClassVar[str] = "record"
    widgets: RecordWidgets
    panel: Panel

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
            resolution, camera, record_button, share_button, record_status, files
        )

    def wire(self, panel: Panel) -> None:
        """Connect the tab's buttons; one recording at a time."""
        self.panel = panel
        widgets = self.widgets
        outputs = [widgets.files, widgets.record_status]
        widgets.record_button.click(
            self.on_record, [widgets.resolution, widgets.camera], outputs, **RECORDS
        )
        widgets.share_button.click(self.on_share, None, outputs, **RECORDS)

    def on_record(
        self, resolution: str, camera: RecordCamera, request: gr.Request | None = None
    ) -> tuple[list[str] | None, str]:
        try:
            session = self.panel.callbacks.session_of(request)
            path = record_video(session, resolution, camera == ORBIT)
        except Page4DError as error:
            return None, _error(error)
        return [str(path)], f"Recorded `{path.name}`."

    def on_share(self, request: gr.Request | None = None) -> tuple[list[str] | None, str]:
        try:
            path = share_zip(self.panel.callbacks.session_of(request))
        except Page4DError as error:
            return None, _error(error)
        return [str(path)], (
            f"Wrote `{path.name}`: unzip it, run `python -m http.server` inside and open the "
            "address it prints."
        )


def record_video(session: PanelSession, resolution: str, orbit: bool) -> Path:
    """Record the shown result from the newest browser's view (or an orbit) as an mp4."""
    if resolution not in RESOLUTIONS:
        raise Page4DError(
            f"unknown video size {resolution!r}; pick one of {', '.join(RESOLUTIONS)}"
        )
    shown = _shown(session.controller)
    height, width = RESOLUTIONS[resolution]
    scene = session.scene
    client = recording.newest_client(scene.server)
    shown.exports_dir.mkdir(parents=True, exist_ok=True)
    name = f"playback_{'orbit' if orbit else 'view'}_{width}x{height}.mp4"
    return recording.record_scene_mp4(
        scene, shown.recon, client, shown.exports_dir / name, height=height, width=width,
        orbit=orbit,
    )  # fmt: skip


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
