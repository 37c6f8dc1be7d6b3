"""`page4d-viewer view RESULT.npz`: replay a saved result with no model, no GPU and no torch."""

from __future__ import annotations

import argparse

from page4d_viewer.cli.app import add_server_options, config_from_args, serve


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `view`: the result file, then the server options."""
    parser.add_argument("result", help="a saved result file (.npz) to open")
    add_server_options(parser)


def run(args: argparse.Namespace) -> int:
    """Open the result in the viewer and serve until Ctrl-C; returns the exit code."""
    return serve(config_from_args(args), backend=None)
