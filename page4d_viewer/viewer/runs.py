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

import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeGuard

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError

logger = logging.getLogger(__name__)

RESULT_NAME = "result.npz"
RECORD_NAME = "run.json"
EXPORTS_NAME = "exports"
PIN_NAME = "pinned"
UPLOADS_NAME = ".uploads"
"""The app's uploads live here (served by no route), pruned at start."""
CACHE_NAME = ".cache"
"""Gradio's copies of what the pages show (GRADIO_TEMP_DIR) live here, pruned at start."""
STALE_SECONDS = 600.0
"""A staging folder or upload older than this at start is a killed process's leftover."""
_RECORD_VERSION = 1
# Runs saved before ids carried 128 random bits end in 4 hex digits; they still open.
_RUN_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[a-z0-9-]{0,40}(?:[0-9a-f]{32}|[0-9a-f]{4})$")


MIN_FREE_BYTES = 64 * 1024**2
"""Free space every write leaves on the disk, so nothing the app writes runs out halfway."""


class RunNotFoundError(Page4DError):
    """A run id that does not name a saved run."""


class DiskFullError(Page4DError):
    """Not enough free disk space to write something, checked before it is written."""


def check_free_space(folder: str | os.PathLike[str], needed: int = 0) -> None:
    """Refuse a write of about `needed` bytes under `folder` that would leave less than
    `MIN_FREE_BYTES` free (one line).

    Raises:
        DiskFullError: not enough room, or the free space cannot be read.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise DiskFullError(
            f"cannot read the free disk space of {folder}: {error.strerror}"
        ) from None
    if free - needed < MIN_FREE_BYTES:
        raise DiskFullError(
            f"not enough free disk space in {folder}: {free / 1e6:.0f} MB free, at least "
            f"{(needed + MIN_FREE_BYTES) / 1e6:.0f} MB needed; free some space"
        )


def disk_full(error: BaseException) -> TypeGuard[OSError]:
    """Whether an error is the disk (or the user's quota) running out."""
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


OWNER_KEY = "session"
"""The key of run.json's details naming the session that made the run (as saved so far)."""


@dataclass(frozen=True)
class RunDetails:
    """What a saved run records beside its title (run.json's "details").

    Every field may be missing from a run saved by an older version, so each has a default;
    a field of the wrong type reads as missing, and keys this version does not know are
    ignored.

    Attributes:
        checkpoint: The weights' file (or preset) name.
        variant: The model variant, e.g. "page4d".
        mask_strength: The alpha of the masked variant (None: not recorded).
        device: The torch device the model ran on.
        precision: "float32", "bfloat16" or "float16".
        seconds: How long the model ran (None: not recorded).
        owner: The session that made it (`sessions.run_owner`; the app's start-up run:
            `model_runs.STARTUP_OWNER`); None for a run saved before sessions were recorded.
    """

    checkpoint: str = ""
    variant: str = ""
    mask_strength: float | None = None
    device: str = ""
    precision: str = ""
    seconds: float | None = None
    owner: str | None = None

    def to_json(self) -> dict[str, str | float]:
        """The JSON object run.json keeps (the owner under "session"; unset fields left out)."""
        texts = {
            "checkpoint": self.checkpoint,
            "variant": self.variant,
            "device": self.device,
            "precision": self.precision,
        }
        numbers = {"mask_strength": self.mask_strength, "seconds": self.seconds}
        raw: dict[str, str | float] = {key: value for key, value in texts.items() if value}
        raw.update({key: value for key, value in numbers.items() if value is not None})
        if self.owner is not None:
            raw[OWNER_KEY] = self.owner
        return raw

    @classmethod
    def from_json(cls, raw: object) -> RunDetails:
        """The details of a run.json, as written by any version (see the class docstring)."""
        if not isinstance(raw, Mapping):
            return cls()

        def text(key: str) -> str:
            value = raw.get(key)
            return value if isinstance(value, str) else ""

        def number(key: str) -> float | None:
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            return float(value)

        owner = raw.get(OWNER_KEY)
        return cls(
            checkpoint=text("checkpoint"),
            variant=text("variant"),
            mask_strength=number("mask_strength"),
            device=text("device"),
            precision=text("precision"),
            seconds=number("seconds"),
            owner=owner if isinstance(owner, str) else None,
        )


@dataclass(frozen=True)
class RunRecord:
    """One saved run.

    Attributes:
        run_id: The folder name, unique, sortable by time.
        folder: The run's folder.
        created: When the run was saved (UTC).
        title: One line saying what was run, e.g. "clip.mp4 · 24 frames · 518x294".
        details: What else it recorded (checkpoint, mask strength, timing, owner).
    """

    run_id: str
    folder: Path
    created: datetime
    title: str
    details: RunDetails = field(default_factory=RunDetails)

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
        if self.details.mask_strength is not None:
            parts.append(f"α {self.details.mask_strength:g}")
        if self.details.checkpoint:
            parts.append(Path(self.details.checkpoint).name)
        return " · ".join(parts)


class RunStore:
    """Saves runs as they finish and lists or reopens them.

    Args:
        root: The runs folder; created on the first save.
        max_bytes: The size budget of everything under it (uploads and caches included).
        protected: The ids of runs pruning must keep (the start-up run, the runs open
            sessions show), asked at each prune.

    Attributes:
        uploads_dir: Where the app keeps uploaded files (a hidden folder: never listed as a
            run).
        cache_dir: Where Gradio keeps its copies of what pages show (hidden: never listed as
            a run).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        max_bytes: float | None = None,
        protected: Callable[[], Set[str]] | None = None,
    ) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uploads_dir = self.root / UPLOADS_NAME
        self.cache_dir = self.root / CACHE_NAME
        self.max_bytes = settings.MAX_RUNS_BYTES.value() if max_bytes is None else max_bytes
        self.protected = protected

    def prepare(self, now: float | None = None) -> None:
        """At start: check the folder is writable, remove stale leftovers, apply the budget.

        Raises:
            Page4DError: the runs folder cannot be created or written (one line), so a run is
                never computed only to be thrown away.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise Page4DError(
                f"the runs folder {self.root} is not writable ({error.strerror}); "
                "give another with --runs-dir"
            ) from None
        cutoff = (time.time() if now is None else now) - STALE_SECONDS
        stale = [
            *self.root.glob(".staging-*"),
            *self.uploads_dir.glob("*"),
            *self.cache_dir.glob("*"),
        ]
        for leftover in stale:
            try:
                if leftover.lstat().st_mtime < cutoff:
                    _remove(leftover)
            except OSError as error:
                logger.warning("cannot remove %s: %s", leftover, error)
        self.prune()

    def save(
        self,
        write_result: Callable[[Path], object],
        title: str,
        details: RunDetails | None = None,
        *,
        now: datetime | None = None,
    ) -> RunRecord:
        """Save one run atomically.

        Args:
            write_result: Writes the result file to the path it is given (ending in `.npz`),
                e.g. `reconstruction.save`.
            title: One line saying what was run.
            details: What else to record (default: nothing).
            now: The time to record (UTC); the current time when omitted.

        Returns:
            The record of the saved run.

        Raises:
            DiskFullError: too little free space to start, or the disk filled while writing
                (nothing is left behind either way).
        """
        created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        details = details if details is not None else RunDetails()
        run_id = _new_run_id(created, title)
        self.root.mkdir(parents=True, exist_ok=True)
        check_free_space(self.root)
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
                "details": details.to_json(),
            }
            (staging / RECORD_NAME).write_text(json.dumps(record, indent=1, default=str))
            final = self.root / run_id
            os.replace(staging, final)
        except BaseException as error:
            shutil.rmtree(staging, ignore_errors=True)
            if disk_full(error):
                raise DiskFullError(
                    f"the disk filled up while saving the run ({error.strerror}); "
                    "nothing was saved: free some space and run it again"
                ) from None
            raise
        logger.info("saved run %s", final)
        record = RunRecord(run_id, final, created, title, details)
        self.prune(keep=run_id)
        return record

    def list(
        self, limit: int | None = 50, offset: int = 0, query: str | None = None
    ) -> list[RunRecord]:
        """The saved runs, newest first; unreadable or unfinished folders are skipped.

        Args:
            limit: at most this many (None: all).
            offset: skip this many first (paging: offset = page * limit).
            query: keep runs whose id, title or details contain every word of it (any case).
        """
        records = self._all()
        if query and query.strip():
            words = query.lower().split()
            records = [r for r in records if all(word in _haystack(r) for word in words)]
        records = records[max(0, offset) :]
        return records if limit is None else records[:limit]

    def pin(self, run_id: str, pinned: bool = True) -> None:
        """Mark a run as kept (or not): the size budget never removes a pinned run."""
        marker = self.get(run_id).folder / PIN_NAME
        if pinned:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def is_pinned(self, run_id: str) -> bool:
        """Whether a run is pinned."""
        return (self.get(run_id).folder / PIN_NAME).exists()

    def prune(self, keep: str | None = None) -> list[str]:
        """Remove the oldest unpinned runs until the folder fits `max_bytes`; returns their ids.

        Everything under the folder counts: runs with their exports, uploads, Gradio's
        cache, leftovers. Pinned runs and the `protected` ones are never removed.

        Args:
            keep: a run never removed (the one just saved).
        """
        if not math.isfinite(self.max_bytes):
            return []
        records = self._all()
        sizes = {record.run_id: _folder_bytes(record.folder) for record in records}
        total = _folder_bytes(self.root)
        kept = {keep} | set(self.protected() if self.protected is not None else ())
        removed = []
        for record in reversed(records):  # oldest first
            if total <= self.max_bytes:
                break
            if record.run_id in kept or (record.folder / PIN_NAME).exists():
                continue
            shutil.rmtree(record.folder, ignore_errors=True)
            total -= sizes[record.run_id]
            removed.append(record.run_id)
        if removed:
            logger.info("removed %d old run(s) to stay under %s", len(removed), self.max_bytes)
        return removed

    def _all(self) -> list[RunRecord]:
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
        return records

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


def _haystack(record: RunRecord) -> str:
    return " ".join([record.run_id, record.title, json.dumps(record.details.to_json())]).lower()


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _new_run_id(created: datetime, title: str) -> str:
    # Name the folder after what was run: the title's first part ("walk.mp4 · 24 frames").
    subject = title.split(" · ")[0]
    slug = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:24].strip("-")
    stamp = created.strftime("%Y%m%d-%H%M%S")
    # The random suffix keeps two runs saved in the same second apart, and at 128 bits makes
    # a run id unguessable from its time and clip name.
    return f"{stamp}-{slug + '-' if slug else ''}{secrets.token_hex(16)}"


def _read_record(folder: Path) -> RunRecord | None:
    record_path = folder / RECORD_NAME
    if not record_path.is_file() or not (folder / RESULT_NAME).is_file():
        return None
    try:
        raw = json.loads(record_path.read_text())
        created = datetime.fromisoformat(raw["created"])
        title = str(raw["title"])
        details = RunDetails.from_json(raw.get("details"))
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning("skipping run folder %s: %s", folder, error)
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return RunRecord(folder.name, folder, created, title, details)
