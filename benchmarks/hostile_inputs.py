"""Peak memory of crafted hostile inputs: each must be refused before it allocates.

Each case runs in its own child process; the parent reads the child's peak RSS from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``. Usage::

    python benchmarks/hostile_inputs.py            # all cases, a table on stdout
    python benchmarks/hostile_inputs.py CASE DIR   # one case (what the parent runs)
"""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package
BUDGET_MIB = 1536
CASES = ("huge_npy_header", "four_8k_pngs", "zip_bomb", "fps_1e7", "hostile_config")


def _png_8k(path: Path) -> None:
    side = 8192
    compressor = zlib.compressobj(9)
    row = b"\0" + b"\0" * (side * 3)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def run_case(case: str, folder: Path) -> str:
    """Build the crafted input in `folder` and feed it; returns the refusal message."""
    import numpy as np

    from page4d_viewer.errors import Page4DError

    try:
        if case == "huge_npy_header":
            from page4d_viewer.result.reconstruction import Reconstruction

            header = {"descr": "<f2", "fortran_order": False, "shape": (10**6, 10**3, 10**3)}
            raw = io.BytesIO()
            np.lib.format.write_array_header_1_0(raw, header)
            with zipfile.ZipFile(folder / "r.npz", "w") as archive:
                archive.writestr("format_version.npy", _npy(np.asarray(1)))
                archive.writestr("depth.npy", raw.getvalue() + b"\0" * 4096)
            Reconstruction.load(folder / "r.npz")
        elif case == "four_8k_pngs":
            from page4d_viewer.sources.clip import load_clip

            for index in range(4):
                _png_8k(folder / f"{index}.png")
            load_clip(folder)
        elif case == "zip_bomb":
            from page4d_viewer.sources.clip import load_clip

            with zipfile.ZipFile(folder / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
                for index in range(3):
                    archive.writestr(f"{index}.png", b"\0" * (400 * 1024**2))
            load_clip(folder / "bomb.zip")
        elif case == "fps_1e7":
            from page4d_viewer.sources.sampling import FrameSampling

            FrameSampling(fps=1e7)
        elif case == "hostile_config":
            from safetensors.numpy import save_file

            from page4d_viewer.model.checkpoint import FORMAT_NAME, FORMAT_VERSION, load_checkpoint
            from page4d_viewer.model.config import ModelConfig

            config = ModelConfig.from_name("tiny", depth=100000, embed_dim=4096, num_heads=16)
            metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
            metadata["config"] = config.to_json()
            save_file({"x": np.zeros(1, np.float32)}, str(folder / "c.safetensors"), metadata)
            load_checkpoint(folder / "c.safetensors")
    except Page4DError as error:
        return f"refused: {error}"
    return "ACCEPTED"


def _npy(array) -> bytes:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def measure(case: str) -> tuple[float, str]:
    """Run one case in a child process; returns (peak RSS in MiB, its message)."""
    with tempfile.TemporaryDirectory() as folder:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run(
            [sys.executable, __file__, case, folder], capture_output=True, text=True, check=False
        )
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: run each case in a fresh parent
    # (as the test does) or read it as an upper bound.
    return max(peak, before) / 1024, (done.stdout.strip() or done.stderr.strip()[-200:])


def main() -> None:
    if len(sys.argv) == 3:
        sys.stdout.write(run_case(sys.argv[1], Path(sys.argv[2])) + "\n")
        return
    sys.stdout.write(
        f"| case | peak RSS (MiB) | budget {BUDGET_MIB} MiB | outcome |\n|---|---|---|---|\n"
    )
    for case in CASES:
        # A fresh parent per case, so RUSAGE_CHILDREN holds only this case's child.
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.argv=['x']; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
                f"import hostile_inputs as h; p, m = h.measure({case!r}); "
                "print(f'{p:.0f}\\t{m}')",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        peak, _, message = out.partition("\t")
        verdict = "ok" if peak and float(peak) < BUDGET_MIB else "OVER"
        sys.stdout.write(f"| {case} | {peak} | {verdict} | {message[:110]} |\n")


if __name__ == "__main__":
    main()
