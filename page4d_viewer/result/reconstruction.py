"""The Reconstruction: everything one model run produced, and its single-file save/load.

The viewer, the exporters and the metrics read only this. A result file is one compressed
``.npz`` holding arrays (float16 where the precision allows, cameras in float64) and the
metadata as JSON; ``format_version`` says how to read it. Files are written atomically
(temporary file, then rename), so a crash never leaves a half-written result under the
final name.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import functools
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from page4d_viewer import __version__, geometry
from page4d_viewer.errors import Page4DError, ResultFileError
from page4d_viewer.result import validate
from page4d_viewer.result.cameras import (  # noqa: F401  (re-exported: the file's vocabulary)
    GEOMETRY_MASKED,
    GEOMETRY_UNMASKED,
    GROUND_TRUTH,
    MASKED,
    UNMASKED,
    VARIANTS,
    Cameras,
)
from page4d_viewer.result.inspection import Inside
from page4d_viewer.result.tracks import GT_TRACK_PREFIX, Tracks

logger = logging.getLogger(__name__)

FORMAT_VERSION = 4
"""Version written by :meth:`Reconstruction.save`; :meth:`Reconstruction.load` reads up to it.

1: the geometry, cameras, mask score and ground truth. 2: adds the optional camera-token
attention and feature PCA (``result/inspection.py``). 3: adds the optional point tracks
(``result/tracks.py``). 4: adds the geometric camera variants "geometry_masked" and
"geometry_unmasked". Older files load without what they lack.
"""

_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class Preprocessing:
    """How source frames became model-input images.

    Attributes:
        mode: "crop" or "pad".
        target_size: the model-input width (long side) in pixels, e.g. 518.
        mapping: how model-input pixels map to original pixels (scale, offsets, sizes), as
            produced by the clip loader; plain JSON values.
    """

    mode: str = "crop"
    target_size: int = 518
    mapping: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GeometricPosesRecord:
    """How a run's geometric camera variants were solved (``inference/geometric_poses.py``).

    Attributes:
        source: the match source: "match_head", "track_head" or "optical_flow".
        unsolved: variant ("geometry_masked", "geometry_unmasked") -> frame positions that had
            too few matches and kept the pose of the frame before them.
    """

    source: str
    unsolved: dict[str, list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the file's ``extra.geometric_poses``)."""
        return {"source": self.source, "unsolved": {k: list(v) for k, v in self.unsolved.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeometricPosesRecord:
        """Inverse of :meth:`to_dict` (checked by ``result/validate.py`` when read)."""
        unsolved = data.get("unsolved", {}) or {}
        return cls(str(data["source"]), {str(k): [int(i) for i in v] for k, v in unsolved.items()})


_EXTRA_RECORDS = ("clip_notes", "ground_truth", "batch_clip", "geometric_poses")
"""The Metadata fields a result file keeps in its metadata's ``extra`` object (where the
first writers put them, so older readers still find them)."""


@dataclass
class Metadata:
    """Where a Reconstruction came from and what it cost.

    Attributes:
        checkpoint_name: file name (or preset name) of the weights.
        checkpoint_hash: content hash of the weights (sha256 hex, possibly shortened).
        model_variant: e.g. "page4d", "vggt", "small", "tiny".
        mask_strength: alpha used for the "masked" variant (64 = the released mask mode).
        mask_available: whether the checkpoint has a dynamic mask head.
        source: the clip's source (a path, a URL, or a synthetic scene name).
        frame_indices: index of each frame in the source clip, length S.
        timestamps: time of each frame in seconds, length S.
        preprocessing: how source frames became model-input images.
        timings: seconds per stage, e.g. {"read": 0.3, "model": 4.1}.
        device: torch device the model ran on.
        precision: "float32", "bfloat16" or "float16".
        created_at: ISO 8601 UTC time of the run.
        package_version: page4d_viewer version that produced it.
        clip_notes: one-line notes of the clip loader (e.g. skipped unreadable frames).
        ground_truth: path of the ground truth attached to the run, or "" for none.
        batch_clip: name of the batch clip the run was made for, or "" outside a batch run.
        geometric_poses: how the geometric camera variants were solved, or None without them.
        extra: keys this version does not know (JSON values, e.g. from a newer writer), kept so
            that saving writes them back.

    In the file, ``clip_notes``, ``ground_truth``, ``batch_clip`` and ``geometric_poses`` live
    in the metadata's ``extra`` object next to the unknown keys (their place since version 1).
    """

    checkpoint_name: str = ""
    checkpoint_hash: str = ""
    model_variant: str = ""
    mask_strength: float = 0.0
    mask_available: bool = False
    source: str = ""
    frame_indices: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = ""
    precision: str = ""
    created_at: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    )
    package_version: str = __version__
    clip_notes: list[str] = field(default_factory=list)
    ground_truth: str = ""
    batch_clip: str = ""
    geometric_poses: GeometricPosesRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, in the file's layout (see the class docstring)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["preprocessing"] = dataclasses.asdict(self.preprocessing)
        records = {name: data.pop(name) for name in _EXTRA_RECORDS}
        records["clip_notes"] = list(self.clip_notes)
        if self.geometric_poses is None:
            del records["geometric_poses"]
        else:
            records["geometric_poses"] = self.geometric_poses.to_dict()
        for name in ("ground_truth", "batch_clip"):
            if not records[name]:
                del records[name]
        data["extra"] = {**self.extra, **records}
        return copy.deepcopy(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metadata:
        """Inverse of :meth:`to_dict`; unknown keys are kept in ``extra``."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)} - set(_EXTRA_RECORDS)
        extra = dict(data.pop("extra", {}) or {})
        extra.update({key: data.pop(key) for key in list(data) if key not in known})
        preprocessing = data.pop("preprocessing", None) or {}
        preprocessing_known = {f.name for f in dataclasses.fields(Preprocessing)}
        preprocessing = Preprocessing(
            **{key: value for key, value in preprocessing.items() if key in preprocessing_known}
        )
        poses = extra.pop("geometric_poses", None)
        return cls(
            **data,
            preprocessing=preprocessing,
            clip_notes=[str(note) for note in extra.pop("clip_notes", []) or []],
            ground_truth=str(extra.pop("ground_truth", "") or ""),
            batch_clip=str(extra.pop("batch_clip", "") or ""),
            geometric_poses=None if poses is None else GeometricPosesRecord.from_dict(poses),
            extra=extra,
        )


@dataclass
class Reconstruction:
    """One model run on S frames of H x W model-input pixels.

    Depth and points come from the "masked" run (the mask strength in the metadata);
    ``cameras`` holds one :class:`Cameras` per variant present.

    Attributes:
        images: (S, H, W, 3) uint8 model-input frames.
        depth: (S, H, W) float32 depth along the optical axis (scene units).
        depth_conf: (S, H, W) float32 confidence (>= 1, larger = surer).
        points: (S, H, W, 3) float32 world points in the first camera's frame.
        points_conf: (S, H, W) float32 confidence of the points.
        cameras: variant name ("masked", "unmasked", "geometry_masked", "geometry_unmasked",
            "ground_truth") -> Cameras of S frames.
        mask_score: (S, h, w) float32 per-patch dynamic mask score in (-0.5, 0.5), or None when
            the model has no mask head.
        metadata: provenance, preprocessing and timings.
        gt_depth: (S, H, W) float32 ground-truth depth (0 where unknown), or None.
        gt_dynamic_mask: (S, H, W) bool ground-truth moving pixels, or None.
        inside: the camera-token attention maps and patch-token feature PCA the run recorded
            (``result/inspection.py`` gives their shapes), or None when it recorded neither.
        tracks: point tracks through the S frames (``result/tracks.py``), or None.
        gt_tracks: the exact tracks of the same queries (visibility 0 or 1), or None; only
            with ``tracks`` (``inference/tracking.py`` adds them for synthetic scenes).
    """

    images: npt.NDArray[np.uint8]
    depth: npt.NDArray[np.float32]
    depth_conf: npt.NDArray[np.float32]
    points: npt.NDArray[np.float32]
    points_conf: npt.NDArray[np.float32]
    cameras: dict[str, Cameras]
    mask_score: npt.NDArray[np.float32] | None = None
    metadata: Metadata = field(default_factory=Metadata)
    gt_depth: npt.NDArray[np.float32] | None = None
    gt_dynamic_mask: npt.NDArray[np.bool_] | None = None
    inside: Inside | None = None
    tracks: Tracks | None = None
    gt_tracks: Tracks | None = None

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(
                f"images must be (S, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}"
            )
        frames, height, width = self.images.shape[:3]
        self.depth = _float_array("depth", self.depth, (frames, height, width))
        self.depth_conf = _float_array("depth_conf", self.depth_conf, (frames, height, width))
        self.points = _float_array("points", self.points, (frames, height, width, 3))
        self.points_conf = _float_array("points_conf", self.points_conf, (frames, height, width))
        if self.mask_score is not None:
            self.mask_score = np.asarray(self.mask_score, dtype=np.float32)
            if self.mask_score.ndim != 3 or self.mask_score.shape[0] != frames:
                raise ValueError(
                    f"mask_score must be ({frames}, h, w), got {self.mask_score.shape}"
                )
        if self.gt_depth is not None:
            self.gt_depth = _float_array("gt_depth", self.gt_depth, (frames, height, width))
        if self.gt_dynamic_mask is not None:
            self.gt_dynamic_mask = np.asarray(self.gt_dynamic_mask, dtype=bool)
            if self.gt_dynamic_mask.shape != (frames, height, width):
                raise ValueError(
                    f"gt_dynamic_mask must be {(frames, height, width)}, "
                    f"got {self.gt_dynamic_mask.shape}"
                )
        if MASKED not in self.cameras:
            raise ValueError(f"cameras must include {MASKED!r}, got {sorted(self.cameras)}")
        for name, cameras in self.cameras.items():
            if name not in VARIANTS:
                raise ValueError(f"unknown camera variant {name!r}; expected one of {VARIANTS}")
            if not isinstance(cameras, Cameras):
                raise ValueError(f"cameras[{name!r}] must be a Cameras, got {type(cameras)}")
            if cameras.num_frames != frames:
                raise ValueError(
                    f"cameras[{name!r}] has {cameras.num_frames} frames, images have {frames}"
                )
        # Keep a stable display order whatever order the caller used.
        self.cameras = {name: self.cameras[name] for name in VARIANTS if name in self.cameras}
        grid = None if self.mask_score is None else self.mask_score.shape[1:]
        if self.inside is not None:
            inside = self.inside.checked(frames, grid)
            self.inside = None if inside.is_empty else inside
        if self.tracks is not None and self.tracks.num_frames != frames:
            raise ValueError(f"tracks have {self.tracks.num_frames} frames, images have {frames}")
        if self.gt_tracks is not None and (
            self.tracks is None or not self.tracks.matches(self.gt_tracks)
        ):
            raise ValueError("gt_tracks must follow the same queries as tracks")

    # ----------------------------------------------------------------- views the viewer needs

    @property
    def num_frames(self) -> int:
        """Number of frames S."""
        return int(self.images.shape[0])

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of the model-input images in pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def variants(self) -> tuple[str, ...]:
        """Camera variants present, in display order (subset of :data:`VARIANTS`)."""
        return tuple(self.cameras)

    @functools.cached_property
    def bad_frames(self) -> tuple[int, ...]:
        """Frames (0-based) whose depth, points or confidences hold NaN or infinite values.

        A damaged file may carry them; the viewer names them and the exporters skip them.
        """
        finite = np.ones(self.num_frames, dtype=bool)
        for array in (self.depth, self.depth_conf, self.points, self.points_conf):
            finite &= np.isfinite(array.reshape(self.num_frames, -1)).all(axis=1)
        return tuple(int(frame) for frame in np.flatnonzero(~finite))

    @property
    def has_mask(self) -> bool:
        """Whether a dynamic mask score is stored."""
        return self.mask_score is not None

    def camera_variant(self, name: str) -> Cameras:
        """The cameras of one variant, or a Page4DError naming the ones present."""
        if name not in self.cameras:
            raise Page4DError(
                f"this result has no {name!r} cameras; it has {', '.join(self.variants)}"
            )
        return self.cameras[name]

    @property
    def alignment_reference(self) -> str:
        """The variant others are Sim(3)-aligned onto for display and export.

        The geometric masked poses when the result has them: they are solved from the
        network's own depth, so they live in the points' world and scale, and they move even
        where a camera head learned no motion (onto which the ground truth would shrink to a
        point). Otherwise the camera head's masked cameras.
        """
        return GEOMETRY_MASKED if GEOMETRY_MASKED in self.cameras else MASKED

    def aligned_cameras(self, variant: str, reference: str | None = None) -> Cameras:
        """A variant's cameras moved by the Sim(3) that best fits their centres to another's.

        Ground truth lives in its own world and scale; for display it is aligned onto the
        predicted trajectory. With fewer than 3 frames only a translation is fitted.

        Args:
            variant: the cameras to move.
            reference: the cameras to align onto (default :attr:`alignment_reference`).
        """
        reference = self.alignment_reference if reference is None else reference
        moving = self.camera_variant(variant)
        target = self.camera_variant(reference)
        if variant == reference:
            return moving
        if self.num_frames < 3:
            offset = target.centers.mean(axis=0) - moving.centers.mean(axis=0)
            similarity = geometry.Similarity(1.0, np.eye(3), offset)
        else:
            similarity = geometry.similarity_align(moving.centers, target.centers)
        return moving.transformed(similarity)

    def with_ground_truth(
        self,
        extrinsics: npt.ArrayLike | None,
        intrinsics: npt.ArrayLike | None = None,
        depth: npt.ArrayLike | None = None,
        dynamic_mask: npt.ArrayLike | None = None,
    ) -> Reconstruction:
        """A copy holding ground truth already in model-input pixels (whatever is known).

        The ground-truth cameras are re-expressed in their first camera's frame, like the
        predictions (the scale stays the ground truth's own).

        Args:
            extrinsics: (S, 3, 4) ground-truth camera-from-world, or None.
            intrinsics: (S, 3, 3) in model-input pixels; None copies the masked intrinsics.
            depth: (S, H, W) depth in model-input pixels, 0 where unknown, or None.
            dynamic_mask: (S, H, W) bool, True on moving pixels, or None.
        """
        cameras = dict(self.cameras)
        if extrinsics is not None:
            extrinsics = np.asarray(extrinsics, dtype=np.float64)
            first_to_world = geometry.invert_rigid(extrinsics[0])
            if intrinsics is None:
                intrinsics = self.cameras[MASKED].intrinsics
            cameras[GROUND_TRUTH] = Cameras(
                geometry.compose_rigid(extrinsics, first_to_world),
                np.array(intrinsics, dtype=np.float64),
            )
        return dataclasses.replace(
            self,
            cameras=cameras,
            gt_depth=self.gt_depth if depth is None else depth,
            gt_dynamic_mask=self.gt_dynamic_mask if dynamic_mask is None else dynamic_mask,
        )

    def select_frames(self, frames: npt.ArrayLike) -> Reconstruction:
        """A Reconstruction of a subset of frames (0-based positions), metadata trimmed to match.

        The world frame is kept (still the original first camera), so subsets stay comparable.
        """
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        if frames.size == 0 or frames.min() < 0 or frames.max() >= self.num_frames:
            raise Page4DError(
                f"frames must be non-empty and within 0..{self.num_frames - 1}, "
                f"got {frames.tolist()}"
            )
        metadata = dataclasses.replace(
            self.metadata,
            frame_indices=_pick(self.metadata.frame_indices, frames),
            timestamps=_pick(self.metadata.timestamps, frames),
        )

        def optional(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[frames]

        return Reconstruction(
            images=self.images[frames],
            depth=self.depth[frames],
            depth_conf=self.depth_conf[frames],
            points=self.points[frames],
            points_conf=self.points_conf[frames],
            cameras={name: cameras.select(frames) for name, cameras in self.cameras.items()},
            mask_score=optional(self.mask_score),
            metadata=metadata,
            gt_depth=optional(self.gt_depth),
            gt_dynamic_mask=optional(self.gt_dynamic_mask),
            inside=None if self.inside is None else self.inside.select_frames(frames),
            tracks=None if self.tracks is None else self.tracks.select_frames(frames),
            gt_tracks=None if self.gt_tracks is None else self.gt_tracks.select_frames(frames),
        )

    def timestamps(self) -> npt.NDArray[np.float64]:
        """(S,) float64 frame times in seconds; frame positions when none were recorded."""
        if len(self.metadata.timestamps) == self.num_frames:
            return np.asarray(self.metadata.timestamps, dtype=np.float64)
        return np.arange(self.num_frames, dtype=np.float64)

    def describe(self) -> str:
        """One line for logs and the terminal."""
        height, width = self.image_hw
        mask = f"mask strength {self.metadata.mask_strength:g}" if self.has_mask else "no mask"
        tracks = "" if self.tracks is None else f", {self.tracks.num_tracks} point tracks"
        return (
            f"{self.num_frames} frames of {width}x{height}, cameras: {', '.join(self.variants)}, "
            f"{mask}{tracks}, checkpoint {self.metadata.checkpoint_name or '?'}"
        )

    # ------------------------------------------------------------------------------ file I/O

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write one compressed ``.npz`` atomically; returns the path written.

        Depth, points, confidences and the mask score are stored as float16 (values beyond
        float16's range are clipped to it, which only touches confidences and wild outliers);
        cameras as float64; metadata as JSON.
        """
        path = Path(path)
        if path.suffix != ".npz":
            raise Page4DError(f"result files end in .npz, got {path.name!r}")
        arrays: dict[str, np.ndarray] = {
            "format_version": np.asarray(FORMAT_VERSION, dtype=np.int64),
            "metadata_json": np.asarray(json.dumps(self.metadata.to_dict())),
            "images": self.images,
            "depth": _to_float16(self.depth),
            "depth_conf": _to_float16(self.depth_conf),
            "points": _to_float16(self.points),
            "points_conf": _to_float16(self.points_conf),
        }
        if self.mask_score is not None:
            arrays["mask_score"] = _to_float16(self.mask_score)
        if self.gt_depth is not None:
            arrays["gt_depth"] = self.gt_depth.astype(np.float32)
        if self.gt_dynamic_mask is not None:
            arrays["gt_dynamic_mask"] = self.gt_dynamic_mask
        if self.inside is not None:
            arrays.update(self.inside.to_arrays())
        if self.tracks is not None:
            arrays.update(self.tracks.to_arrays())
        if self.gt_tracks is not None:
            arrays.update(self.gt_tracks.to_arrays(GT_TRACK_PREFIX))
        for name, cameras in self.cameras.items():
            arrays[f"cameras.{name}.extrinsics"] = cameras.extrinsics
            arrays[f"cameras.{name}.intrinsics"] = cameras.intrinsics
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
        try:
            with os.fdopen(handle, "wb") as file:
                # numpy's stub types **kwds as if a key could be allow_pickle; ours never is.
                np.savez_compressed(file, **arrays)  # pyright: ignore[reportArgumentType]
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        logger.info("saved %s (%s)", path, self.describe())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reconstruction:
        """Read a file written by :meth:`save`.

        Raises:
            ResultFileError: missing, not an npz, damaged or truncated, written by a newer
                version, missing arrays, arrays of the wrong dtype or shape (checked from the npy
            headers, before anything is allocated), more than settings.MAX_RESULT_BYTES of
            arrays, non-finite cameras, or metadata fields of the wrong type (result/validate.py
            holds the schema); the message is one line naming the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ResultFileError(f"no result file at {path}")
        arrays = validate.read_arrays(path)
        version = int(arrays["format_version"])
        if version > FORMAT_VERSION or version < 1:
            raise ResultFileError(
                f"{path} has result format version {version}; this page4d_viewer "
                f"{__version__} reads versions 1 to {FORMAT_VERSION} (upgrade page4d_viewer)"
            )
        frames = int(arrays["images"].shape[0])
        try:
            raw = json.loads(str(arrays["metadata_json"]))
        except (ValueError, RecursionError) as error:
            raise ResultFileError(f"{path}: metadata is not valid JSON") from error
        try:
            metadata = Metadata.from_dict(validate.check_metadata(raw, frames, path))
            cameras = {
                name: Cameras(
                    arrays[f"cameras.{name}.extrinsics"], arrays[f"cameras.{name}.intrinsics"]
                )
                for name in VARIANTS
                if f"cameras.{name}.extrinsics" in arrays
            }
            return cls(
                images=arrays["images"],
                depth=arrays["depth"],
                depth_conf=arrays["depth_conf"],
                points=arrays["points"],
                points_conf=arrays["points_conf"],
                cameras=cameras,
                mask_score=arrays.get("mask_score"),
                metadata=metadata,
                gt_depth=arrays.get("gt_depth"),
                gt_dynamic_mask=arrays.get("gt_dynamic_mask"),
                inside=Inside.from_arrays(arrays),
                tracks=Tracks.from_arrays(arrays),
                gt_tracks=Tracks.from_arrays(arrays, GT_TRACK_PREFIX),
            )
        except (ValueError, TypeError, KeyError) as error:
            detail = " ".join(str(error).split())
            raise ResultFileError(f"{path} has inconsistent contents: {detail}") from error


def _float_array(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} to match the images, got {array.shape}")
    return array


def _to_float16(array: np.ndarray) -> np.ndarray:
    return np.clip(array, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)


def _pick(values: list[Any], frames: np.ndarray) -> list[Any]:
    if len(values) <= int(frames.max()):
        return []
    return [values[i] for i in frames.tolist()]
