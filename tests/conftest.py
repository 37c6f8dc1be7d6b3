"""Shared test fixtures: where the reference data lives, skips when it is absent, the one
builder of test Reconstructions, `wait_for`, and the browser tests' running app, Chromium,
pages and page sessions.

`wait_for`, `wait_for_page`, `running_app`, `viewing_app`, `open_panel`, `png_header` and
`pose_and_mask_tabs` are plain functions (`from conftest import wait_for`): module-level helpers
and fixtures call them too.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pytest

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("PAGE4D_SHARED", REPO_ROOT.parent / "shared"))
PARITY_FIXTURE = SHARED_DIR / "reference" / "page4d_tiny_parity.safetensors"
FULL_MANIFEST = SHARED_DIR / "reference" / "page4d_full_state_dict_manifest.json"
REAL_CLIP = SHARED_DIR / "realclips" / "lady-running.mp4"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def wait_for(
    condition: Callable[[], object], timeout: float = 120.0, what: str = "", *, page=None
) -> None:
    """Poll `condition` until it is true; AssertionError naming `what` after `timeout` seconds.

    For state that another thread changes (a server-side session, a scene, a run). With a
    Playwright `page`, the wait is `page.wait_for_timeout`, so the page's events (its routes,
    its requests) are served meanwhile: a sync Playwright page does nothing while Python sleeps.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            report = "" if page is None else f"; {page_report(page)}"
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what or condition}{report}"
            )
        if page is None:
            time.sleep(0.05)
        else:
            page.wait_for_timeout(100)


# What a page says of itself when a wait on it fails: Gradio's timers tick only while
# `document.visibilityState` is "visible".
_PAGE_REPORT_JS = """() => ({visibility: document.visibilityState, focus: document.hasFocus(),
  errors: Array.from(document.querySelectorAll('.toast-body, .error')).map(e => e.innerText)})"""


def _busy_threads() -> list[str]:
    """Each thread that is inside the project's code now, with its innermost frames: a
    handler that never returns holds the page's later events back."""
    import traceback

    report = []
    for thread_id, frame in sys._current_frames().items():
        stack = traceback.extract_stack(frame)
        if any("page4d_viewer" in entry.filename for entry in stack):
            inner = " < ".join(f"{Path(e.filename).name}:{e.lineno} {e.name}" for e in stack[-6:])
            report.append(f"thread {thread_id}: {inner}")
    return report


def session_report(page, app) -> str:
    """Whether the page's tab still has an open session, and the page is attached to it."""
    tab = page.evaluate("() => sessionStorage.getItem('page4d-tab')")
    session = app.sessions.get(tab)
    attached = app.sessions.key_of(getattr(page, "session_hash", "")) == tab
    return f"tab {tab}: session {'open' if session else 'closed'}, page attached {attached}"


def page_report(page, app=None) -> str:
    """What a failed wait on a page should say: the page's visibility and errors, its
    requests that failed, the server's threads busy in the project's code, and with the
    `app`, whether the page still has its session."""
    try:
        seen = page.evaluate(_PAGE_REPORT_JS)
        if app is not None:
            seen = f"{seen}; {session_report(page, app)}"
    except Exception as error:  # the page itself may be what broke
        seen = f"page unreadable: {error}"
    failed = getattr(page, "failed_requests", [])[-5:]
    return f"page {seen}; failed requests {failed}; busy threads {_busy_threads()}"


