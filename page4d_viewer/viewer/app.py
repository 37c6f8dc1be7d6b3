"""`page4d-viewer app` and `view`: one process serving the Gradio panel and the Viser scene.

`app` loads a model (the shipped default or `--checkpoint`) and runs clips; `view RESULT.npz`
opens a saved result with no model at all. Both bind to 127.0.0.1 unless `--host` says
otherwise: the Gradio panel on `--port` (7860), the Viser scene on `--viser-port` (8080),
embedded in the panel.

The model side is wired here and only here: `PredictorBackend` wraps
`page4d_viewer.predictor` so the panel never imports the network.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from page4d_viewer.errors import Page4DError
from page4d_viewer.reconstruction import Reconstruction

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "default model"
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"


class OutOfMemoryError(Page4DError):
    """The accelerator ran out of memory during a run."""


@dataclass
class AppConfig:
    """Everything the command line sets.

    Attributes:
        host: Interface both servers bind to; 127.0.0.1 keeps them private to this machine.
        port: Gradio panel port.
        viser_port: Viser scene port (the next free one is taken if it is busy).
        runs_dir: Where every finished run is saved.
        data_roots: Folders a path typed in the panel may point into.
        checkpoints: Checkpoint files offered besides the default model (the first is
            selected); empty offers the default model only.
        with_model: False for `view`: no model, runs disabled.
        device: Device preselected in the panel ("auto", "cpu", "cuda", ...).
        precision: Precision preselected in the panel ("auto", "fp32", "bf16", "fp16").
        clip: A clip to run as soon as the app is up.
        result: A saved result to show at start.
        max_points: Point budget of the scene; larger clips are downsampled to fit.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    viser_port: int = 8080
    runs_dir: Path = Path("runs")
    data_roots: list[Path] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    with_model: bool = True
    device: str = "auto"
    precision: str = "auto"
    clip: str | None = None
    result: str | None = None
    max_points: int = 4_000_000


class PredictorBackend:
    """The panel's model side: checkpoints by name, one loaded at a time, runs via predict().

    Args:
        checkpoints: Checkpoint paths offered besides the shipped default model.
    """

    def __init__(self, checkpoints: Sequence[str] = ()) -> None:
        self._paths: dict[str, str | None] = {}
        for path in checkpoints:
            self._paths[_unique_name(Path(path).name or str(path), self._paths)] = str(path)
        self._paths[DEFAULT_MODEL] = None
        self._lock = threading.Lock()
        self._loaded: tuple[str, Any, Any] | None = None  # (name, model, ModelInfo)

    def checkpoint_names(self) -> list[str]:
        """Names for the drop-down: the command line's checkpoints first, then the default."""
        return list(self._paths)

    def default_mask_strength(self, checkpoint: str) -> float:
        """The checkpoint's own mask strength (64 for the mask release, 0 without a mask head).

        Loads the checkpoint (kept for the next run).
        """
        _model, info = self._load(checkpoint)
        return float(info.default_mask_strength)

    def run_model(self, source: Any, options: Any, progress: Any) -> Reconstruction:
        """Run `page4d_viewer.predictor.predict` with the panel's options.

        Raises:
            CheckpointError: the checkpoint cannot be read.
            OutOfMemoryError: the device ran out of memory (suggests fewer frames).
            Page4DError: bad source or options.
        """
        from page4d_viewer.predictor import predict

        model, info = self._load(options.checkpoint or DEFAULT_MODEL)
        try:
            return predict(
                source,
                model,
                mask_strength=options.mask_strength,
                mode=options.mode,
                device=None if options.device == "auto" else options.device,
                precision=None if options.precision == "auto" else options.precision,
                progress=progress,
                checkpoint_info=info,
                clip_options=options.sampling(),
            )
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            _release_accelerator_memory()
            frames = options.max_frames or "all"
            raise OutOfMemoryError(
                f"the device ran out of memory running {frames} frames; "
                "try fewer frames (Max frames, Stride) or precision bf16"
            ) from error

    def _load(self, name: str) -> tuple[Any, Any]:
        from page4d_viewer.predictor import load_model

        if name not in self._paths:
            raise Page4DError(f"unknown checkpoint {name!r}; choose one of the list")
        with self._lock:
            if self._loaded is not None and self._loaded[0] == name:
                return self._loaded[1], self._loaded[2]
            # Drop the previous model first: two full-size models may not fit at once.
            self._loaded = None
            _release_accelerator_memory()
            model, info = load_model(self._paths[name])
            self._loaded = (name, model, info)
            logger.info("loaded checkpoint %s (%s)", name, info.variant)
            return model, info


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    candidate, count = name, 1
    while candidate in taken or candidate == DEFAULT_MODEL:
        count += 1
        candidate = f"{name} ({count})"
    return candidate


