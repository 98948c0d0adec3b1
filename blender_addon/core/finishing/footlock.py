"""Foot lock: planted feet stay where they landed (numpy, no bpy).

Modes, as animators know them from DeepMotion / MotionBuilder:

- ``AUTO``: lock during detected contacts (``motion.contacts`` thresholds, scaled by leg
  length);
- ``ALWAYS``: also lock feet that land already sliding: gliding contacts (up to 1.5 m/s,
  ``motion.contacts``), and a foot may enter contact at twice ``AUTO``'s speed (0.6 m/s for
  the model's body);
- ``GROUNDING``: no locking, only nothing under the floor;
- ``OFF``: the take as it is.

While the toes touch the ground they stay at one spot (where they rest on average during the
contact), and the heel is free to rise; while only the heel touches (heel strike) the ankle
stays at its spot. Throughout the contact the foot keeps the heading it had when it was flat
on the ground (pitch and roll stay free, so the foot still rolls heel to toe).
The correction is blended in and out over ``blend`` frames on each side, so nothing pops. Two-
bone IK (knee bending the way it bent) moves the leg; where a pinned foot is out of the leg's
reach the pelvis is lowered, smoothly over time. Finally, no joint goes below the floor (the
body's lowest point, as the take was grounded): the pelvis is raised where one would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import FinishingError
from ..motion import contacts as contact
from ..motion import ik, kinematics
from ..motion import rotations as rot
from ..motion.root import CycleTravel
from ..motion.skeletons import sole_margins
from .clip import Clip
from .loop import repeat

MODES = ("AUTO", "ALWAYS", "GROUNDING", "OFF")
BLEND_FRAMES = 4
#: ``ALWAYS`` lets feet this many times faster than ``AUTO`` enter contact.
ALWAYS_SPEED_FACTOR = 2.0
#: A pinned leg stays this much short of straight (metres), so the knee keeps a direction.
REACH_MARGIN_M = 0.002
#: The pelvis is lowered only when a pinned foot would miss its spot by more than this.
REACH_TOLERANCE_M = 0.005
_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class FootLockReport:
    mode: str
    contact_frames: tuple[int, int]  # frames with the (left, right) foot planted
    pelvis_lowered_m: float  # largest drop of the pelvis so a leg could reach
    pelvis_raised_m: float  # largest lift so nothing went under the floor
    skate_before: contact.Skate  # judged on the contact frames
    skate_after: contact.Skate

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "contact_frames": list(self.contact_frames),
            "pelvis_lowered_m": round(self.pelvis_lowered_m, 4),
            "pelvis_raised_m": round(self.pelvis_raised_m, 4),
            "skate_before": _skate(self.skate_before),
            "skate_after": _skate(self.skate_after),
        }


def _skate(s: contact.Skate) -> dict[str, float]:
    return {"fraction": round(s.fraction, 4), "distance_m": round(s.distance_m, 4)}


def mode_thresholds(mode: str) -> contact.ContactThresholds:
    """The contact thresholds of foot-lock ``mode`` for the model's body (the panel's
    tooltips quote them)."""
    if mode != "ALWAYS":
        return contact.ContactThresholds()
    gliding = contact.ContactThresholds(glide_speed=contact.GLIDE_SPEED)
    return replace(gliding, enter_speed=gliding.enter_speed * ALWAYS_SPEED_FACTOR)


def thresholds_for(clip: Clip, mode: str) -> contact.ContactThresholds:
    """``mode_thresholds`` scaled by the clip's leg length."""
    scale = kinematics.leg_length(clip.skeleton.rest_positions, clip.legs.chains())
    return mode_thresholds(mode).scaled(scale)


def foot_lock(
    clip: Clip, mode: str = "AUTO", blend: int = BLEND_FRAMES
) -> tuple[Clip, FootLockReport]:
    """Lock the feet of ``clip`` (see the module doc); raises ``FinishingError`` when a locking
    mode finds no contact at all."""
    return _lock(clip, mode, blend, slice(None))


def foot_lock_loop(
    cycle: Clip, travel: CycleTravel, mode: str = "AUTO", blend: int = BLEND_FRAMES
) -> tuple[Clip, FootLockReport]:
    """Foot lock on a loop: locked as the middle of three cycles played in a row (travel
    carried), so a contact across the seam is one contact and the locked loop still runs on
    into its own first frame; the report is the middle cycle's."""
    frames = cycle.frames
    locked, report = _lock(repeat(cycle, travel, 3), mode, blend, slice(frames, 2 * frames))
    # back by one cycle: the inverse of the turn and travel ``repeat`` applied
    back = rot.inverse(rot.yaw(np.radians(travel.turn_deg)))
    pivot = cycle.root_positions[0] * np.array([1.0, 0.0, 1.0])
    offset = np.array(travel.offset_m) * np.array([1.0, 0.0, 1.0])
    rotations = locked.rotations.copy()
    rotations[:, 0] = rot.make_continuous(rot.multiply(back, rotations[:, 0]))
    root = rot.rotate(back, locked.root_positions - pivot - offset) + pivot
    return locked.with_motion(rotations, root), report


