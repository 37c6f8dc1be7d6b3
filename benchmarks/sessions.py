"""How long a new tab waits for its scene when several open at once; prints a table.

    python benchmarks/sessions.py [--clients 1 4 8] [--frames 24] [--chromium 4]

Starts the app in this process, view-only, on a synthetic result (benchmarks/scene.py's bumpy
wall, 518x294, 24 frames: the size of the default start-up run) and, for each client count,
opens that many tabs at once the way the API does: a page load (the panel's load event through
Gradio's queue, with a fresh tab id) and then the tab's scene websocket through the app's one
port, read by a headless Viser client (no rendering). Per tab it records:

* first frame: from the page load to the first frame's points arriving on the websocket;
* whole scene: to the last frame's points arriving;
* the process CPU seconds of the round (server and headless clients), steadier than wall time
  on a shared machine.

`--chromium N` also opens N Chromium pages at once (Debian's chromium, software WebGL) and
times each from `goto` to the first point cloud its scene websocket receives (Playwright sees
the frames of the page's iframes).

Target (reported, not asserted): 4 clients' median first frame at most 2x one client's.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from scene import SocketClient, synthetic_recon

from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

if TYPE_CHECKING:
    # Imported for real inside chromium_round: only `--chromium` needs Playwright.
    from playwright.sync_api import Page, WebSocket

CHROMIUM = "/usr/bin/chromium"


def load_event(app: ViewerApp) -> int:
    """The fn_index of the panel's load event (the one that attaches a tab to its session)."""
    with urllib.request.urlopen(app.url + "config", timeout=60) as response:
        config = json.loads(response.read())
    return next(
        index
        for index, dependency in enumerate(config["dependencies"])
        if dependency.get("api_name") == "on_load"
    )


def page_load(app: ViewerApp, fn_index: int, tab: str) -> None:
    """One page load through Gradio's queue, read until it completes."""
    session = secrets.token_hex(8)
    body = json.dumps({"data": [tab], "fn_index": fn_index, "session_hash": session}).encode()
    request = urllib.request.Request(
        app.url + "gradio_api/queue/join", body, {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=300).read()
    stream = f"{app.url}gradio_api/queue/data?session_hash={session}"
    with urllib.request.urlopen(stream, timeout=300) as events:
        for line in events:
            if b"process_completed" in line:
                return


def one_tab(app: ViewerApp, fn_index: int, frames: int, out: dict) -> None:
    """Open one tab's session and scene; record its first-frame and whole-scene seconds."""
    tab = f"bench-{secrets.token_hex(8)}"
    started = time.perf_counter()
    page_load(app, fn_index, tab)
    client = SocketClient(f"{app.url.replace('http://', 'ws://')}scene/{tab}")
    deadline = started + 600
    while len(frame_arrivals(client)) < frames and time.perf_counter() < deadline:
        time.sleep(0.01)
    arrivals = frame_arrivals(client)
    out[tab] = (
        arrivals[0] - started if arrivals else float("nan"),
        arrivals[frames - 1] - started if len(arrivals) >= frames else float("nan"),
    )
    client.close()


def frame_arrivals(client: SocketClient) -> list[float]:
    """When each frame's first point cloud arrived, in arrival order. A frame is many point
    clouds (one per cell of mask bin x confidence bin), `/frames/t{i:04d}/points/...`, sent
    together."""
    first: dict[str, float] = {}
    for arrived, name in list(client.point_clouds):
        if name.startswith("/frames/"):
            first.setdefault(name.split("/")[2], arrived)
    return sorted(first.values())


def python_round(app: ViewerApp, fn_index: int, clients: int, frames: int) -> list[tuple]:
    """`clients` tabs opened at once; their (first frame, whole scene) seconds."""
    out: dict = {}
    threads = [
        threading.Thread(target=one_tab, args=(app, fn_index, frames, out)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sessions = app.sessions
    if sessions is None:
        raise RuntimeError("the app has no sessions to close: call app.start() first")
    for tab in out:
        sessions.close(tab)
    return list(out.values())


def chromium_round(app: ViewerApp, pages: int) -> list[float]:
    """`pages` Chromium pages opened at once; seconds from goto to their first point cloud."""
    from playwright.sync_api import sync_playwright

    firsts: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        opened: list[Page] = []
        # When each page's first point cloud arrived (perf_counter seconds), None until then.
        arrivals: dict[Page, float | None] = {}
        for _ in range(pages):
            page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
            arrivals[page] = None

            def watch(socket: WebSocket, page: Page = page) -> None:
                def frame(payload: bytes | str) -> None:
                    # Viser's binary frames: a point cloud's buffers make a frame of 100+ kB.
                    if arrivals[page] is None and len(payload) > 100_000:
                        arrivals[page] = time.perf_counter()

                socket.on("framereceived", frame)

            page.on("websocket", watch)
            opened.append(page)
        started = time.perf_counter()
        for page in opened:
            page.goto(app.url, wait_until="commit")
        deadline = started + 600
        while any(arrivals[page] is None for page in opened) and time.perf_counter() < deadline:
            opened[0].wait_for_timeout(200)
        firsts = [_seconds_since(started, arrivals[page]) for page in opened]
        browser.close()
    return firsts


def _seconds_since(started: float, arrival: float | None) -> float:
    """Seconds from `started` to `arrival`; NaN when nothing arrived."""
    return arrival - started if arrival is not None else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=str(__doc__).splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--chromium", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="page4d-sessions-"))
    result = synthetic_recon(args.frames, 294, 518).save(folder / "start.npz")
    most = max(args.clients + [args.chromium])
    app = ViewerApp(
        AppConfig(
            port=0, runs_dir=folder / "runs", result=str(result), max_sessions=most + 2,
            max_sessions_per_client=most + 2,
        )
    )  # fmt: skip
    app.start()
    try:
        fn_index = load_event(app)
        python_round(app, fn_index, 1, args.frames)  # warm-up: imports, encoders
        print(
            "| clients | first frame median s | first frame max s | whole scene median s | CPU s |"
        )
        print("|---|---|---|---|---|")
        for clients in args.clients:
            cpu = time.process_time()
            times = python_round(app, fn_index, clients, args.frames)
            cpu = time.process_time() - cpu
            firsts = [first for first, _all in times]
            wholes = [whole for _first, whole in times]
            print(
                f"| {clients} Python | {statistics.median(firsts):.2f} | {max(firsts):.2f} "
                f"| {statistics.median(wholes):.2f} | {cpu:.1f} |"
            )
        if args.chromium:
            firsts = chromium_round(app, args.chromium)
            print(
                f"| {args.chromium} Chromium | {statistics.median(firsts):.2f} "
                f"| {max(firsts):.2f} | | |"
            )
    finally:
        app.close()


if __name__ == "__main__":
    main()
