"""Camera poses solved in closed form from depth and pixel matches (torch, differentiable).

The camera head is one way to get poses; this module is the other, the one DUSt3R, MonST3R
and FlowMap use: lift matched pixels of two frames to 3-D with each frame's depth and
intrinsics, and solve the rigid motion between them by weighted Procrustes (Umeyama without
scale). Inference, training (the pose loss backpropagates through it) and evaluation all call
:func:`solve_poses`.

* **Weights.** Each match carries a weight in [0, 1] (the matcher's confidence). A per-pixel
  ``point_weight`` map multiplies in at both ends: the depth confidence, and for the masked
  variant the mask's keep probability (1 - dynamic probability), so moving things drop out
  of the pose the way the learned mask keeps them out of the camera token's attention.
* **Robustness.** Iteratively reweighted least squares with a Huber weight on the residual
  relative to the point's depth (a 5 cm error means more at 1 m than at 10 m).
* **Reprojection.** The Procrustes pose then starts a few Gauss-Newton steps on the
  reprojection error of the reference points in the frame's pixels (PnP), Huber-weighted in
  pixels. It needs the depth of the reference frame only, so an error in the solved frame's
  own depth no longer pulls its pose: on held-out clips with the shipped model's depth this
  halves the ATE (``benchmarks/geometric_poses.py``).
* **Chaining.** Frames are solved in order; frame ``i`` is solved against every earlier frame
  it has matches with (for example ``i - 1``, ``i - 2``, ``i - 4``, ``i - 8``), each
  reference's points carried into the world by that reference's solved pose, all in one
  Procrustes. Matches to several keyframes keep a long clip from drifting the way a chain of
  consecutive pairs does.

Conventions are those of :mod:`page4d_viewer.geometry`: OpenCV cameras, camera-from-world
extrinsics, world = the first camera, pixel (row i, column j) centred at ``(x, y) = (j, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

HUBER_DELTA = 0.05
"""Residual (as a fraction of the point's depth) above which a match's weight falls as 1/r."""

IRLS_ITERATIONS = 4
"""Reweighting rounds after the first plain weighted solve."""

REPROJECTION_STEPS = 3
"""Gauss-Newton steps on the reprojection error after the Procrustes solve (0: none)."""

REPROJECTION_DELTA_PX = 2.0
"""Reprojection error (pixels) above which a match's weight falls as 1/r."""

MIN_SUPPORT = 3.0
"""Least total match weight a frame needs to be solved; below it the frame keeps the pose of
the frame before it (and :attr:`SolvedPoses.solved` says so)."""

DEPTH_EDGE_RATIO = 1.1
"""Neighbouring depths further apart than this ratio make a depth edge (see
:func:`sample_depth`)."""

PLANARITY_TOLERANCE = 0.001
"""How far a 2x2 cell's inverse depth may bend (relative) before its interpolation counts
as unreliable (see :func:`sample_depth`)."""

_EPS = 1e-9


@dataclass
class Matches:
    """Pixel matches between pairs of frames, padded to M per pair (weight 0 = no match).

    Attributes:
        reference: (P,) int64 frame position of each pair's reference pixels.
        target: (P,) int64 frame position of each pair's target pixels.
        reference_xy: (P, M, 2) float pixel (x, y) in the reference frame.
        target_xy: (P, M, 2) float pixel (x, y) of the same surface points in the target frame.
        weight: (P, M) float in [0, 1], the matcher's confidence.
        source: which matcher made them (recorded in the result), e.g. "optical_flow".
    """

    reference: Tensor
    target: Tensor
    reference_xy: Tensor
    target_xy: Tensor
    weight: Tensor
    source: str = ""

    def __post_init__(self) -> None:
        pairs = self.reference.shape[0]
        expected = {
            "reference": (pairs,),
            "target": (pairs,),
            "reference_xy": (pairs, self.weight.shape[-1], 2),
            "target_xy": (pairs, self.weight.shape[-1], 2),
            "weight": (pairs, self.weight.shape[-1]),
        }
        for name, shape in expected.items():
            actual = tuple(getattr(self, name).shape)
            if actual != shape:
                raise ValueError(f"matches.{name} must be {shape}, got {actual}")

    @classmethod
    def from_arrays(
        cls,
        reference: object,
        target: object,
        reference_xy: object,
        target_xy: object,
        weight: object,
        source: str = "",
        dtype: torch.dtype = torch.float64,
    ) -> Matches:
        """Matches from numpy arrays (e.g. ``sources.synthetic.PixelMatches``' fields)."""
        return cls(
            reference=torch.as_tensor(reference, dtype=torch.int64),
            target=torch.as_tensor(target, dtype=torch.int64),
            reference_xy=torch.as_tensor(reference_xy, dtype=dtype),
            target_xy=torch.as_tensor(target_xy, dtype=dtype),
            weight=torch.as_tensor(weight, dtype=dtype),
            source=source,
        )

    @property
    def num_pairs(self) -> int:
        """Number of frame pairs P."""
        return int(self.reference.shape[0])


@dataclass
class SolvedPoses:
    """Poses solved from matches.

    Attributes:
        extrinsics: (S, 3, 4) camera-from-world; frame 0 is the identity.
        solved: (S,) bool, False where a frame had too little match weight and kept the
            previous frame's pose (frame 0 counts as solved).
        support: (S,) total match weight each frame was solved with, after robust weighting.
    """

    extrinsics: Tensor
    solved: Tensor
    support: Tensor


KEYFRAME_OFFSETS = (1, 2, 4, 8)
"""Frame ``i`` is matched with frames ``i - 1``, ``i - 2``, ``i - 4`` and ``i - 8``: close
pairs are easy to match, far ones stop the chain from drifting."""


def keyframe_pairs(
    num_frames: int, offsets: tuple[int, ...] = KEYFRAME_OFFSETS
) -> list[tuple[int, int]]:
    """(reference, target) frame pairs that chain a clip: each frame with earlier ones.

    Args:
        num_frames: S.
        offsets: how far back each frame looks (positive).

    Returns:
        Pairs ``(i - offset, i)`` for every frame ``i`` and offset that stays in the clip,
        ordered by target frame.
    """
    return [
        (target - offset, target)
        for target in range(1, num_frames)
        for offset in sorted(set(offsets))
        if 0 < offset <= target
    ]


def weighted_procrustes(source: Tensor, target: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """The rigid motion that best maps ``source`` onto ``target`` in weighted least squares.

    Minimises ``sum_n w_n |R @ source_n + t - target_n|^2`` over rotations R and translations
    t (Umeyama without scale; a reflection is never returned).

    Args:
        source: (..., N, 3) points.
        target: (..., N, 3) the same points after the motion.
        weight: (..., N) non-negative weights (not all zero).

    Returns:
        R (..., 3, 3) and t (..., 3).
    """
    weight = weight / weight.sum(-1, keepdim=True).clamp_min(_EPS)
    source_mean = (weight[..., None] * source).sum(-2)
    target_mean = (weight[..., None] * target).sum(-2)
    source_centred = source - source_mean[..., None, :]
    target_centred = target - target_mean[..., None, :]
    covariance = (weight[..., None] * target_centred).transpose(-1, -2) @ source_centred
    # A tiny isotropic term keeps the SVD's gradient finite when singular values coincide.
    eye = torch.eye(3, dtype=source.dtype, device=source.device)
    U, _, Vh = torch.linalg.svd(covariance + 1e-12 * eye)
    sign = torch.sign(torch.linalg.det(U @ Vh)).detach()
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    D = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], -1))
    R = U @ D @ Vh
    t = target_mean - (R @ source_mean[..., None])[..., 0]
    return R, t


