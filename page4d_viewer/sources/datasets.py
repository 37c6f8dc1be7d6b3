"""The clips of a dataset, each with its ground truth when the layout has some.

``discover_clips(path)`` recognises, from the folder itself:

* **MPI Sintel** (the ``training`` folder, or the folder above it): frames in
  ``final/<seq>/frame_*.png`` (else ``clean/<seq>``), ground truth in ``camdata_left/<seq>``
  (``.cam``; depth from the sibling ``depth/<seq>``) or ``depth/<seq>`` alone;
* **TUM RGB-D / Bonn RGB-D Dynamic**: one folder per sequence holding ``rgb/`` and
  ``groundtruth.txt`` (or the path is one such sequence);
* **DAVIS**: ``JPEGImages/480p/<seq>/*.jpg`` (or ``JPEGImages/<seq>``), no ground truth;
* any other folder: each sub-folder of images is a clip, each sub-folder holding a synthetic
  sample (``clip.mp4`` + ``groundtruth.npz``) a clip with that ground truth, each video file a
  clip; a single video file is a dataset of one clip.

``synthetic_clips(seeds, cache)`` lists rendered synthetic scenes (``synthetic:FIRST-LAST`` on
the command line); :meth:`DatasetClip.prepare` renders one into the cache when it is missing.

Clip names are unique within a dataset and stable across runs: they key the batch index.
Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from page4d_viewer.errors import ClipError, Page4DError
from page4d_viewer.sources.groundtruth import GROUND_TRUTH_NAME, TUM_TRAJECTORY
from page4d_viewer.sources.images import IMAGE_EXTENSIONS
from page4d_viewer.sources.naming import natural_key
from page4d_viewer.sources.synthetic import make_clip, save_ground_truth
from page4d_viewer.sources.video import VIDEO_EXTENSIONS, probe_video

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "synthetic:"
"""``synthetic:FIRST-LAST`` names a set of rendered synthetic scenes instead of a folder."""

SINTEL_PASSES = ("final", "clean")
_SINTEL_TRUTH = ("camdata_left", "depth")
_SYNTHETIC_VIDEO = "clip.mp4"


class DatasetError(Page4DError):
    """A dataset path that is missing, or in which no clip can be found."""


@dataclass(frozen=True)
class DatasetClip:
    """One clip of a dataset.

    Attributes:
        name: unique, stable name within the dataset (e.g. "alley_1", "synthetic-9000000").
        source: what ``load_clip`` reads (a video, or a folder of images).
        ground_truth: what ``load_ground_truth`` reads for it, or None.
        layout: "sintel", "tum", "davis", "images", "video", "synthetic".
        frame_count: frames in the source (0 when it could not be counted); for load balance.
        render: for synthetic clips not yet on disk, the ``make_clip`` keyword arguments.
    """

    name: str
    source: Path
    ground_truth: Path | None
    layout: str
    frame_count: int = 0
    render: dict[str, Any] = field(default_factory=dict)

    def prepare(self) -> None:
        """Make the source exist: render a synthetic clip into its cache folder if missing.

        The clip is written into a temporary sibling folder and renamed into place, so a
        killed batch never leaves a half-written sample that looks complete.
        """
        if not self.render or _is_synthetic_sample(self.source.parent):
            return

        folder = self.source.parent
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            save_ground_truth(make_clip(**self.render), temporary)
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(folder)  # a folder without groundtruth.npz is incomplete
            os.replace(temporary, folder)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def effective_frames(self, stride: int = 1, max_frames: int | None = None) -> int:
        """Frames the clip will have after a stride and a frame cap (for load balance)."""
        count = math.ceil(self.frame_count / max(stride, 1))
        return count if max_frames is None else min(count, max_frames)


def synthetic_clips(
    seeds: Sequence[int],
    cache: str | os.PathLike[str],
    *,
    num_frames: int = 8,
    width: int = 256,
    height: int = 144,
) -> list[DatasetClip]:
    """Synthetic scenes, one per seed, rendered on demand into ``cache/synthetic-<seed>``.

    Sizes that are multiples of 16 keep the H.264 file identical from run to run.

    Args:
        seeds: one clip per seed.
        cache: folder holding the rendered samples.
        num_frames: S of every clip.
        width: W in pixels.
        height: H in pixels.
    """
    if num_frames < 2 or width < 28 or height < 28:
        raise DatasetError("synthetic clips need at least 2 frames of at least 28x28 pixels")
    cache = Path(cache)
    clips = []
    for seed in seeds:
        folder = cache / f"synthetic-{seed}"
        render = {"seed": int(seed), "num_frames": num_frames, "width": width, "height": height}
        clips.append(
            DatasetClip(
                name=folder.name,
                source=folder / _SYNTHETIC_VIDEO,
                ground_truth=folder,
                layout="synthetic",
                frame_count=num_frames,
                render=render,
            )
        )
    return clips


def discover_clips(path: str | os.PathLike[str]) -> list[DatasetClip]:
    """The clips of a dataset folder (or one video), in natural order of their names.

    Raises:
        DatasetError: the path does not exist, or holds no clip of a known layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    if path.is_file():
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise DatasetError(f"{path} is neither a dataset folder nor a video")
        clips = [_video_clip(path)]
    elif (sintel := _sintel_root(path)) is not None:
        clips = _sintel_clips(sintel)
    elif (path / "JPEGImages").is_dir():
        clips = _davis_clips(path / "JPEGImages")
    elif _is_tum_sequence(path):
        clips = [_tum_clip(path)]
    else:
        clips = _folder_clips(path)
    if not clips:
        raise DatasetError(
            f"no clip found in {path}: expected a Sintel, TUM/Bonn or DAVIS layout, or folders "
            "of images, synthetic samples or videos"
        )
    names = [clip.name for clip in clips]
    if len(set(names)) != len(names):
        raise DatasetError(f"two clips of {path} have the same name")
    return sorted(clips, key=lambda clip: natural_key(clip.name))


