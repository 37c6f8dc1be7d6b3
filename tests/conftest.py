"""Shared test fixtures: where the reference data lives, and skips when it is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("PAGE4D_SHARED", REPO_ROOT.parent / "shared"))
PARITY_FIXTURE = SHARED_DIR / "reference" / "page4d_tiny_parity.safetensors"
FULL_MANIFEST = SHARED_DIR / "reference" / "page4d_full_state_dict_manifest.json"
REAL_CLIP = SHARED_DIR / "realclips" / "lady-running.mp4"

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: the shared reference data sits beside the repository in CI")
    return path


@pytest.fixture(scope="session")
def parity_fixture_path() -> Path:
    """The authors' outputs on the tiny configuration (float64 safetensors)."""
    return _require(PARITY_FIXTURE)


@pytest.fixture(scope="session")
def full_manifest_path() -> Path:
    """Key names and shapes of the full-size released checkpoints (JSON)."""
    return _require(FULL_MANIFEST)


@pytest.fixture(scope="session")
def real_clip_path() -> Path:
    """A real 65-frame 854x480 MPEG-4 video of a running person."""
    return _require(REAL_CLIP)


def _imports_among(modules: tuple[str, ...], among: tuple[str, ...]) -> list[str]:
    """The modules of packages `among` that a fresh interpreter loads to import `modules`."""
    code = (
        "import importlib, json, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *modules], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in among)]


@pytest.fixture
def imports_among():
    """`imports_among(modules, among)`: which modules of the packages `among` get imported.

    Runs in a subprocess, so what this test session already imported does not count.
    """
    return _imports_among


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and the CI machine has two shared cores."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


INSPECTED_FRAMES, INSPECTED_HEIGHT, INSPECTED_WIDTH = 3, 28, 42  # 2 x 3 patches of 14 pixels


def _make_inspected(same_variants: bool = False):
    """A small Reconstruction with attention (layers 4 and 9, query frames 0 and 2) and
    feature PCA: a plane at depth 2 seen by a camera sliding along x; the right patch column
    is dynamic. Query q's masked camera token in layer row l attends most to patch
    (l, q // 2) of key frame q; `same_variants` makes "unmasked" equal to "masked"."""
    from page4d_viewer import geometry
    from page4d_viewer.result.reconstruction import Cameras, Reconstruction

    frames, height, width = INSPECTED_FRAMES, INSPECTED_HEIGHT, INSPECTED_WIDTH
    grid = (height // 14, width // 14)
    rng = np.random.default_rng(0)
    K = np.array([[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]])
    intrinsics = np.repeat(K[None], frames, axis=0)
    extrinsics = np.zeros((frames, 3, 4))
    extrinsics[:, :, :3] = np.eye(3)
    extrinsics[:, 0, 3] = -0.1 * np.arange(frames)
    depth = np.full((frames, height, width), 2.0, dtype=np.float32)
    mask = np.full((frames, *grid), 0.4, dtype=np.float32)
    mask[:, :, -1] = -0.4  # dynamic probability 0.9
    queries = [0, 2]
    weights = np.full((2, len(queries), frames, grid[0] * grid[1] + 1), 1.0)
    for layer in range(2):
        for column, query in enumerate(queries):
            weights[layer, column, query, 1 + layer * grid[1] + query // 2] = 20.0
    weights /= weights.sum(axis=(2, 3), keepdims=True)
    masked = weights[..., 1:].reshape(2, len(queries), frames, *grid)
    unmasked = masked.copy() if same_variants else np.roll(masked, 1, axis=-1)
    special = weights[..., 0]
    return Reconstruction(
        images=rng.integers(0, 255, (frames, height, width, 3), dtype=np.uint8),
        depth=depth,
        depth_conf=np.full((frames, height, width), 3.0, np.float32),
        points=geometry.depth_to_world_points(depth, extrinsics, intrinsics),
        points_conf=np.full((frames, height, width), 5.0, np.float32),
        cameras={
            "masked": Cameras(extrinsics, intrinsics),
            "unmasked": Cameras(extrinsics, intrinsics),
        },
        mask_score=mask,
        attention={"masked": masked, "unmasked": unmasked},
        attention_special={"masked": special, "unmasked": special},
        attention_layers=[4, 9],
        attention_query_frames=queries,
        feature_pca=rng.integers(0, 256, (2, frames, *grid, 3), dtype=np.uint8),
        feature_layers=[4, 9],
    )


@pytest.fixture(scope="session")
def inspected_recon():
    """`inspected_recon(same_variants=False)`: the small Reconstruction with attention."""
    return _make_inspected
