"""From a click in Chromium to the scene's first frame and whole result; prints a table.

    python benchmarks/scene_latency.py [--rounds 3] [--frames 24] [--run]

Starts the app in this process (view-only unless `--run`) with a Dataset index of three
synthetic results (benchmarks/scene.py's bumpy wall, 518x294, `--frames` frames: the size of
the default start-up run), the same three saved as recent runs, and opens the panel in Debian's
Chromium with software WebGL (SwiftShader), the scene's iframe loaded. Then, in interleaved
rounds, it clicks:

* Dataset row: a row of the Dataset table (a result not shown yet in this session);
* reopen: a recent run picked in "Open a result" and "Open run";
* Compare: another row chosen in the Compare tab (its cameras laid over the shown run).

`--run` also runs the shipped default model on the bundled default sample once (`--frames`
frames), timed from the moment the model's run returns (the backend's `run_model`).

What is timed is what the page's scene websocket receives (Playwright sees the frames of the
iframe's websocket as Chromium's network layer gets them; this script decodes Viser's wire
format to read each message's type and node name):

* first frame: the first point cloud of the new result (for Compare: B's first camera);
* whole result: the point clouds of every frame have arrived (for Compare: every one of B's
  frustums).

It does not time the canvas drawing those points (reading the WebGL canvas back needs a
screenshot per poll, too slow on a loaded machine to leave the timing alone).
Targets (reported, not asserted): first frame at most 1 s, whole result at most 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import zstandard
from scene import synthetic_recon

from page4d_viewer.evaluation import index as run_index
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.scene.view import SceneView
from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",  # software WebGL, so the scene's canvas really draws
    "--enable-unsafe-swiftshader",
]
CLIPS = ["alley", "bamboo", "cave"]
FIRST_TARGET_S = 1.0
WHOLE_TARGET_S = 5.0
TIMEOUT_S = 300.0


@dataclass
class SceneMessages:
    """Every message the page's scene websocket received: (arrival, type, node name)."""

    received: list[tuple[float, str, str]] = field(default_factory=list)
    _decompressor: zstandard.ZstdDecompressor = field(default_factory=zstandard.ZstdDecompressor)

    def on_frame(self, payload: bytes | str) -> None:
        """Decode one websocket frame: two little-endian uint64 sizes, zstd-compressed msgpack
        of the messages, then raw array buffers (not read)."""
        arrived = time.perf_counter()
        if isinstance(payload, str):
            return
        size = int.from_bytes(payload[:8], "little")
        compressed = int.from_bytes(payload[8:16], "little")
        packed = self._decompressor.decompress(payload[16 : 16 + compressed], max_output_size=size)
        for message in msgspec.msgpack.decode(packed)["messages"]:
            self.received.append((arrived, message["type"], str(message.get("name", ""))))

    def watch(self, socket) -> None:
        if "/scene/" in socket.url:
            socket.on("framereceived", self.on_frame)


def frame_index(name: str) -> int | None:
    """The frame of a point cloud node `/frames/t0012/points/...`, else None."""
    parts = name.split("/")
    if len(parts) > 2 and parts[1] == "frames" and parts[2].startswith("t"):
        return int(parts[2][1:])
    return None


def result_times(messages: list[tuple[float, str, str]], frames: int) -> tuple[float, float]:
    """Arrival of the first point cloud, and of the last one once `frames` frames have some
    (NaN until then)."""
    clouds = [
        (arrived, index)
        for arrived, kind, name in messages
        if kind == "PointCloudMessage" and (index := frame_index(name)) is not None
    ]
    first = clouds[0][0] if clouds else float("nan")
    whole = clouds[-1][0] if len({index for _, index in clouds}) >= frames else float("nan")
    return first, whole


def compare_times(messages: list[tuple[float, str, str]], frusta: int) -> tuple[float, float]:
    """Arrival of B's first node, and of the message that completes its `frusta` frustums."""
    shown = [(arrived, kind) for arrived, kind, name in messages if name.startswith("/compare")]
    first = shown[0][0] if shown else float("nan")
    arrivals = [arrived for arrived, kind in shown if kind == "CameraFrustumMessage"]
    return first, arrivals[frusta - 1] if len(arrivals) >= frusta else float("nan")


