"""Headless subcommands: ``infer`` (clip -> result file), ``export`` and ``evaluate``.

``cli.py`` imports this module only for these subcommands, calls
``configure_parser(parser, name)`` and then ``run(args)``. Results go to stdout, progress and
logs to stderr; bad input raises a Page4DError that ``cli.py`` prints as one line.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from page4d_viewer.errors import Page4DError

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of subcommand ``name`` ("infer", "export" or "evaluate") to ``parser``."""
    configure, runner = _SUBCOMMANDS[name]
    configure(parser)
    parser.set_defaults(_run=runner)


def run(args: argparse.Namespace) -> int:
    """Run the subcommand chosen on the command line; returns the exit code (0 = success)."""
    return int(args._run(args))


# --------------------------------------------------------------------------------- infer


def _configure_infer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video, GIF, image, folder or zip of images")
    parser.add_argument("--out", required=True, type=Path, help="result file to write (.npz)")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="PAGE-4D, VGGT or page4d_viewer checkpoint (default: the shipped small model)",
    )
    sampling = parser.add_argument_group("frame sampling")
    sampling.add_argument("--max-frames", type=int, help="at most N frames, spread evenly")
    sampling.add_argument("--stride", type=int, default=1, help="keep every K-th frame")
    sampling.add_argument("--fps", type=float, help="resample a video to F frames per second")
    sampling.add_argument("--start", type=int, help="first frame index (inclusive)")
    sampling.add_argument("--end", type=int, help="frame index to stop before (exclusive)")
    sampling.add_argument("--start-time", type=float, help="first time in seconds (videos)")
    sampling.add_argument("--end-time", type=float, help="time to stop before, seconds (videos)")
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
        "--device",
        default="auto",
        help="auto (default: CUDA, then MPS, then CPU), cpu, cuda:N, mps",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default: bf16/fp16 on GPUs, fp32 on CPU), or force one",
    )


def _run_infer(args: argparse.Namespace) -> int:
    from page4d_viewer import predictor
    from page4d_viewer.clip import load_clip

    out = Path(args.out)
    if out.suffix != ".npz":
        raise Page4DError(f"--out must end in .npz, got {out.name!r}")
    _check_writable_folder(out.parent)
    # Fail on a bad source or option before paying for the model load.
    started = time.perf_counter()
    clip = load_clip(
        args.source,
        stride=args.stride,
        max_frames=args.max_frames,
        fps=args.fps,
        start=args.start,
        end=args.end,
        start_time=args.start_time,
        end_time=args.end_time,
    )
    read_seconds = time.perf_counter() - started
    for note in clip.notes:
        logger.warning("%s", note)
    model, info = predictor.load_model(args.checkpoint)
    with _progress_bar() as progress:
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
        )
    # predict() got a loaded clip, so the reading time is ours to record.
    recon.metadata.timings["read"] = read_seconds
    recon.save(out)
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in recon.metadata.timings.items() if "." not in k)
    sys.stdout.write(f"wrote {out}: {recon.describe()} ({timings})\n")
    return 0


@contextmanager
def _progress_bar() -> Iterator[Callable[[float, str], None]]:
    """A tqdm bar on stderr (hidden when stderr is not a terminal), fed by fractions."""
    from tqdm import tqdm

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


# -------------------------------------------------------------------------------- export


def _configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="result file written by `infer` (.npz)")
    parser.add_argument("--glb", type=Path, help="write a GLB scene (points + camera frusta)")
    parser.add_argument("--ply", type=Path, help="write one PLY point cloud per frame here")
    parser.add_argument(
        "--tum", type=Path, help="write camera trajectories (TUM text), one file per variant"
    )
    parser.add_argument("--tum-variant", help="only this variant (masked, unmasked, ...)")
    parser.add_argument("--mp4", type=Path, help="write an mp4 with the mask as a heat map")
    parser.add_argument(
        "--frames", help="frames to export: 'all' (default), '0,3,5' or '2-6' (0-based)"
    )
    parser.add_argument(
        "--conf-percentile",
        type=float,
        default=50.0,
        help="drop points below this confidence percentile (default 50)",
    )
    parser.add_argument("--fps", type=float, help="mp4 frame rate (default: from the clip)")
    parser.add_argument("--colormap", default="magma", help="mp4 heat-map colormap")
    parser.add_argument("--opacity", type=float, default=0.5, help="mp4 heat-map opacity 0..1")


def _run_export(args: argparse.Namespace) -> int:
    from page4d_viewer import export
    from page4d_viewer.reconstruction import Reconstruction

    if not any((args.glb, args.ply, args.tum, args.mp4)):
        raise Page4DError("nothing to export: give at least one of --glb, --ply, --tum, --mp4")
    recon = Reconstruction.load(args.result)
    frames = export.parse_frame_selection(args.frames, recon.num_frames)
    written: list[Path] = []
    if args.glb:
        written.append(
            export.export_glb(recon, args.glb, frames=frames, conf_percentile=args.conf_percentile)
        )
    if args.ply:
        written += export.export_ply(
            recon, args.ply, frames=frames, conf_percentile=args.conf_percentile
        )
    if args.tum:
        written += export.export_tum(recon, args.tum, variant=args.tum_variant)
    if args.mp4:
        written.append(
            export.export_mp4(
                recon,
                args.mp4,
                frames=frames,
                fps=args.fps,
                colormap=args.colormap,
                opacity=args.opacity,
            )
        )
    sys.stdout.write("".join(f"wrote {path}\n" for path in written))
    return 0


# ------------------------------------------------------------------------------ evaluate


def _configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="result file written by `infer` (.npz)")
    parser.add_argument(
        "--gt",
        type=Path,
        help="ground truth: TUM/Bonn groundtruth.txt or folder, Sintel folder, synthetic "
        "scene folder (default: the ground truth stored in the result, if any)",
    )
    parser.add_argument("--max-depth", type=float, help="ignore GT depth beyond this (e.g. 70)")
    parser.add_argument("--json", type=Path, help="also write the metrics as JSON here")


def _run_evaluate(args: argparse.Namespace) -> int:
    from page4d_viewer.metrics import evaluate_reconstruction
    from page4d_viewer.reconstruction import GROUND_TRUTH, Reconstruction

    recon = Reconstruction.load(args.result)
    truth = None
    if args.gt is not None:
        from page4d_viewer.groundtruth import load_ground_truth

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


_SUBCOMMANDS: dict[
    str,
    tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]],
] = {
    "infer": (_configure_infer, _run_infer),
    "export": (_configure_export, _run_export),
    "evaluate": (_configure_evaluate, _run_evaluate),
}


def _check_writable_folder(folder: Path) -> None:
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
