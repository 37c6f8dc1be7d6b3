"""The 3-D scene in Viser: per-frame point clouds, camera frusta per variant, a timeline.

Everything Viser lives here; the rules for what is shown (colours, frame selection, the
static/dynamic split, frustum shapes) are pure functions in `display.py`.

How the scene stays fast: each frame's points are sent ONCE, as their own node
`/frames/t{i:04d}/points`, itself split into children `.../m{b:02d}`, one per bin of dynamic
probability (display.MASK_BINS bins). Then

* moving the timeline, playing, the display mode and the mask threshold in split mode only
  toggle `.visible` of frame nodes and bins (no point is sent again);
* the mask overlay opacity/threshold re-send colours only (positions stay), and only for the
  frames on screen: hidden frames are recoloured when they next appear;
* the point size is a per-node property (a few bytes per node);
* the point source, the confidence percentile and the downsampling change which points exist,
  so they re-send the points: counted per frame in `SceneState.geometry_sends`.

Threads: `show()` sends the first frame before returning and streams the rest from a
background thread; a daemon playback thread advances the frame while playing. All state is
guarded by one re-entrant lock; user callbacks run outside it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.result.points import frame_points
from page4d_viewer.viewer import display
from page4d_viewer.viewer.display import DisplayError

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Cameras, Reconstruction

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], Any]
FrameCallback = Callable[[int], Any]

# Largest number of points the scene sends by default: sets the automatic downsampling.
DEFAULT_MAX_POINTS = 4_000_000
DEFAULT_CONF_PERCENTILE = 25.0
DEFAULT_MASK_OPACITY = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_FPS = 10
DEFAULT_TRAIL = 5
MAX_DOWNSAMPLE = 8
THUMBNAIL_WIDTH = 160  # pixels of the image shown on the current frame's frustum


@dataclass(frozen=True)
class SceneState:
    """A snapshot of what the scene holds and shows (for tests, benchmarks and the panel).

    Attributes:
        num_frames: S of the Reconstruction shown (0 when empty).
        frame: the current frame.
        frames_sent: how many frames' points have been sent (reaches S when streaming ends).
        streaming: whether frames are still being sent in the background.
        frame_nodes: scene node of each sent frame's points, `/frames/t{i:04d}/points`.
        visible_frames: frames with at least some points on screen.
        visible_nodes: point nodes (per-bin leaves) on screen.
        visible_camera_nodes: frustum nodes on screen (hidden variants excluded).
        point_counts: points sent per frame, length S (0 for frames not sent yet).
        visible_points: points on screen in total.
        visible_dynamic_points: of those, points in dynamic bins (at or above the threshold).
        geometry_sends: per frame, how many times its points (positions) were sent.
        color_sends: per frame, how many times its colours alone were re-sent.
        bytes_sent: array bytes sent for points, colours and frustum images since `show()`.
        display_mode: "current", "trail", "all" or "split".
        trail: trail length in frames.
        point_source: "points", "depth_masked" or "depth_unmasked".
        confidence_percentile: lowest-confidence percent of points dropped.
        point_size: point size in scene units.
        downsample: pixel stride of the points sent.
        mask_opacity: overlay opacity in [0, 1].
        mask_threshold: dynamic-probability threshold in [0, 1], as applied (snapped).
        has_mask: whether the Reconstruction has a dynamic mask score.
        variants: camera variants in the scene.
        variant_visible: variant -> whether its frusta and trajectory are shown.
        playing: whether the timeline is playing.
        fps: playback speed in frames per second.
        loop: whether playback wraps around at the end.
    """

    num_frames: int
    frame: int
    frames_sent: int
    streaming: bool
    frame_nodes: tuple[str, ...]
    visible_frames: tuple[int, ...]
    visible_nodes: tuple[str, ...]
    visible_camera_nodes: tuple[str, ...]
    point_counts: tuple[int, ...]
    visible_points: int
    visible_dynamic_points: int
    geometry_sends: tuple[int, ...]
    color_sends: tuple[int, ...]
    bytes_sent: int
    display_mode: str
    trail: int
    point_source: str
    confidence_percentile: float
    point_size: float
    downsample: int
    mask_opacity: float
    mask_threshold: float
    has_mask: bool
    variants: tuple[str, ...]
    variant_visible: dict[str, bool]
    playing: bool
    fps: float
    loop: bool


@dataclass
class _Bin:
    """Points of one frame whose dynamic probability falls in one bin."""

    handle: Any  # viser.PointCloudHandle
    image_colors: np.ndarray  # (N, 3) uint8
    probability: np.ndarray  # (N,) float32
    weight: float  # overlay blend weight the colours on screen were made with


@dataclass
class _FrameNodes:
    """What was sent for one frame."""

    root: Any  # viser.FrameHandle of /frames/t{i:04d}/points
    bins: dict[int, _Bin]
    point_count: int


@dataclass
class _Frusta:
    """One variant's camera nodes."""

    root: Any  # viser.FrameHandle of /cameras/{variant}
    wxyz: np.ndarray  # (S, 4) world-from-camera rotations, scalar first
    centres: np.ndarray  # (S, 3) camera centres
    fov: np.ndarray  # (S,) vertical field of view, radians
    aspect: np.ndarray  # (S,) width over height
    plain: dict[int, Any] = field(default_factory=dict)  # frame -> wireframe frustum
    imaged: dict[int, Any] = field(default_factory=dict)  # frame -> frustum with its image


