"""Procedural dynamic scenes with exact ground truth, and the bundled sample clips.

A scene is a closed room (floor, ceiling, four walls) with procedural textures, static boxes
and balls, and moving objects: boxes, spheres and ellipsoids that sweep, circle, bounce,
spin and pulse in size, and optionally an articulated "person" made of ellipsoids walking
in a circle. Frames are rendered by casting one ray per pixel centre against these analytic
primitives, so depth, points, cameras and the dynamic mask are exact.

The flow, one module each: ``scene`` (what is in the room; world-frame conventions),
``textures`` (procedural albedo), ``renderer`` (ray casting and shading), ``layout`` (random
scene contents), ``camera_paths`` (orbit, walk, handheld), ``clip`` (:func:`make_clip`;
camera and depth conventions), ``correspondence`` (exact point tracks and visibility, and
query pixels for training them), ``input_tracks`` (the exact tracks of a result's
model-input queries), ``files`` (the ground-truth folder on disk), ``samples`` (the bundled
clips).
"""

from page4d_viewer.sources.synthetic.camera_paths import CAMERA_MOTIONS
from page4d_viewer.sources.synthetic.clip import (
    MOVER_SIZES,
    SceneSettings,
    SyntheticClip,
    in_first_camera,
    make_clip,
    make_scene,
)
from page4d_viewer.sources.synthetic.correspondence import (
    VISIBILITY_TOLERANCE,
    GroundTruthTracks,
    PixelMatches,
    ground_truth_matches,
    sample_query_pixels,
    track_ground_truth,
)
from page4d_viewer.sources.synthetic.files import (
    FORMAT_VERSION,
    GROUND_TRUTH_NAME,
    SCENE_NAME,
    VIDEO_NAME,
    load_synthetic_clip,
    save_ground_truth,
)
from page4d_viewer.sources.synthetic.renderer import ROOM_FACES, RenderedView
from page4d_viewer.sources.synthetic.samples import SAMPLES, make_samples
from page4d_viewer.sources.synthetic.scene import (
    Lighting,
    Motion,
    Person,
    SceneObject,
    SyntheticScene,
    SyntheticSceneError,
)
from page4d_viewer.sources.synthetic.textures import Texture

__all__ = [
    "CAMERA_MOTIONS",
    "FORMAT_VERSION",
    "GROUND_TRUTH_NAME",
    "MOVER_SIZES",
    "ROOM_FACES",
    "SAMPLES",
    "SCENE_NAME",
    "VIDEO_NAME",
    "VISIBILITY_TOLERANCE",
    "GroundTruthTracks",
    "PixelMatches",
    "Lighting",
    "Motion",
    "Person",
    "RenderedView",
    "SceneObject",
    "SceneSettings",
    "SyntheticClip",
    "SyntheticScene",
    "SyntheticSceneError",
    "Texture",
    "in_first_camera",
    "load_synthetic_clip",
    "ground_truth_matches",
    "make_clip",
    "make_samples",
    "make_scene",
    "sample_query_pixels",
    "save_ground_truth",
    "track_ground_truth",
]
