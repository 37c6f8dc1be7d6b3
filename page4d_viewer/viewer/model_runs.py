"""Model runs, shared by every session: one at a time, cancellable, saved with their owner.

`run_and_save` is the part of a run that touches only shared things (the model backend with
its lock, the runs folder); showing the result is the session's controller's job. The app
also calls it at start, with no session, for the clip it shows every new session.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.run_contract import Progress, RunCancelled
from page4d_viewer.sources.confine import confined
from page4d_viewer.viewer.runs import RunDetails, check_free_space
from page4d_viewer.viewer.titles import source_name

if TYPE_CHECKING:
    from page4d_viewer.run_contract import ModelBackend, RunOptions
    from page4d_viewer.sources.clip import SourceLike
    from page4d_viewer.viewer.runs import RunRecord, RunStore

# Share of the progress bar taken by the model (reading, encoding, aggregating, heads); the
# rest is saving the run and sending it to the scene.
MODEL_SHARE = 0.85
# The owner recorded with the run the app makes at start: every session may see it.
STARTUP_OWNER = "app"


@dataclass
class CancelFlags:
    """Cancel flags per browser session (Gradio's session hash)."""

    flags: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, session: str) -> threading.Event:
        with self.lock:
            self.flags[session] = threading.Event()
            return self.flags[session]

    def cancel(self, session: str) -> bool:
        with self.lock:
            flag = self.flags.get(session)
        if flag is None:
            return False
        flag.set()
        return True

    def finish(self, session: str, flag: threading.Event) -> None:
        with self.lock:
            if self.flags.get(session) is flag:
                del self.flags[session]


def run_and_save(
    backend: ModelBackend,
    model_lock: threading.Lock,
    store: RunStore,
    source: SourceLike,
    options: RunOptions,
    progress: Progress,
    *,
    cancel: threading.Event | None = None,
    owner: str = "",
    roots: Sequence[Path] | None = None,
) -> tuple[Reconstruction, RunRecord]:
    """Run the model (one run at a time under `model_lock`) and save the run as `owner`'s.

    With `roots`, every file the loader opens must lie inside one of them (sources.confine).

    Raises:
        RunCancelled: `cancel` was set before the model finished.
        Page4DError: bad input, an unreadable checkpoint, out of memory, too little free
            disk space to save the run (checked before the model starts, and again before
            the run is written).
    """
    cancel = cancel if cancel is not None else threading.Event()
    store.root.mkdir(parents=True, exist_ok=True)
    check_free_space(store.root)
    progress(0.0, "waiting for the model" if model_lock.locked() else "starting")
    with model_lock:
        if cancel.is_set():
            raise RunCancelled("run cancelled")
        started = time.perf_counter()
        with confined(roots):
            recon = backend.run_model(
                source, options, _checked_progress(progress, cancel, MODEL_SHARE)
            )
        model_seconds = time.perf_counter() - started
    if cancel.is_set():
        raise RunCancelled("run cancelled")
    # From here on the run is committed: Cancel no longer applies.
    progress(MODEL_SHARE, "saving the run")
    details = run_details(recon, model_seconds, owner or None)
    return recon, store.save(recon.save, run_title(recon, source), details)


def _checked_progress(progress: Progress, cancel: threading.Event, share: float) -> Progress:
    """A progress callback scaled into [0, share] that raises RunCancelled once cancelled."""

    def report(fraction: float, message: str) -> None:
        if cancel.is_set():
            raise RunCancelled("run cancelled")
        progress(share * min(max(float(fraction), 0.0), 1.0), message)

    return report


def run_title(recon: Reconstruction, source: SourceLike | None = None) -> str:
    """One line "name · S frames · WxH"; the name is the source's (uploads: their files')."""
    height, width = recon.image_hw
    name = source_name(recon.metadata.source if source is None else source)
    return f"{name} · {recon.num_frames} frames · {width}x{height}"


def run_details(
    recon: Reconstruction, model_seconds: float, owner: str | None = None
) -> RunDetails:
    """What a run's record keeps beside its title: the model it ran, how long, and whose."""
    metadata = recon.metadata
    return RunDetails(
        checkpoint=metadata.checkpoint_name,
        variant=metadata.model_variant,
        mask_strength=float(metadata.mask_strength),
        device=metadata.device,
        precision=metadata.precision,
        seconds=round(model_seconds, 3),
        owner=owner,
    )
