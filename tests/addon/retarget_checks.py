"""The figures retargeting is judged by, measured on a rig posed by Blender (bpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blender_addon.core import retarget
from blender_addon.core.motion import contacts, transfer
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import model_legs
from blender_addon.core.rig import C


def evaluated(obj: Any, names: tuple[str, ...], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Bone heads (F, J, 3) and world rotations (F, J, 4) of ``obj`` as Blender poses it,
    model axes, relative to the object's origin, frame 1..F."""
    import bpy

    scene = bpy.context.scene
    heads, quats = [], []
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        world = np.array(obj.matrix_world)
        origin = world[:3, 3]
        mats = np.array([np.array(obj.pose.bones[n].matrix) for n in names])  # armature space
        heads.append((mats[:, :3, 3] @ world[:3, :3].T) @ C)
        rotation = world[:3, :3] / np.linalg.norm(world[:3, 0])
        frames_rot = np.einsum("ab,jbc->jac", C.T @ rotation, mats[:, :3, :3])
        frames_rot /= np.linalg.norm(frames_rot, axis=-2, keepdims=True)
        quats.append(rot.from_matrix(frames_rot))
        del origin
    return np.array(heads), rot.make_continuous(np.array(quats))


@dataclass(frozen=True)
class Figures:
    median_deg: float
    max_deg: float
    feet_cm: float  # ankles relative to their hip, vs the scaled model
    hands_cm: float  # wrists relative to their shoulder, vs the scaled model
    skate_model: float  # toe skate fraction of the model's motion (scaled thresholds)
    skate_rig: float
    slide_model_m: float  # summed toe slide on skating frames, model
    slide_rig_m: float  # the same on the rig, divided by the leg-length scale
    max_step_deg: float  # largest frame-to-frame turn of any keyed bone (flips show here)


def figures(
    plan: retarget.RigPlan,
    model_positions: np.ndarray,
    rig_positions: np.ndarray,
    rig_world: np.ndarray,
    fps: float,
) -> Figures:
    cal = plan.calibration
    segments = [(t, c, s, sc) for t, c, s, sc in cal.aims]
    errors = transfer.bone_direction_errors(model_positions, rig_positions, segments, cal.align)
    model = plan.model
    legs = model_legs(model)
    names = model.joint_names

    def limb_error(pairs: list[tuple[int, int, int, int]]) -> float:
        worst = 0.0
        for t_root, t_end, s_root, s_end in pairs:
            ours = rig_positions[:, t_end] - rig_positions[:, t_root]
            theirs = rot.rotate(cal.align, model_positions[:, s_end] - model_positions[:, s_root])
            worst = max(worst, float(np.linalg.norm(ours - cal.scale * theirs, axis=-1).max()))
        return worst * 100

    def target(joint: str) -> int:
        return plan.target.names.index(plan.mapping.joints[joint])

    feet = [(target(f"{s}_Hip"), target(f"{s}_Ankle"), names.index(f"{s}_Hip"),
             names.index(f"{s}_Ankle")) for s in "LR"]  # fmt: skip
    hands = [(target(f"{s}_Shoulder"), target(f"{s}_Wrist"), names.index(f"{s}_Shoulder"),
              names.index(f"{s}_Wrist")) for s in "LR"]  # fmt: skip
    model_thresholds = contacts.ContactThresholds()
    rig_thresholds = model_thresholds.scaled(plan.target.leg_length)
    skate_model = contacts.foot_skate(model_positions, fps, legs, model_thresholds)
    skate_rig = contacts.foot_skate(rig_positions, fps, plan.target_legs, rig_thresholds)
    keyed = [plan.target.names.index(b) for b in plan.mapping.joints.values()]
    steps = rot.angle_between(rig_world[1:, keyed], rig_world[:-1, keyed])
    return Figures(
        median_deg=float(np.median(errors)), max_deg=float(errors.max()),
        feet_cm=limb_error(feet), hands_cm=limb_error(hands),
        skate_model=skate_model.fraction, skate_rig=skate_rig.fraction,
        slide_model_m=skate_model.distance_m, slide_rig_m=skate_rig.distance_m / cal.scale,
        max_step_deg=float(np.degrees(steps.max())),
    )  # fmt: skip
