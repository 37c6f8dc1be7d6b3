"""What a page reload costs with one Viser server per tab, and what the server costs; prints
markdown tables.

    python benchmarks/scene_reload.py [--rounds 3] [--frames 24] [--servers 4]

Each tab has its own `viser.ViserServer` (viewer/server/sessions.py). The alternative is one
shared server with per-client scenes (viser's `client.scene`, `client.gui`): a scene of that
kind dies with its websocket, so a reloaded page would need its scene built again. For two
result sizes (24 frames of 518x294, the default start-up run, and of 252x140), interleaved
over a few rounds, medians:

* replay (this design): a new websocket client connects to a server already showing the
  result, the way a reloaded page does; Viser replays its persistent scene messages. Time from
  the connection to the client holding the whole scene, and the bytes it received.
* rebuild (per-client scenes): a client connects to a fresh server with the scene's controls
  (`SceneView(server)`), then `show(recon)` prepares and sends the result (point binning,
  frustum thumbnails, message encoding) and the client receives it. Same clock, same bytes.
  Building the controls (`SceneView(server)`) is timed on its own row: a per-client scene
  would pay it too.

"The whole scene" is a one-point marker cloud added after the scene is sent: messages reach
a client in order, so its arrival means everything before it arrived. The clients speak
Viser's wire format (benchmarks/scene.py's `SocketClient`) and connect straight to Viser,
not through the app's one-port proxy, which relays both cases alike.

Then what one more server costs: its start-up time, and the resident memory and threads that
`--servers` servers add, bare and each showing a result (RSS from /proc/self/statm), plus the
scene copy each server keeps for replays (the array bytes of its persistent messages).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import viser
from scene import SocketClient, synthetic_recon

from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer.scene import SceneView

MARKER = "/benchmark_scene_sent"
TIMEOUT = 120.0


@dataclass
class Delivery:
    """One client receiving a whole scene."""

    seconds: float  # from the connection to the marker's arrival
    cpu_seconds: float  # this process's CPU time (every thread: scene, server, client) meanwhile
    received_bytes: int  # websocket frames, compressed as sent
    point_clouds: int  # point cloud messages received, the marker included


def new_server() -> viser.ViserServer:
    return viser.ViserServer(host="127.0.0.1", port=0, verbose=False)


def add_marker(server: viser.ViserServer) -> None:
    """A one-point cloud queued after everything else: its arrival means the scene arrived."""
    server.scene.add_point_cloud(
        MARKER, points=np.zeros((1, 3), np.float32), colors=(0, 0, 0), visible=False
    )


def wait_for_marker(client: SocketClient, started: float, cpu_started: float) -> Delivery:
    """Wait until the marker reaches `client`; what it had received by then."""
    deadline = time.perf_counter() + TIMEOUT
    while time.perf_counter() < deadline:
        arrived = [t for t, name in client.point_clouds if name == MARKER]
        if arrived:
            cpu = time.process_time() - cpu_started
            return Delivery(
                arrived[0] - started, cpu, client.received_bytes, len(client.point_clouds)
            )
        time.sleep(0.005)
    raise TimeoutError("the scene did not reach the client")


def show_and_send(server: viser.ViserServer, recon: Reconstruction) -> SceneView:
    """A scene on `server` showing `recon`, every frame sent, the marker after it."""
    scene = SceneView(server)
    scene.show(recon)
    if not scene.wait_until_sent(TIMEOUT):
        raise TimeoutError("the scene was not sent")
    add_marker(server)
    return scene


def replay(server: viser.ViserServer) -> Delivery:
    """A reload in this design: a new client connects to the server that shows the result."""
    started, cpu_started = time.perf_counter(), time.process_time()
    client = SocketClient(f"ws://127.0.0.1:{server.get_port()}")
    try:
        return wait_for_marker(client, started, cpu_started)
    finally:
        client.close()


def rebuild(recon: Reconstruction) -> tuple[Delivery, float]:
    """A reload with per-client scenes: the client's scene is built and sent again.

    Returns the delivery (timed from the connection, like `replay`) and the seconds that
    building the scene's controls took before the client connected."""
    server = new_server()
    scene: SceneView | None = None
    client: SocketClient | None = None
    try:
        controls_started = time.perf_counter()
        scene = SceneView(server)
        controls = time.perf_counter() - controls_started
        started, cpu_started = time.perf_counter(), time.process_time()
        client = SocketClient(f"ws://127.0.0.1:{server.get_port()}")
        client.wait_connected()
        scene.show(recon)
        if not scene.wait_until_sent(TIMEOUT):
            raise TimeoutError("the scene was not sent")
        add_marker(server)
        return wait_for_marker(client, started, cpu_started), controls
    finally:
        if client is not None:
            client.close()
        if scene is not None:
            scene.close()
        server.stop()


