"""Point tracks of a Reconstruction: where query pixels go, in 2-D and lifted to 3-D.

Torch-free. The track head follows query pixels through the clip in image space; a track is
one query's pixel position, visibility and confidence in every frame. Its 3-D path is the
reconstruction's own geometry read at those pixels (`lift`), so the viewer, the GLB and the
CSV show the same points as the point cloud, from any point source.

Pixel convention (the model's and the synthetic ground truth's): pixel (row i, column j) has
its centre at (x, y) = (j, i), so (0, 0) is the centre of the first pixel.

In the file (format version 3, all optional): ``track_xy`` (S, N, 2) float32,
``track_visibility`` and ``track_confidence`` (S, N) float16, ``track_query_frame`` (N,) int64;
the ground truth of the same queries, when the clip has it (a synthetic scene), in the same
four arrays named ``gt_track_*`` (``inference/tracking.py`` builds them).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.mask import dynamic_probability, patch_index
from page4d_viewer.result.points import source_variant
from page4d_viewer.settings import DEFAULT_MASK_THRESHOLD

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

TRACK_PREFIX = "track"
"""File prefix of the predicted tracks' arrays."""
GT_TRACK_PREFIX = "gt_track"
"""File prefix of the ground-truth tracks' arrays (visibility 0/1, confidence 1)."""

VISIBLE_THRESHOLD = 0.5
"""A track point counts as visible when its visibility probability is at least this."""

# float16 rounding of a probability stays within this of [0, 1]
_PROBABILITY_SLACK = 1e-3


@dataclass
class Tracks:
    """N point tracks through S frames.

    Attributes:
        xy: (S, N, 2) float32 pixel (x, y) of each track in each frame, model-input pixels.
        visibility: (S, N) float32 probability that the point is visible in the frame.
        confidence: (S, N) float32 probability that the position is right.
        query_frame: (N,) int64 frame position (0..S-1) each track was seeded on.
    """

    xy: npt.NDArray[np.float32]
    visibility: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    query_frame: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32)
        if self.xy.ndim != 3 or self.xy.shape[-1] != 2:
            raise ValueError(f"track xy must be (S, N, 2), got {self.xy.shape}")
        frames, count = self.xy.shape[:2]
        self.visibility = _probabilities("track visibility", self.visibility, (frames, count))
        self.confidence = _probabilities("track confidence", self.confidence, (frames, count))
        self.query_frame = np.asarray(self.query_frame).astype(np.int64, copy=False)
        if self.query_frame.shape != (count,):
            raise ValueError(f"track query_frame must be ({count},), got {self.query_frame.shape}")
        if count and (self.query_frame.min() < 0 or self.query_frame.max() >= frames):
            raise ValueError(f"track query_frame must lie in 0..{frames - 1}")
        if not np.isfinite(self.xy).all():
            raise ValueError("track xy holds NaN or infinite values")

    @property
    def num_frames(self) -> int:
        """S."""
        return int(self.xy.shape[0])

    @property
    def num_tracks(self) -> int:
        """N."""
        return int(self.xy.shape[1])

    @property
    def query_xy(self) -> npt.NDArray[np.float32]:
        """(N, 2) pixel of each track on its query frame."""
        return self.xy[self.query_frame, np.arange(self.num_tracks)]

    def visible(self, threshold: float = VISIBLE_THRESHOLD) -> npt.NDArray[np.bool_]:
        """(S, N) bool: visible with at least ``threshold`` probability."""
        return self.visibility >= threshold

    def concat(self, other: Tracks) -> Tracks:
        """These tracks followed by ``other``'s (same frames)."""
        if other.num_frames != self.num_frames:
            raise ValueError(f"tracks of {other.num_frames} frames cannot join {self.num_frames}")
        return Tracks(
            np.concatenate([self.xy, other.xy], axis=1),
            np.concatenate([self.visibility, other.visibility], axis=1),
            np.concatenate([self.confidence, other.confidence], axis=1),
            np.concatenate([self.query_frame, other.query_frame]),
        )

    def select_frames(self, frames: npt.ArrayLike) -> Tracks | None:
        """The tracks seeded on one of ``frames`` (0-based positions), on those frames only.

        Returns None when no track was seeded on a kept frame.
        """
        frames = np.asarray(frames, dtype=np.int64)
        new_position = {int(old): new for new, old in enumerate(frames.tolist())}
        keep = np.array([int(q) in new_position for q in self.query_frame], dtype=bool)
        if not keep.any():
            return None
        return Tracks(
            self.xy[frames][:, keep],
            self.visibility[frames][:, keep],
            self.confidence[frames][:, keep],
            np.array([new_position[int(q)] for q in self.query_frame[keep]], dtype=np.int64),
        )

    def to_arrays(self, prefix: str = TRACK_PREFIX) -> dict[str, np.ndarray]:
        """The file's arrays (see the module docstring), named ``<prefix>_xy`` etc."""
        return {
            f"{prefix}_xy": self.xy,
            f"{prefix}_visibility": self.visibility.astype(np.float16),
            f"{prefix}_confidence": self.confidence.astype(np.float16),
            f"{prefix}_query_frame": self.query_frame,
        }

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], prefix: str = TRACK_PREFIX
    ) -> Tracks | None:
        """Inverse of `to_arrays`; None when the file holds no such tracks (versions 1, 2)."""
        if f"{prefix}_xy" not in arrays:
            return None
        return cls(
            arrays[f"{prefix}_xy"],
            arrays[f"{prefix}_visibility"],
            arrays[f"{prefix}_confidence"],
            arrays[f"{prefix}_query_frame"],
        )

    def matches(self, other: Tracks) -> bool:
        """Whether ``other`` follows the same queries (same frames, count and query frames)."""
        return other.xy.shape == self.xy.shape and np.array_equal(
            other.query_frame, self.query_frame
        )


