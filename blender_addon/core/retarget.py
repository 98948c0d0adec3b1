"""A take on the artist's rig: calibration, transfer, root motion, planted feet, relaxed fingers,
and the pose channels to key (numpy, no bpy).

The transfer itself is the motion core's (``motion.transfer``): each mapped bone takes its model
joint's change from rest in world space, turned by the yaw-only facing alignment, then limb
segments are aimed at the model's joint positions, travel is scaled by leg length and the clip
is anchored to the ground. This module builds the rig's side of it (the driven bones from the
Pelvis bone down, and the bones between them, as the target skeleton, in model axes), adds what
a rig needs beyond it, and converts the result to pose-bone channels:

- root motion: ``KEEP`` (travel scaled by leg length, on the root-motion bone), ``IN_PLACE``
  (no horizontal travel), ``ROOT_BONE`` (ground travel and heading on the rig's top bone, the
  game-engine layout; the pelvis keeps the rest);
- feet planted (``retarget_planting``): while a model foot is down, the rig's ankle moves as
  the model's ankle does from where the rig's foot landed; the body follows its planted feet
  first, two-bone IK takes the rest within a limit on how far a leg bone may turn away from
  the model's direction;
- IK poles: the rig's pole targets are keyed in the plane the model's knee or elbow bends in;
- fingers (bones below a mapped wrist) get a relaxed curl instead of the stiff rest pose.

Pose-bone rotation of bone t with parent p, all rotations world (any common frame):
``L_t = rest_t⁻¹ · rest_p · W_p⁻¹ · W_t``; location of the root-motion bone T:
``loc = rest_T⁻¹ · (offset of T's head from where the rest pose leaves it) / object scale``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from . import retarget_planting
from .bone_mapping import BoneMapping
from .errors import RigError
from .motion import contacts, kinematics, root, transfer
from .motion import rotations as rot
from .motion.skeletons import Legs, model_legs
from .protocol import motion
from .rig import C
from .rig_bones import RigBones

ROOT_MOTION_MODES = ("KEEP", "IN_PLACE", "ROOT_BONE")
#: Relaxed finger curl (degrees) per finger segment from the knuckle out; thumbs get half.
FINGER_CURL_DEG = (12.0, 22.0, 16.0)
_ARM_SIDES = (("L_Wrist", "L_Elbow"), ("R_Wrist", "R_Elbow"))
#: Limbs a pole target can aim: (upper, middle, end) joint, without the side.
_POLE_LIMBS = (("Hip", "Knee", "Ankle"), ("Shoulder", "Elbow", "Wrist"))
#: Standing a take on its flat feet (``_stand_on_flat_feet``): the rig's toes at or above the
#: model's (scaled) on this share of the model's flat-foot frames.
FLAT_FOOT_QUANTILE = 0.8
#: A limb bent less than this (a fraction of its length, knee off the hip-ankle line) takes
#: its bend direction from the upper bone's front instead, fading in between.
POLE_STRAIGHT = 0.05


@dataclass(frozen=True)
class RetargetOptions:
    root_motion: str = "KEEP"
    pin_feet: bool = True
    relax_fingers: bool = True
    #: Key IK controls (Rigify, Auto-Rig Pro) and IK bones (UE) to follow their hand or foot,
    #: and IK pole targets in the plane the knee or elbow bends in.
    key_ik: bool = True
    #: Play arms and legs through the rig's IK (its IK/FK switches keyed to IK; needs key_ik).
    ik_limbs: bool = False

    def __post_init__(self) -> None:
        if self.root_motion not in ROOT_MOTION_MODES:
            raise RigError(
                f"root motion {self.root_motion!r} is not one of {', '.join(ROOT_MOTION_MODES)}",
                field="root_motion",
            )


@dataclass(frozen=True)
class Pole:
    """An IK pole target aiming a knee or an elbow: its rig bone, the target joints of the
    limb (upper, middle, end) and how far in front of the middle joint it sits at rest."""

    bone: int
    limb: tuple[int, int, int]
    distance: float  # metres


@dataclass(frozen=True, eq=False)
class RigPlan:
    """One rig and mapping calibrated against the model skeleton; serves every take."""

    rig: RigBones
    mapping: BoneMapping
    bones: np.ndarray  # (J,) rig bone of each target joint (driven bones and those between)
    calibration: transfer.Calibration
    target_legs: Legs  # in target joint indices (toe = ankle where the rig has no toe)
    model: motion.Skeleton
    translation: int  # rig bone carrying the root motion
    top: int  # the rig's top bone above the Pelvis bone (== the pelvis bone if none)
    mapped: np.ndarray  # (J,) bool: keyed from the model (mapped or follower)
    fingers: dict[str, np.ndarray]  # finger bone -> (4,) relaxed pose-bone rotation
    ik: tuple[tuple[int, int], ...]  # (rig bone, target joint it follows): IK controls
    poles: tuple[Pole, ...] = ()  # IK pole targets, keyed with the IK controls

    @property
    def target(self) -> transfer.RestPose:
        return self.calibration.target


@dataclass(frozen=True, eq=False)
class RigTake:
    """A take on the rig: what to key, and where the joints went (for checks)."""

    bone_names: tuple[str, ...]  # keyed rotations, in this order
    quaternions: np.ndarray  # (F, B, 4) pose-bone rotation_quaternion, sign-continuous
    location_bones: tuple[str, ...]
    locations: np.ndarray  # (F, L, 3) pose-bone location, armature units
    world_rotations: np.ndarray  # (F, J, 4) target joints, model axes
    root_positions: np.ndarray  # (F, 3) the Pelvis bone's head, model axes, metres
    target: transfer.RestPose
    contacts: contacts.Contacts  # detected on the model's motion

    @property
    def joint_positions(self) -> np.ndarray:
        """(F, J, 3) target joints' heads, model axes, metres (computed on demand)."""
        return transfer.pose_positions(self.target, self.world_rotations, self.root_positions)