def _images_in(folder: Path) -> list[Path]:
    return [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]


def _subfolders(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )


def _sintel_root(path: Path) -> Path | None:
    for root in (path, path / "training"):
        has_frames = any((root / name).is_dir() for name in SINTEL_PASSES)
        if has_frames and any((root / name).is_dir() for name in _SINTEL_TRUTH):
            return root
    return None


def _sintel_clips(root: Path) -> list[DatasetClip]:
    frames_root = next(root / name for name in SINTEL_PASSES if (root / name).is_dir())
    clips = []
    for sequence in _subfolders(frames_root):
        truth = next(
            (
                root / kind / sequence.name
                for kind in _SINTEL_TRUTH
                if (root / kind / sequence.name).is_dir()
            ),
            None,
        )
        clips.append(
            DatasetClip(
                name=sequence.name,
                source=sequence,
                ground_truth=truth,
                layout="sintel",
                frame_count=len(_images_in(sequence)),
            )
        )
    return clips


def _davis_clips(images_root: Path) -> list[DatasetClip]:
    # DAVIS ships 480p and Full-Resolution side by side; 480p is what papers evaluate.
    root = images_root / "480p" if (images_root / "480p").is_dir() else images_root
    return [
        DatasetClip(sequence.name, sequence, None, "davis", len(_images_in(sequence)))
        for sequence in _subfolders(root)
        if _images_in(sequence)
    ]


def _is_tum_sequence(folder: Path) -> bool:
    return (folder / "rgb").is_dir() and (folder / TUM_TRAJECTORY).is_file()


def _tum_clip(sequence: Path) -> DatasetClip:
    rgb = sequence / "rgb"
    return DatasetClip(sequence.name, rgb, sequence, "tum", len(_images_in(rgb)))


def _is_synthetic_sample(folder: Path) -> bool:
    return (folder / GROUND_TRUTH_NAME).is_file() and (folder / _SYNTHETIC_VIDEO).is_file()


def _video_clip(video: Path) -> DatasetClip:
    try:
        count = probe_video(video).count
    except (ClipError, OSError) as error:
        # Listed anyway: the batch records why it fails instead of silently dropping it.
        logger.debug("cannot count the frames of %s: %s", video, error)
        count = 0
    return DatasetClip(video.stem, video, None, "video", count)


def _folder_clips(folder: Path) -> list[DatasetClip]:
    clips = []
    for child in _subfolders(folder):
        if _is_tum_sequence(child):
            clips.append(_tum_clip(child))
        elif _is_synthetic_sample(child):
            clip = _video_clip(child / _SYNTHETIC_VIDEO)
            clips.append(DatasetClip(child.name, clip.source, child, "synthetic", clip.frame_count))
        elif images := _images_in(child):
            clips.append(DatasetClip(child.name, child, None, "images", len(images)))
    videos = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in VIDEO_EXTENSIONS
    ]
    clips.extend(_video_clip(video) for video in videos)
    return clips


__all__ = [
    "SYNTHETIC_PREFIX",
    "DatasetClip",
    "DatasetError",
    "discover_clips",
    "synthetic_clips",
]


def parse_seeds(text: str) -> list[int]:
    """Seeds from "9000000-9000007" or "9000000,9000003"."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                first, last = (int(value) for value in part.split("-"))
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise Page4DError(f"cannot read seeds {text!r}: use e.g. 9000000-9000007") from None
    if not seeds:
        raise Page4DError("no seeds given")
    return seeds