def wait_for_page(page, script: str, what: str, arg: object = None, app=None) -> None:
    """`page.wait_for_function(script, arg=arg)`; on timeout an AssertionError naming `what`,
    with `page_report`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, arg=arg)
    except PlaywrightTimeout:
        raise AssertionError(f"timed out waiting for {what}; {page_report(page, app)}") from None


def pose_and_mask_tabs():
    """One page's Pose comparison and Mask and depth tabs, without a Gradio page: their
    widgets are names (the tabs key their updates by widget), but for the trajectory's
    gr.Plot, which encodes the figure. For the tests and benchmark of `viewer.plot_cache`."""
    import gradio as gr

    from page4d_viewer.viewer.frame_plots import FramePlot
    from page4d_viewer.viewer.tabs.mask import MaskTab, MaskWidgets
    from page4d_viewer.viewer.tabs.poses import PoseComparisonTab, PoseWidgets

    named: Any = str  # a widget stand-in: its name
    poses, mask = PoseComparisonTab(), MaskTab()
    d, g, s = (FramePlot(named(n), named(n + "_axis"), n) for n in ("d", "g", "s"))
    poses.widgets = PoseWidgets(gr.Plot(), d, g, named("metrics"))
    names = ("opacity", "threshold", "mask_overlay", "overlay_image", "depth_image")
    names += ("confidence_image", "ground_truth_depth_image", "ground_truth_mask_image")
    mask.widgets = MaskWidgets(**{n: named(n) for n in names}, share=s)
    return poses, mask


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; its pixel data is a few bytes (a
    decompression bomb's shape, for the image-size guards)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the shared reference data sits beside the repository in CI")
    return path


@pytest.fixture(scope="session")
def parity_fixture_path() -> Path:
    """The authors' outputs on the tiny configuration (float64 safetensors)."""
    return _require(PARITY_FIXTURE)


@pytest.fixture(scope="session")
def full_manifest_path() -> Path:
    """Key names and shapes of the full-size released checkpoints (JSON)."""
    return _require(FULL_MANIFEST)


@pytest.fixture(scope="session")
def real_clip_path() -> Path:
    """A real 65-frame 854x480 MPEG-4 video of a running person."""
    return _require(REAL_CLIP)


def _imports_among(modules: tuple[str, ...], among: tuple[str, ...]) -> list[str]:
    """The modules of packages `among` that a fresh interpreter loads to import `modules`."""
    code = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in among)]