def huber_weights(residual: Tensor, delta: float = HUBER_DELTA) -> Tensor:
    """IRLS weights of the Huber loss: 1 up to ``delta``, then ``delta / residual``."""
    return (delta / residual.clamp_min(_EPS)).clamp(max=1.0)


def robust_procrustes(
    source: Tensor,
    target: Tensor,
    weight: Tensor,
    iterations: int = IRLS_ITERATIONS,
    delta: float = HUBER_DELTA,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`weighted_procrustes` made robust by Huber-weighted IRLS.

    Residuals are measured relative to each target point's depth (its z), so ``delta`` is a
    fraction (0.05 = 5 % of the depth).

    Args:
        source, target: (..., N, 3) points; target points are in a camera frame (z > 0).
        weight: (..., N) prior weights.
        iterations: reweighting rounds after the first solve.
        delta: Huber threshold on the relative residual.

    Returns:
        R (..., 3, 3), t (..., 3) and the final weights (..., N) (prior x Huber).
    """
    R, t = weighted_procrustes(source, target, weight)
    final = weight
    depth = target[..., 2].abs().clamp_min(_EPS)
    for _ in range(iterations):
        moved = (R[..., None, :, :] @ source[..., None])[..., 0] + t[..., None, :]
        residual = (moved - target).norm(dim=-1) / depth
        final = weight * huber_weights(residual, delta)
        R, t = weighted_procrustes(source, target, final)
    return R, t, final


def sample_maps(maps: Tensor, frames: Tensor, xy: Tensor) -> Tensor:
    """Bilinear values of per-frame maps at pixel positions (pixel centres at integers).

    Args:
        maps: (S, H, W) or (S, H, W, C) per-frame maps.
        frames: (P,) int64 frame of each row of ``xy``.
        xy: (P, M, 2) pixel (x, y) positions; outside the image the border value is used.

    Returns:
        (P, M) or (P, M, C) values.
    """
    squeeze = maps.dim() == 3
    channels = maps[..., None] if squeeze else maps
    height, width = channels.shape[1:3]
    grid = torch.stack(
        [2.0 * xy[..., 0] / max(width - 1, 1) - 1.0, 2.0 * xy[..., 1] / max(height - 1, 1) - 1.0],
        dim=-1,
    )
    picked = channels[frames].permute(0, 3, 1, 2).to(xy.dtype)  # (P, C, H, W)
    values = F.grid_sample(
        picked, grid[:, None], mode="bilinear", padding_mode="border", align_corners=True
    )  # (P, C, 1, M)
    values = values[:, :, 0].permute(0, 2, 1)
    return values[..., 0] if squeeze else values


def lift_pixels(xy: Tensor, depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Camera-frame 3-D points of pixels at given depths.

    Args:
        xy: (P, M, 2) pixel (x, y).
        depth: (P, M) depth along the optical axis.
        intrinsics: (P, 3, 3) pinhole matrices of each row's frame.

    Returns:
        (P, M, 3) points ``depth * K^-1 [x, y, 1]``.
    """
    fx, fy = intrinsics[:, None, 0, 0], intrinsics[:, None, 1, 1]
    cx, cy = intrinsics[:, None, 0, 2], intrinsics[:, None, 1, 2]
    x = (xy[..., 0] - cx) / fx * depth
    y = (xy[..., 1] - cy) / fy * depth
    return torch.stack([x, y, depth], dim=-1)


def solve_poses(
    depth: Tensor,
    intrinsics: Tensor,
    matches: Matches,
    point_weight: Tensor | None = None,
    iterations: int = IRLS_ITERATIONS,
    delta: float = HUBER_DELTA,
    reprojection_steps: int = REPROJECTION_STEPS,
) -> SolvedPoses:
    """Every frame's camera from depth and matches, chained from frame 0.

    Each pair is used to solve its later frame from its earlier one (pairs whose reference
    is the later frame are flipped). Frames are solved in order: frame ``i`` from all its
    pairs with earlier frames at once, each earlier frame's points carried into the world by
    its already-solved pose.

    Args:
        depth: (S, H, W) depth along the optical axis (> 0 where valid).
        intrinsics: (S, 3, 3) pinhole matrices in the same pixels.
        matches: the pixel matches (any number of pairs per frame).
        point_weight: optional (S, H, W) weight in [0, 1] per pixel (confidence, the mask's
            keep probability), applied at both ends of every match.
        iterations, delta: as in :func:`robust_procrustes`.
        reprojection_steps: Gauss-Newton steps of :func:`refine_by_reprojection` after each
            frame's Procrustes solve (0: Procrustes only).

    Returns:
        The solved poses; differentiable with respect to depth, intrinsics, the match
        positions and every weight.
    """
    frames = depth.shape[0]
    _check_inputs(depth, intrinsics, point_weight)
    earlier, later, earlier_xy, later_xy = _ordered_pairs(matches)
    earlier_points, earlier_usable = _lift(depth, intrinsics, earlier, earlier_xy)
    later_points, later_usable = _lift(depth, intrinsics, later, later_xy)
    # The reprojection step reads the solved frame's pixels, not its depth.
    seen = torch.isfinite(later_xy).all(dim=-1)
    later_xy = torch.where(seen[..., None], later_xy, torch.zeros_like(later_xy))
    pixel_weight = matches.weight.to(depth.dtype) * earlier_usable * seen
    if point_weight is not None:
        pixel_weight = pixel_weight * sample_maps(point_weight, earlier, earlier_xy)
        pixel_weight = pixel_weight * sample_maps(point_weight, later, later_xy)
    pixel_weight = torch.nan_to_num(pixel_weight, nan=0.0, posinf=0.0).clamp_min(0.0)
    weight = pixel_weight * later_usable

    eye = torch.eye(3, 4, dtype=depth.dtype, device=depth.device)
    T_world_cam = [eye]  # camera-to-world of each solved frame
    extrinsics = [eye]
    solved = [True]
    support = [weight.new_tensor(float("inf"))]
    for frame in range(1, frames):
        rows = torch.nonzero(later == frame).flatten()
        pose = None
        if rows.numel() and float(weight[rows].detach().sum()) >= MIN_SUPPORT:
            world = _in_world(T_world_cam, earlier[rows], earlier_points[rows])
            pose = _solve_frame(
                world,
                later_points[rows].reshape(-1, 3),
                weight[rows].reshape(-1),
                iterations,
                delta,
            )
            if reprojection_steps > 0 and torch.isfinite(intrinsics[frame]).all():
                pose = _refine_frame(
                    pose,
                    world,
                    later_xy[rows].reshape(-1, 2).to(depth.dtype),
                    intrinsics[frame].to(depth.dtype),
                    pixel_weight[rows].reshape(-1),
                    reprojection_steps,
                )
        if pose is not None and not torch.isfinite(pose[0]).all():
            pose = None  # a degenerate solve: keep the previous camera rather than a NaN one
        if pose is None:
            extrinsics.append(extrinsics[-1])
            T_world_cam.append(T_world_cam[-1])
            solved.append(False)
            support.append(weight.new_zeros(()))
            continue
        extrinsic, frame_support = pose
        extrinsics.append(extrinsic)
        T_world_cam.append(_invert(extrinsic))
        solved.append(True)
        support.append(frame_support)
    return SolvedPoses(
        extrinsics=torch.stack(extrinsics),
        solved=torch.tensor(solved, device=depth.device),
        support=torch.stack(support),
    )


def _check_inputs(depth: Tensor, intrinsics: Tensor, point_weight: Tensor | None) -> None:
    if depth.dim() != 3:
        raise ValueError(f"depth must be (S, H, W), got {tuple(depth.shape)}")
    frames = depth.shape[0]
    if tuple(intrinsics.shape) != (frames, 3, 3):
        raise ValueError(f"intrinsics must be ({frames}, 3, 3), got {tuple(intrinsics.shape)}")
    if point_weight is not None and point_weight.shape != depth.shape:
        raise ValueError(
            f"point_weight must match depth {tuple(depth.shape)}, got {tuple(point_weight.shape)}"
        )


def _ordered_pairs(matches: Matches) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(earlier, later, earlier_xy, later_xy): every pair oriented from its earlier frame."""
    flip = matches.reference > matches.target
    earlier = torch.where(flip, matches.target, matches.reference)
    later = torch.where(flip, matches.reference, matches.target)
    flip_xy = flip[:, None, None]
    earlier_xy = torch.where(flip_xy, matches.target_xy, matches.reference_xy)
    later_xy = torch.where(flip_xy, matches.reference_xy, matches.target_xy)
    return earlier, later, earlier_xy, later_xy


def sample_depth(depth: Tensor, frames: Tensor, xy: Tensor) -> tuple[Tensor, Tensor]:
    """Depth at sub-pixel positions, and whether each lies on a smooth surface.

    Inverse depth is interpolated, because it is affine in pixel coordinates on a plane, so
    walls and floors are exact between pixel centres. Interpolating across a depth edge would
    invent a point in mid-air: a position whose 2x2 neighbours differ by more than
    :data:`DEPTH_EDGE_RATIO` is flagged as not smooth.

    Args:
        depth: (S, H, W) depth (> 0 where valid).
        frames: (P,) int64 frame of each row of ``xy``.
        xy: (P, M, 2) pixel (x, y).

    Returns:
        depth (P, M) and smooth (P, M) bool (False also where any neighbour has no depth).
    """
    inverse = 1.0 / depth.clamp_min(_EPS)
    values = 1.0 / sample_maps(inverse, frames, xy).clamp_min(_EPS)
    positive = depth.clamp_min(_EPS)[:, None]
    cell_max = F.max_pool2d(positive, kernel_size=2, stride=1)[:, 0]
    cell_min = -F.max_pool2d(-positive, kernel_size=2, stride=1)[:, 0]
    # On a plane inverse depth is affine, so a 2x2 cell's two diagonals sum alike; a corner
    # or a curved surface breaks that and its interpolated depth is off.
    bend = (
        inverse[:, :-1, :-1] + inverse[:, 1:, 1:] - inverse[:, :-1, 1:] - inverse[:, 1:, :-1]
    ).abs()
    flat = bend <= PLANARITY_TOLERANCE * inverse[:, :-1, :-1]
    smooth_cells = (cell_max <= DEPTH_EDGE_RATIO * cell_min) & (cell_min > _EPS) & flat
    height, width = depth.shape[1:]
    column = xy[..., 0].detach().floor().long().clamp(0, max(width - 2, 0))
    row = xy[..., 1].detach().floor().long().clamp(0, max(height - 2, 0))
    # Beyond the outer pixel centres there is nothing to interpolate from.
    inside = (
        (xy[..., 0] >= 0)
        & (xy[..., 0] <= width - 1)
        & (xy[..., 1] >= 0)
        & (xy[..., 1] <= height - 1)
    )
    smooth = smooth_cells[frames[:, None], row, column] & inside
    return values, smooth


def _lift(depth: Tensor, intrinsics: Tensor, frames: Tensor, xy: Tensor) -> tuple[Tensor, Tensor]:
    """(P, M, 3) camera-frame points of each pair's pixels in ``frames``, and (P, M) bool
    whether each is usable (on a smooth surface, in front of the camera)."""
    xy = xy.to(depth.dtype)
    values, smooth = sample_depth(depth, frames, xy)
    points = lift_pixels(xy, values, intrinsics[frames].to(depth.dtype))
    # A weight of 0 does not silence a NaN (0 * NaN is NaN): zero such points outright. An
    # untrained network's depth or focal length can be anything.
    lens = torch.isfinite(intrinsics[frames]).all(dim=(-2, -1))[:, None]  # (P, 1)
    finite = torch.isfinite(points).all(dim=-1) & torch.isfinite(xy).all(dim=-1) & lens
    points = torch.where(finite[..., None], points, torch.zeros_like(points))
    return points, smooth & (values > 0) & finite


def _in_world(T_world_cam: list[Tensor], references: Tensor, reference_points: Tensor) -> Tensor:
    """(P * M, 3) each pair's reference points carried into the world by the solved camera-to-
    world pose of its reference frame."""
    poses = torch.stack([T_world_cam[int(index)] for index in references])  # (P, 3, 4)
    world = (poses[:, None, :, :3] @ reference_points[..., None])[..., 0] + poses[:, None, :, 3]
    return world.reshape(-1, 3)


def _solve_frame(
    world: Tensor, frame_points: Tensor, weight: Tensor, iterations: int, delta: float
) -> tuple[Tensor, Tensor]:
    """One frame's (3, 4) camera-from-world from (N, 3) world points and the (N, 3) same
    points in its camera, and its support (the final weights' sum)."""
    R, t, final = robust_procrustes(world, frame_points, weight, iterations, delta)
    return torch.cat([R, t[:, None]], dim=-1), final.sum()


def _refine_frame(
    pose: tuple[Tensor, Tensor],
    world: Tensor,
    frame_xy: Tensor,
    K: Tensor,
    weight: Tensor,
    steps: int,
) -> tuple[Tensor, Tensor]:
    """:func:`refine_by_reprojection` of one frame's solved pose against its (N, 2) pixels."""
    extrinsic, _ = pose
    R, t, final = refine_by_reprojection(
        extrinsic[:, :3], extrinsic[:, 3], world, frame_xy, K, weight, steps
    )
    return torch.cat([R, t[:, None]], dim=-1), final.sum()


def refine_by_reprojection(
    R: Tensor,
    t: Tensor,
    world: Tensor,
    pixels: Tensor,
    K: Tensor,
    weight: Tensor,
    steps: int = REPROJECTION_STEPS,
    delta_px: float = REPROJECTION_DELTA_PX,
) -> tuple[Tensor, Tensor, Tensor]:
    """Refine a camera by Gauss-Newton on the Huber-weighted reprojection error (PnP).

    Minimises ``sum_n w_n rho(|pi(K (R X_n + t)) - x_n|)`` with ``rho`` Huber in pixels,
    updating the pose by a small rotation on the left, ``R <- exp([d_rot]) R`` and
    ``t <- exp([d_rot]) t + d_t``.

    Args:
        R: (3, 3) camera-from-world rotation to start from.
        t: (3,) its translation.
        world: (N, 3) world points.
        pixels: (N, 2) where they are seen in this camera, pixel (x, y).
        K: (3, 3) the camera's intrinsics.
        weight: (N,) prior weights.
        steps: Gauss-Newton steps.
        delta_px: Huber threshold in pixels.

    Returns:
        R (3, 3), t (3,) and the final weights (N,) (prior x Huber, 0 behind the camera).
    """
    final = weight
    eye6 = torch.eye(6, dtype=R.dtype, device=R.device)
    for _ in range(steps):
        camera = world @ R.T + t
        residual, jacobian, in_front = _reprojection_terms(camera, pixels, K)
        final = weight * huber_weights(residual.norm(dim=-1), delta_px) * in_front
        rows = jacobian.reshape(-1, 6)  # one row per residual coordinate: (2N, 6)
        weighted = rows * final.repeat_interleave(2)[:, None]
        hessian = weighted.T @ rows + 1e-9 * eye6
        gradient = weighted.T @ residual.reshape(-1)
        step = -torch.linalg.solve(hessian, gradient)
        rotation = torch.linalg.matrix_exp(_skew(step[:3]))
        R, t = rotation @ R, rotation @ t + step[3:]
    return R, t, final


def _reprojection_terms(camera: Tensor, pixels: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Residuals (N, 2), their Jacobians (N, 2, 6) with respect to (rotation, translation)
    perturbations on the left, and (N,) 1.0 where the point is in front of the camera."""
    depth = camera[:, 2].clamp_min(1e-6)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    projected = torch.stack(
        [fx * camera[:, 0] / depth + cx, fy * camera[:, 1] / depth + cy], dim=-1
    )
    zero = torch.zeros_like(depth)
    d_projection = torch.stack(
        [
            torch.stack([fx / depth, zero, -fx * camera[:, 0] / depth**2], dim=-1),
            torch.stack([zero, fy / depth, -fy * camera[:, 1] / depth**2], dim=-1),
        ],
        dim=-2,
    )  # (N, 2, 3)
    # d(exp([w]) X)/dw at w = 0 is -[X]_x.
    jacobian = torch.cat([d_projection @ -_skew(camera), d_projection], dim=-1)
    in_front = (camera[:, 2] > 1e-3).to(camera.dtype)
    return projected - pixels, jacobian, in_front


def _skew(vector: Tensor) -> Tensor:
    """(..., 3, 3) cross-product matrices of (..., 3) vectors."""
    x, y, z = vector.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack(
        [
            torch.stack([zero, -z, y], dim=-1),
            torch.stack([z, zero, -x], dim=-1),
            torch.stack([-y, x, zero], dim=-1),
        ],
        dim=-2,
    )


def _invert(extrinsic: Tensor) -> Tensor:
    """(3, 4) inverse of a rigid transform."""
    R, t = extrinsic[:, :3], extrinsic[:, 3]
    return torch.cat([R.T, -(R.T @ t)[:, None]], dim=-1)
