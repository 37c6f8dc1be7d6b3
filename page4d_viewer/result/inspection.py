"""The optional "inside the model" part of a Reconstruction: attention maps and feature PCA.

Torch-free: the viewer reads these arrays without the model. A Reconstruction holds them as one
record, ``recon.inside`` (an :class:`Inside`, or None when the run recorded neither attention
nor features); an Inside holds attention, features, or both:

- ``attention``: variant ("masked", "unmasked") -> (L, S_query, S, h, w) float32, the camera
  token of each query frame's attention on every frame's patches, averaged over heads, in the
  masked global layers ``attention_layers`` (L of them), for the frames
  ``attention_query_frames`` (S_query, positions 0..S-1).
- ``attention_special``: variant -> (L, S_query, S) float32, the attention mass on each key
  frame's camera and register tokens (patch maps summed over (S, h, w) plus this summed over S
  is 1).
- ``feature_pca``: (L_f, S, h, w, 3) uint8, the first three principal components of the
  patch tokens after each layer of ``feature_layers`` (masked variant), as RGB.

In the file: ``attention.<variant>`` and ``attention_special.<variant>`` (float16),
``attention_layers``, ``attention_query_frames``, ``feature_layers`` (int64) and
``feature_pca`` (uint8), all optional (format version 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from page4d_viewer.result.cameras import MASKED, UNMASKED

ATTENTION_VARIANTS = (MASKED, UNMASKED)
# float16 rounding of a probability stays within this of [0, 1]
_PROBABILITY_SLACK = 1e-3

AttentionMaps = dict[str, npt.NDArray[np.float32]]
"""Variant ("masked", "unmasked") -> attention array (shapes in :class:`Inside`)."""


@dataclass(frozen=True)
class Inside:
    """Attention maps and feature PCA of one run, checked together.

    Attributes:
        attention: variant -> (L, S_query, S, h, w) float32 attention of each query frame's
            camera token on every frame's patches (mean over heads), or None.
        attention_special: variant -> (L, S_query, S) float32 attention on the key frames'
            camera and register tokens; present exactly when ``attention`` is.
        attention_layers: the L masked global layers of ``attention`` (empty without it).
        attention_query_frames: the S_query ascending frame positions whose camera token is
            the query (empty without attention).
        feature_pca: (L_f, S, h, w, 3) uint8 patch-token PCA as RGB, or None.
        feature_layers: the L_f layers of ``feature_pca`` (empty without it).
    """

    attention: AttentionMaps | None = None
    attention_special: AttentionMaps | None = None
    attention_layers: tuple[int, ...] = ()
    attention_query_frames: tuple[int, ...] = ()
    feature_pca: npt.NDArray[np.uint8] | None = None
    feature_layers: tuple[int, ...] = ()

    @property
    def is_empty(self) -> bool:
        """Whether it holds neither attention nor features."""
        no_attention = self.attention is None and self.attention_special is None
        return no_attention and self.feature_pca is None

    def checked(self, frames: int, grid: tuple[int, ...] | None) -> Inside:
        """The same fields as float32/uint8 arrays and int tuples, shapes checked.

        Args:
            frames: S of the Reconstruction.
            grid: (h, w) of its mask score, or None when it has none.

        Raises:
            ValueError: a shape, dtype, index or value that does not fit (names the field).
        """
        attention, special = self._checked_attention(frames, grid)
        if attention is not None:
            grid = next(iter(attention.values())).shape[-2:]
        feature_layers = _index_tuple("feature_layers", self.feature_layers)
        feature_pca = None
        if self.feature_pca is not None:
            feature_pca = np.asarray(self.feature_pca)
            expected = (len(feature_layers), frames)
            if (
                feature_pca.dtype != np.uint8
                or feature_pca.ndim != 5
                or feature_pca.shape[:2] != expected
                or feature_pca.shape[-1] != 3
                or (grid is not None and feature_pca.shape[2:4] != tuple(grid))
                or not feature_layers
            ):
                raise ValueError(
                    f"feature_pca must be uint8 ({len(feature_layers)}, {frames}, h, w, 3) "
                    f"matching feature_layers and the patch grid, got {feature_pca.shape} "
                    f"{feature_pca.dtype}"
                )
        elif feature_layers:
            raise ValueError("feature_layers given without feature_pca")
        return Inside(
            attention,
            special,
            _index_tuple("attention_layers", self.attention_layers),
            _index_tuple("attention_query_frames", self.attention_query_frames),
            feature_pca,
            feature_layers,
        )

    def _checked_attention(
        self, frames: int, grid: tuple[int, ...] | None
    ) -> tuple[AttentionMaps | None, AttentionMaps | None]:
        layers = _index_tuple("attention_layers", self.attention_layers)
        queries = _index_tuple("attention_query_frames", self.attention_query_frames)
        if self.attention is None and self.attention_special is None:
            if layers or queries:
                raise ValueError("attention_layers/attention_query_frames given without attention")
            return None, None
        if self.attention is None or self.attention_special is None:
            raise ValueError("attention and attention_special go together")
        if not self.attention or set(self.attention) != set(self.attention_special):
            raise ValueError("attention and attention_special must name the same variants")
        unknown = sorted(set(self.attention) - set(ATTENTION_VARIANTS))
        if unknown:
            raise ValueError(f"attention variants must be among {ATTENTION_VARIANTS}: {unknown}")
        if (
            not layers
            or not queries
            or list(queries) != sorted(set(queries))
            or queries[-1] >= frames
        ):
            raise ValueError(
                f"attention_query_frames must be ascending positions within 0..{frames - 1} "
                f"and attention_layers non-empty, got {list(queries)} and {list(layers)}"
            )
        attention: AttentionMaps = {}
        special: AttentionMaps = {}
        for name in ATTENTION_VARIANTS:
            if name not in self.attention:
                continue
            attention[name] = _probabilities(f"attention[{name!r}]", self.attention[name])
            special[name] = _probabilities(
                f"attention_special[{name!r}]", self.attention_special[name]
            )
            head = (len(layers), len(queries), frames)
            maps, mass = attention[name], special[name]
            if mass.shape != head or maps.ndim != 5 or maps.shape[:3] != head:
                raise ValueError(
                    f"attention[{name!r}] must be {head} + (h, w) and attention_special "
                    f"{head}, got {maps.shape} and {mass.shape}"
                )
            if grid is not None and maps.shape[3:] != tuple(grid):
                raise ValueError(
                    f"attention[{name!r}] patch grid {maps.shape[3:]} differs from {tuple(grid)}"
                )
            grid = maps.shape[3:]
        return attention, special

    def select_frames(self, frames: npt.NDArray[np.int64]) -> Inside | None:
        """The fields for a subset of frames (positions); attention keeps the query frames
        among them (none left: no attention). None when nothing is left."""
        feature_pca = None if self.feature_pca is None else self.feature_pca[:, frames]
        features = Inside(feature_pca=feature_pca, feature_layers=self.feature_layers)
        if self.attention is None or self.attention_special is None:
            return None if features.is_empty else features
        rows = {frame: row for row, frame in enumerate(self.attention_query_frames)}
        new_queries = tuple(p for p, frame in enumerate(frames.tolist()) if frame in rows)
        if not new_queries:
            return None if features.is_empty else features
        query_rows = [rows[int(frames[p])] for p in new_queries]
        return dataclasses.replace(
            features,
            attention={
                name: maps[:, query_rows][:, :, frames] for name, maps in self.attention.items()
            },
            attention_special={
                name: mass[:, query_rows][:, :, frames]
                for name, mass in self.attention_special.items()
            },
            attention_layers=self.attention_layers,
            attention_query_frames=new_queries,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays a result file stores (probabilities as float16), under the file's keys."""
        arrays: dict[str, np.ndarray] = {}
        if self.attention is not None and self.attention_special is not None:
            for name, maps in self.attention.items():
                arrays[f"attention.{name}"] = maps.astype(np.float16)
                arrays[f"attention_special.{name}"] = self.attention_special[name].astype(
                    np.float16
                )
            arrays["attention_layers"] = np.asarray(self.attention_layers, dtype=np.int64)
            arrays["attention_query_frames"] = np.asarray(
                self.attention_query_frames, dtype=np.int64
            )
        if self.feature_pca is not None:
            arrays["feature_pca"] = self.feature_pca
            arrays["feature_layers"] = np.asarray(self.feature_layers, dtype=np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Inside | None:
        """Inverse of `to_arrays` (absent arrays: absent fields; none at all: None); checked
        by `checked`."""

        def variants(prefix: str) -> AttentionMaps | None:
            found = {
                name: arrays[f"{prefix}.{name}"]
                for name in ATTENTION_VARIANTS
                if f"{prefix}.{name}" in arrays
            }
            return found or None

        def indices(name: str) -> tuple[int, ...]:
            if name not in arrays:
                return ()
            return tuple(int(i) for i in np.asarray(arrays[name]).reshape(-1).tolist())

        inside = cls(
            attention=variants("attention"),
            attention_special=variants("attention_special"),
            attention_layers=indices("attention_layers"),
            attention_query_frames=indices("attention_query_frames"),
            feature_pca=arrays.get("feature_pca"),
            feature_layers=indices("feature_layers"),
        )
        has_indices = inside.attention_layers or inside.attention_query_frames
        return None if inside.is_empty and not has_indices and not inside.feature_layers else inside


def stored_attention_bytes(
    layers: int, query_frames: int, frames: int, grid: tuple[int, int], variants: int = 2
) -> int:
    """Uncompressed bytes of the stored attention (float16 maps and special mass)."""
    return 2 * variants * layers * query_frames * frames * (grid[0] * grid[1] + 1)


def _index_tuple(name: str, values: Sequence[int] | np.ndarray) -> tuple[int, ...]:
    array = np.asarray(values)
    if array.size and (array.ndim != 1 or not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{name} must be a list of integers, got {array.dtype} {array.shape}")
    indices = tuple(int(i) for i in array.reshape(-1))
    if any(i < 0 for i in indices):
        raise ValueError(f"{name} must be non-negative, got {list(indices)}")
    return indices


def _probabilities(name: str, array: np.ndarray) -> npt.NDArray[np.float32]:
    array = np.asarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be floating point, got {array.dtype}")
    array = array.astype(np.float32)
    if array.size and (
        not np.all(np.isfinite(array))
        or array.min() < -_PROBABILITY_SLACK
        or array.max() > 1 + _PROBABILITY_SLACK
    ):
        raise ValueError(f"{name} must hold probabilities in [0, 1]")
    return array
