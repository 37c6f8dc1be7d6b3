"""Panel pictures drawn once per result and shared by every session and page showing it.

The per-frame plots (`plots.figure_picture`) and the pose comparison's figures depend only on
the result (and on the mask threshold, or on the compared run B), yet each browser tab and
each page reload drew them again: most of a tab's CPU when several tabs show one result.
Results are shared between sessions (the app's ResultCache hands out one Reconstruction per
result), so the pictures are kept beside the result object: by its identity, for as long as it
lives, a few per result (least recently used go first).

Only finished, immutable values are kept (`PlotPicture` with a read-only image, strings,
tuples); never a matplotlib Figure, which Gradio draws and closes. Callers must not write into
what they get. Gradio-free, so tests drive it directly.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer import plots
from page4d_viewer.viewer.comparison import SecondRun, pose_views

if TYPE_CHECKING:
    from matplotlib.figure import Figure

T = TypeVar("T")

PICTURES_PER_RESULT = 32
"""Pictures kept per result: the threshold slider's 21 steps, the disagreement curve and a
few pose comparisons (one per compared run B)."""


class _Drawing:
    """One picture: drawn by the first caller, waited for by callers asking meanwhile."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None
        self.part_of: weakref.ref[Any] | None = None  # the other object the key names by id


@dataclass
class _ResultPictures:
    """The pictures of one result, most recently used last."""

    result: weakref.ref[Reconstruction]
    drawings: OrderedDict[Hashable, _Drawing]


class PictureCache:
    """Pictures drawn from results, keyed by the result object and the other inputs.

    Thread-safe: Gradio runs events in threads. Callers asking for a picture being drawn wait
    for it instead of drawing it again; a drawing that fails lets the next caller draw.

    Args:
        per_result: pictures kept per result; the least recently used go first.
    """

    def __init__(self, per_result: int = PICTURES_PER_RESULT) -> None:
        self.per_result = per_result
        self._lock = threading.Lock()
        self._results: dict[int, _ResultPictures] = {}

    def get(
        self, recon: Reconstruction, key: Hashable, draw: Callable[[], T], part_of: object = None
    ) -> T:
        """The picture `key` of `recon`, drawn with `draw()` unless already drawn.

        Args:
            recon: the result the picture shows (kept by identity, never by value).
            key: the picture's other inputs (name, threshold, ...); hashable.
            draw: makes the picture; its value must not be changed afterwards.
            part_of: another object the key names by `id` (a compared run), or None: the
                picture is drawn again when that id now belongs to another object.
        """
        drawing = self._drawing(recon, key, part_of)
        with drawing.lock:
            if not drawing.done:
                drawing.value = draw()
                drawing.done = True
            return drawing.value

    def count(self, recon: Reconstruction) -> int:
        """How many pictures of `recon` are kept."""
        with self._lock:
            pictures = self._results.get(id(recon))
            return 0 if pictures is None else len(pictures.drawings)

    def results(self) -> int:
        """How many results have pictures kept."""
        return len(self._results)

    def _drawing(self, recon: Reconstruction, key: Hashable, part_of: object) -> _Drawing:
        with self._lock:
            pictures = self._results.get(id(recon))
            if pictures is None or pictures.result() is not recon:
                pictures = _ResultPictures(weakref.ref(recon), OrderedDict())
                self._results[id(recon)] = pictures
                # dict.pop is atomic, so the finalizer takes no lock: it may run inside a
                # garbage collection started while this thread holds it.
                weakref.finalize(recon, self._results.pop, id(recon), None)
            drawing = pictures.drawings.get(key)
            stale = (
                drawing is not None
                and part_of is not None
                and (drawing.part_of is None or drawing.part_of() is not part_of)
            )
            if drawing is None or stale:
                drawing = _Drawing()
                drawing.part_of = None if part_of is None else weakref.ref(part_of)
                pictures.drawings[key] = drawing
                while len(pictures.drawings) > self.per_result:
                    pictures.drawings.popitem(last=False)
            pictures.drawings.move_to_end(key)
            return drawing


SHARED = PictureCache()
"""The app's pictures, shared by every session (tests may use their own)."""


def read_only(picture: plots.PlotPicture) -> plots.PlotPicture:
    """The picture with its pixels made read-only: it is shared, so nobody may draw on it."""
    picture.image.flags.writeable = False
    return picture


def disagreement_picture(
    recon: Reconstruction, cache: PictureCache | None = None
) -> plots.PlotPicture:
    """`plots.disagreement_figure` of the result drawn to pixels, once per result."""

    def draw() -> plots.PlotPicture:
        figure = plots.disagreement_figure(recon)
        return read_only(plots.figure_picture(figure, recon.num_frames))

    return (SHARED if cache is None else cache).get(recon, ("disagreement",), draw)


def mask_share_picture(
    recon: Reconstruction, threshold: float, cache: PictureCache | None = None
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
    cache: PictureCache | None = None,
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

    key = ("poses", None if second is None else id(second), encoding)
    return (SHARED if cache is None else cache).get(recon, key, draw, part_of=second)