@pytest.fixture
def imports_among():
    """`imports_among(modules, among)`: which modules of the packages `among` get imported.

    Runs in a subprocess, so what this test session already imported does not count.
    """
    return _imports_among


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and the CI machine has two shared cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _make_reconstruction(
    frames: int = 3,
    height: int = 28,
    width: int = 42,
    *,
    seed: int = 0,
    with_mask: bool = True,
    variants: tuple[str, ...] = ("masked", "unmasked"),
    ground_truth: bool = False,
    **fields,
):
    """The one builder of test Reconstructions.

    By default a small self-consistent result: points are random depth unprojected with the
    "masked" cameras of a camera orbiting a little while sliding along x; "unmasked" poses
    are off by 0.01 in every pose-encoding entry ("geometry_masked" 0.02 and
    "geometry_unmasked" 0.03, when asked for). `variants` picks the predicted cameras kept,
    `ground_truth` adds "ground_truth" cameras (the masked ones), depth (twice the predicted)
    and a dynamic mask (depth > 2). Any Reconstruction field in `fields` replaces the
    default one, so a purpose-built scene passes its own images, depth, cameras, mask,
    attention... (the defaults are then still drawn, so the seeded arrays never change).
    """
    from page4d_viewer import geometry
    from page4d_viewer.result.reconstruction import (
        Cameras,
        Metadata,
        Preprocessing,
        Reconstruction,
    )

    rng = np.random.default_rng(seed)
    angles = np.linspace(0.0, 0.2, frames)
    quaternion = np.stack(
        [np.zeros(frames), np.sin(angles / 2), np.zeros(frames), np.cos(angles / 2)], -1
    )
    translation = np.stack([np.linspace(0, -0.5, frames), np.zeros(frames), np.zeros(frames)], -1)
    fov = np.full((frames, 2), 1.0)
    pose_enc = np.concatenate([translation, quaternion, fov], -1)
    masked = Cameras.from_pose_encoding(pose_enc, (height, width))
    depth = rng.uniform(1.0, 4.0, size=(frames, height, width)).astype(np.float32)
    points = geometry.depth_to_world_points(depth, masked.extrinsics, masked.intrinsics)
    offsets = {"masked": 0.0, "unmasked": 0.01, "geometry_masked": 0.02, "geometry_unmasked": 0.03}
    cameras = {
        name: Cameras.from_pose_encoding(pose_enc + offset, (height, width))
        for name, offset in offsets.items()
        if name in variants
    }
    defaults = dict(
        images=rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8),
        depth=depth,
        depth_conf=rng.uniform(1.0, 5.0, size=(frames, height, width)),
        points=points,
        points_conf=rng.uniform(1.0, 5.0, size=(frames, height, width)),
        cameras=cameras,
        mask_score=rng.uniform(-0.5, 0.5, size=(frames, height // 14, width // 14))
        if with_mask
        else None,
        metadata=Metadata(
            checkpoint_name="tiny.safetensors",
            checkpoint_hash="abc123",
            model_variant="tiny",
            mask_strength=64.0,
            mask_available=with_mask,
            source="synthetic:orbit",
            frame_indices=list(range(0, 2 * frames, 2)),
            timestamps=[i / 15 for i in range(frames)],
            preprocessing=Preprocessing("crop", 42, {"scale": 0.5, "offset_xy": [3, 0]}),
            timings={"model": 1.5},
        ),
    )
    if ground_truth:
        cameras["ground_truth"] = masked
        defaults.update(gt_depth=depth * 2, gt_dynamic_mask=depth > 2)
    return Reconstruction(**(defaults | fields))


@pytest.fixture(scope="session")
def make_reconstruction():
    """`make_reconstruction(frames=3, height=28, width=42, *, seed=0, with_mask=True,
    variants=("masked", "unmasked"), ground_truth=False, **fields)`: a test Reconstruction;
    see `_make_reconstruction`."""
    return _make_reconstruction


class SlidingPlane(NamedTuple):
    """A plane 2 units in front of a camera sliding along x (-0.1 a frame), its right patch
    column dynamic. S frames of H x W pixels, 14-pixel patches."""

    intrinsics: np.ndarray  # (S, 3, 3): focal 40, principal point at the centre
    extrinsics: np.ndarray  # (S, 3, 4) world-to-camera: the sliding camera
    drifting: np.ndarray  # (S, 3, 4): the same, drifting along y (0.05 a frame): a worse path
    depth: np.ndarray  # (S, H, W) float32, all 2.0
    points: np.ndarray  # (S, H, W, 3) the depth's world points
    mask_score: np.ndarray  # (S, H/14, W/14) float32: 0.4 static, the right column -0.4 (0.9)

    def reconstruction(self, *, same_paths: bool = False, **fields):
        """`make_reconstruction` on this plane: its depth, points and mask scores, "masked"
        cameras on the sliding path and "unmasked" on the drifting one (`same_paths`: the
        sliding one too), confidences of 3, empty Metadata; `fields` replace any field."""
        from page4d_viewer.result.reconstruction import Cameras, Metadata

        unmasked = self.extrinsics if same_paths else self.drifting
        defaults = dict(
            depth=self.depth,
            depth_conf=np.full(self.depth.shape, 3.0, np.float32),
            points=self.points,
            points_conf=np.full(self.depth.shape, 3.0, np.float32),
            cameras={
                "masked": Cameras(self.extrinsics, self.intrinsics),
                "unmasked": Cameras(unmasked, self.intrinsics),
            },
            mask_score=self.mask_score,
            metadata=Metadata(),
        )
        return _make_reconstruction(*self.depth.shape, **(defaults | fields))


def _sliding_plane(frames: int, height: int, width: int) -> SlidingPlane:
    from page4d_viewer import geometry

    K = np.array([[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]])
    intrinsics = np.repeat(K[None], frames, axis=0)
    extrinsics = np.zeros((frames, 3, 4))
    extrinsics[:, :, :3] = np.eye(3)
    extrinsics[:, 0, 3] = -0.1 * np.arange(frames)
    drifting = extrinsics.copy()
    drifting[:, 1, 3] = 0.05 * np.arange(frames)
    depth = np.full((frames, height, width), 2.0, dtype=np.float32)
    mask = np.full((frames, height // 14, width // 14), 0.4, dtype=np.float32)
    mask[:, :, -1] = -0.4  # dynamic probability 0.9
    points = geometry.depth_to_world_points(depth, extrinsics, intrinsics)
    return SlidingPlane(intrinsics, extrinsics, drifting, depth, points, mask)


@pytest.fixture(scope="session")
def sliding_plane():
    """`sliding_plane(frames, height, width) -> SlidingPlane`: the hand-made scene's arrays
    (cameras, depth, points, mask scores) and its `.reconstruction(**fields)`."""
    return _sliding_plane


INSPECTED_FRAMES, INSPECTED_HEIGHT, INSPECTED_WIDTH = 3, 28, 42  # 2 x 3 patches of 14 pixels


def _make_inspected(same_variants: bool = False):
    """A small Reconstruction with attention (layers 4 and 9, query frames 0 and 2) and
    feature PCA: a plane at depth 2 seen by a camera sliding along x; the right patch column
    is dynamic. Query q's masked camera token in layer row l attends most to patch
    (l, q // 2) of key frame q; `same_variants` makes "unmasked" equal to "masked"."""
    from page4d_viewer.result.inspection import Inside

    frames, height, width = INSPECTED_FRAMES, INSPECTED_HEIGHT, INSPECTED_WIDTH
    grid = (height // 14, width // 14)
    rng = np.random.default_rng(0)
    plane = _sliding_plane(frames, height, width)
    queries = [0, 2]
    weights = np.full((2, len(queries), frames, grid[0] * grid[1] + 1), 1.0)
    for layer in range(2):
        for column, query in enumerate(queries):
            weights[layer, column, query, 1 + layer * grid[1] + query // 2] = 20.0
    weights /= weights.sum(axis=(2, 3), keepdims=True)
    masked = weights[..., 1:].reshape(2, len(queries), frames, *grid)
    unmasked = masked.copy() if same_variants else np.roll(masked, 1, axis=-1)
    special = weights[..., 0]
    return plane.reconstruction(
        same_paths=True,
        images=rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8),
        points_conf=np.full((frames, height, width), 5.0, np.float32),
        inside=Inside(
            attention={"masked": masked, "unmasked": unmasked},
            attention_special={"masked": special, "unmasked": special},
            attention_layers=(4, 9),
            attention_query_frames=tuple(queries),
            feature_pca=rng.integers(0, 256, (2, frames, *grid, 3), dtype=np.uint8),
            feature_layers=(4, 9),
        ),
    )


@pytest.fixture(scope="session")
def inspected_recon():
    """`inspected_recon(same_variants=False)`: the small Reconstruction with attention, built
    by `make_reconstruction` with its own scene and attention fields."""
    return _make_inspected


# ------------------------------------------------------------------------------ browser tests

CHROMIUM = Path("/usr/bin/chromium")
# Headless Debian Chromium on a shared machine. The Viser canvas (WebGL) renders in software
# through SwiftShader only where a test needs its pixels; the others keep the GPU path off.
_CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
_SOFTWARE_WEBGL = ("--use-angle=swiftshader", "--enable-unsafe-swiftshader")


@contextlib.contextmanager
def _launch_chromium(webgl: bool = False) -> Iterator:
    """A Playwright browser on Debian's Chromium (skips the test when it is not installed)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = [*_CHROMIUM_ARGS, *(_SOFTWARE_WEBGL if webgl else ("--disable-gpu",))]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            yield browser
        finally:
            browser.close()


BROWSER_TIMEOUT_MS = 120_000  # two shared CPU cores: a page's answer can take a while


@contextlib.contextmanager
def running_app(backend=None, *, clock: Callable[[], float] = time.monotonic, **config):
    """A started ViewerApp with `AppConfig(**config)` on port 0, closed on exit.

    The app binds a free port itself and reports it (`app.port`, `app.url`): no port is
    picked here and bound later, which another process could take in between.
    """
    from page4d_viewer.viewer.server.app import AppConfig, ViewerApp

    app = ViewerApp(AppConfig(port=0, **config), backend, clock=clock)
    app.start()
    try:
        yield app
    finally:
        app.close()


def viewing_app(recon, folder: Path, name: str = "result.npz", **config):
    """`with viewing_app(recon, folder, name, **config) as app:` a view-only `running_app`
    (no model) showing `recon` at start.

    The result is saved as folder/name; `folder` is the data root, runs go to folder/runs,
    and a scene holds at most 20,000 points; `config` adds AppConfig fields or replaces these.
    """
    result = recon.save(folder / name)
    defaults = dict(
        runs_dir=folder / "runs", data_roots=[folder], result=str(result), max_points=20_000
    )
    return running_app(**(defaults | config))


def open_panel(
    where,
    url: str,
    *,
    height: int = 1000,
    timeout_ms: int = BROWSER_TIMEOUT_MS,
    load_scene: bool = False,
    ready: str | None = "#scene-frame iframe",
):
    """A new page on the app's panel at `url`, loaded.

    `where` is a Playwright Browser (the page gets its own context, 1400 x `height` px) or a
    BrowserContext (a tab beside its others, the context's viewport). Without `load_scene`
    the embedded 3-D scene's requests are refused (no software WebGL on the shared CPU cores;
    the tests read the scene's state on the server). `ready`: a selector the panel shows once
    loaded (default: the scene's iframe, added when the page's session has opened).
    """
    from playwright.sync_api import Browser

    if isinstance(where, Browser):
        page = where.new_page(viewport={"width": 1400, "height": height})
    else:
        page = where.new_page()
    page.set_default_timeout(timeout_ms)
    page.failed_requests = []  # for `page_report`

    def note_failure(request) -> None:
        # Left out: the scene's requests (refused on purpose below), and Gradio's event stream,
        # which its page aborts each time the server says it is done.
        if "/scene/" not in request.url and "/queue/data" not in request.url:
            page.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    page.on("requestfailed", note_failure)

    def note_heartbeat(request) -> None:  # Gradio's session hash of the page
        if "/gradio_api/heartbeat/" in request.url:
            page.session_hash = request.url.split("?")[0].rstrip("/").split("/")[-1]

    page.on("request", note_heartbeat)
    if not load_scene:
        page.route(f"{url}scene/**", lambda route: route.abort())
    page.goto(url)
    if ready is not None:
        page.locator(ready).wait_for(state="attached")
    return page


@contextlib.contextmanager
def _panel_page(
    url: str, height: int = 1400, timeout_ms: int = BROWSER_TIMEOUT_MS, ready: str | None = None
) -> Iterator:
    """A page of its own Chromium on the app's panel at `url` (1400 px wide), with the 3-D
    scene's requests refused (no WebGL needed): for tests of the panel alone."""
    with _launch_chromium() as browser:
        yield open_panel(browser, url, height=height, timeout_ms=timeout_ms, ready=ready)


@pytest.fixture(scope="session")
def panel_page():
    """`with panel_page(url, height=1400, timeout_ms=120_000, ready=None) as page:` see
    `_panel_page`."""
    return _panel_page


@pytest.fixture(scope="session")
def launch_chromium():
    """`with launch_chromium(webgl=False) as browser:` a Chromium driven by Playwright."""
    return _launch_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium (no WebGL) for the tests of a module."""
    with _launch_chromium() as launched:
        yield launched


def _page_session(app, page):
    """The page's own session (scene + controller), named by its scene iframe's address."""
    page.locator("#scene-frame iframe").wait_for(state="attached")
    src = page.locator("#scene-frame").get_attribute("data-src")
    session = app.sessions.get(src.strip("/").split("/")[-1])
    assert session is not None, f"no open session for the scene at {src}"
    return session


@pytest.fixture(scope="session")
def page_session():
    """`page_session(app, page)`: the app's session that a browser page shows."""
    return _page_session


# ------------------------------------------------------------------------------ small networks

# A few-layer layout (every stage, the mask head and a tracker) so each pass takes milliseconds.
FEW_LAYERS: dict = {
    "img_size": 56,
    "embed_dim": 16,
    "depth": 6,
    "num_heads": 2,
    "encoder_depth": 1,
    "encoder_heads": 2,
    "camera_heads": 2,
    "camera_trunk_depth": 1,
    "camera_iterations": 3,
    "dpt_features": 8,
    "dpt_out_channels": (4, 8, 8, 8),
    "dpt_layers": (1, 2, 4, 5),
    "mask_after_layer": 1,
    "masked_layers": (2, 3, 4),
    "mask_head_hidden": 4,
    "track_features": 8,
    "track_hidden": 16,
    "track_iterations": 2,
    "track_corr_levels": 2,
    "track_corr_radius": 1,
    "track_depth": 1,
    "track_heads": 2,
    "track_virtual_tracks": 4,
}


def _few_layer_model(seed: int = 0, *, perturb_mask_head: bool = False, **overrides: object):
    """A seeded float64 `FEW_LAYERS` network (overrides: ModelConfig fields) in eval mode.

    Layer scales and special tokens (and, with `perturb_mask_head`, the mask head) are drawn
    larger than their init, so every stage visibly matters and attention is far from uniform.
    """
    import torch

    from page4d_viewer.model import ModelConfig, Page4D

    torch.manual_seed(seed)
    model = Page4D(ModelConfig(**{**FEW_LAYERS, **overrides})).double().eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            mask_head = perturb_mask_head and "spatial_mask_head" in name
            if name.endswith("gamma") or "token" in name or mask_head:
                parameter.normal_(0.0, 0.5)
    return model


@pytest.fixture(scope="session")
def few_layer_config() -> dict:
    """The `FEW_LAYERS` ModelConfig fields (a copy)."""
    return dict(FEW_LAYERS)


@pytest.fixture(scope="session")
def few_layer_model():
    """`few_layer_model(seed=0, perturb_mask_head=False, **config)`: see `_few_layer_model`."""
    return _few_layer_model


def _clip_images(frames: int = 3, height: int = 28, width: int = 42, seed: int = 1):
    """(S, 3, H, W) float64 images in [0, 1], seeded."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(frames, 3, height, width, generator=generator, dtype=torch.float64)


@pytest.fixture(scope="session")
def clip_images():
    """`clip_images(frames=3, height=28, width=42, seed=1)`: seeded float64 model input."""
    return _clip_images


@pytest.fixture
def scene():
    """A SceneView on its own Viser server on a free port (closed after the test). Modules
    that watch the messages it sends (test_viewer_scene.py) define their own."""
    import viser

    from page4d_viewer.viewer.scene import SceneView

    server = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    view = SceneView(server)
    yield view
    view.close()
    server.stop()


def _sliding_square_clip(folder: Path) -> Path:
    """Write `folder/walk.mp4`: 4 frames of 64 x 48, a white square sliding over a red ramp."""
    import imageio.v3 as iio

    video = np.zeros((4, 48, 64, 3), np.uint8)
    video[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, None, :]
    for index in range(4):
        video[index, 12:24, 4 + 6 * index : 16 + 6 * index] = 255
    path = folder / "walk.mp4"
    iio.imwrite(path, video, fps=8, codec="libx264")
    return path


@pytest.fixture(scope="session")
def sliding_square_clip():
    """`sliding_square_clip(folder) -> folder/walk.mp4`: see `_sliding_square_clip`."""
    return _sliding_square_clip


def _sure_tracker(model):
    """A test stand-in: the model's tracker calls every point visible (random weights say
    ~0.1), so its tracks get drawn. Changes `model` in place and returns it."""
    import torch

    with torch.no_grad():
        layer = model.track_head.tracker.vis_predictor[0]
        layer.weight.zero_()
        layer.bias.fill_(8.0)
    return model


@pytest.fixture(scope="session")
def sure_tracker():
    """`sure_tracker(model) -> model`: see `_sure_tracker`."""
    return _sure_tracker


def browser_viewpoint(server):
    """The viewpoint of a Viser server's one browser, once it has reported its camera (None
    before, or with no browser or several)."""
    from page4d_viewer.viewer.scene.split import Viewpoint

    clients = list(server.get_clients().values())
    if len(clients) != 1:
        return None
    try:
        return Viewpoint.of(clients[0].camera)
    except AssertionError:  # Viser: no camera reported yet
        return None


def drag_canvas(page, canvas, dx: float, dy: float, steps: int = 5) -> None:
    """Drag from the middle of `canvas` (a Playwright locator in `page`'s viewport) by
    (dx, dy) pixels in `steps` mouse moves: an orbit of a Viser scene's view."""
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=steps)
    page.mouse.up()


def drag_and_see_the_other_side_follow(page, canvas, servers, before, dx: float, dy: float) -> None:
    """Orbit the left scene by dragging its `canvas` (a Playwright locator in `page`'s
    viewport) by (dx, dy) pixels, then wait until the right server's browser sits at the left
    one's new viewpoint (`before`: the right side's viewpoint before the drag)."""
    import numpy as np

    drag_canvas(page, canvas, dx, dy, steps=12)

    def followed() -> bool:
        moved, follower = (browser_viewpoint(server) for server in servers)
        return (
            moved is not None
            and follower is not None
            and not moved.near(before)
            and np.allclose(follower.position, moved.position, atol=1e-3)
            and np.allclose(follower.look_at, moved.look_at, atol=1e-3)
        )

    wait_for(followed, 60, "the right view to follow the left one", page=page)


# ------------------------------------------------------------------------------ training runs


def few_layer_training(out_dir: Path, **changes: object):
    """A TrainConfig for a quick CPU run of the `FEW_LAYERS` network: two steps on one thread,
    from a pool of two 4-frame 28 x 42 synthetic clips taken 2 or 3 frames at a time (stride 1).
    `changes`: other TrainConfig fields (the preset that the layers override, the losses...)."""
    from page4d_viewer.training.train import TrainConfig

    values: dict = dict(
        out_dir=out_dir,
        model_overrides=dict(FEW_LAYERS),
        image_hw=(28, 42),
        max_steps=2,
        source_frames=4,
        min_frames=2,
        max_frames=3,
        max_stride=1,
        pool_size=2,
        threads=1,
    )
    return TrainConfig(**{**values, **changes})


# ------------------------------------------------------------------ a scene stand-in


class FakeScene:
    """The Viser scene as a controller sees it, without a server: records what it is asked
    (the results shown, the frame, the mask overlay, the loading notices)."""

    def __init__(self) -> None:
        self.shown: list[Reconstruction] = []
        self._frame = 0
        self.opacity, self.threshold = 0.5, 0.5
        self.percentile = 25.0
        # (message, results shown until then) per set_loading; None for stop_loading
        self.loading: list[tuple[str | None, int]] = []

    @property
    def num_frames(self) -> int:
        return self.shown[-1].num_frames if self.shown else 0

    @property
    def frame(self) -> int:
        return self._frame

    def show(self, recon, progress=None) -> None:
        self.shown.append(recon)
        self._frame = 0

    def set_frame(self, index: int) -> None:
        self._frame = index

    def set_loading(self, message: str) -> None:
        self.loading.append((message, len(self.shown)))

    def stop_loading(self) -> None:
        self.loading.append((None, len(self.shown)))

    def set_mask_overlay(self, opacity: float, threshold: float) -> None:
        from page4d_viewer.errors import Page4DError

        if not (0 <= opacity <= 1 and 0 <= threshold <= 1):
            raise Page4DError("out of range")
        self.opacity, self.threshold = opacity, round(threshold * 20) / 20

    def state(self):
        return SimpleNamespace(
            frame=self._frame,
            num_frames=self.num_frames,
            playing=False,
            fps=10.0,
            loop=True,
            mask=SimpleNamespace(
                opacity=self.opacity, threshold=self.threshold, overlay="continuous"
            ),
            points=SimpleNamespace(confidence_percentile=self.percentile),
        )
