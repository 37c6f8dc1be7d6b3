"""The scene's point tracks: each track's 3-D path drawn as line segments ending at the current
frame, fading with age.

A track's path is `result.tracks.lift` for the scene's point source, so it runs through the
very points the scene shows. Only the last `trail` frames are drawn: segment t joins the
track's points on frames t - 1 and t, for t in (frame - trail, frame]. A segment is left out
when either end is invisible (`Tracks.visible`) or has no point (NaN). Viser has no per-vertex
alpha, so age shows as colour: each vertex is blended toward the background by its age, and
the older half of the trail is drawn thinner than the newer half. A dot marks where each
track is on the current frame.

Nodes: `/tracks` holds `/tracks/recent` and `/tracks/older` (line segments) and
`/tracks/heads` (a point cloud). The paths are lifted once per point source and kept; a frame
change only sends these three nodes' new points and colours (a few kB for hundreds of tracks).
The Tracks folder of the sidebar sets `TrackSettings`; the panel adds tracks to the shown
result with `TrackLayer.update`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from page4d_viewer.result.mask import DisplayError
from page4d_viewer.result.tracks import lift, moving_tracks, track_colors
from page4d_viewer.settings import DEFAULT_TRACK_TRAIL, DEFAULT_TRACKS_SHOWN, MAX_TRACKS
from page4d_viewer.viewer.scene.controls import SettingsControls
from page4d_viewer.viewer.scene.layer import FrameView, SceneHost, SceneLayer
from page4d_viewer.viewer.scene.legend import swatch
from page4d_viewer.viewer.scene.nodes import PreparedResult

if TYPE_CHECKING:
    import viser

    from page4d_viewer.result.reconstruction import Reconstruction

TrackChoice = Literal["both", "moving", "static"]
"""Which tracks are drawn: all, those seeded where the mask says moving, or the others."""
TRACK_CHOICES: tuple[TrackChoice, ...] = get_args(TrackChoice)
MAX_TRACKS_SHOWN = MAX_TRACKS  # as many as one request may track
MAX_TRACK_TRAIL = 256
BACKGROUND = np.array([255.0, 255.0, 255.0])  # Viser's default background, white
FADE = 0.85  # the oldest vertex of a trail is this much background
THICKNESS = {"recent": 4.0, "older": 2.0}  # screen pixels: the newer / older half of a trail
HEAD_SCALE = 2.5  # a track's dot across, in scene point sizes
TRUTH_COLOR = np.array([40, 40, 40], dtype=np.uint8)  # ground-truth trails: near black
TRUTH_THICKNESS = 2.0


@dataclass(frozen=True)
class TrackSettings:
    """The values of the Tracks controls.

    Attributes:
        visible: whether tracks are drawn at all.
        max_count: at most this many tracks are drawn (spread evenly over those chosen).
        trail: how many frames of each path are drawn, back from the current frame.
        which: one of TRACK_CHOICES.
        truth: whether the ground-truth tracks of the same queries are drawn too (when the
            result has them: a synthetic scene), as dark trails beside the predicted ones.
    """

    visible: bool = True
    max_count: int = DEFAULT_TRACKS_SHOWN
    trail: int = DEFAULT_TRACK_TRAIL
    which: TrackChoice = "both"
    truth: bool = True

    def check(self) -> None:
        """Raises DisplayError (one line) for a value out of range."""
        if self.which not in TRACK_CHOICES:
            choices = ", ".join(TRACK_CHOICES)
            raise DisplayError(f"tracks: show one of {choices}, got {self.which!r}")
        if not 1 <= self.max_count <= MAX_TRACKS_SHOWN:
            raise DisplayError(
                f"tracks shown must be in 1..{MAX_TRACKS_SHOWN}, got {self.max_count}"
            )
        if not 1 <= self.trail <= MAX_TRACK_TRAIL:
            raise DisplayError(
                f"the track trail must be in 1..{MAX_TRACK_TRAIL} frames, got {self.trail}"
            )


@dataclass(frozen=True)
class TrackState:
    """What the scene shows of the tracks (for `SceneState`, tests and benchmarks).

    Attributes:
        count: tracks in the result shown (0 without tracks).
        drawn: tracks with a segment or a dot on screen.
        segments: line segments on screen.
        heads: tracks with a dot on the current frame.
        sends: how many times the segments were sent since the result was shown.
        settings: the Tracks controls' values.
        truth_segments: ground-truth line segments on screen.
    """

    count: int = 0
    drawn: int = 0
    segments: int = 0
    heads: int = 0
    sends: int = 0
    settings: TrackSettings = field(default_factory=TrackSettings)
    truth_segments: int = 0


@dataclass(frozen=True)
class TrackSegments:
    """What is drawn of the tracks on one frame.

    Attributes:
        points: (M, 2, 3) float32 segment ends, world coordinates (start, end).
        colors: (M, 2, 3) uint8 colour of each end, faded by its age.
        track: (M,) int64 track index of each segment.
        age: (M,) int64 frames from the segment's end to the current frame (0: the newest).
        heads: (K, 3) float32 where each drawn track is on the current frame (visible ones).
        head_colors: (K, 3) uint8 their track colours.
        head_tracks: (K,) int64 their track indices.
    """

    points: np.ndarray
    colors: np.ndarray
    track: np.ndarray
    age: np.ndarray
    heads: np.ndarray
    head_colors: np.ndarray
    head_tracks: np.ndarray


def choose_tracks(moving: np.ndarray, which: str, max_count: int) -> np.ndarray:
    """Indices of the tracks to draw, ascending.

    Args:
        moving: (N,) bool, whether each track is moving (`result.tracks.moving_tracks`).
        which: "both", "moving" or "static".
        max_count: at most this many; more are thinned evenly, always keeping the first and
            the last (the newest seeded) one.

    Returns:
        (K,) int64, K <= max_count.
    """
    moving = np.asarray(moving, dtype=bool)
    if which == "moving":
        candidates = np.flatnonzero(moving)
    elif which == "static":
        candidates = np.flatnonzero(~moving)
    else:
        candidates = np.arange(len(moving))
    if len(candidates) <= max_count:
        return candidates.astype(np.int64)
    picks = np.unique(np.round(np.linspace(0, len(candidates) - 1, max_count)).astype(np.int64))
    return candidates[picks].astype(np.int64)


def fade(colors: np.ndarray, age: np.ndarray, trail: int) -> np.ndarray:
    """Colours blended toward the background by age: `age / trail` of FADE.

    Args:
        colors: (..., 3) uint8 track colours.
        age: (...) frames back from the current frame, 0..trail.
        trail: the trail length in frames.

    Returns:
        (..., 3) uint8.
    """
    weight = FADE * np.clip(np.asarray(age, dtype=np.float64) / max(trail, 1), 0.0, 1.0)
    blended = (1.0 - weight[..., None]) * colors + weight[..., None] * BACKGROUND
    return np.round(blended).astype(np.uint8)


def track_segments(
    paths: np.ndarray,
    visible: np.ndarray,
    colors: np.ndarray,
    chosen: np.ndarray,
    frame: int,
    trail: int,
) -> TrackSegments:
    """The segments and dots of the chosen tracks on one frame.

    Args:
        paths: (S, N, 3) world point of each track on each frame, NaN where it has none.
        visible: (S, N) bool, whether each track is visible on each frame.
        colors: (N, 3) uint8 colour of each track.
        chosen: (K,) indices of the tracks to draw.
        frame: the current frame.
        trail: frames drawn back from the current one (>= 1).

    Returns:
        Segments ordered oldest first, then by track; M <= trail * K.
    """
    chosen = np.asarray(chosen, dtype=np.int64)
    ends = np.arange(max(frame - trail, 0) + 1, frame + 1)  # (T,) frame of each segment's end
    start, end = paths[ends - 1][:, chosen], paths[ends][:, chosen]  # (T, K, 3)
    usable = visible[ends - 1][:, chosen] & visible[ends][:, chosen]
    usable &= np.isfinite(start).all(axis=-1) & np.isfinite(end).all(axis=-1)
    age = np.broadcast_to((frame - ends)[:, None], usable.shape)
    tracks = np.broadcast_to(chosen[None, :], usable.shape)
    track_of, age_of = tracks[usable], age[usable]
    points = np.stack([start[usable], end[usable]], axis=1).astype(np.float32)
    base = colors[track_of]
    segment_colors = np.stack([fade(base, age_of + 1, trail), fade(base, age_of, trail)], axis=1)
    now = paths[frame, chosen]
    shown = visible[frame, chosen] & np.isfinite(now).all(axis=-1)
    return TrackSegments(
        points=points.reshape(-1, 2, 3),
        colors=segment_colors.reshape(-1, 2, 3),
        track=track_of.astype(np.int64),
        age=age_of.astype(np.int64),
        heads=now[shown].astype(np.float32),
        head_colors=colors[chosen[shown]],
        head_tracks=chosen[shown],
    )


@dataclass
class TrackControls(SettingsControls):
    """The Tracks folder: the point tracks' settings (`TrackSettings`)."""

    visible: viser.GuiCheckboxHandle
    max_count: viser.GuiSliderHandle[int]
    trail: viser.GuiSliderHandle[int]
    which: viser.GuiDropdownHandle[TrackChoice]
    truth: viser.GuiCheckboxHandle


