"""Directed generation: constraints imposed in the sampler, then met exactly after decoding.

Imposition (during sampling). HY-Motion is a rectified flow x_t = (1 − t)·ε + t·x₁ from noise
(t = 0) to data (t = 1). At each velocity evaluation the solver's clean estimate
x̂₁ = x_t + (1 − t)·v is projected onto the constraints, P(x̂₁), and the velocity becomes

    v' = v + (P(x̂₁) − x̂₁) / (1 − t),

so that x_t + (1 − t)·v' = P(x̂₁). On a constrained value with target y this is v' = (y − x_t) /
(1 − t): from x₀ = ε every solver follows the straight line x_t = (1 − t)·ε + t·y exactly, which
is the flow's own interpolation (replacement inpainting), and multistep solvers (UniPC,
DPM-Solver++) see the projected data prediction they are built on. The free frames are the
model's, conditioned on the constrained ones through attention. After the last step the latent
is projected once more. ``impose_until`` < 1 stops imposing at that flow time and skips the
final projection: the model then reworks the last details of the constrained frames too.

P holds, in order: the loop (the seam's miss of one step at the ends' mean velocity, spread
over ``LOOP_FRAMES`` at each end), then poses (all
201 dims at their frames), path points (translation x, z) and headings (the pelvis rotation
turned about +Y to the target yaw, its tilt kept).

Clean-up (``exact``). Decoding smooths rotations (σ = 1 frame) and translation (Savitzky–Golay),
which moves constrained frames a little. The decoded clip is encoded again, each constraint's
residual at its frames is spread to the neighbours with a raised-cosine falloff over
``BLEND_FRAMES`` (smoothstep between two constrained frames), and the loop seam is closed again,
so constrained frames are met to float precision and nothing jumps next to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from shared_protocol import Constraints, forward_kinematics

from .decode import DecodedMotion, continuous
from .features import (
    FEATURE_DIM,
    REST_PELVIS,
    Placement,
    feature_poses,
    heading,
    normalize,
    pose_features,
    scaled_std,
)
from .math import matrix_to_rot6d, rot6d_to_matrix
from .skeleton import BODY_JOINTS, BODY_SKELETON

#: Frames over which a clean-up residual fades out next to a constrained frame (0.4 s).
BLEND_FRAMES = 12
#: Frames at each end of a loop over which the seam is closed (0.4 s).
LOOP_FRAMES = 12
#: Steps at each end of a loop whose mean is the step across its seam.
SEAM_FRAMES = 3
GROUND_DIMS = [0, 2]  # translation x, z: a cycle may advance
ROOT_ROT6D = slice(3, 9)
#: Below this, 1 − t is treated as the end of the flow (Heun evaluates at t = 1).
FLOW_END = 1e-6


@dataclass(frozen=True, eq=False)
class Targets:
    """One job's constraints for each of its C candidates, where the character stands."""

    frames: int
    pose_frames: np.ndarray  # (K,) int64
    pose_rotations: np.ndarray  # (C, K, 22, 4) float64
    pose_roots: np.ndarray  # (C, K, 3) float64
    path_frames: np.ndarray  # (N,) int64
    path_ground: np.ndarray  # (C, N, 2) float64 pelvis x, z
    path_yaw: np.ndarray | None  # (C, N) float64 radians, or None
    loop: bool = False
    exact: bool = True
    until: float = 1.0

    @classmethod
    def from_wire(cls, constraints: Constraints, candidates: int, frames: int) -> Targets:
        """The request's constraints (validated), the same for every candidate."""
        c = constraints

        def per_candidate(value: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
            if value is None:
                return np.zeros((candidates, *shape))
            return np.broadcast_to(value.astype(np.float64), (candidates, *value.shape)).copy()

        poses = len(c.pose_frames) if c.pose_frames is not None else 0
        path = len(c.path_frames) if c.path_frames is not None else 0
        points = per_candidate(c.path_points, (0, 2))
        return cls(
            frames=frames,
            pose_frames=_indexes(c.pose_frames),
            pose_rotations=per_candidate(c.pose_rotations, (poses, BODY_JOINTS, 4)),
            pose_roots=per_candidate(c.pose_root_positions, (poses, 3)),
            path_frames=_indexes(c.path_frames),
            path_ground=points[..., :2] if path else np.zeros((candidates, 0, 2)),
            path_yaw=points[..., 2] if c.has_heading else None,
            loop=c.loop,
            exact=c.exact,
            until=c.impose_until,
        )

    @property
    def has_poses(self) -> bool:
        return len(self.pose_frames) > 0

    @property
    def pinned(self) -> tuple[bool, bool]:
        """Whether the first and the last frame hold a given pose."""
        frames = set(self.pose_frames.tolist())
        return 0 in frames, self.frames - 1 in frames

    def placement(self) -> Placement:
        """The canonical frame: anchored on the first pose, else on the first path point
        (facing its heading, or along the path), else the scene's own frame."""
        candidates = self.pose_roots.shape[0]
        if self.has_poses:
            return Placement.at(self.pose_roots[:, 0], heading(self.pose_rotations[:, 0]))
        if len(self.path_frames):
            start = self.path_ground[:, 0]
            if self.path_yaw is not None:
                yaw = self.path_yaw[:, 0]
            elif len(self.path_frames) > 1:
                towards = self.path_ground[:, 1] - start
                yaw = np.arctan2(towards[:, 0], towards[:, 1])  # 0 when the points coincide
            else:
                yaw = np.zeros(candidates)
            pelvis = np.stack([start[:, 0], np.zeros(candidates), start[:, 1]], axis=-1)
            return Placement.at(pelvis, yaw)
        return Placement.identity(candidates)

    def canonical(self, placement: Placement) -> CanonicalTargets:
        """The targets as de-normalised features in the canonical frame."""
        rotations, roots = placement.to_canonical(self.pose_rotations, self.pose_roots)
        x, z = self.path_ground[..., 0], self.path_ground[..., 1]
        path = placement.points_to_canonical(np.stack([x, np.zeros_like(x), z], axis=-1))
        yaw = None if self.path_yaw is None else placement.yaw_to_canonical(self.path_yaw)
        return CanonicalTargets(
            frames=self.frames,
            pose_frames=torch.from_numpy(self.pose_frames),
            pose_features=pose_features(rotations, roots),
            path_frames=torch.from_numpy(self.path_frames),
            path_translation=torch.from_numpy(path[..., [0, 2]] - REST_PELVIS[[0, 2]]),
            path_yaw=None if yaw is None else torch.from_numpy(yaw),
            loop=self.loop,
            pinned=self.pinned,
        )


@dataclass(frozen=True, eq=False)
class CanonicalTargets:
    """De-normalised feature targets in the canonical frame (float64, on the CPU)."""

    frames: int
    pose_frames: Tensor  # (K,)
    pose_features: Tensor  # (C, K, 201)
    path_frames: Tensor  # (N,)
    path_translation: Tensor  # (C, N, 2) translation x, z
    path_yaw: Tensor | None  # (C, N)
    loop: bool
    pinned: tuple[bool, bool]


class Projector:
    """P of the module docstring, in one latent space: the model's normalised one (sampling)
    or the raw features (clean-up: mean 0, std 1). Each constraint's residual on its frames is
    spread to the neighbouring frames, so its frames are met exactly and the frames next to
    them follow smoothly instead of leaving a one-frame spike."""

    def __init__(
        self,
        targets: CanonicalTargets,
        mean: Tensor,
        std: Tensor,
        device: torch.device,
        dtype: torch.dtype,
        width: int = BLEND_FRAMES,
    ) -> None:
        def put(x: Tensor) -> Tensor:
            return x.to(device=device, dtype=dtype)

        mean64, std64 = mean.double().cpu(), std.double().cpu()
        self.targets = targets
        self._mean6, self._std6 = put(mean64[ROOT_ROT6D]), put(scaled_std(std64)[ROOT_ROT6D])
        self._poses = put(normalize(targets.pose_features, mean64, std64))
        ground_scale = scaled_std(std64)[GROUND_DIMS]
        self._path = put((targets.path_translation - mean64[GROUND_DIMS]) / ground_scale)
        self._pose_frames = targets.pose_frames.to(device)
        self._path_frames = targets.path_frames.to(device)
        self._yaw = None if targets.path_yaw is None else put(targets.path_yaw)
        self._loop_mask = torch.ones(FEATURE_DIM, dtype=dtype, device=device)
        self._loop_mask[GROUND_DIMS] = 0.0
        count = targets.frames
        self._loop_ramp = put(_falloff(torch.arange(min(LOOP_FRAMES, count // 2)), LOOP_FRAMES))
        # path points and headings fade to zero at posed frames instead of moving them
        posed_or_path = torch.unique(torch.cat([targets.pose_frames, targets.path_frames]))
        self._spread_poses = Spread(targets.pose_frames, count, width, device, dtype)
        self._spread_path = Spread(posed_or_path, count, width, device, dtype)

    def project(self, x: Tensor) -> Tensor:
        """x (C, F, 201) with the loop closed and every constraint met on its frames."""
        x = self.close_loop(x)
        if len(self._pose_frames):
            x = x + self._spread_poses(self.poses(x) - x)
        if len(self._path_frames):
            x = x + self._spread_path(self.path(x) - x)
        if self._yaw is not None:
            x = x + self._spread_path(self.headings(x) - x)
        return x

    def close_loop(self, x: Tensor) -> Tensor:
        """End → start of the cycle: the frame after the last one continues into the first one.
        The seam's miss is shared by both ends (or put on the free end when one is pinned)."""
        start_pinned, end_pinned = self.targets.pinned
        if not self.targets.loop or (start_pinned and end_pinned):
            return x
        count, width = x.shape[1], len(self._loop_ramp)
        # the velocity across the seam: the mean step over the SEAM_FRAMES at each end
        span = min(SEAM_FRAMES, count // 4)
        step = ((x[:, span] - x[:, 0]) + (x[:, -1] - x[:, -1 - span])) / (2 * span)
        miss = (x[:, 0] - x[:, -1] - step) * self._loop_mask  # (C, D)
        head = 0.0 if start_pinned else 1.0 if end_pinned else 0.5
        ramp = self._loop_ramp[None, :, None]
        out = x.clone()
        out[:, :width] -= head * miss[:, None] * ramp
        out[:, count - width :] += (1.0 - head) * miss[:, None] * ramp.flip(1)
        return out

    def poses(self, x: Tensor) -> Tensor:
        """x with the given poses on their frames (only those frames change)."""
        out = x.clone()
        out[:, self._pose_frames] = self._poses
        return out

    def path(self, x: Tensor) -> Tensor:
        """x with the path's ground positions on its frames."""
        out = x.clone()
        rows = out[:, self._path_frames]
        rows[..., GROUND_DIMS] = self._path
        out[:, self._path_frames] = rows
        return out

    def headings(self, x: Tensor) -> Tensor:
        """x with the pelvis turned to the path's headings on its frames."""
        assert self._yaw is not None
        out = x.clone()
        rows = out[:, self._path_frames]
        rot6d = rows[..., ROOT_ROT6D] * self._std6 + self._mean6
        turned = _with_yaw(rot6d, self._yaw)
        scale = torch.where(self._std6 > 0, self._std6, 1.0)
        rows[..., ROOT_ROT6D] = torch.where(self._std6 > 0, (turned - self._mean6) / scale, 0.0)
        out[:, self._path_frames] = rows
        return out


class Spread:
    """Residuals (C, F, D), meaningful on ``frames`` (sorted), spread over every frame: equal
    on those frames, a smoothstep between two of them, fading out over ``width`` frames."""

    def __init__(
        self, frames: Tensor, count: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.frames = frames.to(device)
        if not len(frames):
            return
        keys = frames.to(torch.float64)
        f = torch.arange(count, dtype=torch.float64)
        right = torch.searchsorted(keys, f, right=False).clamp(max=len(keys) - 1)
        left = (torch.searchsorted(keys, f, right=True) - 1).clamp(min=0)
        has_left, has_right = keys[left] <= f, keys[right] >= f
        d_left, d_right = f - keys[left], keys[right] - f
        g_left = _falloff(d_left, width) * has_left
        g_right = _falloff(d_right, width) * has_right
        gap = (d_left + d_right).clamp_min(1.0)
        u = torch.where(has_left & has_right, d_left / gap, torch.where(has_left, 0.0, 1.0))
        h = u * u * (3.0 - 2.0 * u)
        self._left, self._right = left.to(device), right.to(device)
        self._w_left = ((1.0 - h) * g_left).to(device=device, dtype=dtype)[None, :, None]
        self._w_right = (h * g_right).to(device=device, dtype=dtype)[None, :, None]

    def __call__(self, residual: Tensor) -> Tensor:
        if not len(self.frames):
            return torch.zeros_like(residual)
        rows = residual[:, self.frames]  # (C, K, D)
        return self._w_left * rows[:, self._left] + self._w_right * rows[:, self._right]


class Imposer:
    """One job's constraints in its solver (module docstring)."""

    def __init__(self, projector: Projector, until: float) -> None:
        self.projector = projector
        self.until = until

    def velocity(self, x: Tensor, v: Tensor, t: Tensor) -> Tensor:
        """The velocity v (C, F, 201) evaluated at (x, t), constrained."""
        remaining = 1.0 - float(t)
        if float(t) >= self.until or remaining < FLOW_END:
            return v
        clean = x + remaining * v
        return v + (self.projector.project(clean) - clean) / remaining

    def finish(self, x: Tensor) -> Tensor:
        """The sampled latent, projected once more unless imposition stopped early."""
        return self.projector.project(x) if self.until >= 1.0 else x


def imposer_for(
    targets: Targets, mean: Tensor, std: Tensor, device: torch.device
) -> tuple[Imposer, Placement, CanonicalTargets]:
    placement = targets.placement()
    canonical = targets.canonical(placement)
    projector = Projector(canonical, mean, std, device, torch.float32)
    return Imposer(projector, targets.until), placement, canonical


# --- after decoding ----------------------------------------------------------------------------


def finish_directed(
    motion: DecodedMotion, targets: Targets, placement: Placement, canonical: CanonicalTargets
) -> DecodedMotion:
    """Decoded canonical motion -> the scene, constrained frames met exactly if asked."""
    rotations = motion.rotations.astype(np.float64)
    roots = motion.root_positions.astype(np.float64)
    if targets.exact:
        features = exact_hit(pose_features(rotations, roots), canonical)
        rotations, roots = feature_poses(features)
        rotations = np.stack([continuous(q) for q in rotations])
    rotations, roots = placement.to_scene(rotations, roots)
    joints = forward_kinematics(BODY_SKELETON, rotations, roots)
    return DecodedMotion(rotations.astype(np.float32), roots.astype(np.float32), joints)


def exact_hit(features: Tensor, targets: CanonicalTargets) -> Tensor:
    """De-normalised features (C, F, 201) float64 with the loop closed and every constrained
    frame met, each residual faded out over ``BLEND_FRAMES`` around its frame."""
    identity = Projector(
        targets,
        torch.zeros(FEATURE_DIM, dtype=torch.float64),
        torch.ones(FEATURE_DIM, dtype=torch.float64),
        torch.device("cpu"),
        torch.float64,
    )
    return identity.project(features)


def _falloff(distance: Tensor, width: int) -> Tensor:
    """Raised cosine: 1 at distance 0, 0 from ``width`` on, zero slope at both ends."""
    d = distance.clamp(0, width) / max(width, 1)
    return 0.5 * (1.0 + torch.cos(torch.pi * d))


def _with_yaw(rot6d: Tensor, yaw: Tensor) -> Tensor:
    """Root rot6d (..., 6) turned about +Y so that its heading is ``yaw`` (...,)."""
    matrix = rot6d_to_matrix(rot6d)
    forward = matrix[..., :, 2]
    turn = yaw - torch.atan2(forward[..., 0], forward[..., 2])
    c, s = torch.cos(turn), torch.sin(turn)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    about_y = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).unflatten(-1, (3, 3))
    return matrix_to_rot6d(about_y @ matrix)


def _indexes(frames: np.ndarray | None) -> np.ndarray:
    return np.zeros(0, np.int64) if frames is None else frames.astype(np.int64)
