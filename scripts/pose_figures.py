"""Write the README's pose picture: camera paths from above and the head-vs-geometry curve.

    python scripts/pose_figures.py                       # docs/images/geometric-poses.png
    python scripts/pose_figures.py --sample handheld_walk --frames 16 --out poses.png

Runs the shipped default model on a bundled sample (as `python launch.py` does at start) and
draws, side by side, the panel's two pose figures for that result: every camera variant's
path seen from above (Sim(3)-aligned onto the geometric masked path, as the panel shows it)
and the per-frame disagreement between the camera head and the geometry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", default="orbit_movers", help="a folder of assets/samples")
    parser.add_argument("--frames", type=int, default=24, help="frames of the sample to run")
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "docs" / "images" / "geometric-poses.png"
    )
    args = parser.parse_args(argv)

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from page4d_viewer.inference.predictor import load_default_model, predict
    from page4d_viewer.sources.sampling import FrameSampling
    from page4d_viewer.viewer import plots

    model, info = load_default_model()
    recon = predict(
        str(REPO_ROOT / "assets" / "samples" / args.sample),
        model,
        checkpoint_info=info,
        sampling=FrameSampling(max_frames=args.frames),
    )
    pictures = []
    for figure in (
        plots.trajectory_figure(plots.compare_poses(recon)),
        plots.disagreement_figure(recon),
    ):
        figure.set_size_inches(6.4, 4.6)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        pictures.append(np.asarray(canvas.buffer_rgba())[..., :3])
    height = max(picture.shape[0] for picture in pictures)
    padded = [
        np.pad(picture, ((0, height - picture.shape[0]), (0, 0), (0, 0)), constant_values=255)
        for picture in pictures
    ]
    import imageio.v3 as iio

    args.out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(args.out, np.concatenate(padded, axis=1))
    for row in plots.metrics_rows(recon):
        print(" | ".join(row))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
