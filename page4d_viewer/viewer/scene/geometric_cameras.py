"""The geometric poses' layer: cameras solved from the network's own depth and matches
(`inference.geometric_poses`), weighted by the mask's keep probability ("geometry, masked") or
not ("geometry, unmasked").

They are drawn like the head's cameras (frusta, trajectories, a click flies into one), in
their own sidebar folder, so they can be hidden together while one compares the head with
the ground truth, and with their own line in the legend that says where they come from.
"""

from __future__ import annotations

from page4d_viewer.result.cameras import GEOMETRY_VARIANTS
from page4d_viewer.viewer.scene.cameras import CameraLayer
from page4d_viewer.viewer.scene.layer import FrameView, SceneHost

FOLDER = "Geometric poses"
ORIGIN = "solved from the network's depth and matches; masked: movers weighted out"


class GeometricCameraLayer(CameraLayer):
    """The geometric variants' frusta and trajectories (absent from older result files)."""

    name = "geometry"

    def __init__(self, host: SceneHost) -> None:
        super().__init__(host, GEOMETRY_VARIANTS, FOLDER)

    def legend(self, view: FrameView) -> str:
        line = super().legend(view)
        return line.replace(f"<b>{FOLDER}</b>", f"<b>{FOLDER}</b> ({ORIGIN})", 1)
