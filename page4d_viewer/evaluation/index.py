"""The batch run index: one SQLite row per (clip, checkpoint, settings), and queries on it.

``page4d-viewer batch`` writes ``DIR/index.sqlite``; the report and the viewer's Dataset view
read it through :func:`list_runs` and :func:`get_run`. Torch-free (standard library only).

Concurrency: SQLite's locking is not reliable on every network filesystem, so the index has
exactly one writer at a time. Under torchrun each rank writes its own shard
(``index.rank<k>.sqlite``, see :func:`shard_path`) and rank 0 folds the shards into the index
with :func:`merge_shards` once every rank is done (or at the start of the next run, when a run
was killed). A row is written only after its result file is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from page4d_viewer.errors import Page4DError

INDEX_NAME = "index.sqlite"
SCHEMA_VERSION = 2
"""1: the camera head's metrics. 2: adds the geometric cameras' ATE and the head-vs-geometry
disagreement (:data:`ADDED_COLUMNS`); :func:`connect` adds them to a version-1 file, and
reading a version-1 file gives None for them."""
STATUS_OK = "ok"
STATUS_FAILED = "failed"

# The relative pose errors (translation, rotation) of the masked and the unmasked cameras.
RPE_COLUMNS = ("rpe_t_masked", "rpe_r_masked", "rpe_t_unmasked", "rpe_r_unmasked")

# Metric columns, in the order the report shows them; NULL where there is no ground truth.
METRIC_COLUMNS = (
    "ate_masked",
    "ate_unmasked",
    "ate_geometry_masked",
    "ate_geometry_unmasked",
    *RPE_COLUMNS,
    "abs_rel",
    "delta_1_25",
    "mask_ap",
    "mask_iou",
)

# How far the camera head's masked cameras are from the geometric masked ones
# (`evaluation.disagreement`): no ground truth needed, NULL when the result lacks either.
DISAGREEMENT_COLUMNS = (
    "head_geometry_rot_deg",
    "head_geometry_trans",
)

ADDED_COLUMNS: dict[str, str] = {
    "ate_geometry_masked": "REAL",
    "ate_geometry_unmasked": "REAL",
    "head_geometry_rot_deg": "REAL",
    "head_geometry_trans": "REAL",
}
"""Columns (and SQL types) added after schema version 1: an older file lacks them."""

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    clip TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    settings_hash TEXT NOT NULL,
    checkpoint_name TEXT NOT NULL DEFAULT '',
    settings_json TEXT NOT NULL DEFAULT '{{}}',
    source TEXT NOT NULL DEFAULT '',
    layout TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    error TEXT,
    mask_strength REAL,
    frames INTEGER,
    {", ".join(f"{name} REAL" for name in (*METRIC_COLUMNS, *DISAGREEMENT_COLUMNS))},
    seconds REAL,
    result_path TEXT,
    device TEXT NOT NULL DEFAULT '',
    rank INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    UNIQUE (clip, checkpoint, settings_hash)
);
"""

_COLUMNS = (
    "clip",
    "checkpoint",
    "settings_hash",
    "checkpoint_name",
    "settings_json",
    "source",
    "layout",
    "status",
    "error",
    "mask_strength",
    "frames",
    *METRIC_COLUMNS,
    *DISAGREEMENT_COLUMNS,
    "seconds",
    "result_path",
    "device",
    "rank",
    "created_at",
)

ATE_DIFFERENCE = "ate_difference"
"""Sort key of :func:`list_runs`: masked minus unmasked ATE (positive: the mask hurt)."""

GEOMETRY_ATE_DIFFERENCE = "geometry_ate_difference"
"""Sort key of :func:`list_runs`: geometric masked minus unmasked ATE (positive: the mask's
weights made the geometric cameras worse)."""


class RunIndexError(Page4DError):
    """The index file is missing, not an index, or a query names an unknown column."""


