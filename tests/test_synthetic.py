"""Synthetic scenes: the ground truth is exact and self-consistent, and survives a save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from page4d_viewer import cli, geometry
from page4d_viewer.sources import synthetic
from page4d_viewer.sources.synthetic import (
    Lighting,
    SceneObject,
    SyntheticScene,
    SyntheticSceneError,
    Texture,
    load_synthetic_clip,
    make_clip,
    save_ground_truth,
)
from page4d_viewer.sources.synthetic import clip as synthetic_clip

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(num_frames=6, width=96, height=64)


@pytest.fixture(scope="module")
def clip() -> synthetic.SyntheticClip:
    """A small clip with large movers and a person, so every kind of surface shows up."""
    return make_clip(3, num_frames=6, width=160, height=96, movers="large", person=True)


def _plain_scene(objects: tuple[SceneObject, ...]) -> SyntheticScene:
    plain = Texture("plain", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1.0, (0.5,) * 3, (1, 0, 0), 0, 0.0)
    return SyntheticScene(
        room_half_size=(6.0, 6.0),
        room_height=3.0,
        room_textures=(plain,) * 6,
        static_objects=objects,
        moving_objects=(),
        people=(),
        lighting=Lighting((0.5,) * 3, (), (), (0.0, 0.0, 2.7), (0.0,) * 3, 1.0),
    )


def _looking_along_x(height: float, width: int = 65, rows: int = 33) -> tuple[np.ndarray, ...]:
    """A camera at (0, 0, height) looking along +x (OpenCV: x right = -y world, y down = -z)."""
    R_cam_world = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    centre = np.array([0.0, 0.0, height])
    extrinsic = np.concatenate([R_cam_world, (-R_cam_world @ centre)[:, None]], axis=1)
    K = np.array([[50.0, 0, width / 2], [0, 50.0, rows / 2], [0, 0, 1]])
    return extrinsic, K


def test_ray_cast_matches_hand_computed_sphere_box_and_wall() -> None:
    sphere = SceneObject(
        "ball",
        "ellipsoid",
        (0.5, 0.5, 0.5),
        (3.0, 0.0, 1.5),
        (0, 0, 0),
        _plain_scene(()).room_textures[0],
    )
    extrinsic, K = _looking_along_x(1.5)
    view = _plain_scene((sphere,)).render(extrinsic, K, 65, 33, 0.0)
    # The principal point (32.5, 16.5) is between pixels; pixel (16, 32) looks almost straight.
    direction = np.linalg.inv(K) @ np.array([32.0, 16.0, 1.0])
    ray = np.array([direction[2], -direction[0], -direction[1]])  # world
    offset = np.array([3.0, 0.0, 0.0])
    b, c = ray @ offset, offset @ offset - 0.25
    expected = (b - math.sqrt(b * b - (ray @ ray) * c)) / (ray @ ray)
    assert view.depth[16, 32] == pytest.approx(expected, rel=1e-12)
    assert view.surface[16, 32] == len(synthetic.ROOM_FACES)
    # A pixel at the image's left edge misses the ball and sees the far wall x = 6.
    assert view.depth[16, 0] == pytest.approx(6.0, rel=1e-12)
    assert synthetic.ROOM_FACES[view.surface[16, 0]] == "wall_x_max"

    box = SceneObject("crate", "box", (0.5, 1.0, 0.5), (4.0, 0.0, 1.5), (0, 0, 0), sphere.texture)
    view = _plain_scene((box,)).render(extrinsic, K, 65, 33, 0.0)
    # The box's near face is the plane x = 3.5, so depth (= x for this camera) is 3.5.
    assert view.depth[16, 32] == pytest.approx(3.5, rel=1e-12)
    assert view.depth[10, 20] == pytest.approx(3.5, rel=1e-12)


def test_depth_unprojects_to_world_points(clip: synthetic.SyntheticClip) -> None:
    points = geometry.depth_to_world_points(
        clip.depth.astype(np.float64), clip.extrinsics, clip.intrinsics
    )
    error = np.linalg.norm(points - clip.world_points, axis=-1)
    assert error.max() < 1e-5 * clip.depth.max()
    assert clip.valid.all()
    assert np.isfinite(clip.depth).all() and (clip.depth > 0).all()


def test_static_pixels_reproject_onto_the_same_depth(clip: synthetic.SyntheticClip) -> None:
    height, width = clip.image_hw
    for target in (2, 5):
        static = ~clip.dynamic_mask[0]
        points = clip.world_points[0][static].astype(np.float64)
        points_cam = geometry.transform_points(clip.extrinsics[target], points)
        uv, z = geometry.project(points_cam, clip.intrinsics[target])
        cols, rows = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height) & (z > 0)
        assert inside.mean() > 0.3
        # Compare with the target depth interpolated at the exact projection; on a plane,
        # inverse depth is affine in the pixel coordinates, so bilinear weights are exact.
        u, v = uv[inside, 0].clip(0, width - 1.001), uv[inside, 1].clip(0, height - 1.001)
        u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
        fu, fv = u - u0, v - v0
        inverse = 1.0 / clip.depth[target].astype(np.float64)
        sampled = 1.0 / (
            inverse[v0, u0] * (1 - fu) * (1 - fv)
            + inverse[v0, u0 + 1] * fu * (1 - fv)
            + inverse[v0 + 1, u0] * (1 - fu) * fv
            + inverse[v0 + 1, u0 + 1] * fu * fv
        )
        relative = (sampled - z[inside]) / z[inside]
        agree = np.abs(relative) < 1e-3
        occluded = relative < -1e-3  # something in front of the point from there
        assert agree.mean() > 0.8
        assert np.median(np.abs(relative)) < 1e-5
        # Seeing *behind* a surface is impossible: only at depth edges, where the
        # interpolation mixes two surfaces, and those are few.
        assert (~agree & ~occluded).mean() < 0.02


def test_static_points_look_the_same_from_another_camera(clip: synthetic.SyntheticClip) -> None:
    """Re-render one pixel of a later camera aimed exactly at a static point of frame 0."""
    scene, (height, width) = clip.scene, clip.image_hw
    first = scene.render(clip.extrinsics[0], clip.intrinsics[0], width, height, 0.0)
    rows, cols = np.nonzero(~first.dynamic)
    pick = np.random.default_rng(0).choice(len(rows), size=120, replace=False)
    visible = 0
    for row, col in zip(rows[pick], cols[pick], strict=True):
        target = 1 + (row + col) % (clip.num_frames - 1)
        extrinsic = clip.extrinsics[target]
        point_cam = extrinsic[:, :3] @ first.world_points[row, col] + extrinsic[:, 3]
        if point_cam[2] <= 0:
            continue
        K = clip.intrinsics[target].copy()
        K[:2, 2] = -K[[0, 1], [0, 1]] * point_cam[:2] / point_cam[2]  # pixel (0, 0) sees it
        view = scene.render(clip.extrinsics[target], K, 1, 1, clip.timestamps[target])
        if view.depth[0, 0] < point_cam[2] * (1 - 1e-9):
            continue  # something in front of it from there
        visible += 1
        assert view.depth[0, 0] == pytest.approx(point_cam[2], rel=1e-9)
        assert view.surface[0, 0] == first.surface[row, col]
        difference = np.abs(view.image[0, 0].astype(int) - first.image[row, col]).max()
        assert difference <= 1, "a static point changed colour between views"
    assert visible > 60


def test_dynamic_mask_is_exactly_the_moving_pixels(clip: synthetic.SyntheticClip) -> None:
    scene = clip.scene
    height, width = clip.image_hw
    for frame, frozen_time in ((0, 1.0), (4, 0.0)):
        again = scene.render(
            clip.extrinsics[frame], clip.intrinsics[frame], width, height, clip.timestamps[frame]
        )
        np.testing.assert_array_equal(again.image, clip.images[frame])
        frozen = scene.render(
            clip.extrinsics[frame], clip.intrinsics[frame], width, height, frozen_time
        )
        changed = (frozen.image != again.image).any(axis=-1) | (frozen.depth != again.depth)
        either_mask = clip.dynamic_mask[frame] | frozen.dynamic
        assert changed.any()
        assert not (changed & ~either_mask).any(), "a static pixel changed"
        assert (changed[clip.dynamic_mask[frame]]).mean() > 0.5
        # The mask is the set of pixels whose surface belongs to a moving object.
        names = scene.surface_names()
        moving = {o.name for o in scene.moving_objects} | {
            n for p in scene.people for n in p.part_names()
        }
        is_moving = np.array([name in moving for name in names])
        expected = is_moving[again.surface]
        np.testing.assert_array_equal(clip.dynamic_mask[frame], expected)


def test_every_moving_object_moves_in_every_frame(clip: synthetic.SyntheticClip) -> None:
    scene = clip.scene
    assert scene.moving_objects and scene.people
    for t in clip.timestamps:
        now, soon = scene.posed_primitives(t), scene.posed_primitives(t + 0.01)
        for a, b in zip(now, soon, strict=True):
            moved = not (
                np.allclose(a.centre, b.centre, atol=1e-6)
                and np.allclose(a.rotation, b.rotation, atol=1e-6)
                and np.allclose(a.half_size, b.half_size, atol=1e-6)
            )
            assert moved == a.dynamic


def test_same_seed_same_clip_and_different_seeds_differ() -> None:
    first, second = make_clip(5, **SMALL), make_clip(5, **SMALL)
    for name in ("images", "depth", "extrinsics", "intrinsics", "dynamic_mask"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert first.description == second.description
    other = make_clip(6, **SMALL)
    assert (other.images != first.images).mean() > 0.5
    assert not np.allclose(other.extrinsics, first.extrinsics)


@pytest.mark.parametrize("camera", synthetic.CAMERA_MOTIONS)
def test_camera_motions_and_field_of_view(camera: str) -> None:
    clip = make_clip(2, camera=camera, fov_deg=60.0, **SMALL)
    assert clip.description.startswith(f"seed 2: {camera} camera")
    focal = clip.intrinsics[:, 0, 0]
    np.testing.assert_allclose(focal, (96 / 2) / math.tan(math.radians(30)))
    np.testing.assert_allclose(clip.intrinsics[:, :2, 2], [[48.0, 32.0]] * 6)
    rotations = clip.extrinsics[:, :, :3]
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.eye(3)[None].repeat(6, 0), atol=1e-12
    )
    centres = geometry.camera_centers(clip.extrinsics)
    half_x, half_y = clip.scene.room_half_size
    assert (np.abs(centres[:, 0]) < half_x).all() and (np.abs(centres[:, 1]) < half_y).all()
    assert (centres[:, 2] > 0).all() and (centres[:, 2] < clip.scene.room_height).all()
    assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() > 0  # the camera moves


def _crowded_settings(num_frames: int) -> synthetic.SceneSettings:
    """A 48 x 28 clip of `num_frames` with eight large movers and a person (camera path and
    field of view drawn): the layouts most likely to put an object in front of a camera."""
    return synthetic.SceneSettings(
        num_frames=num_frames,
        width=48,
        height=28,
        fps=12.0,
        camera=None,
        movers="large",
        num_movers=8,
        person=True,
        fov_deg=None,
    )


def test_rejected_layouts_are_redrawn_from_a_derived_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _crowded_settings(num_frames=3)
    verdicts = iter([False, True])
    monkeypatch.setattr(synthetic_clip, "cameras_are_clear", lambda *args: next(verdicts))
    scene, extrinsics, *_ = synthetic.make_scene(5, settings)
    monkeypatch.setattr(synthetic_clip, "cameras_are_clear", lambda *args: True)
    second_draw = synthetic_clip._draw_scene(5, np.random.SeedSequence([5, 1]), settings)
    assert scene == second_draw[0]
    np.testing.assert_array_equal(extrinsics, second_draw[1])
    assert scene != synthetic.make_scene(5, settings)[0]


def test_crowded_scenes_keep_the_cameras_clear_of_objects() -> None:
    settings = _crowded_settings(num_frames=8)
    for seed in range(8):
        scene, extrinsics, _, times, _ = synthetic.make_scene(seed, settings)
        centres = geometry.camera_centers(extrinsics)
        for centre, t in zip(centres, times, strict=True):
            for primitive in scene.posed_primitives(t):
                gap = np.linalg.norm(centre - primitive.centre) - primitive.bounding_radius()
                assert gap > 0.3


def test_large_movers_cover_more_of_the_image_than_small_ones() -> None:
    def moving_fraction(size: str) -> float:
        clips = [make_clip(s, movers=size, num_movers=2, person=False, **SMALL) for s in range(3)]
        for c in clips:
            radii = [max(o.half_size) for o in c.scene.moving_objects]
            assert all((r >= 0.22) if size == "large" else (r <= 0.35) for r in radii)
        return float(np.mean([c.dynamic_mask.mean() for c in clips]))

    assert moving_fraction("large") > 3 * moving_fraction("small")


def test_supersampling_converges_and_keeps_geometry() -> None:
    size = dict(num_frames=2, width=96, height=64)
    sharp, smooth, reference = (make_clip(8, supersample=n, **size) for n in (1, 2, 4))
    for name in ("depth", "world_points", "dynamic_mask", "extrinsics"):
        np.testing.assert_array_equal(getattr(smooth, name), getattr(sharp, name))
    # More rays per pixel approach the pixel's true mean colour (the 16-ray reference).
    error_sharp = np.abs(sharp.images.astype(int) - reference.images).mean()
    error_smooth = np.abs(smooth.images.astype(int) - reference.images).mean()
    assert error_smooth < 0.7 * error_sharp
    assert smooth.settings["supersample"] == 2


def test_in_first_camera_frame(clip: synthetic.SyntheticClip) -> None:
    local = clip.in_first_camera_frame()
    np.testing.assert_allclose(local.extrinsics[0], np.eye(3, 4), atol=1e-12)
    camera_points = geometry.depth_to_camera_points(clip.depth[0], clip.intrinsics[0])
    np.testing.assert_allclose(local.world_points[0], camera_points, atol=1e-4)
    # Every other camera still sees its own depth map at the transformed points.
    points = geometry.depth_to_world_points(local.depth, local.extrinsics, local.intrinsics)
    np.testing.assert_allclose(points, local.world_points, atol=1e-4)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(num_frames=0), "num_frames must be at least 1"),
        (dict(width=4), "image size must be at least 8x8"),
        (dict(fps=0.0), "fps must be positive"),
        (dict(camera="drone"), "camera must be one of orbit, walk, handheld"),
        (dict(movers="huge"), "movers must be one of small, large, mixed"),
        (dict(num_movers=9), "num_movers must be between 0 and 8"),
        (dict(fov_deg=170.0), "fov_deg must be between 20 and 120"),
        (dict(supersample=0), "supersample must be 1, 2, 3 or 4"),
    ],
)
def test_bad_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(SyntheticSceneError, match=message):
        make_clip(0, **settings)


def test_ground_truth_round_trip(tmp_path: Path) -> None:
    clip = make_clip(4, **SMALL)
    folder = save_ground_truth(clip, tmp_path / "clip")
    assert sorted(p.name for p in folder.iterdir()) == ["clip.mp4", "groundtruth.npz", "scene.json"]
    loaded = load_synthetic_clip(folder)
    assert loaded.images.shape == clip.images.shape and loaded.images.dtype == np.uint8
    assert np.abs(loaded.images.astype(int) - clip.images).mean() < 6
    np.testing.assert_allclose(loaded.depth, clip.depth, rtol=5e-4)
    np.testing.assert_array_equal(loaded.extrinsics, clip.extrinsics)
    np.testing.assert_array_equal(loaded.intrinsics, clip.intrinsics)
    np.testing.assert_array_equal(loaded.dynamic_mask, clip.dynamic_mask)
    np.testing.assert_array_equal(loaded.valid, clip.valid)
    np.testing.assert_array_equal(loaded.timestamps, clip.timestamps)
    error = np.linalg.norm(loaded.world_points - clip.world_points, axis=-1)
    assert (error <= 1e-3 * clip.depth).all()  # float16 depth
    assert loaded.fps == clip.fps and loaded.description == clip.description
    # The saved settings render the very same clip again.
    again = make_clip(**loaded.settings)
    np.testing.assert_array_equal(again.images, clip.images)
    scene = json.loads((folder / "scene.json").read_text())
    assert len(scene["scene"]["moving_objects"]) == len(clip.scene.moving_objects)
    # The scene read back from scene.json renders the same frames without the generator.
    assert loaded.scene == clip.scene
    view = loaded.scene.render(loaded.extrinsics[3], loaded.intrinsics[3], 96, 64, 3 / clip.fps)
    np.testing.assert_array_equal(view.image, clip.images[3])


def test_loading_a_bad_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SyntheticSceneError, match="has no clip.mp4"):
        load_synthetic_clip(tmp_path)
    folder = save_ground_truth(make_clip(1, num_frames=2, width=32, height=16), tmp_path / "c")
    with np.load(folder / "groundtruth.npz") as data:
        arrays = dict(data)
    np.savez(folder / "groundtruth.npz", **{**arrays, "format_version": np.int64(99)})
    with pytest.raises(SyntheticSceneError, match="format version 99"):
        load_synthetic_clip(folder)
    (folder / "groundtruth.npz").write_bytes(b"not a zip file")
    with pytest.raises(SyntheticSceneError, match="cannot read"):
        load_synthetic_clip(folder)
    with pytest.raises(SyntheticSceneError, match="not a synthetic scene description"):
        SyntheticScene.from_dict({"room_half_size": [1, 1]})
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SyntheticSceneError, match="cannot create"):
        save_ground_truth(make_clip(1, num_frames=1, width=16, height=8), tmp_path / "a_file")


def test_odd_image_sizes_save_and_load(tmp_path: Path) -> None:
    clip = make_clip(2, num_frames=3, width=33, height=21)
    loaded = load_synthetic_clip(save_ground_truth(clip, tmp_path))
    assert loaded.images.shape == (3, 21, 33, 3)
    assert np.abs(loaded.images.astype(int) - clip.images).mean() < 6


@pytest.mark.slow
def test_make_samples_command_writes_a_loadable_sample(tmp_path: Path) -> None:
    code = cli.main(["make-samples", "--out", str(tmp_path), "--sample", "orbit_movers"])
    assert code == 0
    loaded = load_synthetic_clip(tmp_path / "orbit_movers")
    assert loaded.images.shape == (24, 294, 518, 3)
    assert loaded.dynamic_mask.mean() > 0.05  # large movers
    assert not (tmp_path / "handheld_walk").exists()
    # The committed sample is what the command renders (to rounding across machines).
    bundled = load_synthetic_clip(REPO_ROOT / "assets" / "samples" / "orbit_movers")
    np.testing.assert_allclose(loaded.extrinsics, bundled.extrinsics, atol=1e-9)
    np.testing.assert_allclose(loaded.depth, bundled.depth, rtol=1e-3)
    assert (loaded.dynamic_mask == bundled.dynamic_mask).mean() > 0.999
    assert np.abs(loaded.images.astype(int) - bundled.images).mean() < 1.0


@pytest.mark.parametrize("name", sorted(synthetic.SAMPLES))
def test_bundled_samples_match_their_recipe(name: str) -> None:
    folder = REPO_ROOT / "assets" / "samples" / name
    loaded = load_synthetic_clip(folder)
    for key, value in synthetic.SAMPLES[name].items():
        assert loaded.settings[key] == value
    assert loaded.images.shape == (24, 294, 518, 3)
    assert sum(f.stat().st_size for f in folder.iterdir()) < 2.5e6


SYNTHETIC_MODULES = (
    "camera_paths",
    "clip",
    "correspondence",
    "files",
    "layout",
    "renderer",
    "samples",
    "scene",
)


def test_importing_the_scene_generator_stays_light(imports_among) -> None:
    modules = ("page4d_viewer.sources.synthetic", "page4d_viewer.sources.synthetic.textures")
    modules += tuple(f"page4d_viewer.sources.synthetic.{name}" for name in SYNTHETIC_MODULES)
    assert imports_among(modules, ("torch", "gradio", "viser", "av")) == []


def test_texture_detail_changes_only_the_colours_and_keeps_them_solid(tmp_path: Path) -> None:
    plain = synthetic.make_clip(4, num_frames=3, width=64, height=40, camera="orbit")
    detailed = synthetic.make_clip(
        4, num_frames=3, width=64, height=40, camera="orbit", texture_detail=0.8
    )
    np.testing.assert_array_equal(detailed.depth, plain.depth)
    np.testing.assert_array_equal(detailed.dynamic_mask, plain.dynamic_mask)
    np.testing.assert_array_equal(detailed.extrinsics, plain.extrinsics)
    assert np.abs(detailed.images.astype(int) - plain.images).mean() > 5
    # The same seed without detail is the same clip as before the option existed.
    again = synthetic.make_clip(
        4, num_frames=3, width=64, height=40, camera="orbit", texture_detail=0.0
    )
    np.testing.assert_array_equal(again.images, plain.images)
    # Saved and loaded, the scene renders the detailed colours again.
    loaded = load_synthetic_clip(synthetic.save_ground_truth(detailed, tmp_path / "d"))
    assert loaded.scene.texture_detail == 0.8 and loaded.settings["texture_detail"] == 0.8
    view = loaded.scene.render(
        detailed.extrinsics[1], detailed.intrinsics[1], 64, 40, float(detailed.timestamps[1])
    )
    np.testing.assert_array_equal(view.image, detailed.images[1])


def test_texture_detail_is_solid_so_a_static_point_keeps_its_colour() -> None:
    from page4d_viewer.sources.synthetic.textures import albedo, random_texture

    texture = random_texture(np.random.default_rng(2), ["plain"], (0.5, 1.0))
    points = np.random.default_rng(3).uniform(-2, 2, (500, 3))
    flat = albedo(texture, points)
    detailed = albedo(texture, points, detail=0.6)
    np.testing.assert_array_equal(albedo(texture, points, detail=0.6), detailed)
    ratio = detailed / flat
    assert ratio.std() > 0.05 and (ratio >= 0.4 - 1e-9).all() and (ratio <= 1.6 + 1e-9).all()
    near = albedo(texture, points + 0.005, detail=0.6) / flat  # 5 mm away: nearly the same
    assert np.abs(near - ratio).mean() < 0.05


def test_texture_detail_out_of_range_is_refused() -> None:
    with pytest.raises(SyntheticSceneError, match="texture_detail"):
        synthetic.make_clip(1, num_frames=2, width=28, height=28, texture_detail=1.5)
