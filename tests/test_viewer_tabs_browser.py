"""The panel's tabs in headless Chromium, in `view` mode (no model): every tab once, the
messages each tab owes its user, and the mask as the page draws it.

One view-only app per module, opened on a small saved result with every camera variant and
ground truth; the scene's page is not loaded (the tests read the panel's text and state).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import open_panel, running_app, wait_for

from page4d_viewer.viewer.scene.display import VARIANT_LABELS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 120_000
VARIANTS = ("masked", "unmasked", "geometry_masked", "geometry_unmasked")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory, make_reconstruction) -> Path:
    """A data folder with a nested second root (as the working directory and its assets/
    are by default) and a saved result in it."""
    root = tmp_path_factory.mktemp("data")
    (root / "assets").mkdir()
    recon = make_reconstruction(frames=4, height=56, width=84, variants=VARIANTS, ground_truth=True)
    recon.save(root / "result.npz")
    return root


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Iterator:
    with running_app(
        runs_dir=tmp_path_factory.mktemp("runs"),
        data_roots=[data_root, data_root / "assets"],
        result=str(data_root / "result.npz"),
        max_points=20_000,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def page(app, browser):
    return open_panel(browser, app.url, ready="#run")  # closed with the module's browser


def _tab_labels(page) -> list[str]:
    """The labels of the tab buttons on the page (both tab bars)."""
    return [label.strip() for label in page.locator("button[role=tab]").all_inner_texts()]


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).click()


def _wait_text(page, selector: str, text: str) -> str:
    page.wait_for_function(
        "([selector, text]) => (document.querySelector(selector)?.innerText ?? '').includes(text)",
        arg=[selector, text],
        timeout=TIMEOUT_MS,
    )
    return page.locator(selector).inner_text()


def test_visiting_every_tab_leaves_one_button_per_label(page) -> None:
    labels = _tab_labels(page)
    assert {"Mask and depth", "Compare", "Inside the model", "Tracks"} <= set(labels)
    for name in labels:
        _open_tab(page, name)
        page.wait_for_timeout(300)  # a tab's contents are drawn on its first visit
        shown = _tab_labels(page)
        twice = [label for label, count in Counter(shown).items() if count > 1]
        assert not twice, f"after visiting {name!r} these tabs have two buttons: {twice}"
    assert sorted(_tab_labels(page)) == sorted(labels)


def test_view_mode_greys_out_run_and_cancel(page) -> None:
    assert page.locator("button#run").is_disabled()
    assert page.locator("button#cancel").is_disabled()


def test_tracks_tab_says_up_front_that_clicks_cannot_add_tracks(page) -> None:
    _open_tab(page, "Tracks")
    note = _wait_text(page, "#tracks-note", "Clicks cannot add tracks")
    assert "no model is loaded" in note
    assert page.locator("#seed-tracks input[type=checkbox]").is_disabled()
    assert "Click a pixel" not in page.locator("#tracks-picture").inner_text()


def test_a_compare_error_shows_in_the_compare_tab(page) -> None:
    _open_tab(page, "Compare")
    page.locator("button#compare").click()
    said = _wait_text(page, "#compare-status", "Cannot compare")
    assert "pick a run or an index row" in said


def test_a_typed_path_climbing_out_of_a_data_folder_is_called_outside(page) -> None:
    _open_tab(page, "Dataset")
    # Read under assets/, "../elsewhere" lands in the other root: still outside assets/.
    page.locator("#index-path textarea").fill("../elsewhere/index.sqlite")
    page.locator("button#open-index").click()
    said = _wait_text(page, "#dataset-status", "outside the allowed data folders")
    assert "--data-root" in said and "does not exist" not in said


def test_the_mask_is_continuous_by_default_and_the_threshold_an_option(
    app, page, page_session
) -> None:
    _open_tab(page, "Mask and depth")
    scene = page_session(app, page).scene
    assert page.locator("#mask-overlay input[value=continuous]").is_checked()
    state = scene.state()
    assert state.mask.overlay == "continuous" and 0 < state.mask.top <= 1
    # The scene's legend states the scale the colours top out at, as the model's value.
    assert f"&ge; {state.mask.top:.2f}" in scene.legend.html
    assert "99th percentile" in scene.legend.html
    page.locator("#mask-overlay").get_by_text("above the threshold only").click()
    wait_for(lambda: scene.state().mask.overlay == "threshold", 10, "the threshold", page=page)
    assert "only points at or above" in scene.legend.html


def test_the_scenes_legend_names_its_colours_in_the_browser(app, page) -> None:
    """The scene itself, drawn by Viser's client in a page of its own: its sidebar's Legend."""
    src = page.locator("#scene-frame").get_attribute("data-src")
    scene = page.context.browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        scene.set_default_timeout(TIMEOUT_MS)
        scene.goto(app.url + src)
        scene.get_by_text("Connected").first.click()  # Viser starts with its panel folded
        legend = scene.locator(".page4d-legend")
        legend.wait_for()
        text = legend.inner_text()
    finally:
        scene.close()
    for variant in VARIANTS:
        assert VARIANT_LABELS[variant] in text
    assert "ground truth" in text and "Mask: dynamic probability" in text
    assert "99th percentile" in text
