"""What limits the geometric poses of a checkpoint with a match head.

On held-out synthetic clips (8 frames, every 2nd rendered frame, the model's input size),
solves the poses with each combination of depth (the renderer's or the model's) and matches
(the renderer's exact ones on a 4-pixel grid, the match head's, or OpenCV's DIS flow, the
source a checkpoint without match head gets), weighted as the product weights them
(`inference.geometric_poses`: the depth confidence, times the mask's keep probability for the
masked variant). Prints ATE (% of the true path, after Sim(3) alignment) and the path ratio,
as `benchmarks/geometric_poses.py` does for the shipped model. The match head's matches weigh
0 where it calls them unmatched; the exact ones where the point is hidden.

    python benchmarks/match_head_poses.py --checkpoint run.safetensors --seeds 9000100-9000105
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from page4d_viewer import geometry
from page4d_viewer.evaluation.default_model import path_length
from page4d_viewer.evaluation.trajectory import trajectory_errors
from page4d_viewer.inference import geometric_poses
from page4d_viewer.model import load_checkpoint
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs, solve_poses
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.datasets import parse_seeds
from page4d_viewer.sources.synthetic import ground_truth_matches
from page4d_viewer.training.data import PATCH_SIZE, clip_to_sample, render_clip


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint with a match head")
    parser.add_argument("--seeds", default="9000100-9000105")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--texture-detail", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def _exact(clip: object, frames: np.ndarray) -> Matches:
    pairs = keyframe_pairs(len(frames))
    arrays = ground_truth_matches(clip, [(int(frames[a]), int(frames[b])) for a, b in pairs], 4)
    index = {int(frame): position for position, frame in enumerate(frames)}
    return Matches.from_arrays(
        [index[int(f)] for f in arrays.reference],
        [index[int(f)] for f in arrays.target],
        arrays.reference_xy,
        arrays.target_xy,
        arrays.weight,
        "exact",
    )


def _double(matches: Matches) -> Matches:
    return Matches.from_arrays(
        matches.reference,
        matches.target,
        matches.reference_xy.detach().numpy(),
        matches.target_xy.detach().numpy(),
        matches.weight.detach().numpy(),
        matches.source,
    )


def _solve(depth: np.ndarray, intrinsics: np.ndarray, matches: Matches, weight) -> np.ndarray:
    return solve_poses(
        torch.as_tensor(np.asarray(depth, np.float64)),
        torch.as_tensor(np.asarray(intrinsics, np.float64)),
        matches,
        None if weight is None else torch.as_tensor(np.asarray(weight, np.float64)),
    ).extrinsics.numpy()


def _score(extrinsics: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    length = path_length(truth)
    return 100.0 * trajectory_errors(extrinsics, truth).ate / length, (
        path_length(extrinsics) / length
    )


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(args.checkpoint)
    if not model.match_available:
        raise SystemExit(f"{args.checkpoint} has no match head")
    width = model.config.img_size
    image_hw = (max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width)
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in parse_seeds(args.seeds):
        clip = render_clip(seed, (args.frames - 1) * args.stride + 1, image_hw, args.texture_detail)
        frames = np.arange(0, clip.images.shape[0], args.stride)
        sample = clip_to_sample(clip, frames)
        truth_units, _ = geometry.pose_encoding_to_cameras(
            sample.pose_enc.astype(np.float64), image_hw
        )
        truth_metres = geometry.compose_rigid(
            clip.extrinsics[frames], geometry.invert_rigid(clip.extrinsics[frames[0]])
        )[:, :3]
        with torch.no_grad():
            output = model(
                torch.from_numpy(sample.images)[None], mask_strength=RELEASED_MASK_STRENGTH
            )
            head = model.match_head.match(
                output.match_features.clip(0), keyframe_pairs(len(frames)), image_hw
            )
        head = _double(head)
        depth = output.depth[0, ..., 0].double().numpy()
        depth_conf = output.depth_conf[0].double().numpy()
        _, intrinsics = geometry.pose_encoding_to_cameras(
            output.pose_enc[0].double().numpy(), image_hw
        )
        confidence = geometric_poses.confidence_weight(depth_conf)
        keep = geometric_poses.keep_probability(output.mask_score[0].numpy(), image_hw)
        images = (sample.images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        flow = geometric_poses.find_matches(images)
        exact = _exact(clip, frames)
        true_depth, true_intrinsics = clip.depth[frames], clip.intrinsics[frames]
        cases = {
            "| true | exact | none |": (true_depth, true_intrinsics, exact, None),
            "| true | match head | none |": (true_depth, true_intrinsics, head, None),
            "| model | exact | depth confidence |": (depth, intrinsics, exact, confidence),
            "| model | match head | depth confidence |": (depth, intrinsics, head, confidence),
            "| model | match head | depth confidence x mask |": (
                depth,
                intrinsics,
                head,
                confidence * keep,
            ),
            "| model | flow | depth confidence |": (depth, intrinsics, flow, confidence),
        }
        for label, case in cases.items():
            truth = truth_metres if label.startswith("| true") else truth_units
            rows.setdefault(label, []).append(_score(_solve(*case), truth))
        camera_head, _ = geometry.pose_encoding_to_cameras(
            output.pose_enc[0].double().numpy(), image_hw
        )
        rows.setdefault("| camera head | - | - |", []).append(_score(camera_head, truth_units))
    print("| depth | matches | weights | ATE % of path (mean) | path ratio (mean) |")
    print("|---|---|---|---|---|")
    for label, scores in rows.items():
        ate = statistics.mean(score[0] for score in scores)
        ratio = statistics.mean(score[1] for score in scores)
        print(f"{label} {ate:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