class SpanClock:
    """Times every call of a class's method in this process (all threads): `Reconstruction.load`
    (decoding a result file), `SceneView.show` (preparing a result and sending its first frame).
    """

    def __init__(self, owner: type, name: str) -> None:
        self.spans: list[tuple[float, float]] = []  # (start, end)
        inner = getattr(owner, name)
        # A class method comes back bound to its class: set it back as a plain static one.
        static = isinstance(owner.__dict__[name], staticmethod | classmethod)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spans.append((start, time.perf_counter()))

        setattr(owner, name, staticmethod(timed) if static else timed)

    def seconds_since(self, start: float) -> float:
        """Seconds spent in calls that began after `start`."""
        return sum(end - began for began, end in self.spans if began >= start)

    def first_start_since(self, start: float) -> float:
        """When the first call after `start` began (NaN: none)."""
        return min((began for began, _ in self.spans if began >= start), default=float("nan"))


def wait_until(page, done, timeout: float = TIMEOUT_S) -> None:
    """Let Playwright deliver events (page.wait_for_timeout) until `done()` or the timeout."""
    deadline = time.perf_counter() + timeout
    while not done() and time.perf_counter() < deadline:
        page.wait_for_timeout(50)


def wait_quiet(page, scene: SceneMessages, quiet: float = 1.5) -> None:
    """Until the scene websocket has received nothing for `quiet` seconds."""
    last = -1
    while len(scene.received) != last:
        last = len(scene.received)
        page.wait_for_timeout(quiet * 1000)


@dataclass(frozen=True)
class Timing:
    """One click's seconds: to the first frame and the whole result on the page's socket; of
    them, decoding result files, and from the click (or the model's return) to the server's
    `SceneView.show` starting (NaN where the action shows no new result)."""

    first: float
    whole: float
    decoding: float
    to_show: float


@dataclass
class Clocks:
    """The server-side spans this script times."""

    decode: SpanClock = field(default_factory=lambda: SpanClock(Reconstruction, "load"))
    show: SpanClock = field(default_factory=lambda: SpanClock(SceneView, "show"))

    def timing(self, started: float, first: float, whole: float) -> Timing:
        to_show = self.show.first_start_since(started) - started
        return Timing(first - started, whole - started, self.decode.seconds_since(started), to_show)


def timed_click(page, scene: SceneMessages, clocks: Clocks, action, clip: str, measure) -> Timing:
    """What `action(page, clip)` costs, until `measure(new messages)` gives (first, whole).
    Starts and ends on a quiet websocket."""
    wait_quiet(page, scene)
    mark = len(scene.received)
    started = time.perf_counter()
    action(page, clip)
    wait_until(page, lambda: not math.isnan(measure(scene.received[mark:])[1]))
    wait_quiet(page, scene)  # the last frame's remaining cells
    return clocks.timing(started, *measure(scene.received[mark:]))


def build_data(folder: Path, frames: int) -> tuple[Path, Path]:
    """A batch folder with an index of the three clips' results; the same saved as runs."""
    batch, runs = folder / "batch", folder / "runs"
    store = RunStore(runs)
    with contextlib.closing(run_index.connect(batch / run_index.INDEX_NAME)) as connection:
        for seed, clip in enumerate(CLIPS):
            recon = synthetic_recon(frames, 294, 518, seed=seed + 1)
            relative = Path("results") / f"{clip}.npz"
            (batch / relative).parent.mkdir(parents=True, exist_ok=True)
            recon.save(batch / relative)
            store.save(recon.save, f"run {clip}")
            run_index.write_row(connection, run_index.RunRow(
                clip=clip, checkpoint=f"{clip}.safetensors", settings_hash="s", status="ok",
                created_at="2026-01-01T00:00:00", checkpoint_name=f"{clip}.safetensors",
                mask_strength=64.0, frames=frames, ate_masked=0.1 + 0.1 * seed,
                ate_unmasked=0.3 - 0.05 * seed, result_path=relative.as_posix(),
            ))  # fmt: skip
    synthetic_recon(frames, 294, 518, seed=0).save(folder / "start.npz")
    return batch, runs


def open_row(page, clip: str) -> None:
    page.get_by_role("tab", name="Dataset", exact=True).click()
    page.locator("#dataset-table").get_by_text(clip, exact=True).locator(
        "visible=true"
    ).first.click()


def reopen_run(page, clip: str) -> None:
    if not page.locator("#recent-runs").is_visible():
        page.get_by_role("button", name="Open a result").click()
    page.locator("#recent-runs input").click()
    page.get_by_role("option", name=f"run {clip}").first.click()
    page.locator("#open-run").click()


def compare_with(page, clip: str) -> None:
    page.get_by_role("tab", name="Compare", exact=True).click()
    page.locator("#compare-choice input").click()
    page.get_by_role("option", name=f"index · {clip}").first.click()
    page.locator("#compare").click()