@functools.lru_cache(maxsize=8)
def model_rest(rig: RigBones) -> tuple[np.ndarray, np.ndarray]:
    """Bone heads (N, 3) and rest rotations (N, 4) of ``rig`` in model axes (Y up).

    Computed once per rig (every take and step of a retarget asks): read-only arrays."""
    heads, rests = rig.heads @ C, rot.from_matrix(C.T @ rig.rest)
    heads.setflags(write=False)
    rests.setflags(write=False)
    return heads, rests


@functools.lru_cache(maxsize=64)
def _location_frame_inverse(rig: RigBones, bone: int) -> np.ndarray:
    """Inverse (3, 3) of the model-axes frame ``bone``'s pose location is expressed in
    (computed once per rig and bone: a tiny LAPACK call costs milliseconds on a busy machine)."""
    inverse = np.linalg.inv(C.T @ rig.location_frame(bone))
    inverse.setflags(write=False)
    return inverse


def plan(model: motion.Skeleton, rig: RigBones, mapping: BoneMapping) -> RigPlan:
    """Calibrate ``rig`` (mapped by ``mapping``, already validated) against ``model``."""
    pelvis = rig.index(mapping.joints["Pelvis"])
    # The target skeleton: driven bones and the bones between them, below the Pelvis bone.
    # Bones that only follow (twist, end, finger, helper bones) stay out of the transfer.
    needed = {pelvis}
    for name in [*mapping.joints.values(), *mapping.followers]:
        index = rig.index(name)
        while index not in needed and index >= 0:
            needed.add(index)
            index = int(rig.parents[index])
    bones = np.array([b for b in [pelvis, *rig.descendants(pelvis)] if b in needed], np.int64)
    position = {int(b): j for j, b in enumerate(bones)}
    parents = np.array([-1] + [position[int(rig.parents[b])] for b in bones[1:]], dtype=np.int64)
    heads, rests = model_rest(rig)
    joint_of = {name: j for j, name in enumerate(rig.names[b] for b in bones)}
    table: dict[int, int] = {}
    for joint, bone in mapping.joints.items():
        table[joint_of[bone]] = model.joint_names.index(joint)
    for bone, joint in mapping.followers.items():
        if bone in joint_of:
            table[joint_of[bone]] = model.joint_names.index(joint)

    def target_joint(model_joint: str) -> int:
        return joint_of[mapping.joints[model_joint]]

    legs = tuple((target_joint(f"{s}_Hip"), target_joint(f"{s}_Knee"), target_joint(f"{s}_Ankle"))
                 for s in "LR")  # fmt: skip
    target = transfer.RestPose(
        names=tuple(rig.names[b] for b in bones),
        parents=parents,
        positions=heads[bones],
        rotations=rests[bones],
        hips=(legs[0][0], legs[1][0]),
        legs=legs,
    )
    source = transfer.rest_pose_of(model, model_legs(model).hip, model_legs(model).chains())
    primary = {model.joint_names.index(j): joint_of[b] for j, b in mapping.joints.items()}
    calibration = transfer.calibrate(source, target, table, _aims(model, target, primary))
    toes = tuple(joint_of.get(mapping.joints.get(f"{s}_Foot", ""), legs[i][2])
                 for i, s in enumerate("LR"))  # fmt: skip
    target_legs = Legs(hip=(legs[0][0], legs[1][0]), knee=(legs[0][1], legs[1][1]),
                       ankle=(legs[0][2], legs[1][2]), toe=(toes[0], toes[1]))  # fmt: skip
    mapped = np.zeros(len(bones), dtype=bool)
    mapped[list(table)] = True
    translation = rig.index(mapping.translation_bone or mapping.joints["Pelvis"])
    above = rig.ancestors(pelvis)
    return RigPlan(
        rig=rig, mapping=mapping, bones=bones, calibration=calibration, target_legs=target_legs,
        model=model, translation=translation, top=above[-1] if above else pelvis, mapped=mapped,
        fingers=_relaxed_fingers(rig, mapping, heads, rests),
        ik=_ik_controls(rig, mapping, joint_of, pelvis),
        poles=_poles(rig, mapping, joint_of, pelvis, heads),
    )  # fmt: skip


