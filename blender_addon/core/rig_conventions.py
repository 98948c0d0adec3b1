"""Humanoid rig naming conventions and their detection from bone names (no bpy).

Each convention says which bone of that kind of rig plays each of the model's 22 body joints
(SMPL-H names: ``Pelvis``, ``L_Hip``, ...). Names are compared without case and after removing
a namespace (``Armature|``, ``Character1:``) and the convention's own prefix (``mixamorig7:``,
``Bip001 ``, ``m_avg_``), so every variant of a convention matches the same table.
Sources of the tables: landscape_2026-12.md §2b and each tool's published rigs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

#: The model's body joints (SMPL-H order), the keys of every mapping.
BODY_JOINTS = (
    "Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle", "R_Ankle",
    "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
#: Joints a rig must have for a take to play on it (the rest may be missing).
REQUIRED_JOINTS = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Head",
    "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
#: SMPL tools' joint names (``m_avg_``/``f_avg_`` prefix removed), in ``BODY_JOINTS`` order.
SMPL_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)  # fmt: skip
_SIDED = ("Hip", "Knee", "Ankle", "Foot", "Collar", "Shoulder", "Elbow", "Wrist")
_NAMESPACE = re.compile(r"^.*[:|]")


def without_namespace(name: str) -> str:
    """``name`` without the namespace a tool puts before it (``Armature|``, ``Character1:``)."""
    return _NAMESPACE.sub("", name)


#: Switch properties that choose between a limb's FK (1.0) and IK (0.0) chain.
IK_FK_PROPS = ("IK_FK", "ik_fk_switch")


@dataclass(frozen=True)
class RigSwitch:
    """A custom property the take keys so the rig follows the keyed controls (Rigify IK/FK)."""

    bone: str
    prop: str
    value: float

    def for_limbs(self, ik: bool) -> RigSwitch:
        """This switch with limbs in IK (0.0) when ``ik``, else unchanged."""
        return RigSwitch(self.bone, self.prop, 0.0) if ik and self.prop in IK_FK_PROPS else self


#: Keyed beside a Rigify ``IK_FK`` switch with limbs in IK: the pole control aims the knee or
#: elbow (``pole_vector`` on), riding the rig's root (``pole_parent`` 1), where the take keys it.
IK_POLE_PROPS = (("pole_vector", 1.0), ("pole_parent", 1.0))


def limb_switches(
    switches: Sequence[RigSwitch], ik: bool, has: Callable[[str, str], bool]
) -> list[RigSwitch]:
    """``switches`` for limbs in FK, or in IK (``ik``) with the pole properties added where the
    rig has them (``has(bone, property)``; older Rigify rigs have no pole switch)."""
    out = [s.for_limbs(ik) for s in switches]
    if ik:
        out += [RigSwitch(s.bone, prop, value) for s in switches if s.prop == "IK_FK"
                for prop, value in IK_POLE_PROPS if has(s.bone, prop)]  # fmt: skip
    return out


@dataclass(frozen=True)
class Convention:
    key: str
    label: str
    #: Model joint -> bone names this convention uses for it (first present wins), bare.
    joints: Mapping[str, tuple[str, ...]]
    #: Prefix removed from bone names before they are compared (a regex anchored at the start).
    prefix: str = ""
    #: Bare names only this convention has: they break ties between similar conventions.
    signature: tuple[str, ...] = ()
    #: Bones that take the same world rotation change as a joint (bone -> joint).
    followers: Mapping[str, str] = field(default_factory=dict)
    #: "pelvis": the Pelvis bone takes the root translation; "pelvis_parent": its parent does.
    translation: str = "pelvis"
    #: IK controls (or UE's IK bones) per joint: keyed to follow that joint's bone.
    ik_controls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Properties keyed with every take so FK controls drive the rig.
    switches: tuple[RigSwitch, ...] = ()

    def bare(self, name: str) -> str:
        """``name`` as this convention's tables spell it, lower case."""
        name = without_namespace(name)
        if self.prefix:
            name = re.sub("^(?:" + self.prefix + ")", "", name, flags=re.IGNORECASE)
        return name.lower()


def _table(
    center: Mapping[str, str | tuple[str, ...]],
    sided: Mapping[str, str | tuple[str, ...]],
    sides: tuple[str, str],
) -> dict[str, tuple[str, ...]]:
    """Expand ``{s}`` in ``sided`` names with the left and right side spellings."""

    def names(value: str | tuple[str, ...]) -> tuple[str, ...]:
        return (value,) if isinstance(value, str) else value

    out = {joint: names(value) for joint, value in center.items()}
    for part, value in sided.items():
        if part not in _SIDED:
            raise ValueError(f"unknown sided joint {part!r}")
        for prefix, side in zip(("L_", "R_"), sides, strict=True):
            out[prefix + part] = tuple(n.format(s=side) for n in names(value))
    return out


