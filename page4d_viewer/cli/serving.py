"""What `app` and `view` share: the server options, the AppConfig they make, and serving.

Torch-free: `view` (cli/view.py) replays a saved result with no model, so nothing here
imports inference; `app` (cli/app.py) adds the model side.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import rich

from page4d_viewer.errors import Page4DError
from page4d_viewer.run_contract import ModelBackend
from page4d_viewer.viewer.controller import find_samples
from page4d_viewer.viewer.runs import RunStore
from page4d_viewer.viewer.server.app import AppConfig, ViewerApp, check_exposure
from page4d_viewer.viewer.server.sessions import DEFAULT_MAX_SESSIONS

logger = logging.getLogger(__name__)

AUTH_ENV = "PAGE4D_AUTH"


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Options `app` and `view` share: where to listen, who may log in, budgets, runs folder."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on; anything but loopback (e.g. 0.0.0.0) exposes the app "
        f"and needs a password (--auth-file or {AUTH_ENV})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=7860,
        help="the one port of the panel and its 3-D scenes (0: any free port; the address "
        "it got is printed at start)",
    )
    parser.add_argument(
        "--allowed-hosts",
        default="",
        metavar="NAME[,NAME]",
        help="host names clients reach the app by (others get 400, against DNS rebinding); "
        "default: the --host address; a loopback or 0.0.0.0 bind also allows the loopback names",
    )
    parser.add_argument(
        "--auth-file",
        type=Path,
        metavar="PATH",
        help=f"logins, one user:password per line (or set {AUTH_ENV}=user:password); "
        "never put a password on the command line",
    )
    parser.add_argument(
        "--shared-runs",
        action="store_true",
        help="list everyone's runs in every session (default: each session sees its own)",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=DEFAULT_MAX_SESSIONS,
        help="browser sessions open at once, each with its own scene",
    )
    parser.add_argument(
        "--max-sessions-per-client",
        type=int,
        default=None,
        metavar="N",
        help="sessions one login (or address, without logins) may hold (default: half of "
        "--max-sessions)",
    )
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
        "--index",
        metavar="DIR",
        help="a batch folder (or its index.sqlite) to list in the Dataset tab at start",
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


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> AppConfig:
    """The AppConfig of parsed `app` or `view` arguments (logins from `environ` too).

    Raises:
        Page4DError: an unreadable or malformed auth file or PAGE4D_AUTH.
    """
    viewing = args.command == "view"
    return AppConfig(
        host=args.host,
        port=args.port,
        auth=read_credentials(args.auth_file, os.environ if environ is None else environ),
        shared_runs=args.shared_runs,
        max_sessions=args.max_sessions,
        max_sessions_per_client=args.max_sessions_per_client,
        allowed_hosts=[name.strip() for name in args.allowed_hosts.split(",") if name.strip()],
        runs_dir=args.runs_dir,
        data_roots=list(args.data_root),
        device="auto" if viewing else args.device,
        precision="auto" if viewing else args.precision,
        clip=None if viewing else _clip_at_start(args),
        result=args.result,
        index=args.index,
        max_points=args.max_points,
    )


def read_credentials(auth_file: Path | None, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """Logins from `--auth-file` (user:password lines; # comments) and PAGE4D_AUTH.

    Spaces around the user and the password are ignored; the password may hold colons.

    Raises:
        Page4DError: the file cannot be read, or a line is not user:password.
    """
    lines: list[tuple[str, str]] = []
    if auth_file is not None:
        try:
            text = Path(auth_file).read_text(encoding="utf-8")
        except OSError as error:
            raise Page4DError(f"cannot read the auth file {auth_file}: {error.strerror}") from None
        lines += [(f"{auth_file} line {n}", line) for n, line in enumerate(text.splitlines(), 1)]
    if environ.get(AUTH_ENV):
        lines.append((AUTH_ENV, environ[AUTH_ENV]))
    credentials = []
    for where, line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, colon, password = (part.strip() for part in line.partition(":"))
        if not colon or not user or not password:
            # Never echo the line: it may hold a password.
            raise Page4DError(f"{where} is not user:password")
        credentials.append((user, password))
    return credentials


def _clip_at_start(args: argparse.Namespace) -> str | None:
    """The clip `app` runs once it is up: --clip, else the bundled sample (none with --result)."""
    if args.clip or args.no_clip or args.result:
        return args.clip
    # find_samples lists the default sample first.
    default = next(iter(find_samples().values()), None)
    return None if default is None else str(default)


def prepare_runs_folder(runs_dir: str | os.PathLike[str]) -> None:
    """Before serving: the runs folder is writable, stale leftovers go, uploads land in it.

    The app keeps uploads in the runs folder's hidden `.uploads`, which no route serves.
    Gradio keeps its copies of what it shows in GRADIO_TEMP_DIR (default: a shared system
    folder that only grows); unless the user set it, it becomes the hidden `.cache`. Both
    are pruned here.

    Raises:
        Page4DError: the runs folder is not writable (one line).
    """
    store = RunStore(runs_dir)
    store.prepare()
    store.uploads_dir.mkdir(exist_ok=True)
    store.cache_dir.mkdir(exist_ok=True)
    if "GRADIO_TEMP_DIR" not in os.environ:
        os.environ["GRADIO_TEMP_DIR"] = str(store.cache_dir)


def silence_scene_banners() -> None:
    """Keep Viser's banners out of the app's output.

    Viser prints each session scene's internal 127.0.0.1 port (and "Server stopped") on
    rich's console, whatever `verbose` says. Users reach every scene through the app's one
    port (logged at start), so a second address would only mislead. Nothing else in the app
    prints through rich's console.
    """
    rich.get_console().quiet = True


def serve(config: AppConfig, backend: ModelBackend | None) -> int:
    """Start the viewer with this model side (None: view only) and serve until Ctrl-C."""
    check_exposure(config)
    if config.result and not Path(config.result).is_file():
        raise Page4DError(f"no result file at {config.result}")
    if config.index and not Path(config.index).exists():
        raise Page4DError(f"no batch index at {config.index}")
    prepare_runs_folder(config.runs_dir)
    silence_scene_banners()
    app = ViewerApp(config, backend)
    try:
        app.start()
        logger.info("open %s in a browser (Ctrl-C stops)", app.url)
        app.wait()
    finally:
        app.close()
    return 0
