"""Shared test fixtures: where the reference data lives, and skips when it is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
