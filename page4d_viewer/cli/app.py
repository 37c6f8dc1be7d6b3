"""`page4d-viewer app`: the viewer with a model, running clips from the panel.

This is the composition root: only here is the model side (`inference.jobs.PredictorBackend`)
wired into the viewer; `view` (cli/view.py) shares the rest (cli/serving.py) with no model at
all, and never imports this module.
"""

from __future__ import annotations

import argparse

from page4d_viewer.cli.serving import add_server_options, config_from_args, serve
from page4d_viewer.inference.jobs import PredictorBackend
from page4d_viewer.settings import DEFAULT_SAMPLE, PRECISION_CHOICES


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `app`: what to offer and run, then the server options."""
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="a PAGE-4D, VGGT or page4d_viewer checkpoint (repeat to offer several); "
        "the shipped default model is always offered",
    )
    parser.add_argument(
        "--clip",
        metavar="SOURCE",
        help=f"a clip to run as soon as it is up (default: the bundled {DEFAULT_SAMPLE} "
        "sample, unless --result is given)",
    )
    parser.add_argument(
        "--no-clip", action="store_true", help="start with an empty scene, running nothing"
    )
    parser.add_argument("--result", metavar="NPZ", help="a saved result to show at start")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="model precision (auto: bf16 on recent GPUs, fp32 on the CPU)",
    )
    add_server_options(parser)


def backend_from_args(args: argparse.Namespace) -> PredictorBackend | None:
    """The model side of `app`: the shipped default plus any --checkpoint; None for `view`."""
    if args.command == "view":
        return None
    return PredictorBackend(args.checkpoint)


def run(args: argparse.Namespace) -> int:
    """Start the app and serve until Ctrl-C; returns the exit code."""
    return serve(config_from_args(args), backend_from_args(args))
