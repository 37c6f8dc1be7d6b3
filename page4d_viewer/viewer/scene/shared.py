"""What every scene showing the same result computes alike, computed once for all of them.

Sessions that open the same run share one decoded `Reconstruction` (`viewer.result_cache`);
each session's scene then prepared the same pixel grid, binned the same points and shrank the
same thumbnails again, which made four tabs opening the default result take about four times
one tab's CPU. `SharedWork` keeps those results per Reconstruction object, least recently used
first out, within a byte budget, and forgets a Reconstruction's entries when it is collected.
What stays per scene is only what Viser itself needs per server: its messages.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

# About four default results' binned points (24 frames of 518x294: ~110 MB each).
DEFAULT_BUDGET_BYTES = 512 * 1024 * 1024


def array_bytes(value: Any) -> int:
    """Bytes of the numpy arrays in a value: an array, a dataclass of arrays, or neither."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(array_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    return 0


class _Making:
    """A value one thread is making; the others asking for it wait on `done`."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.made = False  # False after `done` if making it raised
        self.value: Any = None


class SharedWork:
    """A thread-safe cache of per-result work, keyed by (the result object, a key).

    Args:
        budget_bytes: the arrays all entries may hold together (the oldest go first).
    """

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = int(budget_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, Hashable], tuple[Any, int]] = OrderedDict()
        self._making: dict[tuple[int, Hashable], _Making] = {}  # keys being made now
        self._watched: set[int] = set()
        self._forgotten: list[int] = []  # ids of collected results, to drop entries of
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, recon: object, key: Hashable, make: Callable[[], T]) -> T:
        """The value for (recon, key), made with `make()` the first time (outside the lock).

        `recon` is the result the value is made from (or another object it belongs to), kept
        by identity and watched: its entries go when it is collected.

        Scenes opened at once ask for the same frame at about the same moment: one of them
        makes the value and the others wait for it, instead of each making its own (four
        tabs binned every frame four times). If the maker raises, a waiter makes it itself.
        The value must not hold `recon` itself, or the result would outlive its last user."""
        full = (id(recon), key)
        while True:
            with self._lock:
                self._drop_forgotten()
                found = self._entries.get(full)
                if found is not None:
                    self._entries.move_to_end(full)
                    self.hits += 1
                    return found[0]
                making = self._making.get(full)
                if making is None:
                    making = self._making[full] = _Making()
                    self.misses += 1
                    break
            making.done.wait()
            if making.made:
                with self._lock:
                    self.hits += 1
                return making.value
        try:
            value = making.value = make()
            making.made = True
            with self._lock:
                self._store(recon, full, value)
        finally:
            with self._lock:
                del self._making[full]
            making.done.set()
        return value

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays held now."""
        with self._lock:
            self._drop_forgotten()
            return self._bytes

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _store(self, recon: object, full: tuple[int, Hashable], value: Any) -> None:
        """Keep a value (holding the lock) and evict the oldest entries over the budget."""
        size = array_bytes(value)
        self._entries[full] = (value, size)
        self._bytes += size
        if full[0] not in self._watched:
            # Entries live no longer than their result: its id may be reused once it is gone.
            self._watched.add(full[0])
            weakref.finalize(recon, self._forget, full[0])
        while self._bytes > self.budget_bytes and len(self._entries) > 1:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped

    def _forget(self, recon_id: int) -> None:
        """Called when a result is collected: which can happen in any thread, also one that
        holds the lock (a collection started by an allocation under it), so the entries are
        dropped at the next use of the lock rather than here."""
        self._forgotten.append(recon_id)

    def _drop_forgotten(self) -> None:
        """Drop the entries of collected results (holding the lock), before any lookup: a
        new result may reuse a collected one's id."""
        while self._forgotten:
            recon_id = self._forgotten.pop()
            for full in [k for k in self._entries if k[0] == recon_id]:
                self._bytes -= self._entries.pop(full)[1]
            self._watched.discard(recon_id)


SHARED_WORK = SharedWork()
"""The one cache every scene of this process uses."""
