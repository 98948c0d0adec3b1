"""What retargeting is judged by, and the helpers every retarget test and benchmark shares:
the real motion-capture clips, a take played on a rig and read back as Blender poses it, and
the figures (direction error, hands and feet trajectories, foot skate, rotation steps).

Hands and feet are judged against the model's trajectories *scaled per limb chain by the rig's
own segment lengths* (``chain_cm``): along the rig's own chain from its Pelvis bone down to the
wrist or ankle (pelvis → spine → chest → collar → upper arm → forearm → hand; pelvis → thigh →
shin → foot; through whatever bones the rig has between them), each segment between mapped
bones (followers included) is the rig's own, pointing along the model's segment where the
retarget aims it (limbs, spine, neck), or the rig's rest offset turned by its model joint's
change from rest where the body fans out (pelvis to hips and spine, chest to collars). That is
exactly the motion a body of other proportions can make with the model's directions. The raw
figure against the model scaled by leg length alone is reported beside it: it cannot hold with
exact directions when the rig's arm, spine or leg ratios differ from the model's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blender_addon import rig_reader, rig_takes
from blender_addon.core import retarget
from blender_addon.core.motion import bvh_import, contacts, kinematics, transfer
from blender_addon.core.motion import rotations as rot
from blender_addon.core.motion.skeletons import model_legs
from blender_addon.core.rig import C

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
CLIPS = tuple(sorted(p.name for p in MOCAP.glob("*.bvh")))
MAX_FRAMES = 150  # enough for a step cycle; Blender evaluates every frame
HANDS, FEET = ("L_Wrist", "R_Wrist"), ("L_Ankle", "R_Ankle")


def clip_motion(name: str, max_frames: int = MAX_FRAMES) -> rig_takes.Motion:
    """A bundled CMU clip read with the add-on's own BVH import, its first ``max_frames``."""
    take = bvh_import.load_bvh_take(MOCAP / name)
    frames = min(max_frames, take.rotations.shape[0])
    return rig_takes.Motion(name, take.skeleton, take.rotations[:frames],
                            take.root_positions[:frames], take.fps)  # fmt: skip


def fresh_scene() -> Any:
    """An empty file at 30 fps with the add-on registered (benchmarks, outside pytest)."""
    import bpy

    import blender_addon

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "hy_motion"):
        blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps = 30
    return scene


def generated_rigify() -> Iterator[Any]:
    """The rig Blender's own Rigify generates, in a fresh file (a test module's fixture yields
    from this; the ``scene`` fixture resets the file, so such tests run after it)."""
    import addon_utils
    import bpy

    from tests.addon import rigs

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = 30
    _, rig = rigs.rigify_rigs(bpy.context.scene)
    yield rig
    addon_utils.disable("rigify", default_set=True)


