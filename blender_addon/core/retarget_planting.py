"""Planted feet on the artist's rig (numpy, no bpy): the part of a retarget that keeps a body
of other proportions from sliding its feet.

While a model foot is down (``motion.contacts``), the rig's foot should move exactly as the
model's does (turned and scaled like the rest of the take) from where the rig's foot landed,
blended in and out over ``PIN_BLEND_FRAMES``: frame by frame its ankle moves as the model's
ankle, or, for a foot longer than the model's (scaled) where that leaves the rig's toe sliding
less along the ground (the model's heel rising, a foot turning), its toe moves as the model's
toe and the ankle goes where the foot, turned as transferred, puts it (a longer foot anchored at
its ankle swings its toe forward and down as it rolls off it; a shorter one lifts it back).
Three steps, each taking what the one before could not:

1. the body follows its planted feet, limbs untouched: along the ground the slip of the feet
   that are down, summed over time (the rig's own stride); in height what they need;
2. two-bone IK on hip and knee moves each ankle the rest of the way, but no thigh or shin turns
   more than ``PLANT_MAX_TURN_DEG`` away from where the transfer pointed it (the model's
   direction), and no ankle moves more than ``PLANT_MAX_OFFSET_M`` from where the transfer put
   it relative to the body (the model's trajectory scaled per limb chain): there the foot
   stops short;
3. the body takes what the legs could not (the planted feet's shortfall, weighted by how much
   each is planted) and the legs are solved again, ``BODY_ROUNDS`` times; what the two feet
   still disagree on is left as a slow slide of the feet (the bone directions win).

A foot that is not planted keeps its toe as high over the floor as the model's (scaled): where
the rig's toe passes lower, the same limited IK lifts its ankle, and the foot itself then turns
toe-up by what is still missing, at most ``PLANT_MAX_TURN_DEG``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .motion import contacts, ik, kinematics, transfer
from .motion import rotations as rot
from .motion.skeletons import model_legs

if TYPE_CHECKING:
    from .retarget import RigPlan

#: Frames over which a planted foot blends in before its contact and out after it.
PIN_BLEND_FRAMES = 4
#: A planted ankle closer than this to where it must go is left alone (metres).
PIN_TOLERANCE_M = 5e-4
#: The most planting may turn a thigh or a shin away from the model's direction (degrees);
#: under the 5° a retarget is judged by, with room for Blender's single-precision pose.
PLANT_MAX_TURN_DEG = 4.0
#: Times the body takes the legs' shortfall and the legs are solved again.
BODY_ROUNDS = 3
#: The most planting may move an ankle away from where the transfer put it relative to the
#: body (metres, any body): the feet stay within 2 cm of the model's trajectory scaled per limb
#: chain. Up to ``PLANT_FREE_OFFSET_M`` a foot moves all the way; beyond, ever less, towards
#: the cap.
PLANT_MAX_OFFSET_M = 0.015
PLANT_FREE_OFFSET_M = 0.010
#: How fast (degrees a frame) a foot in the air may turn toe-up or back (``_turn_toes_up``).
TOE_TURN_RATE_DEG = 1.0
#: A foot anchors at its toe only when it is this much longer from ankle to toe than the
#: model's (scaled), and where that leaves the toe slower by more than ``TOE_ANCHOR_MARGIN_M``
#: a frame: a foot of the model's shape or shorter stays anchored at its ankle.
TOE_ANCHOR_MIN_RATIO = 1.05
TOE_ANCHOR_MARGIN_M = 1e-5

#: A contact's blend: (first blended frame, end of the blend, contact start, weights).
Ramp = tuple[int, int, int, np.ndarray]


def plant_feet(
    p: RigPlan,
    world: np.ndarray,
    root_pos: np.ndarray,
    positions: np.ndarray,
    model_positions: np.ndarray,
    found: contacts.Contacts,
    lift_toes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Plant the rig's feet (see the module docstring): ``world`` (F, J, 4) rotations,
    ``root_pos`` (F, 3) and ``positions`` (F, J, 3) of the target joints as transferred,
    ``model_positions`` (F, 22, 3) the model's joints, ``found`` its contacts; ``lift_toes``:
    lift the toes of feet in the air (off for a take held to poses read from the rig, which
    carry the lift already: lifting again would raise them with every continuation).
    Returns (world rotations, root positions)."""
    contact = found.foot
    footprints = [_footprint(p, positions, model_positions, found, leg) for leg in range(2)]
    ramps = [_plant_ramps(contact[:, leg]) for leg in range(2)]
    shift = _follow_planted_feet(p, positions, footprints, ramps, contact)
    goals = []
    for leg in range(2):
        ankle = positions[:, p.target_legs.ankle[leg]]
        # A foot lands where the body's travel put it along the ground, and at the height the
        # transfer stood it at (the body's height then is the other foot's business).
        landed = ankle + shift * _ALONG_GROUND
        goals.append(_plant_goal(ankle + shift, footprints[leg], ramps[leg], landed))
    weights = [_plant_weight(ramps[leg], len(shift)) for leg in range(2)]
    for leg in range(2 if lift_toes else 0):  # a foot in the air lifts its toe, as IK may
        toe = positions[:, p.target_legs.toe[leg]] + shift
        lacking = _toe_lacking(p, toe, model_positions, leg)
        goals[leg][:, transfer.UP] += (1.0 - weights[leg]) * lacking
    share = np.maximum(weights[0] + weights[1], 1.0)[:, None]
    posed = world.copy()
    # Each round solves again only the frames whose body the round before moved.
    frames = np.arange(len(shift))
    for round_ in range(BODY_ROUNDS + 1):
        pose = world[frames]
        moved = positions[frames] + shift[frames, None]
        reached = [_reach(p, pose, moved, leg, goals[leg][frames]) for leg in range(2)]
        posed[frames] = pose
        shortfall = sum(w[frames, None] * (g[frames] - r) for w, g, r in
                        zip(weights, goals, reached, strict=True)) / share[frames]  # fmt: skip
        short = np.linalg.norm(shortfall, axis=-1) > PIN_TOLERANCE_M
        if round_ == BODY_ROUNDS or not short.any():
            break
        frames = frames[short]
        shift[frames] += shortfall[short]
    root_pos = root_pos + shift
    if lift_toes:
        _turn_toes_up(p, posed, root_pos, model_positions, weights)
    return posed, root_pos


