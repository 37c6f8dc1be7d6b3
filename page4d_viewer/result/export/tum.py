"""TUM RGB-D trajectories: write a Reconstruction's cameras, read a trajectory file back."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from page4d_viewer import geometry
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.cameras import Cameras
from page4d_viewer.result.export.common import atomic_write
from page4d_viewer.result.reconstruction import Reconstruction

logger = logging.getLogger(__name__)


def tum_lines(cameras: Cameras, timestamps: npt.NDArray[np.floating]) -> list[str]:
    """TUM trajectory lines ``timestamp tx ty tz qx qy qz qw`` (camera-to-world poses).

    Args:
        cameras: S cameras.
        timestamps: (S,) seconds.

    Returns:
        S lines without newlines.
    """
    T_world_cam = cameras.T_world_cam
    quaternions = geometry.rotation_to_quaternion(T_world_cam[:, :, :3])
    return [
        " ".join([f"{time:.6f}"] + [f"{value:.9f}" for value in (*position, *quaternion)])
        for time, position, quaternion in zip(
            timestamps, T_world_cam[:, :, 3], quaternions, strict=True
        )
    ]


def export_tum(
    recon: Reconstruction,
    path: str | os.PathLike[str],
    *,
    variant: str | None = None,
) -> list[Path]:
    """Camera trajectories in the TUM RGB-D text format (camera-to-world, seconds).

    Args:
        recon: the reconstruction.
        path: output file. When one variant is written (``variant`` given, or the only one
            present) it is written under exactly this name; otherwise one file per variant,
            named ``<stem>_<variant><suffix>`` beside it.
        variant: a single variant to write, or None for all.

    Returns:
        The paths written.
    """
    path = Path(path)
    variants = recon.variants if variant is None else (variant,)
    for name in variants:
        recon.camera_variant(name)  # an unknown variant fails before any file is written
    timestamps = recon.timestamps()
    written = []
    for name in variants:
        lines = tum_lines(recon.camera_variant(name), timestamps)
        target = path if len(variants) == 1 else path.with_name(f"{path.stem}_{name}{path.suffix}")
        if target.is_dir():
            raise Page4DError(f"trajectory output {target} is a folder, expected a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        header = f"# page4d_viewer {name} cameras: timestamp tx ty tz qx qy qz qw\n"
        atomic_write(target, (header + "\n".join(lines) + "\n").encode())
        written.append(target)
    logger.info("wrote trajectories %s", ", ".join(str(p) for p in written))
    return written


def read_tum(
    path: str | os.PathLike[str],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Read a TUM trajectory file (``#`` comments and blank lines skipped).

    Args:
        path: text file of ``timestamp tx ty tz qx qy qz qw`` lines.

    Returns:
        timestamps: (N,) seconds.
        T_world_cam: (N, 3, 4) camera-to-world poses.

    Raises:
        Page4DError: missing file or a malformed line (named by number).
    """
    path = Path(path)
    if not path.is_file():
        raise Page4DError(f"no trajectory file at {path}")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            values = [float(value) for value in line.replace(",", " ").split()]
        except ValueError:
            values = []
        if len(values) != 8:
            raise Page4DError(f"{path} line {number} is not 'timestamp tx ty tz qx qy qz qw'")
        rows.append(values)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    rotation = geometry.quaternion_to_rotation(table[:, 4:8])
    return table[:, 0], np.concatenate([rotation, table[:, 1:4, None]], axis=-1)
