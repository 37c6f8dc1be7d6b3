"""What limits the geometric poses, and what they cost.

On held-out synthetic clips (8 frames, every 2nd rendered frame, at the model's input size),
solves the geometric poses with every combination of

* depth: the ground truth's, or the model's (with the camera head's intrinsics);
* matches: the renderer's exact ones, optical flow (what a model without a match or track
  head gets), and the model's match head when it has one;
* weights: none (the "unmasked" variant), the model's keep probability (the "masked"
  variant), or the true static mask (the oracle of what a perfect mask would give);

and prints ATE (% of the true path, after Sim(3) alignment) and the path ratio (predicted
path length over the true one, in the normalised units of `evaluate-default`; for the rows on
true depth, metres over metres). Then the time of the geometric poses against the network's.
The match head's matches weigh 0 where it calls them unmatched; the exact ones where the
point is hidden.

    python benchmarks/geometric_poses.py --seeds 9000000-9000011
    python benchmarks/geometric_poses.py --checkpoint run.safetensors --texture-detail 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from page4d_viewer import geometry
from page4d_viewer.evaluation.trajectory import path_length, trajectory_errors
from page4d_viewer.inference import geometric_poses
from page4d_viewer.inference.predictor import load_model
from page4d_viewer.model.pose_solver import Matches, keyframe_pairs, solve_poses
from page4d_viewer.settings import RELEASED_MASK_STRENGTH
from page4d_viewer.sources.datasets import parse_seeds
from page4d_viewer.sources.synthetic import ground_truth_matches
from page4d_viewer.training.data import PATCH_SIZE, clip_to_sample, render_clip


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--seeds", default="9000000-9000011", help="held-out seeds, e.g. 9000000-9000011"
    )
    parser.add_argument("--checkpoint", default=None, help="default: the shipped model")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--texture-detail", type=float, default=0.0)
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


def _in_float64(matches: Matches) -> Matches:
    """The same matches as float64 tensors without autograd history (the solver's dtype)."""
    return Matches.from_arrays(
        matches.reference,
        matches.target,
        matches.reference_xy.detach().numpy(),
        matches.target_xy.detach().numpy(),
        matches.weight.detach().numpy(),
        matches.source,
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


def _image_hw(width: int) -> tuple[int, int]:
    """The 16:9 input of a model `width` pixels wide (196 -> 112 x 196), in whole patches."""
    return max(PATCH_SIZE, round(width * 9 / 16 / PATCH_SIZE) * PATCH_SIZE), width


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.checkpoint)
    image_hw = _image_hw(model.config.img_size)
    rows: dict[str, list[tuple[float, float]]] = {}
    network_seconds, geometry_seconds = [], []
    for seed in parse_seeds(args.seeds):
        span = (args.frames - 1) * args.stride + 1
        clip = render_clip(seed, span, image_hw, args.texture_detail)
        frames = np.arange(0, clip.images.shape[0], args.stride)
        sample = clip_to_sample(clip, frames)
        truth_units, _ = geometry.pose_encoding_to_cameras(
            sample.pose_enc.astype(np.float64), image_hw
        )
        truth_metres = geometry.compose_rigid(
            clip.extrinsics[frames], geometry.invert_rigid(clip.extrinsics[frames[0]])
        )[:, :3]
        images_tensor = torch.from_numpy(sample.images)
        started = time.process_time()
        with torch.no_grad():
            output = model(images_tensor[None], mask_strength=RELEASED_MASK_STRENGTH)
        network_seconds.append(time.process_time() - started)
        depth = output.depth[0, ..., 0].double().numpy()
        depth_conf = output.depth_conf[0].double().numpy()
        head, intrinsics = geometry.pose_encoding_to_cameras(
            output.pose_enc[0].double().numpy(), image_hw
        )
        keep = geometric_poses.keep_probability(output.mask_score[0].numpy(), image_hw)
        confidence = geometric_poses.confidence_weight(depth_conf)
        static = (~clip.dynamic_mask[frames]).astype(np.float64)

        # The product's own path: its match source, then both solves.
        started = time.process_time()
        images = (sample.images.transpose(0, 2, 3, 1) * 255).round().astype(np.uint8)
        with torch.no_grad():
            product = geometric_poses.find_matches(
                images, model, images_tensor, RELEASED_MASK_STRENGTH, output.match_features
            )
        product = _in_float64(product)
        geometric_poses.solve_geometric_poses(
            depth, depth_conf, intrinsics, output.mask_score[0].numpy(), product
        )
        geometry_seconds.append(time.process_time() - started)

        exact = _exact_matches(clip, frames)
        flow = product if product.source == "optical_flow" else geometric_poses.find_matches(images)
        true_depth, true_intrinsics = clip.depth[frames], clip.intrinsics[frames]
        cases = {
            ("true", "exact", "none"): (true_depth, true_intrinsics, exact, None),
            ("true", "exact", "true static mask"): (true_depth, true_intrinsics, exact, static),
            ("true", "flow", "none"): (true_depth, true_intrinsics, flow, None),
            ("model", "exact", "none"): (depth, intrinsics, exact, confidence),
            ("model", "exact", "model mask"): (depth, intrinsics, exact, confidence * keep),
            ("model", "exact", "true static mask"): (depth, intrinsics, exact, confidence * static),
            ("model", "flow", "none"): (depth, intrinsics, flow, confidence),
            ("model", "flow", "model mask"): (depth, intrinsics, flow, confidence * keep),
            ("model", "flow", "true static mask"): (depth, intrinsics, flow, confidence * static),
        }
        if product.source != "optical_flow":
            source = product.source.replace("_", " ")
            cases[("true", source, "none")] = (true_depth, true_intrinsics, product, None)
            cases[("model", source, "none")] = (depth, intrinsics, product, confidence)
            cases[("model", source, "model mask")] = (
                depth, intrinsics, product, confidence * keep
            )  # fmt: skip
        for (depth_kind, match_kind, weight_kind), case in cases.items():
            truth = truth_metres if depth_kind == "true" else truth_units
            label = f"| {depth_kind} | {match_kind} | {weight_kind} |"
            rows.setdefault(label, []).append(_score(_solve(*case), truth))
        rows.setdefault("| camera head | - | - |", []).append(_score(head, truth_units))

    print(f"Product matches: {product.source}; model weights: {args.checkpoint or 'shipped'}")
    print()
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
    what = f"{solve:.2f} ({product.source.replace('_', ' ')} + 2 solves)"
    print(f"| {clips} | {network:.2f} | {what} | {solve / network:.2f} |")


if __name__ == "__main__":
    main()