def evaluated(obj: Any, names: tuple[str, ...], frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Bone heads (F, J, 3) and world rotations (F, J, 4) of ``obj`` as Blender poses it,
    model axes, relative to the object's origin, frame 1..F."""
    import bpy

    scene = bpy.context.scene
    heads, quats = [], []
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        world = np.array(obj.matrix_world)
        mats = np.array([np.array(obj.pose.bones[n].matrix) for n in names])  # armature space
        heads.append((mats[:, :3, 3] @ world[:3, :3].T) @ C)
        rotation = world[:3, :3] / np.linalg.norm(world[:3, 0])
        frames_rot = np.einsum("ab,jbc->jac", C.T @ rotation, mats[:, :3, :3])
        frames_rot /= np.linalg.norm(frames_rot, axis=-2, keepdims=True)
        quats.append(rot.from_matrix(frames_rot))
    return np.array(heads), rot.make_continuous(np.array(quats))


def turn_mapped_bones(scene: Any, obj: Any, frames: list[int], max_deg: float = 25.0) -> None:
    """Key every mapped bone of ``obj`` turned by a random angle up to ``max_deg`` about a
    random axis at ``frames`` (seeded): poses no retarget makes."""
    rng = np.random.default_rng(11)
    for frame in frames:
        scene.frame_set(frame)
        for bone in rig_takes.rig_mapping(obj).joints.values():
            pose_bone = obj.pose.bones[bone]
            axis = rng.normal(size=3)
            angle = np.radians(rng.uniform(0, max_deg))
            turn = rot.from_axis_angle(axis / np.linalg.norm(axis), angle)
            pose_bone.rotation_quaternion = rot.multiply(
                np.array(pose_bone.rotation_quaternion), turn
            ).tolist()
            pose_bone.keyframe_insert("rotation_quaternion", frame=frame)


def generate_from_pose_to_key(scene: Any, start_frame: int, end_frame: int) -> Any:
    """Press Generate with Start: Current Pose at ``start_frame`` and End on Pose at
    ``end_frame`` (a 2 s take, 4 steps, one candidate); returns the new take."""
    import bpy

    from blender_addon import directing_ui
    from tests.addon.test_addon_daemon import set_panel

    scene.frame_set(start_frame)
    options = directing_ui.direction(scene)
    options.start, options.end_on_pose, options.end_frame = "CURRENT", True, end_frame
    set_panel(scene, duration_s=2.0, steps=4, candidates=1)
    assert bpy.ops.hy_motion.generate() == {"FINISHED"}, scene.hy_motion.status_message
    return scene.hy_motion.takes[-1]


@dataclass(frozen=True)
class Figures:
    median_deg: float  # mapped bone segments' world directions vs the model's
    max_deg: float
    hands_cm: float  # wrists vs the model scaled per limb chain (see the module docstring)
    feet_cm: float  # ankles, the same
    hands_raw_cm: float  # wrists vs the model scaled by leg length, relative to the pelvis
    feet_raw_cm: float  # ankles, the same
    skate_model: float  # toe skate fraction of the model's motion (scaled thresholds)
    skate_rig: float
    slide_model_m: float  # summed toe slide on skating frames, model
    slide_rig_m: float  # the same on the rig, divided by the leg-length scale
    plant_drift_cm: float  # summed slip of a planted rig foot beyond the model's, worst contact
    max_step_deg: float  # largest frame-to-frame turn of any keyed bone (flips show here)


@dataclass(frozen=True, eq=False)
class Played:
    """A take as the rig played it, beside the model's motion it came from."""

    plan: retarget.RigPlan
    motion: rig_takes.Motion
    heads: np.ndarray  # (F, J, 3) the plan's target joints as posed, model axes
    world: np.ndarray  # (F, J, 4)

    @property
    def model_positions(self) -> np.ndarray:
        m = self.motion
        return kinematics.joint_positions(m.skeleton, m.rotations, m.root_positions)

    @property
    def model_world(self) -> np.ndarray:
        return kinematics.world_rotations(self.motion.rotations, self.motion.skeleton.parents)

    def figures(self) -> Figures:
        return figures(self.plan, self.model_positions, self.heads, self.world, self.motion.fps,
                       self.model_world)  # fmt: skip


def play(obj: Any, motion: rig_takes.Motion, options: retarget.RetargetOptions) -> Played:
    """Write ``motion`` as a take on ``obj``, play it, and read back what Blender poses."""
    (action,) = rig_takes.retarget_actions(obj, [motion], options)
    rig_takes.play(obj, action)
    plan = retarget.plan(motion.skeleton, rig_reader.rig_bones(obj), rig_takes.rig_mapping(obj))
    heads, world = evaluated(obj, plan.target.names, motion.rotations.shape[0])
    return Played(plan, motion, heads, world)


def planned(plan: retarget.RigPlan, motion: rig_takes.Motion,
            options: retarget.RetargetOptions) -> Played:  # fmt: skip
    """The take as the retarget plans it, without Blender (benchmarks over many rigs)."""
    take = retarget.retarget(plan, motion.rotations, motion.root_positions, motion.fps, options)
    return Played(plan, motion, take.joint_positions, take.world_rotations)


def figures(
    plan: retarget.RigPlan,
    model_positions: np.ndarray,
    rig_positions: np.ndarray,
    rig_world: np.ndarray,
    fps: float,
    model_world: np.ndarray,
) -> Figures:
    """The judged figures of a take: ``rig_positions``/``rig_world`` (F, J, ...) of the plan's
    target joints, the model's joints (F, 22, ...), model axes."""
    cal = plan.calibration
    errors = transfer.bone_direction_errors(model_positions, rig_positions, cal.aims, cal.align)
    chains = {limb: chain_cm(plan, model_positions, model_world, rig_positions, chain)
              for limb, chain in (("hands", HANDS), ("feet", FEET))}  # fmt: skip
    model_thresholds = contacts.ContactThresholds()
    rig_thresholds = model_thresholds.scaled(plan.target.leg_length)
    skate_model = contacts.foot_skate(model_positions, fps, model_legs(plan.model),
                                      model_thresholds)  # fmt: skip
    skate_rig = contacts.foot_skate(rig_positions, fps, plan.target_legs, rig_thresholds)
    keyed = [plan.target.names.index(b) for b in plan.mapping.joints.values()]
    steps = rot.angle_between(rig_world[1:, keyed], rig_world[:-1, keyed])
    return Figures(
        median_deg=float(np.median(errors)), max_deg=float(errors.max()),
        hands_cm=chains["hands"][0], feet_cm=chains["feet"][0],
        hands_raw_cm=chains["hands"][1], feet_raw_cm=chains["feet"][1],
        skate_model=skate_model.fraction, skate_rig=skate_rig.fraction,
        slide_model_m=skate_model.distance_m, slide_rig_m=skate_rig.distance_m / cal.scale,
        plant_drift_cm=plant_drift_cm(plan, model_positions, rig_positions, fps),
        max_step_deg=float(np.degrees(steps.max())),
    )  # fmt: skip


def chain_cm(
    plan: retarget.RigPlan,
    model_positions: np.ndarray,
    model_world: np.ndarray,
    rig_positions: np.ndarray,
    ends: tuple[str, str],
) -> tuple[float, float]:
    """(per-chain scaled, leg-length scaled) worst distance in cm over both ``ends`` (model
    joints: wrists or ankles) and every frame between the rig's end joint relative to its
    Pelvis bone and the model's (module docstring). The chain is the rig's own: the mapped
    bones (and followers) on its way from the Pelvis bone down to the end."""
    cal = plan.calibration
    names = plan.model.joint_names
    target = plan.target
    aimed = {(t, c) for t, c, _, _ in cal.aims}
    align_inv = rot.inverse(cal.align)
    worst_chain = worst_raw = 0.0
    for end in ends:
        path = [target.names.index(plan.mapping.joints[end])]
        while path[-1] != 0:
            path.append(int(target.parents[path[-1]]))
        chain = [t for t in reversed(path) if cal.mapping[t] >= 0]
        expected = np.zeros((model_positions.shape[0], 3))
        for t, child in itertools.pairwise(chain):
            rest = target.positions[child] - target.positions[t]
            s, s_child = cal.mapping[t], cal.mapping[child]
            if (t, child) in aimed:  # along the model's segment, the rig's length
                along = rot.rotate(cal.align, model_positions[:, s_child] - model_positions[:, s])
                length = float(np.linalg.norm(rest))
                expected += length * along / np.linalg.norm(along, axis=-1, keepdims=True)
            else:  # a rigid part of the body: the rig's own offset, turned as the model turns
                turn = rot.multiply(rot.multiply(cal.align, model_world[:, s]), align_inv)
                expected += rot.rotate(turn, rest)
        actual = rig_positions[:, chain[-1]] - rig_positions[:, 0]
        model_end, model_pelvis = model_positions[:, names.index(end)], model_positions[:, 0]
        raw = cal.scale * rot.rotate(cal.align, model_end - model_pelvis)
        worst_chain = max(worst_chain, float(np.linalg.norm(actual - expected, axis=-1).max()))
        worst_raw = max(worst_raw, float(np.linalg.norm(actual - raw, axis=-1).max()))
    return worst_chain * 100, worst_raw * 100


def plant_drift_cm(
    plan: retarget.RigPlan, model_positions: np.ndarray, rig_positions: np.ndarray, fps: float
) -> float:
    """Worst summed slip in cm, over the model's foot contacts, of the rig's foot beyond the
    model's own motion (turned and scaled): per frame the smaller of the ankle's and the toe's
    step beyond the model's ankle's and toe's (planting anchors a foot at one of the two; a
    foot of another shape cannot follow both)."""
    cal = plan.calibration
    legs = model_legs(plan.model)
    found = contacts.detect_contacts(model_positions, fps, legs)
    worst = 0.0
    for leg in range(2):
        slips = []
        for model_joint, rig_joint in ((legs.ankle[leg], plan.target_legs.ankle[leg]),
                                       (legs.toe[leg], plan.target_legs.toe[leg])):  # fmt: skip
            model_step = np.diff(cal.scale * rot.rotate(cal.align, model_positions[:, model_joint]),
                                 axis=0)  # fmt: skip
            rig_step = np.diff(rig_positions[:, rig_joint], axis=0)
            slips.append(np.linalg.norm(rig_step - model_step, axis=-1))
        slip = np.minimum(*slips)
        for start, end in contacts.runs(found.foot[:, leg]):
            worst = max(worst, float(slip[start : end - 1].sum()))
    return worst * 100
