"""A synthetic clip on disk: the video, the ground-truth arrays and the scene, in one folder.

* ``clip.mp4``: the frames, H.264 (yuv420p, CRF 12) at the clip's fps;
* ``groundtruth.npz``: ``format_version`` (1), ``depth`` (S, H, W) float16 metres (relative
  error below 5e-4; float32 compresses ten times worse),
  ``extrinsics`` (S, 3, 4) and ``intrinsics`` (S, 3, 3) float64, ``timestamps`` (S,) seconds,
  ``dynamic_mask`` and ``valid`` as ``np.packbits`` of the flattened (S, H, W) bools,
  ``shape`` = (S, H, W), ``fps``;
* ``scene.json``: seed, the :func:`make_clip` settings, a one-line description and the
  full scene (room, textures, lights, objects and their motions). ``make_clip(**settings)``
  with these settings renders the clip again exactly.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from page4d_viewer import geometry
from page4d_viewer.sources.synthetic.clip import SyntheticClip
from page4d_viewer.sources.synthetic.scene import SyntheticScene, SyntheticSceneError

FORMAT_VERSION = 1
VIDEO_NAME = "clip.mp4"
GROUND_TRUTH_NAME = "groundtruth.npz"
"""The file that marks a synthetic sample folder (``sources.groundtruth`` reads it)."""
SCENE_NAME = "scene.json"

# BT.601 limited-range RGB -> YCbCr (what decoders assume for untagged SD video), for
# RGB in [0, 1]; rows give Y, Cb, Cr.
_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def _to_yuv_frame(image: np.ndarray, subsample: bool) -> Any:
    """An av.VideoFrame in yuv420p (``subsample``) or yuv444p from an (H, W, 3) uint8 image.

    Converting here (BT.601, chroma as 2x2 means) halves the colour error of swscale's
    default conversion at saturated texture edges (mean 1.8 vs 3.4 levels after decoding).
    """
    # Optional: the scene generator stays light; only the sample's video needs PyAV.
    import av

    ycbcr = (image / 255.0) @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET
    if not subsample:
        planes = np.clip(np.rint(ycbcr), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p")
    height, width = image.shape[:2]
    # Chroma is the mean of each 2x2 block, as swscale's default does for 4:2:0.
    chroma = ycbcr[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    luma = np.clip(np.rint(ycbcr[..., 0]), 0, 255).astype(np.uint8)
    chroma = np.clip(np.rint(chroma), 0, 255).astype(np.uint8)
    # PyAV takes the three planes back to back, viewed as (3 H / 2, W) rows.
    packed = np.concatenate([luma.ravel(), chroma[..., 0].ravel(), chroma[..., 1].ravel()])
    return av.VideoFrame.from_ndarray(packed.reshape(height * 3 // 2, width), format="yuv420p")


def _write_video(images: np.ndarray, path: Path, fps: float, crf: int) -> None:
    """Encode (S, H, W, 3) uint8 frames as H.264 (yuv420p, or yuv444p for odd sizes)."""
    # Optional: the scene generator stays light; only the sample's video needs PyAV.
    import av

    height, width = images.shape[1:3]
    # yuv420p (the format browsers play) needs even sizes.
    subsample = height % 2 == 0 and width % 2 == 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001), options={"crf": str(crf)}
        )
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if subsample else "yuv444p"
        # Multithreaded x264 output varies from run to run; one thread keeps it stable, except
        # that sizes that are not multiples of 16 can still differ in the edge blocks.
        stream.codec_context.thread_count = 1
        for image in images:
            container.mux(stream.encode(_to_yuv_frame(image, subsample)))
        container.mux(stream.encode())


def _read_video(path: Path) -> np.ndarray:
    """Decode every frame of a video: (S, H, W, 3) uint8."""
    # Optional: the scene generator stays light; only the sample's video needs PyAV.
    import av
    from av.error import FFmpegError

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (FFmpegError, OSError) as error:
        raise SyntheticSceneError(f"cannot decode {path}: {error}") from error
    if not frames:
        raise SyntheticSceneError(f"{path} holds no video frames")
    return np.stack(frames)


def save_ground_truth(clip: SyntheticClip, folder: str | Path, *, crf: int = 12) -> Path:
    """Write a clip and its ground truth into ``folder`` (format in the module docstring).

    Args:
        clip: the clip (rendered, or loaded earlier).
        folder: created if missing; files of the same names are replaced.
        crf: H.264 quality (0 lossless .. 51 worst); 12 decodes within a few levels.

    Returns:
        The folder.

    Raises:
        SyntheticSceneError: the folder cannot be created.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SyntheticSceneError(f"cannot create {folder}: {error.strerror}") from None
    _write_video(clip.images, folder / VIDEO_NAME, clip.fps, crf)
    np.savez_compressed(
        folder / GROUND_TRUTH_NAME,
        format_version=np.int64(FORMAT_VERSION),
        shape=np.array(clip.depth.shape, dtype=np.int64),
        fps=np.float64(clip.fps),
        timestamps=np.asarray(clip.timestamps, dtype=np.float64),
        depth=np.asarray(clip.depth, dtype=np.float16),
        extrinsics=np.asarray(clip.extrinsics, dtype=np.float64),
        intrinsics=np.asarray(clip.intrinsics, dtype=np.float64),
        dynamic_mask=np.packbits(np.asarray(clip.dynamic_mask, dtype=bool).ravel()),
        valid=np.packbits(np.asarray(clip.valid, dtype=bool).ravel()),
    )
    scene = {
        "format_version": FORMAT_VERSION,
        "description": clip.description,
        "settings": clip.settings,
        "conventions": (
            "world: metres, z up, floor z = 0 at the room centre; cameras OpenCV, "
            "extrinsics camera-from-world; depth = camera z; pixel centres at integer (u, v)"
        ),
        "scene": clip.scene.to_dict() if clip.scene is not None else None,
    }
    (folder / SCENE_NAME).write_text(json.dumps(scene, indent=1) + "\n")
    return folder


