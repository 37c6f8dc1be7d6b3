"""`page4d-viewer` command line: one subcommand per job, bad input ends in one line and exit 2.

Each subcommand is one module of this package exposing `configure_parser(parser)` and
`run(args) -> int`; argparse lives only here. Modules are imported only when their subcommand
is chosen, so `page4d-viewer evaluate` never imports Gradio or the network.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from page4d_viewer.errors import Page4DError

DESCRIPTION = (
    "`page4d-viewer` command line: one subcommand per job, bad input ends in one line and exit 2."
)

# subcommand -> (module under page4d_viewer.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "app": ("app", "start the viewer (Gradio panel + Viser scene) with a model"),
    "view": ("view", "open a saved result in the viewer, no model needed"),
    "infer": ("infer", "run the model on a clip and save a result file"),
    "export": ("export", "export a result file to GLB, PLY, TUM, mp4, track CSV or a web folder"),
    "evaluate": ("evaluate", "compare a result's cameras, depth and mask with ground truth"),
    "evaluate-default": ("evaluate_default", "score a checkpoint on held-out synthetic clips"),
    "train": ("train", "train a small PAGE-4D on synthetic scenes"),
    "make-samples": ("samples", "render the bundled sample clips into assets/"),
    "batch": ("batch", "run a checkpoint over a dataset: results, metrics and an index"),
    "report": ("report", "summarise a batch index as Markdown with plots"),
}


def _chosen_subcommand(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code (0 ok, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen_subcommand(argv)
    parser = argparse.ArgumentParser(prog="page4d-viewer", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(f"page4d_viewer.cli.{module_name}")
            modules[name].configure_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(modules[args.command].run(args) or 0)
    except Page4DError as error:
        sys.stderr.write(f"error: {_one_line(error)}\n")
        return 2
    except OSError as error:
        # A path the user gave that cannot be read or written (no folder, no permission, full
        # disk): their input, not our bug, so one line rather than a traceback.
        where = f": {error.filename}" if error.filename else ""
        sys.stderr.write(f"error: {error.strerror or _one_line(error)}{where}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
