"""How fast the Viser scene takes a clip and plays it back; prints a table.

    python benchmarks/scene.py [--frames 100] [--height 294] [--width 518] [--downsample N]
                               [--direct]

Builds a synthetic Reconstruction (a textured room-like depth field with a moving blob that
the mask marks dynamic), starts a real ViserServer on a free local port, and measures:

* show() -> first frame queued for the browser (show() returns once it is), show() -> first
  frame received by a websocket client speaking Viser's wire format (what a browser tab gets,
  before drawing), the time until every frame is sent, and the bytes sent;
* a 30 fps playback over N frames: frames advanced, point re-sends (target 0), the messages
  it queued and the time one frame change costs;
* the cost of moving the mask sliders (colour-only re-sends) and of a split threshold change.

The client connects the way a browser does: through the app's one port, whose `/scene/<session>`
route relays the websocket to the session's internal Viser server (viewer/server/proxy.py).
`--direct` connects straight to the Viser server instead, as the app did before it had one port.
`--changes` instead measures what one change of each slider sends (point clouds queued,
array bytes) on a clip shown in "all" mode: confidence, point source and back, downsampling
and back, mask threshold and opacity.

Targets (reported, not asserted): no point re-send during playback; first frame visible
within 0.5 s of inference ending (that is, of show() being called).
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import viser
import zstandard
from viser import _messages
from websockets.sync.client import connect

from page4d_viewer import geometry
from page4d_viewer.result.reconstruction import Cameras, Reconstruction
from page4d_viewer.viewer.scene import SceneView

if TYPE_CHECKING:
    # Imported for real where used: only the proxied connection needs FastAPI.
    from page4d_viewer.viewer.server.proxy import HttpServer


def synthetic_recon(frames: int, height: int, width: int, seed: int = 0) -> Reconstruction:
    """A camera orbiting slowly in front of a bumpy wall, with a blob that moves across it."""
    rng = np.random.default_rng(seed)
    focal = 0.9 * width
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    intrinsics = np.repeat(K[None], frames, axis=0)
    angle = np.linspace(0, 0.4, frames)
    extrinsics = np.zeros((frames, 3, 4))
    extrinsics[:, 0, 0] = extrinsics[:, 2, 2] = np.cos(angle)
    extrinsics[:, 0, 2], extrinsics[:, 2, 0] = np.sin(angle), -np.sin(angle)
    extrinsics[:, 1, 1] = 1.0
    extrinsics[:, 0, 3] = -0.5 * angle
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    wall = 3.0 + 0.3 * np.sin(u / 37.0) * np.cos(v / 23.0)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    blob_u = width * (0.2 + 0.6 * t / max(frames - 1, 1))
    blob = np.exp(-(((u - blob_u) / 40.0) ** 2 + ((v - height / 2) / 50.0) ** 2))
    depth = (wall - 1.2 * blob).astype(np.float32)
    images = rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8)
    patch_blob = blob[:, 7::14, 7::14]
    mask_score = (0.45 - 0.9 * patch_blob).astype(np.float32)  # low score = dynamic
    return Reconstruction(
        images=images,
        depth=depth,
        depth_conf=1.0 + rng.random((frames, height, width), dtype=np.float32),
        points=geometry.depth_to_world_points(depth, extrinsics, intrinsics).astype(np.float32),
        points_conf=1.0 + rng.random((frames, height, width), dtype=np.float32),
        cameras={
            "masked": Cameras(extrinsics, intrinsics),
            "unmasked": Cameras(extrinsics + rng.normal(0, 0.01, extrinsics.shape), intrinsics),
        },
        mask_score=mask_score,
    )


NODE_MESSAGES = (
    "PointCloudMessage",
    "CameraFrustumMessage",
    "FrameMessage",
    "LineSegmentsMessage",
)


class MessageLog:
    """Counts scene messages and their array bytes as the server queues them."""

    def __init__(self, server: viser.ViserServer) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.array_bytes = 0
        self.first_point_cloud: float | None = None
        original = server.scene._queue_scene_message

        def record(message: Any) -> None:
            self.count[type(message).__name__] += 1
            if isinstance(message, _messages.PointCloudMessage) and self.first_point_cloud is None:
                self.first_point_cloud = time.perf_counter()
            self.array_bytes += _array_bytes(message)
            original(message)

        server.scene._queue_scene_message = record  # type: ignore[method-assign]

    def reset(self) -> None:
        self.count.clear()
        self.array_bytes = 0


class SocketClient:
    """A headless Viser client: receives the scene's websocket frames and timestamps them.

    Decodes Viser's wire format (two little-endian uint64 sizes, zstd-compressed msgpack of
    the messages, then raw array buffers) only far enough to see message types and names.
    """

    def __init__(self, uri: str) -> None:
        self.received_bytes = 0
        self.point_clouds: list[tuple[float, str]] = []  # (arrival time, node name)
        self.messages = 0
        self._stop = threading.Event()
        self._uri = uri
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        decompressor = zstandard.ZstdDecompressor()
        protocol = f"viser-v{viser.__version__}"
        with connect(self._uri, subprotocols=[protocol], max_size=None) as socket:  # type: ignore[list-item]
            while not self._stop.is_set():
                try:
                    data = socket.recv(timeout=0.2)
                except TimeoutError:
                    continue
                arrived = time.perf_counter()
                assert isinstance(data, bytes)
                self.received_bytes += len(data)
                size = int.from_bytes(data[:8], "little")
                compressed = int.from_bytes(data[8:16], "little")
                payload = decompressor.decompress(data[16 : 16 + compressed], max_output_size=size)
                for message in msgspec.msgpack.decode(payload)["messages"]:
                    self.messages += 1
                    if message["type"] == "PointCloudMessage":
                        self.point_clouds.append((arrived, message["name"]))

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.perf_counter() + timeout
        while self.messages == 0 and time.perf_counter() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _array_bytes(message: Any) -> int:
    values = list(vars(getattr(message, "props", message)).values())
    values += list(getattr(message, "updates", {}).values())
    total = sum(v.nbytes for v in values if isinstance(v, np.ndarray))
    return total + sum(len(v) for v in values if isinstance(v, bytes))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=294)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--downsample", type=int, default=0, help="pixel stride; 0 = automatic")
    parser.add_argument("--playback-frames", type=int, default=90)
    parser.add_argument(
        "--direct", action="store_true", help="connect to Viser itself, not through the proxy"
    )
    parser.add_argument("--changes", action="store_true", help="only the slider changes")
    args = parser.parse_args()
    if args.changes:
        slider_changes(synthetic_recon(args.frames, args.height, args.width))
        return

    recon = synthetic_recon(args.frames, args.height, args.width)
    server, key = _open_server(args.direct)
    log = MessageLog(server)
    scene = SceneView(server)
    proxy = None if args.direct else _start_proxy(server.get_port(), key)
    uri = f"ws://127.0.0.1:{server.get_port()}" if proxy is None else proxy[1]
    client = SocketClient(uri)
    client.wait_connected()
    rows: list[tuple[str, str]] = [
        ("client connects", "straight to Viser" if proxy is None else "through the one-port proxy")
    ]
    try:
        if args.downsample:
            scene.points.set_downsample(args.downsample)
        log.reset()
        started = time.perf_counter()
        scene.show(recon)
        returned = time.perf_counter()
        scene.wait_until_sent()
        finished = time.perf_counter()
        state = scene.state()
        first = (log.first_point_cloud or returned) - started
        deadline = time.perf_counter() + 60
        while len(client.point_clouds) < log.count["PointCloudMessage"]:
            if time.perf_counter() > deadline:
                break
            time.sleep(0.01)
        arrivals = [t for t, name in client.point_clouds if name.startswith("/frames/")]
        rows += [
            ("clip", f"{args.frames} frames of {args.width}x{args.height}"),
            ("downsampling stride", f"{state.points.downsample}"),
            ("points sent", f"{sum(state.points.point_counts):,}"),
            ("show() -> first point cloud queued", f"{first * 1e3:.0f} ms"),
            ("show() returned (first frame + frusta)", f"{(returned - started) * 1e3:.0f} ms"),
            ("show() -> first points at a client socket", _ms(arrivals[0] - started)),
            ("show() -> all frames sent", f"{finished - started:.2f} s"),
            ("show() -> all frames at a client socket", f"{arrivals[-1] - started:.2f} s"),
            ("bytes received by the client", f"{client.received_bytes / 1e6:.1f} MB"),
            ("array bytes sent (points, colours, images)", f"{log.array_bytes / 1e6:.1f} MB"),
            ("scene nodes created", f"{sum(log.count[name] for name in NODE_MESSAGES)}"),
        ]

        sends_before = sum(state.geometry_sends)
        log.reset()
        received_before = client.received_bytes
        advanced: list[float] = []
        scene.on_frame_change(lambda _frame: advanced.append(time.perf_counter()))
        scene.set_fps(30)
        scene.set_loop(True)
        scene.set_playing(True)
        deadline = time.perf_counter() + args.playback_frames / 30 * 3 + 5
        while len(advanced) < args.playback_frames and time.perf_counter() < deadline:
            time.sleep(0.01)
        scene.set_playing(False)
        state = scene.state()
        gaps = np.diff(advanced) if len(advanced) > 1 else np.array([np.nan])
        rows += [
            ("playback: frames advanced at 30 fps", f"{len(advanced)}"),
            ("playback: achieved fps", f"{1 / np.mean(gaps):.1f}"),
            ("playback: point re-sends", f"{sum(state.geometry_sends) - sends_before}"),
            ("playback: messages queued", _counts(log.count)),
            ("playback: array bytes", f"{log.array_bytes} B"),
            (
                "playback: bytes received by the client",
                f"{client.received_bytes - received_before} B",
            ),
        ]
        frame_change = _time(lambda i: scene.set_frame(i % args.frames), 50)
        rows.append(("one frame change (set_frame)", f"{frame_change * 1e3:.2f} ms"))

        log.reset()
        overlay = _time(lambda i: scene.set_mask_overlay(0.3 + 0.01 * (i % 2), 0.5), 4)
        rows.append(
            ("overlay opacity change, current frame", f"{overlay * 1e3:.1f} ms, colours only")
        )
        scene.points.set_display("split")
        log.reset()
        threshold = _time(lambda i: scene.set_mask_overlay(0.0, 0.3 + 0.05 * (i % 2)), 4)
        rows.append(
            (
                "split threshold change (all frames, opacity 0)",
                f"{threshold * 1e3:.1f} ms, {log.count['PointCloudMessage']} point sends",
            )
        )
        scene.points.set_display("all")
        log.reset()
        recolour = _time(lambda i: scene.set_mask_overlay(0.5 + 0.1 * (i % 2), 0.5), 2)
        rows.append(
            (
                "overlay opacity change, all frames shown",
                f"{recolour * 1e3:.0f} ms, {log.array_bytes / 2e6:.1f} MB colours each",
            )
        )
    finally:
        client.close()
        scene.close()
        server.stop()
        if proxy is not None:
            proxy[0].stop()
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _open_server(direct: bool) -> tuple[viser.ViserServer, str]:
    """The scene's Viser server on a free local port, and the key the proxy must send.

    `direct`: a plain server (no key) the client reaches itself; otherwise a keyed one, as
    the app opens for each session, which only the proxy reaches.
    """
    if direct:
        return viser.ViserServer(host="127.0.0.1", port=0, verbose=False), ""
    from page4d_viewer.viewer.server.scene_key import open_keyed_server

    return open_keyed_server()


def _start_proxy(viser_port: int, key: str) -> tuple[HttpServer, str]:
    """The app's one-port server relaying session "bench" to this Viser server."""
    import fastapi

    from page4d_viewer.viewer.server.proxy import (
        MAIN_VIEW,
        HttpServer,
        ScenePolicy,
        SceneProxy,
        SceneUpstream,
    )

    upstream = SceneUpstream(port=viser_port, key=key)

    def lookup(session: str, _user: str | None, view: str) -> SceneUpstream | None:
        return upstream if session == "bench" and view == MAIN_VIEW else None

    app = fastapi.FastAPI()
    proxy = SceneProxy(lookup, ScenePolicy(loopback=True, login_required=False))
    proxy.mount(app)
    http = HttpServer(app, "127.0.0.1", 0)
    http.start()
    return http, f"ws://127.0.0.1:{http.port}/scene/bench"


