"""What a click in the scene does: probe the point (the default) or seed a point track.

One Viser click handler per scene hands each click ray to the callbacks registered for the
current mode only, so turning track seeding on takes the clicks away from the probe and
turning it off gives them back, without either knowing of the other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from page4d_viewer.result.mask import DisplayError

if TYPE_CHECKING:
    import viser

logger = logging.getLogger(__name__)

ClickMode = Literal["probe", "track"]
""""probe": a click probes the point under it; "track": it seeds a point track there."""
CLICK_MODES: tuple[ClickMode, ...] = get_args(ClickMode)

ClickCallback = Callable[[np.ndarray, np.ndarray], None]
"""callback(ray_origin (3,), ray_direction (3,)), world coordinates."""


class ClickRouter:
    """The scene's click mode and the callbacks of each mode.

    Args:
        server: the scene's Viser server (its click handler is registered on first use).
    """

    def __init__(self, server: viser.ViserServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._mode: ClickMode = CLICK_MODES[0]
        self._callbacks: dict[str, list[ClickCallback]] = {mode: [] for mode in CLICK_MODES}
        self._registered = False

    @property
    def mode(self) -> ClickMode:
        """The current click mode, one of CLICK_MODES."""
        return self._mode

    def set_mode(self, mode: str) -> None:
        """Choose what clicks do. Raises DisplayError for an unknown mode."""
        if mode not in CLICK_MODES:
            raise DisplayError(f"click mode must be one of {', '.join(CLICK_MODES)}, got {mode!r}")
        with self._lock:
            self._mode = mode  # type: ignore[assignment]  # checked just above

    def add(self, callback: ClickCallback, mode: str = CLICK_MODES[0]) -> None:
        """Call `callback(origin, direction)` for clicks made while `mode` is on."""
        if mode not in CLICK_MODES:
            raise DisplayError(f"click mode must be one of {', '.join(CLICK_MODES)}, got {mode!r}")
        with self._lock:
            self._callbacks[mode].append(callback)
            register = not self._registered
            self._registered = True
        if register:
            self._server.scene.on_click()(self._clicked)

    def dispatch(self, origin: np.ndarray, direction: np.ndarray) -> None:
        """Hand a click ray to the current mode's callbacks (one that raises is logged)."""
        with self._lock:
            callbacks = list(self._callbacks[self._mode])
        for callback in callbacks:
            try:
                callback(np.asarray(origin), np.asarray(direction))
            except Exception:
                logger.exception("a scene click callback failed")

    def _clicked(self, event: viser.SceneClickEvent) -> None:
        self.dispatch(np.asarray(event.ray_origin), np.asarray(event.ray_direction))
