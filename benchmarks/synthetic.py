"""Time synthetic clip rendering and ground-truth saving; prints a table (never asserts).

Usage: python benchmarks/synthetic.py [--frames 24] [--width 518] [--height 294] [--seeds 2]
       [--supersample 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from page4d_viewer.sources import synthetic


def _timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--height", type=int, default=294)
    parser.add_argument("--seeds", type=int, default=2, help="seeds per configuration")
    parser.add_argument("--supersample", type=int, default=1, help="rays per pixel side")
    args = parser.parse_args()
    size = dict(num_frames=args.frames, width=args.width, height=args.height)
    size["supersample"] = args.supersample
    print(
        f"{args.frames} frames of {args.width}x{args.height}, supersample {args.supersample}, "
        f"{os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (wall time suffers when the CPUs are shared)"
    )
    header = (
        f"{'camera':<9} {'movers':<6} {'seed':>4} {'wall s':>7} {'cpu s':>6} "
        f"{'cpu ms/frame':>12} {'moving %':>8} {'save s':>6} {'load s':>6} {'MB':>5}"
    )
    print(header)
    print("-" * len(header))
    for camera in synthetic.CAMERA_MOTIONS:
        for movers in ("small", "large"):
            for seed in range(args.seeds):
                clip, wall, cpu = _timed(
                    synthetic.make_clip, seed, camera=camera, movers=movers, **size
                )
                with tempfile.TemporaryDirectory() as folder:
                    _, save_wall, _ = _timed(synthetic.save_ground_truth, clip, folder)
                    _, load_wall, _ = _timed(synthetic.load_synthetic_clip, folder)
                    megabytes = sum(f.stat().st_size for f in Path(folder).iterdir()) / 1e6
                print(
                    f"{camera:<9} {movers:<6} {seed:>4} {wall:>7.2f} {cpu:>6.2f} "
                    f"{1000 * cpu / args.frames:>12.0f} {100 * clip.dynamic_mask.mean():>8.1f} "
                    f"{save_wall:>6.2f} {load_wall:>6.2f} {megabytes:>5.2f}"
                )


if __name__ == "__main__":
    main()