def _ik_controls(
    rig: RigBones, mapping: BoneMapping, joint_of: dict[str, int], pelvis: int
) -> tuple[tuple[int, int], ...]:
    """IK controls to key: those outside the body (under the rig's top bone, not below the
    Pelvis bone), whose parents then only move with the top bone."""
    out = []
    for bone, joint in sorted(mapping.ik_controls.items()):
        index = rig.index(bone)
        above = rig.ancestors(index)
        if pelvis in above or index == pelvis or not above:
            continue
        out.append((index, joint_of[mapping.joints[joint]]))
    return tuple(out)


def _poles(
    rig: RigBones,
    mapping: BoneMapping,
    joint_of: dict[str, int],
    pelvis: int,
    heads: np.ndarray,
) -> tuple[Pole, ...]:
    """The rig's IK poles (``RigBones.ik_poles``) whose chain bends at a mapped knee or elbow
    (the chain's middle bone rests where that joint's bone does, to 1 mm per metre of limb).
    Like IK controls, only poles outside the body are keyed."""
    out = []
    for pole_name, middle_name in rig.ik_poles:
        pole, middle = rig.get(pole_name), rig.get(middle_name)
        if pole is None or middle is None or pole == pelvis or pelvis in rig.ancestors(pole):
            continue
        for side, limb in itertools.product("LR", _POLE_LIMBS):
            bones = [mapping.joints.get(f"{side}_{joint}", "") for joint in limb]
            if not all(bones):
                continue
            knee, ankle = rig.index(bones[1]), rig.index(bones[2])
            tolerance = 1e-3 * float(np.linalg.norm(heads[ankle] - heads[knee]))
            if np.linalg.norm(heads[middle] - heads[knee]) <= tolerance:
                distance = float(np.linalg.norm(heads[pole] - heads[knee]))
                upper, mid, end = (joint_of[b] for b in bones)
                out.append(Pole(pole, (upper, mid, end), distance))
    return tuple(out)


def _aims(
    model: motion.Skeleton, target: transfer.RestPose, primary: dict[int, int]
) -> list[tuple[int, int]]:
    """Aim every mapped target bone whose model joint has exactly one child at the bone that
    plays that child, when that bone hangs below it (limbs, spine, neck).
    ``primary``: model joint -> target joint (followers excluded)."""
    aims = []
    for joint in range(model.joint_count):
        children = model.children(joint)
        if len(children) != 1 or joint not in primary or children[0] not in primary:
            continue
        t, child = primary[joint], primary[children[0]]
        if child != t and kinematics.descends(target.parents, child, t):
            aims.append((t, child))
    return aims


