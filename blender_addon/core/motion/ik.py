"""Analytic two-bone IK (hip-knee-ankle, shoulder-elbow-wrist), numpy, no bpy.

World positions in, world-space corrections out: for a chain root→mid→end and a target for
the end, it returns two rotations (w, x, y, z) to *pre-multiply* onto the upper and the lower
bone's world rotations. The knee stays in the plane it bends in now (its pole direction is
kept from the input pose), and each bone turns by the smallest swing that places it, so the
bones' twist is kept. An unreachable target is approached as far as the chain reaches (fully
stretched, or folded to the shortest distance); ``reached`` says where the end landed.
:func:`limited_two_bone_ik` also keeps each bone within an angle of where it points now.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rotations as rot

#: Keep the chain off exactly straight/fully folded, where the bend plane is undefined.
STRAIGHT_MARGIN = 1e-4
#: How exactly :func:`limited_two_bone_ik` finds the part of the way it may go (a fraction).
LIMIT_PRECISION = 1e-3


@dataclass(frozen=True, eq=False)
class TwoBoneSolution:
    upper: np.ndarray  # (..., 4) world correction of the upper bone (root joint's rotation)
    lower: np.ndarray  # (..., 4) world correction of the lower bone (mid joint's rotation)
    mid: np.ndarray  # (..., 3) new mid-joint position
    reached: np.ndarray  # (..., 3) new end position (== target where reachable)


def two_bone_ik(
    root: np.ndarray,
    mid: np.ndarray,
    end: np.ndarray,
    target: np.ndarray,
    pole: np.ndarray | None = None,
) -> TwoBoneSolution:
    """Solve for ``end`` at ``target`` (all (..., 3) world positions).

    ``pole``: direction the mid joint should bend towards (..., 3); default: where it bends in
    the input pose (for a straight input limb, the previous bend cannot be known and the
    default is the end-to-mid offset's perpendicular, which is arbitrary; pass a pole then).
    """
    root, mid, end, target = (np.asarray(a, dtype=np.float64) for a in (root, mid, end, target))
    new_mid, new_end = _placed(root, mid, end, target, mid - root if pole is None else pole)
    upper = rot.between(mid - root, new_mid - root)
    moved_lower = rot.rotate(upper, end - mid)
    lower = rot.multiply(rot.between(moved_lower, new_end - new_mid), upper)
    return TwoBoneSolution(upper=upper, lower=lower, mid=new_mid, reached=new_end)


def _placed(
    root: np.ndarray, mid: np.ndarray, end: np.ndarray, target: np.ndarray, pole: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`two_bone_ik` puts the mid joint and the end (no rotations: cheap)."""
    upper_len = np.linalg.norm(mid - root, axis=-1)
    lower_len = np.linalg.norm(end - mid, axis=-1)
    to_target = target - root
    distance = np.linalg.norm(to_target, axis=-1)
    shortest = np.abs(upper_len - lower_len) + STRAIGHT_MARGIN
    longest = upper_len + lower_len - STRAIGHT_MARGIN
    reach = np.clip(distance, shortest, longest)
    direction = to_target / np.maximum(distance, 1e-12)[..., None]
    bend = pole - np.sum(pole * direction, -1, keepdims=True) * direction
    bend_norm = np.linalg.norm(bend, axis=-1, keepdims=True)
    helper = np.where(np.abs(direction[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    fallback = np.cross(direction, helper)
    bend = np.where(bend_norm > 1e-9, bend / np.maximum(bend_norm, 1e-12), fallback)
    bend /= np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-12)
    # law of cosines: angle at the root between the chain's reach and the upper bone
    cos_root = (upper_len**2 + reach**2 - lower_len**2) / (2.0 * upper_len * reach)
    angle = np.arccos(np.clip(cos_root, -1.0, 1.0))[..., None]
    new_mid = root + upper_len[..., None] * (np.cos(angle) * direction + np.sin(angle) * bend)
    return new_mid, root + reach[..., None] * direction


def bone_turns(
    root: np.ndarray, mid: np.ndarray, end: np.ndarray, solution: TwoBoneSolution
) -> np.ndarray:
    """(...) radians by which the more-turned of the two bones changes direction in
    ``solution`` (solved from the chain ``root``→``mid``→``end``)."""
    return _turns(root, mid, end, solution.mid, solution.reached)


def _turns(
    root: np.ndarray, mid: np.ndarray, end: np.ndarray, new_mid: np.ndarray, new_end: np.ndarray
) -> np.ndarray:
    upper = rot.direction_angle(mid - root, new_mid - root)
    lower = rot.direction_angle(end - mid, new_end - new_mid)
    return np.maximum(upper, lower)


def limited_two_bone_ik(
    root: np.ndarray,
    mid: np.ndarray,
    end: np.ndarray,
    target: np.ndarray,
    max_turn: float,
    pole: np.ndarray | None = None,
) -> TwoBoneSolution:
    """:func:`two_bone_ik` where neither bone may change direction by more than ``max_turn``
    radians: where the full solution would turn one further, the end goes only part of the way
    from where it is towards ``target`` (the largest part within the limit, found to
    ``LIMIT_PRECISION`` of the way), so the pose stays near the input and ``reached`` falls
    short of ``target``. All arrays (N, 3). ``pole`` must lie in the plane the chain bends in
    now (the default), or be a straight chain's choice of plane, so that not moving turns
    nothing."""
    root, mid, end, target = (np.asarray(a, dtype=np.float64) for a in (root, mid, end, target))
    pole = mid - root if pole is None else pole
    over = np.flatnonzero(_turns(root, mid, end, *_placed(root, mid, end, target, pole))
                          > max_turn)  # fmt: skip
    if over.size:
        r, m, e, t, p = root[over], mid[over], end[over], target[over], pole[over]
        # Bisection on the part of the way: the turn grows with it (the chain bends one way).
        low, high = np.zeros(over.size), np.ones(over.size)
        while float((high - low).max()) > LIMIT_PRECISION:
            part = 0.5 * (low + high)
            within = _turns(r, m, e, *_placed(r, m, e, e + part[:, None] * (t - e), p)) <= max_turn
            low, high = np.where(within, part, low), np.where(within, high, part)
        target = target.copy()
        target[over] = e + low[:, None] * (t - e)
    return two_bone_ik(root, mid, end, target, pole)
