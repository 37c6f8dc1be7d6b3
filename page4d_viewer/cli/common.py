"""Helpers the subcommands share: a progress bar on stderr, and early output-folder checks."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from page4d_viewer.errors import Page4DError
from page4d_viewer.sources.sampling import FrameSampling

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


@contextmanager
def progress_bar() -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal), fed by fractions."""
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


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that is an existing folder, or whose folder cannot be written.

    Raises:
        Page4DError: naming the option, before any work is done.
    """
    if path.is_dir():
        raise Page4DError(f"{option} {path} is an existing folder; give a file name")
    check_writable_folder(path.parent if str(path.parent) else Path("."))


def check_output_folder(path: Path, option: str) -> None:
    """Refuse an output folder that is an existing file, or cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise Page4DError(f"{option} {path} is an existing file; give a folder")
    check_writable_folder(path)


def check_input(path: Path | str, option: str) -> None:
    """Refuse an input path that does not exist, before any work is done."""
    if not Path(path).expanduser().exists():
        raise Page4DError(f"{option} {path} does not exist")


def check_number(value: float | None, option: str, low: float, high: float) -> None:
    """Refuse a number outside (low, high] (or a non-finite one); None passes."""
    if value is None:
        return
    if not math.isfinite(value) or not low < value <= high:
        raise Page4DError(f"{option} must be a finite number in ({low:g}, {high:g}], got {value:g}")


def add_result_argument(parser: argparse.ArgumentParser) -> None:
    """The positional RESULT: a result file that `infer` wrote."""
    parser.add_argument("result", type=Path, help="result file written by `infer` (.npz)")


def add_sampling_options(parser: argparse.ArgumentParser, *, times: bool = True) -> None:
    """The frame-sampling options (`FrameSampling`'s fields); `times` adds the ones in
    seconds, which only videos and GIFs have."""
    sampling = parser.add_argument_group("frame sampling")
    sampling.add_argument("--max-frames", type=int, help="at most N frames, spread evenly")
    sampling.add_argument("--stride", type=int, default=1, help="keep every K-th frame")
    sampling.add_argument("--fps", type=float, help="resample a video to F frames per second")
    sampling.add_argument("--start", type=int, help="first frame index (inclusive)")
    sampling.add_argument("--end", type=int, help="frame index to stop before (exclusive)")
    if times:
        sampling.add_argument("--start-time", type=float, help="first time in seconds (videos)")
        sampling.add_argument(
            "--end-time", type=float, help="time to stop before, seconds (videos)"
        )


def sampling_from_args(args: argparse.Namespace) -> FrameSampling:
    """The FrameSampling of parsed `add_sampling_options` (validated: one ClipError line)."""
    return dataclass_from_args(FrameSampling, args)


def dataclass_from_args(cls: type[D], args: argparse.Namespace, **parsed: Any) -> D:
    """A ``cls`` (a dataclass) of parsed options: the fields in ``parsed`` as given, every other
    field the option of its name (a field without such an option keeps its default)."""
    same_named = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(cls)
        if field.name not in parsed and hasattr(args, field.name)
    }
    return cls(**same_named, **parsed)