def _relaxed_fingers(
    rig: RigBones, mapping: BoneMapping, heads: np.ndarray, rests: np.ndarray
) -> dict[str, np.ndarray]:
    """Pose rotations curling each bone below a wrist towards the palm (model axes)."""
    out: dict[str, np.ndarray] = {}
    driven = mapping.mapped_bones()
    for wrist_name, elbow_name in _ARM_SIDES:
        if wrist_name not in mapping.joints or elbow_name not in mapping.joints:
            continue
        wrist = rig.index(mapping.joints[wrist_name])
        arm = heads[wrist] - heads[rig.index(mapping.joints[elbow_name])]
        arm /= max(float(np.linalg.norm(arm)), 1e-9)
        # Palm normal: down in a T-pose, inwards-down in an A-pose (the arm's downward side).
        down = np.array([0.0, -1.0, 0.0])
        palm = down - (down @ arm) * arm
        palm /= max(float(np.linalg.norm(palm)), 1e-9)
        for bone in rig.descendants(wrist):
            if rig.names[bone] in driven:
                continue
            depth = len(rig.ancestors(bone)) - len(rig.ancestors(wrist)) - 1
            children = rig.children(bone)
            direction = heads[children[0]] - heads[bone] if children else arm
            axis = np.cross(direction, palm)
            if float(np.linalg.norm(axis)) < 1e-9:
                continue
            sideways = abs(float((heads[bone] - heads[wrist]) @ palm))
            thumb = sideways > 0.5 * float(np.linalg.norm(direction))
            angle = np.radians(FINGER_CURL_DEG[min(depth, 2)] * (0.5 if thumb else 1.0))
            curl = rot.from_axis_angle(axis / np.linalg.norm(axis), np.array(angle))
            out[rig.names[bone]] = rot.multiply(rot.multiply(rot.inverse(rests[bone]), curl),
                                                rests[bone])  # fmt: skip
    return out


@dataclass(frozen=True, eq=False)
class TakeMotion:
    """A take in model space: wire rotations (F, J, 4), pelvis positions (F, 3) in metres,
    model axes, grounded, at ``fps``."""

    rotations: np.ndarray
    root_positions: np.ndarray
    fps: float
    #: A take held to given poses (Direction) is placed as its first given pose alone would be,
    #: the rule those poses were read from a rig by (``rig_pose``); None: on its flat feet
    #: (``_stand_on_flat_feet``), or by the clip's lowest joint where no foot is flat.
    anchor_frame: int | None = None


def retarget(
    p: RigPlan,
    rotations: np.ndarray,
    root_positions: np.ndarray,
    fps: float,
    options: RetargetOptions = RetargetOptions(),
) -> RigTake:
    """One take on the planned rig (see :func:`retarget_takes`)."""
    return retarget_takes(p, [TakeMotion(rotations, root_positions, fps)], options)[0]


def retarget_takes(
    p: RigPlan, takes: list[TakeMotion], options: RetargetOptions = RetargetOptions()
) -> list[RigTake]:
    """Several takes on the planned rig, each on its own: a take gets the same keys alone or
    with others, and one take's arrays stay in the CPU cache (one transfer over every take's
    frames at once was slower: its arrays outgrow the cache)."""
    return [_retarget_take(p, take, options) for take in takes]


