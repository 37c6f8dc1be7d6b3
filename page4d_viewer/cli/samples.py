"""`page4d-viewer make-samples`: render the bundled sample clips (and their ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

from page4d_viewer.sources.synthetic import SAMPLES, make_samples


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `make-samples` options."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("assets/samples"),
        help="parent folder of the sample folders (default: assets/samples)",
    )
    parser.add_argument(
        "--sample",
        action="append",
        choices=sorted(SAMPLES),
        help="render only this sample (repeatable; default: all)",
    )


def run(args: argparse.Namespace) -> int:
    """Render the samples; returns the exit code."""
    make_samples(args.out, args.sample)
    return 0
