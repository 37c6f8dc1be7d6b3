"""The scene's "loading" state: from the moment a new result is chosen until its first frame
is on its way, every viewer of the scene sees a spinner naming it, and the old result is gone.

Viser draws notifications per browser, so the notice goes to each connected client and to
every client that connects while it is up (a reload during a long decode sees it too).
"""

from __future__ import annotations

import logging
import threading

import viser

logger = logging.getLogger(__name__)


class LoadingNotice:
    """A spinner notice in every browser of one Viser server, shown and cleared as a whole.

    Args:
        server: the scene's server.
    """

    def __init__(self, server: viser.ViserServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._message: str | None = None
        self._handles: dict[int, viser.NotificationHandle] = {}
        server.on_client_connect(self._connected)

    @property
    def message(self) -> str | None:
        """What is loading, or None when nothing is."""
        return self._message

    def show(self, message: str) -> None:
        """Put the notice up in every browser (replacing an earlier one)."""
        with self._lock:
            self._remove_all()
            self._message = message
            for client in self._server.get_clients().values():
                self._notify(client)

    def clear(self) -> None:
        """Take the notice down everywhere (nothing happens when none is up)."""
        with self._lock:
            self._message = None
            self._remove_all()

    def _connected(self, client: viser.ClientHandle) -> None:
        with self._lock:
            if self._message is not None:
                self._notify(client)

    def _notify(self, client: viser.ClientHandle) -> None:
        """Holds the lock."""
        assert self._message is not None
        self._handles[client.client_id] = client.add_notification(
            "Loading", self._message, loading=True, with_close_button=False
        )

    def _remove_all(self) -> None:
        """Holds the lock."""
        for handle in self._handles.values():
            try:
                handle.remove()
            except Exception:  # a browser that has gone: nothing left to remove
                logger.debug("a loading notice's browser is gone", exc_info=True)
        self._handles = {}