_ALONG_GROUND = np.array([1.0, 0.0, 1.0])


def longer_foot(p: RigPlan, leg: int) -> bool:
    """Whether ``leg``'s rig foot is ``TOE_ANCHOR_MIN_RATIO`` times the model's (scaled) or
    longer from ankle to toe (it rolls off its toe, not its ankle)."""
    legs, rest = model_legs(p.model), p.target.positions
    model_foot = np.linalg.norm(
        p.model.rest_positions[legs.toe[leg]] - p.model.rest_positions[legs.ankle[leg]]
    )
    rig_foot = np.linalg.norm(rest[p.target_legs.toe[leg]] - rest[p.target_legs.ankle[leg]])
    return bool(rig_foot >= TOE_ANCHOR_MIN_RATIO * p.calibration.scale * model_foot)


def _footprint(
    p: RigPlan,
    positions: np.ndarray,
    model_positions: np.ndarray,
    found: contacts.Contacts,
    leg: int,
) -> np.ndarray:
    """(F, 3) how ``leg``'s rig ankle moves, frame to frame, while its foot turns as the
    model's does: as the model's ankle (turned and scaled), or, for a longer foot while the
    model's foot is down and that leaves the rig's toe sliding less, as the model's toe less the
    rig's own ankle-to-toe turn. Only its motion counts (a contact follows it from where the
    foot landed)."""
    cal, legs = p.calibration, model_legs(p.model)
    model_ankle, model_toe = (rot.rotate(cal.align, model_positions[:, joints[leg]]) * cal.scale
                              for joints in (legs.ankle, legs.toe))  # fmt: skip
    ankle, toe = p.target_legs.ankle[leg], p.target_legs.toe[leg]
    if not longer_foot(p, leg):
        return model_ankle
    turn = np.diff(positions[:, toe] - positions[:, ankle], axis=0)
    about_ankle, toe_step = np.diff(model_ankle, axis=0), np.diff(model_toe, axis=0)
    on_toe = found.foot[1:, leg] & (
        np.linalg.norm(toe_step * _ALONG_GROUND, axis=-1) + TOE_ANCHOR_MARGIN_M
        < np.linalg.norm((about_ankle + turn) * _ALONG_GROUND, axis=-1)
    )
    step = np.where(on_toe[:, None], toe_step - turn, about_ankle)
    return np.concatenate([model_ankle[:1], model_ankle[:1] + np.cumsum(step, axis=0)])


def _toe_lacking(p: RigPlan, toe: np.ndarray, model_positions: np.ndarray, leg: int) -> np.ndarray:
    """(F,) how much lower ``leg``'s rig toe (``toe`` (F, 3)) passes than the model's toe
    (scaled; both stand on the same floor), 0 where it is as high or higher."""
    model_toe = model_positions[:, model_legs(p.model).toe[leg], transfer.UP] * p.calibration.scale
    return np.maximum(model_toe - toe[:, transfer.UP], 0.0)


