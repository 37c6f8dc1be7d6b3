"""What the match head costs: a pass with and without it, and matching the keyframe pairs.

The small preset has a match head (model/match_head.py). This script builds the preset with
and without it (the same weights otherwise), and times, interleaved in every round, a single
pass of each and `MatchHead.match` over the clip's keyframe pairs (what the geometric poses
add on top of the pass). Median CPU time of this process over the rounds, and the ratio to
the pass without match head.

    python benchmarks/match_head.py --frames 16 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from page4d_viewer.model import PRESETS, build_model
from page4d_viewer.model.pose_solver import keyframe_pairs

MASK_STRENGTH = 64.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=112, help="pixels, multiple of 14")
    parser.add_argument("--width", type=int, default=196, help="pixels, multiple of 14")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args()


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with_head = build_model(args.preset, has_match_head=True).eval()
    without = build_model(args.preset, has_match_head=False).eval()
    match_head = with_head.match_head
    if match_head is None:
        raise RuntimeError(
            f"preset {args.preset!r} built with has_match_head=True has no match head"
        )
    without.load_state_dict(
        {k: v for k, v in with_head.state_dict().items() if not k.startswith("match_head.")}
    )
    images = torch.rand(args.frames, 3, args.height, args.width)
    pairs = keyframe_pairs(args.frames)
    with torch.no_grad():
        features = with_head(images, MASK_STRENGTH).match_features.clip(0)
    runs = {
        "single pass, no match head": lambda: without(images, MASK_STRENGTH),
        "single pass, with match head": lambda: with_head(images, MASK_STRENGTH),
        f"match the {len(pairs)} keyframe pairs": lambda: match_head.match(
            features, pairs, (args.height, args.width)
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(cpu_seconds(run))
    base = statistics.median(times["single pass, no match head"])
    print(
        f"{args.preset}, {args.frames} frames, {args.height}x{args.width}, "
        f"{args.threads} thread(s), {args.repeats} rounds, CPU time of this process"
    )
    print("| run | median CPU s | / pass without match head |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
