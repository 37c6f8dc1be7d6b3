"""Reopening a result file reuses its decoded Reconstruction until the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from page4d_viewer.result.reconstruction import Cameras, Reconstruction, ResultFileError
from page4d_viewer.viewer.result_cache import ResultCache


def small_recon(frames: int = 2) -> Reconstruction:
    rng = np.random.default_rng(1)
    extrinsics = np.repeat(np.eye(3, 4)[None], frames, axis=0)
    intrinsics = np.repeat(np.array([[20.0, 0, 7], [0, 20.0, 7], [0, 0, 1]])[None], frames, 0)
    return Reconstruction(
        images=rng.integers(0, 255, (frames, 14, 14, 3), dtype=np.uint8),
        depth=np.ones((frames, 14, 14), dtype=np.float32),
        depth_conf=np.ones((frames, 14, 14), dtype=np.float32),
        points=rng.random((frames, 14, 14, 3), dtype=np.float32),
        points_conf=np.ones((frames, 14, 14), dtype=np.float32),
        cameras={"masked": Cameras(extrinsics, intrinsics)},
    )


def test_reopening_reuses_the_decoded_result_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "result.npz"
    small_recon().save(path)
    cache = ResultCache(kept=1)
    first = cache.load(path)
    assert cache.load(path) is first
    small_recon(frames=3).save(path)
    os.utime(path, ns=(1, 1))  # a rewrite is noticed even within the clock's resolution
    changed = cache.load(path)
    assert changed is not first and changed.num_frames == 3
    other = tmp_path / "other.npz"
    small_recon().save(other)
    cache.load(other)  # kept=1: the first file is forgotten
    assert cache.load(path) is not changed


def test_a_missing_file_is_still_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ResultFileError, match="no result file"):
        ResultCache().load(tmp_path / "gone.npz")
