"""The cheap hostile inputs of benchmarks/hostile_inputs.py are refused under a memory budget."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile_inputs.py"
BUDGET_MIB = 1536


@pytest.mark.parametrize("case", ["huge_npy_header", "four_8k_pngs", "fps_1e7", "hostile_config"])
def test_hostile_input_is_refused_within_the_memory_budget(case: str, tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, str(SCRIPT), case, str(tmp_path)], capture_output=True, text=True
    )
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr[-500:]
    # RUSAGE_CHILDREN keeps the largest child so far; a rise means this child set it.
    if resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss > before:
        assert peak_mib < BUDGET_MIB
