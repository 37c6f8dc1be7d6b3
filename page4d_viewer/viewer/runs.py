"""Recent runs: every finished run is kept in its own folder under the runs folder.

Layout, one folder per run (the folder name is the run id)::

    runs/20261121-134012-lady-running-3f2a/
        run.json        what the run was (title, time, details), written last
        result.npz      the Reconstruction
        exports/        downloads made from it later (GLB, PLY, TUM, mp4)

A run is written into a hidden temporary folder and renamed into place when complete; renaming a
folder is atomic on one file system, so a crash, a refresh or a second user never sees half a
run. Hidden folders (a crash's leftovers) are ignored when listing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from page4d_viewer.errors import Page4DError

logger = logging.getLogger(__name__)

RESULT_NAME = "result.npz"
RECORD_NAME = "run.json"
EXPORTS_NAME = "exports"
_RECORD_VERSION = 1
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9-]{0,40}[0-9a-f]{4}$")


class RunNotFoundError(Page4DError):
    """A run id that does not name a saved run."""


@dataclass(frozen=True)
class RunRecord:
    """One saved run.

    Attributes:
        run_id: The folder name, unique, sortable by time.
        folder: The run's folder.
        created: When the run was saved (UTC).
        title: One line saying what was run, e.g. "clip.mp4 · 24 frames · 518x294".
        details: Free JSON-able facts shown with the run (checkpoint, mask strength, timings).
    """

    run_id: str
    folder: Path
    created: datetime
    title: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def result_path(self) -> Path:
        """The saved Reconstruction (.npz)."""
        return self.folder / RESULT_NAME

    @property
    def exports_dir(self) -> Path:
        """Where downloads made from this run are written (created on demand)."""
        return self.folder / EXPORTS_NAME

    def label(self) -> str:
        """One line for a drop-down: local time, title, mask strength and checkpoint (when
        recorded), e.g. "2026-11-21 13:40:12 · walk.mp4 · 24 frames · α 64 · page4d.pt"."""
        local = self.created.astimezone()
        parts = [f"{local:%Y-%m-%d %H:%M:%S}", self.title]
        strength = self.details.get("mask_strength")
        if isinstance(strength, (int, float)) and not isinstance(strength, bool):
            parts.append(f"α {strength:g}")
        checkpoint = self.details.get("checkpoint")
        if checkpoint:
            parts.append(Path(str(checkpoint)).name)
        return " · ".join(parts)


class RunStore:
    """Saves runs as they finish and lists or reopens them.

    Args:
        root: The runs folder; created on the first save.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def save(
        self,
        write_result: Callable[[Path], None],
        title: str,
        details: Mapping[str, Any] | None = None,
        *,
        now: datetime | None = None,
    ) -> RunRecord:
        """Save one run atomically.

        Args:
            write_result: Writes the result file to the path it is given (ending in `.npz`),
                e.g. `reconstruction.save`.
            title: One line saying what was run.
            details: JSON-able facts to keep with the run.
            now: The time to record (UTC); the current time when omitted.

        Returns:
            The record of the saved run.
        """
        created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        run_id = _new_run_id(created, title)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{run_id}"
        staging.mkdir()
        try:
            write_result(staging / RESULT_NAME)
            if not (staging / RESULT_NAME).is_file():
                raise OSError(f"the result writer did not create {RESULT_NAME}")
            record = {
                "version": _RECORD_VERSION,
                "created": created.isoformat(),
                "title": title,
                "details": dict(details or {}),
            }
            (staging / RECORD_NAME).write_text(json.dumps(record, indent=1, default=str))
            final = self.root / run_id
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("saved run %s", final)
        return RunRecord(run_id, final, created, title, dict(details or {}))

    def list(self, limit: int | None = 50) -> list[RunRecord]:
        """The saved runs, newest first; unreadable or unfinished folders are skipped."""
        if not self.root.is_dir():
            return []
        records = []
        for folder in self.root.iterdir():
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            record = _read_record(folder)
            if record is not None:
                records.append(record)
        records.sort(key=lambda record: (record.created, record.run_id), reverse=True)
        return records if limit is None else records[:limit]

    def get(self, run_id: str) -> RunRecord:
        """The run with this id.

        Raises:
            RunNotFoundError: The id is malformed (e.g. holds a path) or names no saved run.
        """
        if not _RUN_ID.match(run_id or ""):
            raise RunNotFoundError(f"{run_id!r} is not a run id")
        record = _read_record(self.root / run_id)
        if record is None:
            raise RunNotFoundError(f"no saved run {run_id!r} in {self.root}")
        return record


def _new_run_id(created: datetime, title: str) -> str:
    # Name the folder after what was run: the title's first part ("walk.mp4 · 24 frames").
    subject = title.split(" · ")[0]
    slug = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:24].strip("-")
    stamp = created.strftime("%Y%m%d-%H%M%S")
    # The random suffix keeps two runs saved in the same second apart.
    return f"{stamp}-{slug + '-' if slug else ''}{secrets.token_hex(2)}"


def _read_record(folder: Path) -> RunRecord | None:
    record_path = folder / RECORD_NAME
    if not record_path.is_file() or not (folder / RESULT_NAME).is_file():
        return None
    try:
        raw = json.loads(record_path.read_text())
        created = datetime.fromisoformat(raw["created"])
        title = str(raw["title"])
        details = raw.get("details", {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("skipping run folder %s: %s", folder, error)
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return RunRecord(folder.name, folder, created, title, details)
