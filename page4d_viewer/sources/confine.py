"""Which files a clip loader may open: regular files only, and only inside the given roots.

The command line (a local user) may read anywhere; the app confines what a clip reads to its
data roots. The check is made on every file the loaders open, not only on the typed path: a
folder's members, symlink targets and the file a video decoder opens are resolved and checked
here, at the moment they are opened. FIFOs, sockets and devices are refused everywhere (a FIFO
would block the reader, and with it the model lock).

Roots come either as an argument or from `confined` (a context manager the app wraps a run
in), so the loaders need no extra parameter threaded through every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from page4d_viewer.errors import ClipError

_ROOTS: contextvars.ContextVar[tuple[Path, ...] | None] = contextvars.ContextVar(
    "page4d_source_roots", default=None
)


class SourceNotAllowedError(ClipError):
    """A file a clip would read lies outside the allowed roots, or is not a regular file."""


@contextlib.contextmanager
def confined(roots: Iterable[str | os.PathLike[str]] | None) -> Iterator[None]:
    """Within this block, every file a loader opens must resolve inside one of `roots`.

    A root may be a folder (its files and sub-folders are allowed) or a single file (only
    itself). None lifts no existing confinement and adds none.
    """
    if roots is None:
        yield
        return
    token = _ROOTS.set(tuple(Path(root).expanduser().resolve() for root in roots))
    try:
        yield
    finally:
        _ROOTS.reset(token)


def current_roots() -> tuple[Path, ...] | None:
    """The roots in force (from `confined`), or None when reading is not confined."""
    return _ROOTS.get()


def check_path(
    path: str | os.PathLike[str],
    roots: Iterable[Path] | None = None,
    *,
    folder: bool = False,
) -> Path:
    """Resolve a path the loader is about to read and check it.

    Args:
        path: The file (or folder, with ``folder=True``) as the loader names it.
        roots: Allowed roots; default: those of the enclosing `confined` block, if any.
        folder: Expect a folder instead of a regular file.

    Returns:
        The resolved path (symlinks followed): the loader opens exactly this.

    Raises:
        SourceNotAllowedError: outside the roots, or not a regular file (FIFO, device...).
        ClipError: it does not exist.
    """
    allowed = tuple(roots) if roots is not None else current_roots()
    name = Path(path).name or str(path)
    if "\0" in os.fspath(path):  # the OS would raise ValueError, not an error we report
        raise SourceNotAllowedError("a path holding a NUL character is refused")
    resolved = Path(path).expanduser().resolve()
    if allowed is not None and not any(
        resolved == root or resolved.is_relative_to(root) for root in allowed
    ):
        # Containment before existence: the message never tells whether an outside file exists.
        raise SourceNotAllowedError(
            f"{name} resolves outside the allowed data folders (a link out of them?); refused"
        )
    try:
        mode = os.stat(resolved).st_mode
    except OSError:
        raise ClipError(f"source not found: {path}") from None
    if folder and stat.S_ISDIR(mode):
        return resolved
    if not stat.S_ISREG(mode):
        raise SourceNotAllowedError(
            f"{name} is not a regular file (a FIFO, socket or device?); refused"
        )
    return resolved


def open_file(path: str | os.PathLike[str], roots: Iterable[Path] | None = None) -> BinaryIO:
    """Open a source file for reading after `check_path`, without blocking on a FIFO.

    The resolved path is opened with O_NOFOLLOW and O_NONBLOCK and checked again on the open
    descriptor, so a file swapped for a link or a FIFO between the check and the open is
    refused too.
    """
    resolved = check_path(path, roots)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(resolved, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise ClipError(f"cannot open {Path(path).name}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise SourceNotAllowedError(f"{Path(path).name} is not a regular file; refused")
    if hasattr(os, "set_blocking"):
        os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def check_tree(path: str | os.PathLike[str], roots: Iterable[Path] | None = None) -> None:
    """Check a file, or every file and folder under a folder, as `check_path` does.

    For readers that open many files of a folder by name (ground-truth layouts): a link out of
    the roots, or a FIFO, anywhere in the tree refuses the whole folder before any is read.

    Raises:
        SourceNotAllowedError: something in the tree lies outside the roots or is not a
            regular file or folder.
        ClipError: `path` does not exist.
    """
    allowed = tuple(roots) if roots is not None else current_roots()
    top = check_path(path, allowed, folder=True)
    if not top.is_dir():
        return
    for folder, folders, files in os.walk(top, followlinks=False):
        for name in folders:
            check_path(Path(folder) / name, allowed, folder=True)
        for name in files:
            check_path(Path(folder) / name, allowed)
