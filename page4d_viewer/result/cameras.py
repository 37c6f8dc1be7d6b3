"""Cameras of a Reconstruction: one per frame and variant, and the variants' names and colours.

OpenCV convention, camera-from-world extrinsics, intrinsics in model-input pixels (see
geometry.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry

MASKED = "masked"
UNMASKED = "unmasked"
GROUND_TRUTH = "ground_truth"
GEOMETRY_MASKED = "geometry_masked"
GEOMETRY_UNMASKED = "geometry_unmasked"
VARIANTS = (MASKED, UNMASKED, GEOMETRY_MASKED, GEOMETRY_UNMASKED, GROUND_TRUTH)
"""Camera variants in display order: the camera head with the mask as set and with the mask
off (alpha = 0); the poses solved from the network's depth and matches with and without the
mask's keep probability as weights (``inference/geometric_poses.py``); ground truth."""

HEAD_VARIANTS = (MASKED, UNMASKED)
"""Variants predicted by the camera head."""

GEOMETRY_VARIANTS = (GEOMETRY_MASKED, GEOMETRY_UNMASKED)
"""Variants solved from the network's own depth and matches."""

ESTIMATED_VARIANTS = HEAD_VARIANTS + GEOMETRY_VARIANTS
"""Every predicted variant (all but the ground truth), in display order."""

VARIANT_COLORS: dict[str, tuple[int, int, int]] = {
    MASKED: (230, 85, 13),  # orange
    UNMASKED: (49, 130, 189),  # blue
    GEOMETRY_MASKED: (197, 27, 125),  # magenta: the mask's pair, solved from geometry
    GEOMETRY_UNMASKED: (84, 39, 143),  # purple
    GROUND_TRUTH: (35, 160, 70),  # green
}
"""RGB colour of each variant, in the scene, the panel's plots and the GLB frusta alike."""


@dataclass
class Cameras:
    """One camera per frame, in pixels of the model-input images (OpenCV, see geometry.py).

    Attributes:
        extrinsics: (S, 3, 4) camera-from-world ``T_cam_world``; world = first camera.
        intrinsics: (S, 3, 3) pinhole matrices in pixels.
    """

    extrinsics: npt.NDArray[np.float64]
    intrinsics: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        self.extrinsics = np.asarray(self.extrinsics, dtype=np.float64)
        self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        count = self.extrinsics.shape[0] if self.extrinsics.ndim == 3 else -1
        if self.extrinsics.shape != (count, 3, 4):
            raise ValueError(f"camera extrinsics must be (S, 3, 4), got {self.extrinsics.shape}")
        if self.intrinsics.shape != (count, 3, 3):
            raise ValueError(
                f"camera intrinsics must be ({count}, 3, 3) to match the extrinsics, "
                f"got {self.intrinsics.shape}"
            )

    @classmethod
    def from_pose_encoding(cls, pose_enc: npt.ArrayLike, image_hw: tuple[int, int]) -> Cameras:
        """Cameras from the network's (S, 9) pose encoding for images of size ``image_hw``."""
        extrinsics, intrinsics = geometry.pose_encoding_to_cameras(
            np.asarray(pose_enc, dtype=np.float64), image_hw
        )
        return cls(extrinsics, intrinsics)

    @property
    def num_frames(self) -> int:
        """Number of cameras S."""
        return int(self.extrinsics.shape[0])

    @property
    def T_world_cam(self) -> npt.NDArray[np.float64]:
        """(S, 3, 4) camera-to-world poses."""
        return geometry.invert_rigid(self.extrinsics)

    @property
    def centers(self) -> npt.NDArray[np.float64]:
        """(S, 3) optical centres in world coordinates."""
        return geometry.camera_centers(self.extrinsics)

    def select(self, frames: npt.ArrayLike) -> Cameras:
        """The cameras of the given frame positions (0-based, in this object's order)."""
        frames = np.asarray(frames, dtype=np.int64)
        return Cameras(self.extrinsics[frames], self.intrinsics[frames])

    def transformed(self, similarity: geometry.Similarity) -> Cameras:
        """These cameras re-expressed in a world moved by ``similarity`` (intrinsics unchanged)."""
        return Cameras(similarity.apply_to_extrinsics(self.extrinsics), self.intrinsics.copy())


def initial_view(
    extrinsic: npt.ArrayLike, scene_depth: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A viewpoint a little behind and above a camera, looking at what it sees.

    Args:
        extrinsic: (3, 4) camera-from-world of the camera to start from (the first frame's).
        scene_depth: typical depth of the scene in front of it (> 0), scene units.

    Returns:
        position (3,), look_at (3,) and up (3,) in world coordinates.
    """
    extrinsic = np.asarray(extrinsic, dtype=np.float64)
    if not np.isfinite(extrinsic).all():
        extrinsic = np.eye(3, 4)  # a broken first pose: start from the world origin instead
    if not np.isfinite(scene_depth) or scene_depth <= 0:
        scene_depth = 1.0
    T_world_cam = geometry.invert_rigid(extrinsic)
    R_world_cam, centre = T_world_cam[:3, :3], T_world_cam[:3, 3]
    down, forward = R_world_cam[:, 1], R_world_cam[:, 2]
    position = centre - 0.6 * scene_depth * forward - 0.25 * scene_depth * down
    return position, centre + scene_depth * forward, -down
