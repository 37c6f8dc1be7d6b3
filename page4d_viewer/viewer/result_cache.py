"""Decoded result files kept in memory, so reopening one skips decompressing it again.

Reading a 65-frame 518x294 result costs about 2.5 s (zlib, the schema checks, float16 to
float32), most of a reopen; the scene then shows its first frame in about 0.2 s. The viewer
never changes a Reconstruction it shows, so the decoded one can be handed out again while the
file on disk is unchanged (same size, modification time and inode).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from page4d_viewer.result.reconstruction import Reconstruction

DEFAULT_KEPT = 2
"""Results kept decoded: the one shown and the one before it (one of 518x294 x 65 frames is
about 270 MB in memory)."""


class ResultCache:
    """`Reconstruction.load` with the last `kept` decoded files remembered.

    Args:
        kept: how many decoded results to keep (0 keeps none).
    """

    def __init__(self, kept: int = DEFAULT_KEPT) -> None:
        self._kept = int(kept)
        self._lock = threading.Lock()
        self._results: OrderedDict[tuple[str, int, int, int], Reconstruction] = OrderedDict()
        # One lock per file being decoded: sessions opening the same file at once (every new
        # tab opens the start-up result) wait for one decode instead of each doing their own.
        self._decoding: dict[tuple[str, int, int, int], threading.Lock] = {}

    def load(self, path: str | Path) -> Reconstruction:
        """The result in `path`, decoded again only if the file changed since it was read.

        Raises:
            ResultFileError: as `Reconstruction.load`.
        """
        path = Path(path)
        key = _file_key(path)
        if key is None or self._kept <= 0:
            return Reconstruction.load(path)
        with self._lock:
            decoding = self._decoding.setdefault(key, threading.Lock())
        with decoding:
            with self._lock:
                if key in self._results:
                    self._results.move_to_end(key)
                    return self._results[key]
            try:
                recon = Reconstruction.load(path)
            finally:
                with self._lock:
                    self._decoding.pop(key, None)
            with self._lock:
                self._results[key] = recon
                while len(self._results) > self._kept:
                    self._results.popitem(last=False)
        return recon

    def clear(self) -> None:
        """Forget every decoded result."""
        with self._lock:
            self._results.clear()


def _file_key(path: Path) -> tuple[str, int, int, int] | None:
    try:
        stat = path.resolve().stat()
    except OSError:
        return None  # Reconstruction.load reports the missing file
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
