"""Forward kinematics on a skeleton (the wire skeleton, a BVH's, a rig's) with quaternions.

Conventions of the wire (DESIGN.md): rotations (..., J, 4) are (w, x, y, z); joint 0's is
global (world) and every other joint's is relative to its parent; rest frames are world-aligned
(the rest pose is all identity rotations), so a joint's world position is its parent's plus
the parent's world rotation applied to the rest offset. Positions are in the skeleton's units
(metres for the wire), model axes (Y up). Joint positions come from the shared protocol's FK,
the same code the daemon uses for ``Result.joint_positions``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import SkeletonError
from ..protocol import motion
from . import rotations as rot

Skeleton = motion.Skeleton


def world_rotations(local: np.ndarray, parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """(..., J, 4) wire rotations (joint 0 global, others local) -> world rotations."""
    local = np.asarray(local, dtype=np.float64)
    world = np.empty_like(local)
    world[..., 0, :] = local[..., 0, :]
    for joint in range(1, local.shape[-2]):
        parent = world[..., int(parents[joint]), :]
        world[..., joint, :] = rot.multiply(parent, local[..., joint, :])
    return world


def local_rotations(world: np.ndarray, parents: Sequence[int] | np.ndarray) -> np.ndarray:
    """The inverse of :func:`world_rotations`: world (..., J, 4) -> wire rotations."""
    world = np.asarray(world, dtype=np.float64)
    local = np.empty_like(world)
    local[..., 0, :] = world[..., 0, :]
    for joint in range(1, world.shape[-2]):
        parent = world[..., int(parents[joint]), :]
        local[..., joint, :] = rot.multiply(rot.inverse(parent), world[..., joint, :])
    return local


def joint_positions(
    skeleton: Skeleton, rotations: np.ndarray, root_positions: np.ndarray
) -> np.ndarray:
    """World joint positions (..., J, 3) float64 from wire rotations and root positions."""
    world = world_rotations(rotations, skeleton.parents)
    return positions_from_world(skeleton, world, root_positions)


def positions_from_world(
    skeleton: Skeleton, world: np.ndarray, root_positions: np.ndarray
) -> np.ndarray:
    """World joint positions (..., J, 3) float64 from world rotations (..., J, 4)."""
    return motion.positions_from_world(
        skeleton, rot.to_matrix(np.asarray(world, dtype=np.float64)), root_positions
    )


def find_joint(skeleton: Skeleton, name: str) -> int:
    try:
        return skeleton.joint_names.index(name)
    except ValueError:
        raise SkeletonError(f"the skeleton has no joint {name!r}", field=name) from None


def descends(parents: Sequence[int] | np.ndarray, joint: int, ancestor: int) -> bool:
    """Whether ``joint`` is ``ancestor`` or hangs below it in the ``parents`` tree."""
    while joint >= 0:
        if joint == ancestor:
            return True
        joint = int(parents[joint])
    return False


def chain_length(rest_positions: np.ndarray, chain: Sequence[int]) -> float:
    """Summed rest length of the segments joining ``chain``'s joints, in the skeleton's units."""
    points = np.asarray(rest_positions, dtype=np.float64)[list(chain)]
    return float(np.linalg.norm(np.diff(points, axis=0), axis=-1).sum())


def leg_length(rest_positions: np.ndarray, legs: Sequence[Sequence[int]]) -> float:
    """Mean rest hip→knee→ankle length over ``legs`` ((hip, knee, ankle) per leg).

    The scale between two bodies for root travel and contact thresholds (not hip height:
    where the pelvis sits above the hips differs between rigs).
    """
    return float(np.mean([chain_length(rest_positions, leg) for leg in legs]))
