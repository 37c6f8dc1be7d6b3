"""Pictures of what happens inside the model: camera-token attention and feature PCA.

Pure functions of a Reconstruction (no Gradio, no Viser, no torch): the panel's "Inside the
model" tab shows their images and the scene colours its points with `attention_heat`. Heat
maps go through `result.mask` (`upsample_mask`, `heat_colors`, `blend_colors`), the same
upsampling and colours as the dynamic mask.

An attention map is the camera token of a query frame attending to every key frame's
patches in one masked global layer: (S, h, w) probabilities per variant. Shown as heat, each
selection is scaled by its own largest value (the probabilities themselves are tiny: the row
sums to 1 over S * h * w patches); the difference "masked − unmasked" uses a diverging
colormap centred at 0 with a symmetric range. The attention grid instead tops its scale at the
selection's 99th percentile (`attention_scale`, said on its colour bar), since a few patches
take most of the attention and a max scale leaves the rest at the colormap's black end; and
it lets the key frame show through where the attention is low (`grid_weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.inspection import ATTENTION_VARIANTS, Inside
from page4d_viewer.result.mask import (
    DisplayError,
    blend_colors,
    dynamic_probability,
    heat_colors,
    mask_scale,
    upsample_mask,
)
from page4d_viewer.settings import DEFAULT_COLORMAP, MASK_SCALE_PERCENTILE
from page4d_viewer.viewer.captions import ColourBar, captioned
from page4d_viewer.viewer.plots import enlarge

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

DIFFERENCE = "masked − unmasked"
ATTENTION_CHOICES: tuple[str, ...] = (*ATTENTION_VARIANTS, DIFFERENCE)
"""The variant selector: one variant's attention, or the masked minus the unmasked one."""
DIVERGING_COLORMAP = "RdBu_r"  # blue: the mask took attention away; red: it added some
HEAT_OPACITY = 0.65  # heat over the key frames' images in the attention grid
TILE_WIDTH = 160  # pixels per key frame in the attention grid, at most
GRID_SCALE_PERCENTILE = 99.0
"""The attention grid's colour scale tops out at this percentile of the selection's values."""
NO_ATTENTION_NOTE = (
    "This result has no attention maps: run with `--attention` "
    "(`page4d-viewer infer clip --out r.npz --attention`) or tick **Record attention** in the "
    "run options."
)


@dataclass(frozen=True)
class AttentionChoice:
    """Which attention to show.

    Attributes:
        layer: a masked layer among the result's `inside.attention_layers` (the model's
            numbering).
        query: a query frame among its `inside.attention_query_frames` (frame position).
        variant: one of ATTENTION_CHOICES.
    """

    layer: int
    query: int
    variant: str = ATTENTION_VARIANTS[0]

    @property
    def diverging(self) -> bool:
        """Whether this is the signed difference (diverging colours, centred at 0)."""
        return self.variant == DIFFERENCE


def has_attention(recon: Reconstruction | None) -> bool:
    """Whether a result holds camera-token attention."""
    return recon is not None and recon.inside is not None and recon.inside.attention is not None


def _recorded_attention(recon: Reconstruction) -> Inside:
    """The result's record of what happened inside the model, when it holds attention.

    Raises:
        DisplayError: the result has no attention.
    """
    if recon.inside is None or recon.inside.attention is None:
        raise DisplayError("this result has no attention maps")
    return recon.inside


def nearest_query(recon: Reconstruction, frame: int) -> int:
    """The recorded query frame closest to `frame` (the earlier one on a tie).

    Raises:
        DisplayError: the result has no attention.
    """
    queries = np.asarray(_recorded_attention(recon).attention_query_frames)
    return int(queries[np.argmin(np.abs(queries - int(frame)))])


def attention_values(recon: Reconstruction, choice: AttentionChoice) -> np.ndarray:
    """The raw attention of one selection.

    Args:
        recon: a result with attention.
        choice: layer, query frame and variant; DIFFERENCE is masked minus unmasked.

    Returns:
        (S, h, w) float32 probabilities per key-frame patch (signed for DIFFERENCE).

    Raises:
        DisplayError: no attention, or a layer, query frame or variant the result lacks.
    """
    inside = _recorded_attention(recon)
    maps = inside.attention or {}
    if choice.layer not in inside.attention_layers:
        raise DisplayError(
            f"layer {choice.layer} has no recorded attention (have {list(inside.attention_layers)})"
        )
    if choice.query not in inside.attention_query_frames:
        raise DisplayError(
            f"frame {choice.query} is not a recorded query frame "
            f"(have {list(inside.attention_query_frames)})"
        )
    needed = ATTENTION_VARIANTS if choice.diverging else (choice.variant,)
    missing = [name for name in needed if name not in maps]
    if choice.variant not in ATTENTION_CHOICES or missing:
        raise DisplayError(f"this result has no {choice.variant!r} attention")
    row = inside.attention_layers.index(choice.layer)
    column = inside.attention_query_frames.index(choice.query)
    if choice.diverging:
        return (maps["masked"][row, column] - maps["unmasked"][row, column]).astype(np.float32)
    return maps[choice.variant][row, column].astype(np.float32)


