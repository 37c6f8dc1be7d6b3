"""Camera layers: one per group of pose variants, each variant a node `/cameras/{variant}`
holding its trajectory and one wireframe and one imaged frustum per frame.

The imaged frustum replaces the wireframe while its frame is the current one. A click on a
frustum moves the timeline there and flies the viewer's camera into it. Each layer has its own
sidebar folder with a checkbox per variant, its own legend line, and its own slice of the
state; the network's head cameras and the ground truth are `HeadCameraLayer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import viser

from page4d_viewer.result.cameras import GROUND_TRUTH, HEAD_VARIANTS
from page4d_viewer.viewer.scene import display
from page4d_viewer.viewer.scene.display import DisplayError
from page4d_viewer.viewer.scene.layer import CameraPose, FrameView, SceneHost, SceneLayer
from page4d_viewer.viewer.scene.legend import swatch
from page4d_viewer.viewer.scene.nodes import Frusta, PreparedResult, thumbnail
from page4d_viewer.viewer.scene.shared import SHARED_WORK

logger = logging.getLogger(__name__)

HEAD_CAMERAS: tuple[str, ...] = (*HEAD_VARIANTS, GROUND_TRUTH)
"""The camera head's variants and the ground truth: "masked", "unmasked", "ground_truth"."""


@dataclass(frozen=True)
class CameraState:
    """What one camera layer shows (its slice of `SceneState`).

    Attributes:
        variants: its variants in the result shown.
        variant_visible: variant -> whether its frusta and trajectory are shown (every variant
            of the layer, shown or not).
        visible_nodes: frustum nodes on screen (hidden variants excluded), sorted.
    """

    variants: tuple[str, ...] = ()
    variant_visible: dict[str, bool] | None = None
    visible_nodes: tuple[str, ...] = ()


