"""What the scene shows, computed without Viser: colours, frame selection, splits, frusta.

Pure numpy (and a matplotlib colormap lookup), so every rule the 3-D scene follows can be
unit-tested on arrays and reused by the Gradio panel for its 2-D overlay.

Conventions: cameras are OpenCV (x right, y down, z forward); an extrinsic is camera-from-world
(S, 3, 4); an intrinsic is (S, 3, 3) in pixels. Colours are uint8 RGB. The network's mask score
m lies in (-0.5, 0.5); `result.mask` reads it as "how dynamic" and draws the overlay.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

from page4d_viewer import geometry

# The mask reading (result.mask) and the point filter (result.points) are shared with the
# exports; re-exported here because the scene and the panel call them as display.<name>.
from page4d_viewer.result.cameras import VARIANT_COLORS, VARIANTS, initial_view  # noqa: F401
from page4d_viewer.result.mask import (  # noqa: F401
    DisplayError,
    blend_colors,
    check_overlay,
    check_overlay_mode,
    dynamic_probability,
    heat_colors,
    mask_scale,
    overlay_image,
    overlay_weight,
    patch_index,
    upsample_mask,
)
from page4d_viewer.result.points import (  # noqa: F401
    POINT_SOURCES,
    PointSource,
    auto_stride,
    check_percentile,
    confidence_threshold,
    pixel_grid,
)
from page4d_viewer.settings import DEFAULT_COLORMAP  # noqa: F401

DisplayMode = Literal["current", "trail", "all", "split"]
DISPLAY_MODES: tuple[DisplayMode, ...] = get_args(DisplayMode)

VARIANT_LABELS: dict[str, str] = {
    "masked": "masked",
    "unmasked": "unmasked",
    "geometry_masked": "geometry, masked",
    "geometry_unmasked": "geometry, unmasked",
    "ground_truth": "ground truth",
}

COMPARISON_PREFIX = "B: "
"""Prefix of the second run's labels when two runs are compared ("B: masked")."""


def comparison_color(variant: str) -> tuple[int, int, int]:
    """The second run's colour of a camera variant: its own colour, halfway to white."""
    red, green, blue = (round(c + 0.5 * (255 - c)) for c in VARIANT_COLORS[variant])
    return red, green, blue


# The mask threshold moves in these steps; the scene sorts points into this many bins of
# dynamic probability so that moving the threshold only toggles bins, never resends points.
MASK_BINS = 20

# Vertical field of view drawn for a camera whose predicted focal length is unusable.
FALLBACK_FOV = np.deg2rad(60.0)


def mask_bins(probability: np.ndarray, num_bins: int = MASK_BINS) -> np.ndarray:
    """Bin index of each dynamic probability: bin b holds p in [b/n, (b+1)/n), p = 1 in n-1.

    Args:
        probability: (...) values in [0, 1].
        num_bins: n, number of equal bins.

    Returns:
        (...) int64 bin indices in [0, n).
    """
    # A non-finite score (a broken prediction) counts as static: bin 0.
    values = np.asarray(probability, dtype=np.float64)
    finite = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    scaled = np.floor(finite * num_bins)
    return np.clip(scaled, 0, num_bins - 1).astype(np.int64)


def threshold_bin(threshold: float, num_bins: int = MASK_BINS) -> int:
    """First bin counted as dynamic for a threshold (snapped to the nearest 1/n step).

    A point is dynamic when its bin index is >= the returned value; a threshold of 0 makes
    everything dynamic and a threshold of 1 makes nothing dynamic.

    Args:
        threshold: dynamic probability threshold in [0, 1].
        num_bins: n, number of bins.

    Returns:
        Bin index in [0, n].
    """
    return int(np.clip(np.rint(threshold * num_bins), 0, num_bins))


def snap_threshold(threshold: float, num_bins: int = MASK_BINS) -> float:
    """The threshold the scene really applies: `threshold` rounded to a multiple of 1/n."""
    return threshold_bin(threshold, num_bins) / num_bins


def split_static_dynamic(
    probability: np.ndarray, threshold: float, num_bins: int = MASK_BINS
) -> np.ndarray:
    """Which points are dynamic under a (snapped) threshold.

    Args:
        probability: (...) dynamic probability in [0, 1].
        threshold: threshold in [0, 1], snapped to 1/num_bins steps like the scene does.
        num_bins: n, number of bins.

    Returns:
        (...) bool, True = dynamic (shown only at its own time in split mode).
    """
    return mask_bins(probability, num_bins) >= threshold_bin(threshold, num_bins)