def slider_changes(recon: Reconstruction) -> None:
    """Print what one change of each scene slider sends, in "all" mode."""
    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    log = MessageLog(server)
    scene = SceneView(server)
    stride = scene.state().points.downsample
    changes: list[tuple[str, Any]] = [
        ("confidence 25 -> 50 %", lambda: scene.points.set_confidence_percentile(50)),
        ("confidence 50 -> 25 %", lambda: scene.points.set_confidence_percentile(25)),
        ("source points -> depth_masked", lambda: scene.points.set_point_source("depth_masked")),
        ("source depth_masked -> points", lambda: scene.points.set_point_source("points")),
        ("downsampling stride +1", lambda: scene.points.set_downsample(stride + 1)),
        ("downsampling stride back", lambda: scene.points.set_downsample(stride)),
        ("mask threshold 0.5 -> 0.3", lambda: scene.set_mask_overlay(0.5, 0.3)),
        ("mask opacity 0.5 -> 0.8", lambda: scene.set_mask_overlay(0.8, 0.3)),
    ]
    rows = []
    try:
        scene.show(recon)
        scene.wait_until_sent()
        stride = scene.state().points.downsample
        scene.points.set_display("all")
        for name, change in changes:
            log.reset()
            started = time.perf_counter()
            change()
            scene.wait_until_sent()
            elapsed = time.perf_counter() - started
            clouds = log.count["PointCloudMessage"]
            rows.append((name, clouds, log.array_bytes, sum(log.count.values()), elapsed))
    finally:
        scene.close()
        server.stop()
    print(f"{recon.num_frames} frames of {recon.image_hw[1]}x{recon.image_hw[0]}, all shown")
    print("| change | point clouds sent | array bytes | messages | time |")
    print("|---|---|---|---|---|")
    for name, clouds, size, messages, elapsed in rows:
        print(f"| {name} | {clouds} | {size / 1e6:.2f} MB | {messages} | {elapsed * 1e3:.0f} ms |")


def _time(step: Any, repeats: int) -> float:
    started = time.perf_counter()
    for i in range(repeats):
        step(i)
    return (time.perf_counter() - started) / repeats


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def _counts(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{name.replace('Message', '')} x{n}" for name, n in counter.most_common())


if __name__ == "__main__":
    main()
