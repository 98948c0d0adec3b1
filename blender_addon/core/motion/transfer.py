"""Skeleton-to-skeleton motion transfer in world space (numpy, no bpy).

Serves both "a BVH onto the model's skeleton" and "the model's skeleton onto an artist's rig".
Both skeletons are described in model axes (Y up, any units) by their rest pose: world rest
positions and world rest rotations per joint (identity for SMPL-style and BVH skeletons, the
bones' rest orientations for a rig). Quaternions are (w, x, y, z).

Per mapped target joint t (source joint s), with ``align`` the yaw-only turn between the two
rest facings (from the rest hip lines):

    R_t = align · (R_s · R_s_rest⁻¹) · align⁻¹ · R_t_rest          (world rotations)

i.e. each bone takes the source bone's change from rest. Where bone axes or rest poses
disagree (A-pose vs T-pose, degenerate bone axes), limb bones can then be *aimed*: a
minimal-arc swing turns the target segment t→child onto the source segment's direction from
joint positions, which keeps the bone's twist. Unmapped target joints keep their rest pose
relative to their parent. The travel is carried by the target joint mapped from the source's
root (the *carrier*: the pelvis/hips; the target's own root when that is mapped, or a joint
below an unmapped root bone such as UE5's ``root``, which then stays at rest): its world
position is the source root's, scaled by the leg-length ratio about the origin. The clip is
anchored so its lowest joint sits at the source's lowest joint height (scaled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MappingError
from ..protocol import motion
from . import kinematics
from . import rotations as rot

UP = 1  # model axes: Y up, +Z forward
FORWARD = 2


@dataclass(frozen=True, eq=False)
class RestPose:
    """A skeleton's rest pose in model axes (Y up)."""

    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int, -1 for the root, parents before children
    positions: np.ndarray  # (J, 3) world rest positions, the skeleton's units
    rotations: np.ndarray  # (J, 4) world rest rotations (w, x, y, z)
    hips: tuple[int, int]  # (left, right) hip joints: facing and leg length
    legs: tuple[tuple[int, int, int], ...]  # (hip, knee, ankle) per leg: leg length

    @property
    def leg_length(self) -> float:
        return kinematics.leg_length(self.positions, self.legs)

    def skeleton(self) -> motion.Skeleton:
        # Made once (FK asks for it per take; building it checks every field again).
        cached = self.__dict__.get("_skeleton")
        if cached is None:
            cached = motion.Skeleton(
                joint_names=self.names,
                parents=np.asarray(self.parents, dtype=np.int32),
                rest_positions=np.asarray(self.positions, dtype=np.float32),
            )
            object.__setattr__(self, "_skeleton", cached)
        return cached


def rest_pose_of(
    skeleton: motion.Skeleton,
    hips: tuple[int, int],
    legs: tuple[tuple[int, int, int], ...],
) -> RestPose:
    """The rest pose of an SMPL-style or BVH skeleton (identity rest rotations)."""
    count = skeleton.joint_count
    identity = np.broadcast_to(rot.IDENTITY, (count, 4)).copy()
    return RestPose(
        names=skeleton.joint_names,
        parents=skeleton.parents.astype(np.int64),
        positions=skeleton.rest_positions.astype(np.float64),
        rotations=identity,
        hips=hips,
        legs=legs,
    )


@dataclass(frozen=True, eq=False)
class Calibration:
    """How a source skeleton's motion lands on a target skeleton (see the module docstring)."""

    source: RestPose
    target: RestPose
    mapping: np.ndarray  # (J_target,) source joint per target joint, -1 if unmapped
    align: np.ndarray  # (4,) yaw-only rotation from the source's rest facing to the target's
    scale: float  # target leg length / source leg length
    aims: tuple[tuple[int, int, int, int], ...]  # (t, t_child, s, s_child) segments to aim
    carrier: int  # the target joint mapped from the source's root: it carries the travel