@dataclass(frozen=True, kw_only=True)
class RunRow:
    """One row of the index: a clip run with one checkpoint and one set of settings.

    What :func:`write_row` writes and :func:`list_runs` reads; the defaults are the
    schema's (a column left out is NULL, or its SQL default).

    Metrics are None where the clip has no ground truth (or the run failed), and the
    geometric ATEs and head-vs-geometry disagreement also where the result has no geometric
    cameras or the index predates them. ``head_geometry_rot_deg`` is the mean per-frame
    rotation angle between the camera head's masked cameras and ``geometry_masked``, each
    relative to its first camera; ``head_geometry_trans`` the RMS distance of the head's
    Sim(3)-aligned centres from the geometric ones over the geometric path's RMS spread (0
    to 1; see ``evaluation.disagreement``). ``result_path`` is relative to the index's folder
    (None for failed runs; see :meth:`result_file`).
    """

    clip: str
    checkpoint: str
    settings_hash: str
    status: str
    created_at: str
    checkpoint_name: str = ""
    settings_json: str = "{}"
    source: str = ""
    layout: str = ""
    error: str | None = None
    mask_strength: float | None = None
    frames: int | None = None
    ate_masked: float | None = None
    ate_unmasked: float | None = None
    ate_geometry_masked: float | None = None
    ate_geometry_unmasked: float | None = None
    rpe_t_masked: float | None = None
    rpe_r_masked: float | None = None
    rpe_t_unmasked: float | None = None
    rpe_r_unmasked: float | None = None
    abs_rel: float | None = None
    delta_1_25: float | None = None
    mask_ap: float | None = None
    mask_iou: float | None = None
    head_geometry_rot_deg: float | None = None
    head_geometry_trans: float | None = None
    seconds: float | None = None
    result_path: str | None = None
    device: str = ""
    rank: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        """(clip, checkpoint, settings_hash): what :func:`get_run` takes."""
        return self.clip, self.checkpoint, self.settings_hash

    @property
    def ok(self) -> bool:
        """Whether the run finished and its result file was written."""
        return self.status == STATUS_OK

    @property
    def ate_difference(self) -> float | None:
        """Masked minus unmasked ATE (positive: masking made the cameras worse), or None."""
        if self.ate_masked is None or self.ate_unmasked is None:
            return None
        return self.ate_masked - self.ate_unmasked

    @property
    def geometry_ate_difference(self) -> float | None:
        """Geometric masked minus unmasked ATE (positive: the mask's weights hurt), or None."""
        if self.ate_geometry_masked is None or self.ate_geometry_unmasked is None:
            return None
        return self.ate_geometry_masked - self.ate_geometry_unmasked

    @property
    def settings(self) -> dict[str, Any]:
        """The settings that, with the clip and checkpoint, identify the run."""
        return json.loads(self.settings_json)

    def result_file(self, index_path: str | os.PathLike[str]) -> Path | None:
        """The result file's absolute path, given the index it was read from."""
        if self.result_path is None:
            return None
        return Path(index_path).parent / self.result_path


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-ready settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_path(folder: str | os.PathLike[str], rank: int) -> Path:
    """Where rank ``rank`` of a torchrun batch writes its rows."""
    return Path(folder) / f"index.rank{rank}.sqlite"


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) an index or shard file for writing, schema in place.

    A file written by an older version gets the columns added since (:data:`ADDED_COLUMNS`,
    NULL in its existing rows), so a batch can go on appending to it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=60)
    connection.executescript(_SCHEMA)
    _add_missing_columns(connection)
    # Never lower it: a file a newer version wrote keeps saying so.
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version < SCHEMA_VERSION:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.commit()
    return connection


def _add_missing_columns(connection: sqlite3.Connection) -> None:
    present = _table_columns(connection)
    for name, sql_type in ADDED_COLUMNS.items():
        if name not in present:
            # Names and types come from ADDED_COLUMNS above, never from the file.
            connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")


def _table_columns(connection: sqlite3.Connection) -> set[str]:
    return {row[1] for row in connection.execute("PRAGMA table_info(runs)")}


