"""The "Inside the model" actions: attention pictures, the points' colouring, the probe.

`Inspector` sits beside `ViewerController` (which it reads for the result on screen and the
scene) and holds what the tab chose and what was last probed. The Gradio tab
(`tabs/inspect.py`) calls one method per event; a click in the Viser scene arrives from
Viser's thread through `scene_clicked`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.result.mask import DisplayError, mask_scale, overlay_image
from page4d_viewer.viewer import inside_views, plots, probe
from page4d_viewer.viewer.inside_views import AttentionChoice
from page4d_viewer.viewer.scene.picking import Pixel, pixel_from_image_click

if TYPE_CHECKING:
    from page4d_viewer.result.reconstruction import Reconstruction
    from page4d_viewer.viewer.controller import ViewerController
    from page4d_viewer.viewer.scene import SceneView

logger = logging.getLogger(__name__)

CURRENT_FRAME = -1
"""The query-frame selector's "the current frame" (the recorded query nearest to it)."""


@dataclass(frozen=True)
class InsideView:
    """What the tab shows for one selection.

    Attributes:
        note: a remark instead of the attention (no result, or one without attention), or "".
        choice: the selection as applied, or None without attention.
        grid: (H, W, 3) uint8 attention grid, or None.
        special: the special tokens' share as text ("" without attention).
        feature: (H, W, 3) uint8 feature PCA of the current frame, or None.
        mask: (H, W, 3) uint8 dynamic probability of the current frame, or None.
    """

    note: str = ""
    choice: AttentionChoice | None = None
    grid: np.ndarray | None = None
    special: str = ""
    feature: np.ndarray | None = None
    mask: np.ndarray | None = None


