"""What the scene draws, one layer per kind: points and cameras (frusta and trajectories). A
second run's cameras (`comparison.py`) and the point tracks (`tracks.py`) have their own modules.

A layer sends its nodes once and afterwards only toggles visibility, recolours or changes
node properties. Layers hold no lock: `SceneView` calls them holding its lock, inside a
`server.atomic()` block, and passes in what they need of the timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.points import (
    CONFIDENCE_BINS,
    confidence_bins,
    frame_points,
    source_confidence,
)
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.colouring import PointColouring
from page4d_viewer.viewer.scene.nodes import (
    FrameNodes,
    Frusta,
    PointBin,
    ShownClip,
    thumbnail,
)

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.scene.state import DisplaySettings, SendCounters

logger = logging.getLogger(__name__)

FrustumClick = Callable[["viser.ClientHandle", str, int], None]
"""on_click(client, variant, frame): a frustum was clicked in a client's scene."""


@dataclass
class BinnedPoints:
    """One frame's points, ordered by (mask bin, confidence bin) cell (computed outside the
    scene's lock)."""

    positions: np.ndarray  # (N, 3) float32
    colors: np.ndarray  # (N, 3) uint8 image colours
    probability: np.ndarray  # (N,) dynamic probability
    order: np.ndarray  # (N,) indices sorting the points by cell
    cells: list[tuple[int, int]]  # (mask bin, confidence bin) of the cells present, ascending
    starts: list[int]  # start of each cell in `order`
    ends: list[int]  # end of each cell in `order`
    pixel_index: np.ndarray | None = None  # (N,) int32 flat pixel index, for the colouring


@dataclass(frozen=True)
class PointsOnScreen:
    """What `PointLayer.on_screen` counts for `SceneState`."""

    frames: tuple[int, ...]
    nodes: tuple[str, ...]
    points: int
    dynamic_points: int


@dataclass
class PointSet:
    """Every frame's points for one (point source, stride): kept, hidden, when another is
    shown, so that switching back costs visibility messages instead of a resend."""

    clip: ShownClip
    node: str  # child name under /frames/t{i:04d}/
    frames: dict[int, FrameNodes] = field(default_factory=dict)

    @property
    def points(self) -> int:
        """Points sent for this set so far."""
        return sum(nodes.point_count for nodes in self.frames.values())


