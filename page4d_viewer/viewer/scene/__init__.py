"""The 3-D scene in Viser: a host (`view.SceneView`: timeline, frame stream, lock) and its
layers (`layer` has the contract, `layers.LAYERS` the list): points, mask overlay, cameras per
group of pose variants, a compared run, point tracks.

The package's names load lazily, so that the pure modules here (`display`, `picking`,
`settings`) stay importable without Viser: the panel's plots use `display` alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from page4d_viewer.viewer.scene.cameras import move_view
    from page4d_viewer.viewer.scene.points import DEFAULT_MAX_POINTS
    from page4d_viewer.viewer.scene.state import SceneState
    from page4d_viewer.viewer.scene.view import SceneView

__all__ = ["DEFAULT_MAX_POINTS", "SceneState", "SceneView", "move_view"]

_HOMES = {
    "DEFAULT_MAX_POINTS": "points",
    "SceneState": "state",
    "SceneView": "view",
    "move_view": "cameras",
}


def __getattr__(name: str) -> Any:
    """`from page4d_viewer.viewer.scene import SceneView` imports Viser only then."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
