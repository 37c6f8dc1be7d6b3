"""Procedural solid textures: lattice hash noise, the albedo of a texture, random textures.

Textures are solid (3-D): a surface point's colour depends only on its coordinates in the
owner's frame, so a static point has the same albedo in every frame.
"""

from __future__ import annotations

import colorsys
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vec3 = tuple[float, float, float]
Vec2 = tuple[float, float]


def vec3(values: Sequence[float] | npt.NDArray[np.floating]) -> Vec3:
    """Three floats from any sequence of three numbers (a JSON list, a numpy vector).

    Raises:
        ValueError: not three values, or one is not a number.
    """
    x, y, z = (float(v) for v in values)
    return x, y, z


def vec2(values: Sequence[float] | npt.NDArray[np.floating]) -> Vec2:
    """Two floats from any sequence of two numbers (see `vec3`)."""
    x, y = (float(v) for v in values)
    return x, y


@dataclass(frozen=True)
class Texture:
    """A solid procedural texture: a pattern mixing two colours, times fine grain.

    Attributes:
        kind: "plain", "checker", "stripes", "noise" or "tiles".
        colour_a: RGB albedo in [0, 1].
        colour_b: second RGB albedo in [0, 1].
        cell: pattern period in metres.
        offset: (3,) metres added to the coordinates (keeps cell borders off flat faces).
        axis: (3,) unit direction across the stripes.
        seed: hash seed of the noise lattices.
        grain: relative amplitude of the 3 cm grain on top of the pattern.
    """

    kind: str
    colour_a: Vec3
    colour_b: Vec3
    cell: float
    offset: Vec3
    axis: Vec3
    seed: int
    grain: float


# Odd 32-bit constants of the lattice hash: one per axis, one for the seed.
_HASH_AXES = (np.uint32(0x8DA6B343), np.uint32(0xD8163841), np.uint32(0xCB1AB31F))
_HASH_SEED = 0x9E3779B1


def _axis_term(cells: np.ndarray, axis: int) -> np.ndarray:
    """uint32 hash contribution of integer lattice coordinates along one axis."""
    # uint32 arithmetic wraps around, which is what the hash wants (no masking needed).
    return cells.astype(np.uint32, copy=False) * _HASH_AXES[axis]


def _finalise(h: np.ndarray, seed: int) -> np.ndarray:
    """Mix combined uint32 lattice terms into a value in [0, 1) (a murmur-style finaliser)."""
    h = h ^ np.uint32((seed * _HASH_SEED) & 0xFFFFFFFF)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h * (1.0 / 4294967296.0)


def _hash01(cells: np.ndarray, seed: int) -> np.ndarray:
    """Pseudo-random value in [0, 1) per integer lattice point: (N, 3) int -> (N,)."""
    h = _axis_term(cells[:, 0], 0) ^ _axis_term(cells[:, 1], 1) ^ _axis_term(cells[:, 2], 2)
    return _finalise(h, seed)


def _value_noise(coords: np.ndarray, seed: int) -> np.ndarray:
    """Smooth lattice noise in [0, 1]: (N, 3) coordinates in cells -> (N,)."""
    base = np.floor(coords)
    fraction = coords - base
    weight = fraction * fraction * (3.0 - 2.0 * fraction)
    cell = base.astype(np.int64).astype(np.uint32)
    terms = [[_axis_term(cell[:, a] + np.uint32(k), a) for k in (0, 1)] for a in range(3)]
    weights = [[1.0 - weight[:, a], weight[:, a]] for a in range(3)]
    result = np.zeros(len(coords))
    for cx, cy in itertools.product((0, 1), repeat=2):
        h_xy = terms[0][cx] ^ terms[1][cy]
        w_xy = weights[0][cx] * weights[1][cy]
        for cz in (0, 1):
            result += (w_xy * weights[2][cz]) * _finalise(h_xy ^ terms[2][cz], seed)
    return result