class PointLayer:
    """Each frame's points: node `/frames/t{i:04d}/points`, one child `m{b:02d}c{c}` per cell
    of (mask bin b, confidence bin c), so the mask threshold and the confidence percentile
    only toggle cells. Sets for other point sources and strides stay in the browser, hidden,
    while they fit in the point budget.

    Args:
        server: where the nodes go.
        settings: the scene's display settings (shared, read at each call).
        counters: the scene's send counters (shared, incremented here).
        max_points: points all kept sets may hold together (the active one always stays).
    """

    def __init__(
        self,
        server: viser.ViserServer,
        settings: DisplaySettings,
        counters: SendCounters,
        max_points: int | None = None,
    ) -> None:
        self._server = server
        self._settings = settings
        self._counters = counters
        self._max_points = max_points
        self._sets: dict[tuple[str, int], PointSet] = {}  # least recently shown first
        self._active: PointSet | None = None
        self._named = 0
        self.colouring = PointColouring()

    @property
    def frames(self) -> dict[int, FrameNodes]:
        """The shown set's sent frames (index -> nodes)."""
        return {} if self._active is None else self._active.frames

    def activate(self, key: tuple[str, int], make_clip: Callable[[], ShownClip]) -> PointSet:
        """Show the set for `key` (point source, stride), hiding the shown one; a set not
        kept yet starts empty with `make_clip()`. Returns it: its missing frames need sending."""
        if self._active is not None:
            for nodes in self._active.frames.values():
                nodes.root.visible = False
        chosen = self._sets.pop(key, None)
        if chosen is None:
            name = "points" if self._named == 0 else f"points{self._named}"
            self._named += 1
            chosen = PointSet(make_clip(), name)
        self._sets[key] = chosen  # most recently shown last
        self._active = chosen
        self.colouring.mask_top = chosen.clip.mask_top
        self._evict(len(chosen.clip.rows) * len(chosen.clip.cols) * chosen.clip.recon.num_frames)
        return chosen

    def _evict(self, expected: int) -> None:
        """Remove hidden sets, least recently shown first, until all fit in the budget."""
        if self._max_points is None:
            return
        for key, kept in list(self._sets.items()):
            total = sum(s.points for s in self._sets.values() if s is not self._active)
            if total + expected <= self._max_points or kept is self._active:
                continue
            for nodes in kept.frames.values():
                nodes.root.remove()
            del self._sets[key]

    def binned_points(self, clip: ShownClip, index: int) -> BinnedPoints:
        """One frame's points split by (mask bin, confidence bin); pure, so it runs outside
        the scene's lock. Every point `result.points.frame_points` can keep is sent; the
        percentile then picks confidence bins (`result.points.confidence_bins`)."""
        cloud = frame_points(
            clip.recon,
            index,
            threshold=float("-inf"),
            source=clip.source,
            rows=clip.rows,
            cols=clip.cols,
        )
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
        pairs = [divmod(int(cell), CONFIDENCE_BINS) for cell in cell_ids]
        return BinnedPoints(
            cloud.points, cloud.colors, probability, order, pairs, starts.tolist(), ends,
            cloud.pixel_index.astype(np.int32),
        )  # fmt: skip

    def add_frame(
        self, index: int, points: BinnedPoints, frame: int, visible: bool, has_mask: bool
    ) -> None:
        """Send one frame's points into the shown set: a root node and one point cloud per
        (mask bin, confidence bin) cell."""
        point_set = self._active
        if point_set is None:
            return
        name = f"/frames/t{index:04d}/{point_set.node}"
        root = self._server.scene.add_frame(name, show_axes=False, visible=visible)
        nodes = FrameNodes(root=root, bins={}, point_count=len(points.positions))
        cells = zip(points.cells, points.starts, points.ends, strict=True)
        for (bin_id, conf_bin), start, end in cells:
            chosen = points.order[start:end]
            colors, probability = points.colors[chosen], points.probability[chosen]
            pixels = None if points.pixel_index is None else points.pixel_index[chosen]
            weight = self._settings.bin_weight(bin_id, has_mask)
            handle = self._server.scene.add_point_cloud(
                f"{name}/m{bin_id:02d}c{conf_bin}",
                points=points.positions[chosen],
                colors=self.colouring.colors(colors, probability, pixels, index, weight),
                point_size=self._settings.point_size,
                point_shape="rounded",
                point_shading="flat",
                visible=self._cell_visible(bin_id, conf_bin, index, frame, has_mask),
            )
            nodes.bins[(bin_id, conf_bin)] = PointBin(
                handle, colors, probability, weight, pixels, self.colouring.stamp(weight)
            )
            # float16 positions (viser's default precision) + uint8 colours.
            self._counters.bytes += len(chosen) * (3 * 2 + 3)
        point_set.frames[index] = nodes
        self._counters.geometry[index] += 1

    def _cell_visible(
        self, bin_id: int, conf_bin: int, index: int, frame: int, has_mask: bool
    ) -> bool:
        """Whether a cell of a visible frame is drawn: confident enough, and its dynamic
        points shown in this mode."""
        settings = self._settings
        if conf_bin < settings.confidence_bin:
            return False
        dynamic = settings.is_dynamic(bin_id, has_mask)
        return not dynamic or display.dynamic_visible(settings.mode, index, frame)

    def apply_visibility(self, shown: set[int], frame: int, has_mask: bool) -> None:
        """Show the frames in `shown` (cells as the percentile and the mode say); recolour
        shown cells whose overlay changed. Hidden cells are recoloured when they next appear."""
        settings = self._settings
        for index, nodes in self.frames.items():
            visible = index in shown
            nodes.root.visible = visible
            if not visible:
                continue
            recoloured = False
            for (bin_id, conf_bin), point_bin in nodes.bins.items():
                point_bin.handle.visible = self._cell_visible(
                    bin_id, conf_bin, index, frame, has_mask
                )
                weight = settings.bin_weight(bin_id, has_mask)
                stamp = self.colouring.stamp(weight)
                if point_bin.handle.visible and stamp != point_bin.stamp:
                    point_bin.weight, point_bin.stamp = weight, stamp
                    point_bin.handle.colors = self.colouring.colors(
                        point_bin.image_colors, point_bin.probability, point_bin.pixel_index,
                        index, weight,
                    )  # fmt: skip
                    self._counters.bytes += point_bin.image_colors.nbytes
                    recoloured = True
            if recoloured:
                self._counters.colors[index] += 1

    def set_point_size(self, size: float) -> None:
        """Set every point cloud's point size (a property update), kept sets included."""
        for point_set in self._sets.values():
            for nodes in point_set.frames.values():
                for point_bin in nodes.bins.values():
                    point_bin.handle.point_size = size

    def remove_all(self) -> None:
        """Remove every frame's points, of every kept set."""
        for point_set in self._sets.values():
            for nodes in point_set.frames.values():
                nodes.root.remove()
        self._sets = {}
        self._active = None
        self._named = 0

    def on_screen(self, has_mask: bool) -> PointsOnScreen:
        """Frames, nodes and points currently visible."""
        frames: list[int] = []
        nodes: list[str] = []
        points = dynamic_points = 0
        for index in sorted(self.frames):
            frame_nodes = self.frames[index]
            if not frame_nodes.root.visible:
                continue
            shown = [b for b in frame_nodes.bins.items() if b[1].handle.visible]
            if shown:
                frames.append(index)
            for (bin_id, _), point_bin in shown:
                nodes.append(point_bin.handle.name)
                count = len(point_bin.probability)
                points += count
                if self._settings.is_dynamic(bin_id, has_mask):
                    dynamic_points += count
        return PointsOnScreen(tuple(frames), tuple(nodes), points, dynamic_points)

    def point_counts(self, num_frames: int) -> tuple[int, ...]:
        """Points sent per frame for the shown set, length `num_frames` (0 for frames not
        sent yet); the confidence filter hides some of them."""
        counts = [0] * num_frames
        for index, nodes in self.frames.items():
            counts[index] = nodes.point_count
        return tuple(counts)

    def node_names(self) -> tuple[str, ...]:
        """The root node of each sent frame of the shown set, in frame order."""
        return tuple(self.frames[i].root.name for i in sorted(self.frames))


