"""The scene's layers, in the order they are built, drawn and listed in the sidebar and the
legend. Adding a layer is one module (a `scene.layer.SceneLayer`) plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from page4d_viewer.viewer.scene.cameras import HeadCameraLayer
from page4d_viewer.viewer.scene.comparison import ComparisonLayer
from page4d_viewer.viewer.scene.geometric_cameras import GeometricCameraLayer
from page4d_viewer.viewer.scene.layer import Layer, SceneHost
from page4d_viewer.viewer.scene.mask_overlay import MaskOverlayLayer
from page4d_viewer.viewer.scene.tracks import TrackLayer

LayerFactory = Callable[[SceneHost], Layer]

# The points layer comes first and is built by the scene itself: it decides the clip every
# other layer draws (point source, stride) and which frames are on screen.
LAYERS: tuple[LayerFactory, ...] = (
    MaskOverlayLayer,  # the mask's tint of the points: opacity, threshold, its colour bar
    HeadCameraLayer,  # the camera head's poses, masked and unmasked, and the ground truth
    GeometricCameraLayer,  # poses solved from the network's depth and matches
    ComparisonLayer,  # a second run's cameras ("B"), laid over by the panel
    TrackLayer,  # point tracks, when the result has some
)
