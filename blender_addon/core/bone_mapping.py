"""Which bone of the artist's rig plays each model joint: automatic mapping, checks and JSON
presets (no bpy).

A mapping names, per model joint, one bone of the rig; "followers" are extra bones that take
the same world rotation change as a joint (Rigify's reversed pelvis control, Character
Creator's pelvis under its hip bone). Every other bone follows its parent (twist bones, IK
helpers, fingers). Presets are small JSON files a studio can keep in a shared folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import rig_conventions, rig_structure
from .errors import MappingError, PresetError
from .files import atomic_path
from .rig_bones import RigBones
from .rig_conventions import BODY_JOINTS, REQUIRED_JOINTS, RigSwitch

#: Convention key of a mapping found from the rig's shape (no convention matched).
CUSTOM = "CUSTOM"
PRESET_FORMAT = "hy-motion-bone-map"
PRESET_VERSION = 1
PRESET_SUFFIX = ".json"
_LEGS = ("L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle")


@dataclass(frozen=True)
class BoneMapping:
    convention: str  # a key of rig_conventions.BY_KEY, or CUSTOM
    joints: dict[str, str]  # model joint -> bone
    followers: dict[str, str] = field(default_factory=dict)  # bone -> model joint
    #: The bone whose location carries the root motion (the Pelvis bone or an ancestor).
    translation_bone: str = ""
    switches: tuple[RigSwitch, ...] = ()
    #: IK controls (Rigify, Auto-Rig Pro) and IK bones (UE) that follow a joint's bone.
    ik_controls: dict[str, str] = field(default_factory=dict)  # bone -> model joint

    @property
    def label(self) -> str:
        if self.convention == CUSTOM:
            return "Custom (from the rig's shape)"
        return rig_conventions.BY_KEY[self.convention].label

    def mapped_bones(self) -> set[str]:
        return set(self.joints.values()) | set(self.followers) | set(self.ik_controls)

    def unmapped(self, rig: RigBones) -> list[str]:
        """The rig's bones no joint drives: they keep their rest pose relative to their parent."""
        mapped = self.mapped_bones() | {self.translation_bone}
        return [n for n in rig.names if n not in mapped]

    def missing_joints(self) -> list[str]:
        return [j for j in BODY_JOINTS if j not in self.joints]


def auto_mapping(rig: RigBones) -> BoneMapping:
    """The mapping for ``rig``: its naming convention if one fits, else its shape."""
    detection = rig_conventions.detect(rig.names)
    if detection is None:
        joints = rig_structure.guess_joints(rig)
        convention, followers, ik = CUSTOM, {}, {}
        switches: tuple[RigSwitch, ...] = ()
        translation = joints.get("Pelvis", "")
    else:
        joints = dict(detection.joints)
        convention, followers = detection.convention.key, dict(detection.followers)
        ik = dict(detection.ik_controls)
        switches = tuple(s for s in detection.convention.switches if rig.get(s.bone) is not None)
        translation = _translation_bone(rig, detection.convention, joints)
        # Joints the names did not give (a renamed bone): take them from the shape.
        for joint, bone in rig_structure.guess_joints(rig).items():
            if joint not in joints and bone not in joints.values() and bone not in followers:
                joints[joint] = bone
    return BoneMapping(convention, joints, followers, translation, switches, ik)


def _translation_bone(
    rig: RigBones, convention: rig_conventions.Convention, joints: Mapping[str, str]
) -> str:
    pelvis = joints.get("Pelvis", "")
    if convention.translation == "pelvis_parent" and pelvis:
        parent = int(rig.parents[rig.index(pelvis)])
        if parent >= 0:
            return rig.names[parent]
    return pelvis


def validate(mapping: BoneMapping, rig: RigBones, rig_name: str = "the rig") -> None:
    """Raise :class:`MappingError` naming the joint or bone that makes ``mapping`` unusable."""
    for joint, bone in mapping.joints.items():
        if joint not in BODY_JOINTS:
            raise MappingError(f"{joint!r} is not a model joint", field=joint)
        if rig.get(bone) is None:
            raise MappingError(f"{joint} is mapped to bone {bone!r}, which {rig_name} lacks",
                               field=joint)  # fmt: skip
    seen: dict[str, str] = {}
    for joint, bone in mapping.joints.items():
        if bone in seen:
            raise MappingError(
                f"{seen[bone]} and {joint} are both mapped to bone {bone!r}; "
                "each bone can play one joint",
                field=joint,
            )
        seen[bone] = joint
    for bone, joint in mapping.followers.items():
        if rig.get(bone) is None or joint not in mapping.joints:
            raise MappingError(f"follower bone {bone!r} cannot follow {joint}", field=bone)
        if bone in seen:
            raise MappingError(f"bone {bone!r} is mapped to {seen[bone]} and also follows {joint}",
                               field=bone)  # fmt: skip
    for bone, joint in mapping.ik_controls.items():
        if rig.get(bone) is None or joint not in mapping.joints:
            raise MappingError(f"IK control {bone!r} cannot follow {joint}", field=bone)
    if "Pelvis" not in mapping.joints:
        raise MappingError(f"no hips found in {rig_name}: map a bone to Pelvis", field="Pelvis")
    missing_legs = [j for j in _LEGS if j not in mapping.joints]
    if missing_legs:
        raise MappingError(
            f"{rig_name} has no recognisable legs: {', '.join(missing_legs)} not mapped",
            field=missing_legs[0],
        )
    missing = [j for j in REQUIRED_JOINTS if j not in mapping.joints]
    if missing:
        raise MappingError(f"{', '.join(missing)} not mapped in {rig_name}", field=missing[0])
    pelvis = rig.index(mapping.joints["Pelvis"])
    below = set(rig.descendants(pelvis))
    for joint, bone in mapping.joints.items():
        if joint != "Pelvis" and rig.index(bone) not in below:
            raise MappingError(
                f"{joint} is mapped to bone {bone!r}, which is not below the Pelvis bone "
                f"{mapping.joints['Pelvis']!r}",
                field=joint,
            )
    translation = rig.get(mapping.translation_bone)
    if translation is None or (translation != pelvis and translation not in rig.ancestors(pelvis)):
        raise MappingError(
            f"root motion bone {mapping.translation_bone!r} must be the Pelvis bone or above it",
            field="translation_bone",
        )