def _lock(clip: Clip, mode: str, blend: int, window: slice) -> tuple[Clip, FootLockReport]:
    """``foot_lock`` over the whole clip, giving back (and reporting on) its ``window``."""
    if mode not in MODES:
        raise FinishingError(f"unknown foot lock mode {mode!r}", field="foot_lock",
                             allowed=", ".join(MODES))  # fmt: skip
    world = kinematics.world_rotations(clip.rotations, clip.skeleton.parents)
    positions = kinematics.positions_from_world(clip.skeleton, world, clip.root_positions)
    thresholds = thresholds_for(clip, mode)
    legs = clip.legs
    found = contact.detect_contacts(positions, clip.fps, legs, thresholds)
    judged = found.foot[window]
    before = contact.foot_skate(positions[window], clip.fps, legs, thresholds, during=judged)
    if mode == "OFF":
        return clip.with_motion(clip.rotations[window], clip.root_positions[window]), (
            FootLockReport(mode, (0, 0), 0.0, 0.0, before, before)
        )
    margins = sole_margins(clip.skeleton) * (thresholds.ankle_clearance / contact.ANKLE_CLEARANCE_M)
    floor = 0.0  # the ground: takes are grounded so that the body's lowest point is at y = 0
    rotations = clip.rotations.copy()
    root = clip.root_positions.copy()
    lowered = 0.0
    if mode != "GROUNDING":
        if not found.any:
            raise FinishingError(
                "foot lock found no foot contact in this take: no foot stays within "
                f"{thresholds.enter_height * 100:.0f} cm of the ground and slower than "
                f"{thresholds.enter_speed:.2f} m/s for {thresholds.min_frames} frames",
                field="foot_lock",
            )
        plans = [_plan_leg(positions, world, found, legs, leg, blend) for leg in (0, 1)]
        for leg, plan in enumerate(plans):
            plan.target[:, 1] = np.maximum(plan.target[:, 1], floor + margins[legs.ankle[leg]])
        drop = _pelvis_drop(clip, positions, plans, blend)
        lowered = float(drop[window].max(initial=0.0))
        root[:, 1] -= drop
        positions = positions - drop[:, None, None] * _UP
        for leg, plan in enumerate(plans):
            _solve_leg(clip, world, positions, plan, leg)
        # only the legs' own rotations change; the toes keep theirs and follow the ankles
        parents = clip.skeleton.parents
        for joint in (*legs.hip, *legs.knee, *legs.ankle):
            local = rot.multiply(rot.inverse(world[:, int(parents[joint])]), world[:, joint])
            rotations[:, joint] = rot.make_continuous(rot.normalize(local))
        positions = kinematics.positions_from_world(clip.skeleton, world, root)
    lift = np.maximum(floor - (positions[..., 1] - margins).min(axis=1), 0.0)
    lift = _smooth_envelope(lift, blend)
    root[:, 1] += lift
    out = clip.with_motion(rotations[window], root[window])
    after_positions = (positions + lift[:, None, None] * _UP)[window]
    after = contact.foot_skate(after_positions, clip.fps, legs, thresholds, during=judged)
    frames = (int(judged[:, 0].sum()), int(judged[:, 1].sum()))
    raised = float(lift[window].max(initial=0.0))
    return out, FootLockReport(mode, frames, lowered, raised, before, after)


@dataclass(eq=False)
class _LegPlan:
    target: np.ndarray  # (F, 3) where the ankle should be
    turn: np.ndarray  # (F, 4) world correction of the ankle's rotation
    active: np.ndarray  # (F,) bool: frames the leg is moved on


