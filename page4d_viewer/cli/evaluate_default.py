"""`page4d-viewer evaluate-default`: the default model's table in docs/default-model.md.

Renders held-out synthetic clips (seeds from 9,000,000 on, which training never renders) and
scores the checkpoint, the same network untrained, and a trivial predictor on them; or, with
`--real-clip`, describes what the checkpoint does on a real video.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from page4d_viewer.errors import Page4DError
from page4d_viewer.model import Page4D, build_model, load_checkpoint
from page4d_viewer.orchestration.default_model import (
    describe_real_clip,
    evaluate,
    format_markdown,
    model_predictor,
    overrides_of,
    summarise,
    trivial_predictor,
    write_synthetic_figures,
)
from page4d_viewer.orchestration.held_out import HeldOutClips, held_out_track_errors
from page4d_viewer.settings import default_checkpoint_path
from page4d_viewer.sources.datasets import parse_seeds
from page4d_viewer.training.train import FIRST_EVAL_SEED, default_image_hw


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the `evaluate-default` options to ``parser``."""
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--seeds", default=f"{FIRST_EVAL_SEED}-{FIRST_EVAL_SEED + 11}")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--stride", type=int, default=2, help="rendered frames per clip frame")
    parser.add_argument("--json", type=Path, default=None, help="also write the scores as JSON")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument(
        "--real-clip",
        type=Path,
        default=None,
        help="instead: run the checkpoint on this video and describe it (no ground truth)",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="write a PNG of three frames (the real clip, or the first seed and its truth)",
    )
    parser.add_argument("--max-frames", type=int, default=16, help="with --real-clip")


def run(args: argparse.Namespace) -> int:
    """Score the checkpoint on held-out synthetic clips (or describe a real clip)."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint_path()
    trained, info = load_checkpoint(checkpoint)
    trained.eval()
    if args.real_clip is not None:
        summary = describe_real_clip(trained, info, args.real_clip, args.max_frames, args.figure)
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    config = trained.config
    torch.manual_seed(0)
    untrained = build_model(config.name, **overrides_of(config)).eval()
    image_hw = default_image_hw(config.name, overrides_of(config))
    predictors = {
        "trained": model_predictor(trained),
        "untrained": model_predictor(untrained),
        "trivial": trivial_predictor,
    }
    if args.frames < 2 or args.stride < 1:
        raise Page4DError("need --frames >= 2 and --stride >= 1")
    scores = evaluate(predictors, parse_seeds(args.seeds), args.frames, image_hw, args.stride)
    summary = summarise(scores)
    sys.stdout.write(format_markdown(scores, summary) + "\n")
    track_scores = _track_scores(trained, args) if trained.track_available else None
    if args.figure is not None:
        write_synthetic_figures(trained, parse_seeds(args.seeds)[0], args, image_hw)
    if args.json is not None:
        payload = {
            "checkpoint": str(checkpoint),
            "image_hw": list(image_hw),
            "frames": args.frames,
            "stride": args.stride,
            "clips": [score.__dict__ for score in scores],
            "summary": summary,
            "tracks": track_scores,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=float))
    return 0


def _track_scores(model: Page4D, args: argparse.Namespace) -> dict[str, float]:
    """Score the checkpoint's tracker on the same held-out seeds and print one table."""
    clips = HeldOutClips(parse_seeds(args.seeds), args.frames, args.stride)
    scores = held_out_track_errors(model, clips)
    rows = [
        ("median 2-D error (px)", scores["median_epe"], scores["still_median_epe"]),
        ("mean 2-D error (px)", scores["epe"], scores["still_epe"]),
        ("within 2 px", scores["within_2px"], scores["still_within_2px"]),
        ("visibility accuracy", scores["visibility_accuracy"], scores["visible_share"]),
    ]
    lines = ["", "| tracks (256 queries per clip) | trained | no motion, all visible |"]
    lines += ["|---|---|---|"] + [f"| {name} | {a:.3f} | {b:.3f} |" for name, a, b in rows]
    sys.stdout.write("\n".join(lines) + "\n")
    return scores
