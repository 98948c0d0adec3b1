"""Convention detection, mapping from shape, checks and presets, on every test rig (no bpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blender_addon.core import bone_mapping, rig_conventions, rig_structure
from blender_addon.core.bone_mapping import BoneMapping
from blender_addon.core.errors import FileExists, MappingError, PresetError
from blender_addon.core.rig_bones import RigBones
from tests.addon import rigs

BODIES = (rigs.ADULT_T, rigs.TALL_A, rigs.CHILD_T, rigs.CHILD_A)
#: Rigs whose shape alone gives exactly the joints their names give.
SHAPE_EXACT = ("MIXAMO", "RIGIFY_DEF", "RIGIFY_METARIG", "UE5", "UE4", "VRM", "VROID", "CC",
               "ARP", "SMPL")  # fmt: skip


def left_of_pelvis(rig: RigBones, mapping: dict[str, str], forward: np.ndarray) -> None:
    """Every L_ joint is on the character's left of the pelvis, every R_ joint on its right."""
    left = np.cross([0.0, 0.0, 1.0], forward)
    pelvis = rig.heads[rig.index(mapping["Pelvis"])]
    for joint, bone in mapping.items():
        side = float((rig.heads[rig.index(bone)] - pelvis) @ left)
        if joint.startswith("L_"):
            assert side > 0, f"{joint} -> {bone} is on the right"
        elif joint.startswith("R_"):
            assert side < 0, f"{joint} -> {bone} is on the left"


@pytest.mark.parametrize("key", sorted(rigs.SPECS))
@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.name)
def test_convention_detected_and_every_joint_mapped(key: str, body: rigs.Body) -> None:
    rig = rigs.rig_bones(key, body, roll="twisted")
    mapping = bone_mapping.auto_mapping(rig)
    assert mapping.convention == rigs.EXPECTED[key]
    # Biped's first spine bone turns with the pelvis (it carries the thighs).
    assert mapping.missing_joints() == (["Spine1"] if mapping.convention == "BIPED" else [])
    bone_mapping.validate(mapping, rig)
    left_of_pelvis(rig, mapping.joints, np.array([0.0, -1.0, 0.0]))
    # Everything else is reported as following its parent: fingers at least.
    unmapped = mapping.unmapped(rig)
    assert len(unmapped) == rig.count - len(mapping.mapped_bones() | {mapping.translation_bone})
    assert sum("3" in name for name in unmapped) >= 8  # third finger bones, both hands


def test_convention_specifics() -> None:
    ue5 = bone_mapping.auto_mapping(rigs.rig_bones("UE5"))
    assert ue5.joints["Spine3"] == "spine_05" and "thigh_twist_01_l" in ue5.unmapped(
        rigs.rig_bones("UE5")
    )
    assert bone_mapping.auto_mapping(rigs.rig_bones("UE4")).joints["Spine3"] == "spine_03"
    biped = bone_mapping.auto_mapping(rigs.rig_bones("BIPED"))
    assert biped.translation_bone == "Bip001"  # the centre of mass, above the pelvis
    assert biped.followers == {"Bip001 Spine": "Pelvis"}
    cc = bone_mapping.auto_mapping(rigs.rig_bones("CC"))
    assert cc.followers == {"CC_Base_Pelvis": "Pelvis"}
    mixamo = bone_mapping.auto_mapping(rigs.rig_bones("MIXAMO_NUMBERED"))
    assert mixamo.joints["L_Hip"] == "mixamorig7:LeftUpLeg"


def test_namespaced_and_prefixless_mixamo() -> None:
    original = rigs.rig_bones("MIXAMO").names
    names = [n.replace("mixamorig:", "Character1:mixamorig:") for n in original]
    found = rig_conventions.detect(names)
    assert found is not None and found.convention.key == "MIXAMO"
    assert found.joints["Pelvis"] == "Character1:mixamorig:Hips"
    plain = rig_conventions.detect([n.replace("mixamorig:", "") for n in names])
    assert plain is not None and plain.convention.key == "MIXAMO" and len(plain.joints) == 22


@pytest.mark.parametrize("key", sorted(rigs.SPECS))
@pytest.mark.parametrize("body", (rigs.ADULT_T, rigs.CHILD_A), ids=lambda b: b.name)
def test_unknown_names_mapped_from_shape(key: str, body: rigs.Body) -> None:
    rig = rigs.rig_bones(key, body)
    anonymous = rigs.renamed(rig)
    mapping = bone_mapping.auto_mapping(anonymous)
    assert mapping.convention == bone_mapping.CUSTOM
    bone_mapping.validate(mapping, anonymous)
    left_of_pelvis(anonymous, mapping.joints, np.array([0.0, -1.0, 0.0]))
    if key.split("_NUMBERED")[0] in SHAPE_EXACT:
        named = bone_mapping.auto_mapping(rig).joints
        assert {j: rig.names[anonymous.index(b)] for j, b in mapping.joints.items()} == named


def test_shape_mapping_reads_sides_from_the_feet() -> None:
    """A rig facing +Y (turned 180° in its own data): its left is -X, and the mapping knows."""
    rig = rigs.renamed(rigs.rig_bones("MIXAMO"))
    turn = np.diag([-1.0, -1.0, 1.0])
    turned = RigBones(rig.names, rig.parents, rig.heads @ turn.T, rig.tails @ turn.T,
                      turn @ rig.rest, rig.deform)  # fmt: skip
    joints = rig_structure.guess_joints(turned)
    left_of_pelvis(turned, joints, np.array([0.0, 1.0, 0.0]))
    assert joints == rig_structure.guess_joints(rig)


