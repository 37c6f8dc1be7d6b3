"""Model-input preprocessing: the authors' arithmetic, bit-exact pixels, and the pixel mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from page4d_viewer.errors import ClipError
from page4d_viewer.inference.preprocess import preprocess
from page4d_viewer.sources.framing import PreprocessMapping, plan_mapping


def random_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def authors_sequence(paths: list[Path], mode: str, target_size: int) -> torch.Tensor:
    """The authors' load_and_preprocess_images steps, re-typed here step by step.

    Open with PIL, convert to RGB, bicubic resize to the rounded size, ToTensor (uint8 / 255),
    centre-crop rows ("crop") or pad with 1.0 to a square ("pad"). The target size is a
    parameter here; the authors fix it at 518.
    """
    tensors = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        width, height = image.size
        if mode == "pad":
            if width >= height:
                new_width = target_size
                new_height = round(height * (new_width / width) / 14) * 14
            else:
                new_height = target_size
                new_width = round(width * (new_height / height) / 14) * 14
        else:
            new_width = target_size
            new_height = round(height * (new_width / width) / 14) * 14
        image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
        tensor = tensor.to(dtype=torch.get_default_dtype()).div(255)  # what ToTensor does
        if mode == "crop" and new_height > target_size:
            start_y = (new_height - target_size) // 2
            tensor = tensor[:, start_y : start_y + target_size, :]
        if mode == "pad":
            h_padding = target_size - tensor.shape[1]
            w_padding = target_size - tensor.shape[2]
            if h_padding > 0 or w_padding > 0:
                pad_top, pad_left = h_padding // 2, w_padding // 2
                tensor = F.pad(
                    tensor,
                    (pad_left, w_padding - pad_left, pad_top, h_padding - pad_top),
                    mode="constant",
                    value=1.0,
                )
        tensors.append(tensor)
    return torch.stack(tensors)


@pytest.mark.parametrize(
    ("width", "height", "mode", "target", "resized", "model", "offset"),
    [
        (854, 480, "crop", 518, (294, 518), (294, 518), (0, 0)),
        (854, 480, "pad", 518, (294, 518), (518, 518), (0, 112)),
        (480, 854, "crop", 518, (924, 518), (518, 518), (0, -203)),  # 921.6 -> 66 * 14
        (480, 854, "pad", 518, (518, 294), (518, 518), (112, 0)),
        (640, 480, "crop", 518, (392, 518), (392, 518), (0, 0)),  # 388.5 / 14 = 27.75 -> 28
        (500, 500, "pad", 518, (518, 518), (518, 518), (0, 0)),
        (854, 480, "crop", 252, (140, 252), (140, 252), (0, 0)),  # the small model's 252
        (1920, 1080, "pad", 252, (140, 252), (252, 252), (0, 56)),  # 141.75 -> 10 * 14
    ],
)
def test_sizes_match_hand_computed_values(
    width: int,
    height: int,
    mode: str,
    target: int,
    resized: tuple[int, int],
    model: tuple[int, int],
    offset: tuple[int, int],
) -> None:
    mapping = plan_mapping(height, width, mode, target)
    assert mapping.resized_size == resized
    assert mapping.model_size == model
    assert (mapping.offset_x, mapping.offset_y) == offset
    assert mapping.original_size == (height, width)


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize(("height", "width"), [(48, 85), (85, 48), (60, 60), (30, 100)])
@pytest.mark.parametrize("target_size", [70, 518])
def test_pixels_equal_the_authors_sequence(
    tmp_path: Path, mode: str, height: int, width: int, target_size: int
) -> None:
    frames = random_frames(2, height, width, seed=height * width)
    paths = []
    for index, frame in enumerate(frames):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(frame).save(paths[-1])
    expected = authors_sequence(paths, mode, target_size)
    result = preprocess(frames, mode=mode, target_size=target_size)
    assert result.images.dtype == torch.float32
    assert result.images.shape == expected.shape
    assert torch.equal(result.images, expected)


def test_uint8_frames_are_the_same_pixels(tmp_path: Path) -> None:
    result = preprocess(random_frames(3, 40, 90), mode="pad", target_size=56)
    assert result.frames.shape == (3, 56, 56, 3)
    assert result.frames.dtype == np.uint8
    again = torch.from_numpy(result.frames).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(result.images, again)
    # pad rows are white
    assert np.all(result.frames[:, : result.mapping.offset_y] == 255)


def test_accepts_a_clip_like_object() -> None:
    class Holder:
        frames = random_frames(1, 30, 40)

    assert preprocess(Holder(), target_size=28).images.shape == (1, 3, 28, 28)


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_mapping_follows_a_bright_dot(mode: str) -> None:
    frame = np.zeros((1, 120, 200, 3), dtype=np.uint8)
    frame[0, 80:84, 30:34] = 255  # a 4x4 dot centred at (32, 82) in clip pixels
    result = preprocess(frame, mode=mode, target_size=98)
    brightness = result.frames[0].astype(float).sum(axis=2)
    if mode == "pad":  # ignore the white padding
        x0, y0, x1, y1 = result.mapping.content_box
        mask = np.zeros_like(brightness, dtype=bool)
        mask[y0:y1, x0:x1] = True
        brightness = np.where(mask, brightness, 0)
    rows, cols = np.nonzero(brightness > brightness.max() * 0.5)
    centre_model = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
    assert np.allclose(result.mapping.to_original(centre_model), [32, 82], atol=1.5)
    assert np.allclose(result.mapping.from_original(np.array([32, 82])), centre_model, atol=1.0)


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_mapping_round_trip_and_corners(mode: str) -> None:
    mapping = plan_mapping(480, 854, mode, 518)
    points = np.random.default_rng(1).uniform(0, 500, size=(7, 5, 2))
    assert np.allclose(mapping.to_original(mapping.from_original(points)), points)
    corners = mapping.from_original(np.array([[0.0, 0.0], [854.0, 480.0]]))
    height, width = mapping.resized_size
    assert np.allclose(corners[0], [mapping.offset_x, mapping.offset_y])
    assert np.allclose(corners[1], [mapping.offset_x + width, mapping.offset_y + height])


def test_crop_mapping_accounts_for_cropped_rows() -> None:
    mapping = plan_mapping(854, 480, "crop", 518)  # 480 wide, 854 tall -> 924 rows, crop 203
    assert mapping.content_box == (0, 0, 518, 518)
    top_left_model = mapping.to_original(np.array([0.0, 0.0]))
    assert np.allclose(top_left_model, [0.0, 203 / mapping.scale_y])


def test_mapping_dict_round_trip() -> None:
    mapping = plan_mapping(480, 854, "pad", 252)
    data = mapping.to_dict()
    assert PreprocessMapping.from_dict(data) == mapping
    assert all(isinstance(value, (str, int, float, list)) for value in data.values())
    del data["scale_x"]
    with pytest.raises(ClipError, match="malformed preprocessing record"):
        PreprocessMapping.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "stretch"}, "mode must be 'crop' or 'pad', got 'stretch'"),
        ({"target_size": 500}, "target_size must be a positive multiple of 14, got 500"),
        ({"target_size": 0}, "target_size must be a positive multiple of 14, got 0"),
        ({"target_size": 14.0}, "target_size must be a positive multiple of 14, got 14.0"),
    ],
)
def test_bad_options_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ClipError) as caught:
        preprocess(random_frames(1, 20, 20), **kwargs)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((2, 20, 20, 3), dtype=np.float32), "must be an (S, H, W, 3) uint8 array"),
        (np.zeros((20, 20, 3), dtype=np.uint8), "must be an (S, H, W, 3) uint8 array"),
        (np.zeros((0, 20, 20, 3), dtype=np.uint8), "no frames to preprocess"),
        (np.zeros((1, 10, 20, 3), dtype=np.uint8), "smaller than 14 px"),
        (np.zeros((1, 14, 2000, 3), dtype=np.uint8), "too elongated"),
    ],
)
def test_bad_frames_are_refused(frames: np.ndarray, message: str) -> None:
    with pytest.raises(ClipError) as caught:
        preprocess(frames)
    assert message in str(caught.value)