def persistent_array_bytes(server: viser.ViserServer) -> int:
    """Array bytes in the messages a server keeps to replay to each new client."""
    buffer = server._websock_server.get_message_buffer()  # measured, not used
    total = 0
    for message in list(buffer.message_from_id.values()):
        values = list(vars(getattr(message, "props", message)).values())
        values += list(getattr(message, "updates", {}).values())
        total += sum(v.nbytes for v in values if isinstance(v, np.ndarray))
        total += sum(len(v) for v in values if isinstance(v, bytes))
    return total


def rss_bytes() -> int:
    """This process's resident memory (after a garbage collection)."""
    gc.collect()
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def os_threads() -> int:
    """This process's OS threads (Python's and native ones, e.g. compression pools)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads line in /proc/self/status")


def server_costs(recons: list[Reconstruction], count: int) -> list[tuple[str, str]]:
    """Start-up time of a server; RSS and threads `count` servers add, bare and showing each
    result (one result object shared by the servers, as the app's sessions share a file's)."""
    rows: list[tuple[str, str]] = []
    startups = []
    for _ in range(5):
        started = time.perf_counter()
        server = new_server()
        startups.append(time.perf_counter() - started)
        server.stop()
    time.sleep(0.5)  # stopped servers' threads end
    startup_ms = statistics.median(startups) * 1e3
    rows.append(("ViserServer start-up, median of 5", f"{startup_ms:.0f} ms"))

    rss, threads = rss_bytes(), os_threads()
    servers = [new_server() for _ in range(count)]
    time.sleep(0.5)
    rows += [
        ("RSS per bare server", f"{(rss_bytes() - rss) / count / 1e3:.0f} kB"),
        ("OS threads per bare server", f"{(os_threads() - threads) / count:.1f}"),
    ]
    for server in servers:
        server.stop()
    time.sleep(0.5)

    for recon in recons:
        rss, threads = rss_bytes(), os_threads()
        shown = [(server, show_and_send(server, recon)) for server in _servers(count)]
        time.sleep(0.5)
        added, added_threads = rss_bytes() - rss, os_threads() - threads
        kept = statistics.median(persistent_array_bytes(server) for server, _scene in shown)
        rows += [
            (f"RSS per server showing {_size(recon)}", f"{added / count / 1e6:.1f} MB"),
            ("OS threads per server showing it", f"{added_threads / count:.1f}"),
            ("of the RSS: arrays kept for replays", f"{kept / 1e6:.1f} MB"),
        ]
        for server, scene in shown:
            scene.close()
            server.stop()
        del shown
        time.sleep(0.5)
    return rows


def _servers(count: int) -> list[viser.ViserServer]:
    return [new_server() for _ in range(count)]


def _size(recon: Reconstruction) -> str:
    height, width = recon.image_hw
    return f"{recon.num_frames} frames of {width}x{height}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--servers", type=int, default=4, help="servers for the memory rows")
    args = parser.parse_args()
    recons = [synthetic_recon(args.frames, 294, 518), synthetic_recon(args.frames, 140, 252)]
    rebuild(recons[1])  # warm-up: imports, encoders, the first connection
    # First, while little memory has been freed for new allocations to reuse.
    costs = server_costs(recons, args.servers)

    # This design: each tab's server keeps showing its result between reloads.
    kept = [(new_server(), recon) for recon in recons]
    scenes = [show_and_send(server, recon) for server, recon in kept]
    replays: list[list[Delivery]] = [[] for _ in recons]
    rebuilds: list[list[Delivery]] = [[] for _ in recons]
    controls: list[float] = []
    for _ in range(args.rounds):
        for index, (server, recon) in enumerate(kept):
            replays[index].append(replay(server))
            delivery, seconds = rebuild(recon)
            rebuilds[index].append(delivery)
            controls.append(seconds)
    for scene in scenes:
        scene.close()
    for server, _recon in kept:
        server.stop()

    print(f"Reload, median of {args.rounds} interleaved rounds")
    print()
    print(
        "| result | replay s (this design) | CPU s | MB received "
        "| rebuild s (per-client scenes) | CPU s | MB received | point clouds, replay / rebuild |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for index, recon in enumerate(recons):
        cells = [_size(recon)]
        for deliveries in (replays[index], rebuilds[index]):
            cells += [
                f"{statistics.median(d.seconds for d in deliveries):.2f}",
                f"{statistics.median(d.cpu_seconds for d in deliveries):.2f}",
                f"{statistics.median(d.received_bytes for d in deliveries) / 1e6:.1f}",
            ]
        cells.append(f"{replays[index][-1].point_clouds} / {rebuilds[index][-1].point_clouds}")
        print("| " + " | ".join(cells) + " |")
    print()
    controls_ms = statistics.median(controls) * 1e3
    print(f"Building a scene's controls (`SceneView(server)`), median: {controls_ms:.0f} ms")
    print()
    print(f"| one more server ({args.servers} servers added) | value |")
    print("|---|---|")
    for name, value in costs:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
