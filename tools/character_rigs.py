"""Humanoid rigs for every convention the add-on maps, from their real bone names and hierarchies.

The demo's characters and the test rigs (one builder for both).

Joint positions come from the model's own rest skeleton (hymotion_spec.md Appendix B) reshaped
to other bodies: a child and a tall adult (different leg/torso proportions), in a T-pose or an
A-pose (arms 45° down), with each tool's extra bones (twist, IK helpers, end bones, fingers)
and its own bone rolls. ``rig_bones`` gives the bpy-free description; ``build_rig`` (bpy) makes
the armature from the same description, so both paths test the same rig.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from blender_addon.core.motion.skeletons import MODEL_JOINTS, MODEL_PARENTS, MODEL_REST
from blender_addon.core.rig import C
from blender_addon.core.rig_bones import RigBones, sorted_bones
from blender_addon.core.rig_conventions import SMPL_NAMES

# (bone, parent, head keypoint, tail keypoint); "{..}" expand per side, see _expand.
Spec = list[tuple[str, str | None, str, str]]
_JOINT_KEYS = {
    "Pelvis": "pelvis", "L_Hip": "hip_l", "R_Hip": "hip_r", "Spine1": "spine1", "L_Knee": "knee_l",
    "R_Knee": "knee_r", "Spine2": "spine2", "L_Ankle": "ankle_l", "R_Ankle": "ankle_r",
    "Spine3": "spine3", "L_Foot": "toe_l", "R_Foot": "toe_r", "Neck": "neck",
    "L_Collar": "collar_l", "R_Collar": "collar_r", "Head": "head", "L_Shoulder": "shoulder_l",
    "R_Shoulder": "shoulder_r", "L_Elbow": "elbow_l", "R_Elbow": "elbow_r", "L_Wrist": "wrist_l",
    "R_Wrist": "wrist_r",
}  # fmt: skip
_FINGERS = ("index", "middle", "pinky", "thumb")


@dataclass(frozen=True)
class Body:
    """A body shape: overall size, legs relative to the torso, arm pose."""

    name: str
    scale: float = 1.0
    legs: float = 1.0
    a_pose: bool = False


ADULT_T = Body("adult T-pose")
TALL_A = Body("tall adult A-pose", scale=1.12, legs=1.08, a_pose=True)
CHILD_T = Body("child T-pose", scale=0.68, legs=0.88)
CHILD_A = Body("child A-pose", scale=0.68, legs=0.88, a_pose=True)


def keypoints(body: Body) -> dict[str, np.ndarray]:
    """Named points of ``body`` in Blender space (Z up, facing -Y), feet on the floor."""
    joints = np.asarray(MODEL_REST, dtype=np.float64) @ C.T
    joints[:, 2] -= joints[:, 2].min() - 0.09  # ankles 9 cm above the floor
    p = {key: joints[MODEL_JOINTS.index(j)] for j, key in _JOINT_KEYS.items()}
    forward = np.array([0.0, -1.0, 0.0])
    p["floor"] = np.zeros(3)
    p["head_top"] = p["head"] + [0.0, 0.0, 0.2]
    p["spine0"] = 0.5 * (p["pelvis"] + p["spine1"])
    p["spine2b"] = 0.5 * (p["spine2"] + p["spine3"])
    p["spine3b"] = 0.5 * (p["spine3"] + p["neck"])
    p["neck2"] = 0.5 * (p["neck"] + p["head"])
    for s in "lr":
        p[f"toe_end_{s}"] = p[f"toe_{s}"] + 0.06 * forward
        p[f"heel_{s}"] = p[f"ankle_{s}"] + [0.0, 0.06, -0.08]
        arm = p[f"wrist_{s}"] - p[f"elbow_{s}"]
        arm /= np.linalg.norm(arm)
        p[f"hand_end_{s}"] = p[f"wrist_{s}"] + 0.18 * arm
        for k, finger in enumerate(_FINGERS):
            base = p[f"wrist_{s}"] + 0.09 * arm + (0.035 - 0.02 * k) * -forward
            for j in range(4):
                p[f"{finger}{j + 1}_{s}"] = base + 0.03 * j * arm
        for name, a, b in (
            ("thigh", "hip", "knee"),
            ("calf", "knee", "ankle"),
            ("upperarm", "shoulder", "elbow"),
            ("forearm", "elbow", "wrist"),
        ):
            for f in (0.33, 0.5, 0.66):
                p[f"{name}{int(f * 100)}_{s}"] = (1 - f) * p[f"{a}_{s}"] + f * p[f"{b}_{s}"]
        p[f"pelvis_side_{s}"] = p[f"hip_{s}"] + [0.0, 0.0, 0.08]
    return _reshape(p, body)


def _reshape(p: dict[str, np.ndarray], body: Body) -> dict[str, np.ndarray]:
    stems = ("hip", "knee", "ankle", "toe", "heel", "thigh33", "thigh50", "thigh66", "calf33",
             "calf50", "calf66")  # fmt: skip
    legs = {k for k in p if k.split("_")[0] in stems}
    pelvis = p["pelvis"].copy()
    leg_scale = body.scale * body.legs  # legs and feet keep their own proportions
    new_pelvis = pelvis * leg_scale
    out = {}
    for key, point in p.items():
        if key in legs or key == "floor":
            out[key] = point * leg_scale
        else:
            out[key] = (point - pelvis) * body.scale + new_pelvis
    if body.a_pose:
        for s, sign in (("l", 1.0), ("r", -1.0)):
            pivot = out[f"shoulder_{s}"].copy()
            turn = _about_y(sign * np.pi / 4)
            for key in list(out):
                if key.endswith(f"_{s}") and _in_arm(key):
                    out[key] = pivot + turn @ (out[key] - pivot)
    return out


def _in_arm(key: str) -> bool:
    stem = key.rsplit("_", 1)[0]
    return stem in ("shoulder", "elbow", "wrist", "hand_end") or stem.startswith(
        ("upperarm", "forearm", *_FINGERS)
    )


def _about_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _fingers(prefix: str, parent: str, names: dict[str, str]) -> Spec:
    out: Spec = []
    for finger in _FINGERS:
        above = parent
        for j in range(1, 4):
            bone = prefix.format(f=names[finger], j=j)
            out.append((bone, above, f"{finger}{j}_{{k}}", f"{finger}{j + 1}_{{k}}"))
            above = bone
    return out


def _expand(spec: Spec, sides: tuple[dict[str, str], dict[str, str]]) -> Spec:
    out: Spec = []
    for bone, parent, head, tail in spec:
        if "{" not in bone + head:
            out.append((bone, parent, head, tail))
            continue
        for words in sides:
            out.append(
                (bone.format(**words), parent.format(**words) if parent else None,
                 head.format(**words), tail.format(**words))
            )  # fmt: skip
    return out


_LR = ({"Side": "Left", "s": "l", "S": "L", "k": "l"},
       {"Side": "Right", "s": "r", "S": "R", "k": "r"})  # fmt: skip


def _mixamo(prefix: str = "mixamorig:") -> Spec:
    m = prefix
    spec: Spec = [
        (f"{m}Hips", None, "pelvis", "spine1"),
        (f"{m}Spine", f"{m}Hips", "spine1", "spine2"),
        (f"{m}Spine1", f"{m}Spine", "spine2", "spine3"),
        (f"{m}Spine2", f"{m}Spine1", "spine3", "neck"),
        (f"{m}Neck", f"{m}Spine2", "neck", "head"),
        (f"{m}Head", f"{m}Neck", "head", "head_top"),
        (f"{m}HeadTop_End", f"{m}Head", "head_top", "head_top+"),
        (m + "{Side}UpLeg", f"{m}Hips", "hip_{k}", "knee_{k}"),
        (m + "{Side}Leg", m + "{Side}UpLeg", "knee_{k}", "ankle_{k}"),
        (m + "{Side}Foot", m + "{Side}Leg", "ankle_{k}", "toe_{k}"),
        (m + "{Side}ToeBase", m + "{Side}Foot", "toe_{k}", "toe_end_{k}"),
        (m + "{Side}Toe_End", m + "{Side}ToeBase", "toe_end_{k}", "toe_end_{k}+"),
        (m + "{Side}Shoulder", f"{m}Spine2", "collar_{k}", "shoulder_{k}"),
        (m + "{Side}Arm", m + "{Side}Shoulder", "shoulder_{k}", "elbow_{k}"),
        (m + "{Side}ForeArm", m + "{Side}Arm", "elbow_{k}", "wrist_{k}"),
        (m + "{Side}Hand", m + "{Side}ForeArm", "wrist_{k}", "hand_end_{k}"),
    ]
    fingers = {"index": "Index", "middle": "Middle", "pinky": "Pinky", "thumb": "Thumb"}
    spec += _fingers(m + "{{Side}}Hand{f}{j}", m + "{Side}Hand", fingers)
    return _expand(spec, _LR)


def _ue(five: bool) -> Spec:
    spines = ["spine_01", "spine_02", "spine_03", "spine_04", "spine_05"] if five else [
        "spine_01", "spine_02", "spine_03"]  # fmt: skip
    points = ["spine1", "spine2", "spine2b", "spine3", "spine3b", "neck"] if five else [
        "spine1", "spine2", "spine3", "neck"]  # fmt: skip
    spec: Spec = [("root", None, "floor", "floor+"), ("pelvis", "root", "pelvis", "spine1")]
    above = "pelvis"
    for k, name in enumerate(spines):
        spec.append((name, above, points[k], points[k + 1]))
        above = name
    chest = above
    if five:
        spec += [("neck_01", chest, "neck", "neck2"), ("neck_02", "neck_01", "neck2", "head"),
                 ("head", "neck_02", "head", "head_top")]  # fmt: skip
    else:
        spec += [("neck_01", chest, "neck", "head"), ("head", "neck_01", "head", "head_top")]
    spec += [
        ("thigh_{s}", "pelvis", "hip_{k}", "knee_{k}"),
        ("thigh_twist_01_{s}", "thigh_{s}", "thigh50_{k}", "knee_{k}"),
        ("calf_{s}", "thigh_{s}", "knee_{k}", "ankle_{k}"),
        ("calf_twist_01_{s}", "calf_{s}", "calf50_{k}", "ankle_{k}"),
        ("foot_{s}", "calf_{s}", "ankle_{k}", "toe_{k}"),
        ("ball_{s}", "foot_{s}", "toe_{k}", "toe_end_{k}"),
        ("clavicle_{s}", chest, "collar_{k}", "shoulder_{k}"),
        ("upperarm_{s}", "clavicle_{s}", "shoulder_{k}", "elbow_{k}"),
        ("upperarm_twist_01_{s}", "upperarm_{s}", "upperarm33_{k}", "elbow_{k}"),
        ("lowerarm_{s}", "upperarm_{s}", "elbow_{k}", "wrist_{k}"),
        ("lowerarm_twist_01_{s}", "lowerarm_{s}", "forearm50_{k}", "wrist_{k}"),
        ("hand_{s}", "lowerarm_{s}", "wrist_{k}", "hand_end_{k}"),
        ("ik_foot_{s}", "ik_foot_root", "ankle_{k}", "toe_{k}"),
        ("ik_hand_{s}", "ik_hand_gun", "wrist_{k}", "hand_end_{k}"),
    ]
    if five:
        spec += [
            ("upperarm_twist_02_{s}", "upperarm_{s}", "upperarm66_{k}", "elbow_{k}"),
            ("lowerarm_twist_02_{s}", "lowerarm_{s}", "forearm66_{k}", "wrist_{k}"),
        ]
    spec += [("ik_foot_root", "root", "floor", "floor+"), ("ik_hand_root", "root", "floor",
             "floor+"), ("ik_hand_gun", "ik_hand_root", "wrist_r", "hand_end_r")]  # fmt: skip
    names = {"index": "index", "middle": "middle", "pinky": "pinky", "thumb": "thumb"}
    spec += _fingers("{f}_0{j}_{{s}}", "hand_{s}", names)
    return _expand(spec, _LR)


def _rigify_def(prefix: str) -> Spec:
    d = prefix
    spec: Spec = [
        (f"{d}spine", None, "pelvis", "spine1"),
        (f"{d}spine.001", f"{d}spine", "spine1", "spine2"),
        (f"{d}spine.002", f"{d}spine.001", "spine2", "spine3"),
        (f"{d}spine.003", f"{d}spine.002", "spine3", "neck"),
        (f"{d}spine.004", f"{d}spine.003", "neck", "neck2"),
        (f"{d}spine.005", f"{d}spine.004", "neck2", "head"),
        (f"{d}spine.006", f"{d}spine.005", "head", "head_top"),
        (d + "thigh.{S}", f"{d}spine", "hip_{k}", "thigh50_{k}"),
        (d + "thigh.{S}.001", d + "thigh.{S}", "thigh50_{k}", "knee_{k}"),
        (d + "shin.{S}", d + "thigh.{S}.001", "knee_{k}", "calf50_{k}"),
        (d + "shin.{S}.001", d + "shin.{S}", "calf50_{k}", "ankle_{k}"),
        (d + "foot.{S}", d + "shin.{S}.001", "ankle_{k}", "toe_{k}"),
        (d + "toe.{S}", d + "foot.{S}", "toe_{k}", "toe_end_{k}"),
        (d + "shoulder.{S}", f"{d}spine.003", "collar_{k}", "shoulder_{k}"),
        (d + "upper_arm.{S}", d + "shoulder.{S}", "shoulder_{k}", "upperarm50_{k}"),
        (d + "upper_arm.{S}.001", d + "upper_arm.{S}", "upperarm50_{k}", "elbow_{k}"),
        (d + "forearm.{S}", d + "upper_arm.{S}.001", "elbow_{k}", "forearm50_{k}"),
        (d + "forearm.{S}.001", d + "forearm.{S}", "forearm50_{k}", "wrist_{k}"),
        (d + "hand.{S}", d + "forearm.{S}.001", "wrist_{k}", "hand_end_{k}"),
    ]
    if not prefix:  # the metarig: pelvis and heel helpers
        spec += [("pelvis.{S}", "spine", "pelvis", "pelvis_side_{k}"),
                 ("heel.02.{S}", "foot.{S}", "heel_{k}", "heel_{k}+")]  # fmt: skip
    names = {"index": "f_index", "middle": "f_middle", "pinky": "f_pinky", "thumb": "thumb"}
    spec += _fingers(d + "{f}.0{j}.{{S}}", d + "hand.{S}", names)
    return _expand(spec, _LR)


def _sided_chain(
    center: Spec, sided: Spec, sides: tuple[dict[str, str], dict[str, str]], fingers: Spec = ()
) -> Spec:
    return _expand([*center, *sided, *fingers], sides)


def _cc() -> Spec:
    b = "CC_Base_"
    center: Spec = [
        (f"{b}BoneRoot", None, "floor", "floor+"),
        (f"{b}Hip", f"{b}BoneRoot", "pelvis", "spine0"),
        (f"{b}Pelvis", f"{b}Hip", "pelvis", "pelvis+"),
        (f"{b}Waist", f"{b}Hip", "spine1", "spine2"),
        (f"{b}Spine01", f"{b}Waist", "spine2", "spine3"),
        (f"{b}Spine02", f"{b}Spine01", "spine3", "neck"),
        (f"{b}NeckTwist01", f"{b}Spine02", "neck", "neck2"),
        (f"{b}NeckTwist02", f"{b}NeckTwist01", "neck2", "head"),
        (f"{b}Head", f"{b}NeckTwist02", "head", "head_top"),
    ]
    sided: Spec = [
        (b + "{S}_Thigh", f"{b}Pelvis", "hip_{k}", "knee_{k}"),
        (b + "{S}_ThighTwist01", b + "{S}_Thigh", "hip_{k}", "thigh50_{k}"),
        (b + "{S}_Calf", b + "{S}_Thigh", "knee_{k}", "ankle_{k}"),
        (b + "{S}_CalfTwist01", b + "{S}_Calf", "knee_{k}", "calf50_{k}"),
        (b + "{S}_Foot", b + "{S}_Calf", "ankle_{k}", "toe_{k}"),
        (b + "{S}_ToeBase", b + "{S}_Foot", "toe_{k}", "toe_end_{k}"),
        (b + "{S}_Clavicle", f"{b}Spine02", "collar_{k}", "shoulder_{k}"),
        (b + "{S}_Upperarm", b + "{S}_Clavicle", "shoulder_{k}", "elbow_{k}"),
        (b + "{S}_UpperarmTwist01", b + "{S}_Upperarm", "shoulder_{k}", "upperarm50_{k}"),
        (b + "{S}_Forearm", b + "{S}_Upperarm", "elbow_{k}", "wrist_{k}"),
        (b + "{S}_ForearmTwist01", b + "{S}_Forearm", "forearm50_{k}", "wrist_{k}"),
        (b + "{S}_Hand", b + "{S}_Forearm", "wrist_{k}", "hand_end_{k}"),
    ]
    names = {"index": "Index", "middle": "Mid", "pinky": "Pinky", "thumb": "Thumb"}
    return _sided_chain(center, sided, _LR, _fingers(b + "{{S}}_{f}{j}", b + "{S}_Hand", names))


def _arp() -> Spec:
    center: Spec = [
        ("c_traj", None, "floor", "floor+"),
        ("c_pos", "c_traj", "floor", "floor+"),
        ("c_root_master.x", "c_pos", "pelvis", "spine0"),
        ("c_root.x", "c_root_master.x", "pelvis", "pelvis+"),
        ("c_spine_01.x", "c_root_master.x", "spine1", "spine2"),
        ("c_spine_02.x", "c_spine_01.x", "spine2", "spine3"),
        ("c_spine_03.x", "c_spine_02.x", "spine3", "neck"),
        ("c_neck.x", "c_spine_03.x", "neck", "head"),
        ("c_head.x", "c_neck.x", "head", "head_top"),
    ]
    sided: Spec = [
        ("c_thigh_fk.{s}", "c_root.x", "hip_{k}", "knee_{k}"),
        ("c_leg_fk.{s}", "c_thigh_fk.{s}", "knee_{k}", "ankle_{k}"),
        ("c_foot_fk.{s}", "c_leg_fk.{s}", "ankle_{k}", "toe_{k}"),
        ("c_toes_fk.{s}", "c_foot_fk.{s}", "toe_{k}", "toe_end_{k}"),
        ("c_foot_ik.{s}", "c_traj", "ankle_{k}", "toe_{k}"),
        ("c_shoulder.{s}", "c_spine_03.x", "collar_{k}", "shoulder_{k}"),
        ("c_arm_fk.{s}", "c_shoulder.{s}", "shoulder_{k}", "elbow_{k}"),
        ("c_forearm_fk.{s}", "c_arm_fk.{s}", "elbow_{k}", "wrist_{k}"),
        ("c_hand_fk.{s}", "c_forearm_fk.{s}", "wrist_{k}", "hand_end_{k}"),
        ("c_hand_ik.{s}", "c_traj", "wrist_{k}", "hand_end_{k}"),
    ]
    names = {"index": "index", "middle": "middle", "pinky": "pinky", "thumb": "thumb"}
    return _sided_chain(center, sided, _LR, _fingers("c_{f}{j}.{{s}}", "c_hand_fk.{s}", names))


def _biped(prefix: str = "Bip001") -> Spec:
    p = prefix
    center: Spec = [
        (p, None, "pelvis", "pelvis+"),
        (f"{p} Pelvis", p, "pelvis", "spine0"),
        (f"{p} Spine", f"{p} Pelvis", "spine1", "spine2"),
        (f"{p} Spine1", f"{p} Spine", "spine2", "spine3"),
        (f"{p} Spine2", f"{p} Spine1", "spine3", "neck"),
        (f"{p} Neck", f"{p} Spine2", "neck", "head"),
        (f"{p} Head", f"{p} Neck", "head", "head_top"),
    ]
    sided: Spec = [
        (p + " {S} Thigh", f"{p} Spine", "hip_{k}", "knee_{k}"),  # Biped hangs legs off Spine
        (p + " {S} Calf", p + " {S} Thigh", "knee_{k}", "ankle_{k}"),
        (p + " {S} Foot", p + " {S} Calf", "ankle_{k}", "toe_{k}"),
        (p + " {S} Toe0", p + " {S} Foot", "toe_{k}", "toe_end_{k}"),
        (p + " {S} Clavicle", f"{p} Neck", "collar_{k}", "shoulder_{k}"),
        (p + " {S} UpperArm", p + " {S} Clavicle", "shoulder_{k}", "elbow_{k}"),
        (p + " {S} Forearm", p + " {S} UpperArm", "elbow_{k}", "wrist_{k}"),
        (p + " {S} Hand", p + " {S} Forearm", "wrist_{k}", "hand_end_{k}"),
    ]
    names = {"index": "Finger1", "middle": "Finger2", "pinky": "Finger4", "thumb": "Finger0"}
    fingers = _fingers(p + " {{S}} {f}{j}", p + " {S} Hand", names)
    return _sided_chain(center, sided, _LR, fingers)


def _makehuman() -> Spec:
    center: Spec = [
        ("root", None, "pelvis", "spine0"),
        ("spine05", "root", "spine0", "spine1"),
        ("spine04", "spine05", "spine1", "spine2"),
        ("spine03", "spine04", "spine2", "spine2b"),
        ("spine02", "spine03", "spine2b", "spine3"),
        ("spine01", "spine02", "spine3", "neck"),
        ("neck01", "spine01", "neck", "neck2"),
        ("neck02", "neck01", "neck2", "head"),
        ("head", "neck02", "head", "head_top"),
    ]
    sided: Spec = [
        ("pelvis.{S}", "root", "pelvis", "hip_{k}"),
        ("upperleg01.{S}", "pelvis.{S}", "hip_{k}", "thigh50_{k}"),
        ("upperleg02.{S}", "upperleg01.{S}", "thigh50_{k}", "knee_{k}"),
        ("lowerleg01.{S}", "upperleg02.{S}", "knee_{k}", "calf50_{k}"),
        ("lowerleg02.{S}", "lowerleg01.{S}", "calf50_{k}", "ankle_{k}"),
        ("foot.{S}", "lowerleg02.{S}", "ankle_{k}", "toe_{k}"),
        ("toe1-1.{S}", "foot.{S}", "toe_{k}", "toe_end_{k}"),
        ("clavicle.{S}", "spine01", "collar_{k}", "shoulder_{k}"),
        ("shoulder01.{S}", "clavicle.{S}", "shoulder_{k}", "upperarm33_{k}"),
        ("upperarm01.{S}", "shoulder01.{S}", "shoulder_{k}", "upperarm50_{k}"),
        ("upperarm02.{S}", "upperarm01.{S}", "upperarm50_{k}", "elbow_{k}"),
        ("lowerarm01.{S}", "upperarm02.{S}", "elbow_{k}", "forearm50_{k}"),
        ("lowerarm02.{S}", "lowerarm01.{S}", "forearm50_{k}", "wrist_{k}"),
        ("wrist.{S}", "lowerarm02.{S}", "wrist_{k}", "hand_end_{k}"),
    ]
    names = {"index": "finger2-", "middle": "finger3-", "pinky": "finger5-", "thumb": "finger1-"}
    return _sided_chain(center, sided, _LR, _fingers("{f}{j}.{{S}}", "wrist.{S}", names))


def _vrm(vroid: bool) -> Spec:
    if vroid:
        c, side = "J_Bip_C_", "J_Bip_{S}_"
        names = {k: k for k in ("Hips", "Spine", "Chest", "UpperChest", "Neck", "Head")}
        part = {k: side + k for k in ("UpperLeg", "LowerLeg", "Foot", "ToeBase", "Shoulder",
                                      "UpperArm", "LowerArm", "Hand")}  # fmt: skip
        names = {k: c + v for k, v in names.items()}
    else:
        names = {k: k[0].lower() + k[1:] for k in ("Hips", "Spine", "Chest", "UpperChest",
                                                  "Neck", "Head")}  # fmt: skip
        part = {k: "{side}" + k for k in ("UpperLeg", "LowerLeg", "Foot", "Shoulder", "UpperArm",
                                          "LowerArm", "Hand")}  # fmt: skip
        part["ToeBase"] = "{side}Toes"
    n = names
    center: Spec = [
        (n["Hips"], None, "pelvis", "spine1"),
        (n["Spine"], n["Hips"], "spine1", "spine2"),
        (n["Chest"], n["Spine"], "spine2", "spine3"),
        (n["UpperChest"], n["Chest"], "spine3", "neck"),
        (n["Neck"], n["UpperChest"], "neck", "head"),
        (n["Head"], n["Neck"], "head", "head_top"),
    ]
    sided: Spec = [
        (part["UpperLeg"], n["Hips"], "hip_{k}", "knee_{k}"),
        (part["LowerLeg"], part["UpperLeg"], "knee_{k}", "ankle_{k}"),
        (part["Foot"], part["LowerLeg"], "ankle_{k}", "toe_{k}"),
        (part["ToeBase"], part["Foot"], "toe_{k}", "toe_end_{k}"),
        (part["Shoulder"], n["UpperChest"], "collar_{k}", "shoulder_{k}"),
        (part["UpperArm"], part["Shoulder"], "shoulder_{k}", "elbow_{k}"),
        (part["LowerArm"], part["UpperArm"], "elbow_{k}", "wrist_{k}"),
        (part["Hand"], part["LowerArm"], "wrist_{k}", "hand_end_{k}"),
    ]
    sides = ({**_LR[0], "side": "left"}, {**_LR[1], "side": "right"})
    fnames = {"index": "Index", "middle": "Middle", "pinky": "Little", "thumb": "Thumb"}
    pattern = (side + "{f}{j}") if vroid else ("{{side}}{f}" + "{j}")
    fingers = _fingers(pattern.replace("{S}", "{{S}}"), part["Hand"], fnames)
    return _expand([*center, *sided, *fingers], sides)


def _smpl() -> Spec:
    center: Spec = []
    low = SMPL_NAMES
    tails = {"pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck",
             "neck": "head", "head": "head_top"}  # fmt: skip
    chain = {
        "hip": "knee",
        "knee": "ankle",
        "ankle": "toe",
        "toe": "toe_end",
        "collar": "shoulder",
        "shoulder": "elbow",
        "elbow": "wrist",
        "wrist": "hand_end",
    }
    for joint, name, parent in zip(MODEL_JOINTS, low, MODEL_PARENTS, strict=True):
        key = _JOINT_KEYS[joint]
        if key in tails:
            tail = tails[key]
        else:
            stem, side = key.rsplit("_", 1)
            tail = f"{chain[stem]}_{side}"
        center.append((name, low[parent] if parent >= 0 else "root", key, tail))
    fingers = _fingers("{{side}}_{f}{j}", "{side}_wrist", {f: f for f in _FINGERS})
    sides = ({**_LR[0], "side": "left"}, {**_LR[1], "side": "right"})
    return [("root", None, "floor", "floor+"), *center, *_expand(fingers, sides)]


#: Convention key -> bone spec builder (Rigify's generated rig comes from Rigify itself).
SPECS = {
    "MIXAMO": lambda: _mixamo(),
    "MIXAMO_NUMBERED": lambda: _mixamo("mixamorig7:"),
    "RIGIFY_DEF": lambda: _rigify_def("DEF-"),
    "RIGIFY_METARIG": lambda: _rigify_def(""),
    "UE5": lambda: _ue(True),
    "UE4": lambda: _ue(False),
    "VRM": lambda: _vrm(False),
    "VROID": lambda: _vrm(True),
    "CC": _cc,
    "ARP": _arp,
    "BIPED": lambda: _biped(),
    "BIPED_BIP01": lambda: _biped("Bip01"),
    "MAKEHUMAN": _makehuman,
    "SMPL": _smpl,
}
#: The convention each spec must be detected as.
EXPECTED = {k: k.split("_NUMBERED")[0].split("_BIP01")[0] for k in SPECS}
#: Bone rolls per tool: the direction each bone's Z axis faces (rest axes differ per tool).
ROLL_STYLES = ("forward", "up", "twisted")


def roll_target(direction: np.ndarray, style: str, index: int) -> np.ndarray:
    forward, up = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    if style == "forward":
        axis = forward if abs(float(direction @ forward)) < 0.9 else up
    elif style == "up":
        axis = up if abs(float(direction @ up)) < 0.9 else forward
    else:  # a different roll per bone, as rigs converted between tools end up with
        angle = 0.7 * index
        axis = np.array([np.cos(angle), np.sin(angle), 0.3])
        if abs(float(direction @ axis)) > 0.9 * np.linalg.norm(axis):
            axis = np.array([0.0, 0.3, 1.0])
    target = axis - (axis @ direction) * direction
    return target / np.linalg.norm(target)


def resolved(spec: Spec, body: Body) -> list[tuple[str, str | None, np.ndarray, np.ndarray]]:
    """(bone, parent, head, tail) with points; "key+" is 5 cm above the key's point."""
    points = keypoints(body)

    def point(key: str) -> np.ndarray:
        if key.endswith("+"):
            return points[key[:-1]] + [0.0, 0.0, 0.05]
        return points[key]

    return [(bone, parent, point(h), point(t)) for bone, parent, h, t in spec]


