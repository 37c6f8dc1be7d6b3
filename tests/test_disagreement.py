"""How far two camera estimates disagree (evaluation.disagreement): hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from page4d_viewer import geometry
from page4d_viewer.evaluation.disagreement import (
    aligned_translation_disagreement,
    disagreement,
    head_geometry_disagreement,
    relative_rotation_angles_deg,
)
from page4d_viewer.result.reconstruction import Cameras


def _extrinsics(centres: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
    """(S, 3, 4) camera-from-world of cameras at ``centres`` turned by ``yaw_deg`` about y."""
    T_world_cam = np.tile(np.eye(4)[:3], (len(centres), 1, 1))
    T_world_cam[:, :, :3] = Rotation.from_euler("y", yaw_deg[:, None], degrees=True).as_matrix()
    T_world_cam[:, :, 3] = centres
    return geometry.invert_rigid(T_world_cam)


STEPS = np.arange(5, dtype=np.float64)
CENTRES = np.stack([0.3 * STEPS, 0.05 * STEPS**2, 0.1 * STEPS], axis=-1)
PATH = _extrinsics(CENTRES, 4.0 * STEPS)
ELSEWHERE = geometry.Similarity(
    2.5, Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix(), np.array([1, -2, 3])
)


@pytest.mark.parametrize("frames", [2, 5])
def test_the_same_path_in_another_world_and_scale_agrees(frames: int) -> None:
    moved = ELSEWHERE.apply_to_extrinsics(PATH[:frames])
    found = disagreement(moved, PATH[:frames])
    assert found.rotation_deg == pytest.approx(0.0, abs=1e-6)
    assert found.translation == pytest.approx(0.0, abs=1e-9)


def test_rotation_is_the_mean_angle_relative_to_the_first_camera() -> None:
    turned = _extrinsics(CENTRES, 4.0 * STEPS + np.array([0, 0, 10.0, 0, 30.0]))
    angles = relative_rotation_angles_deg(turned, PATH)
    np.testing.assert_allclose(angles, [0, 0, 10, 0, 30], atol=1e-9)
    assert disagreement(turned, PATH).rotation_deg == pytest.approx(8.0)
    # A different first camera changes nothing: only rotations relative to it count.
    assert disagreement(_extrinsics(CENTRES, 4.0 * STEPS + 45.0), PATH).rotation_deg == (
        pytest.approx(0.0, abs=1e-6)
    )


def test_translation_is_zero_to_one_of_the_reference_spread() -> None:
    still = _extrinsics(np.zeros_like(CENTRES), 4.0 * STEPS)
    assert aligned_translation_disagreement(still, PATH) == pytest.approx(1.0)
    # The last centre off by d: the aligned residual is a share of the spread, below 1.
    off = CENTRES.copy()
    off[-1, 1] += 0.5
    partial = aligned_translation_disagreement(_extrinsics(off, 4.0 * STEPS), PATH)
    assert partial is not None and 0.05 < partial < 0.5
    # The reference camera does not move: nothing to measure against.
    assert aligned_translation_disagreement(PATH, still) is None


def test_mismatched_inputs_name_the_argument() -> None:
    with pytest.raises(ValueError, match="extrinsics_a"):
        relative_rotation_angles_deg(PATH[:, :3, :3], PATH)
    with pytest.raises(ValueError, match="cover 5 and 4 frames"):
        relative_rotation_angles_deg(PATH, PATH[:4])
    with pytest.raises(ValueError, match="cover 4 and 5 frames"):
        aligned_translation_disagreement(PATH[:4], PATH)


def test_head_vs_geometry_of_a_result(make_reconstruction) -> None:
    recon = make_reconstruction(frames=5)
    assert head_geometry_disagreement(recon) is None  # no geometric cameras
    head = recon.cameras["masked"]
    geometric = Cameras(
        _extrinsics(CENTRES, 4.0 * STEPS + np.array([0, 2.0, 4.0, 6.0, 8.0])), head.intrinsics
    )
    mixed = make_reconstruction(frames=5, cameras={"masked": head, "geometry_masked": geometric})
    found = head_geometry_disagreement(mixed)
    expected = disagreement(head.extrinsics, geometric.extrinsics)
    assert found == expected and found.rotation_deg > 1.0
    nan = Cameras(np.full_like(geometric.extrinsics, np.nan), head.intrinsics)
    assert (
        head_geometry_disagreement(
            make_reconstruction(frames=5, cameras={"masked": head, "geometry_masked": nan})
        )
        is None
    )