def _is_out_of_memory(error: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError is a RuntimeError; MPS and older CUDA builds only say so
    # in the message.
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def _release_accelerator_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ViewerApp:
    """The running app: a Viser server with its scene, and the Gradio panel driving it.

    Tests drive it in-process: `start()`, then read `scene.state()` and `controller`.

    Args:
        config: The command line's settings.
        backend: The model side; None for a view-only app. Defaults to a PredictorBackend
            over `config.checkpoints` when `config.with_model`.
    """

    def __init__(self, config: AppConfig, backend: Any | None = None) -> None:
        self.config = config
        if backend is None and config.with_model:
            backend = PredictorBackend(config.checkpoints)
        self.backend = backend
        self.server: Any = None
        self.scene: Any = None
        self.controller: Any = None
        self.demo: Any = None
        self.url = ""
        self.viser_url = ""

    def start(self) -> None:
        """Start both servers (returns once they listen) and open `config.result` if given.

        Raises:
            Page4DError: the result file cannot be read.
        """
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        import viser

        from page4d_viewer.viewer.controller import ViewerController, find_samples
        from page4d_viewer.viewer.panel import PANEL_CSS, build_panel
        from page4d_viewer.viewer.paths import DataRoots
        from page4d_viewer.viewer.runs import RunStore
        from page4d_viewer.viewer.scene import SceneView

        config = self.config
        self.server = viser.ViserServer(host=config.host, port=config.viser_port, verbose=False)
        self.scene = SceneView(self.server, max_points=config.max_points)
        roots = config.data_roots or [Path.cwd(), ASSETS_DIR]
        store = RunStore(config.runs_dir)
        self.controller = ViewerController(
            self.scene, store, DataRoots(roots), self.backend, find_samples(ASSETS_DIR)
        )
        if config.result:
            self.controller.open_result(config.result)
        viser_port = self.server.get_port()
        self.demo = build_panel(
            self.controller,
            viser_port=viser_port,
            device=config.device,
            precision=config.precision,
        )
        store.root.mkdir(parents=True, exist_ok=True)
        _app, local_url, _share = self.demo.launch(
            server_name=config.host,
            server_port=config.port,
            prevent_thread_lock=True,
            share=False,
            quiet=True,
            show_error=True,
            css=PANEL_CSS,
            allowed_paths=[str(store.root)],
        )
        self.url = local_url
        self.viser_url = f"http://{_display_host(config.host)}:{viser_port}/"
        logger.info("panel: %s  scene: %s", self.url, self.viser_url)
        if config.clip:
            threading.Thread(
                target=self._run_clip_at_start, args=(config.clip,), name="start-clip", daemon=True
            ).start()

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        self.demo.block_thread()

    def close(self) -> None:
        """Stop both servers and the scene's threads."""
        if self.demo is not None:
            self.demo.close()
        if self.scene is not None:
            self.scene.close()
        if self.server is not None:
            self.server.stop()
        if self.controller is not None:
            self.controller.close()

    def _run_clip_at_start(self, clip: str) -> None:
        from page4d_viewer.viewer.controller import RunOptions

        def log_progress(fraction: float, message: str) -> None:
            logger.debug("start clip: %3.0f%% %s", 100 * fraction, message)

        try:
            if self.backend is None:
                raise Page4DError("no model is loaded")
            checkpoint = self.backend.checkpoint_names()[0]
            options = RunOptions(
                checkpoint=checkpoint,
                device=self.config.device,
                precision=self.config.precision,
                mask_strength=self.backend.default_mask_strength(checkpoint),
            )
            shown = self.controller.run(clip, options, log_progress, session="startup")
        except Page4DError as error:
            logger.error("could not run %s: %s", clip, " ".join(str(error).split()))
            return
        logger.info("showing %s", shown.title)


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


# ------------------------------------------------------------------------------ command line


def configure_parser(parser: argparse.ArgumentParser, name: str) -> None:
    """Add the options of `app` (run clips) or `view` (open a result, no model)."""
    if name == "view":
        parser.add_argument("result", help="a saved result file (.npz) to open")
    else:
        # The app imports the controller anyway once it starts; only `app --help` pays earlier.
        from page4d_viewer.viewer.controller import DEFAULT_SAMPLE

        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="PATH",
            help="a PAGE-4D, VGGT or page4d_viewer checkpoint (repeat to offer several); "
            "the shipped default model is always offered",
        )
        parser.add_argument(
            "--clip",
            metavar="SOURCE",
            help=f"a clip to run as soon as it is up (default: the bundled {DEFAULT_SAMPLE} "
            "sample, unless --result is given)",
        )
        parser.add_argument(
            "--no-clip", action="store_true", help="start with an empty scene, running nothing"
        )
        parser.add_argument("--result", metavar="NPZ", help="a saved result to show at start")
        parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto")
        parser.add_argument(
            "--precision",
            default="auto",
            choices=["auto", "fp32", "bf16", "fp16"],
            help="model precision (auto: bf16 on recent GPUs, fp32 on the CPU)",
        )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 exposes the app)"
    )
    parser.add_argument("--port", type=int, default=7860, help="Gradio panel port")
    parser.add_argument("--viser-port", type=int, default=8080, help="Viser scene port")
    parser.add_argument(
        "--max-points",
        type=int,
        default=4_000_000,
        help="point budget of the scene; larger clips are downsampled to fit (weak GPUs: less)",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where finished runs are saved"
    )
    parser.add_argument(
        "--data-root",
        action="append",
        type=Path,
        default=[],
        metavar="FOLDER",
        help="a folder whose files the panel may open by path (repeatable; default: the "
        "working directory and the package's assets/)",
    )