def _retarget_take(p: RigPlan, take: TakeMotion, options: RetargetOptions) -> RigTake:
    model = p.model
    local = np.asarray(take.rotations, dtype=np.float64)
    pelvis = np.asarray(take.root_positions, dtype=np.float64)
    if options.root_motion == "IN_PLACE":
        local, pelvis = root.remove_travel(local, pelvis, axes=("X", "Z"))
    world = kinematics.world_rotations(local, model.parents)
    positions = kinematics.positions_from_world(model, world, pelvis)
    found = contacts.detect_contacts(positions, take.fps, model_legs(model))
    moved = transfer.transfer(p.calibration, world, positions)  # anchored to the floor
    target_world, root_pos, joints = (
        moved.world_rotations,
        moved.root_positions,
        moved.joint_positions,
    )
    flat = found.ankle & found.toe
    planting = options.pin_feet and options.root_motion != "IN_PLACE" and found.any
    if take.anchor_frame is not None:  # stands as its anchor pose alone would
        root_pos, joints = root_pos.copy(), joints.copy()
        _stand(p, take, positions, joints, root_pos)
    elif flat.any() and (
        planting or not any(retarget_planting.longer_foot(p, leg) for leg in (0, 1))
    ):
        # A longer foot stands on its flat feet only when planting lifts its swinging toes to
        # the model's height: without it, its toe skims the floor in every swing (stood by the
        # lowest joint, as the transfer stood it, its flat feet float instead).
        root_pos, joints = root_pos.copy(), joints.copy()
        _stand_on_flat_feet(p, positions, flat, joints, root_pos)
    if planting:
        target_world, root_pos = retarget_planting.plant_feet(
            p,
            target_world,
            root_pos,
            joints,
            positions,
            found,
            lift_toes=take.anchor_frame is None,
        )
    return _rig_take(p, target_world, root_pos, found, options)


def _stand(
    p: RigPlan,
    take: TakeMotion,
    positions: np.ndarray,
    joints: np.ndarray,
    root_pos: np.ndarray,
) -> None:
    """Stand a take on the floor (``joints`` and ``root_pos`` lifted in place): its lowest rig
    joint at its lowest model joint (``positions``), scaled, over the whole take, or on its
    ``anchor_frame`` alone when it has one (as that pose alone would stand)."""
    frames: int | slice = slice(None)
    if take.anchor_frame is not None and 0 <= take.anchor_frame < len(positions):
        frames = take.anchor_frame
    floor = float(positions[frames, ..., transfer.UP].min()) * p.calibration.scale
    lift = floor - float(joints[frames, ..., transfer.UP].min())
    root_pos[:, transfer.UP] += lift
    joints[..., transfer.UP] += lift


def _stand_on_flat_feet(
    p: RigPlan,
    positions: np.ndarray,
    flat: np.ndarray,
    joints: np.ndarray,
    root_pos: np.ndarray,
) -> None:
    """Stand a take on the floor by its flat feet (``joints`` and ``root_pos`` lifted in place):
    on the frames where a model foot is down at heel and toe (``flat`` (F, 2)), the rig's toe
    joint stands at the model's toe (scaled; its ankle at the model's where it has no toe), at the
    ``FLAT_FOOT_QUANTILE`` of the differences: a foot longer or lower than the model's dips its
    toe as the heel starts to rise within those frames, and standing by the lowest joint over
    the clip (its toe rolling off at toe-off) floated its flat feet."""
    legs = model_legs(p.model)
    gaps = []
    for leg in range(2):
        rig_toe = p.target_legs.toe[leg]
        has_toe = rig_toe != p.target_legs.ankle[leg]
        model_toe = legs.toe[leg] if has_toe else legs.ankle[leg]
        frames = flat[:, leg]
        gaps.append(positions[frames, model_toe, transfer.UP] * p.calibration.scale
                    - joints[frames, rig_toe, transfer.UP])  # fmt: skip
    lift = float(np.quantile(np.concatenate(gaps), FLAT_FOOT_QUANTILE))
    root_pos[:, transfer.UP] += lift
    joints[..., transfer.UP] += lift