MIXAMO = Convention(
    key="MIXAMO",
    label="Mixamo",
    prefix=r"mixamorig\d*[:_]?",
    joints=_table(
        {"Pelvis": "Hips", "Spine1": "Spine", "Spine2": "Spine1", "Spine3": "Spine2",
         "Neck": "Neck", "Head": "Head"},
        {"Hip": "{s}UpLeg", "Knee": "{s}Leg", "Ankle": "{s}Foot", "Foot": "{s}ToeBase",
         "Collar": "{s}Shoulder", "Shoulder": "{s}Arm", "Elbow": "{s}ForeArm",
         "Wrist": "{s}Hand"},
        ("Left", "Right"),
    ),
    signature=("lefttoebase", "headtop_end", "lefthandindex1"),
)  # fmt: skip

_RIGIFY_SIDED: dict[str, str | tuple[str, ...]] = {
    "Hip": "thigh_fk.{s}", "Knee": "shin_fk.{s}", "Ankle": "foot_fk.{s}",
    "Foot": ("toe_fk.{s}", "toe.{s}"), "Collar": "shoulder.{s}", "Shoulder": "upper_arm_fk.{s}",
    "Elbow": "forearm_fk.{s}", "Wrist": "hand_fk.{s}",
}  # fmt: skip
RIGIFY = Convention(
    key="RIGIFY",
    label="Rigify (generated rig, FK controls)",
    joints=_table(
        {
            "Pelvis": "torso",
            "Spine1": "spine_fk.001",
            "Spine2": "spine_fk.002",
            "Spine3": "spine_fk.003",
            "Neck": "neck",
            "Head": "head",
        },
        _RIGIFY_SIDED,
        ("l", "r"),
    ),
    # The pelvis bone (spine_fk) hangs below spine_fk.001 and carries the thighs; the arms hang
    # below ORG-shoulder, which copies the shoulder control.
    followers={"spine_fk": "Pelvis", "ORG-shoulder.L": "L_Collar", "ORG-shoulder.R": "R_Collar"},
    signature=("torso", "mch-torso.parent", "upper_arm_parent.l", "thigh_parent.l"),
    ik_controls=_table({}, {"Ankle": "foot_ik.{s}", "Wrist": "hand_ik.{s}"}, ("l", "r")),
    # Keyed with the take: limbs in FK (IK_FK 1) following their parents (FK_limb_follow 0),
    # neck and head inheriting their parents' rotation (Rigify isolates them by default), so
    # the controls form a plain chain.
    switches=(
        *(
            RigSwitch(bone, prop, value)
            for bone in ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L",
                         "thigh_parent.R")
            for prop, value in (("IK_FK", 1.0), ("FK_limb_follow", 0.0))
        ),
        RigSwitch("torso", "neck_follow", 1.0),
        RigSwitch("torso", "head_follow", 1.0),
    ),
)  # fmt: skip
RIGIFY_DEF = Convention(
    key="RIGIFY_DEF",
    label="Rigify deform bones (DEF-)",
    prefix=r"DEF[-_]",
    joints=_table(
        {"Pelvis": "spine", "Spine1": "spine.001", "Spine2": "spine.002", "Spine3": "spine.003",
         "Neck": "spine.004", "Head": "spine.006"},
        {"Hip": "thigh.{s}", "Knee": "shin.{s}", "Ankle": "foot.{s}", "Foot": "toe.{s}",
         "Collar": "shoulder.{s}", "Shoulder": "upper_arm.{s}", "Elbow": "forearm.{s}",
         "Wrist": "hand.{s}"},
        ("l", "r"),
    ),
    signature=("def-spine", "def-thigh.l.001"),
)  # fmt: skip
RIGIFY_METARIG = Convention(
    key="RIGIFY_METARIG",
    label="Rigify metarig",
    joints=RIGIFY_DEF.joints,
    signature=("heel.02.l", "pelvis.l", "spine.006"),
)
UE5 = Convention(
    key="UE5",
    label="Unreal Engine 5 (Manny / Quinn)",
    joints=_table(
        {"Pelvis": "pelvis", "Spine1": "spine_01", "Spine2": "spine_03", "Spine3": "spine_05",
         "Neck": "neck_01", "Head": "head"},
        {"Hip": "thigh_{s}", "Knee": "calf_{s}", "Ankle": "foot_{s}", "Foot": "ball_{s}",
         "Collar": "clavicle_{s}", "Shoulder": "upperarm_{s}", "Elbow": "lowerarm_{s}",
         "Wrist": "hand_{s}"},
        ("l", "r"),
    ),
    signature=("spine_04", "spine_05", "neck_02"),
    ik_controls=_table({}, {"Ankle": "ik_foot_{s}", "Wrist": "ik_hand_{s}"}, ("l", "r")),
)  # fmt: skip
UE4 = Convention(
    key="UE4",
    label="Unreal Engine 4 mannequin",
    joints={**UE5.joints, "Spine1": ("spine_01",), "Spine2": ("spine_02",),
            "Spine3": ("spine_03",)},
    signature=("ik_foot_root", "ik_hand_gun"),
)  # fmt: skip
VRM = Convention(
    key="VRM",
    label="VRM humanoid (humanoid bone names)",
    joints=_table(
        {"Pelvis": "hips", "Spine1": "spine", "Spine2": "chest", "Spine3": ("upperchest",),
         "Neck": "neck", "Head": "head"},
        {"Hip": "{s}upperleg", "Knee": "{s}lowerleg", "Ankle": "{s}foot",
         "Foot": ("{s}toes", "{s}toebase"), "Collar": "{s}shoulder",
         "Shoulder": "{s}upperarm", "Elbow": "{s}lowerarm", "Wrist": "{s}hand"},
        ("left", "right"),
    ),
    signature=("upperchest", "leftupperleg"),
)  # fmt: skip
# VRoid's J_Bip names drop the side from the bone (J_Bip_L_UpperLeg): a second table.
VROID = Convention(
    key="VROID",
    label="VRoid (VRM, J_Bip_ names)",
    joints=_table(
        {"Pelvis": "j_bip_c_hips", "Spine1": "j_bip_c_spine", "Spine2": "j_bip_c_chest",
         "Spine3": "j_bip_c_upperchest", "Neck": "j_bip_c_neck", "Head": "j_bip_c_head"},
        {"Hip": "j_bip_{s}_upperleg", "Knee": "j_bip_{s}_lowerleg", "Ankle": "j_bip_{s}_foot",
         "Foot": "j_bip_{s}_toebase", "Collar": "j_bip_{s}_shoulder",
         "Shoulder": "j_bip_{s}_upperarm", "Elbow": "j_bip_{s}_lowerarm",
         "Wrist": "j_bip_{s}_hand"},
        ("l", "r"),
    ),
    signature=("j_bip_c_upperchest",),
)  # fmt: skip
CHARACTER_CREATOR = Convention(
    key="CC",
    label="Character Creator / iClone (CC_Base_)",
    prefix=r"CC_Base_",
    joints=_table(
        {"Pelvis": "hip", "Spine1": "waist", "Spine2": "spine01", "Spine3": "spine02",
         "Neck": "necktwist01", "Head": "head"},
        {"Hip": "{s}_thigh", "Knee": "{s}_calf", "Ankle": "{s}_foot", "Foot": "{s}_toebase",
         "Collar": "{s}_clavicle", "Shoulder": "{s}_upperarm", "Elbow": "{s}_forearm",
         "Wrist": "{s}_hand"},
        ("l", "r"),
    ),
    # CC_Base_Pelvis sits between the hip bone and the thighs: it turns with the pelvis.
    followers={"pelvis": "Pelvis"},
    signature=("boneroot", "necktwist02", "l_upperarmtwist01"),
)  # fmt: skip
AUTO_RIG_PRO = Convention(
    key="ARP",
    label="Auto-Rig Pro (controls)",
    joints=_table(
        {"Pelvis": "c_root_master.x", "Spine1": "c_spine_01.x", "Spine2": "c_spine_02.x",
         "Spine3": "c_spine_03.x", "Neck": "c_neck.x", "Head": "c_head.x"},
        {"Hip": "c_thigh_fk.{s}", "Knee": "c_leg_fk.{s}", "Ankle": "c_foot_fk.{s}",
         "Foot": ("c_toes_fk.{s}", "c_toes.{s}"), "Collar": "c_shoulder.{s}",
         "Shoulder": "c_arm_fk.{s}", "Elbow": "c_forearm_fk.{s}", "Wrist": "c_hand_fk.{s}"},
        ("l", "r"),
    ),
    followers={"c_root.x": "Pelvis"},
    signature=("c_traj", "c_root_master.x", "c_pos"),
    ik_controls=_table({}, {"Ankle": "c_foot_ik.{s}", "Wrist": "c_hand_ik.{s}"}, ("l", "r")),
    switches=tuple(
        RigSwitch(bone, "ik_fk_switch", 1.0)  # 1.0 = FK
        for bone in ("c_hand_ik.l", "c_hand_ik.r", "c_foot_ik.l", "c_foot_ik.r")
    ),
)  # fmt: skip
BIPED = Convention(
    key="BIPED",
    label="3ds Max Biped (Bip001)",
    prefix=r"Bip\d*[ _]",
    joints=_table(
        {"Pelvis": "pelvis", "Spine2": "spine1", "Spine3": "spine2", "Neck": "neck",
         "Head": "head"},
        {"Hip": "{s} thigh", "Knee": "{s} calf", "Ankle": "{s} foot", "Foot": "{s} toe0",
         "Collar": "{s} clavicle", "Shoulder": "{s} upperarm", "Elbow": "{s} forearm",
         "Wrist": "{s} hand"},
        ("l", "r"),
    ),
    # Biped hangs the thighs off its first spine bone: that bone turns with the pelvis, or
    # every bend of the lower back would swing the legs.
    followers={"spine": "Pelvis"},
    translation="pelvis_parent",  # Bip001, the centre of mass, carries the translation
    signature=("l toe0", "l upperarm"),
)  # fmt: skip
MAKEHUMAN = Convention(
    key="MAKEHUMAN",
    label="MPFB / MakeHuman (default skeleton)",
    joints=_table(
        {"Pelvis": "root", "Spine1": "spine04", "Spine2": "spine03", "Spine3": "spine01",
         "Neck": "neck01", "Head": "head"},
        {"Hip": "upperleg01.{s}", "Knee": "lowerleg01.{s}", "Ankle": "foot.{s}",
         "Foot": ("toe1-1.{s}",), "Collar": "clavicle.{s}", "Shoulder": "upperarm01.{s}",
         "Elbow": "lowerarm01.{s}", "Wrist": "wrist.{s}"},
        ("l", "r"),
    ),
    signature=("spine05", "upperleg02.l", "shoulder01.l"),
)  # fmt: skip
SMPL = Convention(
    key="SMPL",
    label="SMPL / SMPL-H / SMPL-X (and HY-Motion's own armature)",
    prefix=r"[mf]_avg_",
    joints={
        joint: (joint.lower(), smpl) for joint, smpl in zip(BODY_JOINTS, SMPL_NAMES, strict=True)
    },
    signature=("l_hip", "left_hip", "spine3", "l_collar", "left_collar"),
)  # fmt: skip

