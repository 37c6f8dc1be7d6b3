"""A session's split view: its scene (left, masked) beside a second one (right, unmasked).

The second scene has its own internal `viser.ViserServer` on 127.0.0.1, reached only through
the proxy (`/scene/<session>/right/`, with the server's key: `scene_key.py`), made when the
split view is first turned on and closed with the session. `scene.split.SplitScenes` locks
the two in time, settings and viewpoint.

`SplitView` is what the session's controller sends its results to while the split view is
on (`ViewerController.show_on`, the `SceneOutput` contract): each result goes to both sides,
each side drawing its own pose variants and point source. Turning it off gives the left
scene back the variants and point source it had before, so the overlaid view is as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from page4d_viewer.viewer.scene import SceneView
from page4d_viewer.viewer.scene.cameras import CameraLayer
from page4d_viewer.viewer.scene.split import SplitScenes
from page4d_viewer.viewer.server.scene_key import open_keyed_server

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Reconstruction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OverlaidLook:
    """What the split view changes on the left scene, as it was before: each camera layer's
    variant visibility (layer index -> variant -> shown) and the point source."""

    visible: dict[int, dict[str, bool]]
    source: str

    @classmethod
    def of(cls, scene: SceneView) -> OverlaidLook:
        with scene.lock:
            visible = {
                index: dict(layer.visible)
                for index, layer in enumerate(scene.layers)
                if isinstance(layer, CameraLayer)
            }
            return cls(visible, str(scene.points.settings.source))

    def restore(self, scene: SceneView) -> None:
        """Give the scene back these variants and point source (each setter takes its lock)."""
        for index, variants in self.visible.items():
            layer = scene.layers[index]
            assert isinstance(layer, CameraLayer)
            for variant, shown in variants.items():
                if layer.visible.get(variant) != shown:
                    layer.set_variant_visible(variant, shown)
        if scene.points.settings.source != self.source:
            scene.points.set_point_source(self.source)


class SplitView:
    """A session's right scene and the lock between it and the session's own (left) scene.

    Args:
        left: the session's scene (the masked side).
        right: the second scene (the unmasked side), on `server`.
        server: the right scene's own Viser server; `close` stops it.
        key: the key `server` requires of every request (`scene_key.py`).

    Use `open(left)` to make one. While `on`, it is a `SceneOutput`: what is shown goes to
    both sides.
    """

    def __init__(
        self, left: SceneView, right: SceneView, server: viser.ViserServer, key: str
    ) -> None:
        self.left = left
        self.right = right
        self.server = server
        self.key = key
        self.scenes: SplitScenes = SplitScenes(left, right)
        self._overlaid: OverlaidLook | None = None

    @classmethod
    def open(cls, left: SceneView) -> SplitView:
        """A right scene on a new internal Viser server (same point budget as `left`)."""
        server, key = open_keyed_server()
        try:
            right = SceneView(server, max_points=left.points.max_points)
            return cls(left, right, server, key)
        except BaseException:
            server.stop()
            raise

    @property
    def port(self) -> int:
        """The internal port of the right scene's Viser server."""
        return int(self.server.get_port())

    @property
    def on(self) -> bool:
        """Whether the split view is on (between `start` and `stop`)."""
        return self._overlaid is not None

    def start(self) -> None:
        """Turn on: remember how the left scene looks overlaid (nothing is shown yet: the
        controller shows its result through this view next)."""
        if self._overlaid is None:
            self._overlaid = OverlaidLook.of(self.left)

    def stop(self) -> None:
        """Turn off: the left scene gets its overlaid look back; the right scene is cleared."""
        overlaid, self._overlaid = self._overlaid, None
        if overlaid is None:
            return
        overlaid.restore(self.left)
        self.right.clear()

    def close(self) -> None:
        """Stop the lock, the right scene's threads and its server (the left is the
        session's to close)."""
        self.scenes.close()
        self.right.close()
        self.server.stop()

    # ------------------------------------------------------------------ SceneOutput

    def show(self, recon: Reconstruction) -> None:
        """Show a result on both sides, each with its own variants and point source."""
        self.scenes.show(recon)

    def set_loading(self, message: str) -> None:
        """Both sides take the shown result down and say `message` is loading."""
        for scene in self.scenes.scenes:
            scene.set_loading(message)

    def stop_loading(self) -> None:
        """Both sides take their loading notice down."""
        for scene in self.scenes.scenes:
            scene.stop_loading()

    def set_frame(self, frame: int) -> None:
        """Move both sides to a frame."""
        self.scenes.set_frame(frame)

    def update_tracks(self, recon: Reconstruction) -> None:
        """Both sides draw the tracks added to the shown result."""
        for scene in self.scenes.scenes:
            scene.update_tracks(recon)
