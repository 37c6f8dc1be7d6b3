"""What the panel's buttons do, without Gradio: the shared state of the viewer and its actions.

`ViewerController` holds one browser session's state: the result on screen, its scene (one
Viser server per session, see `sessions.py`), timeline and overlay settings. What sessions share
is handed in: the model backend with its lock (one model run at a time), the runs store and the
path policy. `panel.py` lays out the Gradio page and turns each widget event into one call
here; keeping Gradio out of this module lets the tests drive every action directly.

The controller never imports the network: `app.py` hands in a `ModelBackend` built from the
predictor, so `page4d-viewer view result.npz` works with no model at all.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.run_contract import ModelBackend, Progress, RunCancelled, RunOptions
from page4d_viewer.settings import DEFAULT_MASK_OVERLAY, DEFAULT_SAMPLE, MaskOverlay
from page4d_viewer.sources.images import IMAGE_EXTENSIONS
from page4d_viewer.viewer import downloads, intake, plots
from page4d_viewer.viewer.model_runs import (
    MODEL_SHARE,
    STARTUP_OWNER,
    CancelFlags,
    run_and_save,
    run_title,
)
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.result_cache import ResultCache
from page4d_viewer.viewer.runs import RunNotFoundError, RunRecord, RunStore

if TYPE_CHECKING:
    from page4d_viewer.result.tracks import Seeds
    from page4d_viewer.sources.clip import SourceLike
    from page4d_viewer.viewer.scene import SceneState

logger = logging.getLogger(__name__)

SOURCE_EXAMPLE, SOURCE_UPLOAD, SOURCE_PATH = "example", "upload", "path"


class NoModelError(Page4DError):
    """The app was started without a model (`page4d-viewer view`)."""


class SceneOutput(Protocol):
    """Where the controller sends what it shows: its own scene, or both sides of the split
    view (`server.split_view.SplitView`) while that is on."""

    def show(self, recon: Reconstruction) -> None: ...

    def set_loading(self, message: str) -> None:
        """A new result was chosen: take the shown one down and say `message` is loading
        until `show` has drawn the new one's first frame."""
        ...

    def stop_loading(self) -> None:
        """What was loading failed to come (the scene stays as it is, the notice goes)."""
        ...

    def set_frame(self, frame: int) -> None: ...

    def update_tracks(self, recon: Reconstruction) -> None: ...


class SceneLike(SceneOutput, Protocol):
    """The part of `page4d_viewer.viewer.scene.SceneView` the panel drives."""

    @property
    def num_frames(self) -> int: ...

    @property
    def frame(self) -> int: ...

    def show(self, recon: Reconstruction, progress: Progress | None = None) -> None: ...

    def set_mask_overlay(
        self, opacity: float, threshold: float, overlay: str | None = None
    ) -> None: ...

    def state(self) -> SceneState: ...


@dataclass(frozen=True)
class SceneSettings:
    """What the scene's own controls (in the Viser sidebar) may have changed.

    Attributes:
        frame: The timeline's current frame.
        mask_opacity: Overlay opacity in [0, 1].
        mask_threshold: Dynamic-probability threshold in [0, 1], as the scene applies it.
        mask_overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS).
    """

    frame: int
    mask_opacity: float
    mask_threshold: float
    mask_overlay: MaskOverlay = DEFAULT_MASK_OVERLAY

    @classmethod
    def of(cls, state: SceneState) -> SceneSettings:
        """The settings part of a scene's state snapshot."""
        return cls(
            int(state.frame), float(state.mask.opacity), float(state.mask.threshold),
            state.mask.overlay,
        )  # fmt: skip


@dataclass(frozen=True)
class Shown:
    """The result on screen.

    Attributes:
        recon: The Reconstruction.
        title: One line naming it (source, frames, size).
        version: Increases with every result shown; browser tabs compare it to refresh.
        record: Its saved run, or None for a result opened from a file.
        result_file: The .npz it was saved to or opened from.
        exports_dir: Where its downloads are written.
        notes: One-line remarks for the status line (e.g. skipped files).
    """

    recon: Reconstruction
    title: str
    version: int
    record: RunRecord | None
    result_file: Path
    exports_dir: Path
    notes: tuple[str, ...] = ()


