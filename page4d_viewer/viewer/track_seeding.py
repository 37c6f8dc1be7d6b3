"""Seeding point tracks by clicking: a pixel of the frame picture, or a point in the 3-D scene.

`TrackSeeder` sits beside `ViewerController` (like the probe's `Inspector`): it turns a click
into a pixel with the probe's own mapping (`probe.pixel_from_image_click` for a picture,
`SceneView.pick_pixel` for a click ray) and asks the controller to track from there with the
session's model (`ViewerController.add_tracks`). Clicks in the scene reach it only while the
scene's click mode is "track" (`set_seeding`), so the probe keeps every other click. Each
outcome is one status line; the Tracks tab (`tabs/tracks.py`) shows it.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.tracks import track_errors
from page4d_viewer.result.mask import DisplayError
from page4d_viewer.result.tracks import Seeds, moving_tracks, pixel_of, track_colors
from page4d_viewer.run_contract import RunOptions
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.captions import captioned
from page4d_viewer.viewer.scene.picking import Pixel, pixel_from_image_click
from page4d_viewer.viewer.scene.tracks import TrackSettings, choose_tracks

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.viewer.controller import ViewerController

logger = logging.getLogger(__name__)

DOT_RADIUS = 3  # picture pixels around a track's dot (after enlarging)


class TrackSeeder:
    """One session's click seeding: the model to track with, and the last outcome.

    Args:
        controller: the session's controller (result on screen, scene, model backend).

    Attributes:
        options: the checkpoint, device and precision to track with (the panel's Model
            section, kept up to date by the Tracks tab).
        message: the last seeding's outcome, one line.
        version: increases with every new message (the tab's timer brings it to the page).
    """

    def __init__(self, controller: ViewerController) -> None:
        self.controller = controller
        self._lock = threading.Lock()
        self.options = RunOptions(checkpoint="")
        self.message = ""
        self.version = 0
        self._worker: threading.Thread | None = None
        self._closed = False  # set by `close`: scene clicks are ignored from then on
        self._track_heads: dict[str, bool] = {}  # checkpoint -> whether it has a track head
        clicks = getattr(controller.scene, "clicks", None)  # a scene without one: no clicks
        if clicks is not None:
            clicks.add(self.scene_clicked, mode="track")

    def recon(self) -> Reconstruction | None:
        """The result on screen, or None."""
        shown = self.controller.current
        return None if shown is None else shown.recon

    def set_model(self, checkpoint: str | None, device: str | None, precision: str | None) -> None:
        """The model clicks track with: the panel's checkpoint, device and precision."""
        self.options = RunOptions(
            checkpoint=str(checkpoint or ""),
            device=str(device or "auto"),
            precision=str(precision or "auto"),
        )

    def set_seeding(self, on: bool) -> str:
        """Make clicks in the scene seed tracks (on) or probe points (off); the status line."""
        self.controller.scene.clicks.set_mode("track" if on else "probe")  # type: ignore[attr-defined]
        if not on:
            return self._say("Clicks in the 3-D scene probe points again.")
        problem = self.cannot_seed()
        if problem is not None:
            return self._say(f"Clicks cannot add tracks: {problem}.")
        return self._say("Click a point in the 3-D scene to track it from its frame.")

    @property
    def seeding(self) -> bool:
        """Whether clicks in the scene seed tracks now (the scene's click mode is "track")."""
        return getattr(self.controller.scene.state(), "click_mode", "probe") == "track"

    def cannot_seed(self) -> str | None:
        """Why a click cannot add a track now (one line), or None."""
        problem = self.model_problem()
        if problem is None and self.recon() is None:
            return "run a clip or open a result first"
        return problem

    def model_problem(self) -> str | None:
        """Why the chosen model cannot track points at all (one line), or None.

        Asked whenever the tab is drawn, so the tab can say it before anyone clicks; the
        answer per checkpoint is kept, since asking loads the checkpoint.
        """
        backend = self.controller.backend
        if backend is None:
            return "no model is loaded (this app only views results)"
        names = backend.checkpoint_names()
        checkpoint = self.options.checkpoint or (names[0] if names else "")
        if checkpoint not in self._track_heads:
            try:
                self._track_heads[checkpoint] = bool(backend.track_available(checkpoint))
            except Page4DError as error:
                return " ".join(str(error).split())
        if not self._track_heads[checkpoint]:
            return f"{checkpoint} has no track head, so it cannot track points"
        return None

    def seed_pixel(self, pixel: Pixel) -> str:
        """Track one pixel of one frame with the session's model (seconds); the status line."""
        problem = self.cannot_seed()
        if problem is not None:
            return self._say(f"Cannot add a track: {problem}.")
        seeds = Seeds(pixel.frame, np.array([[pixel.col, pixel.row]], dtype=np.float32))
        try:
            shown = self.controller.add_tracks(seeds, self.options)
        except Page4DError as error:
            return self._say(f"Cannot add a track: {' '.join(str(error).split())}")
        count = 0 if shown.recon.tracks is None else shown.recon.tracks.num_tracks
        return self._say(
            f"Added a track at pixel (x {pixel.col}, y {pixel.row}) of frame {pixel.frame}; "
            f"{count} tracks now."
        )

    def image_click(self, frame: int, x: float, y: float) -> str:
        """A click at (x, y) on the tab's picture of `frame` (enlarged by `plots.enlarge`)."""
        recon = self.recon()
        if recon is None:
            return self._say("Cannot add a track: run a clip or open a result first.")
        factor = plots.enlargement(recon.image_hw[1], plots.PANEL_IMAGE_WIDTH)
        row, col = pixel_from_image_click(x / factor, y / factor, recon.image_hw)
        frame = int(np.clip(frame, 0, recon.num_frames - 1))
        return self.seed_pixel(Pixel(frame, row, col))

    def scene_clicked(self, origin: np.ndarray, direction: np.ndarray) -> None:
        """A click in the scene while seeding: track the point under it. The tracker runs in
        its own thread (seconds), so Viser's stays free; one click at a time."""
        if self._closed:
            return
        try:
            pixel = self.controller.scene.points.pick_pixel(origin, direction)  # type: ignore[attr-defined]
        except DisplayError as error:
            logger.debug("ignored a scene click: %s", error)
            return
        if pixel is None:
            self._say("No point under that click: click on the points to track one.")
            return
        with self._lock:
            if self._closed:
                return
            if self._worker is not None and self._worker.is_alive():
                busy = True
            else:
                busy = False
                self._worker = threading.Thread(
                    target=self.seed_pixel, args=(pixel,), name="track-seed", daemon=True
                )
                self._worker.start()
        if busy:
            self._say("Still tracking the previous click; click again when it is done.")

    def close(self) -> None:
        """The session ended: ignore scene clicks from now on. A click's tracking already
        running finishes in its own thread (it holds the model lock, so it cannot be cut
        short) and its outcome goes nowhere."""
        with self._lock:
            self._closed = True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a scene click's tracking to finish; False on timeout."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def note(self) -> str:
        """What the result on screen holds of tracks, and whether clicks can add any, as
        Markdown (said before any click, so the tab never invites one it then refuses)."""
        problem = self.model_problem()
        refusal = "" if problem is None else f"**Clicks cannot add tracks:** {problem}. "
        recon = self.recon()
        if recon is None:
            return refusal + "Run a clip or open a result first."
        if recon.tracks is None:
            if problem is not None:
                return refusal + (
                    "This result has no point tracks: pick a checkpoint with a track head "
                    "under *Model* to run with *Track points* or to click pixels here."
                )
            return (
                "This result has no point tracks: run with *Track points* above 0, or click a "
                "pixel below to track it."
            )
        threshold = self.controller.mask_threshold  # the scene's, read once
        moving = int(moving_tracks(recon, threshold).sum())
        count = recon.tracks.num_tracks
        note = refusal + (
            f"**{count} tracks** in this result: {moving} moving, {count - moving} static "
            f"(mask threshold {threshold:g})."
        )
        scores = track_errors(recon)
        if scores is not None:
            note += (
                f" Against the ground truth (dark trails): median error "
                f"{scores['median_px']:.1f} px (no motion: {scores['still_median_px']:.1f} px), "
                f"{scores['within_2px']:.0%} within 2 px, visibility right "
                f"{scores['visibility_accuracy']:.0%}."
            )
        return note

    def picture(self, frame: int) -> np.ndarray | None:
        """The frame, enlarged, with a dot where each drawn track is on it, and a caption
        strip below (the frame; the picture's pixels keep their place for clicks)."""
        recon = self.recon()
        if recon is None:
            return None
        frame = int(np.clip(frame, 0, recon.num_frames - 1))
        label = f"frame {frame}/{recon.num_frames - 1}"
        if recon.tracks is None:
            picture = plots.enlarge(recon.images[frame], plots.PANEL_IMAGE_WIDTH)
            return captioned(picture, f"{label} · no tracks yet")
        moving = moving_tracks(recon, self.controller.mask_threshold)
        settings = self._scene_track_settings()
        chosen = choose_tracks(moving, settings.which, settings.max_count)
        picture = track_picture(recon, frame, chosen, track_colors(moving))
        return captioned(picture, f"{label} · dots: tracks here (warm moving, cool static)")

    def _scene_track_settings(self) -> TrackSettings:
        state = getattr(self.controller.scene.state(), "tracks", None)
        return TrackSettings() if state is None else state.settings

    def _say(self, message: str) -> str:
        with self._lock:
            self.message = message
            self.version += 1
        return message


def track_picture(
    recon: Reconstruction, frame: int, chosen: np.ndarray, colors: np.ndarray
) -> np.ndarray:
    """A frame enlarged for the panel with a dot (black rim) at each chosen track's pixel.

    Args:
        recon: a result with tracks.
        frame: the frame.
        chosen: (K,) track indices to draw; those invisible or off the image are left out.
        colors: (N, 3) uint8 colour of every track.

    Returns:
        (k H, k W, 3) uint8, k = plots.enlargement of the frame's width.
    """
    assert recon.tracks is not None
    height, width = recon.image_hw
    factor = plots.enlargement(width, plots.PANEL_IMAGE_WIDTH)
    picture = np.array(plots.enlarge(recon.images[frame], plots.PANEL_IMAGE_WIDTH), copy=True)
    rows, cols, inside = pixel_of(recon.tracks.xy[frame, chosen], (height, width))
    shown = inside & recon.tracks.visible()[frame, chosen]
    for row, col, track in zip(rows[shown], cols[shown], chosen[shown], strict=True):
        centre_row, centre_col = row * factor + factor // 2, col * factor + factor // 2
        for radius, colour in ((DOT_RADIUS + 1, (0, 0, 0)), (DOT_RADIUS, colors[track])):
            top, left = max(centre_row - radius, 0), max(centre_col - radius, 0)
            picture[top : centre_row + radius + 1, left : centre_col + radius + 1] = colour
    return picture
