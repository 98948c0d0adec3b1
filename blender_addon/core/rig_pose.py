"""The artist's rig pose read back onto the model skeleton: the inverse of retargeting (numpy).

Retargeting (``retarget.plan`` + ``motion.transfer``) gives each mapped rig bone t its model
joint s's change from rest, turned by the yaw-only facing alignment ``align``; aims limb
segments at the model's; carries the pelvis by the leg-length ratio ``scale``; and lifts the
clip so its lowest rig joint sits at its lowest model joint (scaled). Read backwards, per frame:

    M_s = align⁻¹ · (W_t · W_t_rest⁻¹) · align            (world rotations, model rest = I)

then each aimed model segment is swung (minimal arc) onto the rig segment's direction turned by
align⁻¹, so the forward aim puts the rig bone back where it was; a model joint no bone plays
keeps its rest pose relative to its parent. The pelvis goes where the rig's Pelvis bone is:
``align⁻¹ · (head − lift · up) / scale``, ``lift`` being the ground anchor: the height the
forward adds to the scaled model, which for one pose alone is (scaled model's lowest joint below
its pelvis) − (rig's lowest joint below its Pelvis bone). Poses read for one generation share
one lift (the first pose's), so they stand on one floor; the take made from them is placed by
the same rule at its first given pose (``retarget.TakeMotion.anchor_frame``).

Rig poses are world-aligned as in :class:`~.rig_bones.RigBones`: object rotation and uniform
scale applied, its location not (so poses and takes are relative to where the rig object is).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .motion import kinematics, transfer
from .motion import rotations as rot
from .protocol import constraints as wire
from .retarget import RigPlan
from .rig import C
from .rig_bones import RigBones

UP = transfer.UP


@dataclass(frozen=True, eq=False)
class ModelPoses:
    """Rig poses on the model skeleton: wire rotations (F, 22, 4), pelvis positions (F, 3) in
    model metres, and the ground anchor ``lift`` (rig metres) they were read with."""

    rotations: np.ndarray
    root_positions: np.ndarray
    lift: float


def posed_bones(rig: RigBones, matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Armature-space pose matrices (F, N, 4, 4) of ``rig``'s bones (``PoseBone.matrix``, in
    ``rig.names`` order) -> bone heads (F, N, 3) in metres and world rotations (F, N, 4),
    model axes, world-aligned."""
    matrices = np.asarray(matrices, dtype=np.float64)
    axes = matrices[..., :3, :3]
    axes = axes / np.linalg.norm(axes, axis=-2, keepdims=True)  # a pose scale is not a turn
    world = np.einsum("ab,fnbc->fnac", C.T @ rig.object_rotation, axes)
    heads = matrices[..., :3, 3] @ (rig.object_rotation * rig.object_scale).T @ C
    return heads, rot.from_matrix(world)


def model_poses(
    plan: RigPlan, heads: np.ndarray, world: np.ndarray, lift: float | None = None
) -> ModelPoses:
    """Posed rig bones (``posed_bones``: heads (F, N, 3), rotations (F, N, 4)) -> model poses.
    ``lift``: the ground anchor to read with; None takes the first pose's own."""
    cal, model = plan.calibration, plan.model
    bone_world = np.asarray(world, dtype=np.float64)[:, plan.bones]  # (F, J_target, 4)
    bone_heads = np.asarray(heads, dtype=np.float64)[:, plan.bones]
    frames = bone_world.shape[0]
    align_inv = rot.inverse(cal.align)
    played = {model.joint_names.index(j): plan.target.names.index(b)
              for j, b in plan.mapping.joints.items()}  # fmt: skip
    model_world = np.empty((frames, model.joint_count, 4))
    for s in range(model.joint_count):  # parents first
        t = played.get(s)
        if t is None:
            parent = int(model.parents[s])
            model_world[:, s] = model_world[:, parent] if parent >= 0 else rot.IDENTITY
            continue
        change = rot.multiply(bone_world[:, t], rot.inverse(cal.target.rotations[t]))
        model_world[:, s] = rot.multiply(rot.multiply(align_inv, change), cal.align)
    rest = model.rest_positions.astype(np.float64)
    for t, t_child, s, s_child in cal.aims:
        current = rot.rotate(model_world[:, s], rest[s_child] - rest[s])
        wanted = rot.rotate(align_inv, bone_heads[:, t_child] - bone_heads[:, t])
        model_world[:, s] = rot.multiply(rot.between(current, wanted), model_world[:, s])
    model_world = rot.make_continuous(rot.normalize(model_world))
    if lift is None:
        lift = pose_lift(plan, model_world[0])
    carrier = bone_heads[:, cal.carrier].copy()
    carrier[:, UP] -= lift
    pelvis = rot.rotate(align_inv, carrier) / cal.scale
    local = rot.make_continuous(kinematics.local_rotations(model_world, model.parents))
    return ModelPoses(rotations=local, root_positions=pelvis, lift=float(lift))


def pose_lift(plan: RigPlan, model_world: np.ndarray) -> float:
    """The ground anchor of one model pose (world rotations (22, 4)) on the rig: how far above
    the scaled model the forward transfer puts the rig's Pelvis bone (rig metres)."""
    model = plan.model
    world = np.asarray(model_world, dtype=np.float64)[None]
    positions = kinematics.positions_from_world(model, world, np.zeros((1, 3)))
    moved = transfer.transfer(plan.calibration, world, positions)  # the pelvis at the origin
    return float(moved.carrier_positions[0, UP])


def placed_lift(plan: RigPlan, rig_root_positions: np.ndarray, root_positions: np.ndarray) -> float:
    """The ground anchor a retargeted take was placed with: rig Pelvis bone height minus the
    scaled model pelvis height (``RigTake.root_positions`` and the model's, first frame)."""
    return float(rig_root_positions[0, UP] - plan.calibration.scale * root_positions[0, UP])


@dataclass(frozen=True, eq=False)
class Placement:
    """Where a rig stands in its scene, for ground paths given there (a curve, a batch path):
    the calibration's facing turn and leg-length scale, and the rig object's ground position."""

    align: np.ndarray  # (4,) yaw-only, model axes
    scale: float
    origin: np.ndarray  # (2,) the rig object's location on the ground, model (x, z)

    @classmethod
    def of(cls, plan: RigPlan, location: np.ndarray) -> Placement:
        """``location``: the rig object's world position (Blender axes)."""
        ground = np.asarray(location, dtype=np.float64) @ C
        return cls(plan.calibration.align, plan.calibration.scale, ground[[0, 2]])

    def path_to_model(self, points: np.ndarray) -> np.ndarray:
        """Scene ground points (P, 2) in model (x, z), or (P, 3) with a heading (radians, model
        sense) -> where the model's pelvis goes (and faces) for the rig's Pelvis bone to go
        there: the inverse of the forward's turn and scale about the rig object."""
        out = np.array(points, dtype=np.float64)
        offset = out[:, :2] - self.origin
        ground = np.stack([offset[:, 0], np.zeros(len(out)), offset[:, 1]], axis=-1)
        model = rot.rotate(rot.inverse(self.align), ground) / self.scale
        out[:, 0], out[:, 1] = model[:, 0], model[:, 2]
        if out.shape[1] == 3:
            out[:, 2] -= float(rot.heading(self.align))
        return out

    def constraints(self, constraints: wire.Constraints) -> wire.Constraints:
        """``constraints`` with their path (given in the rig's scene) moved to the model's."""
        if not constraints.has_path:
            return constraints
        assert constraints.path_points is not None
        points = self.path_to_model(constraints.path_points).astype(np.float32)
        return replace(constraints, path_points=points)