def test_rig_without_legs_is_refused_by_name() -> None:
    rig = rigs.rig_bones("MIXAMO")
    keep = [i for i, n in enumerate(rig.names) if "Leg" not in n and "Foot" not in n
            and "Toe" not in n]  # fmt: skip
    legless = RigBones(
        tuple(rig.names[i] for i in keep),
        np.array([keep.index(int(rig.parents[i])) if rig.parents[i] >= 0 else -1 for i in keep]),
        rig.heads[keep], rig.tails[keep], rig.rest[keep], rig.deform[keep],
    )  # fmt: skip
    mapping = bone_mapping.auto_mapping(legless)
    with pytest.raises(MappingError, match="no recognisable legs") as caught:
        bone_mapping.validate(mapping, legless, "'Legless'")
    assert "L_Hip" in str(caught.value) and caught.value.field == "L_Hip"
    assert rig_structure.guess_joints(rigs.renamed(legless)) == {}


def test_mapping_errors_name_the_joint_and_bone() -> None:
    rig = rigs.rig_bones("UE5")
    good = bone_mapping.auto_mapping(rig)

    def broken(**changes: str) -> BoneMapping:
        return BoneMapping(good.convention, {**good.joints, **changes}, good.followers,
                           good.translation_bone)  # fmt: skip

    with pytest.raises(MappingError, match="L_Knee and R_Knee are both mapped to bone 'calf_l'"):
        bone_mapping.validate(broken(R_Knee="calf_l"), rig)
    with pytest.raises(MappingError, match="'shin_l', which the rig lacks"):
        bone_mapping.validate(broken(L_Knee="shin_l"), rig)
    with pytest.raises(MappingError, match="not below the Pelvis bone"):
        bone_mapping.validate(broken(L_Wrist="ik_hand_l"), rig)
    no_hips = BoneMapping(good.convention, {k: v for k, v in good.joints.items() if k != "Pelvis"})
    with pytest.raises(MappingError, match="no hips"):
        bone_mapping.validate(no_hips, rig)
    wrong_root = BoneMapping(good.convention, good.joints, {}, "spine_01")
    with pytest.raises(MappingError, match="root motion bone 'spine_01'"):
        bone_mapping.validate(wrong_root, rig)


def test_presets_round_trip_in_a_shared_folder(tmp_path: Path) -> None:
    rig = rigs.rig_bones("MIXAMO", rigs.TALL_A)
    mapping = bone_mapping.auto_mapping(rig)
    edited = BoneMapping(mapping.convention, {**mapping.joints, "L_Foot": "mixamorig:LeftToe_End"},
                         mapping.followers, mapping.translation_bone)  # fmt: skip
    path = bone_mapping.save_preset(tmp_path, "Studio Mixamo", edited)
    assert bone_mapping.list_presets(tmp_path) == [path]
    assert bone_mapping.load_preset(path, rigs.rig_bones("MIXAMO", rigs.CHILD_T)) == edited
    with pytest.raises(FileExists):
        bone_mapping.save_preset(tmp_path, "Studio Mixamo", edited)
    for bad in ("../escape", "walk\n", " lead", "x" * 65):  # as docs/addon.md says
        with pytest.raises(PresetError, match=r"preset name .* starting with a letter"):
            bone_mapping.save_preset(tmp_path, bad, edited)
    assert bone_mapping.list_presets(tmp_path) == [path]
    assert bone_mapping.list_presets(tmp_path / "missing") == []


def test_preset_for_another_convention_is_refused(tmp_path: Path) -> None:
    path = bone_mapping.save_preset(
        tmp_path, "mixamo", bone_mapping.auto_mapping(rigs.rig_bones("MIXAMO"))
    )
    with pytest.raises(PresetError) as caught:
        bone_mapping.load_preset(path, rigs.rig_bones("UE5"))
    assert str(caught.value) == (
        "preset 'mixamo.json' is for Mixamo rigs; this rig is Unreal Engine 5 (Manny / Quinn)"
    )


def test_custom_preset_checks_its_bones(tmp_path: Path) -> None:
    rig = rigs.renamed(rigs.rig_bones("VRM"))
    mapping = bone_mapping.auto_mapping(rig)
    path = bone_mapping.save_preset(tmp_path, "custom", mapping)
    assert bone_mapping.load_preset(path, rig).convention == bone_mapping.CUSTOM
    knee = mapping.joints["L_Knee"]
    names = tuple("my_knee" if n == knee else n for n in rig.names)
    other = RigBones(names, rig.parents, rig.heads, rig.tails, rig.rest, rig.deform)
    with pytest.raises(MappingError, match=f"L_Knee is mapped to bone '{knee}', which this rig"):
        bone_mapping.load_preset(path, other)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not JSON"),
        ('{"format": "other"}', "is not a HY-Motion bone-map preset"),
        ('{"format": "hy-motion-bone-map", "version": 9}', "has version 9"),
        ('{"format": "hy-motion-bone-map", "version": 1, "convention": "X"}', "unknown convention"),
    ],
)
def test_bad_preset_files(text: str, message: str) -> None:
    with pytest.raises(PresetError, match=message):
        bone_mapping.mapping_from_preset(text, rigs.rig_bones("MIXAMO"))
