"""`page4d-viewer app` and `view`: one process serving the Gradio panel and the Viser scene.

`app` loads a model (the shipped default or `--checkpoint`) and runs clips; `view RESULT.npz`
opens a saved result with no model at all. Both bind to 127.0.0.1 unless `--host` says
otherwise: the Gradio panel on `--port` (7860), the Viser scene on `--viser-port` (8080),
embedded in the panel.

The app *receives* its model side (a `ModelBackend`, or None for `view`): the command line
(`cli/app.py`) builds it, so nothing here imports the network or torch.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from page4d_viewer.errors import Page4DError
from page4d_viewer.settings import assets_dir

if TYPE_CHECKING:
    import gradio as gr
    import viser

    from page4d_viewer.viewer.controller import ModelBackend, ViewerController
    from page4d_viewer.viewer.scene import SceneView

logger = logging.getLogger(__name__)


@dataclass
class AppConfig:
    """Everything the command line sets.

    Attributes:
        host: Interface both servers bind to; 127.0.0.1 keeps them private to this machine.
        port: Gradio panel port.
        viser_port: Viser scene port (the next free one is taken if it is busy).
        runs_dir: Where every finished run is saved.
        data_roots: Folders a path typed in the panel may point into.
        device: Device preselected in the panel ("auto", "cpu", "cuda", ...).
        precision: Precision preselected in the panel ("auto", "fp32", "bf16", "fp16").
        clip: A clip to run as soon as the app is up.
        result: A saved result to show at start.
        index: A batch folder (or its index.sqlite) to list in the Dataset tab at start.
        max_points: Point budget of the scene; larger clips are downsampled to fit.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    viser_port: int = 8080
    runs_dir: Path = Path("runs")
    data_roots: list[Path] = field(default_factory=list)
    device: str = "auto"
    precision: str = "auto"
    clip: str | None = None
    result: str | None = None
    index: str | None = None
    max_points: int = 4_000_000


class ViewerApp:
    """The running app: a Viser server with its scene, and the Gradio panel driving it.

    Tests drive it in-process: `start()`, then read `scene.state()` and `controller`.

    Args:
        config: The command line's settings.
        backend: The model side (`inference.jobs.PredictorBackend` in the app); None for a
            view-only app, which cannot run clips.
    """

    def __init__(self, config: AppConfig, backend: ModelBackend | None = None) -> None:
        self.config = config
        self.backend = backend
        # Set by start(); None before it.
        self.server: viser.ViserServer | None = None
        self.scene: SceneView | None = None
        self.controller: ViewerController | None = None
        self.demo: gr.Blocks | None = None
        self.url = ""
        self.viser_url = ""

    def start(self) -> None:
        """Start both servers (returns once they listen); open `config.result` and list
        `config.index` if given.

        Raises:
            Page4DError: the result file or the index cannot be read.
        """
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        import viser

        from page4d_viewer.viewer.controller import ViewerController, find_samples
        from page4d_viewer.viewer.dataset import index_file
        from page4d_viewer.viewer.panel import PANEL_CSS, build_panel
        from page4d_viewer.viewer.paths import DataRoots
        from page4d_viewer.viewer.runs import RunStore
        from page4d_viewer.viewer.scene import SceneView

        config = self.config
        index = str(index_file(config.index)) if config.index else None
        server = viser.ViserServer(host=config.host, port=config.viser_port, verbose=False)
        self.server = server
        self.scene = SceneView(server, max_points=config.max_points)
        roots = config.data_roots or [Path.cwd(), assets_dir()]
        store = RunStore(config.runs_dir)
        controller = ViewerController(
            self.scene, store, DataRoots(roots), self.backend, find_samples()
        )
        self.controller = controller
        if config.result:
            controller.open_result(config.result)
        viser_port = server.get_port()
        demo = build_panel(
            controller,
            viser_port=viser_port,
            device=config.device,
            precision=config.precision,
            index=index,
        )
        self.demo = demo
        store.root.mkdir(parents=True, exist_ok=True)
        _app, local_url, _share = demo.launch(
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
        if self.demo is None:
            raise Page4DError("the app is not started")
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
            if self.backend is None or self.controller is None:
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


# ------------------------------------------------------------------------------ command line


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
