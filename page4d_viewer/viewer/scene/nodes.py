"""What the scene sent: per-frame node bookkeeping, and the stream that sends the frames.

Each frame's points are sent once, as the node `/frames/t{i:04d}/points` with one child
`.../m{b:02d}` per bin of dynamic probability; each camera variant is a node
`/cameras/{variant}` holding its trajectory and one wireframe and one imaged frustum per frame.
The dataclasses here remember those handles (and the colours each bin was sent with), so the
layers can toggle and recolour instead of sending again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.result import points
from page4d_viewer.result.points import point_footprint
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import PointSource

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Cameras, Reconstruction
    from page4d_viewer.viewer.scene.points import PointCell

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], Any]
THUMBNAIL_WIDTH = 160  # pixels of the image shown on the current frame's frustum


@dataclass
class PointBin:
    """One cell's point cloud in the scene: its handle, the cell it was sent from (shared
    with every scene showing the result), and what its colours on screen were made with."""

    handle: viser.PointCloudHandle
    cell: PointCell
    weight: float  # overlay blend weight the colours on screen were made with
    stamp: Hashable = None  # what the colours on screen were made from (colouring.py)


@dataclass
class FrameNodes:
    """What was sent for one frame."""

    root: viser.FrameHandle  # /frames/t{i:04d}/points
    bins: dict[tuple[int, int], PointBin]  # (mask bin, confidence bin) -> its point cloud
    point_count: int


@dataclass
class Frusta:
    """One variant's camera nodes."""

    root: viser.FrameHandle  # /cameras/{variant}
    wxyz: np.ndarray  # (S, 4) world-from-camera rotations, scalar first
    centres: np.ndarray  # (S, 3) camera centres
    fov: np.ndarray  # (S,) vertical field of view, radians
    aspect: np.ndarray  # (S,) width over height
    # frame -> wireframe frustum / frustum with its image
    plain: dict[int, viser.CameraFrustumHandle] = field(default_factory=dict)
    imaged: dict[int, viser.CameraFrustumHandle] = field(default_factory=dict)


@dataclass
class PreparedResult:
    """The result shown, prepared for the scene: the Reconstruction plus what every layer
    derives from it for one point source and stride (pixel grid, dynamic probability,
    confidence bins, aligned cameras, frustum size)."""

    recon: Reconstruction
    source: PointSource
    stride: int  # pixel stride of the points
    cameras: dict[str, Cameras]  # ground truth already aligned onto "masked"
    rows: np.ndarray  # (H',) pixel rows kept
    cols: np.ndarray  # (W',) pixel columns kept
    probability: np.ndarray | None  # (S, h, w) dynamic probability per patch
    mask_top: float  # probability drawn in the heat map's last colour (result.mask.mask_scale)
    patch_rows: np.ndarray  # (H',) patch row of each kept pixel row
    patch_cols: np.ndarray  # (W',) patch column of each kept pixel column
    confidence_edges: np.ndarray  # (CONFIDENCE_BINS - 1,) result.points.confidence_edges
    frustum_length: float  # centre to image plane, scene units
    scene_depth: float  # median depth, scene units

    @property
    def has_mask(self) -> bool:
        """Whether the Reconstruction has a dynamic mask score."""
        return self.probability is not None


def prepare_clip(recon: Reconstruction, source: PointSource, stride: int) -> PreparedResult:
    """Everything the per-frame sends of one point source and stride share (computed once
    per show, and once per source or stride first shown)."""
    height, width = recon.image_hw
    rows, cols = display.pixel_grid(height, width, stride)
    probability = None
    patch_grid = (1, 1)
    if recon.mask_score is not None:
        probability = display.dynamic_probability(recon.mask_score)
        patch_grid = probability.shape[1:]
    cameras = dict(recon.cameras)
    if "ground_truth" in cameras:
        # Ground truth lives in its own world and scale: show it aligned onto the prediction.
        cameras["ground_truth"] = recon.aligned_cameras("ground_truth")
    centres = geometry.camera_centers(cameras["masked"].extrinsics)
    depth = recon.depth[:, ::8, ::8]
    depth = depth[np.isfinite(depth) & (depth > 0)]
    return PreparedResult(
        recon=recon,
        source=source,
        stride=int(stride),
        cameras=cameras,
        rows=rows,
        cols=cols,
        probability=probability,
        mask_top=display.mask_scale(recon.mask_score),
        patch_rows=display.patch_index(rows, height, patch_grid[0]),
        patch_cols=display.patch_index(cols, width, patch_grid[1]),
        confidence_edges=points.confidence_edges(points.source_confidence(recon, source)),
        frustum_length=display.frustum_length(centres, depth),
        scene_depth=float(np.median(depth)) if depth.size else 1.0,
    )


def source_variant(source: str) -> str | None:
    """The camera variant a point source unprojects depth with (None for the point map)."""
    return {"depth_masked": "masked", "depth_unmasked": "unmasked"}.get(source)


def auto_point_size(clip: PreparedResult) -> float:
    """About the footprint of one kept pixel at the clip's median depth (scene units)."""
    focal = float(np.median(clip.cameras["masked"].intrinsics[:, 1, 1]))
    stride = int(clip.rows[1] - clip.rows[0]) if len(clip.rows) > 1 else 1
    return point_footprint(stride, clip.scene_depth, focal)