def frames_to_show(mode: str, current: int, num_frames: int, trail: int) -> np.ndarray:
    """Frames whose points are visible for a display mode.

    "current": the current frame; "trail": the last `trail` frames up to the current one;
    "all" and "split": every frame (split then hides the dynamic part of the others, see
    `dynamic_visible`).

    Args:
        mode: one of DISPLAY_MODES.
        current: current frame index in [0, num_frames).
        num_frames: S.
        trail: trail length k >= 1 (only used by "trail").

    Returns:
        (K,) int64 sorted frame indices.
    """
    check_display(mode, trail)
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    current = int(np.clip(current, 0, num_frames - 1))
    if mode == "current":
        return np.array([current], dtype=np.int64)
    if mode == "trail":
        return np.arange(max(0, current - trail + 1), current + 1, dtype=np.int64)
    return np.arange(num_frames, dtype=np.int64)


def dynamic_visible(mode: str, frame: int, current: int) -> bool:
    """Whether the dynamic points of a visible frame are drawn: in split mode only at its time."""
    return mode != "split" or frame == current


def check_display(mode: str, trail: int) -> None:
    """Raise DisplayError for an unknown display mode or a trail shorter than one frame."""
    if mode not in DISPLAY_MODES:
        raise DisplayError(f"display mode must be one of {', '.join(DISPLAY_MODES)}, got {mode!r}")
    if int(trail) < 1:
        raise DisplayError(f"trail length must be at least 1 frame, got {trail}")


def frustum_fov_aspect(
    intrinsics: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical field of view and aspect of each camera, read from its intrinsics.

    Viser draws a frustum from a vertical fov and an aspect such that the image plane at
    depth 1 spans `tan(fov/2) * aspect` horizontally; using `W fy / (H fx)` as the aspect
    makes that span `(W/2)/fx`, the camera's real horizontal half-extent, even when fx != fy.

    Args:
        intrinsics: (S, 3, 3) K in pixels.
        height: H, image height in pixels.
        width: W, image width in pixels.

    Degenerate focal lengths (zero, negative or not finite, as an untrained model can
    predict) fall back to FALLBACK_FOV and the image's aspect, so the frustum still draws.

    Returns:
        fov_y (S,) radians and aspect (S,) width over height.
    """
    K = np.asarray(intrinsics, dtype=np.float64)
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    usable = np.isfinite(fx) & np.isfinite(fy) & (fx > 0) & (fy > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fov_y = np.where(usable, 2.0 * np.arctan2(height / 2.0, fy), FALLBACK_FOV)
        aspect = np.where(usable, (width * fy) / (height * fx), width / height)
    return fov_y, aspect


def camera_poses(extrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-from-camera orientation and position of each camera, as Viser wants them.

    Args:
        extrinsics: (S, 3, 4) camera-from-world [R | t].

    Returns:
        wxyz (S, 4) unit quaternions of R^T (scalar FIRST, w >= 0) and centres (S, 3) = -R^T t.
    """
    T_world_cam = geometry.invert_rigid(np.asarray(extrinsics, dtype=np.float64))
    xyzw = geometry.rotation_to_quaternion(T_world_cam[:, :3, :3])
    return xyzw[:, [3, 0, 1, 2]], T_world_cam[:, :3, 3]


def trajectory_segments(centres: np.ndarray) -> np.ndarray:
    """Line segments joining consecutive camera centres.

    Args:
        centres: (S, 3) camera centres.

    Returns:
        (K, 2, 3) float32 segment end points, K <= S-1: segments touching a non-finite
        centre are left out.
    """
    centres = np.asarray(centres, dtype=np.float32)
    if len(centres) < 2:
        return np.zeros((0, 2, 3), dtype=np.float32)
    segments = np.stack([centres[:-1], centres[1:]], axis=1)
    return segments[np.isfinite(segments).all(axis=(1, 2))]


def frustum_length(centres: np.ndarray, depth: np.ndarray | None) -> float:
    """How far in front of its centre a frustum's image plane is drawn: small beside the scene.

    Args:
        centres: (S, 3) camera centres of one variant.
        depth: (...) depths (subsampled is fine), or None.

    Returns:
        Distance in scene units (> 0): 6 % of the median depth, else 10 % of the
        trajectory's extent, else 0.1.
    """
    if depth is not None:
        finite = np.asarray(depth)[np.isfinite(depth)]
        finite = finite[finite > 0]
        if finite.size:
            return 0.06 * float(np.median(finite))
    if len(centres) >= 2:
        extent = float(np.linalg.norm(np.ptp(np.asarray(centres), axis=0)))
        if np.isfinite(extent) and extent > 0:
            return 0.1 * extent
    return 0.1


def viser_frustum_scale(length: float, fov: float, aspect: float) -> float:
    """The `scale` that makes a Viser frustum's image plane sit `length` in front of it.

    Viser normalises frusta to a constant volume: at scale 1 the image plane lies at
    `1 / cbrt(tan(fov/2)^2 * aspect / 3)`, so the scale is `length` times that cube root.

    Args:
        length: wanted distance from the centre to the image plane, scene units.
        fov: vertical field of view, radians.
        aspect: width over height.

    Returns:
        The scale to pass to Viser.
    """
    half_height = np.tan(fov / 2.0)
    return float(length * np.cbrt(half_height * half_height * aspect / 3.0))
