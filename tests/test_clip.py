"""Loading clips from every kind of source, and refusing every bad one with one clear line."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import png_header
from PIL import Image

import page4d_viewer.sources.clip as clip_module
import page4d_viewer.sources.video as video_module
from page4d_viewer.errors import ClipError
from page4d_viewer.sources.clip import Clip, SourceLike, load_clip
from page4d_viewer.sources.sampling import ALL_FRAMES, FrameSampling


def shade(index: int) -> int:
    """A flat grey level per frame index, far enough apart to survive lossy coding."""
    return 8 + 16 * index


def write_video(
    path: Path,
    count: int = 12,
    *,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    codec: str = "mpeg4",
    gop: int | None = None,
    noise: bool = False,
    options: dict | None = None,
) -> Path:
    """A small video whose frame i is flat grey shade(i) (or random noise)."""
    width, height = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        for index in range(count):
            if noise:
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            else:
                pixels = np.full((height, width, 3), shade(index % 15), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, value: int = 128, size: tuple[int, int] = (40, 30)) -> Path:
    Image.new("RGB", size, (value, value, value)).save(path)
    return path


def truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def mean_levels(clip: Clip) -> list[float]:
    return [float(frame.mean()) for frame in clip.frames]


def assert_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def assert_refused(
    source: SourceLike, *fragments: str, sampling: FrameSampling = ALL_FRAMES
) -> None:
    """`load_clip(source, sampling)` raises a ClipError whose message is one line holding
    every fragment."""
    with pytest.raises(ClipError) as caught:
        load_clip(source, sampling)
    assert_one_line(caught, *fragments)


# ---------------------------------------------------------------- videos


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [
        (".mp4", "mpeg4"),
        (".mov", "mpeg4"),
        (".m4v", "mpeg4"),
        (".mkv", "mpeg4"),
        (".avi", "mpeg4"),
        (".webm", "libvpx-vp9"),
        (".mp4", "libx264"),
    ],
)
def test_video_containers_load_every_frame_in_order(
    tmp_path: Path, suffix: str, codec: str
) -> None:
    clip = load_clip(write_video(tmp_path / f"v{suffix}", 12, codec=codec))
    assert clip.kind == "video"
    assert clip.frames.shape == (12, 48, 64, 3)
    assert clip.frames.dtype == np.uint8
    assert clip.frame_indices.tolist() == list(range(12))
    assert np.allclose(clip.timestamps, np.arange(12) / 10)
    assert clip.source_fps == pytest.approx(10.0)
    assert clip.source_frame_count == 12
    assert np.all(np.diff(mean_levels(clip)) > 5)  # frame i really is the i-th picture
    assert clip.original_sizes.tolist() == [[48, 64]] * 12
    assert clip.notes == []


@pytest.mark.parametrize(
    ("rotation", "corner"),
    [
        (-90, (0, -1)),  # a phone's portrait clip: turned a quarter clockwise, top-right
        (90, (-1, 0)),  # a quarter counter-clockwise: the marker lands bottom-left
        (180, (-1, -1)),
        (0, (0, 0)),
    ],
)
def test_video_rotation_flag_is_applied(tmp_path: Path, rotation: int, corner: tuple) -> None:
    # The display matrix is written with PyAV's VideoStream.set_display_rotation (stored as
    # the mp4 track header's matrix), as phones record portrait video.
    width, height = 64, 48
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(rotation)
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        pixels[:16, :16] = 255  # a white marker in the stored top-left corner
        for _ in range(2):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = load_clip(path)
    quarter = rotation % 180 != 0
    assert clip.frames.shape[1:3] == ((width, height) if quarter else (height, width))
    frame = clip.frames[0].mean(axis=-1)
    rows, cols = frame.shape
    row = 8 if corner[0] == 0 else rows - 8
    col = 8 if corner[1] == 0 else cols - 8
    assert frame[row, col] > 200, f"marker not at {corner}"
    assert frame[rows - 1 - row, cols - 1 - col] < 50
    assert (any("upright" in note for note in clip.notes)) == (rotation != 0)


def test_video_sampling_options(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", 30)
    full = load_clip(path)
    cases = {
        "stride": (dict(stride=4), [0, 4, 8, 12, 16, 20, 24, 28]),
        "max_frames": (dict(max_frames=4), [0, 10, 19, 29]),
        "fps": (dict(fps=2.5), [0, 4, 8, 12, 16, 20, 24, 28]),
        "index range": (dict(start=5, end=9), [5, 6, 7, 8]),
        "time range": (dict(start_time=1.0, end_time=1.35), [10, 11, 12, 13]),
    }
    for name, (options, expected) in cases.items():
        clip = load_clip(path, FrameSampling(**options))
        assert clip.frame_indices.tolist() == expected, name
        assert np.allclose(clip.timestamps, np.asarray(expected) / 10), name
        assert np.array_equal(clip.frames, full.frames[expected]), name


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])  # libx264 reorders (B-frames)
def test_sparse_sampling_seeks_and_matches_a_full_decode(
    tmp_path: Path, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_video(tmp_path / "long.mp4", 90, codec=codec, gop=6, noise=True)
    full = load_clip(path)
    seeks: list[int | None] = []
    decode_from = video_module._indexed_frames

    def recording(container, stream, info, seek_to, notes):  # records where decoding starts
        seeks.append(seek_to)
        return decode_from(container, stream, info, seek_to, notes)

    monkeypatch.setattr(video_module, "_indexed_frames", recording)
    for options in (dict(max_frames=4), dict(start=40, max_frames=3), dict(stride=29)):
        seeks.clear()
        sparse = load_clip(path, FrameSampling(**options))
        assert np.array_equal(sparse.frames, full.frames[sparse.frame_indices]), options
        assert any(keyframe is not None and keyframe > 0 for keyframe in seeks), options


def test_truncated_video_returns_the_frames_that_exist(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mkv", 30, noise=True)
    truncate(path, 0.6)
    clip = load_clip(path)
    assert 1 <= clip.num_frames < 30
    assert any("truncated" in note for note in clip.notes)


def test_truncated_faststart_mp4_notes_the_missing_frames(tmp_path: Path) -> None:
    options = {"movflags": "faststart"}  # index first, so the cut falls into the pictures
    path = truncate(write_video(tmp_path / "cut.mp4", 30, noise=True, options=options), 0.6)
    clip = load_clip(path, FrameSampling(max_frames=4))
    assert clip.num_frames == 4
    assert clip.frame_indices[-1] < 29
    assert any("promises 30 frames" in note for note in clip.notes)


def test_truncated_mp4_without_index_is_refused(tmp_path: Path) -> None:
    path = truncate(write_video(tmp_path / "cut.mp4", 30, noise=True), 0.6)
    assert_refused(path, "cut.mp4 is not a readable video", "truncated")


def test_empty_video_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert_refused(tmp_path / "empty.mp4", "empty.mp4 is empty (0 bytes)")


def test_text_with_a_video_extension_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.webm").write_text("this is not a video\n" * 50)
    assert_refused(tmp_path / "notes.webm", "notes.webm is not a readable video")


def test_tiny_video_frames_are_refused(tmp_path: Path) -> None:
    path = write_video(tmp_path / "tiny.mp4", 3, size=(16, 8))
    assert_refused(path, "tiny.mp4 is 16x8", "at least 14 px")


def test_sampling_that_leaves_nothing_is_refused(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", 12)
    assert_refused(
        path,
        "no frames left after sampling (the source has 12)",
        sampling=FrameSampling(start_time=5.0),
    )


def test_progress_reports_each_frame(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    load_clip(
        write_video(tmp_path / "v.mp4", 12),
        FrameSampling(stride=3),
        progress=lambda *a: calls.append(a),
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_clip_over_the_memory_limit_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clip_module, "MAX_CLIP_BYTES", 64 * 48 * 3 * 5)
    path = write_video(tmp_path / "v.mp4", 12)
    assert load_clip(path, FrameSampling(max_frames=5)).num_frames == 5
    assert_refused(path, "12 frames of 64x48", "use stride or max_frames")


# ---------------------------------------------------------------- GIFs and still images


def write_gif(path: Path, durations: list[int]) -> Path:
    frames = [
        Image.new("RGB", (32, 24), (shade(i), 0, 255 - shade(i))) for i in range(len(durations))
    ]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path


def test_gif_timestamps_follow_frame_delays(tmp_path: Path) -> None:
    clip = load_clip(write_gif(tmp_path / "a.gif", [100, 200, 100, 300, 100]))
    assert clip.kind == "animation"
    assert clip.frames.shape == (5, 24, 32, 3)
    assert np.allclose(clip.timestamps, [0.0, 0.1, 0.3, 0.4, 0.7])
    assert clip.source_fps == pytest.approx(1 / 0.175)
    assert np.all(np.diff(clip.frames[:, 0, 0, 0].astype(int)) > 5)


def test_gif_sampling_by_time(tmp_path: Path) -> None:
    path = write_gif(tmp_path / "a.gif", [100] * 10)
    assert load_clip(path, FrameSampling(fps=5)).frame_indices.tolist() == [0, 2, 4, 6, 8]
    by_time = load_clip(path, FrameSampling(start_time=0.3, end_time=0.6))
    assert by_time.frame_indices.tolist() == [3, 4, 5]


def test_still_image_is_a_one_frame_clip_without_timing(tmp_path: Path) -> None:
    clip = load_clip(write_image(tmp_path / "one.jpg", size=(40, 30)))
    assert clip.kind == "image"
    assert clip.frames.shape == (1, 30, 40, 3)
    assert clip.frame_indices.tolist() == [0]
    assert np.isnan(clip.timestamps).all()
    assert clip.source_fps is None


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 10, 10))  # red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    clip = load_clip(tmp_path / "phone.jpg")
    assert clip.frames.shape == (1, 40, 20, 3)
    assert clip.original_sizes.tolist() == [[40, 20]]
    top_right = clip.frames[0, 2, -3]
    assert top_right[0] > 200 and top_right[2] < 60


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20, 4), dtype=np.uint8)
    pixels[:, :10, 3] = 0  # transparent black -> white
    pixels[:, 10:, 3] = 128  # half-covered black -> mid grey
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    frame = load_clip(tmp_path / "a.png").frames[0]
    assert np.all(frame[:, :10] == 255)
    assert np.all(np.abs(frame[:, 10:].astype(int) - 127) <= 1)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: Image.new("L", (16, 16), 77), (77, 77, 77)),
        (lambda: Image.new("1", (16, 16), 1), (255, 255, 255)),
        (lambda: Image.new("RGB", (16, 16), (200, 30, 60)).quantize(4), (200, 30, 60)),
        (lambda: Image.new("CMYK", (16, 16), (0, 255, 255, 0)), (255, 0, 0)),
        (lambda: Image.fromarray(np.full((16, 16), 257 * 100, dtype=np.uint16)), (100, 100, 100)),
        (lambda: Image.fromarray(np.full((16, 16), 65535, dtype=np.uint16)), (255, 255, 255)),
    ],
    ids=["gray", "bilevel", "palette", "cmyk", "16-bit", "16-bit-max"],
)
def test_image_modes_become_8bit_rgb(tmp_path: Path, make, expected: tuple) -> None:
    image = make()
    path = tmp_path / ("x.tiff" if image.mode in ("CMYK", "I;16") else "x.png")
    image.save(path)
    frame = load_clip(path).frames[0]
    assert frame.dtype == np.uint8 and frame.shape == (16, 16, 3)
    assert np.all(frame == np.asarray(expected, dtype=np.uint8))


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.info["transparency"] = 1
    image.save(tmp_path / "p.png", transparency=1)
    assert np.all(load_clip(tmp_path / "p.png").frames[0] == 255)


def test_a_huge_image_is_refused_from_its_header(tmp_path: Path) -> None:
    (tmp_path / "huge.png").write_bytes(png_header(20000, 20000))
    assert_refused(tmp_path / "huge.png", "huge.png", "MP limit")


def test_an_image_over_our_limit_but_under_pils_is_refused(tmp_path: Path) -> None:
    (tmp_path / "big.png").write_bytes(png_header(9000, 9000))
    assert_refused(
        tmp_path / "big.png", "big.png (9000x9000)", "over the limit", "PAGE4D_MAX_FRAME_PIXELS"
    )


def test_a_tiny_image_is_refused(tmp_path: Path) -> None:
    assert_refused(
        write_image(tmp_path / "dot.png", size=(10, 40)), "dot.png is 10x40", "at least 14 px"
    )


def test_a_broken_single_image_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert_refused(tmp_path / "bad.jpg", "bad.jpg is not a readable image")


def test_time_options_are_refused_for_images(tmp_path: Path) -> None:
    assert_refused(
        write_image(tmp_path / "one.png"),
        "need a source with timing",
        sampling=FrameSampling(fps=5),
    )


# ---------------------------------------------------------------- folders, zips, lists


def test_folder_is_natural_sorted_and_skips_non_images(tmp_path: Path) -> None:
    for number in (10, 2, 1):
        write_image(tmp_path / f"frame{number}.png", value=number * 20)
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    clip = load_clip(tmp_path)
    assert clip.kind == "folder"
    assert clip.frame_names == ["frame1.png", "frame2.png", "frame10.png"]
    assert [int(frame[0, 0, 0]) for frame in clip.frames] == [20, 40, 200]
    assert np.isnan(clip.timestamps).all() and clip.source_fps is None
    assert clip.notes == ["skipped 1 non-image file: readme.txt"]


def test_folder_sampling_by_index(tmp_path: Path) -> None:
    for number in range(10):
        write_image(tmp_path / f"{number:03d}.jpg", value=number * 20)
    clip = load_clip(tmp_path, FrameSampling(start=2, end=9, stride=3))
    assert clip.frame_indices.tolist() == [2, 5, 8]
    assert clip.frame_names == ["002.jpg", "005.jpg", "008.jpg"]
    assert load_clip(tmp_path, FrameSampling(max_frames=3)).frame_indices.tolist() == [0, 4, 9]


def test_frames_of_another_size_are_letterboxed(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", value=0, size=(64, 48))
    write_image(tmp_path / "b.png", value=0, size=(24, 48))  # narrower: white bars left/right
    write_image(tmp_path / "c.png", value=0, size=(128, 48))  # wider: white bars top/bottom
    clip = load_clip(tmp_path)
    assert clip.frames.shape == (3, 48, 64, 3)
    assert clip.original_sizes.tolist() == [[48, 64], [48, 24], [48, 128]]
    assert np.all(clip.frames[1][:, :20] == 255) and np.all(clip.frames[1][:, 20:44] == 0)
    assert np.all(clip.frames[2][:12] == 255) and np.all(clip.frames[2][12:36] == 0)
    assert clip.notes == [
        "2 frame(s) of another size were fitted into the first frame's 64x48"
        " (aspect kept, white padding)"
    ]


def test_broken_images_in_a_folder_are_skipped_with_a_note(tmp_path: Path) -> None:
    write_image(tmp_path / "0.png", value=10)
    (tmp_path / "1.png").write_bytes(b"garbage, not a png")
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "2.png")
    truncate(tmp_path / "2.png", 0.5)  # header fine, pixels cut off
    write_image(tmp_path / "3.png", value=30)
    clip = load_clip(tmp_path)
    assert clip.frame_names == ["0.png", "3.png"]
    assert "skipped 1 unreadable image: 1.png" in clip.notes
    assert "skipped 1 damaged image(s): 2.png" in clip.notes


def test_a_folder_of_only_broken_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.jpg").write_bytes(b"")
    assert_refused(tmp_path, "no readable image", "a.png, b.jpg")


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    assert_refused(tmp_path, "is empty")


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    assert_refused(tmp_path, "has no images")


def test_sample_folder_loads_its_one_video(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", count=6)
    (tmp_path / "groundtruth.npz").write_bytes(b"not read here")
    (tmp_path / "scene.json").write_text("{}")
    clip = load_clip(tmp_path)
    assert clip.source == str(video)
    assert clip.num_frames == 6


def test_bundled_sample_folder_is_its_clip_with_its_ground_truth() -> None:
    from page4d_viewer.inference.predictor import find_ground_truth

    folder = Path(__file__).resolve().parents[1] / "assets" / "samples" / "orbit_movers"
    clip = load_clip(folder, FrameSampling(max_frames=2))
    assert Path(clip.source) == folder / "clip.mp4"
    assert find_ground_truth(clip.source) == folder


def test_folder_with_two_videos_is_still_refused(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mp4", count=2)
    write_video(tmp_path / "b.mp4", count=2)
    assert_refused(tmp_path, "has no images")


def png_bytes(value: int, size: tuple[int, int] = (20, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_zip_with_nested_folders(tmp_path: Path) -> None:
    path = tmp_path / "frames.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("clip/frame10.png", png_bytes(100))
        archive.writestr("clip/frame2.png", png_bytes(20))
        archive.writestr("clip/frame1.png", png_bytes(10))
        archive.writestr("clip/readme.txt", "hello")
        archive.writestr("clip/.hidden.png", png_bytes(1))
        archive.writestr("__MACOSX/clip/._frame1.png", b"resource fork")
        archive.writestr("clip/empty/", b"")
    clip = load_clip(path)
    assert clip.kind == "zip"
    assert clip.frame_names == ["clip/frame1.png", "clip/frame2.png", "clip/frame10.png"]
    assert [int(frame[0, 0, 0]) for frame in clip.frames] == [10, 20, 100]
    assert clip.notes == ["skipped 1 non-image entry: clip/readme.txt"]


@pytest.mark.parametrize("name", ["../evil.png", "frames/../../evil.png", "/etc/evil.png"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.png", png_bytes(10))
        archive.writestr(name, png_bytes(20))
    assert_refused(path, "would escape the extraction folder")


def test_zip_without_images_and_broken_zip_are_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "text.zip", "w") as archive:
        archive.writestr("a.txt", "x")
    assert_refused(tmp_path / "text.zip", "zip text.zip holds no images")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert_refused(tmp_path / "broken.zip", "broken.zip is not a readable zip")


def test_list_of_paths_keeps_the_given_order(tmp_path: Path) -> None:
    paths = [write_image(tmp_path / f"{n}.png", value=n * 10) for n in (3, 1, 2)]
    clip = load_clip([str(paths[0]), paths[1], paths[2]])
    assert clip.kind == "list"
    assert [int(frame[0, 0, 0]) for frame in clip.frames] == [30, 10, 20]
    assert clip.source == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("make", "fragments"),
    [
        (lambda tmp: [], ("the list of images is empty",)),
        (lambda tmp: [tmp / "missing.png"], ("image not found", "missing.png")),
        (lambda tmp: [write_video(tmp / "v.mp4", 2)], ("v.mp4 is not a supported image",)),
    ],
)
def test_bad_lists_are_refused(tmp_path: Path, make, fragments: tuple) -> None:
    assert_refused(make(tmp_path), *fragments)


# ---------------------------------------------------------------- other bad input


def test_missing_path_is_refused(tmp_path: Path) -> None:
    assert_refused(tmp_path / "nowhere.mp4", "source not found", "nowhere.mp4")


def test_unsupported_extension_is_refused(tmp_path: Path) -> None:
    (tmp_path / "scene.txt").write_text("x")
    assert_refused(tmp_path / "scene.txt", "unsupported file type '.txt'", ".mp4", ".zip")


def test_bad_options_fail_before_the_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ClipError) as caught:  # FrameSampling itself refuses the stride
        load_clip(tmp_path / "nowhere.mp4", FrameSampling(stride=0))
    assert_one_line(caught, "stride must be a whole number >= 1, got 0")


def test_a_non_path_source_is_refused() -> None:
    assert_refused(
        42,  # type: ignore[arg-type]
        "a clip source is a path or a list of paths, got int",
    )


# ---------------------------------------------------------------- the real clip


def test_real_clip_loads_whole(real_clip_path: Path) -> None:
    clip = load_clip(real_clip_path)
    assert clip.frames.shape == (65, 480, 854, 3)
    assert clip.source_fps == pytest.approx(30.0)
    assert np.allclose(clip.timestamps, np.arange(65) / 30)
    assert clip.notes == []
    assert all(frame.std() > 20 for frame in clip.frames[::16])  # real pictures, not blank


def test_real_clip_sampling(real_clip_path: Path) -> None:
    assert load_clip(real_clip_path, FrameSampling(stride=4)).num_frames == 17
    clip = load_clip(real_clip_path, FrameSampling(max_frames=16))
    assert clip.num_frames == 16
    assert clip.frame_indices[0] == 0 and clip.frame_indices[-1] == 64
    assert np.allclose(clip.timestamps, clip.frame_indices / 30)
    by_time = load_clip(real_clip_path, FrameSampling(fps=10, start_time=1.0))
    assert by_time.frame_indices.tolist() == list(range(30, 65, 3))
    full = load_clip(real_clip_path, FrameSampling(start=30))
    assert np.array_equal(by_time.frames, full.frames[by_time.frame_indices - 30])


def test_extensions_are_matched_case_insensitively(tmp_path: Path) -> None:
    write_video(tmp_path / "LOUD.MP4", 3)
    (tmp_path / "frames").mkdir()
    write_image(tmp_path / "frames" / "A.JPG")
    assert load_clip(tmp_path / "LOUD.MP4").num_frames == 3
    assert load_clip(tmp_path / "frames").frame_names == ["A.JPG"]


def test_sampling_must_be_a_frame_sampling(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match="sampling must be a FrameSampling, got dict"):
        load_clip(write_video(tmp_path / "v.mp4", 3), {"stride": 2})  # type: ignore[arg-type]