def heat_values(values: np.ndarray, diverging: bool, top: float | None = None) -> np.ndarray:
    """Attention as heat in [0, 1], one scale for the whole selection.

    Args:
        values: (...) attention (signed when `diverging`).
        diverging: False: divide by `top` (0 stays 0). True: 0 maps to 0.5 and the range is
            symmetric, +-top -> 1 / 0.
        top: the value drawn in the last colour (values beyond it are clipped); None: the
            largest value (the largest magnitude when diverging).

    Returns:
        (...) float32 in [0, 1] (all 0, or all 0.5 when diverging, for an all-zero input).
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float32))
    if top is None:
        top = float((np.abs(values) if diverging else values).max(initial=0.0))
    if diverging:
        if top <= 0.0:
            return np.full(values.shape, 0.5, dtype=np.float32)
        return np.clip(0.5 + 0.5 * values / top, 0.0, 1.0).astype(np.float32)
    if top <= 0.0:
        return np.zeros(values.shape, dtype=np.float32)
    return np.clip(values / top, 0.0, 1.0).astype(np.float32)


def attention_scale(values: np.ndarray, diverging: bool) -> float:
    """The top of the attention grid's colour scale: a robust high value of the selection.

    Args:
        values: (S, h, w) attention of one selection (signed when `diverging`).
        diverging: scale the magnitudes |values| (the range is then +-top).

    Returns:
        The GRID_SCALE_PERCENTILE-th percentile of the values (of |values| when diverging);
        the largest one when that percentile is 0 (a few non-zero values); 1.0 when every
        value is 0 or none is finite.
    """
    values = np.asarray(values, dtype=np.float64)
    magnitudes = np.abs(values) if diverging else np.maximum(values, 0.0)
    finite = magnitudes[np.isfinite(magnitudes)]
    if not finite.size:
        return 1.0
    top = float(np.percentile(finite, GRID_SCALE_PERCENTILE))
    if top <= 0.0:
        top = float(finite.max())
    return top if top > 0.0 else 1.0


def grid_weight(heat: np.ndarray, diverging: bool) -> np.ndarray:
    """How strongly the heat colour covers each key-frame pixel in the attention grid.

    Low attention shows the key frame itself rather than the colormap's dark end, so the
    grid reads as "where did the token look" on top of the frames.

    Args:
        heat: (...) heat in [0, 1] (see `heat_values`).
        diverging: the heat is centred at 0.5 (no difference), which then shows the frame.

    Returns:
        (...) float32 blend weights in [0, HEAT_OPACITY].
    """
    strength = np.abs(2.0 * heat - 1.0) if diverging else heat
    return (HEAT_OPACITY * np.clip(strength, 0.0, 1.0)).astype(np.float32)


def attention_heat(recon: Reconstruction, choice: AttentionChoice) -> np.ndarray:
    """(S, h, w) float32 heat in [0, 1] of one selection (see `heat_values`)."""
    return heat_values(attention_values(recon, choice), choice.diverging)


def colormap_of(choice: AttentionChoice) -> str:
    """The colormap a selection is drawn with (the mask's, or the diverging one)."""
    return DIVERGING_COLORMAP if choice.diverging else DEFAULT_COLORMAP


def attention_grid(
    recon: Reconstruction, choice: AttentionChoice, columns: int | None = None
) -> np.ndarray:
    """The key frames in a grid, each with the query's attention on it as a heat map.

    Args:
        recon: a result with attention.
        choice: which attention.
        columns: key frames per row; None: about square.

    Returns:
        (rows * h_t, columns * w_t, 3) uint8, tiles of at most TILE_WIDTH pixels wide in
        frame order, unused tiles black. The colours span 0 (or -top) to `attention_scale`
        (`attention_bar` labels them); the frame shows through where the heat is low.
    """
    values = attention_values(recon, choice)
    heat = heat_values(values, choice.diverging, attention_scale(values, choice.diverging))
    frames = recon.num_frames
    height, width = recon.image_hw
    step = max(1, -(-width // TILE_WIDTH))
    tiles = recon.images[:, ::step, ::step]
    tile_h, tile_w = tiles.shape[1:3]
    upsampled = upsample_mask(heat, tile_h, tile_w)
    weight = grid_weight(upsampled, choice.diverging)
    blended = blend_colors(tiles, upsampled, weight, colormap_of(choice))
    columns = columns or int(np.ceil(np.sqrt(frames)))
    rows = -(-frames // columns)
    grid = np.zeros((rows * tile_h, columns * tile_w, 3), dtype=np.uint8)
    for index in range(frames):
        top, left = (index // columns) * tile_h, (index % columns) * tile_w
        grid[top : top + tile_h, left : left + tile_w] = blended[index]
    return grid


def special_mass_text(recon: Reconstruction, choice: AttentionChoice) -> str:
    """One line: how much of the query's attention went to camera and register tokens."""
    inside = recon.inside
    if inside is None or inside.attention is None or inside.attention_special is None:
        return ""
    row = inside.attention_layers.index(choice.layer)
    column = inside.attention_query_frames.index(choice.query)
    parts = []
    for name in ATTENTION_VARIANTS:
        if name in inside.attention_special:
            mass = float(inside.attention_special[name][row, column].sum())
            parts.append(f"{name} {100 * mass:.1f} %")
    return (
        f"Attention of frame {choice.query}'s camera token in layer {choice.layer} on the "
        f"special (camera and register) tokens: {', '.join(parts)}; the rest went to patches."
    )


def attention_at_pixel(
    recon: Reconstruction, choice: AttentionChoice, frame: int, row: int, col: int
) -> float:
    """The attention one key-frame pixel's patch received from the selection (raw value)."""
    values = attention_values(recon, choice)[frame]
    height, width = recon.image_hw
    return float(upsample_mask(values, height, width)[row, col])


def feature_image(recon: Reconstruction, layer: int, frame: int) -> np.ndarray:
    """The PCA RGB of a feature layer's patch tokens for one frame, at image size.

    Raises:
        DisplayError: no feature PCA, or a layer without one.
    """
    inside = recon.inside
    if inside is None or inside.feature_pca is None or layer not in inside.feature_layers:
        raise DisplayError(f"this result has no feature PCA of layer {layer}")
    height, width = recon.image_hw
    pca = inside.feature_pca[inside.feature_layers.index(layer), int(frame)]
    return np.moveaxis(upsample_mask(np.moveaxis(pca, -1, 0), height, width), 0, -1)


def mask_score_image(recon: Reconstruction, frame: int) -> np.ndarray | None:
    """The mask head's dynamic probability of one frame as a heat image (None: no mask), on
    the clip's scale (`result.mask.mask_scale`), as the overlay draws it."""
    if recon.mask_score is None:
        return None
    height, width = recon.image_hw
    probability = dynamic_probability(recon.mask_score[int(frame)])
    return heat_colors(upsample_mask(probability, height, width), top=mask_scale(recon.mask_score))


def attention_bar(recon: Reconstruction, choice: AttentionChoice) -> ColourBar:
    """How the grid's colours read: the selection's raw attention, 0 (or -top) to its
    `attention_scale` top; values beyond take the end colours."""
    values = np.nan_to_num(attention_values(recon, choice))
    top = attention_scale(values, choice.diverging)
    percentile = f"{GRID_SCALE_PERCENTILE:g}th pct"
    if choice.diverging:
        beyond = bool(np.abs(values).max(initial=0.0) > top)
        note = f"red: mask added; ends: {percentile} of |diff|"  # short: fits 3 tiles
        return ColourBar(DIVERGING_COLORMAP, -top, top, above=beyond, note=note)
    beyond = bool(values.max(initial=0.0) > top)
    note = f"attention share; top: {percentile}; faint = low"
    return ColourBar(DEFAULT_COLORMAP, 0.0, top, above=beyond, note=note)


def captioned_grid(recon: Reconstruction, choice: AttentionChoice) -> np.ndarray:
    """`attention_grid` with its caption: layer, query frame, variant and colour bar."""
    title = (
        f"layer {choice.layer} · frame {choice.query}'s camera token · {choice.variant} "
        f"· key frames 0-{recon.num_frames - 1}"
    )
    return captioned(attention_grid(recon, choice), title, attention_bar(recon, choice))


def captioned_feature(recon: Reconstruction, layer: int, frame: int, width: int) -> np.ndarray:
    """`feature_image` enlarged to `width`, with its caption (no bar: 3 components as RGB)."""
    picture = enlarge(feature_image(recon, layer, frame), width)
    return captioned(picture, f"frame {frame} · feature PCA, layer {layer} (RGB = 3 components)")


def captioned_mask(recon: Reconstruction, frame: int, width: int) -> np.ndarray | None:
    """`mask_score_image` enlarged to `width`, with the mask's colour bar (None: no mask)."""
    picture = mask_score_image(recon, frame)
    if picture is None:
        return None
    top = mask_scale(recon.mask_score)
    note = f"model's values; top: clip's {MASK_SCALE_PERCENTILE:g}th pct"
    bar = ColourBar(DEFAULT_COLORMAP, 0.0, top, above=top < 1.0, note=note)
    return captioned(enlarge(picture, width), f"frame {frame} · dynamic probability", bar)