def open_index(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing index read-only (rows as ``sqlite3.Row``).

    Args:
        path: ``DIR/index.sqlite``, or the batch folder ``DIR``.

    Raises:
        RunIndexError: there is no index there, or the file is not one.
    """
    path = _index_file(path)
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        connection.row_factory = sqlite3.Row
        connection.execute("SELECT clip FROM runs LIMIT 1").fetchall()
    except sqlite3.DatabaseError as error:
        raise RunIndexError(f"{path} is not a batch index ({error})") from None
    return connection


def _index_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise RunIndexError(f"no batch index at {path}")
    return path


def write_row(connection: sqlite3.Connection, row: RunRow) -> None:
    """Insert a run row, replacing an earlier row of the same key, and commit."""
    values = {name: _sql_value(getattr(row, name)) for name in _COLUMNS}
    placeholders = ", ".join(f":{name}" for name in _COLUMNS)
    connection.execute(
        f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values
    )
    connection.commit()


def _sql_value(value: Any) -> Any:
    # NaN would be stored as NULL by sqlite anyway; make "not computed" explicit.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finished_keys(path: str | os.PathLike[str]) -> dict[tuple[str, str, str], str]:
    """(clip, checkpoint, settings_hash) -> result path of every successful row of a file."""
    if not Path(path).is_file():
        return {}
    # Read-only: under torchrun every rank reads the index while only rank 0 may write it.
    with contextlib.closing(open_index(path)) as connection:
        rows = connection.execute(
            "SELECT clip, checkpoint, settings_hash, result_path FROM runs WHERE status = ?",
            (STATUS_OK,),
        ).fetchall()
    return {(clip, ck, sh): result for clip, ck, sh, result in rows}


def merge_shards(folder: str | os.PathLike[str]) -> int:
    """Fold every rank's shard in ``folder`` into ``index.sqlite`` and delete the shards.

    Rows replace rows of the same key, except that a failure never replaces a success.
    Call it from one process only (rank 0, after a barrier).

    Returns:
        The number of rows merged.
    """
    folder = Path(folder)
    shards = sorted(folder.glob("index.rank*.sqlite"))
    merged = 0
    with contextlib.closing(connect(folder / INDEX_NAME)) as index:
        for shard in shards:
            with contextlib.closing(connect(shard)) as source:
                rows = source.execute(f"SELECT {', '.join(_COLUMNS)} FROM runs").fetchall()
            for values in rows:
                row = RunRow(**dict(zip(_COLUMNS, values, strict=True)))
                if not row.ok and _has_success(index, row):
                    continue
                write_row(index, row)
                merged += 1
    for shard in shards:
        for leftover in (shard, shard.with_name(shard.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return merged


def _has_success(connection: sqlite3.Connection, row: RunRow) -> bool:
    found = connection.execute(
        "SELECT 1 FROM runs WHERE clip = ? AND checkpoint = ? AND settings_hash = ? AND status = ?",
        (*row.key, STATUS_OK),
    ).fetchone()
    return found is not None


_SORT_KEYS = frozenset({*(f.name for f in fields(RunRow)), ATE_DIFFERENCE, GEOMETRY_ATE_DIFFERENCE})


def list_runs(
    path: str | os.PathLike[str],
    *,
    sort_by: str = ATE_DIFFERENCE,
    descending: bool = True,
    filter_text: str = "",
    status: str | None = None,
) -> list[RunRow]:
    """The index's rows, sorted, optionally filtered (for the report and the Dataset view).

    Args:
        path: ``DIR/index.sqlite`` or ``DIR``.
        sort_by: a RunRow field, "ate_difference" (masked minus unmasked ATE) or
            "geometry_ate_difference" (the same for the geometric cameras). Rows without a
            value sort last either way.
        descending: largest first.
        filter_text: keep rows whose clip, checkpoint name, layout or error contains it
            (case-insensitive).
        status: "ok" or "failed" to keep only those.

    Raises:
        RunIndexError: no index at ``path``, or an unknown ``sort_by``.
    """
    if sort_by not in _SORT_KEYS:
        raise RunIndexError(
            f"cannot sort by {sort_by!r}; use one of {', '.join(sorted(_SORT_KEYS))}"
        )
    rows = list(_read_rows(path))
    needle = filter_text.strip().lower()
    if needle:
        rows = [
            row
            for row in rows
            if any(
                needle in (text or "").lower()
                for text in (row.clip, row.checkpoint_name, row.layout, row.error)
            )
        ]
    if status is not None:
        rows = [row for row in rows if row.status == status]
    present = [row for row in rows if getattr(row, sort_by) is not None]
    missing = [row for row in rows if getattr(row, sort_by) is None]
    present.sort(key=lambda row: (getattr(row, sort_by), row.clip), reverse=descending)
    missing.sort(key=lambda row: row.clip)
    return present + missing


def get_run(path: str | os.PathLike[str], key: tuple[str, str, str]) -> RunRow:
    """The row of ``key`` = (clip, checkpoint, settings_hash).

    Raises:
        RunIndexError: no such row, or no index at ``path``.
    """
    for row in _read_rows(path, key):
        return row
    raise RunIndexError(f"no run of clip {key[0]!r} with that checkpoint and settings in the index")


def _read_rows(
    path: str | os.PathLike[str], key: tuple[str, str, str] | None = None
) -> Iterator[RunRow]:
    parameters: tuple[str, ...] = ()
    where = ""
    if key is not None:
        where = " WHERE clip = ? AND checkpoint = ? AND settings_hash = ?"
        parameters = tuple(key)
    with contextlib.closing(open_index(path)) as connection:
        # Read-only, so an older file is not migrated here: its missing columns read as None.
        present = _table_columns(connection)
        lacking = [name for name in _COLUMNS if name not in present]
        if any(name not in ADDED_COLUMNS for name in lacking):
            raise RunIndexError(f"{path} is not a batch index (no {', '.join(lacking)} column)")
        selected = [name for name in _COLUMNS if name in present]
        rows = connection.execute(
            f"SELECT {', '.join(selected)} FROM runs{where}", parameters
        ).fetchall()
    for row in rows:
        # An older file's missing columns keep RunRow's defaults (None).
        yield RunRow(**{name: row[name] for name in selected})


__all__ = [
    "ADDED_COLUMNS",
    "ATE_DIFFERENCE",
    "DISAGREEMENT_COLUMNS",
    "GEOMETRY_ATE_DIFFERENCE",
    "INDEX_NAME",
    "METRIC_COLUMNS",
    "RPE_COLUMNS",
    "STATUS_FAILED",
    "STATUS_OK",
    "RunIndexError",
    "RunRow",
    "SCHEMA_VERSION",
    "connect",
    "finished_keys",
    "get_run",
    "list_runs",
    "merge_shards",
    "open_index",
    "settings_hash",
    "shard_path",
    "write_row",
]