class Inspector:
    """What the "Inside the model" tab chose and probed, and the actions on them.

    Args:
        controller: the panel's controller (result on screen, scene, overlay settings).
    """

    def __init__(self, controller: ViewerController) -> None:
        self.controller = controller
        self._lock = threading.Lock()
        self.choice: AttentionChoice | None = None
        self.pixel: Pixel | None = None
        self.probe_version = 0
        self._probed_recon: Reconstruction | None = None
        self._closed = False  # set by `close`: scene clicks are ignored from then on
        clicks = getattr(controller.scene, "clicks", None)  # a scene without one: no clicks
        if clicks is not None:
            clicks.add(self.scene_clicked)

    def close(self) -> None:
        """The session ended: ignore scene clicks and let go of the probed result."""
        with self._lock:
            self._closed = True
            self.pixel, self._probed_recon = None, None

    @property
    def scene(self) -> SceneView:
        """The scene the controller drives."""
        return self.controller.scene  # type: ignore[return-value]

    def recon(self) -> Reconstruction | None:
        """The result on screen, or None."""
        shown = self.controller.current
        return None if shown is None else shown.recon

    # ------------------------------------------------------------------ attention

    def resolve(
        self, layer: int | None, query: int | None, variant: str | None, frame: int
    ) -> AttentionChoice | None:
        """The selection for the widgets' values (defaults: first layer, the recorded query
        nearest the current frame, "masked"); None when the result has no attention."""
        recon = self.recon()
        if recon is None or recon.inside is None or recon.inside.attention is None:
            return None
        layers, queries = recon.inside.attention_layers, recon.inside.attention_query_frames
        layer = layer if layer in layers else layers[0]
        if query is None or int(query) == CURRENT_FRAME or query not in queries:
            query = inside_views.nearest_query(recon, frame)
        if variant not in inside_views.ATTENTION_CHOICES:
            variant = inside_views.ATTENTION_CHOICES[0]
        return AttentionChoice(int(layer), int(query), str(variant))

    def view(
        self, choice: AttentionChoice | None, feature_layer: int | None, frame: int
    ) -> InsideView:
        """The pictures and text for a selection and the current frame."""
        recon = self.recon()
        if recon is None:
            return InsideView(note="Run a clip or open a result first.")
        frame = int(np.clip(frame, 0, recon.num_frames - 1))
        feature = None
        if recon.inside is not None and recon.inside.feature_pca is not None:
            layers = recon.inside.feature_layers
            layer = feature_layer if feature_layer in layers else None
            layer = layers[-1] if layer is None else layer
            feature = inside_views.captioned_feature(recon, layer, frame, plots.PANEL_IMAGE_WIDTH)
        mask = inside_views.captioned_mask(recon, frame, plots.PANEL_IMAGE_WIDTH)
        if choice is None:
            note = inside_views.NO_ATTENTION_NOTE
            return InsideView(note=note, feature=feature, mask=mask)
        return InsideView(
            choice=choice,
            grid=inside_views.captioned_grid(recon, choice),
            special=inside_views.special_mass_text(recon, choice),
            feature=feature,
            mask=mask,
        )

    def set_colouring(self, mode: str, choice: AttentionChoice | None) -> None:
        """Colour the scene's points by image, mask or the selection's attention.

        Raises:
            DisplayError: an unknown mode.
        """
        recon = self.recon()
        with self._lock:
            self.choice = choice
        if mode == "attention" and recon is not None and choice is not None:
            heat = inside_views.attention_heat(recon, choice)
            colormap = inside_views.colormap_of(choice)
            self.scene.points.set_colouring(mode, heat, colormap, key=choice)
        else:
            self.scene.points.set_colouring(mode)

    # ------------------------------------------------------------------ the probe

    def scene_clicked(self, origin: np.ndarray, direction: np.ndarray) -> None:
        """A click in the Viser scene: probe the point nearest to the click ray."""
        if self._closed:
            return
        try:
            pixel = self.scene.points.pick_pixel(origin, direction)
        except DisplayError as error:
            logger.debug("ignored a scene click: %s", error)
            return
        if pixel is not None:
            self.probe_pixel(pixel)

    def probe_pixel(self, pixel: Pixel) -> probe.ProbedPoint:
        """Probe one pixel and mark its 3-D point in the scene.

        Raises:
            DisplayError: nothing shown, or a pixel outside the result.
        """
        recon = self.recon()
        if recon is None:
            raise DisplayError("run a clip or open a result first")
        probed = probe.probe(recon, pixel, self.scene.state().points.point_source, self.choice)
        self.scene.points.show_probe(probed.position)
        with self._lock:
            self.pixel, self._probed_recon = pixel, recon
            self.probe_version += 1
        return probed

    def probe_image_click(
        self, frame: int, x: float, y: float, enlarged: bool = False
    ) -> probe.ProbedPoint:
        """A click at (x, y) on a picture of `frame`: the model input's size, or the panel's
        enlarged copy of it (`plots.enlarge`) when `enlarged`."""
        recon = self.recon()
        if recon is None:
            raise DisplayError("run a clip or open a result first")
        if enlarged:
            factor = plots.enlargement(recon.image_hw[1], plots.PANEL_IMAGE_WIDTH)
            x, y = x / factor, y / factor
        row, col = pixel_from_image_click(x, y, recon.image_hw)
        frame = int(np.clip(frame, 0, recon.num_frames - 1))
        return self.probe_pixel(Pixel(frame, row, col))

    def probe_text(self) -> str:
        """The last probe (re-read for the current selection), as Markdown."""
        recon = self.recon()
        with self._lock:
            pixel, choice, probed_recon = self.pixel, self.choice, self._probed_recon
        if recon is None or pixel is None or probed_recon is not recon:
            return "Click a point in the scene, or a pixel of the frame, to probe it."
        source = self.scene.state().points.point_source
        return probe.describe(probe.probe(recon, pixel, source, choice), choice)

    def probe_picture(self, frame: int) -> np.ndarray | None:
        """The probed frame (else the current one) with the mask overlay and a cross on the
        probed pixel."""
        recon = self.recon()
        if recon is None:
            return None
        with self._lock:
            pixel = self.pixel if self._probed_recon is recon else None
        shown = pixel.frame if pixel is not None else int(np.clip(frame, 0, recon.num_frames - 1))
        mask = None if recon.mask_score is None else recon.mask_score[shown]
        controller = self.controller
        image = overlay_image(
            recon.images[shown], mask, controller.mask_opacity, controller.mask_threshold,
            overlay=controller.mask_overlay, top=mask_scale(recon.mask_score),
        )  # fmt: skip
        return image if pixel is None else probe.mark_pixel(image, pixel.row, pixel.col)
