"""Names of runs in the user's words: what was run, never where Gradio cached the upload.

Gradio stores each uploaded file as `<temp>/gradio/<hash>/<original name>`, so the common
folder of several uploaded images is Gradio's cache ("gradio"); the files' own names are what
the user knows the clip by.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

# A frame number at the end of a stem, with the separator before it: "walk_0012" -> "walk".
_FRAME_NUMBER = re.compile(r"[\s._-]*[0-9]+$")


def source_name(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> str:
    """The name a run on this source is titled with.

    A single path gives its file name, not where it is stored ("samples/x/clip.mp4"-style
    generic names keep their folder), so two copies of a clip in two batches share a name;
    a list of images gives their common stem and count ("walk_*.png (12 images)"), or the
    first and last names when they share no stem.

    Args:
        source: a path, or a list of image paths (e.g. uploads).
    """
    if isinstance(source, (str, os.PathLike)):
        return _path_name(Path(source))
    names = sorted(Path(item).name for item in source)
    if not names:
        return "clip"
    if len(names) == 1:
        return names[0]
    stem = os.path.commonprefix([Path(name).stem for name in names])
    stem = _FRAME_NUMBER.sub("", stem).rstrip(" ._-")
    suffixes = {Path(name).suffix.lower() for name in names}
    suffix = suffixes.pop() if len(suffixes) == 1 else ".*"
    if stem:
        return f"{stem}_*{suffix} ({len(names)} images)"
    return f"{names[0]} … {names[-1]} ({len(names)} images)"


# Generic names that say nothing alone: "orbit_movers/clip.mp4", "seq/rgb" keep their folder.
_GENERIC_STEMS = ("clip", "frames", "rgb", "images")


def _path_name(path: Path) -> str:
    if not str(path) or str(path) == ".":
        return "clip"
    if path.stem in _GENERIC_STEMS and path.parent.name:
        return f"{path.parent.name}/{path.name}"
    return path.name
