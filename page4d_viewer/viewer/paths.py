"""Which server-side files a user of the panel may open: only those under the data roots.

An app started with `--host 0.0.0.0` is reachable by anyone on the network; a path typed into
the panel must not let them read `/etc/passwd` or another user's home. Paths are resolved
(symlinks followed, `..` removed) before the check, so a link inside a data root that points
outside it is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from page4d_viewer.errors import Page4DError


class PathNotAllowedError(Page4DError):
    """A typed server-side path is missing, empty, or outside every data root."""


class DataRoots:
    """The folders whose files (and sub-folders) the panel may read by typed path.

    Args:
        roots: Folders to allow; each is resolved once, at construction. Folders that do not
            exist are kept (they may appear later) but cannot match anything until they do.
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        resolved = [Path(root).expanduser().resolve() for root in roots]
        # Keep the order (relative paths are tried against the roots in this order) but
        # drop duplicates, e.g. the working directory given twice.
        self._roots: tuple[Path, ...] = tuple(dict.fromkeys(resolved))
        if not self._roots:
            raise PathNotAllowedError("at least one data root is needed")

    @property
    def roots(self) -> tuple[Path, ...]:
        """The allowed folders, resolved, in the order given."""
        return self._roots

    def allows(self, path: str | os.PathLike[str]) -> bool:
        """Whether `path`, once resolved, lies inside one of the roots (existing or not)."""
        if "\0" in os.fspath(path):
            return False
        resolved = Path(path).expanduser().resolve()
        return any(resolved == root or resolved.is_relative_to(root) for root in self._roots)

    def resolve(self, text: str) -> Path:
        """Turn a path typed by a user into an existing file or folder inside a data root.

        A relative path is looked up under each root in turn; the first existing match wins.

        Args:
            text: The path as typed (absolute, relative, or starting with `~`).

        Returns:
            The resolved path, which exists and lies inside a data root.

        Raises:
            PathNotAllowedError: The text is empty, the path is outside every root, or it does
                not exist. Containment is checked before existence, so the message never tells
                whether a file outside the roots exists.
        """
        cleaned = text.strip().strip('"').strip("'")
        if not cleaned:
            raise PathNotAllowedError("no server path given: type a path under a data folder")
        if "\0" in cleaned:  # no file name holds one; the OS would raise ValueError on it
            raise PathNotAllowedError("the path holds a NUL character: type it again")
        typed = Path(cleaned).expanduser()
        if typed.is_absolute():
            candidates = [typed]
        else:
            # A relative path is looked up *under* each root: one whose ".." climbs out of
            # the root it is read against is outside, even where it lands in another root
            # ("../shared/x.mp4" read under assets/ would otherwise reach the working
            # directory and be reported as missing instead of outside).
            candidates = [root / typed for root in self._roots if _stays_under(root, typed)]
        inside = [candidate.resolve() for candidate in candidates if self.allows(candidate)]
        if not inside:
            raise PathNotAllowedError(
                f"{cleaned!r} is outside the allowed data folders; "
                "start the app with --data-root FOLDER to allow another folder"
            )
        for candidate in inside:
            if candidate.exists():
                return candidate
        raise PathNotAllowedError(f"{cleaned!r} does not exist under the allowed data folders")

    def describe(self) -> str:
        """The roots as one line, for the panel's help text."""
        return ", ".join(str(root) for root in self._roots)


def _stays_under(root: Path, relative: Path) -> bool:
    """Whether `relative`, read under `root`, stays there before any link is followed."""
    joined = Path(os.path.normpath(root / relative))
    return joined == root or joined.is_relative_to(root)


def default_data_roots(working_dir: Path, assets_dir: Path) -> Sequence[Path]:
    """The roots used when `--data-root` is not given: the working directory and assets/."""
    return (working_dir, assets_dir)
