"""The downloads of a shown result, written once into its exports folder, and keeping a
result's clicked tracks where the downloads come from.

A download's file name holds the display settings it was drawn with, so a changed setting
writes new files and an unchanged one reuses them. Adding tracks changes what the result
holds, not a setting, so the files that draw tracks are dropped and written again.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from page4d_viewer.errors import Page4DError
from page4d_viewer.result import export  # the exporters load trimesh and PyAV when used
from page4d_viewer.result.reconstruction import Reconstruction
from page4d_viewer.settings import DEFAULT_MASK_OVERLAY, MaskOverlay
from page4d_viewer.viewer.runs import DiskFullError, check_free_space, disk_full

logger = logging.getLogger(__name__)

RESULT_NAME = "result.npz"
TRACKS_CSV_NAME = "tracks.csv"
# The downloads that draw the tracks (and so go stale when tracks are added).
_TRACK_DRAWINGS = ("scene_conf*.glb", TRACKS_CSV_NAME)


def write_downloads(
    recon: Reconstruction,
    result_file: Path,
    folder: Path,
    percentile: float,
    mask_opacity: float,
    mask_threshold: float,
    mask_overlay: MaskOverlay = DEFAULT_MASK_OVERLAY,
) -> list[Path]:
    """Write (once) and list the downloads of ``recon``.

    Args:
        recon: the result shown.
        result_file: its saved file (a run's own file, or a copy in ``folder``).
        folder: where downloads are written and served from.
        percentile: the scene's confidence filter, for the GLB and the PLYs.
        mask_opacity, mask_threshold, mask_overlay: the overlay, for the mp4.

    Returns:
        The result file, a GLB scene, a zip of per-frame PLYs, TUM trajectories (one per
        camera variant), the mask overlay mp4, and the tracks CSV when there are tracks.

    Raises:
        Page4DError: the run's folder is gone (pruned: recreating it would leave an exports
            folder no run owns and no budget counts).
        DiskFullError: too little free space to start, or the disk filled meanwhile (the
            files this call began are removed).
    """
    if not folder.parent.is_dir():
        raise Page4DError(
            "this run was removed from the runs folder to keep it within its size budget: "
            "open another run"
        )
    folder.mkdir(exist_ok=True)
    check_free_space(folder)
    with _removing_new_files_if_disk_fills(folder):
        glb = folder / f"scene_conf{percentile:g}.glb"
        if not glb.exists():
            export.export_glb(recon, glb, conf_percentile=percentile)
        ply_zip = folder / f"points_ply_conf{percentile:g}.zip"
        if not ply_zip.exists():
            _write_ply_zip(recon, ply_zip, partial(export.export_ply, conf_percentile=percentile))
        tum = sorted(folder.glob("trajectory_*.txt"))
        if not tum:
            tum = sorted(export.export_tum(recon, folder / "trajectory.txt"))
        # The settings are in the name: a changed overlay writes a new video.
        overlay = f"{mask_overlay}_opacity{mask_opacity:g}_threshold{mask_threshold:g}"
        mp4 = folder / f"mask_overlay_{overlay}.mp4"
        if not mp4.exists():
            export.export_mp4(
                recon, mp4, opacity=mask_opacity, threshold=mask_threshold, overlay=mask_overlay
            )
        files = [result_file, glb, ply_zip, *tum, mp4]
        if recon.tracks is not None:
            tracks_csv = folder / TRACKS_CSV_NAME
            if not tracks_csv.exists():
                export.export_tracks_csv(recon, tracks_csv, threshold=mask_threshold)
            files.append(tracks_csv)
        return files


@contextlib.contextmanager
def _removing_new_files_if_disk_fills(folder: Path) -> Iterator[None]:
    """Within this block, a full disk removes what the block began in ``folder`` and raises
    DiskFullError; any other error passes through untouched."""
    before = set(folder.iterdir())
    try:
        yield
    except OSError as error:
        if not disk_full(error):
            raise
        for partial_file in set(folder.iterdir()) - before:
            if partial_file.is_dir():
                shutil.rmtree(partial_file, ignore_errors=True)
            else:
                partial_file.unlink(missing_ok=True)
        raise DiskFullError(
            f"the disk filled up while writing the downloads ({error.strerror}); "
            "none were kept: free some space and prepare them again"
        ) from None


def download_copy(result_file: Path, folder: Path) -> Path:
    """The result file a download serves: a copy in ``folder`` of a file opened elsewhere."""
    copy = folder / RESULT_NAME
    if not copy.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result_file, copy)
    return copy


def keep_tracks(recon: Reconstruction, run_file: Path | None, folder: Path) -> Path:
    """Save a result whose tracks changed, so downloads and reopening keep them.

    A run of this app is saved over its own file (atomically); a result opened from a file is
    saved as the download copy in ``folder``, never over the user's file. Downloads that draw
    tracks are dropped, to be written again with the new ones.

    Returns:
        The file now holding the result.
    """
    target = run_file if run_file is not None else folder / RESULT_NAME
    recon.save(target)
    for pattern in _TRACK_DRAWINGS:
        for stale in folder.glob(pattern):
            stale.unlink(missing_ok=True)
    logger.info(
        "saved %d tracks to %s", 0 if recon.tracks is None else recon.tracks.num_tracks, target
    )
    return target


def _write_ply_zip(
    recon: Reconstruction, path: Path, export_ply: Callable[..., list[Path]]
) -> None:
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        files = export_ply(recon, scratch)
        unfinished = path.with_suffix(".zip.unfinished")
        with zipfile.ZipFile(unfinished, "w", zipfile.ZIP_STORED) as archive:
            for file in files:
                archive.write(file, arcname=Path(file).name)
        unfinished.replace(path)
