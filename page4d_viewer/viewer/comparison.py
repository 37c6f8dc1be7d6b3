"""Two runs side by side: a second result ("B") laid over the one on screen ("A").

Both results are in their own first camera's frame, at their own scale. B's cameras are
moved into A's world by the Sim(3) that best fits B's masked camera centres to A's (as ground
truth is aligned for display, `Reconstruction.aligned_cameras`); B's unmasked cameras move with
the same transform, so B's masked-vs-unmasked offset is kept. B's ground truth is not drawn:
it is the same clip's ground truth, already shown with A.

`Comparer` holds the comparison next to the `ViewerController` (whose shown result is A) and
sends B's cameras to the scene's `ComparisonLayer`; the panel's pose plots and metrics table
are `pose_views` of A and `Comparer.compared_with` (drawn once per result by `plot_cache`).
Gradio-free, so tests drive it directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.cameras import MASKED, UNMASKED, Cameras
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.scene.display import COMPARISON_PREFIX, VARIANT_LABELS
from page4d_viewer.viewer.titles import source_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from matplotlib.figure import Figure

    from page4d_viewer.viewer.controller import Shown, ViewerController

FIRST_PREFIX = "A: "
COMPARED_VARIANTS = (MASKED, UNMASKED)
"""The second run's variants drawn over the first's (ground truth is the clip's, shown once)."""


class ComparisonError(Page4DError):
    """Two results that cannot be compared (other clip, other frames), or nothing to compare."""


class ComparisonTarget(Protocol):
    """What `Comparer` needs of the scene's comparison layer
    (`page4d_viewer.viewer.scene.comparison.ComparisonLayer`)."""

    def compare(self, title: str, cameras: Mapping[str, Cameras]) -> None: ...

    def set_visible(self, visible: bool) -> None: ...

    def clear(self) -> None: ...


class ComparisonScene(Protocol):
    """What `Comparer` needs of `page4d_viewer.viewer.scene.SceneView`: its comparison layer."""

    @property
    def comparison(self) -> ComparisonTarget: ...


@dataclass(frozen=True)
class SecondRun:
    """The run compared with the shown one.

    Attributes:
        recon: B, as loaded.
        title: One line naming B (file or run, checkpoint, mask strength).
        similarity: Takes B's world (its first camera's frame) into A's.
        cameras: B's masked/unmasked cameras moved into A's world.
        base_version: `ViewerController.version` of the A it was aligned to.
    """

    recon: Reconstruction
    title: str
    similarity: geometry.Similarity
    cameras: dict[str, Cameras]
    base_version: int


@dataclass(frozen=True)
class PoseViews:
    """The panel's pose comparison: the two figures and the metrics table's rows."""

    trajectory: Figure
    differences: Figure
    metrics: list[list[str]]


def check_comparable(first: Reconstruction, second: Reconstruction) -> None:
    """Refuse two results that are not the same frames of the same clip.

    Raises:
        ComparisonError: different frame counts, sources or frame indices (one line).
    """
    if first.num_frames != second.num_frames:
        raise ComparisonError(
            f"cannot compare a {second.num_frames}-frame result with the shown "
            f"{first.num_frames}-frame one: both must be the same frames of the same clip"
        )
    source_a, source_b = first.metadata.source, second.metadata.source
    # Names, not paths: two batches keep copies of one clip in different folders.
    if source_name(source_a) != source_name(source_b):
        raise ComparisonError(
            f"cannot compare results of different clips: {source_name(source_b) or '?'} "
            f"and the shown {source_name(source_a) or '?'}"
        )
    indices_a, indices_b = first.metadata.frame_indices, second.metadata.frame_indices
    if indices_a and indices_b and list(indices_a) != list(indices_b):
        raise ComparisonError(
            "cannot compare results of different frames of the clip (other sampling)"
        )


def fit_second_world(first: Reconstruction, second: Reconstruction) -> geometry.Similarity:
    """The Sim(3) taking B's masked camera centres onto A's (a shift with < 3 frames)."""
    moving = second.camera_variant(MASKED).centers
    target = first.camera_variant(MASKED).centers
    usable = np.isfinite(moving).all(axis=1) & np.isfinite(target).all(axis=1)
    if usable.sum() < 3:
        offset = np.zeros(3)
        if usable.any():
            offset = target[usable].mean(axis=0) - moving[usable].mean(axis=0)
        return geometry.Similarity(1.0, np.eye(3), offset)
    return geometry.similarity_align(moving[usable], target[usable])


def align_second_run(
    first: Reconstruction, second: Reconstruction
) -> tuple[geometry.Similarity, dict[str, Cameras]]:
    """B's masked/unmasked cameras in A's world, and the transform that put them there.

    Raises:
        ComparisonError: the two results are not comparable (`check_comparable`).
    """
    check_comparable(first, second)
    similarity = fit_second_world(first, second)
    cameras = {
        name: second.cameras[name].transformed(similarity)
        for name in COMPARED_VARIANTS
        if name in second.cameras
    }
    return similarity, cameras


def pose_views(first: Reconstruction, second: SecondRun | None) -> PoseViews:
    """The trajectory and per-frame-difference figures and the metrics rows, of A alone or of
    A and B (B's plot lines in A's world, B's rows prefixed "B: ", plus B against A)."""
    comparison = plots.compare_poses(first)
    if second is None:
        return PoseViews(
            plots.trajectory_figure(comparison),
            plots.differences_figure(comparison),
            plots.metrics_rows(first),
        )
    own = plots.compare_poses(second.recon)
    moved = {name: second.similarity.apply(c) for name, c in own.centres.items()}
    second_poses = plots.PoseComparison(
        {name: moved[name] for name in COMPARED_VARIANTS if name in moved},
        own.rotation_deg,
        own.translation,
        own.frames,
    )
    rows = plots.metrics_rows(first, FIRST_PREFIX) + plots.metrics_rows(
        second.recon, COMPARISON_PREFIX
    )
    for name in COMPARED_VARIANTS:
        if name in first.cameras and name in second.recon.cameras:
            variant = VARIANT_LABELS[name]
            label = f"{COMPARISON_PREFIX}{variant} vs {FIRST_PREFIX}{variant}"
            rows.append(plots.metrics_row(label, second.recon, name, first, name))
    return PoseViews(
        plots.trajectory_figure(comparison, second_poses),
        plots.differences_figure(comparison, second_poses),
        rows,
    )


class Comparer:
    """The comparison shown with the controller's result, and the actions that change it.

    Args:
        controller: Holds A, the result on screen, and opens files, runs and index rows.
        scene: Where B's cameras are drawn.
    """

    def __init__(self, controller: ViewerController, scene: ComparisonScene) -> None:
        self.controller = controller
        self.scene = scene
        self._second: SecondRun | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> SecondRun | None:
        """B, or None; a comparison made against an earlier A is gone (its nodes too)."""
        second = self._second
        if second is None or second.base_version != self.controller.version:
            return None
        return second

    def compare_with_file(self, path: str | Path) -> SecondRun:
        """Lay a saved result file (.npz) over the shown result.

        Raises:
            ResultFileError: not a readable result file.
            ComparisonError: nothing shown, or not the same frames of the same clip.
        """
        recon = Reconstruction.load(Path(path))
        return self.compare(recon, f"{Path(path).name}: {_describe(recon)}")

    def compare_with_run(self, run_id: str) -> SecondRun:
        """Lay a saved run of the runs folder over the shown result.

        Raises:
            RunNotFoundError, ResultFileError, ComparisonError.
        """
        record = self.controller.store.get(run_id)
        recon = Reconstruction.load(record.result_path)
        return self.compare(recon, f"{record.title}: {_describe(recon)}")

    def compare(self, recon: Reconstruction, title: str) -> SecondRun:
        """Lay B over the shown result: align it, draw its cameras, remember it.

        Raises:
            ComparisonError: nothing shown, or not the same frames of the same clip; the
                scene and any earlier comparison are left as they were.
        """
        with self._lock:
            shown = self.controller.current
            if shown is None:
                raise ComparisonError("open or run a result first, then compare another with it")
            similarity, cameras = align_second_run(shown.recon, recon)
            self.scene.comparison.compare(title, cameras)
            self._second = SecondRun(recon, title, similarity, cameras, shown.version)
            return self._second

    def set_visible(self, visible: bool) -> None:
        """Show or hide B's cameras in the scene (the plots keep B)."""
        self.scene.comparison.set_visible(visible)

    def clear(self) -> None:
        """Remove B from the scene, the plots and the table."""
        with self._lock:
            self._second = None
            self.scene.comparison.clear()

    def close(self) -> None:
        """Let go of B (a whole second result) when the session ends; its scene goes with
        the session, so nothing is sent to it."""
        with self._lock:
            self._second = None

    def compared_with(self, shown: Shown) -> SecondRun | None:
        """B when it was aligned onto this shown result, else None."""
        second = self.current
        if second is not None and second.base_version != shown.version:
            return None
        return second

    def describe(self) -> str:
        """One line for the panel: what is compared, or how to compare."""
        second = self.current
        if second is None:
            return "No comparison: pick a second result of the same clip and press **Compare**."
        return f"**B** (lighter, dashed): {second.title}"


def _describe(recon: Reconstruction) -> str:
    metadata = recon.metadata
    strength = f" · α {metadata.mask_strength:g}" if recon.has_mask else ""
    return f"{metadata.checkpoint_name or 'checkpoint ?'}{strength} · {recon.num_frames} frames"
