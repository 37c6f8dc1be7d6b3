"""How far two camera estimates of the same clip disagree, without ground truth.

The batch index stores, for every run, how far the camera head's masked cameras are from the
poses solved from the network's own depth and matches (``geometry_masked``): where they
disagree is the failure case a researcher wants to find, and it needs no ground truth. Two
numbers, both free of the arbitrary world frame and scale of each estimate:

* rotation: the mean over frames of the angle (degrees) between the two estimates' rotations
  from frame i to frame 0. Rotations are taken relative to each estimate's first camera, not
  through a Sim(3) fit: the fit uses camera centres only, and on a short or nearly static path
  its rotation is ill-determined while the relative rotations are exact (the viewer's pose
  plots compare rotations the same way).
* translation: the RMS distance between the estimate's camera centres, Sim(3)-aligned onto the
  reference's, divided by the RMS spread of the reference's centres about their mean. It is 0
  when the two paths agree up to a similarity and at most 1 (shrinking the estimate to the
  reference's mean scores exactly 1), so it is comparable across clips of any scale; a head
  that barely moves scores about 1.

Extrinsics are (S, 3, 4) camera-from-world, OpenCV (see ``geometry.py``). Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.geometry import camera_centers, check_shape, similarity_align
from page4d_viewer.result.cameras import GEOMETRY_MASKED, MASKED

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction

# Below this RMS spread (relative to the centres' extent, floor 1 unit) the reference camera
# does not move: the translation disagreement would divide by nothing.
_STATIC_RELATIVE_SPREAD = 1e-9


@dataclass(frozen=True)
class Disagreement:
    """How far an estimate is from a reference estimate of the same frames.

    Attributes:
        rotation_deg: mean per-frame angle between the rotations relative to frame 0, degrees.
        translation: RMS distance of the Sim(3)-aligned centres over the reference's RMS
            spread, in [0, 1]; None when the reference camera does not move.
    """

    rotation_deg: float
    translation: float | None


def relative_rotation_angles_deg(extrinsics_a: np.ndarray, extrinsics_b: np.ndarray) -> np.ndarray:
    """Per-frame angle between two estimates' rotations from frame i to frame 0.

    Args:
        extrinsics_a: (S, 3, 4) camera-from-world.
        extrinsics_b: (S, 3, 4) camera-from-world of the same frames, any world frame.

    Returns:
        (S,) angles in degrees, in [0, 180]; frame 0's is 0.
    """
    check_shape(extrinsics_a, "extrinsics_a", ("S", 3, 4))
    check_shape(extrinsics_b, "extrinsics_b", ("S", 3, 4))
    if len(extrinsics_a) != len(extrinsics_b):
        raise ValueError(
            f"extrinsics_a and extrinsics_b cover {len(extrinsics_a)} and {len(extrinsics_b)} "
            "frames"
        )
    relative_a = _relative_to_first(np.asarray(extrinsics_a, np.float64)[:, :3, :3])
    relative_b = _relative_to_first(np.asarray(extrinsics_b, np.float64)[:, :3, :3])
    between = np.swapaxes(relative_b, -1, -2) @ relative_a
    cosine = (np.trace(between, axis1=-2, axis2=-1) - 1.0) / 2.0
    # sin from the antisymmetric part: arccos alone loses precision near 0 (1e-6 degrees for
    # identical rotations), where most frames of agreeing estimates sit.
    antisymmetric = between - np.swapaxes(between, -1, -2)
    sine = np.linalg.norm(antisymmetric[..., [2, 0, 1], [1, 2, 0]], axis=-1) / 2.0
    return np.degrees(np.arctan2(sine, cosine))


def _relative_to_first(R_cam_world: np.ndarray) -> np.ndarray:
    """(S, 3, 3) camera-from-world rotations -> (S, 3, 3) rotations from camera i to camera 0."""
    return R_cam_world[:1] @ np.swapaxes(R_cam_world, -1, -2)


def aligned_translation_disagreement(
    extrinsics: np.ndarray, reference_extrinsics: np.ndarray
) -> float | None:
    """RMS distance of the Sim(3)-aligned camera centres over the reference's RMS spread.

    Args:
        extrinsics: (S, 3, 4) camera-from-world of the estimate, any world frame and scale.
        reference_extrinsics: (S, 3, 4) camera-from-world of the reference.

    Returns:
        A number in [0, 1] (0: the paths agree up to a similarity), or None when the
        reference camera does not move.
    """
    check_shape(extrinsics, "extrinsics", ("S", 3, 4))
    check_shape(reference_extrinsics, "reference_extrinsics", ("S", 3, 4))
    centres = camera_centers(np.asarray(extrinsics, np.float64))
    reference = camera_centers(np.asarray(reference_extrinsics, np.float64))
    if centres.shape != reference.shape:
        raise ValueError(
            f"extrinsics and reference_extrinsics cover {len(centres)} and {len(reference)} frames"
        )
    spread = _rms(reference - reference.mean(axis=0))
    if spread <= _STATIC_RELATIVE_SPREAD * max(1.0, float(np.abs(reference).max())):
        return None
    aligned = similarity_align(centres, reference).apply(centres)
    return _rms(aligned - reference) / spread


def _rms(offsets: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(offsets**2, axis=-1))))


def disagreement(extrinsics: np.ndarray, reference_extrinsics: np.ndarray) -> Disagreement:
    """Rotation and translation disagreement of an estimate with a reference (see module).

    Args:
        extrinsics: (S, 3, 4) camera-from-world of the estimate.
        reference_extrinsics: (S, 3, 4) camera-from-world of the reference, same frames.
    """
    angles = relative_rotation_angles_deg(extrinsics, reference_extrinsics)
    translation = aligned_translation_disagreement(extrinsics, reference_extrinsics)
    return Disagreement(float(angles.mean()), translation)


def head_geometry_disagreement(recon: Reconstruction) -> Disagreement | None:
    """How far the camera head's masked cameras are from the geometric masked cameras.

    Returns:
        The Disagreement, or None when the result lacks either variant or any is not finite.
    """
    if MASKED not in recon.cameras or GEOMETRY_MASKED not in recon.cameras:
        return None
    head = recon.cameras[MASKED].extrinsics
    geometric = recon.cameras[GEOMETRY_MASKED].extrinsics
    if not (np.isfinite(head).all() and np.isfinite(geometric).all()):
        return None
    found = disagreement(head, geometric)
    if not math.isfinite(found.rotation_deg):
        return None
    return found


__all__ = [
    "Disagreement",
    "aligned_translation_disagreement",
    "disagreement",
    "head_geometry_disagreement",
    "relative_rotation_angles_deg",
]