def _unpack_mask(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    return np.unpackbits(packed, count=count).astype(bool).reshape(shape)


def load_synthetic_clip(folder: str | Path) -> SyntheticClip:
    """Read a folder written by :func:`save_ground_truth`.

    The images are decoded from ``clip.mp4`` (so they differ from the rendered ones by the
    video compression); ``world_points`` are recomputed from depth and cameras; ``scene``
    is rebuilt from ``scene.json`` (None without one), so the clip can be rendered again.

    Args:
        folder: the folder.

    Returns:
        The clip.

    Raises:
        SyntheticSceneError: a file is missing, damaged, of another format version, or the
            video and the ground truth disagree.
    """
    folder = Path(folder)
    for name in (VIDEO_NAME, GROUND_TRUTH_NAME):
        if not (folder / name).is_file():
            raise SyntheticSceneError(
                f"{folder} has no {name}: not a synthetic ground-truth folder"
            )
    arrays = _read_arrays(folder / GROUND_TRUTH_NAME)
    shape = tuple(int(v) for v in arrays["shape"])
    images = _read_video(folder / VIDEO_NAME)
    if images.shape[:3] != shape:
        raise SyntheticSceneError(
            f"{folder / VIDEO_NAME} has frames of shape {images.shape[:3]}, "
            f"the ground truth expects {shape}"
        )
    description, settings, scene = _read_scene(folder / SCENE_NAME)
    depth = arrays["depth"].astype(np.float32)
    extrinsics, intrinsics = arrays["extrinsics"], arrays["intrinsics"]
    world_points = geometry.depth_to_world_points(depth.astype(np.float64), extrinsics, intrinsics)
    return SyntheticClip(
        images=images,
        depth=depth,
        extrinsics=extrinsics,
        intrinsics=intrinsics,
        world_points=world_points.astype(np.float32),
        dynamic_mask=_unpack_mask(arrays["dynamic_mask"], shape),
        valid=_unpack_mask(arrays["valid"], shape),
        fps=float(arrays["fps"]),
        timestamps=arrays["timestamps"],
        description=description,
        settings=settings,
        scene=scene,
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``groundtruth.npz``, after checking its format version."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise SyntheticSceneError(f"cannot read {path}: {error}") from error
    version = int(arrays.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise SyntheticSceneError(
            f"{path} has format version {version}, "
            f"this page4d_viewer reads version {FORMAT_VERSION}"
        )
    return arrays


def _read_scene(path: Path) -> tuple[str, dict[str, Any], SyntheticScene | None]:
    """Description, settings and scene from ``scene.json``; empty ones without the file."""
    description, settings, scene = "", {}, None
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise SyntheticSceneError(f"cannot read {path}: {error}") from error
        description, settings = saved.get("description", ""), saved.get("settings") or {}
        if saved.get("scene") is not None:
            scene = SyntheticScene.from_dict(saved["scene"])
    return description, settings, scene