# --- presets -------------------------------------------------------------------------------


def preset_text(mapping: BoneMapping) -> str:
    data = {
        "format": PRESET_FORMAT,
        "version": PRESET_VERSION,
        "convention": mapping.convention,
        "joints": {j: mapping.joints[j] for j in BODY_JOINTS if j in mapping.joints},
        "followers": dict(sorted(mapping.followers.items())),
        "translation_bone": mapping.translation_bone,
        "switches": [[s.bone, s.prop, s.value] for s in mapping.switches],
        "ik_controls": dict(sorted(mapping.ik_controls.items())),
    }
    return json.dumps(data, indent=2) + "\n"


def parse_preset(text: str, source: str = "preset") -> BoneMapping:
    """The mapping saved in ``text``, read but not checked against any rig."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PresetError(f"{source} is not JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, dict) or data.get("format") != PRESET_FORMAT:
        raise PresetError(f"{source} is not a HY-Motion bone-map preset")
    if data.get("version") != PRESET_VERSION:
        raise PresetError(f"{source} has version {data.get('version')!r}; this add-on reads "
                          f"version {PRESET_VERSION}")  # fmt: skip
    convention = data.get("convention")
    if convention != CUSTOM and convention not in rig_conventions.BY_KEY:
        raise PresetError(f"{source} names an unknown convention {convention!r}")
    joints, followers = data.get("joints"), data.get("followers", {})
    ik = data.get("ik_controls", {})
    if not isinstance(joints, dict) or not isinstance(followers, dict) or not isinstance(ik, dict):
        raise PresetError(f"{source}: 'joints', 'followers' and 'ik_controls' must map names "
                          "to names")  # fmt: skip
    if not _str_dict(joints) or not _str_dict(followers) or not _str_dict(ik):
        raise PresetError(f"{source}: 'joints', 'followers' and 'ik_controls' must map names "
                          "to names")  # fmt: skip
    try:
        switches = tuple(
            RigSwitch(str(b), str(p), float(v)) for b, p, v in data.get("switches", [])
        )
    except (TypeError, ValueError) as exc:
        raise PresetError(f"{source}: 'switches' must be [bone, property, value] lists") from exc
    return BoneMapping(
        convention=str(convention),
        joints=dict(joints),
        followers=dict(followers),
        translation_bone=str(data.get("translation_bone") or joints.get("Pelvis", "")),
        switches=switches,
        ik_controls=dict(ik),
    )


def mapping_from_preset(text: str, rig: RigBones, source: str = "preset") -> BoneMapping:
    """The mapping saved in ``text``, for ``rig``.

    A preset saved for a naming convention is refused on a rig of another convention; a custom
    preset must name bones the rig has. The result is validated.
    """
    mapping = parse_preset(text, source)
    detected = rig_conventions.detect(rig.names)
    found = detected.convention.key if detected else CUSTOM
    if mapping.convention != CUSTOM and found != mapping.convention:
        theirs = rig_conventions.BY_KEY[mapping.convention].label
        ours = detected.convention.label if detected else "no known convention"
        raise PresetError(f"{source} is for {theirs} rigs; this rig is {ours}",
                          field="convention")  # fmt: skip
    validate(mapping, rig, "this rig")
    return mapping


def _str_dict(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


_PRESET_NAME = re.compile(r"\w[\w .-]{0,63}")


def preset_path(folder: Path, name: str) -> Path:
    if not _PRESET_NAME.fullmatch(name):  # fullmatch: "$" would let a final newline in
        raise PresetError(
            f"preset name {name!r} must be 1-64 letters, digits, spaces, '.', '-' or '_', "
            "starting with a letter, digit or '_'",
            field="preset_name",
        )
    return folder / f"{name}{PRESET_SUFFIX}"


def save_preset(folder: Path, name: str, mapping: BoneMapping, overwrite: bool = False) -> Path:
    path = preset_path(folder, name)
    with atomic_path(path, overwrite) as temp:
        temp.write_text(preset_text(mapping), encoding="utf-8")
    return path


def load_preset(path: Path, rig: RigBones) -> BoneMapping:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"cannot read preset {path}: {exc.strerror}", path=str(path)) from exc
    return mapping_from_preset(text, rig, f"preset {path.name!r}")


def list_presets(folder: Path) -> list[Path]:
    """The preset files in ``folder``, by name (an unreadable folder has none)."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == PRESET_SUFFIX and p.is_file())
    except OSError:
        return []