def _probabilities(
    name: str, values: npt.ArrayLike, shape: tuple[int, int]
) -> npt.NDArray[np.float32]:
    values = np.asarray(values, dtype=np.float32)
    if values.shape != shape:
        raise ValueError(f"{name} must be {shape}, got {values.shape}")
    if not np.isfinite(values).all() or values.min(initial=0) < -_PROBABILITY_SLACK:
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    if values.max(initial=0) > 1 + _PROBABILITY_SLACK:
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return np.clip(values, 0.0, 1.0)


# ------------------------------------------------------------------------------- 3-D paths


def pixel_of(
    xy: npt.NDArray[np.floating], image_hw: tuple[int, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Nearest pixel (rows, cols) of pixel positions (x, y), and whether each is inside.

    Args:
        xy: (..., 2) pixel (x, y).
        image_hw: (H, W).

    Returns:
        rows, cols (...) int64 clamped into the image; inside (...) bool.
    """
    height, width = image_hw
    cols = np.rint(xy[..., 0]).astype(np.int64)
    rows = np.rint(xy[..., 1]).astype(np.int64)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1), inside


def lift(
    recon: Reconstruction, source: str = "points", tracks: Tracks | None = None
) -> npt.NDArray[np.float32]:
    """3-D path of every track: the source's world point at the track's pixel in each frame.

    Nearest pixel, not bilinear: at an object's edge a blend of foreground and background
    points lies in neither.

    Args:
        recon: a Reconstruction with tracks.
        source: a point source of `result.points` ("points", "depth_masked", ...).
        tracks: the tracks to lift; None: ``recon.tracks`` (``recon.gt_tracks`` lifts the
            true pixels onto the predicted geometry, so the two paths differ only by the
            tracker's 2-D error).

    Returns:
        (S, N, 3) float32 world points; NaN where the track leaves the image, where the
        source has no point (depth <= 0) or where the geometry is not finite.
    """
    tracks = require_tracks(recon) if tracks is None else tracks
    variant = source_variant(source)
    rows, cols, inside = pixel_of(tracks.xy, recon.image_hw)
    frames = np.arange(recon.num_frames)[:, None]
    if variant is None:
        positions = recon.points[frames, rows, cols].astype(np.float64)
    else:
        cameras = recon.camera_variant(variant)
        depth = recon.depth[frames, rows, cols].astype(np.float64)
        intrinsics = cameras.intrinsics[:, None]
        camera_points = np.stack(
            [
                (cols - intrinsics[..., 0, 2]) / intrinsics[..., 0, 0] * depth,
                (rows - intrinsics[..., 1, 2]) / intrinsics[..., 1, 1] * depth,
                depth,
            ],
            axis=-1,
        )
        positions = geometry.transform_points(
            geometry.invert_rigid(cameras.extrinsics), camera_points
        )
        inside &= depth > 0
    positions = np.where(inside[..., None], positions, np.nan)
    positions[~np.isfinite(positions).all(axis=-1)] = np.nan
    return positions.astype(np.float32)


def query_dynamic_probability(recon: Reconstruction) -> npt.NDArray[np.float32]:
    """(N,) dynamic probability of the mask patch under each track's query pixel.

    Zeros when the result has no mask (every track then counts as static).
    """
    tracks = require_tracks(recon)
    if recon.mask_score is None:
        return np.zeros(tracks.num_tracks, dtype=np.float32)
    height, width = recon.image_hw
    grid_h, grid_w = recon.mask_score.shape[1:]
    rows, cols, _ = pixel_of(tracks.query_xy, recon.image_hw)
    probability = dynamic_probability(recon.mask_score)
    return probability[
        tracks.query_frame, patch_index(rows, height, grid_h), patch_index(cols, width, grid_w)
    ]


def moving_tracks(
    recon: Reconstruction, threshold: float = DEFAULT_MASK_THRESHOLD
) -> npt.NDArray[np.bool_]:
    """(N,) bool: the track was seeded on a patch whose dynamic probability is >= threshold."""
    return query_dynamic_probability(recon) >= threshold


# Hue bands of `track_colors`, as fractions of the colour wheel: red to yellow for moving
# tracks (the warm end of the mask's heat map), cyan to blue for static ones.
_MOVING_HUES = (0.0, 0.15)
_STATIC_HUES = (0.47, 0.68)
# Steps of the golden ratio spread any number of tracks over a band with neighbours far apart.
_GOLDEN = (5**0.5 - 1) / 2


def track_colors(moving: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """One colour per track, shared by the viewer and the exports: warm if moving, cool if not.

    The k-th moving (static) track takes hue ``band start + band width * frac(k * 0.618...)``
    of its band, so tracks seeded side by side differ, and a track keeps its colour when more
    tracks are appended (`Tracks.concat`).

    Args:
        moving: (N,) bool, from `moving_tracks`.

    Returns:
        (N, 3) uint8 RGB.
    """
    moving = np.asarray(moving, dtype=bool)
    rank = np.zeros(len(moving), dtype=np.int64)
    rank[moving] = np.arange(int(moving.sum()))
    rank[~moving] = np.arange(int((~moving).sum()))
    colors = np.empty((len(moving), 3), dtype=np.uint8)
    for index, (is_moving, k) in enumerate(zip(moving.tolist(), rank.tolist(), strict=True)):
        low, high = _MOVING_HUES if is_moving else _STATIC_HUES
        hue = low + (high - low) * ((k * _GOLDEN) % 1.0)
        colors[index] = np.round(np.array(colorsys.hsv_to_rgb(hue, 0.85, 0.95)) * 255)
    return colors


def require_tracks(recon: Reconstruction) -> Tracks:
    """The result's tracks; a one-line Page4DError when it has none."""
    if recon.tracks is None:
        raise Page4DError("this result has no point tracks (run with tracks to add them)")
    return recon.tracks


# ---------------------------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeds:
    """Query pixels on one frame.

    Attributes:
        frame: frame position the queries lie on.
        xy: (N, 2) float32 pixel (x, y).
    """

    frame: int
    xy: npt.NDArray[np.float32]


def seed_queries(
    mask_score: npt.NDArray[np.float32] | None,
    image_hw: tuple[int, int],
    count: int,
    moving_share: float = 0.75,
) -> Seeds:
    """Automatic query pixels: patch centres, most where the mask's dynamic probability is
    highest.

    The query frame is the one with the largest summed dynamic probability (the first frame
    without a mask). ``moving_share`` of the queries go on its patches of highest probability
    (ranked, not thresholded: a weakly trained mask that never reaches the display threshold
    still points at what moves most); the rest are spread evenly over its other patches, so
    the viewer can show moving and static tracks side by side.

    Args:
        mask_score: (S, h, w) mask scores, or None.
        image_hw: (H, W) model-input pixels.
        count: number of queries wanted (fewer when the frame has fewer patches).
        moving_share: the share of queries put on the most probably moving patches.

    Returns:
        The query frame and (N, 2) pixel centres of the chosen patches, N <= count.
    """
    if count < 1:
        raise ValueError(f"the number of tracks must be at least 1, got {count}")
    height, width = image_hw
    if mask_score is None:
        return Seeds(0, _static_grid(height, width, count))
    probability = dynamic_probability(mask_score)
    frame = int(np.argmax(probability.reshape(len(probability), -1).sum(axis=1)))
    grid_h, grid_w = probability.shape[1:]
    flat = probability[frame].reshape(-1)
    order = np.argsort(-flat, kind="stable")
    likely = order[flat[order] > 0][: int(round(count * moving_share))]
    others = np.setdiff1d(np.arange(len(flat)), likely)
    wanted = min(count - len(likely), len(others))
    others = others[np.linspace(0, len(others) - 1, wanted).astype(int)] if wanted else others[:0]
    rows, cols = np.divmod(np.concatenate([likely, others]), grid_w)
    centre_x = (cols + 0.5) * width / grid_w - 0.5
    centre_y = (rows + 0.5) * height / grid_h - 0.5
    return Seeds(frame, np.stack([centre_x, centre_y], axis=-1).astype(np.float32))


def _static_grid(height: int, width: int, count: int) -> npt.NDArray[np.float32]:
    """About ``count`` pixels on an even grid with the image's aspect ratio."""
    across = max(1, int(round(np.sqrt(count * width / height))))
    down = max(1, int(np.ceil(count / across)))
    xs = (np.arange(across) + 0.5) * width / across - 0.5
    ys = (np.arange(down) + 0.5) * height / down - 0.5
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return grid[:count].astype(np.float32)
