"""Cost and stored size of the camera-token attention and feature PCA on a real clip.

Runs `predict` with the shipped small model on the first --frames frames of a clip, with and
without `attention=True` (interleaved rounds, median), saves both results, and prints the
model time, the CPU time of the process, and the compressed bytes of the attention and
feature members as a share of the file. Then the official layout's share by arithmetic,
using the file size of `benchmarks/result_file.py` (49.6 MB at 32 frames of 518 x 294).

    python benchmarks/attention_file.py [--frames 32] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from page4d_viewer.inference import predictor
from page4d_viewer.model import ModelConfig
from page4d_viewer.model.attention import default_attention_layers
from page4d_viewer.model.network import Page4D
from page4d_viewer.result.inspection import stored_attention_bytes
from page4d_viewer.sources.sampling import FrameSampling

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "assets" / "samples" / "orbit_movers" / "clip.mp4"
OFFICIAL_FILE_BYTES = 49.6e6  # benchmarks/result_file.py, 32 frames of 518 x 294, no attention
OFFICIAL_GRID = (21, 37)
BUDGET = 0.25


def member_bytes(path: Path, prefixes: tuple[str, ...]) -> int:
    """Compressed bytes of the npz members whose names start with one of `prefixes`."""
    with zipfile.ZipFile(path) as archive:
        return sum(i.compress_size for i in archive.infolist() if i.filename.startswith(prefixes))


def run_once(
    model: Page4D, info: predictor.ModelInfo, frames: int, attention: bool, out: Path
) -> tuple[float, float, Path]:
    """(model seconds, process CPU seconds, file path) of one predict + save."""
    started = time.process_time()
    recon = predictor.predict(
        CLIP,
        model,
        device="cpu",
        precision="fp32",
        checkpoint_info=info,
        sampling=FrameSampling(max_frames=frames),
        ground_truth=None,
        attention=attention,
    )
    cpu = time.process_time() - started
    return recon.metadata.timings["model"], cpu, recon.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = predictor.load_default_model()
    samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for _ in range(args.repeats):
            for attention in (False, True):
                out = Path(folder) / f"attention_{attention}.npz"
                model_s, cpu_s, paths[attention] = run_once(
                    model, info, args.frames, attention, out
                )
                samples[attention].append((model_s, cpu_s))
        plain_bytes = paths[False].stat().st_size
        file_bytes = paths[True].stat().st_size
        attention_bytes = member_bytes(paths[True], ("attention",))
        feature_bytes = member_bytes(paths[True], ("feature",))
    model_s = {key: statistics.median(s for s, _ in v) for key, v in samples.items()}
    cpu_s = {key: statistics.median(c for _, c in v) for key, v in samples.items()}
    extra = model_s[True] - model_s[False]
    print(
        f"shipped small model, {args.frames} frames of {CLIP.name}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print()
    print("| measure | without attention | with attention | difference |")
    print("|---|---|---|---|")
    print(
        f"| model time s | {model_s[False]:.2f} | {model_s[True]:.2f} | {extra:+.2f} "
        f"({100 * extra / model_s[False]:+.1f} %) |"
    )
    print(f"| predict CPU time s | {cpu_s[False]:.2f} | {cpu_s[True]:.2f} | |")
    print(f"| file bytes | {plain_bytes} | {file_bytes} | {file_bytes - plain_bytes:+d} |")
    print(
        f"| attention members (compressed) | | {attention_bytes} | "
        f"{100 * attention_bytes / file_bytes:.1f} % of the file |"
    )
    print(
        f"| feature_pca members (compressed) | | {feature_bytes} | "
        f"{100 * feature_bytes / file_bytes:.1f} % of the file |"
    )
    official(args.frames)


def official(frames: int) -> None:
    """The official layout's attention size by arithmetic (float16, uncompressed)."""
    config = ModelConfig.from_name("official")
    print()
    print(f"official layout, {frames} frames of 518 x 294 (37 x 21 patches), both variants:")
    print()
    print("| layers stored | attention MB | % of file (file = 49.6 MB + attention) |")
    print("|---|---|---|")
    for name, layers in (
        ("all 10 masked", len(config.masked_layers)),
        ("default " + str(list(default_attention_layers(config))), 3),
    ):
        size = stored_attention_bytes(layers, frames, frames, OFFICIAL_GRID)
        share = size / (OFFICIAL_FILE_BYTES + size)
        verdict = "within" if share <= BUDGET else "over"
        print(f"| {name} | {size / 1e6:.1f} | {100 * share:.1f} ({verdict} 25 %) |")


if __name__ == "__main__":
    main()
