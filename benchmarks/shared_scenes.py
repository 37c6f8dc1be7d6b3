"""What sessions showing one result pay when they share its prepared frames; prints a table.

    python benchmarks/shared_scenes.py [--scenes 1 4] [--frames 24] [--rounds 3]

N scenes (each a SceneView on its own Viser server, as N browser tabs have) show the same
synthetic result (benchmarks/scene.py's bumpy wall, 518x294) at once, from N threads, until
every frame is sent. Interleaved per round: with the shared work (`viewer.scene.shared`: each
frame's binned points, cell colours and thumbnail made once for all scenes, the scenes that ask
at once waiting for the one making it) and without it (every scene makes its own). Both have
the changes to Viser's per-node cost (`scene/nodes.py`). Reports the median wall time until all
N scenes have sent everything, and the process CPU seconds (steadier on a shared machine).
No browser is connected: what is measured is the server's work, which every tab shares.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import viser
from scene import synthetic_recon

from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.shared import SHARED_WORK


def one_round(recon, count: int, shared: bool) -> tuple[float, float]:
    """(wall s, CPU s) for `count` scenes to show `recon` at once."""
    SHARED_WORK.clear()
    if not shared:
        # Every scene makes its own: no entry kept, and no waiting for another scene's make.
        vars(SHARED_WORK)["get"] = lambda recon, key, make: make()
    servers = [viser.ViserServer(host="127.0.0.1", port=0, verbose=False) for _ in range(count)]
    views = [SceneView(server) for server in servers]
    threads = [
        threading.Thread(target=lambda v=view: (v.show(recon), v.wait_until_sent(600)))
        for view in views
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for view, server in zip(views, servers, strict=True):
        view.close()
        server.stop()
    vars(SHARED_WORK).pop("get", None)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--scenes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recon = synthetic_recon(args.frames, 294, 518)
    results: dict[tuple[int, bool], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for count in args.scenes:
            for shared in (True, False):
                results.setdefault((count, shared), []).append(one_round(recon, count, shared))
    print(f"\n{args.frames} frames of 518x294, median of {args.rounds} interleaved rounds\n")
    print("| scenes | shared work | wall s | CPU s | wall vs 1 scene |")
    print("|---|---|---|---|---|")
    for shared in (True, False):
        single = statistics.median(w for w, _ in results[(min(args.scenes), shared)])
        for count in args.scenes:
            walls, cpus = zip(*results[(count, shared)], strict=True)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            label = "yes" if shared else "no"
            print(f"| {count} | {label} | {wall:.2f} | {cpu:.2f} | {wall / single:.2f}x |")


if __name__ == "__main__":
    main()