def facing_alignment(source: RestPose, target: RestPose) -> np.ndarray:
    """The yaw-only rotation turning the source's rest hip line onto the target's."""

    def hip_angle(pose: RestPose) -> float:
        left, right = pose.hips
        line = pose.positions[left] - pose.positions[right]
        side = 3 - UP - FORWARD
        return float(np.arctan2(-line[FORWARD], line[side]))

    return rot.yaw(hip_angle(target) - hip_angle(source), UP, FORWARD)


def default_aims(target: RestPose, mapping: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Segments worth aiming: a mapped target joint with exactly one mapped child whose source
    joint differs (limbs, neck, lower spine; not the pelvis or the upper chest, which fan out)."""
    aims = []
    for joint in range(len(target.names)):
        if mapping[joint] < 0:
            continue
        children = [c for c in range(len(target.names)) if target.parents[c] == joint]
        mapped = [c for c in children if mapping[c] >= 0]
        if len(children) == 1 and len(mapped) == 1 and mapping[mapped[0]] != mapping[joint]:
            aims.append((joint, mapped[0], int(mapping[joint]), int(mapping[mapped[0]])))
    return aims


def calibrate(
    source: RestPose,
    target: RestPose,
    mapping: Mapping[int, int],
    aims: Sequence[tuple[int, int]] | None = None,
) -> Calibration:
    """Calibrate the two rest poses.

    ``mapping``: target joint -> source joint; the source's root must be mapped (the topmost
    target joint mapped to it carries the travel). ``aims``: target (joint, child) segments to aim
    at the source's segments; None picks :func:`default_aims`, () aims nothing.
    """
    table = np.full(len(target.names), -1, dtype=np.int64)
    for t, s in mapping.items():
        if not (0 <= t < len(target.names) and 0 <= s < len(source.names)):
            raise MappingError(f"mapping {t} -> {s} is outside the skeletons", field="mapping")
        table[t] = s
    carriers = np.flatnonzero(table == 0)  # parents come first: [0] is the topmost
    if carriers.size == 0:
        raise MappingError(
            f"no target joint is mapped to the source's root {source.names[0]!r} (the joint "
            "that carries the travel)",
            field=source.names[0],
        )
    if aims is None:
        chosen = default_aims(target, table)
    else:
        chosen = [(t, c, int(table[t]), int(table[c])) for t, c in aims]
        missing = [target.names[j] for t, c, s, sc in chosen for j in (t, c) if table[j] < 0]
        if missing:
            raise MappingError(f"aimed joint {missing[0]!r} is not mapped", field=missing[0])
        aimed = [t for t, *_ in chosen]
        twice = [target.names[t] for t in aimed if aimed.count(t) > 1]
        if twice:
            raise MappingError(f"joint {twice[0]!r} is aimed twice (one segment per joint)",
                                field=twice[0])  # fmt: skip
    return Calibration(
        source=source,
        target=target,
        mapping=table,
        align=facing_alignment(source, target),
        scale=target.leg_length / source.leg_length,
        aims=tuple(chosen),
        carrier=int(carriers[0]),
    )


@dataclass(frozen=True, eq=False)
class Transferred:
    """Motion on the target skeleton, model axes, target units."""

    world_rotations: np.ndarray  # (F, J, 4) world rotations (rest rotation included)
    root_positions: np.ndarray  # (F, 3) the target root joint's world position
    joint_positions: np.ndarray  # (F, J, 3)
    carrier_positions: np.ndarray  # (F, 3) world position of ``Calibration.carrier``
    parents: np.ndarray  # (J,) the target's parents

    @property
    def local_rotations(self) -> np.ndarray:
        """(F, J, 4) wire convention: joint 0 world, others local (computed on demand)."""
        return kinematics.local_rotations(self.world_rotations, self.parents)


def transfer(
    calibration: Calibration,
    source_world: np.ndarray,
    source_positions: np.ndarray,
) -> Transferred:
    """Move source world rotations (F, Js, 4) and joint positions (F, Js, 3) onto the target.

    Every product runs over all frames and joints at once (one call for several takes is as
    cheap as for one); only the unmapped joints, which ride their parents, go joint by joint.
    """
    cal = calibration
    source_world = np.asarray(source_world, dtype=np.float64)
    source_positions = np.asarray(source_positions, dtype=np.float64)
    frames = source_world.shape[0]
    target = cal.target
    count = len(target.names)
    align, align_inv = cal.align, rot.inverse(cal.align)
    world = np.empty((frames, count, 4))
    # Mapped joints: the source joint's change from rest, turned by the facing alignment; the
    # constant factors on the right (R_s_rest⁻¹ · align⁻¹ · R_t_rest) are one product per joint.
    mapped = np.flatnonzero(cal.mapping >= 0)
    s = cal.mapping[mapped]
    right = rot.multiply(rot.multiply(rot.inverse(cal.source.rotations[s]), align_inv),
                         target.rotations[mapped])  # fmt: skip
    world[:, mapped] = rot.multiply(rot.multiply(align, source_world[:, s]), right)
    if cal.aims:
        # Aimed segments (each joint aimed once, see calibrate): world rotations do not depend
        # on the parents', so every segment swings at once.
        t, child, s, s_child = (np.array(column) for column in zip(*cal.aims, strict=True))
        bone = target.positions[child] - target.positions[t]
        current = rot.rotate(rot.multiply(world[:, t], rot.inverse(target.rotations[t])), bone)
        wanted = rot.rotate(align, source_positions[:, s_child] - source_positions[:, s])
        world[:, t] = rot.multiply(rot.between(current, wanted), world[:, t])
    # Unmapped joints keep their rest pose relative to their parent (parents come first).
    for joint in np.flatnonzero(cal.mapping < 0):
        parent = int(target.parents[joint])
        rest_local = rot.multiply(rot.inverse(target.rotations[parent]), target.rotations[joint])
        world[:, joint] = rot.multiply(world[:, parent], rest_local)
    world = rot.make_continuous(rot.normalize(world))
    travel = rot.rotate(align, source_positions[:, 0]) * cal.scale
    root = np.broadcast_to(target.positions[0], travel.shape).copy()
    if cal.carrier == 0:
        root = travel
    positions = pose_positions(target, world, root)
    # the carrier and everything below it move with the travel; an unmapped root stays put
    moving = [j for j in range(count) if kinematics.descends(target.parents, j, cal.carrier)]
    if cal.carrier != 0:
        positions[:, moving] += (travel - positions[:, cal.carrier])[:, None]
    floor = float(positions[:, moving, UP].min())
    lift = float(source_positions[..., UP].min()) * cal.scale - floor
    positions[:, moving, UP] += lift
    if cal.carrier == 0:
        root[:, UP] += lift
    return Transferred(
        world_rotations=world,
        root_positions=root,
        joint_positions=positions,
        carrier_positions=positions[:, cal.carrier].copy(),
        parents=target.parents,
    )


def pose_positions(rest: RestPose, world: np.ndarray, root_positions: np.ndarray) -> np.ndarray:
    """Joint positions (..., J, 3) of a posed skeleton with any rest rotations: FK on each
    joint's change from rest (world · rest⁻¹), which is the wire FK's input for such rigs."""
    delta = rot.multiply(world, rot.inverse(rest.rotations))
    return kinematics.positions_from_world(rest.skeleton(), delta, root_positions)


def bone_direction_errors(
    source_positions: np.ndarray,
    target_positions: np.ndarray,
    segments: Sequence[tuple[int, int, int, int]],
    align: np.ndarray,
) -> np.ndarray:
    """Angles in degrees (F, S) between each target segment (t, t_child) and its source
    segment (s, s_child) turned by ``align``: the figure retargeting is judged by."""
    errors = []
    for t, tc, s, sc in segments:
        ours = target_positions[:, tc] - target_positions[:, t]
        theirs = rot.rotate(align, source_positions[:, sc] - source_positions[:, s])
        errors.append(np.degrees(rot.direction_angle(ours, theirs)))
    return np.stack(errors, axis=-1)
