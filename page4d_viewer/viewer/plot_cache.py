"""Panel pictures drawn once per result and shared by every session and page showing it.

The per-frame plots (`plots.figure_picture`) and the pose comparison's figures depend only on
the result (and on the mask threshold, or on the compared run B), yet each browser tab and
each page reload drew them again: most of a tab's CPU when several tabs show one result.
Results are shared between sessions (the app's ResultCache hands out one Reconstruction per
result), so the pictures are kept the way the scenes keep their shared work: in a `SharedWork`
(`scene/shared.py`: by the result object's identity, for as long as it lives, one drawer while
the others wait, least recently used first out within a byte budget).

Only finished, immutable values are kept (`PlotPicture` with a read-only image, strings,
tuples); never a matplotlib Figure, which Gradio draws and closes. Callers must not write into
what they get. Gradio-free, so tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.comparison import SecondRun, pose_views
from page4d_viewer.viewer.scene.shared import SharedWork

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHARED = SharedWork(budget_bytes=64 * 1024 * 1024)
"""The app's pictures, shared by every session (tests may use their own). A default result's
pictures take about 2 MB."""


def read_only(picture: plots.PlotPicture) -> plots.PlotPicture:
    """The picture with its pixels made read-only: it is shared, so nobody may draw on it."""
    picture.image.flags.writeable = False
    return picture


def disagreement_picture(
    recon: Reconstruction, cache: SharedWork | None = None
) -> plots.PlotPicture:
    """`plots.disagreement_figure` of the result drawn to pixels, once per result."""

    def draw() -> plots.PlotPicture:
        figure = plots.disagreement_figure(recon)
        return read_only(plots.figure_picture(figure, recon.num_frames))

    return (SHARED if cache is None else cache).get(recon, ("disagreement",), draw)


def mask_share_picture(
    recon: Reconstruction, threshold: float, cache: SharedWork | None = None
) -> plots.PlotPicture:
    """`plots.mask_share_figure` of the result at a threshold drawn to pixels, once per
    result and threshold."""

    def draw() -> plots.PlotPicture:
        figure = plots.mask_share_figure(recon, threshold)
        return read_only(plots.figure_picture(figure, recon.num_frames))

    return (SHARED if cache is None else cache).get(recon, ("mask share", float(threshold)), draw)


@dataclass(frozen=True)
class PosePictures:
    """The pose comparison tab's pictures of one result (and of B when compared).

    Attributes:
        trajectory: the trajectories from above, as `encode` made it from the figure (the
            tab's Gradio plot's own data, so the figure is drawn once).
        differences: the per-frame differences drawn to pixels (read-only).
        metrics: the metrics table's rows (`plots.METRICS_HEADERS`).
    """

    trajectory: object
    differences: plots.PlotPicture
    metrics: tuple[tuple[str, ...], ...]

    def metrics_rows(self) -> list[list[str]]:
        """The metrics rows as new lists (the table may keep what it is given)."""
        return [list(row) for row in self.metrics]


def pose_pictures(
    recon: Reconstruction,
    second: SecondRun | None,
    encode: Callable[[Figure], object],
    encoding: Hashable,
    cache: SharedWork | None = None,
) -> PosePictures:
    """`comparison.pose_views` of the result (with B when compared) drawn once per result,
    B and encoding.

    Args:
        recon: A, the shown result.
        second: B aligned onto this A, or None.
        encode: turns the trajectory figure into what the plot shows (it may close it).
        encoding: names `encode` in the key (e.g. the plot's picture format).
        cache: where the pictures are kept (None: `SHARED`).
    """

    def draw() -> PosePictures:
        views = pose_views(recon, second)
        differences = read_only(plots.figure_picture(views.differences, recon.num_frames))
        metrics = tuple(tuple(row) for row in views.metrics)
        return PosePictures(encode(views.trajectory), differences, metrics)

    # B is aligned onto this A (the comparer drops it when A changes), so B's pictures belong
    # to B: they go with it, and a later B is never mistaken for it.
    owner = recon if second is None else second
    return (SHARED if cache is None else cache).get(owner, ("poses", encoding), draw)
