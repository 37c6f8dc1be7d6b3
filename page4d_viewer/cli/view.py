"""`page4d-viewer view RESULT.npz`: replay a saved result with no model, no GPU and no torch.

`view --index DIR` lists a batch's runs in the Dataset tab instead (or as well).
"""

from __future__ import annotations

import argparse

from page4d_viewer.cli.serving import add_server_options, config_from_args, serve
from page4d_viewer.errors import Page4DError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `view`: the result file, then the server options."""
    parser.add_argument(
        "result", nargs="?", help="a saved result file (.npz) to open (optional with --index)"
    )
    add_server_options(parser)


def run(args: argparse.Namespace) -> int:
    """Open the result in the viewer and serve until Ctrl-C; returns the exit code."""
    if not args.result and not args.index:
        raise Page4DError("give a result file to view, or --index DIR to list a batch")
    return serve(config_from_args(args), backend=None)