def clear_compare(page, scene: SceneMessages) -> None:
    mark = len(scene.received)
    page.locator("#clear-compare").click()
    removed = lambda: any(kind == "RemoveSceneNodeMessage" for _, kind, _ in scene.received[mark:])  # noqa: E731
    wait_until(page, removed, 30)
    page.wait_for_timeout(500)


def model_run(page, app: ViewerApp, scene: SceneMessages, clocks: Clocks, frames: int) -> Timing:
    """Run the default model on the panel's default sample; seconds from the model's run
    returning to the first frame's and the whole result's points (no file is decoded)."""
    finished: list[float] = []
    backend = app.backend
    if backend is None:
        raise SystemExit("error: the app has no model")
    inner = backend.run_model

    def run_model(source, options, progress):
        try:
            return inner(source, options, progress)
        finally:
            finished.append(time.perf_counter())

    backend.run_model = run_model  # type: ignore[method-assign]
    page.get_by_role("button", name="Sampling").click()
    box = page.locator("#max-frames input[type=number]")
    box.fill(str(frames))
    box.press("Enter")
    page.get_by_role("button", name="Sampling").click()
    wait_quiet(page, scene)
    mark = len(scene.received)
    started = time.perf_counter()
    page.locator("#run").click()

    def measure():
        return result_times(scene.received[mark:], frames)

    wait_until(page, lambda: bool(finished) and not math.isnan(measure()[1]), 900)
    wait_quiet(page, scene)
    first, whole = measure()
    print(f"the model run took {finished[0] - started:.0f} s", flush=True)
    return clocks.timing(finished[0], first, whole)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--run", action="store_true", help="also time a default-model run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="page4d-latency-"))
    batch, runs = build_data(folder, args.frames)
    backend = None
    if args.run:
        from page4d_viewer.inference.jobs import PredictorBackend

        backend = PredictorBackend([])
    config = AppConfig(
        port=0, runs_dir=runs, data_roots=[folder], result=str(folder / "start.npz"),
        index=str(batch), shared_runs=True,
    )  # fmt: skip
    app = ViewerApp(config, backend)
    app.start()
    times: dict[str, list[Timing]] = {}
    clocks = Clocks()
    loads: list[float] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            scene = SceneMessages()
            page.on("websocket", scene.watch)
            page.goto(app.url)
            wait_until(page, lambda: result_times(scene.received, args.frames)[1] > 0)
            frusta = 2 * args.frames  # masked and unmasked cameras
            for round_number in range(args.rounds):
                loads.append(os.getloadavg()[0])
                # Each action shows a result this session has not shown just before.
                row = CLIPS[round_number % 3]
                reopened = CLIPS[(round_number + 1) % 3]
                compared = CLIPS[(round_number + 2) % 3]

                by_result = functools.partial(result_times, frames=args.frames)
                by_compare = functools.partial(compare_times, frusta=frusta)
                times.setdefault("Dataset row", []).append(
                    timed_click(page, scene, clocks, open_row, row, by_result)
                )
                times.setdefault("reopen (recent run)", []).append(
                    timed_click(page, scene, clocks, reopen_run, reopened, by_result)
                )
                times.setdefault("Compare", []).append(
                    timed_click(page, scene, clocks, compare_with, compared, by_compare)
                )
                clear_compare(page, scene)
                print(f"round {round_number + 1}: load {loads[-1]:.1f}", flush=True)
            if args.run:
                loads.append(os.getloadavg()[0])
                times["Run finished (default model)"] = [
                    model_run(page, app, scene, clocks, args.frames)
                ]
            browser.close()
    finally:
        app.close()
    print(f"\nload average (1 min) during the rounds: {min(loads):.1f} to {max(loads):.1f}")
    print(
        "\n| action | rounds | first frame s (median, max) | whole result s (median, max) "
        "| click to show() s | decoding the file s | target: first, whole | met? |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for action, rows in times.items():
        firsts, wholes = [row.first for row in rows], [row.whole for row in rows]
        to_show = statistics.median(row.to_show for row in rows)
        decoding = statistics.median(row.decoding for row in rows)
        met = max(firsts) <= FIRST_TARGET_S and max(wholes) <= WHOLE_TARGET_S
        print(
            f"| {action} | {len(rows)} | {statistics.median(firsts):.2f}, {max(firsts):.2f} "
            f"| {statistics.median(wholes):.2f}, {max(wholes):.2f} "
            f"| {'' if math.isnan(to_show) else f'{to_show:.2f}'} | {decoding:.2f} "
            f"| {FIRST_TARGET_S:g} s, {WHOLE_TARGET_S:g} s | {'yes' if met else 'no'} |"
        )


if __name__ == "__main__":
    main()
