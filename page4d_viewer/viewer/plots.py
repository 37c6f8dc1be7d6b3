"""Images and matplotlib figures for the panel: mask overlay, depth/confidence maps, pose plots.

Pure functions of arrays (and of a Reconstruction for the pose comparison); no Gradio here, so
everything is testable without a browser. Figures are built with `matplotlib.figure.Figure`
rather than pyplot, which keeps no global state and is safe from Gradio's worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
from matplotlib.figure import Figure

from page4d_viewer.evaluation.depth import depth_errors
from page4d_viewer.evaluation.disagreement import relative_rotation_angles_deg
from page4d_viewer.evaluation.errors import MetricsError
from page4d_viewer.evaluation.trajectory import trajectory_errors
from page4d_viewer.result.cameras import ESTIMATED_VARIANTS, GEOMETRY_MASKED, GEOMETRY_UNMASKED
from page4d_viewer.result.mask import (
    blend_colors,
    check_overlay_mode,
    dynamic_probability,
    heat_colors,
    mask_scale,
    overlay_image,
)
from page4d_viewer.result.reconstruction import GROUND_TRUTH, MASKED, UNMASKED, Reconstruction
from page4d_viewer.settings import DEFAULT_COLORMAP, DEFAULT_MASK_OVERLAY, MASK_SCALE_PERCENTILE
from page4d_viewer.viewer.captions import ColourBar, captioned
from page4d_viewer.viewer.scene.display import (
    COMPARISON_PREFIX,
    VARIANT_COLORS,
    VARIANT_LABELS,
    comparison_color,
)

METRICS_HEADERS = ["comparison", "ATE", "RPE trans", "RPE rot (deg)", "AbsRel", "δ<1.25", "note"]

PANEL_IMAGE_WIDTH = 480
"""Pixels: the panel draws a frame at least this wide (nearest-neighbour, whole factors), so
a 196 x 112 model input is readable and its patches stay sharp."""

GROUND_TRUTH_MASK_OPACITY = 0.6
"""Weight of the heat colour on the ground truth's moving pixels in the panel's picture."""


def variant_colour(name: str, second: bool = False) -> tuple[float, float, float]:
    """The scene's colour of a camera variant, as a matplotlib RGB triple in [0, 1].

    Args:
        name: the variant.
        second: the colour of the second run of a comparison ("B"), a lighter shade.
    """
    red, green, blue = comparison_color(name) if second else VARIANT_COLORS[name]
    return red / 255.0, green / 255.0, blue / 255.0


# ----------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class FrameImages:
    """The three pictures of one frame shown side by side in the panel.

    Attributes:
        overlay: (H, W, 3) uint8 frame with the dynamic mask as a heat map (the frame itself
            when the result has no mask).
        depth: (H, W, 3) uint8 coloured depth.
        confidence: (H, W, 3) uint8 coloured depth confidence (log scale).
        ground_truth_depth: (H, W, 3) uint8 coloured ground-truth depth, or None.
        ground_truth_mask: (H, W, 3) uint8 frame with the ground truth's moving pixels in
            the mask's heat colour, or None.

    All are (k H, k W, 3) instead when drawn enlarged (`frame_images(min_width=...)`), with
    a caption strip below (the frame, what the picture shows, its colour bar) when captioned.
    """

    overlay: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    ground_truth_depth: np.ndarray | None = None
    ground_truth_mask: np.ndarray | None = None

    def pictures(self) -> tuple[np.ndarray | None, ...]:
        """Every picture, in field order (None for missing ground truth)."""
        return tuple(getattr(self, item.name) for item in fields(self))


def frame_images(
    recon: Reconstruction,
    frame: int,
    opacity: float,
    threshold: float,
    colormap: str = DEFAULT_COLORMAP,
    min_width: int = 0,
    overlay: str = DEFAULT_MASK_OVERLAY,
    captions: bool = False,
) -> FrameImages:
    """The mask overlay, depth and confidence pictures of one frame, and the ground truth's
    depth and moving pixels when the result has them.

    Args:
        recon: The result shown.
        frame: 0-based frame position; clamped into the clip.
        opacity: Mask overlay opacity in [0, 1].
        threshold: Dynamic probability in [0, 1] from which the heat map is drawn
            ("threshold" overlay).
        colormap: Matplotlib colormap of the mask heat map.
        min_width: enlarge every picture by a whole factor until it is at least this many
            pixels wide (0: model-input size); see `enlarge`.
        overlay: "continuous" or "threshold" (settings.MASK_OVERLAYS); the heat map spans
            [0, the clip's `mask_scale`], as in the scene.
        captions: put the frame, the picture's name and its colour bar below each picture.
    """
    frame = int(np.clip(frame, 0, recon.num_frames - 1))
    mask = None if recon.mask_score is None else recon.mask_score[frame]
    image = recon.images[frame]
    top = mask_scale(recon.mask_score)
    pictures: dict[str, tuple[np.ndarray, str, ColourBar | None]] = {}
    if mask is None:
        pictures["overlay"] = (image, "frame (this result has no mask)", None)
    else:
        mode = check_overlay_mode(overlay)
        tinted = overlay_image(image, mask, opacity, threshold, colormap, overlay=mode, top=top)
        pictures["overlay"] = (tinted, "dynamic probability", mask_bar(top, mode, threshold))
    for name, values, title, scale in (
        ("depth", recon.depth[frame], "depth", "turbo"),
        ("confidence", recon.depth_conf[frame], "depth confidence", "viridis"),
    ):
        log = name == "confidence"
        low, high = scalar_range(values, log=log)
        bar = ColourBar(scale, low, high, log=log, note="2-98th pct of the frame")
        pictures[name] = (scalar_map_image(values, scale, log=log), title, bar)
    if recon.gt_depth is not None:
        truth = np.where(recon.gt_depth[frame] > 0, recon.gt_depth[frame], np.nan)
        low, high = scalar_range(truth)
        bar = ColourBar("turbo", low, high, note="2-98th pct of the frame")
        truth_depth = scalar_map_image(truth, "turbo")
        pictures["ground_truth_depth"] = (truth_depth, "ground-truth depth", bar)
    if recon.gt_dynamic_mask is not None:
        moving = recon.gt_dynamic_mask[frame].astype(np.float32)
        truth_mask = blend_colors(image, moving, GROUND_TRUTH_MASK_OPACITY * moving, colormap)
        pictures["ground_truth_mask"] = (truth_mask, "ground-truth moving (tinted)", None)
    drawn: dict[str, np.ndarray] = {}
    for name, (picture, title, bar) in pictures.items():
        picture = enlarge(picture, min_width) if min_width > 0 else picture
        label = f"frame {frame}/{recon.num_frames - 1} · {title}"
        drawn[name] = captioned(picture, label, bar) if captions else picture
    return FrameImages(**drawn)


def mask_bar(top: float, overlay: str, threshold: float) -> ColourBar:
    """The colour bar of the mask overlay: probability 0 to the clip's `mask_scale`."""
    if overlay == "continuous":
        note = f"model's values; top: clip's {MASK_SCALE_PERCENTILE:g}th pct"
    else:
        note = f"tinted >= {threshold:.2f}; top: clip's {MASK_SCALE_PERCENTILE:g}th pct"
    return ColourBar(DEFAULT_COLORMAP, 0.0, top, above=top < 1.0, note=note)


def enlarge(image: np.ndarray, min_width: int) -> np.ndarray:
    """An image repeated by the smallest whole factor that makes it at least `min_width` wide.

    Nearest-neighbour on purpose: each model pixel (and each 14-pixel patch of the mask) stays
    a sharp block the user can count, instead of the browser's blur.

    Args:
        image: (H, W, C) picture.
        min_width: wanted width in pixels.

    Returns:
        (k H, k W, C), k = max(1, ceil(min_width / W)); the same array when k = 1.
    """
    factor = enlargement(image.shape[1], min_width)
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def enlargement(width: int, min_width: int) -> int:
    """The whole factor `enlarge` repeats a `width`-pixel picture by (clicks divide by it)."""
    return max(1, -(-int(min_width) // max(int(width), 1)))


def scalar_map_image(
    values: np.ndarray, colormap: str = "viridis", *, log: bool = False
) -> np.ndarray:
    """Colour a depth or confidence map, stretched between its 2nd and 98th percentiles.

    Args:
        values: (H, W) map; non-finite values are drawn with the lowest colour.
        colormap: a matplotlib colormap name.
        log: stretch log(values) instead (for confidences, which span orders of magnitude).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    low, high = scalar_range(values, log=log)
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(low):
        return heat_colors(np.zeros(values.shape), colormap)
    if log:  # stretched in log space: the range's ends are values, so take their logs too
        values = np.log(np.where(values > 0, values, np.nan))
        low, high = np.log(low), np.log(high)
    scaled = (values - low) / max(high - low, 1e-12)
    return heat_colors(np.where(np.isfinite(scaled), scaled, 0.0), colormap)


def scalar_range(values: np.ndarray, *, log: bool = False) -> tuple[float, float]:
    """The values `scalar_map_image` puts at its first and last colour (for the colour bar).

    Returns:
        (low, high) in the map's own units (not log), or (nan, nan) with nothing finite.
    """
    values = np.asarray(values, dtype=np.float64)
    if log:
        values = np.log(np.where(values > 0, values, np.nan))
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [2.0, 98.0])
    return (float(np.exp(low)), float(np.exp(high))) if log else (float(low), float(high))


# ---------------------------------------------------------------------------- pose comparison


@dataclass(frozen=True)
class PoseComparison:
    """The camera variants of one result, aligned onto the masked trajectory for display.

    Attributes:
        centres: variant -> (S, 3) camera centres in the masked world (Sim(3)-aligned).
        rotation_deg: "a vs b" -> (S,) angle between the two cameras' orientations relative
            to their own first frame, degrees (independent of the alignment).
        translation: "a vs b" -> (S,) distance between the two camera centres, in the masked
            reconstruction's units.
        frames: (S,) frame positions (x axis of the per-frame plots).
    """

    centres: Mapping[str, np.ndarray]
    rotation_deg: Mapping[str, np.ndarray]
    translation: Mapping[str, np.ndarray]
    frames: np.ndarray


def variant_pairs(variants: Sequence[str]) -> list[tuple[str, str]]:
    """(estimate, reference) pairs to compare, those present of: each prediction vs ground
    truth; masked vs unmasked (what the mask did to the camera head); the camera head vs the
    geometry (do the head's cameras agree with the network's own depth and matches?); and
    geometry masked vs unmasked (what the mask did to the geometric poses)."""
    present = set(variants)
    pairs = [(name, GROUND_TRUTH) for name in ESTIMATED_VARIANTS if name in present]
    if GROUND_TRUTH not in present:
        pairs = []
    pairs += [
        pair
        for pair in (
            (MASKED, UNMASKED),
            (MASKED, GEOMETRY_MASKED),
            (GEOMETRY_MASKED, GEOMETRY_UNMASKED),
        )
        if set(pair) <= present
    ]
    return pairs


def pair_label(estimate: str, reference: str) -> str:
    """The label of a compared pair, e.g. "masked vs ground truth"."""
    return f"{VARIANT_LABELS[estimate]} vs {VARIANT_LABELS[reference]}"


def compare_poses(recon: Reconstruction) -> PoseComparison:
    """Align every variant onto the masked cameras and measure per-frame differences.

    Args:
        recon: A result with at least the "masked" cameras.

    Returns:
        Centres for the top view and per-frame rotation/translation differences per pair.
    """
    aligned = {name: recon.aligned_cameras(name) for name in recon.variants}
    # Rotations are compared relative to each variant's first camera, not through the Sim(3):
    # the alignment is fitted to camera centres only, and for a short or nearly static path
    # its rotation is ill-determined (tens of degrees off) while the relative rotations are
    # exact.
    rotations = {
        name: _relative_to_first(recon.cameras[name].T_world_cam[:, :3, :3])
        for name in recon.variants
    }
    centres = {name: cameras.centers for name, cameras in aligned.items()}
    rotation_deg: dict[str, np.ndarray] = {}
    translation: dict[str, np.ndarray] = {}
    for estimate, reference in variant_pairs(recon.variants):
        label = pair_label(estimate, reference)
        rotation_deg[label] = rotation_angle_deg(rotations[estimate], rotations[reference])
        translation[label] = np.linalg.norm(centres[estimate] - centres[reference], axis=-1)
    return PoseComparison(centres, rotation_deg, translation, np.arange(recon.num_frames))


def _relative_to_first(R_world_cam: np.ndarray) -> np.ndarray:
    """(S, 3, 3) camera-to-world rotations -> (S, 3, 3) rotations from camera i to camera 0."""
    return np.swapaxes(R_world_cam[:1], -1, -2) @ R_world_cam


def rotation_angle_deg(R_world_a: np.ndarray, R_world_b: np.ndarray) -> np.ndarray:
    """Angle of the rotation taking orientation b to orientation a.

    Args:
        R_world_a: (..., 3, 3) rotations.
        R_world_b: (..., 3, 3) rotations.

    Returns:
        (...,) angles in degrees, in [0, 180].
    """
    relative = np.swapaxes(R_world_b, -1, -2) @ R_world_a
    cosine = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def trajectory_figure(comparison: PoseComparison, second: PoseComparison | None = None) -> Figure:
    """Camera trajectories seen from above (the first camera's x-z plane; its y points down).

    Args:
        comparison: the shown result's variants.
        second: a second run's variants, already in the shown result's world (see
            `viewer.comparison`), drawn dashed in lighter shades and labelled "B: masked".

    Returns:
        A figure with one line per variant, labelled "masked", "unmasked", "ground truth".
    """
    runs = [(comparison, False)] + ([(second, True)] if second is not None else [])
    labels = [prefix + VARIANT_LABELS[name] for run, second_run in runs for name in run.centres
              for prefix in [COMPARISON_PREFIX if second_run else ""]]  # fmt: skip
    figure = Figure(figsize=(5.0, 4.2 + legend_height(labels)), layout="constrained")
    axes = figure.add_subplot()
    for run, is_second in runs:
        prefix, style = (COMPARISON_PREFIX, "--o") if is_second else ("", "-o")
        for name, centres in run.centres.items():
            colour = variant_colour(name, is_second)
            label = prefix + VARIANT_LABELS[name]
            axes.plot(centres[:, 0], centres[:, 2], style, ms=2.5, color=colour, label=label)
            axes.plot(centres[:1, 0], centres[:1, 2], "s", ms=6, color=colour)
    axes.set_xlabel("x (right); squares mark the first frame")
    axes.set_ylabel("z (forward)")
    axes.set_title("Camera paths from above, Sim(3)-aligned", fontsize="medium")
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(alpha=0.3)
    outside_legend(figure, axes)
    return figure


LEGEND_ROW_INCHES = 0.2
LEGEND_TWO_COLUMNS_CHARS = 30  # longer labels than this get one column (a 5-inch figure)


def legend_columns(labels: Sequence[str]) -> int:
    """Two columns of short labels, one of long ones (two would run off the figure)."""
    return 2 if max((len(label) for label in labels), default=0) <= LEGEND_TWO_COLUMNS_CHARS else 1


def legend_height(labels: Sequence[str]) -> float:
    """Inches a figure grows by to hold the legend of `labels` below its axes."""
    return LEGEND_ROW_INCHES * -(-len(labels) // legend_columns(labels))


def outside_legend(figure: Figure, axes: object) -> None:
    """The legend of `axes` below the figure's axes, never over a curve (the figure is
    made `legend_height` taller for it)."""
    handles, labels = axes.get_legend_handles_labels()  # type: ignore[attr-defined]
    if handles:
        figure.legend(
            handles, labels, loc="outside lower center", ncols=legend_columns(labels),
            fontsize="x-small", frameon=False,
        )  # fmt: skip


def differences_figure(comparison: PoseComparison, second: PoseComparison | None = None) -> Figure:
    """Per-frame rotation and translation differences between variants.

    Args:
        comparison: the shown result's variants.
        second: a second run's (same frames), drawn thinner, lighter and labelled "B: ...".

    Returns:
        A figure with two axes (rotation in degrees, translation), one line per compared pair.
    """
    runs = [(comparison, False)] + ([(second, True)] if second is not None else [])
    labels = [(COMPARISON_PREFIX if second_run else "") + label
              for run, second_run in runs for label in run.rotation_deg]  # fmt: skip
    figure = Figure(figsize=(5.0, 4.2 + legend_height(labels)), layout="constrained")
    rotation_axes, translation_axes = figure.subplots(2, 1, sharex=True)
    for run, is_second in runs:
        for label in run.rotation_deg:
            colour = variant_colour(_estimate_of(label), is_second)
            style = "--" if label.endswith(VARIANT_LABELS[UNMASKED]) else "-"
            shown_label = (COMPARISON_PREFIX if is_second else "") + label
            width = 1.0 if is_second else 1.5
            for axes, values in (
                (rotation_axes, run.rotation_deg),
                (translation_axes, run.translation),
            ):
                axes.plot(
                    run.frames, values[label], style, color=colour, lw=width, label=shown_label
                )
    # Short titles: the panel draws this figure narrow, and a long one was clipped.
    rotation_axes.set_ylabel("rotation (deg)\nvs first frame")
    translation_axes.set_ylabel("centre distance\n(aligned)")
    translation_axes.set_xlabel("frame")
    rotation_axes.set_title("Per-frame differences", fontsize="medium")
    for axes in (rotation_axes, translation_axes):
        axes.grid(alpha=0.3)
    if comparison.rotation_deg:
        outside_legend(figure, rotation_axes)
    else:
        rotation_axes.text(
            0.5, 0.5, "only one camera variant", ha="center", transform=rotation_axes.transAxes
        )
    return figure


def _estimate_of(label: str) -> str:
    first = label.removeprefix(COMPARISON_PREFIX).split(" vs ")[0]
    return next(name for name, text in VARIANT_LABELS.items() if text == first)


def metrics_rows(recon: Reconstruction, prefix: str = "") -> list[list[str]]:
    """ATE / RPE of each compared pair (see `variant_pairs`), and AbsRel / delta < 1.25 of
    the depth when the result has ground-truth depth, as rows of `METRICS_HEADERS`.

    Ground truth is the reference when present; "masked vs unmasked" measures how far the mask
    moved the poses, in the unmasked reconstruction's units. A pair the metrics cannot score
    (fewer than 2 frames, a camera that never moves) gets a row saying why.

    Args:
        recon: the result.
        prefix: put before each row's label ("A: ", "B: " when two runs are compared).
    """
    rows = [
        metrics_row(prefix + pair_label(estimate, reference), recon, estimate, recon, reference)
        for estimate, reference in variant_pairs(recon.variants)
    ]
    if recon.gt_depth is not None:
        rows.append(depth_metrics_row(prefix + "depth vs ground truth", recon))
    return rows


def depth_metrics_row(label: str, recon: Reconstruction) -> list[str]:
    """One row of `METRICS_HEADERS`: AbsRel and delta < 1.25 of the predicted depth against the
    result's ground-truth depth, median-scaled once per clip (as `evaluate` reports it)."""
    try:
        if recon.gt_depth is None:
            raise MetricsError("this result has no ground-truth depth")
        errors = depth_errors(recon.depth, recon.gt_depth, alignment="median")
    except MetricsError as error:
        return [label, "", "", "", "", "", " ".join(str(error).split())]
    note = "median-scaled over the clip"
    return [label, "", "", "", f"{errors.abs_rel:.4f}", f"{errors.delta_1_25:.3f}", note]


def metrics_row(
    label: str,
    estimate: Reconstruction,
    estimate_variant: str,
    reference: Reconstruction,
    reference_variant: str,
) -> list[str]:
    """One row of `METRICS_HEADERS`: ATE / RPE of one result's cameras against another's
    (after the metric's own Sim(3) alignment, so the two may differ in world and scale)."""
    try:
        errors = trajectory_errors(
            estimate.cameras[estimate_variant].extrinsics,
            reference.cameras[reference_variant].extrinsics,
        )
    except MetricsError as error:
        return [label, "", "", "", "", "", " ".join(str(error).split())]
    return [
        label, f"{errors.ate:.4f}", f"{errors.rpe_trans:.4f}", f"{errors.rpe_rot:.3f}", "", "", "",
    ]  # fmt: skip


# ------------------------------------------------------------- head vs geometry, per frame

DISAGREEMENT_PAIRS = ((MASKED, GEOMETRY_MASKED), (GEOMETRY_MASKED, GEOMETRY_UNMASKED))
"""The pairs of the disagreement curve: does the camera head agree with the network's own
geometry, and what does the mask change in the geometric poses."""


@dataclass(frozen=True)
class FrameAxis:
    """Where the frame axis of a plot picture lies, so a click can be read as a frame.

    Attributes:
        left, right: pixel columns of the axis' two ends in the picture.
        first, last: the frame values at those ends.
        num_frames: frames of the result (clicks are clamped to 0..num_frames-1).
        top, bottom: pixel rows of the plot area's top and bottom (every axes of the
            figure), where the page draws its current-frame mark.
    """

    left: float
    right: float
    first: float
    last: float
    num_frames: int
    top: float = 0.0
    bottom: float = 0.0

    def frame_at(self, column: float) -> int:
        """The frame nearest to a picture column."""
        share = (column - self.left) / max(self.right - self.left, 1e-9)
        frame = round(self.first + share * (self.last - self.first))
        return int(min(max(frame, 0), self.num_frames - 1))

    def column_at(self, frame: float) -> float:
        """The picture column of a frame: the inverse of `frame_at` (the page's mark and
        `frame_plots.MARK_JS` compute the same)."""
        share = (frame - self.first) / ((self.last - self.first) or 1.0)
        return self.left + share * (self.right - self.left)


@dataclass(frozen=True)
class PlotPicture:
    """A plot drawn to pixels and the frame axis in it.

    Attributes:
        image: (H, W, 3) uint8 picture.
        axis: where frames lie along its x axis.
    """

    image: np.ndarray
    axis: FrameAxis


def disagreement(recon: Reconstruction) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-frame rotation (degrees) and translation between the pairs of `DISAGREEMENT_PAIRS`.

    Both variants of a pair are in the network's world (the first camera) and units, so no
    alignment is fitted: rotations are compared relative to each variant's first camera and
    centres directly, in units of the median depth (so 0.1 means a tenth of the scene's depth).

    Returns:
        pair label -> ((S,) rotation in degrees, (S,) translation / median depth), for the
        pairs the result has.
    """
    depth = recon.depth[np.isfinite(recon.depth) & (recon.depth > 0)]
    scale = float(np.median(depth)) if depth.size else 1.0
    curves = {}
    for first, second in DISAGREEMENT_PAIRS:
        if first not in recon.cameras or second not in recon.cameras:
            continue
        a, b = recon.cameras[first], recon.cameras[second]
        rotation = relative_rotation_angles_deg(a.extrinsics, b.extrinsics)
        translation = np.linalg.norm(a.centers - b.centers, axis=-1) / max(scale, 1e-9)
        curves[pair_label(first, second)] = (rotation, translation)
    return curves


def disagreement_figure(recon: Reconstruction, frame: int | None = None) -> Figure:
    """The disagreement curves (rotation above, translation below), a frame marked.

    Args:
        recon: the result.
        frame: the frame to mark with a vertical line (None: no mark).
    """
    figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    rotation_axes, translation_axes = figure.subplots(2, 1, sharex=True)
    frames = np.arange(recon.num_frames)
    curves = disagreement(recon)
    for label, (rotation, translation) in curves.items():
        colour = variant_colour(_estimate_of(label))
        style = "--" if label.endswith(VARIANT_LABELS[GEOMETRY_UNMASKED]) else "-"
        rotation_axes.plot(frames, rotation, style, color=colour, lw=1.6, label=label)
        translation_axes.plot(frames, translation, style, color=colour, lw=1.6, label=label)
    rotation_axes.set_ylabel("rotation (deg)")
    translation_axes.set_ylabel("centres / median depth")
    translation_axes.set_xlabel("frame (click to go there)")
    rotation_axes.set_title("Camera head vs geometry, per frame", fontsize="medium")
    translation_axes.set_xlim(0, max(recon.num_frames - 1, 1))
    for axes in (rotation_axes, translation_axes):
        axes.grid(alpha=0.3)
        if frame is not None:
            axes.axvline(frame, color="0.3", lw=1.0)
    if curves:
        # One entry per curve: both axes draw each pair, so take the handles of one.
        handles, labels = rotation_axes.get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside upper right", fontsize="small", ncols=1)
    else:
        rotation_axes.text(
            0.5, 0.5, "no geometric poses in this result", ha="center",
            transform=rotation_axes.transAxes,
        )  # fmt: skip
    return figure


def mask_share(recon: Reconstruction, threshold: float) -> dict[str, np.ndarray]:
    """Per frame, how much of the picture the mask calls dynamic.

    Args:
        recon: the result.
        threshold: dynamic probability from which a patch counts as dynamic.

    Returns:
        label -> (S,) values in [0, 1]: the share of patches at or above the threshold and
        the mean dynamic probability (when the result has a mask), and the share of pixels
        the ground truth marks as moving (when it has them); empty with neither.
    """
    curves: dict[str, np.ndarray] = {}
    if recon.mask_score is not None:
        probability = dynamic_probability(recon.mask_score)
        frames = probability.reshape(recon.num_frames, -1)
        curves[f"patches ≥ {threshold:.2f}"] = (frames >= threshold).mean(axis=1)
        curves["mean probability"] = frames.mean(axis=1)
    if recon.gt_dynamic_mask is not None:
        moving = np.asarray(recon.gt_dynamic_mask, dtype=np.float64)
        curves["ground truth moving pixels"] = moving.reshape(recon.num_frames, -1).mean(axis=1)
    return curves


MASK_SHARE_STYLES = {"mean probability": "--", "ground truth moving pixels": ":"}


def mask_share_figure(recon: Reconstruction, threshold: float) -> Figure:
    """The mask's share of each frame (`mask_share`), frames along x."""
    figure = Figure(figsize=(6.4, 2.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    curves = mask_share(recon, threshold)
    frames = np.arange(recon.num_frames)
    for label, values in curves.items():
        axes.plot(frames, values, MASK_SHARE_STYLES.get(label, "-"), lw=1.6, label=label)
    axes.set_xlim(0, max(recon.num_frames - 1, 1))
    axes.set_ylim(0.0, max(1e-3, *(float(np.max(v)) for v in curves.values())) * 1.1)
    axes.set_xlabel("frame (click to go there)")
    axes.set_ylabel("share of the frame")
    axes.set_title("Dynamic mask per frame", fontsize="medium")
    axes.grid(alpha=0.3)
    if curves:
        figure.legend(loc="outside right upper", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no mask in this result", ha="center", transform=axes.transAxes)
    return figure


def attention_share_figure(attention: Mapping[str, np.ndarray], layer: int, query: int) -> Figure:
    """How much of one camera token's attention each key frame receives, frames along x.

    Args:
        attention: variant ("masked", "unmasked") -> (S, h, w) attention of frame `query`'s
            camera token on every key frame's patches, in one layer.
        layer: the layer (for the title).
        query: the query frame, marked with a triangle.
    """
    figure = Figure(figsize=(6.4, 2.6), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    frames = 0
    for name, values in attention.items():
        per_frame = np.asarray(values, dtype=np.float64).reshape(len(values), -1).sum(axis=1)
        frames = len(per_frame)
        colour = variant_colour(name)
        style = "--o" if name == UNMASKED else "-o"  # dashed: a curve on top never hides one
        axes.plot(np.arange(frames), per_frame, style, ms=3, lw=1.6, color=colour, label=name)
    axes.plot([query], [0.0], "^", ms=9, color="0.2", label=f"query frame {query}")
    axes.set_xlim(0, max(frames - 1, 1))
    axes.set_ylim(bottom=0.0)
    axes.set_xlabel("key frame (click to go there)")
    axes.set_ylabel("share of attention")
    axes.set_title(f"Frame {query}'s camera token, layer {layer}", fontsize="medium")
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    return figure


def figure_picture(figure: Figure, num_frames: int) -> PlotPicture:
    """Draw a figure whose last axes' x axis counts frames; remember where that axis lies.

    Args:
        figure: a figure from this module (its axes share x, in frames).
        num_frames: frames of the result.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    axes = figure.axes[-1]
    box = axes.get_window_extent()
    first, last = axes.get_xlim()
    # Matplotlib counts rows from the bottom, the picture from the top.
    boxes = [each.get_window_extent() for each in figure.axes]
    top = float(image.shape[0] - max(each.y1 for each in boxes))
    bottom = float(image.shape[0] - min(each.y0 for each in boxes))
    axis = FrameAxis(
        float(box.x0), float(box.x1), float(first), float(last), num_frames, top, bottom
    )
    return PlotPicture(image, axis)
