"""Helpers the subcommands share: a progress bar on stderr, and early output-folder checks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from page4d_viewer.errors import Page4DError


@contextmanager
def progress_bar() -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal), fed by fractions."""
    from tqdm import tqdm

    bar = tqdm(
        total=100,
        file=sys.stderr,
        disable=None,
        bar_format="{desc:<28.28}{percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
    )

    def update(fraction: float, message: str) -> None:
        bar.set_description_str(message, refresh=False)
        bar.update(round(100 * fraction) - bar.n)

    try:
        yield update
    finally:
        bar.close()


def check_writable_folder(folder: Path) -> None:
    """Refuse an output folder that cannot be created or written before any work is done.

    Raises:
        Page4DError: the folder cannot be made, or is not writable.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Page4DError(f"cannot create the output folder {folder}: {error.strerror}") from None
    if not os.access(folder, os.W_OK):
        raise Page4DError(f"the output folder {folder} is not writable")
