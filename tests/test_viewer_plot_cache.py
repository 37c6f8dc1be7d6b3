"""The panel's per-result pictures are drawn once and shared by every session and page
showing the result (`viewer.plot_cache`): again only for another threshold, another compared
run or another result, and forgotten with the result. The cache itself (one maker while the
others wait, a failed make, the byte budget) is `SharedWork`'s, tested with the scenes'."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import pose_and_mask_tabs

from page4d_viewer.viewer import plot_cache, plots
from page4d_viewer.viewer.comparison import SecondRun, align_second_run
from page4d_viewer.viewer.scene.shared import SharedWork

VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


@pytest.fixture
def cache(monkeypatch) -> SharedWork:
    """A fresh cache in place of the app's shared one."""
    fresh = SharedWork()
    monkeypatch.setattr(plot_cache, "SHARED", fresh)
    return fresh


@pytest.fixture
def draws(monkeypatch) -> dict[str, int]:
    """How often each figure is drawn: name -> calls."""
    counts = {"disagreement": 0, "mask share": 0, "poses": 0}

    def counted(name, function):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        plots, "disagreement_figure", counted("disagreement", plots.disagreement_figure)
    )
    monkeypatch.setattr(plots, "mask_share_figure", counted("mask share", plots.mask_share_figure))
    monkeypatch.setattr(plot_cache, "pose_views", counted("poses", plot_cache.pose_views))
    return counts


def _show(recon, threshold: float = 0.5, second=None) -> tuple[dict, dict]:
    """A new page showing `recon`: both tabs' updates."""
    poses, mask = pose_and_mask_tabs()
    session = SimpleNamespace(
        controller=SimpleNamespace(frame_images=lambda frame: None),
        comparer=SimpleNamespace(compared_with=lambda shown: second),
    )
    shown = SimpleNamespace(recon=recon, version=1)
    settings = SimpleNamespace(
        mask_opacity=0.5, mask_threshold=threshold, mask_overlay="continuous", frame=0
    )
    return poses.show(session, shown, settings), mask.show(session, shown, settings)  # type: ignore[arg-type]


@pytest.fixture
def recon(make_reconstruction):
    return make_reconstruction(4, variants=VARIANTS, ground_truth=True)


def test_a_second_page_draws_nothing_again(cache, draws, recon) -> None:
    first_poses, first_mask = _show(recon)
    assert draws == {"disagreement": 1, "mask share": 1, "poses": 1}
    second_poses, second_mask = _show(recon)
    assert draws == {"disagreement": 1, "mask share": 1, "poses": 1}
    # Each page has its own widgets; what they are given is the same.
    assert list(second_poses.values()) == list(first_poses.values())
    assert second_mask == first_mask
    assert isinstance(second_poses["metrics"], list) and second_poses["metrics"]


def test_another_threshold_or_result_draws_again(cache, draws, recon, make_reconstruction) -> None:
    _show(recon, threshold=0.5)
    _show(recon, threshold=0.75)
    assert draws == {"disagreement": 1, "mask share": 2, "poses": 1}
    _show(recon, threshold=0.5)  # both thresholds are kept
    assert draws["mask share"] == 2
    other = make_reconstruction(4, variants=VARIANTS, ground_truth=True)
    _show(other)
    assert draws == {"disagreement": 2, "mask share": 3, "poses": 2}


def _second_run(recon, make_reconstruction, seed: int) -> SecondRun:
    """A compared run B of the same clip, aligned onto `recon`."""
    other = make_reconstruction(recon.num_frames, seed=seed, variants=VARIANTS)
    similarity, cameras = align_second_run(recon, other)
    return SecondRun(other, "B", similarity, cameras, 1)


def test_a_compared_run_draws_its_own_pose_pictures(
    cache, draws, recon, make_reconstruction
) -> None:
    second = _second_run(recon, make_reconstruction, seed=1)
    alone, _ = _show(recon)
    compared, _ = _show(recon, second=second)
    _show(recon, second=second)
    assert draws["poses"] == 2
    assert list(alone.values())[-1] != list(compared.values())[-1]  # B's metrics rows
    _show(recon, second=_second_run(recon, make_reconstruction, seed=2))
    assert draws["poses"] == 3
    assert draws["disagreement"] == 1


def test_cached_pictures_are_the_same_pictures_and_read_only(cache, recon) -> None:
    drawn = plots.figure_picture(plots.mask_share_figure(recon, 0.5), recon.num_frames)
    kept = plot_cache.mask_share_picture(recon, 0.5)
    assert np.array_equal(kept.image, drawn.image) and kept.axis == drawn.axis
    curve = plots.figure_picture(plots.disagreement_figure(recon), recon.num_frames)
    kept_curve = plot_cache.disagreement_picture(recon)
    assert np.array_equal(kept_curve.image, curve.image) and kept_curve.axis == curve.axis
    with pytest.raises(ValueError, match="read-only"):
        kept.image[0, 0] = 0


def test_pictures_go_with_their_result(make_reconstruction) -> None:
    cache = SharedWork()
    recon = make_reconstruction(3)
    plot_cache.disagreement_picture(recon, cache)
    plot_cache.mask_share_picture(recon, 0.5, cache)
    assert cache.misses == 2 and cache.nbytes > 0
    del recon
    gc.collect()
    assert cache.nbytes == 0


def test_a_compared_runs_pictures_go_with_it(cache, recon, make_reconstruction) -> None:
    """B's pose pictures belong to B (aligned onto this A only): they go when B does."""
    _show(recon)
    alone = cache.nbytes
    second = _second_run(recon, make_reconstruction, seed=1)
    _show(recon, second=second)
    assert cache.nbytes > alone
    del second
    gc.collect()
    assert cache.nbytes == alone
