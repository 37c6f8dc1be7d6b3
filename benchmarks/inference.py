"""Time the network: one pass, the masked/unmasked pair, and two separate passes.

Prints one table row per frame count and run: median time over --repeats runs, peak memory
(CUDA: peak allocated by torch; CPU: peak resident-set growth, sampled every 2 ms), and the
ratio to a single pass. Weights are random: the timing does not depend on them.

On Linux the script re-executes itself with a fixed glibc mmap threshold, so that freed
tensors go back to the OS and resident-set growth measures the live peak of each run.

    python benchmarks/inference.py --preset tiny --frames 4 8
    python benchmarks/inference.py --preset official --device cuda --precision bf16
    python benchmarks/inference.py --preset small --height 112 --width 196 --attention

With --attention, one more run records the camera-token attention (default layers, all query
frames) and the feature PCA (`return_attention=True`), and a last column gives the float16
bytes such a result file stores for the attention of both variants (by arithmetic).

With --tracks N, two more runs: a single pass of the same weights built without a track
head (plain inference must cost the same: the tracker runs only when asked), and one pass
that tracks N query points of frame 0 (what `predict(tracks=N)` adds to a run).

    python benchmarks/inference.py --preset small --height 112 --width 196 --frames 16 \
        --tracks 64 --repeats 3 --clock process --threads 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

from page4d_viewer.inference.device import autocast_for, choose_device, choose_precision
from page4d_viewer.model import PRESETS, Page4D, build_model
from page4d_viewer.model.attention import default_attention_layers
from page4d_viewer.result.inspection import stored_attention_bytes

MASK_STRENGTH = 64.0
ATTENTION_RUN = "forward_pair, unmasked cameras only, with attention"
NO_TRACKER_RUN = "single pass, model built without track head"
_MMAP_THRESHOLD = "MALLOC_MMAP_THRESHOLD_"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--frames", type=int, nargs="+", default=[8])
    parser.add_argument("--height", type=int, default=294, help="pixels, multiple of 14")
    parser.add_argument("--width", type=int, default=518, help="pixels, multiple of 14")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="auto", help="auto, fp32, bf16, fp16")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds; the median is reported (docs use 3)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (torch)")
    parser.add_argument(
        "--attention",
        action="store_true",
        help="also time forward_pair with return_attention=True (camera attention + PCA)",
    )
    parser.add_argument(
        "--tracks",
        type=int,
        default=0,
        help="also time a model without track head and tracking this many points",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="wall time, or this process's CPU time (steadier on a shared CPU; use --threads 1)",
    )
    return parser.parse_args()


class PeakMemory:
    """Peak memory during a `measure()` block, in MiB above the level at its start."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mib = float("nan")

    @contextmanager
    def measure(self) -> Iterator[None]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.peak_mib = (torch.cuda.max_memory_allocated(self.device) - start) / 2**20
            return
        if not os.path.exists("/proc/self/statm"):
            yield
            return
        start = _resident_bytes()
        peak = [start]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.002):
                peak[0] = max(peak[0], _resident_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            done.set()
            sampler.join()
            self.peak_mib = (max(peak[0], _resident_bytes()) - start) / 2**20


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_once(
    run: Callable[[], object], device: torch.device, clock: Callable[[], float]
) -> tuple[float, float]:
    """(seconds on `clock`, peak MiB) of one call of `run`."""
    memory = PeakMemory(device)
    with memory.measure():
        started = clock()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = clock() - started
    return seconds, memory.peak_mib


def timed_interleaved(
    runs: dict[str, Callable[[], object]],
    device: torch.device,
    repeats: int,
    clock: Callable[[], float],
) -> dict[str, tuple[float, float]]:
    """Name -> (median seconds, max peak MiB) over `repeats` rounds.

    Each round runs every candidate once, so a slow spell on a shared machine hits all of
    them alike instead of skewing one.
    """
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(measure_once(run, device, clock))
    return {
        name: (statistics.median(s for s, _ in values), max(m for _, m in values))
        for name, values in samples.items()
    }


def runs_for(
    model: Page4D, images: torch.Tensor, attention: bool = False
) -> dict[str, Callable[[], object]]:
    """The compared ways of getting both variants (or one) for `images`."""
    runs: dict[str, Callable[[], object]] = {
        "single pass": lambda: model(images, MASK_STRENGTH),
        "forward_pair": lambda: model.forward_pair(images, MASK_STRENGTH),
        "forward_pair, unmasked cameras only": lambda: model.forward_pair(
            images, MASK_STRENGTH, unmasked_geometry=False
        ),
        "two separate passes": lambda: (model(images, MASK_STRENGTH), model(images, 0.0)),
    }
    if attention:
        runs[ATTENTION_RUN] = lambda: model.forward_pair(
            images, MASK_STRENGTH, unmasked_geometry=False, return_attention=True
        )
    return runs


def tracker_runs(
    model: Page4D, images: torch.Tensor, count: int
) -> dict[str, Callable[[], object]]:
    """The same weights without track head, and one pass tracking `count` points."""
    plain = build_model(model.config.name, has_track_head=False).to(images.device).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    height, width = images.shape[-2:]
    generator = torch.Generator().manual_seed(0)
    queries = torch.rand(count, 2, generator=generator) * torch.tensor([width - 1, height - 1])
    queries = queries.to(images.device)
    return {
        NO_TRACKER_RUN: lambda: plain(images, MASK_STRENGTH),
        f"single pass tracking {count} points": lambda: model(
            images, MASK_STRENGTH, query_points=queries
        ),
    }


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def _reexec_with_fixed_mmap_threshold() -> None:
    """glibc otherwise keeps freed large blocks, hiding every peak after the first."""
    if sys.platform.startswith("linux") and _MMAP_THRESHOLD not in os.environ:
        env = {**os.environ, _MMAP_THRESHOLD: str(2**16)}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    args = parse_args()
    _reexec_with_fixed_mmap_threshold()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    precision = choose_precision(device, args.precision)
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(args.preset).eval()
    label = "fp32" if precision is None else str(precision).removeprefix("torch.")
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(
        f"preset {args.preset}, {args.height}x{args.width} (HxW), device {device} "
        f"({hardware(device)}), precision {label}, torch {torch.__version__}, "
        f"median of {args.repeats} ({args.clock} clock), mask strength {MASK_STRENGTH:g}"
    )
    print()
    print("| frames | run | time s | peak MiB | time / single | attention stored |")
    print("|---|---|---|---|---|---|")
    for frames in args.frames:
        images = torch.rand(frames, 3, args.height, args.width, device=device)
        runs = runs_for(model, images, args.attention)
        if args.tracks:
            runs.update(tracker_runs(model, images, args.tracks))
        with torch.inference_mode(), autocast_for(device, precision):
            model(images[:1], MASK_STRENGTH)  # warm-up: kernels, allocator, caches
            results = timed_interleaved(runs, device, args.repeats, clock)
        single_s = results["single pass"][0]
        grid = (args.height // model.config.patch_size, args.width // model.config.patch_size)
        layers = len(default_attention_layers(model.config))
        stored = stored_attention_bytes(layers, frames, frames, grid)
        for name, (seconds, peak_mib) in results.items():
            size = f"{stored / 1e6:.2f} MB" if name == ATTENTION_RUN else ""
            print(
                f"| {frames} | {name} | {seconds:.2f} | {peak_mib:.0f} | "
                f"{seconds / single_s:.2f} | {size} |"
            )


if __name__ == "__main__":
    main()
