"""`page4d-viewer export`: a result file -> GLB, PLY, TUM trajectories or an overlay mp4."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from page4d_viewer import settings
from page4d_viewer.errors import Page4DError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result", type=Path, help="result file written by `infer` (.npz)")
    parser.add_argument("--glb", type=Path, help="write a GLB scene (points + camera frusta)")
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
    parser.add_argument("--fps", type=float, help="mp4 frame rate (default: from the clip)")
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
        help="mp4: dynamic probability 0..1 from which the heat map is drawn "
        f"(default {settings.DEFAULT_MASK_THRESHOLD:g})",
    )


def run(args: argparse.Namespace) -> int:
    from page4d_viewer.result import export
    from page4d_viewer.result.reconstruction import Reconstruction

    if not any((args.glb, args.ply, args.tum, args.mp4)):
        raise Page4DError("nothing to export: give at least one of --glb, --ply, --tum, --mp4")
    recon = Reconstruction.load(args.result)
    frames = export.parse_frame_selection(args.frames, recon.num_frames)
    written: list[Path] = []
    if args.glb:
        written.append(
            export.export_glb(recon, args.glb, frames=frames, conf_percentile=args.conf_percentile)
        )
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
    sys.stdout.write("".join(f"wrote {path}\n" for path in written))
    return 0