class CameraLayer(SceneLayer):
    """The frusta and trajectories of one group of camera variants.

    Args:
        host: the scene.
        variants: the variants this layer draws (in result.cameras.VARIANTS order).
        folder: the title of its sidebar folder and legend line.
    """

    name = "cameras"

    def __init__(self, host: SceneHost, variants: tuple[str, ...], folder: str) -> None:
        super().__init__(host)
        self.variants = variants
        self.folder = folder
        self.visible = dict.fromkeys(variants, True)
        self.frusta: dict[str, Frusta] = {}
        self.checkboxes: dict[str, viser.GuiCheckboxHandle] = {}
        self.fly_choice: viser.GuiDropdownHandle[str] | None = None

    # ------------------------------------------------------------------ the layer contract

    def add_controls(self) -> None:
        """A checkbox per variant, and "Fly into" a variant's camera of the current frame."""
        gui = self.host.server.gui
        labels = {display.VARIANT_LABELS[name]: name for name in self.variants}
        with gui.add_folder(self.folder):
            for name in self.variants:
                checkbox = gui.add_checkbox(display.VARIANT_LABELS[name], True)
                self.checkboxes[name] = checkbox
                self.host.writer.bind(
                    checkbox, self._checkbox_setter(name, checkbox), self._refresh_controls
                )
            choice = gui.add_dropdown("Camera", tuple(labels))
            fly = gui.add_button("Fly into this frame's camera", icon=viser.Icon.CAMERA)
        self.fly_choice = choice

        def fly_into(event: viser.GuiEvent[viser.GuiButtonHandle]) -> None:
            if event.client is not None:
                self.fly_to_current(event.client, labels[str(choice.value)])

        fly.on_click(fly_into)

    def show(self, clip: PreparedResult, view: FrameView) -> None:
        """Per variant of this layer in the result: a root node, the trajectory line and the
        camera poses (the frusta stream in with the frames)."""
        height, width = clip.recon.image_hw
        scene = self.host.server.scene
        for variant in self.variants:
            cameras = clip.cameras.get(variant)
            if cameras is None:
                continue
            root = scene.add_frame(
                f"/cameras/{variant}", show_axes=False, visible=self.visible[variant]
            )
            wxyz, centres = display.camera_poses(cameras.extrinsics)
            fov, aspect = display.frustum_fov_aspect(cameras.intrinsics, height, width)
            self.frusta[variant] = Frusta(
                root=root, wxyz=wxyz, centres=centres, fov=fov, aspect=aspect
            )
            segments = display.trajectory_segments(centres)
            if len(segments):
                scene.add_line_segments(
                    f"/cameras/{variant}/trajectory", points=segments,
                    colors=display.VARIANT_COLORS[variant], thickness=2.0,
                    thickness_units="screen",
                )  # fmt: skip

    def prepare_frame(self, clip: PreparedResult, index: int) -> np.ndarray | None:
        """The frame's thumbnail for the imaged frustum (None once this frame was sent)."""
        if not self.frusta or self.has_frame(index):
            return None
        images = clip.recon.images
        return SHARED_WORK.get(clip.recon, ("thumbnail", index), lambda: thumbnail(images[index]))

    def add_frame(
        self, clip: PreparedResult, index: int, prepared: np.ndarray | None, view: FrameView
    ) -> None:
        """Each variant's frustum of one frame: a wireframe, and one with the image that is
        shown instead while `index` is the current frame."""
        if prepared is None or self.has_frame(index):
            return
        for variant, frusta in self.frusta.items():
            if not (
                np.isfinite(frusta.wxyz[index]).all() and np.isfinite(frusta.centres[index]).all()
            ):
                continue  # an unusable predicted pose: nothing sensible to draw
            self._add_frustum(clip, variant, frusta, index, prepared, view)

    def apply(self, view: FrameView) -> None:
        """The current frame's frusta show their image; the others are wireframes. The
        camera looked through shows neither (its image would cover the view)."""
        for variant, frusta in self.frusta.items():
            for index, handle in frusta.plain.items():
                handle.visible = index != view.frame
            for index, handle in frusta.imaged.items():
                handle.visible = index == view.frame and view.looked_through != (variant, index)

    def sync_controls(self, view: FrameView) -> None:
        shown = () if view.clip is None else tuple(view.clip.cameras)
        with self.host.writer.writing():
            for name, checkbox in self.checkboxes.items():
                checkbox.disabled = name not in shown
                checkbox.value = self.visible[name]

    def legend(self, view: FrameView) -> str:
        if not self.frusta:
            return ""
        swatches = "".join(
            swatch(display.VARIANT_COLORS[name], display.VARIANT_LABELS[name])
            for name in self.frusta
        )
        return f"<div><b>{self.folder}</b><br>{swatches}</div>"

    def state(self, view: FrameView) -> CameraState:
        return CameraState(
            variants=tuple(self.frusta),
            variant_visible=dict(self.visible),
            visible_nodes=self.visible_nodes(),
        )

    def remove(self) -> None:
        """Remove every variant's nodes."""
        for frusta in self.frusta.values():
            frusta.root.remove()
        self.frusta = {}

    # ------------------------------------------------------------------ setters and reading

    def set_variant_visible(self, name: str, visible: bool) -> None:
        """Show or hide one variant's frusta and trajectory (takes the scene's lock)."""
        if name not in self.variants:
            raise DisplayError(
                f"camera variant must be one of {', '.join(self.variants)}, got {name!r}"
            )
        with self.host.lock, self.host.server.atomic():
            self.visible[name] = bool(visible)
            if name in self.frusta:
                self.frusta[name].root.visible = bool(visible)
            if name in self.checkboxes:
                self.host.writer.set(self.checkboxes[name], bool(visible))

    def has_frame(self, index: int) -> bool:
        """Whether any variant's frusta of this frame were sent."""
        return any(index in frusta.plain for frusta in self.frusta.values())

    def camera_pose(self, variant: str, index: int) -> CameraPose | None:
        """(wxyz, position, vertical fov) of one camera, or None if it is not in the scene."""
        frusta = self.frusta.get(variant)
        if frusta is None or index >= len(frusta.wxyz):
            return None
        return frusta.wxyz[index], frusta.centres[index], float(frusta.fov[index])

    def visible_nodes(self) -> tuple[str, ...]:
        """Frustum nodes on screen (hidden variants excluded), sorted."""
        names = [
            handle.name
            for frusta in self.frusta.values()
            if frusta.root.visible
            for handle in [*frusta.plain.values(), *frusta.imaged.values()]
            if handle.visible
        ]
        return tuple(sorted(names))

    def frustum_clicked(self, client: viser.ClientHandle, variant: str, index: int) -> None:
        """A click on a frustum: move the timeline to its frame (firing the frame-change
        callbacks), put the client's viewpoint at that camera (pose and field of view) and
        hide that frustum's image. Ground truth is flown to at its pose aligned onto the
        prediction (`prepare_clip`), where the points are."""
        self.host.user_moved_frame(index)
        with self.host.lock:
            pose = self.camera_pose(variant, index)
        if pose is not None:
            self.host.fly_into(client, (variant, index), pose)

    def fly_to_current(self, client: viser.ClientHandle, variant: str) -> None:
        """Put a client's viewpoint at a variant's camera of the current frame (nothing when
        the result has no such camera, or its pose is unusable)."""
        with self.host.lock:
            frame = self.host.view().frame
            pose = self.camera_pose(variant, frame)
        if pose is None or not all(np.isfinite(part).all() for part in pose[:2]):
            logger.info("no usable %s camera on frame %d to fly into", variant, frame)
            return
        self.host.fly_into(client, (variant, frame), pose)

    # ------------------------------------------------------------------ internals

    def _add_frustum(
        self,
        clip: PreparedResult,
        variant: str,
        frusta: Frusta,
        index: int,
        image: np.ndarray,
        view: FrameView,
    ) -> None:
        common = {
            "fov": float(frusta.fov[index]),
            "aspect": float(frusta.aspect[index]),
            "scale": display.viser_frustum_scale(
                clip.frustum_length, frusta.fov[index], frusta.aspect[index]
            ),
            "color": display.VARIANT_COLORS[variant],
            "wxyz": frusta.wxyz[index],
            "position": frusta.centres[index],
            "thickness": 1.5,
            "thickness_units": "screen",
        }
        scene, name, current = self.host.server.scene, f"/cameras/{variant}", index == view.frame
        plain = scene.add_camera_frustum(
            f"{name}/frusta/t{index:04d}", visible=not current, **common
        )
        imaged = scene.add_camera_frustum(
            f"{name}/images/t{index:04d}", image=image, format="jpeg", jpeg_quality=80,
            visible=current and view.looked_through != (variant, index), **common,
        )  # fmt: skip
        self.host.counters.bytes += image.nbytes  # what we handed over, before JPEG
        for handle in (plain, imaged):
            handle.on_click(self._click_callback(variant, index))
        frusta.plain[index] = plain
        frusta.imaged[index] = imaged

    def _click_callback(
        self, variant: str, index: int
    ) -> Callable[[viser.SceneNodePointerEvent[viser.CameraFrustumHandle]], None]:
        def callback(event: viser.SceneNodePointerEvent[viser.CameraFrustumHandle]) -> None:
            self.frustum_clicked(event.client, variant, index)

        return callback

    def _checkbox_setter(self, name: str, checkbox: viser.GuiCheckboxHandle) -> Callable[[], None]:
        return lambda: self.set_variant_visible(name, bool(checkbox.value))

    def _refresh_controls(self) -> None:
        with self.host.lock:
            self.sync_controls(self.host.view())


class HeadCameraLayer(CameraLayer):
    """The camera head's poses, masked and unmasked, and the ground truth when known."""

    name = "cameras"

    def __init__(self, host: SceneHost) -> None:
        super().__init__(host, HEAD_CAMERAS, "Cameras")


def look_through(
    client: viser.ClientHandle, wxyz: np.ndarray, position: np.ndarray, fov: float
) -> None:
    """Put a client's viewpoint at a camera: its pose and its vertical field of view."""
    with client.atomic():
        client.camera.wxyz = wxyz
        client.camera.position = position
        client.camera.fov = fov


def move_view(
    client: viser.ClientHandle, position: np.ndarray, look_at: np.ndarray, up: np.ndarray
) -> None:
    """Move a connected client's viewpoint (position first: setting it drags look_at along)."""
    try:
        with client.atomic():
            client.camera.position = position
            client.camera.look_at = look_at
            client.camera.up_direction = up
    except AssertionError:
        # Viser asserts when a just-connected client has not reported its camera yet; that
        # client starts from `server.initial_camera`, which is already set.
        logger.debug("client %s has no camera yet; it will start from the initial view", client)