def _plan_leg(
    positions: np.ndarray,
    world: np.ndarray,
    found: contact.Contacts,
    legs: contact.Legs,
    leg: int,
    blend: int,
) -> _LegPlan:
    frames = positions.shape[0]
    ankle, toe = legs.ankle[leg], legs.toe[leg]
    ankle_pos, toe_pos, ankle_rot = positions[:, ankle], positions[:, toe], world[:, ankle]
    heel, tip = found.ankle[:, leg], found.toe[:, leg]
    planted = heel | tip
    offset = np.zeros((frames, 3))
    turn = np.broadcast_to(rot.IDENTITY, (frames, 4)).copy()
    weight = np.zeros(frames)
    run_list = contact.runs(planted)
    if not run_list:
        return _LegPlan(target=ankle_pos.copy(), turn=turn, active=weight > 0)
    run_of = np.full(frames, -1)
    for index, (a, b) in enumerate(run_list):
        run_of[a:b] = index
    on = np.flatnonzero(planted)
    ids = run_of[on]
    count = len(run_list)

    def run_mean(values: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # per run: mean of ``values`` over its frames where ``mask``, and whether any
        sums = np.zeros((count, 3))
        np.add.at(sums, ids[mask[on]], values[on][mask[on]])
        hits = np.bincount(ids[mask[on]], minlength=count)
        return sums / np.maximum(hits, 1)[:, None], hits > 0

    # Anchors: where the heel and the toes rest on average while they touch, so a foot that
    # slides is corrected by half as much as pinning its first frame would.
    heel_anchor, has_heel = run_mean(ankle_pos, heel)
    toe_anchor, has_toe = run_mean(toe_pos, tip)
    # heading kept from the first flat frame of each run (else its first frame)
    flat = heel & tip
    first = np.array([a + (int(np.argmax(flat[a:b])) if flat[a:b].any() else 0)
                      for a, b in run_list])  # fmt: skip
    heading = rot.heading(ankle_rot[first])[ids]
    turn[on] = rot.yaw(heading - rot.heading(ankle_rot[on]))  # pitch and roll stay free
    toe_target = toe_anchor[ids] - rot.rotate(turn[on], toe_pos[on] - ankle_pos[on])
    heel_target = np.where(has_heel[ids][:, None], heel_anchor[ids], ankle_pos[on])
    use_toe = tip[on] & has_toe[ids]
    offset[on] = np.where(use_toe[:, None], toe_target, heel_target) - ankle_pos[on]
    weight[on] = 1.0
    # blend in and out: a free frame within ``blend`` of a contact takes the nearest contact
    # frame's correction, scaled down linearly with the distance
    frame = np.arange(frames)
    before = np.maximum.accumulate(np.where(planted, frame, -frames - blend))
    after = np.minimum.accumulate(np.where(planted, frame, 2 * frames + blend)[::-1])[::-1]
    nearest = np.where(frame - before <= after - frame, before, after)
    gap = np.abs(frame - nearest)
    ramp = (~planted) & (gap <= blend)
    source = nearest[ramp]
    w = 1.0 - gap[ramp] / (blend + 1)
    offset[ramp] = offset[source] * w[:, None]
    turn[ramp] = rot.slerp(np.broadcast_to(rot.IDENTITY, (source.size, 4)), turn[source], w)
    weight[ramp] = w
    return _LegPlan(target=ankle_pos + offset, turn=turn, active=weight > 0)


def _pelvis_drop(
    clip: Clip, positions: np.ndarray, plans: list[_LegPlan], blend: int
) -> np.ndarray:
    legs = clip.legs
    rest = clip.skeleton.rest_positions.astype(np.float64)
    need = np.zeros(positions.shape[0])
    for leg, plan in enumerate(plans):
        hip, knee, ankle = legs.hip[leg], legs.knee[leg], legs.ankle[leg]
        reach = (
            np.linalg.norm(rest[knee] - rest[hip]) + np.linalg.norm(rest[ankle] - rest[knee])
            - REACH_MARGIN_M
        )  # fmt: skip
        delta = plan.target - positions[:, hip]
        horizontal = np.hypot(delta[:, 0], delta[:, 2])
        vertical_room = np.sqrt(np.maximum(reach**2 - horizontal**2, 0.0))
        leg_need = -delta[:, 1] - vertical_room  # how far the hip is too high
        need = np.maximum(need, np.where(plan.active, leg_need, 0.0))
    return _smooth_envelope(np.maximum(need - REACH_TOLERANCE_M, 0.0), blend)


def _smooth_envelope(values: np.ndarray, width: int) -> np.ndarray:
    """A smooth curve never below ``values``: a running max, then a running mean, over
    2·width+1 frames (each mean covers only maxima that include the frame itself)."""
    if not values.any():
        return values
    size = 2 * width + 1
    padded = np.pad(values, width, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, size)
    peak = np.pad(windows.max(axis=1), width, mode="edge")
    return np.lib.stride_tricks.sliding_window_view(peak, size).mean(axis=1)


def _solve_leg(
    clip: Clip, world: np.ndarray, positions: np.ndarray, plan: _LegPlan, leg: int
) -> None:
    """Move one leg onto its plan, in place on ``world`` (world rotations)."""
    legs = clip.legs
    hip, knee, ankle = legs.hip[leg], legs.knee[leg], legs.ankle[leg]
    f = np.flatnonzero(plan.active)
    if f.size == 0:
        return
    solution = ik.two_bone_ik(positions[f, hip], positions[f, knee], positions[f, ankle],
                              plan.target[f])  # fmt: skip
    world[f, hip] = rot.multiply(solution.upper, world[f, hip])
    world[f, knee] = rot.multiply(solution.lower, world[f, knee])
    world[f, ankle] = rot.multiply(plan.turn[f], world[f, ankle])
