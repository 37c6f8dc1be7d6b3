"""`page4d-viewer report DIR`: a batch index as Markdown with three PNG plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from page4d_viewer.cli.common import check_writable_folder
from page4d_viewer.evaluation.batch_report import write_report
from page4d_viewer.evaluation.index import INDEX_NAME, open_index


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `report` options to ``parser``."""
    parser.add_argument("folder", type=Path, help="batch folder (holding index.sqlite)")
    parser.add_argument("--out", type=Path, help="where to write (default: FOLDER/report)")
    parser.add_argument("--filter", default="", help="only clips/checkpoints containing this")


def run(args: argparse.Namespace) -> int:
    """Write report.md, ate_scatter.png, geometry_ate_scatter.png and ate_difference.png;
    prints what it wrote."""
    index = args.folder / INDEX_NAME if args.folder.is_dir() else args.folder
    open_index(index).close()  # a missing or foreign file: one error line, before any output
    out = args.out or index.parent / "report"
    check_writable_folder(out)
    files = write_report(index, out, filter_text=args.filter)
    sys.stdout.write(
        f"wrote {files.markdown} ({files.rows} clips), {files.scatter.name}, "
        f"{files.geometry_scatter.name}, {files.histogram.name}\n"
    )
    return 0
