"""The layer contract: what every part the scene draws (or lets the user set) implements.

A layer owns its nodes, its slice of the settings, its controls in the Viser sidebar, its
lines of the legend and its slice of `SceneState`. `SceneView` (the host) owns only the
timeline, the frame stream and the lock, and calls every layer in `scene.layers.LAYERS`
order:

    add_controls()                 once, when the scene is built (its sidebar folder)
    show(clip, view)               a new result: send what does not stream frame by frame
    prepare_frame(clip, index)     outside the lock: the pure work of sending one frame
    add_frame(clip, index, prepared, view)   send one frame's nodes (streaming)
    apply(view)                    the frame or a setting changed: toggle, recolour
    sync_controls(view)            write the layer's settings into its controls
    legend(view)                   its part of the legend (HTML; "" for none)
    state(view)                    its slice of `SceneState`
    remove()                       forget the result (the controls stay)

Every call but `prepare_frame` comes holding the host's lock inside `server.atomic()`. A
layer's own setters (e.g. `PointLayer.set_display`) take `host.lock` themselves and end with
`host.redraw()`, so a change in one layer reaches the others (the mask threshold splits the
points and the tracks). This follows nerfstudio's viewer elements (install / remove) and
viser's handles (a node's handle is its state: set `.visible`, `.colors`; never resend).

Adding a layer is one module with a class deriving from `SceneLayer`, plus one entry in
`scene.layers.LAYERS`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import viser

    from page4d_viewer.viewer.scene.controls import ControlWriter
    from page4d_viewer.viewer.scene.nodes import PreparedResult
    from page4d_viewer.viewer.scene.settings import MaskSettings, PointSettings
    from page4d_viewer.viewer.scene.state import SendCounters


CameraPose = tuple[np.ndarray, np.ndarray, float]
"""(wxyz (4,) world-from-camera rotation, scalar first; position (3,); vertical fov, radians)."""


@dataclass(frozen=True)
class FrameView:
    """What every layer draws against, taken by the host under its lock.

    Attributes:
        clip: the result shown (None when the scene is empty).
        frame: the current frame.
        num_frames: S of the result shown (0 when empty).
        shown_frames: frames whose points are on screen (the display mode and trail).
        points: the Points settings (display mode, point source, point size, ...).
        mask: the Mask overlay settings (opacity, threshold, how it is drawn).
        looked_through: the camera (variant, frame) a viewer flew into, whose image would
            cover the view, or None (`SceneHost.fly_into`, cleared by a view reset).
    """

    clip: PreparedResult | None
    frame: int
    num_frames: int
    shown_frames: frozenset[int]
    points: PointSettings
    mask: MaskSettings
    looked_through: tuple[str, int] | None = None

    @property
    def has_mask(self) -> bool:
        """Whether the result shown has a dynamic mask."""
        return self.clip is not None and self.clip.has_mask

    @property
    def threshold(self) -> float:
        """The dynamic-probability threshold applied, in [0, 1]."""
        return self.mask.threshold


class SceneHost(Protocol):
    """What a layer may use of the scene that holds it (`SceneView`)."""

    @property
    def server(self) -> viser.ViserServer: ...

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def writer(self) -> ControlWriter: ...

    @property
    def counters(self) -> SendCounters: ...

    def view(self) -> FrameView:
        """The current frame, clip and shared settings (call holding `lock`)."""
        ...

    def redraw(self) -> None:
        """Apply every layer to the current view and refresh the legend (holding `lock`)."""
        ...

    def switch_points(self) -> None:
        """Prepare the clip for the current point source and stride and stream what is
        missing (call without `lock`)."""
        ...

    def user_moved_frame(self, frame: int) -> None:
        """Move the timeline as a user would, firing the frame-change callbacks."""
        ...

    def fly_into(
        self, client: viser.ClientHandle, camera: tuple[str, int], pose: CameraPose
    ) -> None:
        """Put a client's viewpoint at a camera (variant, frame) of pose `pose`, and remember
        it as `FrameView.looked_through` (call without `lock`)."""
        ...


class Layer(Protocol):
    """One part of the scene (see the module docstring for when each method is called)."""

    name: str

    def add_controls(self) -> None: ...

    def show(self, clip: PreparedResult, view: FrameView) -> None: ...

    def prepare_frame(self, clip: PreparedResult, index: int) -> Any: ...

    def add_frame(
        self, clip: PreparedResult, index: int, prepared: Any, view: FrameView
    ) -> None: ...

    def apply(self, view: FrameView) -> None: ...

    def sync_controls(self, view: FrameView) -> None: ...

    def legend(self, view: FrameView) -> str: ...

    def state(self, view: FrameView) -> Any: ...

    def remove(self) -> None: ...


class SceneLayer:
    """A base with the optional steps done as nothing: a layer overrides what it needs.

    Args:
        host: the scene the layer draws in.
    """

    name = "layer"

    def __init__(self, host: SceneHost) -> None:
        self.host = host

    def add_controls(self) -> None:
        """No controls of its own."""

    def show(self, clip: PreparedResult, view: FrameView) -> None:
        """Nothing to send up front."""

    def prepare_frame(self, clip: PreparedResult, index: int) -> Any:
        """Nothing to compute per frame."""
        return None

    def add_frame(self, clip: PreparedResult, index: int, prepared: Any, view: FrameView) -> None:
        """Nothing to send per frame."""

    def apply(self, view: FrameView) -> None:
        """Nothing depends on the frame or the settings."""

    def sync_controls(self, view: FrameView) -> None:
        """No controls to write."""

    def legend(self, view: FrameView) -> str:
        """Nothing in the legend."""
        return ""

    def state(self, view: FrameView) -> Any:
        """No state to report."""
        return None

    def remove(self) -> None:
        """Nothing to remove."""