class ViewerController:
    """One session's result, scene and settings, and the actions the panel's buttons take.

    Args:
        scene: The session's Viser scene.
        store: Where finished runs are saved (shared).
        data_roots: Folders a typed server path may point into.
        backend: The model side, or None when the app only views saved results.
        samples: Bundled example clips, label -> path.
        model_lock: Held while the model runs; shared by all sessions (one run at a time).
        owner: The session recorded with each run it saves ("" for none).
        shared_runs: Whether the recent-runs list shows every run, or only this owner's (and
            the app's start-up run).
        results: Decoded result files, shared by the app's sessions (default: this
            controller's own).
    """

    def __init__(
        self,
        scene: SceneLike,
        store: RunStore,
        data_roots: DataRoots,
        backend: ModelBackend | None = None,
        samples: Mapping[str, Path] | None = None,
        *,
        model_lock: threading.Lock | None = None,
        owner: str = "",
        shared_runs: bool = True,
        results: ResultCache | None = None,
    ) -> None:
        self.scene = scene
        self.store = store
        self.data_roots = data_roots
        self.backend = backend
        self.samples = dict(samples or {})
        self._current: Shown | None = None
        self._version = 0
        self._state_lock = threading.Lock()
        # One model run at a time, even when Gradio's queue lets a cancelled run's thread
        # finish in the background while the next job starts.
        self._model_lock = model_lock if model_lock is not None else threading.Lock()
        self.owner = owner
        self.shared_runs = shared_runs
        self._scene_lock = threading.Lock()
        # Where results go: the scene, or the split view's two sides (`show_on`). Reads and
        # settings always use `scene`: the split view copies its settings to the other side.
        self._output: SceneOutput = scene
        self._sessions = CancelFlags()
        # Reopening a file skips decoding it again (in any session, when the app shares it).
        self.results = results if results is not None else ResultCache()
        self._temp_root = Path(tempfile.mkdtemp(prefix="page4d-viewer-"))

    # ------------------------------------------------------------------------------ state

    @property
    def current(self) -> Shown | None:
        """The result on screen, or None before the first one."""
        return self._current

    @property
    def version(self) -> int:
        """0 before anything is shown; increases with every result shown."""
        return self._version

    @property
    def can_run(self) -> bool:
        """Whether a model is available (False in `view` mode)."""
        return self.backend is not None

    def close(self) -> None:
        """Remove the temporary export folders."""
        shutil.rmtree(self._temp_root, ignore_errors=True)

    # ---------------------------------------------------------------------------- sources

    def resolve_source(
        self,
        kind: str,
        example: str | None,
        uploads: Sequence[str] | str | None,
        server_path: str | None,
    ) -> SourceLike:
        """The clip source chosen in the panel.

        Args:
            kind: Which input tab is selected: "example", "upload" or "path".
            example: Label of a bundled example.
            uploads: Uploaded file paths (Gradio's cache): one video, image or zip, or
                several images.
            server_path: A path typed by the user, checked against the data roots.

        Raises:
            Page4DError: nothing chosen, an unknown example, a path outside the data roots,
                or a result file given as a clip.
        """
        if kind == SOURCE_EXAMPLE:
            if not example:
                raise Page4DError("pick an example clip first")
            if example not in self.samples:
                raise Page4DError(f"unknown example {example!r}")
            return str(self.samples[example])
        if kind == SOURCE_UPLOAD:
            files = [uploads] if isinstance(uploads, str) else list(uploads or [])
            if not files:
                raise Page4DError("upload a video, some images or a zip first")
            _refuse_result_files(files)
            intake.check_upload_sizes(files)
            if len(files) == 1:
                return files[0]
            _refuse_mixed_uploads(files)
            return files
        if kind == SOURCE_PATH:
            path = self.data_roots.resolve(server_path or "")
            _refuse_result_files([str(path)])
            intake.check_typed_source(path, self.data_roots)
            return str(path)
        raise Page4DError(f"unknown source kind {kind!r}")

    # --------------------------------------------------------------------------------- run

    def run(
        self,
        source: SourceLike,
        options: RunOptions,
        progress: Progress,
        session: str = "",
    ) -> Shown:
        """Run the model, save the run, and show it.

        Args:
            source: A clip source from `resolve_source`.
            options: The panel's settings.
            progress: progress(fraction, message) for the whole job.
            session: The browser session, so its Cancel button stops this run only.

        Raises:
            NoModelError: no model in this app.
            RunCancelled: the session pressed Cancel before the result was shown.
            Page4DError: bad input, an unreadable checkpoint, out of memory.
        """
        if self.backend is None:
            raise NoModelError("no model is loaded: this app only views results (start `app`)")
        cancel = self._sessions.start(session)
        try:
            recon, record = run_and_save(
                self.backend, self._model_lock, self.store, source, options, progress,
                cancel=cancel, owner=self.owner,
                roots=intake.run_roots(source, self.data_roots),
            )  # fmt: skip
        except RunCancelled:
            logger.info("run on %s cancelled", source)
            raise
        finally:
            self._sessions.finish(session, cancel)
        with self._loading(record.title):
            return self._show(
                recon, record.title, record, record.result_path, record.exports_dir, progress
            )

    def add_tracks(self, seeds: Seeds, options: RunOptions) -> Shown:
        """Track `seeds` on the result on screen with the session's model (`options`: the
        checkpoint, device and precision chosen under Model); the scene draws the new tracks.

        The result is saved again with them (`downloads.keep_tracks`): over the run's own
        file, or as the download copy of a result opened from a file.

        Raises:
            NoModelError: no model in this app.
            Page4DError: nothing shown, no track head, a result of another checkpoint, a
                pixel outside the result, or another result shown meanwhile.
        """
        if self.backend is None:
            raise NoModelError("no model is loaded: this app only views results (start `app`)")
        shown = self._current
        if shown is None:
            raise Page4DError("run a clip or open a result first")
        with self._model_lock:
            recon = self.backend.add_tracks(shown.recon, seeds, options)
        with self._scene_lock:  # with the state, so a result shown meanwhile gets no tracks
            with self._state_lock:
                if self._current is not shown:
                    raise Page4DError("another result was shown meanwhile; click again on it")
                # Saved under the locks (seconds for a long clip), so two clicks' saves
                # cannot overtake each other.
                run_file = None if shown.record is None else shown.record.result_path
                saved = downloads.keep_tracks(recon, run_file, shown.exports_dir)
                shown = dataclasses.replace(shown, recon=recon, result_file=saved)
                self._current = shown
            self._output.update_tracks(recon)
        return shown

    def cancel(self, session: str = "") -> bool:
        """Ask the session's running job to stop at its next progress report."""
        return self._sessions.cancel(session)

    # -------------------------------------------------------------------------- open saved

    def open_result(self, path: str | Path) -> Shown:
        """Show a saved result file (.npz), e.g. an upload or `page4d-viewer view FILE`.

        Raises:
            ResultFileError: not a readable result file.
        """
        path = Path(path)
        if path.is_file():
            intake.check_upload_sizes([path])
        with self._loading(path.name):
            recon = self.results.load(path)
            exports_dir = Path(tempfile.mkdtemp(prefix="result-", dir=self._temp_root))
            title = f"{path.name}: {run_title(recon)}"
            return self._show(recon, title, None, path, exports_dir, None)

    def open_run(self, run_id: str) -> Shown:
        """Show a saved run from the runs folder.

        Raises:
            RunNotFoundError: no such run.
            ResultFileError: its result file is damaged.
        """
        record = self.store.get(run_id)
        if not self._may_see(record):
            raise RunNotFoundError(f"no saved run {run_id!r} in this session")
        with self._loading(record.title):
            recon = self.results.load(record.result_path)
            return self._show(recon, record.title, record, record.result_path, record.exports_dir)

    def recent_runs(self, query: str | None = None) -> list[RunRecord]:
        """Saved runs this session may see, newest first (all of them with shared runs); with
        `query`, those matching every word of it."""
        return [record for record in self.store.list(query=query) if self._may_see(record)]

    def _may_see(self, record: RunRecord) -> bool:
        # Runs saved before sessions were recorded have no owner: shown with shared runs only.
        return self.shared_runs or record.details.owner in (self.owner, STARTUP_OWNER)

    # ---------------------------------------------------------------------------- scene

    def set_frame(self, frame: int) -> int:
        """Move the scene's timeline; returns the frame actually shown (clamped)."""
        shown = self._current
        if shown is None:
            return 0
        frame = max(0, min(int(frame), shown.recon.num_frames - 1))
        with self._scene_lock:
            self._output.set_frame(frame)
        return frame

    def show_on(self, output: SceneOutput | None) -> None:
        """Send every result from now on to `output` (None: back to the controller's own
        scene), and show the result on screen there at once, at its frame."""
        with self._scene_lock:
            self._output = self.scene if output is None else output
            shown = self._current
            if shown is not None:
                frame = self.scene.frame
                self._output.show(shown.recon)
                self._output.set_frame(frame)

    def scene_settings(self) -> SceneSettings:
        """The scene's frame and overlay settings, read from the scene, which holds them.

        The scene is their one home: its own controls (the Viser sidebar) move them as well
        as the panel, so every reader (the panel's poll, the frame pictures, the downloads,
        the tabs) asks here instead of keeping a copy that could fall behind.
        """
        return SceneSettings.of(self.scene.state())

    @property
    def mask_opacity(self) -> float:
        """The scene's mask overlay opacity in [0, 1] (`scene_settings`)."""
        return self.scene_settings().mask_opacity

    @property
    def mask_threshold(self) -> float:
        """The scene's dynamic-probability threshold in [0, 1], as it applies it
        (`scene_settings`)."""
        return self.scene_settings().mask_threshold

    @property
    def mask_overlay(self) -> MaskOverlay:
        """How the scene draws the mask: "continuous" or "threshold" (`scene_settings`)."""
        return self.scene_settings().mask_overlay

    def set_mask_overlay(
        self, opacity: float, threshold: float, overlay: str | None = None
    ) -> None:
        """Set the mask overlay's opacity and threshold (both in [0, 1]) in the scene, and
        how it draws the mask (settings.MASK_OVERLAYS; None keeps it).

        Raises:
            Page4DError: a value outside [0, 1], or an unknown overlay.
        """
        with self._scene_lock:
            if overlay is None:
                self.scene.set_mask_overlay(float(opacity), float(threshold))
            else:
                self.scene.set_mask_overlay(float(opacity), float(threshold), str(overlay))

    def frame_images(self, frame: int) -> plots.FrameImages | None:
        """The overlay, depth and confidence pictures of a frame of the shown result."""
        shown = self._current
        if shown is None:
            return None
        settings = self.scene_settings()
        return plots.frame_images(
            shown.recon, frame, settings.mask_opacity, settings.mask_threshold,
            min_width=plots.PANEL_IMAGE_WIDTH, overlay=settings.mask_overlay, captions=True,
        )  # fmt: skip

    # ---------------------------------------------------------------------------- exports

    def exports(self) -> list[Path]:
        """Write the downloads of the shown result (once) and list them
        (`viewer/downloads.py`): the result file, GLB, PLYs, TUM, mask mp4, tracks CSV.

        Raises:
            Page4DError: nothing shown yet.
        """
        shown = self._current
        if shown is None:
            raise Page4DError("nothing to download yet: run a clip or open a result")
        result = shown.result_file
        if shown.record is None:
            # An opened file may live anywhere; the copy sits where downloads are served from.
            result = downloads.download_copy(shown.result_file, shown.exports_dir)
        state = self.scene.state()
        settings = SceneSettings.of(state)
        return downloads.write_downloads(
            shown.recon,
            result,
            shown.exports_dir,
            float(state.points.confidence_percentile),
            settings.mask_opacity,
            settings.mask_threshold,
            settings.mask_overlay,
        )

    # ---------------------------------------------------------------------------- private

    @contextmanager
    def _loading(self, title: str) -> Iterator[None]:
        """The scene says `title` is loading from now until the new result's first frame is
        drawn, so the old result never sits under the new status; when loading fails, the
        result on screen before is shown again (the status line says it stays)."""
        with self._scene_lock:
            self._output.set_loading(f"loading {title}")
        try:
            yield
        except BaseException:
            self._show_again()
            raise

    def _show_again(self) -> None:
        """Put the result on screen back after a load that failed (none: the notice goes)."""
        with self._scene_lock:
            shown = self._current
            if shown is None:
                self._output.stop_loading()
            else:
                self._output.show(shown.recon)

    def _show(
        self,
        recon: Reconstruction,
        title: str,
        record: RunRecord | None,
        result_file: Path,
        exports_dir: Path,
        progress: Progress | None = None,
    ) -> Shown:
        if progress is not None:
            progress(MODEL_SHARE + 0.05, "sending to the scene")
        # The scene sends the first frame before returning and streams the rest from its own
        # thread; that thread outlives this call, so it gets no progress callback.
        with self._scene_lock:
            self._output.show(recon)
        with self._state_lock:
            self._version += 1
            notes = tuple(recon.metadata.clip_notes)
            shown = Shown(recon, title, self._version, record, result_file, exports_dir, notes)
            self._current = shown
        if progress is not None:
            progress(1.0, "done")
        return shown