def _rig_take(
    p: RigPlan,
    target_world: np.ndarray,
    root_pos: np.ndarray,
    found: contacts.Contacts,
    options: RetargetOptions,
) -> RigTake:
    yaw, ground = _root_frame(p, target_world, root_pos, options.root_motion)
    quats, names = _local_rotations(p, target_world, yaw, options.relax_fingers)
    location_bones, locations = _locations(p, root_pos, yaw, ground, options.root_motion)
    # Poles are keyed whenever IK controls are: a rig whose IK is always on (no switch) needs
    # them as much as one switched to IK.
    poles = options.key_ik and bool(p.poles)
    if options.key_ik and (p.ik or poles):  # where the hands and feet, knees and elbows go
        positions = transfer.pose_positions(p.target, target_world, root_pos)
    if options.key_ik and p.ik:
        ik_names, ik_quats, ik_locations = _ik_keys(p, target_world, positions, yaw, ground)
        quats = np.concatenate([quats, ik_quats], axis=1)
        names = (*names, *ik_names)
        locations = np.concatenate([locations, ik_locations], axis=1)
        location_bones = (*location_bones, *ik_names)
    if poles:
        pole_names, pole_locations = _pole_keys(p, target_world, positions, yaw, ground)
        locations = np.concatenate([locations, pole_locations], axis=1)
        location_bones = (*location_bones, *pole_names)
    if options.root_motion == "ROOT_BONE":
        top_rest = model_rest(p.rig)[1][p.top]
        top_local = rot.multiply(rot.multiply(rot.inverse(top_rest), yaw), top_rest)
        quats = np.concatenate([top_local[:, None], quats], axis=1)
        names = (p.rig.names[p.top], *names)
    return RigTake(
        bone_names=names,
        quaternions=rot.make_continuous(quats),
        location_bones=location_bones,
        locations=locations,
        world_rotations=target_world,
        root_positions=root_pos,
        target=p.target,
        contacts=found,
    )