class TrackLayer(SceneLayer):
    """The tracks of the shown result: nodes `/tracks/{recent,older,heads}`.

    Args:
        host: the scene.
    """

    name = "tracks"

    def __init__(self, host: SceneHost) -> None:
        super().__init__(host)
        self.controls: TrackControls | None = None
        self.settings = TrackSettings()
        self._recon: Reconstruction | None = None
        self._paths: dict[str, np.ndarray] = {}  # point source -> (S, N, 3), lifted once
        self._moving: tuple[float, np.ndarray] | None = None  # (threshold, (N,) bool)
        self._root: viser.FrameHandle | None = None
        self._nodes: dict[str, viser.SceneNodeHandle] = {}
        self._drawn: tuple | None = None  # what the nodes on screen were drawn for
        self.segments: TrackSegments | None = None  # what is on screen (None: nothing)
        self.truth_segments: TrackSegments | None = None  # ground-truth trails on screen
        self._sends = 0

    @property
    def count(self) -> int:
        """Tracks in the result shown (0 without tracks)."""
        tracks = None if self._recon is None else self._recon.tracks
        return 0 if tracks is None else tracks.num_tracks

    @property
    def has_truth(self) -> bool:
        """Whether the result shown has ground-truth tracks."""
        return self._recon is not None and self._recon.gt_tracks is not None

    # ------------------------------------------------------------------ the layer contract

    def add_controls(self) -> None:
        """The Tracks folder (disabled until a result with tracks is shown)."""
        gui, defaults = self.host.server.gui, TrackSettings()
        with gui.add_folder("Tracks"):
            visible = gui.add_checkbox("Show tracks", defaults.visible, disabled=True)
            max_count = gui.add_slider(
                "Tracks shown (at most)", min=1, max=MAX_TRACKS_SHOWN, step=1,
                initial_value=defaults.max_count, disabled=True,
            )  # fmt: skip
            trail = gui.add_slider(
                "Track trail (frames)", min=1, max=MAX_TRACK_TRAIL, step=1,
                initial_value=defaults.trail, disabled=True,
            )  # fmt: skip
            which = gui.add_dropdown(
                "Which tracks", TRACK_CHOICES, initial_value=defaults.which, disabled=True
            )
            truth = gui.add_checkbox("Ground-truth tracks", defaults.truth, disabled=True)
        controls = TrackControls(visible, max_count, trail, which, truth)
        self.controls = controls

        def apply() -> None:
            self.set(
                bool(visible.value), int(max_count.value), int(trail.value),
                str(which.value), bool(truth.value),
            )  # fmt: skip

        for handle in controls.handles():
            self.host.writer.bind(handle, apply, self._refresh_controls)

    def show(self, clip: PreparedResult, view: FrameView) -> None:
        """Draw the tracks of the result shown (when it has some)."""
        self.load(clip.recon)

    def apply(self, view: FrameView) -> None:
        """Redraw the tracks for the frame, point source and mask threshold (sends nothing
        when none of them changed)."""
        self.draw(view.frame, view.points.source, view.threshold, view.points.point_size)

    def sync_controls(self, view: FrameView) -> None:
        """Write the settings into the Tracks folder; disabled without tracks (and the
        ground-truth toggle without ground-truth tracks)."""
        controls, writer = self.controls, self.host.writer
        if controls is None:
            return
        with writer.writing():
            controls.show(writer, self.settings, enabled=self.count > 0)
            controls.truth.disabled = not self.has_truth

    def legend(self, view: FrameView) -> str:
        if self.count == 0:
            return ""
        moving, static = track_colors(np.array([True, False]))
        swatches = swatch(moving, "moving track") + swatch(static, "static track")
        if self.has_truth:
            swatches += swatch(TRUTH_COLOR, "ground truth")
        return f"<div><b>Tracks</b> (warm: moving, cool: static)<br>{swatches}</div>"

    # ------------------------------------------------------------------ setters (take the lock)

    def set(
        self,
        visible: bool | None = None,
        max_count: int | None = None,
        trail: int | None = None,
        which: str | None = None,
        truth: bool | None = None,
    ) -> None:
        """Point tracks: drawn or not, at most `max_count`, each a trail of `trail` frames
        ending at the current one, "moving", "static" or "both" (moving: seeded where the
        mask's dynamic probability is at least its threshold), with their ground truth or
        not. None keeps a setting. Only the tracks are redrawn."""
        with self.host.lock, self.host.server.atomic():
            current = self.settings
            chosen = TrackSettings(
                current.visible if visible is None else bool(visible),
                current.max_count if max_count is None else int(max_count),
                current.trail if trail is None else int(trail),
                current.which if which is None else str(which),  # type: ignore[arg-type]
                current.truth if truth is None else bool(truth),
            )
            chosen.check()  # a bad value (`which` included): DisplayError, nothing changed
            self.settings = chosen
            self.sync_controls(self.host.view())
            self.host.redraw()

    def update(self, recon: Reconstruction) -> None:
        """Draw the tracks of `recon`, the shown result with tracks added (`add_tracks`): same
        frames and geometry, so nothing but the tracks is sent again."""
        with self.host.lock, self.host.server.atomic():
            view = self.host.view()
            if view.clip is None or recon.points.shape != view.clip.recon.points.shape:
                raise DisplayError("tracks can only be added to the result on screen")
            self.load(recon)
            self.sync_controls(view)
            self.host.redraw()

    def _refresh_controls(self) -> None:
        with self.host.lock:
            self.sync_controls(self.host.view())

    # ------------------------------------------------------------------ drawing

    def load(self, recon: Reconstruction | None) -> None:
        """Draw the tracks of `recon` from the next `draw` on (None: none). The lifted paths
        are recomputed: call this also when tracks were added to the shown result."""
        self._recon = recon
        self._paths, self._moving, self._drawn = {}, None, None
        if recon is None:
            self._sends = 0

    def draw(self, frame: int, source: str, threshold: float, point_size: float) -> None:
        """Make the nodes show the tracks on `frame`; nothing is sent when nothing changed."""
        settings = self.settings
        key = (frame, source, threshold, point_size, settings, id(self._recon))
        if key == self._drawn:
            return
        self._drawn = key
        if not settings.visible or self.count == 0:
            self._hide()
            return
        recon = self._recon
        assert recon is not None and recon.tracks is not None
        if source not in self._paths:
            self._paths[source] = lift(recon, source)
        if self._moving is None or self._moving[0] != threshold:
            self._moving = (threshold, moving_tracks(recon, threshold))
        moving = self._moving[1]
        chosen = choose_tracks(moving, settings.which, settings.max_count)
        segments = track_segments(
            self._paths[source], recon.tracks.visible(), track_colors(moving), chosen,
            frame, settings.trail,
        )  # fmt: skip
        self._send(segments, settings.trail, HEAD_SCALE * point_size)
        self.segments = segments
        self.truth_segments = self._truth(recon, source, chosen, frame)
        truth = self.truth_segments
        empty = np.zeros((0, 2, 3), dtype=np.float32)
        self._put_lines(
            "truth",
            empty if truth is None else truth.points,
            empty.astype(np.uint8) if truth is None else truth.colors,
        )

    def _truth(
        self, recon: Reconstruction, source: str, chosen: np.ndarray, frame: int
    ) -> TrackSegments | None:
        """The ground-truth trails of the chosen tracks, or None (none, or switched off)."""
        truth = recon.gt_tracks
        if truth is None or not self.settings.truth:
            return None
        key = f"truth:{source}"
        if key not in self._paths:
            self._paths[key] = lift(recon, source, truth)
        colors = np.broadcast_to(TRUTH_COLOR, (truth.num_tracks, 3))
        return track_segments(
            self._paths[key], truth.visible(), colors, chosen, frame, self.settings.trail
        )

    def _send(self, segments: TrackSegments, trail: int, head_size: float) -> None:
        """Put the segments and dots into the nodes: a property update of a node already
        there, a new node otherwise; an empty one is hidden (Viser draws no empty lines)."""
        if self._root is None:
            self._root = self.host.server.scene.add_frame("/tracks", show_axes=False)
        self._root.visible = True
        recent = segments.age < max(1, (trail + 1) // 2)
        for name, keep in (("recent", recent), ("older", ~recent)):
            self._put_lines(name, segments.points[keep], segments.colors[keep])
        self._put_heads(segments.heads, segments.head_colors, head_size)
        self._sends += 1

    def _put_lines(self, name: str, points: np.ndarray, colors: np.ndarray) -> None:
        handle = self._nodes.get(name)
        if len(points) == 0:
            if handle is not None:
                handle.visible = False
            return
        if handle is None:
            self._nodes[name] = self.host.server.scene.add_line_segments(
                f"/tracks/{name}", points=points, colors=colors,
                thickness=THICKNESS.get(name, TRUTH_THICKNESS), thickness_units="screen",
            )  # fmt: skip
            return
        handle.points, handle.colors = points, colors  # type: ignore[attr-defined]
        handle.visible = True

    def _put_heads(self, heads: np.ndarray, colors: np.ndarray, size: float) -> None:
        handle = self._nodes.get("heads")
        if len(heads) == 0:
            if handle is not None:
                handle.visible = False
            return
        if handle is None:
            self._nodes["heads"] = self.host.server.scene.add_point_cloud(
                "/tracks/heads", points=heads, colors=colors, point_size=size,
                point_shape="circle", point_shading="flat",
            )  # fmt: skip
            return
        handle.points, handle.colors = heads, colors  # type: ignore[attr-defined]
        handle.point_size = size  # type: ignore[attr-defined]
        handle.visible = True

    def _hide(self) -> None:
        if self._root is not None:
            self._root.visible = False
        self.segments = self.truth_segments = None

    def remove(self) -> None:
        """Remove the nodes and forget the result."""
        if self._root is not None:
            self._root.remove()
        self._root, self._nodes, self.segments = None, {}, None
        self.truth_segments = None
        self.load(None)

    def state(self, view: FrameView | None = None) -> TrackState:
        """A snapshot for `SceneState`."""
        segments = self.segments
        drawn = 0 if segments is None else len(np.unique(np.concatenate(
            [segments.track, segments.head_tracks]
        )))  # fmt: skip
        return TrackState(
            count=self.count,
            drawn=drawn,
            segments=0 if segments is None else len(segments.points),
            heads=0 if segments is None else len(segments.heads),
            sends=self._sends,
            settings=self.settings,
            truth_segments=0 if self.truth_segments is None else len(self.truth_segments.points),
        )
