"""The 3-D scene in Viser: a host (`view.SceneView`: timeline, frame stream, lock) and its
layers (`layer` has the contract, `layers.LAYERS` the list): points, mask overlay, cameras per
group of pose variants, a compared run, point tracks.
"""

from page4d_viewer.viewer.scene.cameras import move_view
from page4d_viewer.viewer.scene.points import DEFAULT_MAX_POINTS
from page4d_viewer.viewer.scene.state import SceneState
from page4d_viewer.viewer.scene.view import SceneView

__all__ = ["DEFAULT_MAX_POINTS", "SceneState", "SceneView", "move_view"]
