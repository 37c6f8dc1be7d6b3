"""The wheel is a complete install: built, installed into a fresh venv, it runs the default model.

The wheel is built without build isolation (hatchling comes with the `test` extra), so this
works offline. The venv sees the system site-packages for the heavy dependencies (torch,
gradio, ...) but gets its own copy of page4d_viewer; the test checks that this copy, not the
clone or an editable install, is the one that runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CLIP = Path("samples") / "orbit_movers" / "clip.mp4"


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def clean_env() -> dict[str, str]:
    """The environment without anything that would point Python or the app at the clone."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "PAGE4D_DEFAULT_CHECKPOINT"}
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1", PYTHONNOUSERSITE="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, clean_env: dict[str, str]) -> Path:
    pytest.importorskip("hatchling", reason="the wheel is built with hatchling (`test` extra)")
    if not (REPO_ROOT / "assets" / "page4d_small.safetensors").is_file():
        pytest.skip("assets/ is not in this checkout, so there is nothing to package")
    out = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", str(REPO_ROOT), "--no-deps", "--no-build-isolation"]
        + ["-q", "-w", str(out)],
        cwd=out,
        env=clean_env,
    )
    (built,) = out.glob("page4d_viewer-*.whl")
    return built


def test_wheel_carries_the_assets(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert "page4d_viewer/assets/page4d_small.safetensors" in names
    shipped = sorted(
        path.relative_to(REPO_ROOT / "assets").as_posix()
        for path in (REPO_ROOT / "assets" / "samples").rglob("*")
        if path.is_file()
    )
    assert shipped, "no bundled samples in assets/samples"
    missing = [name for name in shipped if f"page4d_viewer/assets/{name}" not in names]
    assert not missing, f"samples left out of the wheel: {missing}"


def test_installed_wheel_runs_the_default_model(
    wheel: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    # No pip in the venv: the system pip, run by the venv's interpreter, installs into the venv
    # (seconds faster than bootstrapping a pip). --ignore-installed: an editable install of this
    # project in the system site-packages must be neither reused nor uninstalled.
    venv = tmp_path / "venv"
    _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        cwd=tmp_path,
        env=clean_env,
    )
    python = venv / "bin" / "python"
    _run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        cwd=tmp_path,
        env=clean_env,
    )
    work = tmp_path / "work"
    work.mkdir()
    where = json.loads(
        _run(
            [
                str(python),
                "-c",
                "import json, page4d_viewer, page4d_viewer.settings as s; print(json.dumps("
                "[page4d_viewer.__file__, str(s.assets_dir()), str(s.default_checkpoint_path())]))",
            ],
            cwd=work,
            env=clean_env,
        )
    )
    package_file, assets, checkpoint = (Path(path).resolve() for path in where)
    assert venv.resolve() in package_file.parents, f"imported {package_file}, not the venv's copy"
    assert venv.resolve() in assets.parents
    assert checkpoint.is_file() and venv.resolve() in checkpoint.parents

    clip = assets / SAMPLE_CLIP
    assert clip.is_file()
    out = _run(
        [str(venv / "bin" / "page4d-viewer"), "infer", str(clip), "--out", "r.npz"]
        + ["--max-frames", "4"],
        cwd=work,
        env=clean_env,
    )
    assert (work / "r.npz").is_file()
    assert "page4d_small.safetensors" in out