def _turn_toes_up(
    p: RigPlan,
    world: np.ndarray,
    root_pos: np.ndarray,
    model_positions: np.ndarray,
    weights: list[np.ndarray],
) -> None:
    """Turn each foot that is not planted toe-up (``world`` in place, the bones below it with
    it) by what its toe still lacks under the model's, at most ``PLANT_MAX_TURN_DEG``."""
    positions = transfer.pose_positions(p.target, world, root_pos)
    up = np.zeros(3)
    up[transfer.UP] = 1.0
    for leg in range(2):
        ankle, toe = p.target_legs.ankle[leg], p.target_legs.toe[leg]
        lacking = (1.0 - weights[leg]) * _toe_lacking(p, positions[:, toe], model_positions, leg)
        if ankle == toe or not (lacking > PIN_TOLERANCE_M).any():
            continue
        foot = positions[:, toe] - positions[:, ankle]
        length = np.linalg.norm(foot, axis=-1)
        rise = np.arcsin(np.clip(foot[:, transfer.UP] / length, -1.0, 1.0))
        wanted = np.arcsin(np.clip((foot[:, transfer.UP] + lacking) / length, -1.0, 1.0))
        angle = _rate_limited(np.minimum(wanted - rise, np.radians(PLANT_MAX_TURN_DEG)),
                              np.radians(TOE_TURN_RATE_DEG))  # fmt: skip
        frames = np.flatnonzero(angle > 0.0)
        axis = np.cross(foot[frames], up)  # turning the foot about it raises the toe
        axis /= np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
        turn = rot.from_axis_angle(axis, angle[frames])[:, None]
        below = [t for t in range(len(p.target.names))
                 if t == ankle or kinematics.descends(p.target.parents, t, ankle)]  # fmt: skip
        world[frames[:, None], below] = rot.multiply(turn, world[frames[:, None], below])


def _rate_limited(angle: np.ndarray, rate: float) -> np.ndarray:
    """(F,) ``angle`` lowered where it would change faster than ``rate`` a frame: the largest
    such curve under it, so a foot's turn adds no jump to its own motion."""
    out = angle.copy()
    for frame in range(1, len(out)):
        out[frame] = min(out[frame], out[frame - 1] + rate)
    for frame in range(len(out) - 2, -1, -1):
        out[frame] = min(out[frame], out[frame + 1] + rate)
    return out


def _plant_ramps(contact: np.ndarray) -> list[Ramp]:
    """Per contact run of one foot (``contact`` (F,) bool), its blend."""
    frames = contact.shape[0]
    out = []
    for start, end in contacts.runs(contact):
        lo, hi = max(start - PIN_BLEND_FRAMES, 0), min(end + PIN_BLEND_FRAMES, frames)
        ramp = np.ones(hi - lo)
        ramp[: start - lo] = np.arange(1, start - lo + 1) / (start - lo + 1)
        ramp[end - lo :] = np.arange(hi - end, 0, -1) / (hi - end + 1)
        out.append((lo, hi, start, ramp))
    return out


def _follow_planted_feet(
    p: RigPlan,
    positions: np.ndarray,
    footprints: list[np.ndarray],
    ramps: list[list[Ramp]],
    contact: np.ndarray,
) -> np.ndarray:
    """(F, 3) offset of the whole body that keeps its planted feet on their spots with the limbs
    as they are. Along the ground: the slip of the feet that are down (averaged when both are),
    summed over time, so the offset a contact builds stays after it (the rig's own stride). In
    height: what the planted feet need, weighted by their blend, only while they are down."""
    frames = positions.shape[0]
    step = np.zeros((frames, 3))
    down = np.zeros(frames)
    height = np.zeros(frames)
    weight_sum = np.zeros(frames)
    for leg in range(2):
        ankle = positions[:, p.target_legs.ankle[leg]]
        # Only a foot that is down leads the body: one still swinging in (its blend) would
        # pass its swing on to the body.
        planted = contact[:, leg]
        slip = np.zeros((frames, 3))
        slip[1:] = np.diff(footprints[leg] - ankle, axis=0)
        step += planted[:, None] * slip
        down += planted
        height += (_plant_goal(ankle, footprints[leg], ramps[leg]) - ankle)[:, transfer.UP]
        weight_sum += _plant_weight(ramps[leg], frames)
    shift = np.cumsum(step / np.maximum(down, 1.0)[:, None], axis=0)
    shift[:, transfer.UP] = height / np.maximum(weight_sum, 1.0)
    return shift


