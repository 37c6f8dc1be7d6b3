"""`page4d-viewer batch`: a checkpoint over every clip of a dataset, one result and one index
row per clip; resumable, and sharded over ranks under `torchrun ... -m page4d_viewer batch`.

Exit status: 0 when at least one clip of the dataset has a result (or there was nothing left
to do), 1 when every clip that ran failed, 2 for bad arguments. Each failed clip prints one
`failed: CLIP: ERROR` line on stderr and gets a "failed" row; the batch goes on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from page4d_viewer.cli.common import (
    add_sampling_options,
    check_writable_folder,
    dataclass_from_args,
    sampling_from_args,
)
from page4d_viewer.errors import Page4DError
from page4d_viewer.orchestration.batch import BatchOptions, Launch, list_dataset, run_batch
from page4d_viewer.settings import PRECISION_CHOICES


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `batch` options to ``parser``."""
    parser.add_argument(
        "source",
        help="dataset folder (Sintel, TUM/Bonn, DAVIS, folders of images or synthetic samples, "
        "videos), one video, or synthetic:FIRST-LAST (seeds rendered into OUT/synthetic)",
    )
    parser.add_argument("--out", required=True, type=Path, help="batch folder (index, results)")
    parser.add_argument("--checkpoint", type=Path, help="weights (default: the shipped model)")
    parser.add_argument(
        "--mask-strength", type=float, help="alpha of the masked variant (default: checkpoint's)"
    )
    add_sampling_options(parser, times=False)  # every clip, images as well as videos
    parser.add_argument("--mode", choices=("crop", "pad"), default="crop")
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda:N (torchrun+CUDA: cuda:LOCAL_RANK)"
    )
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    parser.add_argument("--max-depth", type=float, help="ignore GT depth beyond this (e.g. 70)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads per process (0: torch's default; torchrun sets 1)",
    )
    synthetic = parser.add_argument_group("synthetic:FIRST-LAST clips")
    synthetic.add_argument("--synthetic-frames", type=int, default=8, help="frames per clip")
    synthetic.add_argument(
        "--synthetic-size", default="256x144", help="WxH (multiples of 16 keep videos stable)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the batch; prints a one-line summary on stdout (rank 0)."""
    if not args.verbose:
        # Per-clip info lines would tear the progress bar; failures still print one line.
        logging.getLogger("page4d_viewer").setLevel(logging.WARNING)
    if args.threads < 0:
        raise Page4DError("--threads must be >= 0")
    check_writable_folder(args.out)
    options = dataclass_from_args(
        BatchOptions,
        args,
        sampling=sampling_from_args(args),
        synthetic_size=_size(args.synthetic_size),
    )
    if args.mask_strength is not None and not args.mask_strength >= 0:
        raise Page4DError("--mask-strength must be a number >= 0")
    launch = Launch.from_environment()
    # Every rank lists the dataset the same way, so no rank has to send the list to others.
    clips = list_dataset(args.source, options)
    summary = run_batch(clips, options, launch)
    if launch.rank == 0:
        sys.stdout.write(
            f"batch: {summary.succeeded} done, {summary.failed} failed, "
            f"{summary.already_done} already in the index, of {summary.total} clips; "
            f"index {summary.index_path}\n"
        )
    return summary.exit_code


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise Page4DError(f"--synthetic-size must be WxH, e.g. 256x144, got {text!r}") from None
    return width, height
