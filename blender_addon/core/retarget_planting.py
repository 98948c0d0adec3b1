"""Planted feet on the artist's rig (numpy, no bpy): the part of a retarget that keeps a body
of other proportions from sliding its feet.

While a model foot is down (``motion.contacts``), the rig's ankle should move exactly as the
model's ankle does (turned and scaled like the rest of the take) from where the rig's foot
landed, blended in and out over ``PIN_BLEND_FRAMES``. Three steps, each taking what the one
before could not:

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
#: body (metres, for the model's leg length or longer; shorter legs in proportion): the feet
#: stay within 2 cm of the model's trajectory scaled per limb chain. Up to
#: ``PLANT_FREE_OFFSET_M`` a foot moves all the way; beyond, ever less, towards the cap.
PLANT_MAX_OFFSET_M = 0.015
PLANT_FREE_OFFSET_M = 0.010

#: A contact's blend: (first blended frame, end of the blend, contact start, weights).
Ramp = tuple[int, int, int, np.ndarray]


def plant_feet(
    p: RigPlan,
    world: np.ndarray,
    root_pos: np.ndarray,
    positions: np.ndarray,
    model_positions: np.ndarray,
    contact: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Plant the rig's feet (see the module docstring): ``world`` (F, J, 4) rotations,
    ``root_pos`` (F, 3) and ``positions`` (F, J, 3) of the target joints as transferred,
    ``model_positions`` (F, 22, 3) the model's joints, ``contact`` (F, 2) its feet down.
    Returns (world rotations, root positions)."""
    cal = p.calibration
    pelvis = int(cal.mapping[0])
    # The transfer's own placement of model points: turned, scaled, then lifted to the floor.
    lift = root_pos[0] - rot.rotate(cal.align, model_positions[0, pelvis]) * cal.scale
    model_ankles = model_legs(p.model).ankle
    footprints = [rot.rotate(cal.align, model_positions[:, model_ankles[leg]]) * cal.scale + lift
                  for leg in range(2)]  # fmt: skip
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
    return posed, root_pos + shift


_ALONG_GROUND = np.array([1.0, 0.0, 1.0])


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
    goal = reached + _capped(goal - reached, min(cal.scale, 1.0))
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


def _capped(offset: np.ndarray, scale: float) -> np.ndarray:
    """``offset`` (F, 3) kept under ``PLANT_MAX_OFFSET_M`` (times ``scale``): unchanged up to
    ``PLANT_FREE_OFFSET_M``, then approaching the cap smoothly (no kink where a foot reaches it)."""
    free, room = PLANT_FREE_OFFSET_M * scale, (PLANT_MAX_OFFSET_M - PLANT_FREE_OFFSET_M) * scale
    length = np.linalg.norm(offset, axis=-1, keepdims=True)
    over = length > free
    kept = free + room * np.tanh((length - free) / room)
    return np.where(over, offset * (kept / np.maximum(length, 1e-12)), offset)


def _follow_parents(p: RigPlan, world: np.ndarray, frames: np.ndarray, tops: tuple) -> None:
    """Unmapped bones below ``tops`` ride their parents again (twist bones, toes' helpers)."""
    target = p.target
    for t in range(len(target.names)):
        if p.mapped[t] or not any(kinematics.descends(target.parents, t, top) for top in tops):
            continue
        parent = int(target.parents[t])
        rest_local = rot.multiply(rot.inverse(target.rotations[parent]), target.rotations[t])
        world[frames, t] = rot.multiply(world[frames, parent], rest_local)