#: Every known convention; on equal detection scores the earlier one wins.
CONVENTIONS: tuple[Convention, ...] = (
    MIXAMO, RIGIFY, RIGIFY_DEF, RIGIFY_METARIG, UE5, UE4, VRM, VROID, CHARACTER_CREATOR,
    AUTO_RIG_PRO, BIPED, MAKEHUMAN, SMPL,
)  # fmt: skip
BY_KEY = {c.key: c for c in CONVENTIONS}
#: A rig matches a convention only with at least this many of the 22 joints found by name.
MIN_MATCHED_JOINTS = 12


@dataclass(frozen=True)
class Detection:
    convention: Convention
    #: Model joint -> bone name in the rig, for every joint the convention's table found.
    joints: dict[str, str]
    followers: dict[str, str]  # bone -> joint
    score: float
    ik_controls: dict[str, str] = field(default_factory=dict)  # bone -> joint


def match(convention: Convention, bone_names: Iterable[str]) -> Detection:
    """How ``bone_names`` fit ``convention``: the joints found and a score."""
    by_bare: dict[str, str] = {}
    for name in bone_names:
        by_bare.setdefault(convention.bare(name), name)
    joints: dict[str, str] = {}
    for joint in BODY_JOINTS:
        for candidate in convention.joints.get(joint, ()):
            found = by_bare.get(candidate.lower())
            if found is not None:
                joints[joint] = found
                break
    followers = {
        by_bare[bone.lower()]: joint
        for bone, joint in convention.followers.items()
        if bone.lower() in by_bare and joint in joints
    }
    ik_controls = {
        by_bare[name.lower()]: joint
        for joint, names in convention.ik_controls.items()
        for name in names
        if name.lower() in by_bare and joint in joints
    }
    signature = sum(1 for s in convention.signature if s.lower() in by_bare)
    # Joints count most; signature bones only break ties between close conventions.
    return Detection(convention, joints, followers, len(joints) + 0.1 * signature, ik_controls)


def detect(bone_names: Iterable[str]) -> Detection | None:
    """The convention that explains most of ``bone_names``, or None (an unknown rig)."""
    names = list(bone_names)
    best: Detection | None = None
    for convention in CONVENTIONS:
        found = match(convention, names)
        if best is None or found.score > best.score:
            best = found
    if best is None or len(best.joints) < MIN_MATCHED_JOINTS or "Pelvis" not in best.joints:
        return None
    return best
