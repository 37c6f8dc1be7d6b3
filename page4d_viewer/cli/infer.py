"""`page4d-viewer infer`: a clip -> a result file (.npz), with a progress bar on stderr."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from page4d_viewer.cli.common import (
    add_sampling_options,
    check_input,
    check_output_file,
    progress_bar,
    sampling_from_args,
)
from page4d_viewer.errors import Page4DError
from page4d_viewer.inference import predictor
from page4d_viewer.inference.tracking import check_track_count
from page4d_viewer.settings import PRECISION_CHOICES
from page4d_viewer.sources.clip import load_clip

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video, GIF, image, folder or zip of images")
    parser.add_argument("--out", required=True, type=Path, help="result file to write (.npz)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="PAGE-4D, VGGT or page4d_viewer checkpoint (default: the shipped small model)",
    )
    add_sampling_options(parser)
    parser.add_argument(
        "--mode", choices=("crop", "pad"), default="crop", help="fit frames by crop or pad"
    )
    parser.add_argument(
        "--mask-strength",
        type=float,
        help="alpha of the masked variant (default: the checkpoint's, 64 for PAGE-4D)",
    )
    parser.add_argument(
        "--gt",
        default="auto",
        help="ground truth to store in the result (default auto: a synthetic sample's or TUM "
        "sequence's ground truth beside the source)",
    )
    parser.add_argument("--no-gt", action="store_true", help="store no ground truth")
    parser.add_argument(
        "--attention",
        action="store_true",
        help="also store where each frame's camera token attends (first, middle and last "
        "masked layer, both variants) and a PCA of the patch features (see docs)",
    )
    parser.add_argument(
        "--tracks",
        type=int,
        default=0,
        metavar="N",
        help="also track N query pixels through the clip (most where the mask's dynamic "
        "probability is highest, the rest spread out); needs a checkpoint with a track head "
        "(default 0: no tracks)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (default: CUDA, then MPS, then CPU), cpu, cuda:N, mps",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="auto (default: bf16/fp16 on GPUs, fp32 on CPU), or force one",
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise Page4DError(f"--out must end in .npz, got {out.name!r}")
    # Fail on a bad argument, source or option before paying for the model load.
    check_output_file(out, "--out")
    try:
        check_track_count(args.tracks)
    except Page4DError as error:
        raise Page4DError(f"--tracks: {error}") from None
    if not args.no_gt and args.gt != "auto":
        check_input(args.gt, "--gt")
    if args.checkpoint is not None and not Path(args.checkpoint).is_file():
        raise Page4DError(f"--checkpoint {args.checkpoint} is not a file")
    started = time.perf_counter()
    clip = load_clip(args.source, sampling_from_args(args))
    read_seconds = time.perf_counter() - started
    for note in clip.notes:
        logger.warning("%s", note)
    model, info = predictor.load_model(args.checkpoint)
    with progress_bar() as progress:
        recon = predictor.predict(
            clip,
            model,
            mask_strength=args.mask_strength,
            mode=args.mode,
            device=args.device,
            precision=args.precision,
            progress=progress,
            checkpoint_info=info,
            ground_truth=None if args.no_gt else args.gt,
            attention=args.attention,
            tracks=args.tracks,
        )
    # predict() got a loaded clip, so the reading time is ours to record.
    recon.metadata.timings["read"] = read_seconds
    recon.save(out)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in recon.metadata.timings.items() if "." not in k)
    sys.stdout.write(f"wrote {out}: {recon.describe()} ({timings})\n")
    return 0
