"""Time saving, loading and exporting a Reconstruction of realistic size; prints a Markdown table.

    python benchmarks/result_file.py [--frames 32] [--height 294] [--width 518]

Uses a smooth synthetic depth map (compresses like real predictions) and random confidences
(compress worse than real ones), so the file size is an upper bound.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.result import export
from page4d_viewer.result.reconstruction import Cameras, Reconstruction


def make_reconstruction(frames: int, height: int, width: int) -> Reconstruction:
    """A Reconstruction of the given size with plausible contents."""
    rng = np.random.default_rng(0)
    pose_enc = np.zeros((frames, 9))
    pose_enc[:, 0] = np.linspace(0.0, 1.0, frames)
    pose_enc[:, 6] = 1.0
    pose_enc[:, 7:] = 1.0
    cameras = Cameras.from_pose_encoding(pose_enc, (height, width))
    rows, cols = np.mgrid[0:height, 0:width]
    depth = 2.0 + 0.5 * np.sin(cols / 30.0) + 0.3 * np.cos(rows / 20.0)
    depth = np.repeat(depth[None], frames, axis=0).astype(np.float32)
    images = np.stack([cols % 256, rows % 256, (cols + rows) % 256], axis=-1).astype(np.uint8)
    return Reconstruction(
        images=np.repeat(images[None], frames, axis=0),
        depth=depth,
        depth_conf=(1.0 + rng.exponential(2.0, depth.shape)).astype(np.float32),
        points=geometry.depth_to_world_points(depth, cameras.extrinsics, cameras.intrinsics),
        points_conf=(1.0 + rng.exponential(2.0, depth.shape)).astype(np.float32),
        cameras={"masked": cameras, "unmasked": cameras},
        mask_score=rng.uniform(-0.5, 0.5, (frames, height // 14, width // 14)).astype(np.float32),
    )


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of ``action`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--height", type=int, default=294)
    parser.add_argument("--width", type=int, default=518)
    args = parser.parse_args()
    recon = make_reconstruction(args.frames, args.height, args.width)
    with tempfile.TemporaryDirectory(prefix="page4d_bench_") as scratch:
        rows = _measure(recon, Path(scratch))
    print(f"{args.frames} frames of {args.width}x{args.height}\n")
    print("| step | seconds | output MB |")
    print("|---|---:|---:|")
    for name, seconds, megabytes in rows:
        size = "" if megabytes is None else f"{megabytes:.1f}"
        print(f"| {name} | {seconds:.2f} | {size} |")


def _measure(recon: Reconstruction, folder: Path) -> list[tuple[str, float, float | None]]:
    """(step, seconds, output size in MB or None) for each step, files written to ``folder``."""
    result = folder / "result.npz"
    steps: list[tuple[str, Callable[[], object], Path | None]] = [
        ("save (.npz, float16)", lambda: recon.save(result), result),
        ("load", lambda: Reconstruction.load(result), None),
        (
            "export GLB (50th pct.)",
            lambda: export.export_glb(recon, folder / "s.glb"),
            folder / "s.glb",
        ),
        ("export PLY per frame", lambda: export.export_ply(recon, folder / "ply"), folder / "ply"),
        ("export TUM", lambda: export.export_tum(recon, folder / "t.txt"), None),
        (
            "export mp4 overlay",
            lambda: export.export_mp4(recon, folder / "m.mp4"),
            folder / "m.mp4",
        ),
    ]
    rows = []
    for name, action, output in steps:
        seconds = timed(action)
        rows.append((name, seconds, None if output is None else _size(output) / 1e6))
    return rows


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size


if __name__ == "__main__":
    main()