def config_from_args(args: argparse.Namespace) -> AppConfig:
    """The AppConfig of parsed `app` or `view` arguments."""
    viewing = args.command == "view"
    return AppConfig(
        host=args.host,
        port=args.port,
        viser_port=args.viser_port,
        runs_dir=args.runs_dir,
        data_roots=list(args.data_root),
        checkpoints=[] if viewing else list(args.checkpoint),
        with_model=not viewing,
        device="auto" if viewing else args.device,
        precision="auto" if viewing else args.precision,
        clip=None if viewing else _clip_at_start(args),
        result=args.result,
        max_points=args.max_points,
    )


def _clip_at_start(args: argparse.Namespace) -> str | None:
    """The clip `app` runs once it is up: --clip, else the bundled sample (none with --result)."""
    if args.clip or args.no_clip or args.result:
        return args.clip
    from page4d_viewer.viewer.controller import find_samples

    # find_samples lists the default sample first.
    default = next(iter(find_samples(ASSETS_DIR).values()), None)
    return None if default is None else str(default)


def run(args: argparse.Namespace) -> int:
    """Start the app and serve until Ctrl-C; returns the exit code."""
    config = config_from_args(args)
    if config.result and not Path(config.result).is_file():
        raise Page4DError(f"no result file at {config.result}")
    app = ViewerApp(config)
    try:
        app.start()
        logger.info("open %s in a browser (Ctrl-C stops)", app.url)
        app.wait()
    finally:
        app.close()
    return 0
