"""Batch throughput: one process against N torchrun processes on the same clips.

Renders the synthetic clips once (a folder of samples, so rendering is not timed), then runs
`page4d-viewer batch` over them as one process (torch's default threads) and under
`torchrun --nproc-per-node N` (torchrun gives each rank one thread), interleaved round by
round into fresh folders, and prints wall time, clips per minute and the speed-up. Process
start and model load are included: that is what a user waits for.

    python benchmarks/batch.py                      # 24 clips, 1 vs 2 processes, ~1.5 min
    python benchmarks/batch.py --clips 12 --rounds 3 --processes 1 2 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from page4d_viewer.sources.synthetic import make_clip, save_ground_truth


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip")
    parser.add_argument("--size", default="256x144", help="WxH of the rendered clips")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2, help="the median is reported")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    return parser.parse_args()


def run_once(data: Path, out: Path, processes: int, checkpoint: str | None) -> float:
    batch = ["-m", "page4d_viewer", "batch", str(data), "--out", str(out)]
    if checkpoint:
        batch += ["--checkpoint", checkpoint]
    if processes == 1:
        command = [sys.executable, *batch]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", *batch]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    args = parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as temporary:
        data = Path(temporary) / "data"
        for seed in range(args.clips):
            clip = make_clip(9_100_000 + seed, num_frames=args.frames, width=width, height=height)
            save_ground_truth(clip, data / f"clip-{seed:03d}")
        times: dict[int, list[float]] = {n: [] for n in args.processes}
        for round_index in range(args.rounds):
            for processes in args.processes:  # interleaved: a slow spell hits all alike
                out = Path(temporary) / f"out-{processes}-{round_index}"
                times[processes].append(run_once(data, out, processes, args.checkpoint))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {args.clips} clips of {args.frames} frames {args.size}, "
          f"{args.rounds} round(s)\n")  # fmt: skip
    print("| processes | wall s | clips / minute | speed-up |")
    print("|---|---|---|---|")
    base = statistics.median(times[args.processes[0]])
    for processes, values in times.items():
        wall = statistics.median(values)
        print(f"| {processes} | {wall:.1f} | {60 * args.clips / wall:.1f} | {base / wall:.2f} |")


if __name__ == "__main__":
    main()
