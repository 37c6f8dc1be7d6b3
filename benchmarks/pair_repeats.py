"""What `forward_pair` repeats: the pair over one pass, with and without shared embeddings.

The DPT heads add a sinusoidal position embedding to every projection and to the fused
full-resolution map. Each head used to make its own, in each mask variant: four full-resolution
embeddings per `forward_pair`, all equal. `heads.PositionEmbeddings` now makes each one once per
pass (or pair). This script times, interleaved in every round so a slow spell on a shared
machine hits all of them alike, a single pass and `forward_pair` with the shared embeddings
("now") and with one made per use ("before": `PositionEmbeddings.get` without its memo),
and prints the median CPU time of this process and the ratios pair / single.

    python benchmarks/pair_repeats.py --preset tiny --frames 8 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from page4d_viewer.model import PRESETS, build_model
from page4d_viewer.model.heads import _DPT_POS_EMBED_WEIGHT, PositionEmbeddings, uv_embedding

MASK_STRENGTH = 64.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=294, help="pixels, multiple of 14")
    parser.add_argument("--width", type=int, default=518, help="pixels, multiple of 14")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args()


@contextmanager
def embeddings_per_use() -> Iterator[None]:
    """The behaviour before the shared embeddings: every use makes its own."""
    memo = PositionEmbeddings.get

    def fresh(self, height, width, channels, aspect, dtype, device):  # noqa: ANN001, ANN202
        embedding = uv_embedding(height, width, channels, aspect, dtype, device)
        return (embedding * _DPT_POS_EMBED_WEIGHT).to(dtype)

    PositionEmbeddings.get = fresh
    try:
        yield
    finally:
        PositionEmbeddings.get = memo


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.process_time()
    run()
    return time.process_time() - started


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.preset).eval()
    images = torch.rand(args.frames, 3, args.height, args.width)

    def single() -> object:
        return model(images, MASK_STRENGTH)

    def pair() -> object:
        return model.forward_pair(images, MASK_STRENGTH)

    def before(run: Callable[[], object]) -> Callable[[], object]:
        def wrapped() -> object:
            with embeddings_per_use():
                return run()

        return wrapped

    runs = {
        "single pass, now": single,
        "forward_pair, now": pair,
        "single pass, before": before(single),
        "forward_pair, before": before(pair),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        single()  # warm-up: allocator and kernels
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(cpu_seconds(run))
    print(
        f"{args.preset}, {args.frames} frames, {args.height}x{args.width}, "
        f"{args.threads} thread(s), {args.repeats} rounds, CPU time of this process"
    )
    print("| run | median CPU s | pair / single (median of per-round ratios) |")
    print("|---|---|---|")
    for version in ("before", "now"):
        single_times = times[f"single pass, {version}"]
        pair_times = times[f"forward_pair, {version}"]
        ratios = [p / s for p, s in zip(pair_times, single_times, strict=True)]
        print(f"| single pass, {version} | {statistics.median(single_times):.2f} | 1.00 |")
        print(
            f"| forward_pair, {version} | {statistics.median(pair_times):.2f} | "
            f"{statistics.median(ratios):.3f} |"
        )


if __name__ == "__main__":
    main()