def _fractal_noise(coords: np.ndarray, seed: int, octaves: int) -> np.ndarray:
    """Sum of ``octaves`` value-noise layers at doubling frequency, in [0, 1]."""
    total = np.zeros(len(coords))
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        total += amplitude * _value_noise(coords * 2.0**octave, seed + octave)
        norm += amplitude
        amplitude *= 0.5
    return total / norm


DETAIL_CELL = 0.25
"""Coarsest period (metres) of the optional detail noise; three octaves go down to 6 cm."""


def albedo(
    texture: Texture, points: npt.NDArray[np.float64], detail: float = 0.0
) -> npt.NDArray[np.float64]:
    """Surface colour of a texture: (N, 3) texture coordinates (metres) -> (N, 3) RGB.

    ``detail`` > 0 multiplies in a fractal noise of that relative amplitude (the scene's
    ``texture_detail``), seeded by the texture, so every patch of a surface differs.
    """
    coords = (points + np.array(texture.offset)) / texture.cell
    if texture.kind == "checker":
        mix = np.floor(coords).sum(axis=1) % 2
    elif texture.kind == "stripes":
        wave = 0.5 + 0.5 * np.sin(2 * math.pi * (coords @ np.array(texture.axis)))
        mix = np.clip((wave - 0.5) * 3.0 + 0.5, 0.0, 1.0)
    elif texture.kind == "noise":
        mix = np.clip((_fractal_noise(coords, texture.seed, 4) - 0.5) * 2.2 + 0.5, 0.0, 1.0)
    elif texture.kind == "tiles":
        mix = _hash01(np.floor(coords).astype(np.int64), texture.seed)
    else:
        mix = np.zeros(len(coords))
    colour = (1 - mix)[:, None] * np.array(texture.colour_a) + mix[:, None] * np.array(
        texture.colour_b
    )
    if texture.kind == "tiles":
        # Grout lines; a flat face's zeroed coordinate sits mid-cell (offset in 0.1-0.9 cells).
        fraction = coords - np.floor(coords)
        grout = (np.minimum(fraction, 1 - fraction) < 0.04).any(axis=1)
        colour[grout] *= 0.45
    grain = _value_noise((points + np.array(texture.offset)) / 0.03, texture.seed + 101)
    colour = colour * (1.0 + texture.grain * (2.0 * grain[:, None] - 1.0))
    if detail > 0:
        shifted = (points + np.array(texture.offset)) / DETAIL_CELL
        noise = _fractal_noise(shifted, texture.seed + 202, 3)
        colour = colour * (1.0 + detail * (2.0 * noise[:, None] - 1.0))
    return colour


def _random_colour(rng: np.random.Generator, value: tuple[float, float]) -> Vec3:
    hue = rng.uniform(0, 1)
    saturation = rng.uniform(0.15, 0.8)
    return vec3(colorsys.hsv_to_rgb(hue, saturation, rng.uniform(*value)))


def random_texture(
    rng: np.random.Generator,
    kinds: Sequence[str],
    cell: tuple[float, float],
    value: tuple[float, float] = (0.35, 0.95),
) -> Texture:
    """A random texture of one of ``kinds`` with a period in ``cell`` metres."""
    kind = str(rng.choice(kinds))
    colour_a = _random_colour(rng, value)
    if rng.uniform() < 0.5:
        # Same hue family, different brightness: the common look of real materials.
        hue, saturation, brightness = colorsys.rgb_to_hsv(*colour_a)
        colour_b = colorsys.hsv_to_rgb(
            (hue + rng.uniform(-0.06, 0.06)) % 1.0,
            saturation,
            float(np.clip(brightness * rng.uniform(0.45, 0.75), 0.05, 1.0)),
        )
        colour_b = vec3(colour_b)
    else:
        colour_b = _random_colour(rng, value)
    period = float(rng.uniform(*cell))
    axis = rng.normal(size=3)
    return Texture(
        kind=kind,
        colour_a=colour_a,
        colour_b=colour_b,
        cell=period,
        offset=vec3(period * rng.uniform(0.1, 0.9, size=3)),
        axis=vec3(axis / np.linalg.norm(axis)),
        seed=int(rng.integers(0, 2**20)),
        grain=float(rng.uniform(0.06, 0.2)),
    )
