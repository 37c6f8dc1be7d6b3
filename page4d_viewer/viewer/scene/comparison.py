"""A second run's cameras ("B") laid over the shown run's, for comparison: node `/compare`.

The panel lays it over the shown result (`viewer.comparison`); it has no sidebar controls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.layer import FrameView, SceneHost, SceneLayer
from page4d_viewer.viewer.scene.legend import swatch

COMPARISON_LABEL = display.COMPARISON_PREFIX.rstrip(": ")  # "B"

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.cameras import Cameras


@dataclass(frozen=True)
class ComparisonState:
    """What the comparison shows (its slice of `SceneState`).

    Attributes:
        title: the second run's title, or None when nothing is compared.
        variants: its camera variants in the scene (`/compare/...`).
        visible: whether it is shown (False when there is none).
        camera_nodes: its frustum nodes on screen.
    """

    title: str | None = None
    variants: tuple[str, ...] = ()
    visible: bool = False
    camera_nodes: tuple[str, ...] = ()


@dataclass
class ComparisonNodes:
    """What `ComparisonLayer` sent for one of the second run's camera variants."""

    root: viser.FrameHandle  # /compare/{variant}
    frusta: list[viser.CameraFrustumHandle] = field(default_factory=list)
    labelled: bool = False  # whether the run's one "B" label hangs on this variant


class ComparisonLayer(SceneLayer):
    """A second run's cameras ("B"), already in the shown run's world: node `/compare`.

    Per variant `/compare/{variant}` holds a thinner trajectory and wireframe frusta in a
    lighter shade of the variant's colour; one label "B" marks the run at its first camera
    (one per variant overprinted: their first cameras coincide once aligned), and the
    scene's legend names the lighter shades. Every
    frustum is sent at once (they are small) and stays as it is while the timeline moves.

    Args:
        host: the scene.
    """

    name = "comparison"

    def __init__(self, host: SceneHost) -> None:
        super().__init__(host)
        self._group: viser.FrameHandle | None = None
        self.title: str | None = None
        self.nodes: dict[str, ComparisonNodes] = {}

    def legend(self, view: FrameView) -> str:
        if not self.nodes:
            return ""
        swatches = "".join(
            swatch(
                display.comparison_color(name),
                display.COMPARISON_PREFIX + display.VARIANT_LABELS[name],
            )
            for name in self.nodes
        )
        return f"<div><b>B</b>, the run compared (lighter, thinner)<br>{swatches}</div>"

    def state(self, view: FrameView) -> ComparisonState:
        return ComparisonState(self.title, tuple(self.nodes), self.visible, self.visible_nodes())

    def compare(self, title: str, cameras: Mapping[str, Cameras]) -> None:
        """Lay a second run's cameras over the shown result's, replacing any earlier one
        (takes the scene's lock).

        Args:
            title: names the second run (ComparisonState.title).
            cameras: variant -> (S,) cameras already in the shown result's world (see
                `viewer.comparison.align_second_run`), S = the shown result's frames.

        Raises:
            DisplayError: nothing is shown, or the frame counts differ.
        """
        with self.host.lock, self.host.server.atomic():
            clip = self.host.view().clip
            if clip is None:
                raise DisplayError("show a result before comparing another one with it")
            self._draw(title, cameras, clip.recon.image_hw, clip.frustum_length)
            self.host.redraw()

    def set_visible(self, visible: bool) -> None:
        """Show or hide the second run's cameras (nothing is re-sent)."""
        with self.host.lock, self.host.server.atomic():
            if self._group is not None:
                self._group.visible = bool(visible)

    def clear(self) -> None:
        """Remove the second run's cameras; the shown result stays."""
        with self.host.lock, self.host.server.atomic():
            self.remove()
            self.host.redraw()

    def _draw(
        self,
        title: str,
        cameras: Mapping[str, Cameras],
        image_hw: tuple[int, int],
        frustum_length: float,
    ) -> None:
        """Replace the comparison with these cameras (variant -> cameras in the scene's world).

        Raises:
            DisplayError: a variant's frame count is not the shown result's.
        """
        num_frames = self.host.view().num_frames
        for variant, variant_cameras in cameras.items():
            if len(variant_cameras.extrinsics) != num_frames:
                raise DisplayError(
                    f"the second run's {variant} cameras have "
                    f"{len(variant_cameras.extrinsics)} frames, the shown result {num_frames}"
                )
        self.remove()
        scene = self.host.server.scene
        self._group = scene.add_frame("/compare", show_axes=False)
        self.title = title
        height, width = image_hw
        for variant, variant_cameras in cameras.items():
            name = f"/compare/{variant}"
            nodes = ComparisonNodes(root=scene.add_frame(name, show_axes=False))
            wxyz, centres = display.camera_poses(variant_cameras.extrinsics)
            fov, aspect = display.frustum_fov_aspect(variant_cameras.intrinsics, height, width)
            colour = display.comparison_color(variant)
            segments = display.trajectory_segments(centres)
            if len(segments):
                scene.add_line_segments(
                    f"{name}/trajectory", points=segments, colors=colour, thickness=1.0,
                    thickness_units="screen",
                )  # fmt: skip
            usable = np.isfinite(wxyz).all(axis=1) & np.isfinite(centres).all(axis=1)
            for index in np.flatnonzero(usable).tolist():
                scale = display.viser_frustum_scale(frustum_length, fov[index], aspect[index])
                nodes.frusta.append(
                    scene.add_camera_frustum(
                        f"{name}/frusta/t{index:04d}",
                        fov=float(fov[index]),
                        aspect=float(aspect[index]),
                        scale=scale,
                        color=colour,
                        wxyz=wxyz[index],
                        position=centres[index],
                        thickness=1.0,
                        thickness_units="screen",
                    )  # fmt: skip
                )
            if usable.any() and not any(n.labelled for n in self.nodes.values()):
                first = int(np.argmax(usable))
                scene.add_label(f"{name}/label", COMPARISON_LABEL, position=centres[first])
                nodes.labelled = True
            self.nodes[variant] = nodes

    @property
    def visible(self) -> bool:
        """Whether a comparison is in the scene and shown."""
        return self._group is not None and bool(self._group.visible)

    def visible_nodes(self) -> tuple[str, ...]:
        """The comparison's frustum nodes on screen, sorted (empty when hidden)."""
        if not self.visible:
            return ()
        return tuple(sorted(h.name for nodes in self.nodes.values() for h in nodes.frusta))

    def remove(self) -> None:
        """Remove the comparison's nodes."""
        if self._group is not None:
            self._group.remove()
        self._group = None
        self.title = None
        self.nodes = {}
