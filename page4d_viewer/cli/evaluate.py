"""`page4d-viewer evaluate`: a result's masked and unmasked cameras (and depth, mask) against
ground truth, as a table on stdout and optionally JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from page4d_viewer.cli.common import (
    add_result_argument,
    check_input,
    check_number,
    check_output_file,
)
from page4d_viewer.errors import Page4DError
from page4d_viewer.evaluation.report import evaluate_reconstruction
from page4d_viewer.result.reconstruction import GROUND_TRUTH, Reconstruction
from page4d_viewer.sources.groundtruth import load_ground_truth


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_result_argument(parser)
    parser.add_argument(
        "--gt",
        type=Path,
        help="ground truth: TUM/Bonn groundtruth.txt or folder, Sintel folder, synthetic "
        "scene folder (default: the ground truth stored in the result, if any)",
    )
    parser.add_argument("--max-depth", type=float, help="ignore GT depth beyond this (e.g. 70)")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")


def run(args: argparse.Namespace) -> int:
    if args.gt is not None:
        check_input(args.gt, "--gt")
    if args.json is not None:
        check_output_file(args.json, "--json")
    check_number(args.max_depth, "--max-depth", 0.0, float("inf"))
    recon = Reconstruction.load(args.result)
    if recon.bad_frames:
        raise Page4DError(
            f"{args.result} holds NaN or infinite geometry in frame(s) "
            f"{', '.join(map(str, recon.bad_frames[:5]))}; it cannot be evaluated"
        )
    truth = None
    if args.gt is not None:
        metadata = recon.metadata
        truth = load_ground_truth(
            args.gt,
            frame_indices=metadata.frame_indices or None,
            timestamps=metadata.timestamps or None,
        )
    elif GROUND_TRUTH not in recon.cameras and recon.gt_depth is None:
        raise Page4DError(f"{args.result} holds no ground truth; pass --gt PATH")
    report = evaluate_reconstruction(recon, truth, max_depth=args.max_depth)
    sys.stdout.write(report.format_table() + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0
