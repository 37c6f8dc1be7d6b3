"""The 3-D scene in Viser (see `view.py` for how it stays fast and which threads it runs).

`SceneView` composes the parts: `layers` (points, cameras), `nodes` (what was sent, the frame
stream), `timeline` (frame, fps, playback thread) and `controls` (the Viser sidebar).
"""

from page4d_viewer.viewer.scene.layers import move_view
from page4d_viewer.viewer.scene.state import DEFAULT_MAX_POINTS, SceneState
from page4d_viewer.viewer.scene.view import SceneView

__all__ = ["DEFAULT_MAX_POINTS", "SceneState", "SceneView", "move_view"]