class CameraLayer:
    """Per camera variant: node `/cameras/{variant}` with its trajectory and frusta.

    Each frame has a wireframe frustum, and one carrying the frame's image that replaces it
    while that frame is the current one.

    Args:
        server: where the nodes go.
        settings: the scene's display settings (shared; `variant_visible` is read here).
        counters: the scene's send counters (shared, incremented here).
    """

    def __init__(
        self, server: viser.ViserServer, settings: DisplaySettings, counters: SendCounters
    ) -> None:
        self._server = server
        self._settings = settings
        self._counters = counters
        self.frusta: dict[str, Frusta] = {}
        # The camera a viewer flew to: its image would sit right in front of the view and
        # hide the points, so that one frustum is drawn without it (variant, frame).
        self.looked_through: tuple[str, int] | None = None

    def add_trajectories(self, clip: ShownClip) -> None:
        """Per variant: a root node, the trajectory line and the camera poses."""
        height, width = clip.recon.image_hw
        for variant, cameras in clip.cameras.items():
            root = self._server.scene.add_frame(
                f"/cameras/{variant}",
                show_axes=False,
                visible=self._settings.variant_visible[variant],
            )
            wxyz, centres = display.camera_poses(cameras.extrinsics)
            fov, aspect = display.frustum_fov_aspect(cameras.intrinsics, height, width)
            self.frusta[variant] = Frusta(
                root=root, wxyz=wxyz, centres=centres, fov=fov, aspect=aspect
            )
            segments = display.trajectory_segments(centres)
            if len(segments):
                self._server.scene.add_line_segments(
                    f"/cameras/{variant}/trajectory",
                    points=segments,
                    colors=display.VARIANT_COLORS[variant],
                    thickness=2.0,
                    thickness_units="screen",
                )

    def has_frame(self, index: int) -> bool:
        """Whether any variant's frusta of this frame were sent."""
        return any(index in frusta.plain for frusta in self.frusta.values())

    def add_frusta(self, clip: ShownClip, index: int, frame: int, on_click: FrustumClick) -> None:
        """Each variant's frustum of one frame: a wireframe, and one with the image that is
        shown instead while `index` is the current `frame`."""
        image = thumbnail(clip.recon.images[index])
        for variant, frusta in self.frusta.items():
            if not (
                np.isfinite(frusta.wxyz[index]).all() and np.isfinite(frusta.centres[index]).all()
            ):
                continue  # an unusable predicted pose: nothing sensible to draw
            common = {
                "fov": float(frusta.fov[index]),
                "aspect": float(frusta.aspect[index]),
                "scale": display.viser_frustum_scale(
                    clip.frustum_length, frusta.fov[index], frusta.aspect[index]
                ),
                "color": display.VARIANT_COLORS[variant],
                "wxyz": frusta.wxyz[index],
                "position": frusta.centres[index],
                "thickness": 1.5,
                "thickness_units": "screen",
            }
            name = f"/cameras/{variant}"
            current = index == frame
            plain = self._server.scene.add_camera_frustum(
                f"{name}/frusta/t{index:04d}", visible=not current, **common
            )
            imaged = self._server.scene.add_camera_frustum(
                f"{name}/images/t{index:04d}",
                image=image,
                format="jpeg",
                jpeg_quality=80,
                visible=current and self.looked_through != (variant, index),
                **common,
            )
            self._counters.bytes += image.nbytes  # what we handed over, before JPEG
            for handle in (plain, imaged):
                handle.on_click(_click_callback(on_click, variant, index))
            frusta.plain[index] = plain
            frusta.imaged[index] = imaged

    def apply_visibility(self, frame: int) -> None:
        """The current frame's frusta show their image; the others are wireframes. The
        camera looked through shows neither (its image would cover the view)."""
        for variant, frusta in self.frusta.items():
            for index, handle in frusta.plain.items():
                handle.visible = index != frame
            for index, handle in frusta.imaged.items():
                handle.visible = index == frame and self.looked_through != (variant, index)

    def look_through(self, variant: str, index: int, frame: int) -> None:
        """Remember the camera a viewer flew to and hide its image (see `looked_through`)."""
        self.looked_through = (variant, index)
        self.apply_visibility(frame)

    def set_variant_visible(self, name: str, visible: bool) -> None:
        """Show or hide one variant's frusta and trajectory (if it is in the scene)."""
        if name in self.frusta:
            self.frusta[name].root.visible = visible

    def camera_pose(self, variant: str, index: int) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(wxyz, position, vertical fov) of one camera, or None if it is not in the scene."""
        frusta = self.frusta.get(variant)
        if frusta is None or frusta.wxyz is None or index >= len(frusta.wxyz):
            return None
        return frusta.wxyz[index], frusta.centres[index], float(frusta.fov[index])

    def visible_nodes(self) -> tuple[str, ...]:
        """Frustum nodes on screen (hidden variants excluded), sorted."""
        names = [
            handle.name
            for frusta in self.frusta.values()
            if frusta.root.visible
            for handle in [*frusta.plain.values(), *frusta.imaged.values()]
            if handle.visible
        ]
        return tuple(sorted(names))

    def set_initial_view(self, clip: ShownClip) -> None:
        """Start every viewer (new and connected) behind the first camera."""
        position, look_at, up = display.initial_view(
            clip.cameras["masked"].extrinsics[0], clip.scene_depth
        )
        initial = self._server.initial_camera
        initial.position, initial.look_at, initial.up = position, look_at, up
        for client in self._server.get_clients().values():
            move_view(client, position, look_at, up)

    def remove_all(self) -> None:
        """Remove every variant's nodes."""
        for frusta in self.frusta.values():
            frusta.root.remove()
        self.frusta = {}
        self.looked_through = None


def _click_callback(
    on_click: FrustumClick, variant: str, index: int
) -> Callable[[viser.SceneNodePointerEvent[viser.CameraFrustumHandle]], None]:
    def callback(event: viser.SceneNodePointerEvent[viser.CameraFrustumHandle]) -> None:
        on_click(event.client, variant, index)

    return callback


def look_through(
    client: viser.ClientHandle, wxyz: np.ndarray, position: np.ndarray, fov: float
) -> None:
    """Put a client's viewpoint at a camera: its pose and its vertical field of view."""
    with client.atomic():
        client.camera.wxyz = wxyz
        client.camera.position = position
        client.camera.fov = fov


def move_view(
    client: viser.ClientHandle, position: np.ndarray, look_at: np.ndarray, up: np.ndarray
) -> None:
    """Move a connected client's viewpoint (position first: setting it drags look_at along)."""
    try:
        with client.atomic():
            client.camera.position = position
            client.camera.look_at = look_at
            client.camera.up_direction = up
    except AssertionError:
        # Viser asserts when a just-connected client has not reported its camera yet; that
        # client starts from `server.initial_camera`, which is already set.
        logger.debug("client %s has no camera yet; it will start from the initial view", client)
