"""`page4d-viewer export`: a result file -> GLB, PLY, TUM trajectories, an overlay mp4, point
tracks as CSV, or a folder that plays the 4-D scene in a browser (`--share`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from page4d_viewer import settings
from page4d_viewer.cli.common import (
    add_result_argument,
    check_number,
    check_output_file,
    check_output_folder,
)
from page4d_viewer.errors import Page4DError
from page4d_viewer.result import export
from page4d_viewer.result.export import export_glb
from page4d_viewer.result.export.share import SHARE_MAX_POINTS, export_share
from page4d_viewer.result.points import POINT_SOURCES
from page4d_viewer.result.reconstruction import Reconstruction


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_result_argument(parser)
    parser.add_argument("--glb", type=Path, help="write a GLB scene (points, frusta, tracks)")
    parser.add_argument("--ply", type=Path, help="write one PLY point cloud per frame here")
    parser.add_argument(
        "--tum",
        type=Path,
        help="write camera trajectories (TUM text): with several variants one file each, "
        "named <stem>_<variant><suffix> (traj.txt -> traj_masked.txt, traj_unmasked.txt)",
    )
    parser.add_argument(
        "--tum-variant",
        help="only this variant (masked, unmasked, ...), written under exactly the --tum name",
    )
    parser.add_argument("--mp4", type=Path, help="write an mp4 with the mask as a heat map")
    _add_track_options(parser)
    parser.add_argument(
        "--share",
        type=Path,
        help="write a folder that plays the 4-D scene in a browser from static files "
        "(serve it with `python -m http.server`)",
    )
    parser.add_argument(
        "--share-max-points",
        type=int,
        help="--share: point budget of the whole clip (default 400000; more points, a "
        "larger folder)",
    )
    parser.add_argument(
        "--frames", help="frames to export: 'all' (default), '0,3,5' or '2-6' (0-based)"
    )
    parser.add_argument(
        "--conf-percentile",
        type=float,
        default=settings.DEFAULT_CONF_PERCENTILE,
        help="drop the least confident percent of points, as the scene does "
        f"(default {settings.DEFAULT_CONF_PERCENTILE:g})",
    )
    parser.add_argument(
        "--fps", type=float, help="mp4 and --share frame rate (default: from the clip)"
    )
    parser.add_argument(
        "--colormap",
        default=settings.DEFAULT_COLORMAP,
        help=f"mp4 heat-map colormap (default {settings.DEFAULT_COLORMAP}, as in the viewer)",
    )
    parser.add_argument(
        "--opacity",
        type=float,
        default=settings.DEFAULT_MASK_OPACITY,
        help=f"mp4 heat-map opacity 0..1 (default {settings.DEFAULT_MASK_OPACITY:g})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=settings.DEFAULT_MASK_THRESHOLD,
        help="dynamic probability 0..1 from which the mp4 heat map is drawn and a track "
        f"counts as moving (default {settings.DEFAULT_MASK_THRESHOLD:g})",
    )


def _add_track_options(parser: argparse.ArgumentParser) -> None:
    """The point-track outputs: the CSV, its point source, and leaving tracks out of the GLB."""
    parser.add_argument(
        "--tracks-csv",
        type=Path,
        help="write the result's point tracks as CSV, one row per track and frame (all "
        "frames): pixel, visibility, confidence and the 3-D point at that pixel",
    )
    parser.add_argument(
        "--tracks-source",
        choices=POINT_SOURCES,
        default="points",
        help="--tracks-csv: where the 3-D points come from (default points: the point map; "
        "depth_masked / depth_unmasked: depth unprojected with those cameras)",
    )
    parser.add_argument(
        "--no-tracks", action="store_true", help="--glb: leave the point tracks out"
    )


def run(args: argparse.Namespace) -> int:
    if not any((args.glb, args.ply, args.tum, args.mp4, args.tracks_csv, args.share)):
        raise Page4DError(
            "nothing to export: give at least one of --glb, --ply, --tum, --mp4, --tracks-csv, "
            "--share"
        )
    _check_arguments(args)
    recon = Reconstruction.load(args.result)
    if args.tracks_csv and recon.tracks is None:
        # before any file is written, so a failed export leaves nothing half done
        raise Page4DError(f"--tracks-csv: {args.result} has no point tracks (infer --tracks N)")
    frames = _good_frames(recon, export.parse_frame_selection(args.frames, recon.num_frames))
    written: list[Path] = []
    if args.glb:
        written.append(_export_glb(recon, args, frames))
    if args.ply:
        written += export.export_ply(
            recon, args.ply, frames=frames, conf_percentile=args.conf_percentile
        )
    if args.tum:
        trajectories = export.export_tum(recon, args.tum, variant=args.tum_variant)
        if trajectories != [args.tum]:
            sys.stderr.write(
                f"note: {len(trajectories)} camera variants, one trajectory file each, named "
                f"after {args.tum.name}; give --tum-variant to write {args.tum.name} alone\n"
            )
        written += trajectories
    if args.mp4:
        written.append(
            export.export_mp4(
                recon,
                args.mp4,
                frames=frames,
                fps=args.fps,
                opacity=args.opacity,
                threshold=args.threshold,
                colormap=args.colormap,
            )
        )
    if args.tracks_csv:
        written.append(
            export.export_tracks_csv(
                recon, args.tracks_csv, source=args.tracks_source, threshold=args.threshold
            )
        )
    if args.share:
        written.append(_export_share(recon, args))
    sys.stdout.write("".join(f"wrote {path}\n" for path in written))
    return 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Every argument, before the result is read."""
    files = ((args.glb, "--glb"), (args.tum, "--tum"), (args.mp4, "--mp4"))
    for path, option in (*files, (args.tracks_csv, "--tracks-csv")):
        if path is not None:
            check_output_file(path, option)
    if args.tracks_csv is not None and args.tracks_csv.suffix.lower() != ".csv":
        raise Page4DError(f"--tracks-csv must end in .csv, got {args.tracks_csv.name!r}")
    for folder, option in ((args.ply, "--ply"), (args.share, "--share")):
        if folder is not None:
            check_output_folder(folder, option)
    check_number(args.fps, "--fps", 0.0, settings.MAX_FPS.value())


def _good_frames(recon: Reconstruction, frames: list[int]) -> list[int]:
    """The selected frames without those holding NaN geometry (a damaged file); says so."""
    bad = set(recon.bad_frames)
    good = [frame for frame in frames if frame not in bad]
    skipped = len(frames) - len(good)
    if not good:
        raise Page4DError("every selected frame holds NaN or infinite geometry; nothing to export")
    if skipped:
        sys.stderr.write(f"note: skipped {skipped} frame(s) with NaN or infinite geometry\n")
    return good


def _export_glb(recon: Reconstruction, args: argparse.Namespace, frames: list[int]) -> Path:
    return export_glb(
        recon,
        args.glb,
        frames=frames,
        conf_percentile=args.conf_percentile,
        tracks=not args.no_tracks,
        mask_threshold=args.threshold,
    )


def _export_share(recon: Reconstruction, args: argparse.Namespace) -> Path:
    return export_share(
        recon,
        args.share,
        conf_percentile=args.conf_percentile,
        max_points=SHARE_MAX_POINTS if args.share_max_points is None else args.share_max_points,
        fps=args.fps,
        opacity=args.opacity,
        threshold=args.threshold,
    )
