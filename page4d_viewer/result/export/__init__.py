"""Exports of a Reconstruction: GLB scene, PLY point clouds, TUM trajectories, mask-overlay mp4,
point tracks as CSV.

One module per format (`glb`, `ply`, `tum`, `mp4`, `tracks_csv`, and `share`: a folder that
plays the scene in a browser) and what they share (`common`). Every exporter reads only the
Reconstruction, filters points with `result.points`, draws the mask with `result.mask` and
lifts tracks with `result.tracks` (so an export is what the viewer showed), writes where it
is told (never into the working directory by default) and returns the path(s) it wrote.
"""

from page4d_viewer.result.export.common import (
    frustum_segments,
    parse_frame_selection,
    scene_extent,
)
from page4d_viewer.result.export.glb import export_glb
from page4d_viewer.result.export.mp4 import export_mp4, mp4_frame
from page4d_viewer.result.export.ply import export_ply
from page4d_viewer.result.export.share import export_share
from page4d_viewer.result.export.tracks_csv import export_tracks_csv
from page4d_viewer.result.export.tum import export_tum, read_tum, tum_lines

__all__ = [
    "export_glb",
    "export_mp4",
    "export_ply",
    "export_share",
    "export_tracks_csv",
    "export_tum",
    "frustum_segments",
    "mp4_frame",
    "parse_frame_selection",
    "read_tum",
    "scene_extent",
    "tum_lines",
]