def rest_matrix(head: np.ndarray, tail: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Blender's bone frame: Y along the bone, Z towards ``target`` (``EditBone.align_roll``)."""
    y = (tail - head) / np.linalg.norm(tail - head)
    z = target - (target @ y) * y
    z /= np.linalg.norm(z)
    return np.stack([np.cross(y, z), y, z], axis=1)


def rig_bones(key: str, body: Body = ADULT_T, roll: str = "forward") -> RigBones:
    """The bpy-free description of the ``key`` rig for ``body``."""
    bones = resolved(SPECS[key](), body)
    heads = np.array([b[2] for b in bones])
    tails = np.array([b[3] for b in bones])
    rest = np.array(
        [rest_matrix(h, t, roll_target((t - h) / np.linalg.norm(t - h), roll, i))
         for i, (h, t) in enumerate(zip(heads, tails, strict=True))]
    )  # fmt: skip
    return sorted_bones(
        [b[0] for b in bones], [b[1] for b in bones], heads, tails, rest,
        np.ones(len(bones), dtype=bool),
    )  # fmt: skip


def renamed(rig: RigBones) -> RigBones:
    """The same rig with meaningless bone names (``bone_000``...), for shape-only mapping."""
    return RigBones(
        names=tuple(f"bone_{i:03d}" for i in range(rig.count)),
        parents=rig.parents, heads=rig.heads, tails=rig.tails, rest=rig.rest, deform=rig.deform,
    )  # fmt: skip


# --- bpy: the same rigs as Blender armatures -----------------------------------------------


def build_armature(scene: Any, rig: RigBones, name: str) -> Any:
    """An armature object in ``scene`` with exactly ``rig``'s bones (heads, tails, rolls)."""
    import bpy

    from blender_addon import build

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    with build.object_context(obj):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            edit = []
            for i, bone_name in enumerate(rig.names):
                bone = data.edit_bones.new(bone_name)
                bone.head, bone.tail = rig.heads[i].tolist(), rig.tails[i].tolist()
                bone.align_roll(rig.rest[i][:, 2].tolist())
                edit.append(bone)
            for i, parent in enumerate(rig.parents):
                if parent >= 0:
                    edit[i].parent = edit[int(parent)]
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    scene.view_layers[0].update()
    return obj


def rigify_rigs(scene: Any) -> tuple[Any, Any] | None:
    """(metarig, generated rig) made in ``scene`` by Blender's own Rigify from its human
    metarig; None when this bpy build has no Rigify."""
    import addon_utils
    import bpy

    if addon_utils.enable("rigify", default_set=True) is None:
        return None
    bpy.ops.object.armature_human_metarig_add()
    metarig = bpy.context.view_layer.objects.active
    metarig.select_set(True)
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.view_layer.objects.active
    if rig is metarig or rig.type != "ARMATURE":
        raise RuntimeError("Rigify did not generate a rig from its human metarig")
    return metarig, rig