def _refuse_mixed_uploads(paths: Sequence[str]) -> None:
    """Several uploads make an image sequence; a video or zip among them is a mistake."""
    others = [
        Path(path).name for path in paths if Path(path).suffix.lower() not in IMAGE_EXTENSIONS
    ]
    if others:
        raise Page4DError(
            f"{len(paths)} files are uploaded ({', '.join(others)} among them): upload one "
            "video or zip, or only images; clear the upload with its x button"
        )


def _refuse_result_files(paths: Sequence[str]) -> None:
    for path in paths:
        if str(path).lower().endswith(".npz"):
            raise Page4DError(
                f"{Path(path).name} is a saved result, not a clip: open it with 'Open a result'"
            )


def find_samples(samples_dir: Path | None = None) -> dict[str, Path]:
    """Bundled example clips: `<samples_dir>/<name>/clip.mp4`, keyed by folder name.

    :data:`DEFAULT_SAMPLE` comes first, then the rest by name: the app runs the first one at
    start and the panel's example list opens on it, so the two agree.

    Args:
        samples_dir: Where to look; default: the shipped samples (`settings.samples_dir()`).
    """
    samples_dir = settings.samples_dir() if samples_dir is None else samples_dir
    if not samples_dir.is_dir():
        return {}
    clips = sorted(
        samples_dir.glob("*/clip.mp4"), key=lambda c: (c.parent.name != DEFAULT_SAMPLE, c)
    )
    return {clip.parent.name: clip for clip in clips}
