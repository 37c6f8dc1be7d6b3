"""What limits the geometric poses, and what they cost.

On held-out synthetic clips (8 frames, every 2nd rendered frame, 196 x 112: the shipped
model's input), solves the geometric poses with every combination of

* depth: the ground truth's, or the shipped model's (with the camera head's intrinsics);
* matches: the renderer's exact ones, or the product's (optical flow for the shipped model);
* weights: none (the "unmasked" variant), the model's keep probability (the "masked"
  variant), or the true static mask (the oracle of what a perfect mask would give);

and prints ATE (% of the true path, after Sim(3) alignment) and the path ratio (predicted
path length over the true one, in the normalised units of `evaluate-default`; for the rows on
true depth, metres over metres). Then the time of the geometric poses against the network's.

    python benchmarks/geometric_poses.py --seeds 9000000-9000011
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from page4d_viewer import geometry
from page4d_viewer.evaluation.default_model import path_length
from page4d_viewer.evaluation.trajectory import trajectory_errors
from page4d_viewer.inference import geometric_poses
from page4d_viewer.inference.predictor import load_default_model
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs, solve_poses
from page4d_viewer.result.mask import dynamic_probability, upsample_mask
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.datasets import parse_seeds
from page4d_viewer.sources.synthetic import ground_truth_matches
from page4d_viewer.training.data import clip_to_sample, render_clip

IMAGE_HW = (112, 196)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seeds", default="9000000-9000011", help="held-out seeds, e.g. 9000000-9000011"
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def _exact_matches(clip, frames: np.ndarray) -> Matches:
    """The renderer's exact matches for the keyframe pairs of the kept frames."""
    pairs = keyframe_pairs(len(frames))
    arrays = ground_truth_matches(clip, [(int(frames[a]), int(frames[b])) for a, b in pairs], 4)
    positions = {int(frame): index for index, frame in enumerate(frames)}
    reference = [positions[int(frame)] for frame in arrays.reference]
    target = [positions[int(frame)] for frame in arrays.target]
    return Matches.from_arrays(
        reference, target, arrays.reference_xy, arrays.target_xy, arrays.weight, "exact"
    )


def _score(extrinsics: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    length = path_length(truth)
    ate = trajectory_errors(extrinsics, truth).ate
    return 100.0 * ate / length, path_length(extrinsics) / length


def _solve(depth, intrinsics, matches, weight) -> np.ndarray:
    solved = solve_poses(
        torch.as_tensor(np.asarray(depth, np.float64)),
        torch.as_tensor(np.asarray(intrinsics, np.float64)),
        matches,
        None if weight is None else torch.as_tensor(np.asarray(weight, np.float64)),
    )
    return solved.extrinsics.numpy()


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    model, _ = load_default_model()
    rows: dict[str, list[tuple[float, float]]] = {}
    network_seconds, geometry_seconds = [], []
    for seed in parse_seeds(args.seeds):
        clip = render_clip(seed, (args.frames - 1) * args.stride + 1, IMAGE_HW)
        frames = np.arange(0, clip.images.shape[0], args.stride)
        sample = clip_to_sample(clip, frames)
        truth_units, _ = geometry.pose_encoding_to_cameras(
            sample.pose_enc.astype(np.float64), IMAGE_HW
        )
        truth_metres = geometry.compose_rigid(
            clip.extrinsics[frames], geometry.invert_rigid(clip.extrinsics[frames[0]])
        )[:, :3]
        started = time.process_time()
        with torch.no_grad():
            output = model(
                torch.from_numpy(sample.images)[None], mask_strength=RELEASED_MASK_STRENGTH
            )
        network_seconds.append(time.process_time() - started)
        depth = output.depth[0, ..., 0].double().numpy()
        depth_conf = output.depth_conf[0].double().numpy()
        _, intrinsics = geometry.pose_encoding_to_cameras(
            output.pose_enc[0].double().numpy(), IMAGE_HW
        )
        keep = 1.0 - upsample_mask(dynamic_probability(output.mask_score[0].numpy()), *IMAGE_HW)
        confidence = geometric_poses.confidence_weight(depth_conf)
        static = (~clip.dynamic_mask[frames]).astype(np.float64)

        started = time.process_time()
        images = (sample.images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        flow = geometric_poses.find_matches(images)
        geometric_poses.solve_geometric_poses(
            depth, depth_conf, intrinsics, output.mask_score[0].numpy(), flow
        )
        geometry_seconds.append(time.process_time() - started)

        exact = _exact_matches(clip, frames)
        cases = {
            ("true", "exact", "none"): (clip.depth[frames], clip.intrinsics[frames], exact, None),
            ("true", "exact", "true static mask"): (
                clip.depth[frames],
                clip.intrinsics[frames],
                exact,
                static,
            ),
            ("true", "flow", "none"): (clip.depth[frames], clip.intrinsics[frames], flow, None),
            ("model", "exact", "none"): (depth, intrinsics, exact, confidence),
            ("model", "exact", "model mask"): (depth, intrinsics, exact, confidence * keep),
            ("model", "exact", "true static mask"): (depth, intrinsics, exact, confidence * static),
            ("model", "flow", "none (product: unmasked)"): (depth, intrinsics, flow, confidence),
            ("model", "flow", "model mask (product: masked)"): (
                depth,
                intrinsics,
                flow,
                confidence * keep,
            ),
            ("model", "flow", "true static mask"): (depth, intrinsics, flow, confidence * static),
        }
        for (depth_kind, match_kind, weight_kind), case in cases.items():
            truth = truth_metres if depth_kind == "true" else truth_units
            label = f"| {depth_kind} | {match_kind} | {weight_kind} |"
            rows.setdefault(label, []).append(_score(_solve(*case), truth))
        head, _ = geometry.pose_encoding_to_cameras(output.pose_enc[0].double().numpy(), IMAGE_HW)
        rows.setdefault("| camera head | - | - |", []).append(_score(head, truth_units))

    print("| depth | matches | weights | ATE % of path (mean) | path ratio (mean) |")
    print("|---|---|---|---|---|")
    for label, scores in rows.items():
        ate = statistics.mean(score[0] for score in scores)
        ratio = statistics.mean(score[1] for score in scores)
        print(f"{label} {ate:.1f} | {ratio:.2f} |")
    print()
    print("| CPU seconds per clip (median) | network, one pass | geometric poses | share |")
    print("|---|---|---|---|")
    network, solve = statistics.median(network_seconds), statistics.median(geometry_seconds)
    clips = f"{len(network_seconds)} clips, {args.threads} thread(s)"
    print(f"| {clips} | {network:.2f} | {solve:.2f} (flow + 2 solves) | {solve / network:.2f} |")


if __name__ == "__main__":
    main()
