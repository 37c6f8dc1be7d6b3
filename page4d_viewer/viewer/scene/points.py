"""The points layer: each frame's point cloud, its Points controls, the point colouring and
the probe marker.

Each frame's points are sent ONCE, as node `/frames/t{i:04d}/points`, split into children
`.../m{b:02d}c{c}`, one per cell of (bin of dynamic probability, display.MASK_BINS bins; bin of
the clip's confidence, result.points.CONFIDENCE_BINS quantile bins). Then the timeline, the
display mode, the confidence percentile and the mask threshold in split mode only toggle
`.visible` of frame nodes and cells; the mask overlay re-sends colours only, and only for the
frames on screen; the point size is a node property. The point source and the stride change
positions: each (source, stride) is a `PointSet`, kept in the browser, hidden, while all sets
fit in the point budget, so switching back only toggles visibility.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer.result import points
from page4d_viewer.result.points import (
    CONFIDENCE_BINS,
    confidence_bins,
    frame_points,
    source_confidence,
)
from page4d_viewer.settings import DEFAULT_CONF_PERCENTILE
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.colouring import PointColouring, ProbeMarker
from page4d_viewer.viewer.scene.display import DisplayError, DisplayMode, PointSource
from page4d_viewer.viewer.scene.layer import FrameView, SceneHost, SceneLayer
from page4d_viewer.viewer.scene.nodes import (
    FrameNodes,
    PointBin,
    PreparedResult,
    auto_point_size,
    prepare_clip,
    source_variant,
)
from page4d_viewer.viewer.scene.picking import Pixel, pick_pixel
from page4d_viewer.viewer.scene.settings import DEFAULT_POINT_SIZE, MAX_DOWNSAMPLE, PointSettings
from page4d_viewer.viewer.scene.shared import SHARED_WORK

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Reconstruction

logger = logging.getLogger(__name__)

# Largest number of points the scene sends by default: sets the automatic downsampling.
DEFAULT_MAX_POINTS = 4_000_000


@dataclass(frozen=True)
class PointCell:
    """The points of one frame in one cell of (mask bin, confidence bin): one point cloud.

    Attributes:
        bin_id: bin of dynamic probability (display.MASK_BINS bins).
        conf_bin: confidence bin (result.points.CONFIDENCE_BINS quantile bins).
        positions: (n, 3) float16 world points, Viser's default precision: cast once here,
            not by every scene's `add_point_cloud` (~45 ms per scene of a default result).
        colors: (n, 3) uint8 image colours.
        probability: (n,) float32 dynamic probability.
        pixel_index: (n,) int32 flat pixel index `row * W + col` (for the colouring).
    """

    bin_id: int
    conf_bin: int
    positions: npt.NDArray[np.float16]
    colors: npt.NDArray[np.uint8]
    probability: npt.NDArray[np.float32]
    pixel_index: npt.NDArray[np.int32]


@dataclass(frozen=True)
class BinnedPoints:
    """One frame's points split into cells, in ascending (mask bin, confidence bin) order
    (computed outside the scene's lock, once for every scene showing the result)."""

    cells: tuple[PointCell, ...]

    @property
    def count(self) -> int:
        """Points of the frame over all cells."""
        return sum(len(cell.positions) for cell in self.cells)


@dataclass(frozen=True)
class PointsState:
    """What the points layer holds and shows (its slice of `SceneState`).

    Attributes:
        frames_sent: how many frames' points have been sent (reaches S when streaming ends).
        frame_nodes: scene node of each sent frame's points, `/frames/t{i:04d}/points`.
        visible_frames: frames with at least some points on screen.
        visible_nodes: point nodes (per-cell leaves) on screen.
        point_counts: points sent per frame, length S (0 for frames not sent yet).
        visible_points: points on screen in total.
        visible_dynamic_points: of those, points in dynamic bins (at or above the threshold).
        display_mode: which frames' points are drawn (display.DISPLAY_MODES).
        trail: trail length in frames.
        point_source: "points", "depth_masked" or "depth_unmasked".
        confidence_percentile: lowest-confidence percent of points dropped (as applied).
        point_size: point size in scene units.
        downsample: pixel stride of the points sent.
        point_colouring: what colours the points: "image", "mask" or "attention".
        probe_point: where the probe marker is (world), or None when nothing is probed.
    """

    frames_sent: int = 0
    frame_nodes: tuple[str, ...] = ()
    visible_frames: tuple[int, ...] = ()
    visible_nodes: tuple[str, ...] = ()
    point_counts: tuple[int, ...] = ()
    visible_points: int = 0
    visible_dynamic_points: int = 0
    display_mode: DisplayMode = "current"
    trail: int = 1
    point_source: PointSource = "points"
    confidence_percentile: float = DEFAULT_CONF_PERCENTILE
    point_size: float = DEFAULT_POINT_SIZE
    downsample: int = 1
    point_colouring: str = "mask"
    probe_point: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class PointsOnScreen:
    """What `PointLayer.on_screen` counts."""

    frames: tuple[int, ...]
    nodes: tuple[str, ...]
    points: int
    dynamic_points: int


@dataclass
class PointSet:
    """Every frame's points for one (point source, stride): kept, hidden, when another is
    shown, so that switching back costs visibility messages instead of a resend."""

    clip: PreparedResult
    node: str  # child name under /frames/t{i:04d}/
    frames: dict[int, FrameNodes] = field(default_factory=dict)

    @property
    def points(self) -> int:
        """Points sent for this set so far."""
        return sum(nodes.point_count for nodes in self.frames.values())


@dataclass
class PointControls:
    """The Points folder."""

    mode: viser.GuiDropdownHandle[DisplayMode]
    trail: viser.GuiSliderHandle[int]
    source: viser.GuiDropdownHandle[str]
    percentile: viser.GuiSliderHandle[float]
    point_size: viser.GuiSliderHandle[float]
    downsample: viser.GuiSliderHandle[int]


class PointLayer(SceneLayer):
    """Each frame's points (see the module docstring).

    Args:
        host: the scene.
        max_points: points all kept sets may hold together (the active one always stays);
            also picks the automatic downsampling.
    """

    name = "points"

    def __init__(self, host: SceneHost, max_points: int = DEFAULT_MAX_POINTS) -> None:
        super().__init__(host)
        self.settings = PointSettings()
        self.max_points = int(max_points)
        self._sets: dict[tuple[str, int], PointSet] = {}  # least recently shown first
        self._active: PointSet | None = None
        self._named = 0
        self.colouring = PointColouring()
        self.probe_marker = ProbeMarker()
        self.controls: PointControls | None = None

    # ------------------------------------------------------------------ the layer contract

    def add_controls(self) -> None:
        gui, writer = self.host.server.gui, self.host.writer
        with gui.add_folder("Points"):
            mode = gui.add_dropdown("Display", display.DISPLAY_MODES, initial_value="current")
            trail = gui.add_slider("Trail (frames)", min=1, max=2, step=1, initial_value=1)
            source = gui.add_dropdown("Point source", display.POINT_SOURCES, initial_value="points")
            step = points.CONFIDENCE_STEP
            percentile = gui.add_slider(
                f"Confidence drop % (steps of {step:g})", min=0, max=100 - step, step=step,
                initial_value=points.snap_percentile(DEFAULT_CONF_PERCENTILE),
            )  # fmt: skip
            point_size = gui.add_slider(
                "Point size", min=0.001, max=0.1, step=0.001, initial_value=DEFAULT_POINT_SIZE
            )
            downsample = gui.add_slider(
                "Downsample", min=1, max=MAX_DOWNSAMPLE, step=1, initial_value=1
            )
        controls = PointControls(mode, trail, source, percentile, point_size, downsample)
        self.controls = controls

        def set_display() -> None:
            self.set_display(str(controls.mode.value), int(controls.trail.value))

        bindings: list[tuple[viser.GuiInputHandle, Callable[[], None]]] = [
            (mode, set_display),
            (trail, set_display),
            (source, lambda: self.set_point_source(str(source.value))),
            (percentile, lambda: self.set_confidence_percentile(float(percentile.value))),
            (point_size, lambda: self.set_point_size(float(point_size.value))),
            (downsample, lambda: self.set_downsample(int(downsample.value))),
        ]
        for handle, apply in bindings:
            writer.bind(handle, apply, self._refresh_controls)

    def prepare_frame(self, clip: PreparedResult, index: int) -> BinnedPoints:
        """One frame's points split by (mask bin, confidence bin), outside the scene's lock;
        computed once for every scene showing the same result (`scene.shared`)."""
        key = ("binned points", clip.source, clip.stride, index)
        return SHARED_WORK.get(clip.recon, key, lambda: bin_frame(clip, index))

    def add_frame(
        self, clip: PreparedResult, index: int, prepared: BinnedPoints, view: FrameView
    ) -> None:
        """Send one frame's points into the shown set: a root node and one point cloud per
        (mask bin, confidence bin) cell."""
        point_set = self._active
        if point_set is None or point_set.clip is not clip or index in point_set.frames:
            return
        counters, scene = self.host.counters, self.host.server.scene
        name = f"/frames/t{index:04d}/{point_set.node}"
        root = scene.add_frame(name, show_axes=False, visible=index in view.shown_frames)
        nodes = FrameNodes(root=root, bins={}, point_count=prepared.count)
        for cell in prepared.cells:
            bin_id, conf_bin = cell.bin_id, cell.conf_bin
            weight = view.mask.bin_weight(bin_id, view.has_mask)
            handle = scene.add_point_cloud(
                f"{name}/m{bin_id:02d}c{conf_bin}",
                points=cell.positions,
                colors=self._colours(clip, index, cell, weight),
                point_size=self.settings.point_size,
                precision="float16",  # as the cell's positions are: nothing to cast
                point_shape="rounded",
                point_shading="flat",
                visible=self._cell_visible(bin_id, conf_bin, index, view),
            )
            nodes.bins[(bin_id, conf_bin)] = PointBin(
                handle, cell, weight, self.colouring.stamp(weight)
            )
            # float16 positions (viser's default precision) + uint8 colours.
            counters.bytes += len(cell.positions) * (3 * 2 + 3)
        point_set.frames[index] = nodes
        counters.geometry[index] += 1

    def apply(self, view: FrameView) -> None:
        """Show the frames on screen (cells as the percentile and the mode say); recolour
        shown cells whose overlay changed. Hidden cells are recoloured when they next appear."""
        for index, nodes in self.frames.items():
            visible = index in view.shown_frames
            nodes.root.visible = visible
            if visible and self._apply_cells(index, nodes, view):
                self.host.counters.colors[index] += 1

    def sync_controls(self, view: FrameView) -> None:
        controls, settings = self.controls, self.settings
        if controls is None:
            return
        with self.host.writer.writing():
            controls.trail.max = max(view.num_frames, 2)
            controls.trail.value = min(settings.trail, int(controls.trail.max))
            controls.downsample.value = settings.downsample
            controls.mode.value = settings.mode
            controls.source.value = settings.source
            controls.percentile.value = settings.percentile
            controls.point_size.min = settings.point_size / 10
            controls.point_size.max = settings.point_size * 10
            controls.point_size.step = settings.point_size / 10
            controls.point_size.value = settings.point_size

    def state(self, view: FrameView) -> PointsState:
        on_screen = self.on_screen(view)
        settings = self.settings
        probe = self.probe_marker.position
        return PointsState(
            frames_sent=len(self.frames),
            frame_nodes=tuple(self.frames[i].root.name for i in sorted(self.frames)),
            visible_frames=on_screen.frames,
            visible_nodes=on_screen.nodes,
            point_counts=self.point_counts(view.num_frames),
            visible_points=on_screen.points,
            visible_dynamic_points=on_screen.dynamic_points,
            display_mode=settings.mode,
            trail=settings.trail,
            point_source=settings.source,
            confidence_percentile=settings.percentile,
            point_size=settings.point_size,
            downsample=settings.downsample,
            point_colouring=self.colouring.mode,
            probe_point=probe,
        )

    def remove(self) -> None:
        """Remove every frame's points, of every kept set, and the probe marker."""
        for point_set in self._sets.values():
            for nodes in point_set.frames.values():
                nodes.root.remove()
        self._sets = {}
        self._active = None
        self._named = 0
        self.probe_marker.remove()
        self.colouring.reset()

    # ------------------------------------------------------------------ loading a result

    def load(self, recon: Reconstruction) -> PreparedResult:
        """Choose the stride (unless the user fixed one) and the point source for a new
        result, and start its point set; returns the clip every layer draws. Holds the lock."""
        settings = self.settings
        height, width = recon.image_hw
        if not settings.downsample_fixed:
            settings.downsample = display.auto_stride(
                recon.num_frames, height, width, self.max_points
            )
        if source_variant(settings.source) not in (None, *recon.cameras):
            logger.warning("this result has no %s cameras: showing the point map", settings.source)
            settings.source = "points"
        clip = self.activate(recon).clip
        settings.point_size = auto_point_size(clip)
        return clip

    def activate(self, recon: Reconstruction) -> PointSet:
        """Show the set of the current (point source, stride), hiding the shown one; a set
        not kept yet starts empty. Returns it: its missing frames need sending."""
        settings = self.settings
        key = (settings.source, settings.downsample)
        if self._active is not None:
            for nodes in self._active.frames.values():
                nodes.root.visible = False
        chosen = self._sets.pop(key, None)
        if chosen is None or chosen.clip.recon is not recon:
            name = "points" if self._named == 0 else f"points{self._named}"
            self._named += 1
            chosen = PointSet(prepare_clip(recon, settings.source, settings.downsample), name)
        self._sets[key] = chosen  # most recently shown last
        self._active = chosen
        self.colouring.mask_top = chosen.clip.mask_top
        clip = chosen.clip
        self._evict(len(clip.rows) * len(clip.cols) * clip.recon.num_frames)
        return chosen

    # ------------------------------------------------------------------ setters (take the lock)

    def set_display(self, mode: str, trail: int | None = None) -> None:
        """Choose what is drawn: "current", "trail" (last `trail` frames), "all" or "split".

        "split" draws the static points of every frame as a background and the dynamic points
        only at their own time. Toggles visibility only.
        """
        trail = self.settings.trail if trail is None else int(trail)
        display.check_display(mode, trail)
        with self.host.lock, self.host.server.atomic():
            self.settings.mode = mode  # type: ignore[assignment]  # checked just above
            self.settings.trail = trail
            self.sync_controls(self.host.view())
            self.host.redraw()

    def set_point_source(self, source: str) -> None:
        """Points from the point head ("points") or depth unprojected with a variant's cameras
        ("depth_masked", "depth_unmasked"). The first switch to a source sends its points
        (counted); a source sent before is shown again without resending."""
        if source not in display.POINT_SOURCES:
            raise DisplayError(
                f"point source must be one of {', '.join(display.POINT_SOURCES)}, got {source!r}"
            )
        with self.host.lock:
            if source == self.settings.source:
                return
            variant = source_variant(source)
            clip = self.host.view().clip
            if clip is not None and variant not in (None, *clip.cameras):
                raise DisplayError(f"this result has no {variant} cameras to unproject depth with")
            self.settings.source = source  # type: ignore[assignment]  # checked just above
        self.host.switch_points()

    def set_confidence_percentile(self, percentile: float) -> None:
        """Drop the least confident `percentile` % of points (over the whole clip); 0 keeps all.

        The percentile snaps to steps of result.points.CONFIDENCE_STEP (`snap_percentile`, as
        the exports apply it); a change toggles confidence bins, no point is re-sent."""
        snapped = points.snap_percentile(percentile)
        with self.host.lock, self.host.server.atomic():
            self.settings.percentile = snapped
            self.sync_controls(self.host.view())
            self.host.redraw()

    def set_downsample(self, stride: int) -> None:
        """Keep every `stride`-th pixel along each axis. Sends the points of a stride not
        shown before (a stride sent before is shown again without resending)."""
        if not 1 <= int(stride) <= MAX_DOWNSAMPLE:
            raise DisplayError(f"downsampling must be between 1 and {MAX_DOWNSAMPLE}, got {stride}")
        settings = self.settings
        with self.host.lock:
            settings.downsample_fixed = True
            if int(stride) == settings.downsample:
                return
            settings.downsample = int(stride)
        self.host.switch_points()

    def set_point_size(self, size: float) -> None:
        """Point size in scene units (> 0); a property update, no points re-sent."""
        if not np.isfinite(size) or size <= 0:
            raise DisplayError(f"point size must be positive, got {size}")
        with self.host.lock, self.host.server.atomic():
            self.settings.point_size = float(size)
            for point_set in self._sets.values():
                for nodes in point_set.frames.values():
                    for point_bin in nodes.bins.values():
                        point_bin.handle.point_size = float(size)
            if self.controls is not None:
                slider = self.controls.point_size
                slider.max = max(float(slider.max), float(size))
                slider.min = min(float(slider.min), float(size))
                self.host.writer.set(slider, float(size))
            self.host.redraw()  # the track heads scale with the point size

    def set_colouring(
        self,
        mode: str,
        heat: np.ndarray | None = None,
        colormap: str = display.DEFAULT_COLORMAP,
        key: Hashable = None,
    ) -> None:
        """Colour the points by "image", "mask" (the overlay) or "attention" (`heat`, (S, h, w)
        in [0, 1] per key-frame patch; `key` names it). Re-sends colours of the frames on
        screen only, never positions."""
        with self.host.lock, self.host.server.atomic():
            clip = self.host.view().clip
            image_hw = (1, 1) if clip is None else clip.recon.image_hw
            self.colouring.set(mode, heat, image_hw, colormap, key)
            self.host.redraw()

    def pick_pixel(self, origin: np.ndarray, direction: np.ndarray) -> Pixel | None:
        """The pixel whose point on screen is nearest to a click ray (None: nothing there)."""
        with self.host.lock:
            view = self.host.view()
            frames = self.on_screen(view).frames
            first_bin = self.settings.confidence_bin
        clip = view.clip
        if clip is None:
            return None
        cut = points.edge_threshold(clip.confidence_edges, first_bin)  # as the scene shows
        return pick_pixel(
            clip.recon, frames, origin, direction, threshold=cut,
            source=clip.source, rows=clip.rows, cols=clip.cols,
        )  # fmt: skip

    def show_probe(self, position: np.ndarray | None) -> None:
        """Mark a probed point with a small sphere (None removes it)."""
        with self.host.lock, self.host.server.atomic():
            radius = 2.5 * self.settings.point_size
            self.probe_marker.show(self.host.server, position, radius)

    # ------------------------------------------------------------------ reading

    @property
    def frames(self) -> dict[int, FrameNodes]:
        """The shown set's sent frames (index -> nodes)."""
        return {} if self._active is None else self._active.frames

    def on_screen(self, view: FrameView) -> PointsOnScreen:
        """Frames, nodes and points currently visible."""
        frames: list[int] = []
        nodes: list[str] = []
        count = dynamic = 0
        for index in sorted(self.frames):
            frame_nodes = self.frames[index]
            if not frame_nodes.root.visible:
                continue
            shown = [b for b in frame_nodes.bins.items() if b[1].handle.visible]
            if shown:
                frames.append(index)
            for (bin_id, _), point_bin in shown:
                nodes.append(point_bin.handle.name)
                count += len(point_bin.cell.probability)
                if view.mask.is_dynamic(bin_id, view.has_mask):
                    dynamic += len(point_bin.cell.probability)
        return PointsOnScreen(tuple(frames), tuple(nodes), count, dynamic)

    def point_counts(self, num_frames: int) -> tuple[int, ...]:
        """Points sent per frame for the shown set, length `num_frames` (0 for frames not
        sent yet); the confidence filter hides some of them."""
        counts = [0] * num_frames
        for index, nodes in self.frames.items():
            counts[index] = nodes.point_count
        return tuple(counts)

    # ------------------------------------------------------------------ internals

    def _colours(
        self, clip: PreparedResult, index: int, cell: PointCell, weight: float
    ) -> npt.NDArray[np.uint8]:
        """A cell's colours under the current colouring: computed once for every scene that
        shows the same result with the same colouring (`scene.shared`)."""
        stamp = self.colouring.stamp(weight)
        key = ("colours", clip.source, clip.stride, index, cell.bin_id, cell.conf_bin, stamp)
        return SHARED_WORK.get(
            clip.recon,
            key,
            lambda: self.colouring.colors(
                cell.colors, cell.probability, cell.pixel_index, index, weight
            ),
        )

    def _cell_visible(self, bin_id: int, conf_bin: int, index: int, view: FrameView) -> bool:
        """Whether a cell of a visible frame is drawn: confident enough, and its dynamic
        points shown in this mode."""
        if conf_bin < self.settings.confidence_bin:
            return False
        dynamic = view.mask.is_dynamic(bin_id, view.has_mask)
        return not dynamic or display.dynamic_visible(self.settings.mode, index, view.frame)

    def _apply_cells(self, index: int, nodes: FrameNodes, view: FrameView) -> bool:
        """Toggle one visible frame's cells and recolour those whose overlay changed;
        returns whether any colours were re-sent."""
        recoloured = False
        for (bin_id, conf_bin), point_bin in nodes.bins.items():
            point_bin.handle.visible = self._cell_visible(bin_id, conf_bin, index, view)
            weight = view.mask.bin_weight(bin_id, view.has_mask)
            stamp = self.colouring.stamp(weight)
            if point_bin.handle.visible and stamp != point_bin.stamp:
                point_bin.weight, point_bin.stamp = weight, stamp
                clip = self._active.clip if self._active is not None else None
                if clip is None:
                    continue
                point_bin.handle.colors = self._colours(clip, index, point_bin.cell, weight)
                self.host.counters.bytes += point_bin.cell.colors.nbytes
                recoloured = True
        return recoloured

    def _evict(self, expected: int) -> None:
        """Remove hidden sets, least recently shown first, until all fit in the budget."""
        for key, kept in list(self._sets.items()):
            total = sum(s.points for s in self._sets.values() if s is not self._active)
            if total + expected <= self.max_points or kept is self._active:
                continue
            for nodes in kept.frames.values():
                nodes.root.remove()
            del self._sets[key]

    def _refresh_controls(self) -> None:
        with self.host.lock:
            self.sync_controls(self.host.view())


def bin_frame(clip: PreparedResult, index: int) -> BinnedPoints:
    """One frame's points split by (mask bin, confidence bin); pure. Every point
    `result.points.frame_points` can keep is sent; the percentile then picks confidence bins
    (`result.points.confidence_bins`)."""
    cloud = frame_points(
        clip.recon, index, threshold=float("-inf"), source=clip.source,
        rows=clip.rows, cols=clip.cols,
    )  # fmt: skip
    confidence = source_confidence(clip.recon, clip.source)[index].reshape(-1)
    conf_bins = confidence_bins(confidence[cloud.pixel_index], clip.confidence_edges)
    if clip.probability is None:
        probability = np.zeros(len(cloud.points), dtype=np.float32)
    else:
        height, width = clip.recon.image_hw
        grid_h, grid_w = clip.probability.shape[1:]
        patch_rows = display.patch_index(cloud.pixel_index // width, height, grid_h)
        patch_cols = display.patch_index(cloud.pixel_index % width, width, grid_w)
        probability = clip.probability[index][patch_rows, patch_cols]
    cells = display.mask_bins(probability) * CONFIDENCE_BINS + conf_bins
    order = np.argsort(cells, kind="stable")
    cell_ids, starts = np.unique(cells[order], return_index=True)
    ends = [*starts[1:].tolist(), len(order)]
    pixel_index = cloud.pixel_index.astype(np.int32)
    positions = cloud.points.astype(np.float16)
    split = []
    for cell, start, end in zip(cell_ids.tolist(), starts.tolist(), ends, strict=True):
        chosen = order[start:end]
        bin_id, conf_bin = divmod(int(cell), CONFIDENCE_BINS)
        split.append(PointCell(
            bin_id, conf_bin, positions[chosen], cloud.colors[chosen], probability[chosen],
            pixel_index[chosen],
        ))  # fmt: skip
    return BinnedPoints(tuple(split))
