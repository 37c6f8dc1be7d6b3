"""What the app lets in: upload sizes, and which files a run may read (its confinement roots).

The controller calls these before any work; `page4d_viewer.sources.confine` enforces the
roots again on every file the clip loader opens, so the early check and the loader agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError
from page4d_viewer.sources.confine import check_path
from page4d_viewer.sources.images import folder_items
from page4d_viewer.viewer.paths import DataRoots

if TYPE_CHECKING:  # the clip loader imports PyAV, which the panel needs only when it runs
    from page4d_viewer.sources.clip import SourceLike


def check_upload_sizes(paths: Sequence[str | os.PathLike[str]]) -> None:
    """Refuse uploads larger than settings.MAX_UPLOAD_BYTES together (one line).

    Raises:
        Page4DError: over the limit, or an upload that is not a regular file.
    """
    total = 0
    for path in paths:
        if Path(path).exists():  # a missing one is the loader's to report
            total += check_path(path).stat().st_size
    if total > settings.MAX_UPLOAD_BYTES.value():
        raise Page4DError(settings.MAX_UPLOAD_BYTES.message("the upload", total))


def run_roots(source: SourceLike, roots: DataRoots) -> list[Path]:
    """The roots a run of `source` is confined to.

    A source inside the data roots (a typed path, a bundled sample) may read within them; an
    upload (Gradio's cache) only itself: a single file, whose members (a zip's) are read in
    memory and never from disk.
    """
    if not isinstance(source, (str, os.PathLike)):  # several uploaded images
        return [Path(path).resolve() for path in source]
    if roots.allows(source):
        return list(roots.roots)
    return [Path(source).resolve()]


def check_typed_source(path: Path, roots: DataRoots) -> None:
    """Check, before the run is queued, every file the loader will open for a typed path.

    A folder's image members are resolved one by one (a symlink to an image elsewhere is
    refused); a file is checked itself. The loader repeats the check as it opens each file.

    Raises:
        Page4DError: a member outside the roots, or not a regular file (FIFO, device).
    """
    check_path(path, roots.roots, folder=True)
    if path.is_dir():
        for item in folder_items(path)[0]:
            check_path(path / item.name, roots.roots)