def overlay_colors(
    image_colors: np.ndarray, probability: np.ndarray, weight: float, top: float = 1.0
) -> np.ndarray:
    """(N, 3) uint8 colours of points: the image blended with the mask heat map by `weight`,
    the heat map topping out at probability `top` (the clip's `mask_scale`)."""
    if weight == 0.0:
        return image_colors
    return display.blend_colors(image_colors, probability, weight, top=top)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small copy of a frame for its frustum (about THUMBNAIL_WIDTH pixels wide)."""
    from PIL import Image

    height, width = image.shape[:2]
    if width <= THUMBNAIL_WIDTH:
        return image
    size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def send_order(num_frames: int, visible: Iterable[int], current: int) -> list[int]:
    """Current frame first, then the other visible frames, then the rest in time order."""
    first = [current] + sorted(set(visible) - {current})
    rest = [i for i in range(num_frames) if i not in set(first)]
    return [i for i in first if 0 <= i < num_frames] + rest


def warm_up_encoders() -> None:
    """Load the colormap and the JPEG encoder now: their first use costs ~0.3 s of imports,
    which would otherwise delay the first frame of the first show()."""
    import imageio.v3 as iio

    display.heat_colors(np.zeros(1))
    iio.imwrite("<bytes>", np.zeros((2, 2, 3), dtype=np.uint8), extension=".jpeg")


def share_prop_hints() -> None:
    """Make Viser read each node class's property types once, not once per node.

    Viser resolves `typing.get_type_hints` of a node's props class for every handle it makes
    (a cached property per instance); that was about a third of the ~1.6 ms each of the
    ~1,600 point clouds of a default result costs per scene. The hints depend on the class
    alone, so they are kept per class. Does nothing if this Viser no longer works that way.
    """
    from viser import _assignable_props_api as props_api

    base: type | None = getattr(props_api, "AssignablePropsBase", None)
    current = getattr(base, "_prop_hints", None)
    if (
        base is None
        or not isinstance(current, functools.cached_property)
        or getattr(current.func, "shared_per_class", False)
    ):
        return
    per_class: dict[type, dict[str, Any]] = {}

    def prop_hints(handle: Any) -> dict[str, Any]:
        props_class = type(handle._impl.props)
        if props_class not in per_class:
            per_class[props_class] = current.func(handle)
        return per_class[props_class]

    prop_hints.shared_per_class = True  # type: ignore[attr-defined]
    shared = functools.cached_property(prop_hints)
    shared.__set_name__(base, "_prop_hints")
    base._prop_hints = shared  # type: ignore[attr-defined]


def skip_unchanged_poses_quickly() -> None:
    """Make Viser see an unchanged node pose without `np.allclose`.

    Viser sets every new node's orientation and position, which it compares with the node's
    current one by `np.allclose` (about 0.1 ms each, twice per node: a quarter of what each
    of a default result's ~1,600 point clouds cost a scene). A pose given as a tuple exactly
    equal to the current one (the default pose our nodes are made with) is unchanged either
    way, so it returns at once; any other pose goes through Viser's own check. Does nothing
    if this Viser no longer works that way.
    """
    from viser import _scene_handles as handles

    original = getattr(handles, "_set_pose_vector", None)
    if original is None or getattr(original, "skips_equal_tuples", False):
        return

    def set_pose_vector(
        current: np.ndarray, value: Any, length: int, queue: Any, make_message: Any
    ) -> None:
        if isinstance(value, tuple) and len(value) == length and value == tuple(current.tolist()):
            return
        original(current, value, length, queue, make_message)

    set_pose_vector.skips_equal_tuples = True  # type: ignore[attr-defined]
    handles._set_pose_vector = set_pose_vector  # type: ignore[attr-defined]


class FrameStream:
    """Sends a clip's frames: the first before returning, the others from a background thread.

    Args:
        send: `send(clip, index)` sends one frame (it takes the scene's lock itself).
        closed: set when the scene closes; the stream then stops.
    """

    def __init__(
        self, send: Callable[[PreparedResult, int], None], closed: threading.Event
    ) -> None:
        self._send = send
        self._closed = closed
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._done.set()

    @property
    def streaming(self) -> bool:
        """Whether frames are still being sent."""
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every frame has been sent; returns False on timeout."""
        return self._done.wait(timeout)

    def begin(self) -> threading.Event:
        """Mark a new stream as under way (call with the scene's lock); returns its cancel flag."""
        self._cancel = threading.Event()
        self._done.clear()
        return self._cancel

    def run(
        self,
        clip: PreparedResult,
        order: list[int],
        cancel: threading.Event,
        progress: ProgressCallback | None,
    ) -> None:
        """Send `order[0]` now, then the rest from a thread (call without the scene's lock)."""
        started = time.perf_counter()
        self._send(clip, order[0])
        report(progress, 1 / len(order), f"sent frame 1/{len(order)}")
        logger.debug("first frame sent in %.3f s", time.perf_counter() - started)
        if len(order) == 1:
            self._done.set()
            return
        self._thread = threading.Thread(
            target=self._send_rest,
            args=(clip, order[1:], cancel, progress, len(order)),
            name="scene-stream",
            daemon=True,
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop a running stream and wait for it (it holds the lock one frame at a time)."""
        self._cancel.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=10.0)
        self._thread = None
        self._done.set()

    def _send_rest(
        self,
        clip: PreparedResult,
        order: list[int],
        cancel: threading.Event,
        progress: ProgressCallback | None,
        total: int,
    ) -> None:
        try:
            for count, index in enumerate(order, start=2):
                if cancel.is_set() or self._closed.is_set():
                    return
                self._send(clip, index)
                report(progress, count / total, f"sent frame {count}/{total}")
        except Exception:
            logger.exception("sending frames to the scene failed")
        finally:
            if not cancel.is_set():
                self._done.set()


def report(progress: ProgressCallback | None, fraction: float, description: str) -> None:
    """Call a progress callback, logging (not raising) what it raises."""
    if progress is None:
        return
    try:
        progress(fraction, description)
    except Exception:
        logger.exception("the progress callback failed")