@dataclass
class _Clip:
    """The Reconstruction being shown, plus what the point sends derive from it."""

    recon: Reconstruction
    source: str  # one of display.POINT_SOURCES
    cameras: dict[str, Cameras]  # ground truth already aligned onto "masked"
    rows: np.ndarray  # (H',) pixel rows kept
    cols: np.ndarray  # (W',) pixel columns kept
    probability: np.ndarray | None  # (S, h, w) dynamic probability per patch
    patch_rows: np.ndarray  # (H',) patch row of each kept pixel row
    patch_cols: np.ndarray  # (W',) patch column of each kept pixel column
    confidence_cut: float  # drop points whose confidence is below this
    frustum_length: float  # centre to image plane, scene units
    scene_depth: float  # median depth, scene units


class SceneView:
    """The Viser scene of one Reconstruction, with its own timeline and display controls.

    Args:
        server: a running `viser.ViserServer`; the scene adds its GUI and nodes to it and never
            stops it.
        max_points: point budget that picks the automatic downsampling in `show()`.
    """

    def __init__(self, server: viser.ViserServer, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self._server = server
        self._max_points = int(max_points)
        self._lock = threading.RLock()
        self._frame_callbacks: list[FrameCallback] = []
        self._clip: _Clip | None = None
        self._frames: dict[int, _FrameNodes] = {}
        self._frusta: dict[str, _Frusta] = {}
        # Set while this thread writes the controls, so their callbacks do not echo back.
        self._gui_writer = threading.local()
        self._frame = 0
        self._mode = "current"
        self._trail = DEFAULT_TRAIL
        self._source = "points"
        self._percentile = DEFAULT_CONF_PERCENTILE
        self._point_size = 0.01
        self._downsample = 1
        self._downsample_fixed = False  # True once the user picked a stride
        self._opacity = DEFAULT_MASK_OPACITY
        self._threshold_bin = display.threshold_bin(DEFAULT_MASK_THRESHOLD)
        self._variant_visible = {name: True for name in display.VARIANTS}
        self._fps = float(DEFAULT_FPS)
        self._loop = True
        self._geometry_sends: list[int] = []
        self._color_sends: list[int] = []
        self._bytes_sent = 0
        self._stream_thread: threading.Thread | None = None
        self._stream_cancel = threading.Event()
        self._stream_done = threading.Event()
        self._stream_done.set()
        self._playing = threading.Event()
        self._closed = threading.Event()
        server.scene.set_up_direction("-y")  # OpenCV world: y points down
        _warm_up_encoders()
        self._gui = _build_gui(server, self)
        self._playback_thread = threading.Thread(
            target=self._playback_loop, name="scene-playback", daemon=True
        )
        self._playback_thread.start()

    # ------------------------------------------------------------------ showing a result

    def show(self, recon: Reconstruction, progress: ProgressCallback | None = None) -> None:
        """Show a Reconstruction: replaces what was shown.

        The first frame's points, every camera trajectory and the first frame's frusta are
        sent before this returns; the other frames stream in from a background thread (see
        `wait_until_sent`).

        Args:
            recon: the result to show.
            progress: called as `progress(fraction, description)` while frames are sent
                (from the streaming thread).
        """
        self._cancel_stream()
        with self._lock, self._server.atomic():
            self._remove_nodes()
            num_frames = recon.num_frames
            height, width = recon.image_hw
            if not self._downsample_fixed:
                self._downsample = display.auto_stride(num_frames, height, width, self._max_points)
            self._frame = 0
            if _source_variant(self._source) not in (None, *recon.cameras):
                logger.warning("this result has no %s cameras: showing the point map", self._source)
                self._source = "points"
            self._geometry_sends = [0] * num_frames
            self._color_sends = [0] * num_frames
            self._bytes_sent = 0
            self._clip = self._prepare_clip(recon)
            self._point_size = _auto_point_size(self._clip)
            self._send_trajectories()
            self._set_initial_view()
            self._sync_gui()
        self._start_stream(progress)

    def clear(self) -> None:
        """Remove everything shown; the scene's controls stay."""
        self._cancel_stream()
        with self._lock, self._server.atomic():
            self._remove_nodes()
            self._clip = None
            self._frame = 0
            self._geometry_sends = []
            self._color_sends = []
            self._bytes_sent = 0
            self._sync_gui()

    def wait_until_sent(self, timeout: float | None = None) -> bool:
        """Block until every frame has been sent; returns False on timeout."""
        return self._stream_done.wait(timeout)

    def close(self) -> None:
        """Stop the playback and streaming threads (the server is left running)."""
        self._closed.set()
        self._playing.set()  # wakes the playback thread, which then sees `closed` and ends
        self._cancel_stream()
        if self._playback_thread.is_alive():
            self._playback_thread.join(timeout=2.0)

    # ------------------------------------------------------------------ timeline

    @property
    def num_frames(self) -> int:
        """Number of frames of the Reconstruction shown (0 when empty)."""
        with self._lock:
            return 0 if self._clip is None else self._clip.recon.num_frames

    @property
    def frame(self) -> int:
        """The current frame."""
        with self._lock:
            return self._frame

    def set_frame(self, frame: int) -> None:
        """Move to a frame (clamped to the clip); toggles visibility only.

        Frame-change callbacks are NOT fired for this call: they report moves made in the
        Viser scene, so a caller that mirrors them does not loop.
        """
        self._move_to_frame(int(frame), notify=False)

    def on_frame_change(self, callback: FrameCallback) -> FrameCallback:
        """Register `callback(frame)`, fired when the Viser timeline moves (slider, playback,
        a click on a frustum). Returns the callback, so it can be used as a decorator."""
        with self._lock:
            self._frame_callbacks.append(callback)
        return callback

    def set_playing(self, playing: bool) -> None:
        """Start or stop playback (from the first frame when stopped at the end)."""
        with self._lock:
            at_end = self.num_frames > 1 and self._frame >= self.num_frames - 1
            restart = playing and at_end and not self._loop and not self._playing.is_set()
        if restart:
            self._move_to_frame(0, notify=True)
        with self._lock:
            if playing:
                self._playing.set()
            else:
                self._playing.clear()
            self._set_control(self._gui.playing, bool(playing))

    def set_fps(self, fps: float) -> None:
        """Playback speed in frames per second (0 < fps <= 120)."""
        if not np.isfinite(fps) or not 0 < fps <= 120:
            raise DisplayError(f"playback speed must be in (0, 120] fps, got {fps}")
        with self._lock:
            self._fps = float(fps)
            self._set_control(self._gui.fps, int(np.clip(round(fps), 1, 60)))

    def set_loop(self, loop: bool) -> None:
        """Whether playback wraps around at the last frame (else it stops there)."""
        with self._lock:
            self._loop = bool(loop)
            self._set_control(self._gui.loop, self._loop)

    # ------------------------------------------------------------------ display settings

    def set_mask_overlay(self, opacity: float, threshold: float) -> None:
        """Blend the mask's heat map into the point colours.

        Points whose dynamic probability is at or above `threshold` (snapped to steps of
        1/display.MASK_BINS) get `(1 - opacity) * image + opacity * heat`; the same threshold
        splits static from dynamic in split mode. Re-sends colours of the frames on screen.

        Args:
            opacity: in [0, 1]; 0 shows plain image colours.
            threshold: dynamic probability in [0, 1].
        """
        display.check_overlay(opacity, threshold)
        with self._lock, self._server.atomic():
            self._opacity = float(opacity)
            self._threshold_bin = display.threshold_bin(threshold)
            self._set_control(self._gui.opacity, self._opacity)
            self._set_control(self._gui.threshold, self._threshold_bin / display.MASK_BINS)
            self._apply_visibility()

    def set_display(self, mode: str, trail: int | None = None) -> None:
        """Choose what is drawn: "current", "trail" (last `trail` frames), "all" or "split".

        "split" draws the static points of every frame as a background and the dynamic points
        only at their own time. Toggles visibility only.
        """
        trail = self._trail if trail is None else int(trail)
        display.check_display(mode, trail)
        with self._lock, self._server.atomic():
            self._mode = mode
            self._trail = trail
            self._set_control(self._gui.mode, mode)
            self._set_control(self._gui.trail, min(trail, int(self._gui.trail.max)))
            self._apply_visibility()

    def set_point_source(self, source: str) -> None:
        """Points from the point head ("points") or depth unprojected with a variant's cameras
        ("depth_masked", "depth_unmasked"). Re-sends every frame's points (counted)."""
        if source not in display.POINT_SOURCES:
            raise DisplayError(
                f"point source must be one of {', '.join(display.POINT_SOURCES)}, got {source!r}"
            )
        with self._lock:
            if source == self._source:
                return
            variant = _source_variant(source)
            if self._clip is not None and variant not in (None, *self._clip.cameras):
                raise DisplayError(f"this result has no {variant} cameras to unproject depth with")
            self._source = source
            self._set_control(self._gui.source, source)
        self._resend_points()

    def set_confidence_percentile(self, percentile: float) -> None:
        """Drop the least confident `percentile` % of points (over the whole clip); 0 keeps all.

        Re-sends every frame's points (counted)."""
        display.check_percentile(percentile)
        with self._lock:
            if float(percentile) == self._percentile:
                return
            self._percentile = float(percentile)
            self._set_control(self._gui.percentile, self._percentile)
        self._resend_points()

    def set_downsample(self, stride: int) -> None:
        """Keep every `stride`-th pixel along each axis. Re-sends every frame's points."""
        if not 1 <= int(stride) <= MAX_DOWNSAMPLE:
            raise DisplayError(f"downsampling must be between 1 and {MAX_DOWNSAMPLE}, got {stride}")
        with self._lock:
            self._downsample_fixed = True
            if int(stride) == self._downsample:
                return
            self._downsample = int(stride)
            self._set_control(self._gui.downsample, self._downsample)
        self._resend_points()

    def set_point_size(self, size: float) -> None:
        """Point size in scene units (> 0); a property update, no points re-sent."""
        if not np.isfinite(size) or size <= 0:
            raise DisplayError(f"point size must be positive, got {size}")
        with self._lock, self._server.atomic():
            self._point_size = float(size)
            for nodes in self._frames.values():
                for point_bin in nodes.bins.values():
                    point_bin.handle.point_size = self._point_size
            self._gui.point_size.max = max(float(self._gui.point_size.max), float(size))
            self._gui.point_size.min = min(float(self._gui.point_size.min), float(size))
            self._set_control(self._gui.point_size, self._point_size)

    def set_variant_visible(self, name: str, visible: bool) -> None:
        """Show or hide one camera variant's frusta and trajectory ("masked", "unmasked",
        "ground_truth")."""
        if name not in display.VARIANTS:
            raise DisplayError(
                f"camera variant must be one of {', '.join(display.VARIANTS)}, got {name!r}"
            )
        with self._lock, self._server.atomic():
            self._variant_visible[name] = bool(visible)
            if name in self._frusta:
                self._frusta[name].root.visible = bool(visible)
            self._gui.variants[name].value = bool(visible)

    # ------------------------------------------------------------------ state

    def state(self) -> SceneState:
        """A snapshot of the scene (what was sent, what is visible, the settings)."""
        with self._lock:
            num_frames = self.num_frames
            visible_nodes: list[str] = []
            visible_frames: list[int] = []
            visible_points = 0
            visible_dynamic = 0
            for index in sorted(self._frames):
                nodes = self._frames[index]
                if not nodes.root.visible:
                    continue
                shown = [b for b in nodes.bins.items() if b[1].handle.visible]
                if shown:
                    visible_frames.append(index)
                for bin_index, point_bin in shown:
                    visible_nodes.append(point_bin.handle.name)
                    count = len(point_bin.probability)
                    visible_points += count
                    if self._is_dynamic(bin_index):
                        visible_dynamic += count
            camera_nodes = [
                handle.name
                for name, frusta in self._frusta.items()
                if frusta.root.visible
                for handle in [*frusta.plain.values(), *frusta.imaged.values()]
                if handle.visible
            ]
            counts = [0] * num_frames
            for index, nodes in self._frames.items():
                counts[index] = nodes.point_count
            return SceneState(
                num_frames=num_frames,
                frame=self._frame,
                frames_sent=len(self._frames),
                streaming=not self._stream_done.is_set(),
                frame_nodes=tuple(self._frames[i].root.name for i in sorted(self._frames)),
                visible_frames=tuple(visible_frames),
                visible_nodes=tuple(visible_nodes),
                visible_camera_nodes=tuple(sorted(camera_nodes)),
                point_counts=tuple(counts),
                visible_points=visible_points,
                visible_dynamic_points=visible_dynamic,
                geometry_sends=tuple(self._geometry_sends),
                color_sends=tuple(self._color_sends),
                bytes_sent=self._bytes_sent,
                display_mode=self._mode,
                trail=self._trail,
                point_source=self._source,
                confidence_percentile=self._percentile,
                point_size=self._point_size,
                downsample=self._downsample,
                mask_opacity=self._opacity,
                mask_threshold=self._threshold_bin / display.MASK_BINS,
                has_mask=self._clip is not None and self._clip.probability is not None,
                variants=tuple(self._frusta),
                variant_visible=dict(self._variant_visible),
                playing=self._playing.is_set() and not self._closed.is_set(),
                fps=self._fps,
                loop=self._loop,
            )

    # ------------------------------------------------------------------ internals: sending

    def _prepare_clip(self, recon: Reconstruction) -> _Clip:
        """Everything the per-frame sends share, computed once per show / resend."""
        height, width = recon.image_hw
        rows, cols = display.pixel_grid(height, width, self._downsample)
        probability = None
        patch_grid = (1, 1)
        if recon.mask_score is not None:
            probability = display.dynamic_probability(recon.mask_score)
            patch_grid = probability.shape[1:]
        cameras = dict(recon.cameras)
        if "ground_truth" in cameras:
            # Ground truth lives in its own world and scale: show it aligned onto the prediction.
            cameras["ground_truth"] = recon.aligned_cameras("ground_truth")
        confidence = recon.points_conf if self._source == "points" else recon.depth_conf
        centres = geometry.camera_centers(cameras["masked"].extrinsics)
        depth = recon.depth[:, ::8, ::8]
        depth = depth[np.isfinite(depth) & (depth > 0)]
        return _Clip(
            recon=recon,
            source=self._source,
            cameras=cameras,
            rows=rows,
            cols=cols,
            probability=probability,
            patch_rows=display.patch_index(rows, height, patch_grid[0]),
            patch_cols=display.patch_index(cols, width, patch_grid[1]),
            confidence_cut=display.confidence_threshold(confidence, self._percentile),
            frustum_length=display.frustum_length(centres, depth),
            scene_depth=float(np.median(depth)) if depth.size else 1.0,
        )

    def _frame_points(self, clip: _Clip, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Points of one frame after downsampling and the confidence filter.

        The filter is `result.points.frame_points`, the one the GLB/PLY exports use.

        Returns:
            positions (N, 3) float32, image colours (N, 3) uint8, dynamic probability (N,).
        """
        cloud = frame_points(
            clip.recon,
            index,
            threshold=clip.confidence_cut,
            source=clip.source,
            rows=clip.rows,
            cols=clip.cols,
        )
        if clip.probability is None:
            probability = np.zeros(len(cloud.points), dtype=np.float32)
        else:
            height, width = clip.recon.image_hw
            grid_h, grid_w = clip.probability.shape[1:]
            patch_rows = display.patch_index(cloud.pixel_index // width, height, grid_h)
            patch_cols = display.patch_index(cloud.pixel_index % width, width, grid_w)
            probability = clip.probability[index][patch_rows, patch_cols]
        return cloud.points, cloud.colors, probability

    def _send_frame(self, clip: _Clip, index: int) -> None:
        """Send one frame's points (one node per mask bin) and its frusta. Holds the lock."""
        positions, colors, probability = self._frame_points(clip, index)
        bins = display.mask_bins(probability)
        order = np.argsort(bins, kind="stable")
        bin_ids, starts = np.unique(bins[order], return_index=True)
        ends = [*starts[1:], len(order)]
        with self._lock, self._server.atomic():
            if self._clip is not clip:
                return  # a newer show() or resend replaced this clip
            name = f"/frames/t{index:04d}/points"
            root = self._server.scene.add_frame(
                name, show_axes=False, visible=self._frame_visible(index)
            )
            nodes = _FrameNodes(root=root, bins={}, point_count=len(positions))
            for bin_id, start, end in zip(bin_ids.tolist(), starts.tolist(), ends, strict=True):
                chosen = order[start:end]
                weight = self._bin_weight(bin_id)
                handle = self._server.scene.add_point_cloud(
                    f"{name}/m{bin_id:02d}",
                    points=positions[chosen],
                    colors=_overlay_colors(colors[chosen], probability[chosen], weight),
                    point_size=self._point_size,
                    point_shape="rounded",
                    point_shading="flat",
                    visible=display.dynamic_visible(self._mode, index, self._frame)
                    or not self._is_dynamic(bin_id),
                )
                nodes.bins[bin_id] = _Bin(handle, colors[chosen], probability[chosen], weight)
                # float16 positions (viser's default precision) + uint8 colours.
                self._bytes_sent += len(chosen) * (3 * 2 + 3)
            self._frames[index] = nodes
            self._geometry_sends[index] += 1
            if not any(index in frusta.plain for frusta in self._frusta.values()):
                self._send_frusta(clip, index)

    def _send_trajectories(self) -> None:
        """Per variant: a root node, the trajectory line and the camera poses. Holds the lock."""
        clip = self._clip
        assert clip is not None
        height, width = clip.recon.image_hw
        for variant, cameras in clip.cameras.items():
            color = display.VARIANT_COLORS[variant]
            root = self._server.scene.add_frame(
                f"/cameras/{variant}", show_axes=False, visible=self._variant_visible[variant]
            )
            wxyz, centres = display.camera_poses(cameras.extrinsics)
            fov, aspect = display.frustum_fov_aspect(cameras.intrinsics, height, width)
            self._frusta[variant] = _Frusta(
                root=root, wxyz=wxyz, centres=centres, fov=fov, aspect=aspect
            )
            segments = display.trajectory_segments(centres)
            if len(segments):
                self._server.scene.add_line_segments(
                    f"/cameras/{variant}/trajectory",
                    points=segments,
                    colors=color,
                    thickness=2.0,
                    thickness_units="screen",
                )

    def _set_initial_view(self) -> None:
        """Start every viewer (new and connected) behind the first camera. Holds the lock."""
        clip = self._clip
        assert clip is not None
        position, look_at, up = display.initial_view(
            clip.cameras["masked"].extrinsics[0], clip.scene_depth
        )
        initial = self._server.initial_camera
        initial.position, initial.look_at, initial.up = position, look_at, up
        for client in self._server.get_clients().values():
            _move_view(client, position, look_at, up)

    def _send_frusta(self, clip: _Clip, index: int) -> None:
        """Each variant's frustum of one frame: a wireframe, and one with the image that is
        shown instead while this is the current frame. Holds the lock."""
        thumbnail = _thumbnail(clip.recon.images[index])
        for variant, frusta in self._frusta.items():
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
            current = index == self._frame
            plain = self._server.scene.add_camera_frustum(
                f"{name}/frusta/t{index:04d}", visible=not current, **common
            )
            imaged = self._server.scene.add_camera_frustum(
                f"{name}/images/t{index:04d}",
                image=thumbnail,
                format="jpeg",
                jpeg_quality=80,
                visible=current,
                **common,
            )
            self._bytes_sent += len(getattr(imaged, "_image_data", None) or b"")
            for handle in (plain, imaged):
                handle.on_click(self._frustum_click_callback(variant, index))
            frusta.plain[index] = plain
            frusta.imaged[index] = imaged

    def _frustum_click_callback(self, variant: str, index: int) -> Callable[[Any], None]:
        def on_click(event: Any) -> None:
            self._view_from_camera(event.client, variant, index)
            self._move_to_frame(index, notify=True)

        return on_click

    def _view_from_camera(self, client: Any, variant: str, index: int) -> None:
        """Put a client's viewpoint at a camera: its pose and its vertical field of view."""
        with self._lock:
            frusta = self._frusta.get(variant)
            if frusta is None or frusta.wxyz is None or index >= len(frusta.wxyz):
                return
            wxyz, position, fov = frusta.wxyz[index], frusta.centres[index], frusta.fov[index]
        with client.atomic():
            client.camera.wxyz = wxyz
            client.camera.position = position
            client.camera.fov = float(fov)

    def _start_stream(self, progress: ProgressCallback | None) -> None:
        """Send the current frame now, then the others from a background thread."""
        with self._lock:
            clip = self._clip
            if clip is None:
                return
            order = _send_order(clip.recon.num_frames, self._visible_frame_indices(), self._frame)
            self._stream_cancel = threading.Event()
            self._stream_done.clear()
            cancel = self._stream_cancel
        started = time.perf_counter()
        self._send_frame(clip, order[0])
        _report(progress, 1 / len(order), f"sent frame 1/{len(order)}")
        logger.debug("first frame sent in %.3f s", time.perf_counter() - started)
        if len(order) == 1:
            self._stream_done.set()
            return
        self._stream_thread = threading.Thread(
            target=self._stream_frames,
            args=(clip, order[1:], cancel, progress, len(order)),
            name="scene-stream",
            daemon=True,
        )
        self._stream_thread.start()

    def _stream_frames(
        self,
        clip: _Clip,
        order: list[int],
        cancel: threading.Event,
        progress: ProgressCallback | None,
        total: int,
    ) -> None:
        try:
            for count, index in enumerate(order, start=2):
                if cancel.is_set() or self._closed.is_set():
                    return
                self._send_frame(clip, index)
                _report(progress, count / total, f"sent frame {count}/{total}")
        except Exception:
            logger.exception("sending frames to the scene failed")
        finally:
            if not cancel.is_set():
                self._stream_done.set()

    def _cancel_stream(self) -> None:
        """Stop a running stream and wait for it (it holds the lock one frame at a time)."""
        self._stream_cancel.set()
        thread = self._stream_thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        self._stream_thread = None
        self._stream_done.set()

    def _resend_points(self) -> None:
        """Replace every frame's points after a change of source, confidence or stride."""
        self._cancel_stream()
        with self._lock, self._server.atomic():
            if self._clip is None:
                return
            for nodes in self._frames.values():
                nodes.root.remove()
            self._frames = {}
            self._clip = self._prepare_clip(self._clip.recon)
            self._sync_gui()
        self._start_stream(progress=None)

    def _remove_nodes(self) -> None:
        """Remove every point and camera node. Holds the lock."""
        for nodes in self._frames.values():
            nodes.root.remove()
        for frusta in self._frusta.values():
            frusta.root.remove()
        self._frames = {}
        self._frusta = {}

    # ------------------------------------------------------------------ internals: showing

    def _move_to_frame(self, frame: int, notify: bool) -> None:
        with self._lock:
            num_frames = self.num_frames
            frame = int(np.clip(frame, 0, max(num_frames - 1, 0)))
            if frame == self._frame:
                return
            with self._server.atomic():
                self._frame = frame
                self._apply_visibility()
                self._set_control(self._gui.frame, frame)
            callbacks = list(self._frame_callbacks)
        if notify:
            for callback in callbacks:
                try:
                    callback(frame)
                except Exception:
                    logger.exception("a frame-change callback failed")

    def _is_dynamic(self, bin_id: int) -> bool:
        has_mask = self._clip is not None and self._clip.probability is not None
        return has_mask and bin_id >= self._threshold_bin

    def _bin_weight(self, bin_id: int) -> float:
        return self._opacity if self._is_dynamic(bin_id) else 0.0

    def _frame_visible(self, index: int) -> bool:
        return index in self._visible_frame_indices()

    def _visible_frame_indices(self) -> set[int]:
        frames = display.frames_to_show(self._mode, self._frame, self.num_frames, self._trail)
        return set(frames.tolist())

    def _apply_visibility(self) -> None:
        """Make nodes match the frame, mode, threshold and overlay. Holds the lock and an
        atomic block. Only toggles visibility, plus colours of frames on screen whose
        overlay changed."""
        shown = self._visible_frame_indices()
        for index, nodes in self._frames.items():
            visible = index in shown
            nodes.root.visible = visible
            if not visible:
                continue
            recoloured = False
            for bin_id, point_bin in nodes.bins.items():
                dynamic = self._is_dynamic(bin_id)
                point_bin.handle.visible = not dynamic or display.dynamic_visible(
                    self._mode, index, self._frame
                )
                weight = self._bin_weight(bin_id)
                if weight != point_bin.weight:
                    point_bin.weight = weight
                    point_bin.handle.colors = _overlay_colors(
                        point_bin.image_colors, point_bin.probability, weight
                    )
                    self._bytes_sent += point_bin.image_colors.nbytes
                    recoloured = True
            if recoloured:
                self._color_sends[index] += 1
        for frusta in self._frusta.values():
            for index, handle in frusta.plain.items():
                handle.visible = index != self._frame
            for index, handle in frusta.imaged.items():
                handle.visible = index == self._frame

    def _set_control(self, handle: Any, value: Any) -> None:
        """Show a value in one of the scene's controls without running its callback."""
        with self._writing_gui():
            handle.value = value

    @contextlib.contextmanager
    def _writing_gui(self) -> Iterator[None]:
        previous = getattr(self._gui_writer, "active", False)
        self._gui_writer.active = True
        try:
            yield
        finally:
            self._gui_writer.active = previous

    def _sync_gui(self) -> None:
        """Write the scene's settings into its Viser controls. Holds the lock."""
        with self._writing_gui():
            self._write_settings_to_gui()

    def _write_settings_to_gui(self) -> None:
        gui = self._gui
        num_frames = self.num_frames
        gui.frame.max = max(num_frames - 1, 1)
        gui.frame.value = self._frame
        gui.frame.disabled = num_frames <= 1
        gui.trail.max = max(num_frames, 2)
        gui.trail.value = min(self._trail, int(gui.trail.max))
        gui.downsample.value = self._downsample
        gui.playing.value = self._playing.is_set()
        gui.fps.value = int(np.clip(round(self._fps), 1, 60))
        gui.loop.value = self._loop
        gui.mode.value = self._mode
        gui.source.value = self._source
        gui.percentile.value = self._percentile
        gui.opacity.value = self._opacity
        gui.threshold.value = self._threshold_bin / display.MASK_BINS
        gui.point_size.min = self._point_size / 10
        gui.point_size.max = self._point_size * 10
        gui.point_size.step = self._point_size / 10
        gui.point_size.value = self._point_size
        variants = () if self._clip is None else tuple(self._clip.cameras)
        for name, checkbox in gui.variants.items():
            checkbox.disabled = name not in variants
            checkbox.value = self._variant_visible[name]
        has_mask = self._clip is not None and self._clip.probability is not None
        gui.opacity.disabled = not has_mask
        gui.threshold.disabled = not has_mask

    # ------------------------------------------------------------------ playback

    def _playback_loop(self) -> None:
        """Advance one frame per 1/fps seconds while playing, until closed."""
        while not self._closed.is_set():
            if not self._playing.wait(timeout=1.0) or self._closed.is_set():
                continue
            started = time.monotonic()
            self._advance()
            self._closed.wait(max(0.0, 1.0 / self._fps - (time.monotonic() - started)))

    def _advance(self) -> None:
        with self._lock:
            num_frames = self.num_frames
            if num_frames <= 1:
                return
            following = self._frame + 1
            if following >= num_frames:
                if not self._loop:
                    self.set_playing(False)
                    return
                following = 0
        self._move_to_frame(following, notify=True)


@dataclass
class _Gui:
    """The scene's own controls in the Viser sidebar."""

    frame: Any
    playing: Any
    fps: Any
    loop: Any
    mode: Any
    trail: Any
    source: Any
    percentile: Any
    point_size: Any
    downsample: Any
    opacity: Any
    threshold: Any
    variants: dict[str, Any]


def _build_gui(server: viser.ViserServer, scene: SceneView) -> _Gui:
    """Add the timeline, display, mask and camera controls, wired to the scene's setters."""
    gui = server.gui
    with gui.add_folder("Timeline"):
        frame = gui.add_slider("Frame", min=0, max=1, step=1, initial_value=0, disabled=True)
        playing = gui.add_checkbox("Play", False)
        fps = gui.add_slider("FPS", min=1, max=60, step=1, initial_value=DEFAULT_FPS)
        loop = gui.add_checkbox("Loop", True)
    with gui.add_folder("Points"):
        mode = gui.add_dropdown("Display", display.DISPLAY_MODES, initial_value="current")
        trail = gui.add_slider("Trail (frames)", min=1, max=2, step=1, initial_value=1)
        source = gui.add_dropdown("Point source", display.POINT_SOURCES, initial_value="points")
        percentile = gui.add_slider(
            "Confidence drop %", min=0, max=95, step=5, initial_value=DEFAULT_CONF_PERCENTILE
        )
        point_size = gui.add_slider(
            "Point size", min=0.001, max=0.1, step=0.001, initial_value=0.01
        )
        downsample = gui.add_slider(
            "Downsample", min=1, max=MAX_DOWNSAMPLE, step=1, initial_value=1
        )
    with gui.add_folder("Mask overlay"):
        step = 1.0 / display.MASK_BINS
        opacity = gui.add_slider(
            "Opacity", min=0.0, max=1.0, step=0.05, initial_value=DEFAULT_MASK_OPACITY
        )
        threshold = gui.add_slider(
            "Threshold", min=0.0, max=1.0, step=step, initial_value=DEFAULT_MASK_THRESHOLD
        )
    with gui.add_folder("Cameras"):
        variants = {
            name: gui.add_checkbox(display.VARIANT_LABELS[name], True) for name in display.VARIANTS
        }
    handles = _Gui(
        frame, playing, fps, loop, mode, trail, source, percentile, point_size, downsample,
        opacity, threshold, variants,
    )  # fmt: skip
    _wire_gui(handles, scene)
    return handles


def _wire_gui(gui: _Gui, scene: SceneView) -> None:
    """Each control calls one scene setter; setters write back to the controls, which is a
    no-op when the value is unchanged, so nothing loops."""
    bindings: list[tuple[Any, Callable[[], None]]] = [
        (gui.frame, lambda: scene._move_to_frame(int(gui.frame.value), notify=True)),
        (gui.playing, lambda: scene.set_playing(bool(gui.playing.value))),
        (gui.fps, lambda: scene.set_fps(float(gui.fps.value))),
        (gui.loop, lambda: scene.set_loop(bool(gui.loop.value))),
        (gui.mode, lambda: scene.set_display(str(gui.mode.value), int(gui.trail.value))),
        (gui.trail, lambda: scene.set_display(str(gui.mode.value), int(gui.trail.value))),
        (gui.source, lambda: scene.set_point_source(str(gui.source.value))),
        (gui.percentile, lambda: scene.set_confidence_percentile(float(gui.percentile.value))),
        (gui.point_size, lambda: scene.set_point_size(float(gui.point_size.value))),
        (gui.downsample, lambda: scene.set_downsample(int(gui.downsample.value))),
        (gui.opacity, lambda: _set_overlay_from_gui(gui, scene)),
        (gui.threshold, lambda: _set_overlay_from_gui(gui, scene)),
    ]
    for name, checkbox in gui.variants.items():
        bindings.append((checkbox, _variant_setter(scene, name, checkbox)))
    for handle, apply in bindings:
        handle.on_update(_from_user(scene, apply))


def _set_overlay_from_gui(gui: _Gui, scene: SceneView) -> None:
    scene.set_mask_overlay(float(gui.opacity.value), float(gui.threshold.value))


def _variant_setter(scene: SceneView, name: str, checkbox: Any) -> Callable[[], None]:
    return lambda: scene.set_variant_visible(name, bool(checkbox.value))


def _from_user(scene: SceneView, apply: Callable[[], None]) -> Callable[[Any], None]:
    """A control callback that acts on user edits and ignores the scene's own writes."""

    def callback(_event: Any) -> None:
        if getattr(scene._gui_writer, "active", False):
            return
        try:
            apply()
        except DisplayError as error:
            logger.warning("%s", error)
            with scene._lock:
                scene._sync_gui()  # put the refused value back

    return callback


def _move_view(client: Any, position: np.ndarray, look_at: np.ndarray, up: np.ndarray) -> None:
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


def _source_variant(source: str) -> str | None:
    """The camera variant a point source unprojects depth with (None for the point map)."""
    return {"depth_masked": "masked", "depth_unmasked": "unmasked"}.get(source)


def _send_order(num_frames: int, visible: Iterable[int], current: int) -> list[int]:
    """Current frame first, then the other visible frames, then the rest in time order."""
    first = [current] + sorted(set(visible) - {current})
    rest = [i for i in range(num_frames) if i not in set(first)]
    return [i for i in first if 0 <= i < num_frames] + rest


def _auto_point_size(clip: _Clip) -> float:
    """About the footprint of one kept pixel at the clip's median depth (scene units)."""
    focal = float(np.median(clip.cameras["masked"].intrinsics[:, 1, 1]))
    if not np.isfinite(focal) or focal <= 0:
        return 0.01
    stride = int(clip.rows[1] - clip.rows[0]) if len(clip.rows) > 1 else 1
    return float(1.5 * stride * clip.scene_depth / focal)


def _warm_up_encoders() -> None:
    """Load the colormap and the JPEG encoder now: their first use costs ~0.3 s of imports,
    which would otherwise delay the first frame of the first show()."""
    import imageio.v3 as iio

    display.heat_colors(np.zeros(1))
    iio.imwrite("<bytes>", np.zeros((2, 2, 3), dtype=np.uint8), extension=".jpeg")


def _overlay_colors(image_colors: np.ndarray, probability: np.ndarray, weight: float) -> np.ndarray:
    """(N, 3) uint8 colours of points: the image blended with the mask heat map by `weight`."""
    if weight == 0.0:
        return image_colors
    return display.blend_colors(image_colors, probability, weight)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A small copy of a frame for its frustum (about THUMBNAIL_WIDTH pixels wide)."""
    from PIL import Image

    height, width = image.shape[:2]
    if width <= THUMBNAIL_WIDTH:
        return image
    size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def _report(progress: ProgressCallback | None, fraction: float, description: str) -> None:
    if progress is None:
        return
    try:
        progress(fraction, description)
    except Exception:
        logger.exception("the progress callback failed")
