"""Fuzz: a valid result file mutated many ways loads correctly or gives one ResultFileError;
the CLI exits 0 or 2 with one error line; the controller keeps what it shows on failure."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeScene

from page4d_viewer.cli import main
from page4d_viewer.errors import ResultFileError
from page4d_viewer.result.reconstruction import Cameras, Reconstruction
from page4d_viewer.viewer.controller import ViewerController
from page4d_viewer.viewer.paths import DataRoots
from page4d_viewer.viewer.runs import RunStore

CASES = 200


def base_file(path: Path) -> bytes:
    frames, height, width = 3, 14, 28
    extrinsics = np.tile(np.eye(3, 4), (frames, 1, 1))
    intrinsics = np.tile(np.array([[20.0, 0, 14], [0, 20.0, 7], [0, 0, 1]]), (frames, 1, 1))
    depth = np.linspace(1, 2, frames * height * width, dtype=np.float32).reshape(
        frames, height, width
    )
    recon = Reconstruction(
        images=np.full((frames, height, width, 3), 80, np.uint8),
        depth=depth,
        depth_conf=depth + 1,
        points=np.stack([depth] * 3, axis=-1),
        points_conf=depth + 1,
        cameras={
            "masked": Cameras(extrinsics, intrinsics),
            "unmasked": Cameras(extrinsics, intrinsics),
        },
        mask_score=np.zeros((frames, 1, 2), np.float32),
    )
    recon.metadata.timestamps = [0.0, 0.1, 0.2]
    recon.metadata.frame_indices = [0, 1, 2]
    return recon.save(path).read_bytes()


def members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as archive:
        return {name: archive[name] for name in archive.files}


def repack(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


WRONG_VALUES = ["x", 1, 1.5, None, [], {}, [1, "a"], True, float("nan")]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    kind = rng.integers(0, 9)
    if kind == 0:
        return data[: rng.integers(0, len(data))]
    if kind == 1:
        flipped = bytearray(data)
        for _ in range(rng.integers(1, 8)):
            flipped[rng.integers(0, len(flipped))] ^= 1 << int(rng.integers(0, 8))
        return bytes(flipped)
    arrays = members(data)
    name = str(rng.choice(sorted(arrays)))
    if kind == 2:
        del arrays[name]
    elif kind == 3:
        dtype = rng.choice([np.float16, np.float64, np.int8, np.uint8, np.bool_, np.complex64])
        arrays[name] = (
            np.asarray(arrays[name]).astype(dtype)
            if arrays[name].dtype.kind != "U"
            else np.asarray(3)
        )
    elif kind == 4:
        array = arrays[name]
        arrays[name] = (
            array.reshape(-1)[: max(0, array.size - 1)] if rng.random() < 0.5 else array[..., None]
        )
    elif kind in (5, 6) and arrays[name].dtype.kind == "f":
        array = arrays[name].copy()
        array.reshape(-1)[rng.integers(0, array.size, size=3)] = np.nan if kind == 5 else np.inf
        arrays[name] = array
    else:
        metadata = json.loads(str(arrays["metadata_json"]))
        field = str(rng.choice(sorted(metadata)))
        metadata[field] = WRONG_VALUES[int(rng.integers(0, len(WRONG_VALUES)))]
        arrays["metadata_json"] = np.asarray(json.dumps(metadata))
    return repack(arrays)


def test_mutated_result_files_load_or_give_one_error(tmp_path: Path, capsys) -> None:
    data = base_file(tmp_path / "base.npz")
    controller = ViewerController(FakeScene(), RunStore(tmp_path / "runs"), DataRoots([tmp_path]))
    good = controller.open_result(tmp_path / "base.npz")
    rng = np.random.default_rng(20261121)
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(CASES):
        path = tmp_path / f"case{case}.npz"
        path.write_bytes(mutate(data, rng))
        try:
            Reconstruction.load(path)
            outcomes["loaded"] += 1
        except ResultFileError as error:
            assert "\n" not in str(error)
            outcomes["refused"] += 1
        capsys.readouterr()
        code = main(["export", str(path), "--tum", str(tmp_path / f"t{case}.txt")])
        err = capsys.readouterr().err
        assert code in (0, 2), (case, err)
        if code == 2:
            assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
        shown = controller.current
        try:
            shown = controller.open_result(path)
        except ResultFileError:
            assert controller.current is shown
        path.unlink()
    assert controller.current is not good or outcomes["loaded"] == 0
    assert outcomes["refused"] > CASES // 4 and outcomes["loaded"] > 0, outcomes


@pytest.mark.parametrize("entry", ["../x.npy", "/abs.npy"])
def test_odd_member_names_do_not_crash(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "r.npz"
    path.write_bytes(base_file(tmp_path / "b.npz"))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(entry, b"junk")
    with pytest.raises(ResultFileError):
        Reconstruction.load(path)
