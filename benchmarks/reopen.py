"""How fast a saved 65-frame result reappears in the 3-D scene; prints a table.

    python benchmarks/reopen.py [--frames 65] [--repeats 3] [--profile]

Saves a synthetic result (benchmarks/scene.py's bumpy wall with a moving blob) at the small
model's size (196x112) and at 518x294, starts a real ViserServer with a headless websocket
client connected, then times, interleaving the sizes over the repeats:

* `ViewerController.open_result` -> the first frame's points visible in `SceneView.state()`;
* `open_result` -> every frame sent (`SceneView.wait_until_sent`);
* the process CPU time over that (the sender thread and Viser's threads included), a steadier
  measure than wall time on a shared machine.

Each size is opened "cold" (the controller's decoded-result cache cleared: a file not opened
in this session) and then "warm" (opened again: the cache skips decoding).

Targets (reported, not asserted): first frame within 1 s, full scene within 5 s.
`--profile` prints the top of a cProfile of one reopen at 518x294 instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import viser
from scene import SocketClient, synthetic_recon

from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.scene import SceneView

SIZES = ((112, 196), (294, 518))  # (height, width)


def reopen(
    controller: ViewerController, scene: SceneView, path: Path
) -> tuple[float, float, float]:
    """Seconds from open_result to the first frame visible and to every frame sent, and the
    CPU seconds the process spent meanwhile."""
    scene.clear()
    cpu = time.process_time()
    started = time.perf_counter()
    controller.open_result(path)
    while not scene.state().points.visible_frames:
        time.sleep(0.001)
    first = time.perf_counter() - started
    scene.wait_until_sent()
    return first, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=65)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="reopen-"))
    files = {}
    for height, width in SIZES:
        files[(height, width)] = folder / f"result_{width}x{height}.npz"
        synthetic_recon(args.frames, height, width).save(files[(height, width)])
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    scene = SceneView(server)
    controller = ViewerController(scene, RunStore(folder / "runs"), DataRoots([folder]))
    client = SocketClient(f"ws://127.0.0.1:{server.get_port()}")
    client.wait_connected()
    times: dict[tuple[tuple[int, int], str], list[tuple[float, float, float]]] = {}
    try:
        reopen(controller, scene, files[SIZES[0]])  # warm-up: imports, encoders
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            reopen(controller, scene, files[SIZES[-1]])
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            return
        for _ in range(args.repeats):
            for size in SIZES:
                if hasattr(controller, "results"):  # older versions keep no cache
                    controller.results.clear()
                times.setdefault((size, "cold"), []).append(reopen(controller, scene, files[size]))
                times.setdefault((size, "warm"), []).append(reopen(controller, scene, files[size]))
    finally:
        client.close()
        controller.close()
        scene.close()
        server.stop()
    print(f"{args.frames} frames, {args.repeats} interleaved repeats (min / median / max)")
    print(f"{'size':<15}  {'first frame visible':<24}  {'all frames sent':<24}  CPU (median)")
    for ((height, width), kind), runs in times.items():
        first = sorted(run[0] for run in runs)
        full = sorted(run[1] for run in runs)
        cpu = sorted(run[2] for run in runs)[len(runs) // 2]
        size = f"{width}x{height} {kind}"
        print(f"{size:<15}  {_spread(first):<24}  {_spread(full):<24}  {cpu:.2f} s")


def _spread(values: list[float]) -> str:
    return f"{values[0]:.2f} / {values[len(values) // 2]:.2f} / {values[-1]:.2f} s"


if __name__ == "__main__":
    main()
