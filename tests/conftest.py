"""Shared test fixtures: where the reference data lives, and skips when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

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