def _plant_weight(ramps: list[Ramp], frames: int) -> np.ndarray:
    """(F,) how much a foot is planted: 1 in contact, fading over the blend frames."""
    weight = np.zeros(frames)
    for lo, hi, _, ramp in ramps:
        weight[lo:hi] = np.maximum(weight[lo:hi], ramp)
    return weight


def _plant_goal(
    ankle: np.ndarray,
    footprint: np.ndarray,
    ramps: list[Ramp],
    landed: np.ndarray | None = None,
) -> np.ndarray:
    """(F, 3) where the ankle must be: following the model's ankle (``footprint``) from where
    the rig's foot landed (``landed`` at the contact's start, default ``ankle``), blended in and
    out from ``ankle``."""
    landed = ankle if landed is None else landed
    goal = ankle.copy()
    weight = np.zeros(ankle.shape[0])
    for lo, hi, start, ramp in ramps:
        spot = footprint[lo:hi] + (landed[start] - footprint[start])
        take = ramp > weight[lo:hi]
        blend = ramp[:, None] * (spot - ankle[lo:hi])
        goal[lo:hi][take] = ankle[lo:hi][take] + blend[take]
        weight[lo:hi] = np.maximum(weight[lo:hi], ramp)
    return goal


def _reach(
    p: RigPlan, world: np.ndarray, positions: np.ndarray, leg: int, goal: np.ndarray
) -> np.ndarray:
    """Two-bone IK on ``leg``'s hip and knee (``world`` in place) moving its ankle towards
    ``goal``, each bone within ``PLANT_MAX_TURN_DEG``; the foot keeps its world orientation.
    Returns where the ankle went (F, 3)."""
    cal, target = p.calibration, p.target
    hip, knee, ankle = p.target_legs.hip[leg], p.target_legs.knee[leg], p.target_legs.ankle[leg]
    reached = positions[:, ankle].copy()
    goal = reached + _capped(goal - reached)
    # Only where the foot must move: IK on an almost straight leg at its own end point would
    # still pick a bend plane.
    pinned = np.linalg.norm(goal - reached, axis=-1) > PIN_TOLERANCE_M
    if not pinned.any():
        return reached
    # Knees keep the plane they bend in; a straight leg bends towards the thigh's front.
    root_, mid_, end_ = positions[pinned, hip], positions[pinned, knee], positions[pinned, ankle]
    reach = (end_ - root_) / np.linalg.norm(end_ - root_, axis=-1, keepdims=True)
    bend = (mid_ - root_) - np.sum((mid_ - root_) * reach, -1, keepdims=True) * reach
    change = rot.multiply(world[pinned, hip], rot.inverse(target.rotations[hip]))
    front = rot.rotate(change, rot.rotate(cal.align, np.array([0.0, 0.0, 1.0])))
    straight = np.linalg.norm(bend, axis=-1, keepdims=True) < 1e-3 * p.target.leg_length
    pole = np.where(straight, front, bend)
    solved = ik.limited_two_bone_ik(root_, mid_, end_, goal[pinned],
                                    np.radians(PLANT_MAX_TURN_DEG), pole)  # fmt: skip
    foot = world[pinned, ankle].copy()
    world[pinned, hip] = rot.multiply(solved.upper, world[pinned, hip])
    world[pinned, knee] = rot.multiply(solved.lower, world[pinned, knee])
    _follow_parents(p, world, pinned, (hip, knee))
    world[pinned, ankle] = foot
    _follow_parents(p, world, pinned, (ankle,))
    reached[pinned] = solved.reached
    return reached


def _capped(offset: np.ndarray) -> np.ndarray:
    """``offset`` (F, 3) kept under ``PLANT_MAX_OFFSET_M``: unchanged up to
    ``PLANT_FREE_OFFSET_M``, then approaching the cap smoothly (no kink where a foot reaches it)."""
    free, room = PLANT_FREE_OFFSET_M, PLANT_MAX_OFFSET_M - PLANT_FREE_OFFSET_M
    length = np.linalg.norm(offset, axis=-1, keepdims=True)
    kept = free + room * np.tanh((length - free) / room)
    return np.where(length > free, offset * (kept / np.maximum(length, 1e-12)), offset)


def _follow_parents(p: RigPlan, world: np.ndarray, frames: np.ndarray, tops: tuple) -> None:
    """Unmapped bones below ``tops`` ride their parents again (twist bones, toes' helpers)."""
    target = p.target
    for t in range(len(target.names)):
        if p.mapped[t] or not any(kinematics.descends(target.parents, t, top) for top in tops):
            continue
        parent = int(target.parents[t])
        rest_local = rot.multiply(rot.inverse(target.rotations[parent]), target.rotations[t])
        world[frames, t] = rot.multiply(world[frames, parent], rest_local)
