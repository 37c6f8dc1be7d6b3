"""The offline share: its recording (decoded here with zstandard + msgpack), its page, its
refusals, and the folder played in headless Chromium from a static server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zstandard

from page4d_viewer.cli import main
from page4d_viewer.errors import Page4DError
from page4d_viewer.result.export import share
from page4d_viewer.result.mask import mask_scale, overlay_image
from page4d_viewer.result.points import auto_stride, confidence_threshold, frame_points, pixel_grid

# Software WebGL (SwiftShader): the share page must draw something in a headless browser.


def _decode(recording: bytes) -> dict:
    """The msgpack part of a `.viser` file (layout in viser.infra.StateSerializer.serialize)."""
    inner_size = int.from_bytes(recording[:8], "little")
    inner = zstandard.ZstdDecompressor().decompress(recording[8:], max_output_size=inner_size)
    length = int.from_bytes(inner[:8], "little")
    return msgspec.msgpack.decode(inner[8 : 8 + length])


def _message_types(recording: dict) -> list[str]:
    return [message["type"] for _, message in recording["messages"]]


def test_share_records_each_frame_once_then_toggles(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=4)
    folder = share.export_share(recon, tmp_path / "talk", fps=8.0)
    recording = _decode((folder / share.RECORDING_NAME).read_bytes())
    types = _message_types(recording)
    assert types.count("PointCloudMessage") == 4
    assert recording["durationSeconds"] == pytest.approx(4 / 8.0)
    # Nodes all come at time 0; afterwards only visibility changes, one step per 1/fps.
    later = {message["type"] for time, message in recording["messages"] if time > 0}
    assert "PointCloudMessage" not in later and later
    times = sorted({time for time, _ in recording["messages"]})
    np.testing.assert_allclose(times, [0.0, 0.125, 0.25, 0.375])
    # One frusta and one trajectory node per camera variant.
    assert types.count("LineSegmentsMessage") == 2 * len(recon.variants)


def _point_counts(recording: dict) -> list[int]:
    """Points of each recorded point cloud (its uint8 RGB colour buffer is 3 bytes a point)."""
    lengths = recording["binaryBufferLengths"]
    return [
        lengths[message["props"]["colors"]["__binary_index"]] // 3
        for _, message in recording["messages"]
        if message["type"] == "PointCloudMessage"
    ]


def test_share_point_budget_uses_the_viewer_stride(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2, height=28, width=42)
    folder = share.export_share(recon, tmp_path / "thin", conf_percentile=30, max_points=600)
    counts = _point_counts(_decode((folder / share.RECORDING_NAME).read_bytes()))
    stride = auto_stride(2, 28, 42, 600)
    assert stride == 2
    rows, cols = pixel_grid(28, 42, stride)
    cut = confidence_threshold(recon.points_conf, 30)
    expected = [
        len(frame_points(recon, frame, threshold=cut, rows=rows, cols=cols).points)
        for frame in range(2)
    ]
    assert counts == expected and sum(counts) <= 600


def test_share_colours_are_the_viewer_overlay(make_reconstruction) -> None:
    recon = make_reconstruction(frames=2)
    cloud = frame_points(recon, 1, threshold=float("-inf"))
    colors = share.share_point_colors(recon, 1, cloud.colors, cloud.pixel_index, 0.5, 0.5)
    height, width = recon.image_hw
    expected = overlay_image(
        recon.images[1], recon.mask_score[1], 0.5, 0.5,
        overlay="continuous", top=mask_scale(recon.mask_score),
    ).reshape(-1, 3)  # fmt: skip
    np.testing.assert_array_equal(colors, expected[cloud.pixel_index])


def test_share_page_is_viser_client_pointed_at_the_recording(tmp_path: Path) -> None:
    page = share.share_index_html()
    assert f'q.set("playbackPath","{share.RECORDING_NAME}")' in page
    assert page.index("playbackPath") < page.index('<div id="root">')


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        ("file", {}, "is a file"),
        ("stranger", {}, "is not empty"),
        (None, {"max_points": 0}, "at least 1"),
        (None, {"fps": 0.0}, "fps must be positive"),
        (None, {"opacity": 2.0}, "mask opacity"),
    ],
)
def test_share_refuses(
    make_reconstruction, tmp_path: Path, setup: str | None, kwargs: dict, message: str
) -> None:
    target = tmp_path / "out"
    if setup == "file":
        target.write_text("x")
    elif setup == "stranger":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    with pytest.raises(Page4DError, match=message):
        share.export_share(make_reconstruction(frames=2), target, **kwargs)
    if setup == "stranger":
        assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_share_overwrites_its_own_previous_share(make_reconstruction, tmp_path: Path) -> None:
    recon = make_reconstruction(frames=2)
    share.export_share(recon, tmp_path / "s")
    share.export_share(recon, tmp_path / "s", fps=5.0)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["index.html", "recording.viser"]


def test_cli_share(make_reconstruction, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = make_reconstruction(frames=3).save(tmp_path / "r.npz")
    assert main(["export", str(result), "--share", str(tmp_path / "talk")]) == 0
    out = capsys.readouterr().out
    assert out == f"wrote {tmp_path / 'talk'}\n"  # nothing of Viser's own chatter
    assert (tmp_path / "talk" / "index.html").exists()


@pytest.fixture
def served(make_reconstruction, tmp_path: Path) -> Iterator[str]:
    folder = share.export_share(make_reconstruction(frames=4, height=56, width=84), tmp_path / "s")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join(timeout=5)


@pytest.mark.browser
@pytest.mark.slow
def test_share_plays_from_static_files_without_other_hosts(served: str, launch_chromium) -> None:
    requests: list[str] = []
    with launch_chromium(webgl=True) as browser:
        page = browser.new_page(viewport={"width": 800, "height": 600})
        page.on("request", lambda request: requests.append(request.url))
        page.goto(served)
        page.locator("canvas").first.wait_for(timeout=60_000)
        page.wait_for_timeout(4_000)
        screenshot = page.locator("canvas").first.screenshot()
    from io import BytesIO

    from PIL import Image

    pixels = np.asarray(Image.open(BytesIO(screenshot)).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 5.0, "the scene canvas is blank"
    # Points cover part of the view (the background is a near-uniform light grey).
    assert (np.abs(pixels - np.median(pixels, axis=(0, 1))).max(axis=-1) > 40).mean() > 0.05
    assert any(url.endswith(share.RECORDING_NAME) for url in requests)
    elsewhere = [
        url for url in requests if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))
    ]
    assert not elsewhere, elsewhere
