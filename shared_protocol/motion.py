"""Data conventions of a generated motion, as typed data with array validation.

Model space (DESIGN.md): Y up, metres, the character faces +Z and its left is +X. Per frame,
joint 0 (pelvis) rotation is global and the others are parent-relative; quaternions are
(w, x, y, z) float32 and sign-continuous over time. ``root_positions`` is the pelvis world
position, grounded so the lowest point of the clip touches y = 0. ``joint_positions`` are world
positions from the daemon's own forward kinematics, so a client can check its scene against them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ProtocolError

FPS = 30
MIN_FRAMES = 20
MAX_FRAMES = 360
QUAT_NORM_TOLERANCE = 1e-3


@dataclass(frozen=True, eq=False)
class Skeleton:
    """Joint names, parent indices (-1 for the root, parents before children), rest positions."""

    joint_names: tuple[str, ...]
    parents: np.ndarray  # (J,) int32
    rest_positions: np.ndarray  # (J, 3) float32, metres, model space

    def __post_init__(self) -> None:
        count = len(self.joint_names)
        if count == 0 or len(set(self.joint_names)) != count:
            raise ProtocolError("skeleton joint names must be non-empty and unique")
        parents = _as_array(self.parents, "skeleton.parents", np.int32, (count,))
        rest = _as_array(self.rest_positions, "skeleton.rest_positions", np.float32, (count, 3))
        if parents[0] != -1 or any(not -1 < parents[i] < i for i in range(1, count)):
            raise ProtocolError(
                "skeleton.parents must start with -1 and list each parent before its child",
                field="skeleton.parents",
            )
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "rest_positions", rest)

    @property
    def joint_count(self) -> int:
        return len(self.joint_names)

    def children(self, joint: int) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p == joint]


@dataclass(frozen=True, eq=False)
class MotionTakes:
    """Several candidate takes of one prompt, all with the same length and skeleton."""

    rotations: np.ndarray  # (C, F, J, 4) float32 quaternions (w, x, y, z)
    root_positions: np.ndarray  # (C, F, 3) float32 pelvis world position, metres
    joint_positions: np.ndarray  # (C, F, J, 3) float32 world joint positions, metres

    def validate(self, skeleton: Skeleton, candidates: int, frames: int) -> None:
        joints = skeleton.joint_count
        rotations = _as_array(
            self.rotations, "rotations", np.float32, (candidates, frames, joints, 4)
        )
        _as_array(self.root_positions, "root_positions", np.float32, (candidates, frames, 3))
        _as_array(
            self.joint_positions, "joint_positions", np.float32, (candidates, frames, joints, 3)
        )
        for name in ("rotations", "root_positions", "joint_positions"):
            if not np.isfinite(getattr(self, name)).all():
                raise ProtocolError(f"array {name!r} has non-finite values", field=name)
        norms = np.linalg.norm(rotations, axis=-1)
        if rotations.size and np.abs(norms - 1.0).max() > QUAT_NORM_TOLERANCE:
            raise ProtocolError("rotations must be unit quaternions", field="rotations")


def frames_for_duration(duration_s: float, fps: int = FPS) -> int:
    """Frame count the model generates for a duration (Python's round: half to even)."""
    return round(duration_s * fps)


def _as_array(
    value: np.ndarray, name: str, dtype: type[np.generic], shape: tuple[int, ...]
) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ProtocolError(f"{name} must be an array", field=name)
    if value.dtype != np.dtype(dtype):
        raise ProtocolError(
            f"array {name!r} must be {np.dtype(dtype).name}, got {value.dtype.name}", field=name
        )
    if value.shape != shape:
        raise ProtocolError(
            f"array {name!r} must have shape {shape}, got {value.shape}", field=name
        )
    return value


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3) rotation matrices."""
    w, x, y, z = np.moveaxis(quaternions, -1, 0)
    matrix = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )  # fmt: skip
    return matrix.reshape(*quaternions.shape[:-1], 3, 3)


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a·b of (..., 4) (w, x, y, z) arrays, float64: rotate by b, then by a."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = aw * bw - ax * bx - ay * by - az * bz
    out[..., 1] = aw * bx + ax * bw + ay * bz - az * by
    out[..., 2] = aw * by - ax * bz + ay * bw + az * bx
    out[..., 3] = aw * bz + ax * by - ay * bx + az * bw
    return out


def compose_world_rotations(local: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """(..., J, 3, 3) rotations, joint 0 global and the others parent-relative -> world."""
    world = np.empty_like(local)
    world[..., 0, :, :] = local[..., 0, :, :]
    for joint in range(1, local.shape[-3]):
        world[..., joint, :, :] = world[..., parents[joint], :, :] @ local[..., joint, :, :]
    return world


def forward_kinematics(
    skeleton: Skeleton, rotations: np.ndarray, root_positions: np.ndarray
) -> np.ndarray:
    """World joint positions (..., J, 3) from rotations (..., J, 4) and pelvis positions (..., 3).

    Joint 0's rotation is global, the others parent-relative; rest offsets are unrotated
    (SMPL convention: the rest pose is all identity rotations).
    """
    parents = [int(p) for p in skeleton.parents]
    world_rot = compose_world_rotations(quaternion_to_matrix(rotations.astype(np.float64)), parents)
    return positions_from_world(skeleton, world_rot, root_positions).astype(np.float32)


def positions_from_world(
    skeleton: Skeleton, world_rotations: np.ndarray, root_positions: np.ndarray
) -> np.ndarray:
    """World joint positions (..., J, 3) float64 from world rotation matrices (..., J, 3, 3).

    Each joint sits at its parent's position plus the parent's world rotation applied to the
    rest offset between them (the second half of :func:`forward_kinematics`).
    """
    rest = skeleton.rest_positions.astype(np.float64)
    parents = skeleton.parents.astype(np.int64)
    offsets = rest[1:] - rest[parents[1:]]  # (J-1, 3)
    # every joint's rest offset turned by its parent's world rotation, in one product
    turned = np.einsum("...jab,jb->...ja", world_rotations[..., parents[1:], :, :], offsets)
    world_pos = np.empty((*world_rotations.shape[:-2], 3), dtype=np.float64)
    world_pos[..., 0, :] = root_positions
    for joint in range(1, skeleton.joint_count):
        world_pos[..., joint, :] = world_pos[..., parents[joint], :] + turned[..., joint - 1, :]
    return world_pos