def _root_frame(
    p: RigPlan, world: np.ndarray, root_pos: np.ndarray, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """(yaw (F, 4), ground point (F, 3)) of the rig's top bone, model axes."""
    frames = world.shape[0]
    heads, _ = model_rest(p.rig)
    top_head = heads[p.top]
    if mode != "ROOT_BONE":
        return np.broadcast_to(rot.IDENTITY, (frames, 4)).copy(), np.tile(top_head, (frames, 1))
    if p.top == p.bones[0]:
        raise RigError(
            f"root motion 'ROOT_BONE' needs a root bone above the Pelvis bone "
            f"{p.rig.names[p.bones[0]]!r}; this rig has none (use KEEP or IN_PLACE)",
            field="root_motion",
        )
    rest_pelvis = p.target.rotations[0]
    heading = root.unwrapped_heading(rot.multiply(world[:, 0], rot.inverse(rest_pelvis)))
    yaw = rot.yaw(heading - heading[0])
    ground = root_pos.copy()
    ground[:, transfer.UP] = top_head[transfer.UP]
    ground -= ground[0] * np.array([1.0, 0.0, 1.0]) - top_head * np.array([1.0, 0.0, 1.0])
    return yaw, ground


def _local_rotations(
    p: RigPlan, world: np.ndarray, yaw: np.ndarray, relax_fingers: bool
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Pose-bone rotations of the driven bones (all frames and bones in one product), then
    the fingers' constant relaxed pose."""
    target = p.target
    keyed = np.flatnonzero(p.mapped)
    parents = target.parents[keyed]
    rests = target.rotations
    # World rotation of each keyed bone's parent; above the Pelvis bone only the top's yaw.
    parent_world = world[:, np.maximum(parents, 0)]
    parent_rest = rests[np.maximum(parents, 0)]
    top = parents < 0
    parent_world[:, top] = yaw[:, None]
    parent_rest[top] = rot.IDENTITY
    chain = rot.multiply(rot.inverse(rests[keyed]), parent_rest)  # (K, 4)
    out = rot.multiply(chain, rot.multiply(rot.inverse(parent_world), world[:, keyed]))
    names = [target.names[t] for t in keyed]
    if relax_fingers:
        fingers = [n for n in p.fingers if n not in names]
        if fingers:
            constant = np.stack([p.fingers[n] for n in fingers])
            out = np.concatenate([out, np.broadcast_to(constant, (out.shape[0], *constant.shape))],
                                 axis=1)  # fmt: skip
            names += fingers
    return rot.normalize(out), tuple(names)


def _ik_keys(
    p: RigPlan, world: np.ndarray, positions: np.ndarray, yaw: np.ndarray, ground: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Each IK control rides its hand or foot rigidly: (names, rotations (F, K, 4), locations
    (F, K, 3)). ``positions``: the target joints (F, J, 3), model axes."""
    heads, rests = model_rest(p.rig)
    target = p.target
    names, quats, locations = [], [], []
    for bone, joint in p.ik:
        change = rot.multiply(world[:, joint], rot.inverse(target.rotations[joint]))
        head = positions[:, joint] + rot.rotate(change, heads[bone] - target.positions[joint])
        control = rot.multiply(change, rests[bone])
        quats.append(rot.multiply(rot.inverse(rests[bone]), rot.multiply(rot.inverse(yaw),
                                                                         control)))  # fmt: skip
        locations.append(_location(p, bone, head, yaw, ground))
        names.append(p.rig.names[bone])
    return tuple(names), np.stack(quats, axis=1), np.stack(locations, axis=1)


def _pole_keys(
    p: RigPlan, world: np.ndarray, positions: np.ndarray, yaw: np.ndarray, ground: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray]:
    """Each pole target in front of its knee (elbow), in the plane the model's limb bends in,
    so the rig's IK bends it the same way: (names, locations (F, K, 3)). ``positions``: the
    target joints (F, J, 3), model axes."""
    target = p.target
    heads = model_rest(p.rig)[0]
    names, locations = [], []
    for pole in p.poles:
        upper, middle, end = (positions[:, j] for j in pole.limb)
        rest = target.positions[list(pole.limb)]
        length = float(np.linalg.norm(np.diff(rest, axis=0), axis=-1).sum())
        bend = _off_line(middle - upper, end - upper)
        # A straight limb has no bend plane: the pole's rest side of the knee, turned with the
        # upper bone, stands in for it.
        change = rot.multiply(world[:, pole.limb[0]], rot.inverse(target.rotations[pole.limb[0]]))
        rest_side = heads[pole.bone] - target.positions[pole.limb[1]]
        front = _off_line(rot.rotate(change, rest_side), end - upper)
        bent = np.clip(np.linalg.norm(bend, axis=-1, keepdims=True) / (POLE_STRAIGHT * length),
                       0.0, 1.0)  # fmt: skip
        side = bent * _unit(bend) + (1.0 - bent) * _unit(front)
        head = middle + pole.distance * _unit(side)
        locations.append(_location(p, pole.bone, head, yaw, ground))
        names.append(p.rig.names[pole.bone])
    return tuple(names), np.stack(locations, axis=1)


def _off_line(vectors: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The part of each of ``vectors`` (F, 3) square to ``line`` (F, 3)."""
    along = _unit(line)
    return vectors - np.sum(vectors * along, axis=-1, keepdims=True) * along


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _location(
    p: RigPlan, bone: int, head: np.ndarray, yaw: np.ndarray, ground: np.ndarray
) -> np.ndarray:
    """Pose location (F, 3), armature units, putting ``bone``'s head at ``head`` (model axes,
    metres) when the bones above it only move with the top bone (its ``yaw`` and ``ground``)."""
    heads, _ = model_rest(p.rig)
    offset = rot.rotate(rot.inverse(yaw), head - ground) - (heads[bone] - heads[p.top])
    return offset @ _location_frame_inverse(p.rig, bone).T / p.rig.object_scale


def _locations(
    p: RigPlan, root_pos: np.ndarray, yaw: np.ndarray, ground: np.ndarray, mode: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """Pose locations (F, L, 3), armature units: the root-motion bone, and the top bone in
    ROOT_BONE mode. ``root_pos`` is where the Pelvis bone's head goes (model axes, metres)."""
    heads, _ = model_rest(p.rig)
    pelvis_bone = int(p.bones[0])
    t = p.translation
    if mode == "ROOT_BONE" and t == p.top:
        raise RigError(
            f"the root-motion bone {p.rig.names[t]!r} is the rig's root bone; with root motion "
            "'ROOT_BONE' it must be the Pelvis bone or a bone between them",
            field="translation_bone",
        )
    # Where T's head must go so the Pelvis bone's head lands on root_pos (T is rigid above it).
    head_t = root_pos - rot.rotate(yaw, heads[pelvis_bone] - heads[t])
    names, values = [p.rig.names[t]], [_location(p, t, head_t, yaw, ground)]
    if mode == "ROOT_BONE":
        top_loc = (ground - heads[p.top]) @ _location_frame_inverse(p.rig, p.top).T
        names.append(p.rig.names[p.top])
        values.append(top_loc / p.rig.object_scale)
    return tuple(names), np.stack(values, axis=1)
