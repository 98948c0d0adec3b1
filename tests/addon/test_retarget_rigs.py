"""The artist's rig read from real Blender armatures: every convention, Blender's own Rigify,
object transforms, and the rigs a take must refuse (bpy)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import rig_reader
from blender_addon.core import bone_mapping
from blender_addon.core.errors import RigError
from blender_addon.core.rig_bones import RigBones
from tests.addon import rigs


@pytest.mark.parametrize("key", sorted(rigs.SPECS))
def test_every_convention_reads_back_and_maps(scene: Any, key: str) -> None:
    expected = rigs.rig_bones(key, rigs.TALL_A, roll="twisted")
    obj = rigs.build_armature(scene, expected, key)
    read = rig_reader.rig_bones(obj)
    assert set(read.names) == set(expected.names)
    order = [read.index(n) for n in expected.names]
    np.testing.assert_allclose(read.heads[order], expected.heads, atol=1e-5)
    np.testing.assert_allclose(read.rest[order], expected.rest, atol=1e-4)
    mapping = bone_mapping.auto_mapping(read)
    assert mapping == bone_mapping.auto_mapping(expected)
    bone_mapping.validate(mapping, read, repr(obj.name))


def test_rotated_and_scaled_rig_is_measured_in_metres(scene: Any) -> None:
    """An FBX-style rig: centimetre bones, object scale 0.01, turned 90° up about X."""
    rig = rigs.rig_bones("MIXAMO")
    turn = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # +90° about X
    inner = RigBones(rig.names, rig.parents, 100 * rig.heads @ turn, 100 * rig.tails @ turn,
                     turn.T @ rig.rest, rig.deform)  # fmt: skip
    obj = rigs.build_armature(scene, inner, "FBX rig")
    obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    obj.scale = (0.01, 0.01, 0.01)
    scene.view_layers[0].update()
    read = rig_reader.rig_bones(obj)
    assert read.object_scale == pytest.approx(0.01)
    order = [read.index(n) for n in rig.names]
    np.testing.assert_allclose(read.heads[order], rig.heads, atol=1e-5)
    np.testing.assert_allclose(read.rest[order], rig.rest, atol=1e-4)
    assert bone_mapping.auto_mapping(read).joints == bone_mapping.auto_mapping(rig).joints


@pytest.fixture(scope="module")
def rigify(addon: None) -> Iterator[tuple[RigBones, RigBones, dict[str, Any]]]:
    """Blender's Rigify human: (metarig, generated rig, the rig's IK/FK properties)."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    metarig, rig = rigs.rigify_rigs(bpy.context.scene)
    switches = {
        bone: dict(rig.pose.bones[bone].items())
        for bone in (
            "upper_arm_parent.L",
            "upper_arm_parent.R",
            "thigh_parent.L",
            "thigh_parent.R",
            "torso",
        )
    }
    yield rig_reader.rig_bones(metarig), rig_reader.rig_bones(rig), switches
    # Registered classes crash or hang some bpy versions at exit.
    addon_utils.disable("rigify", default_set=True)


def test_blender_rigify_generated_rig_maps_to_fk_controls(rigify: Any) -> None:
    _, rig, switches = rigify
    mapping = bone_mapping.auto_mapping(rig)
    assert mapping.convention == "RIGIFY"
    assert mapping.joints["Pelvis"] == "torso"
    assert mapping.joints["L_Shoulder"] == "upper_arm_fk.L"
    assert mapping.joints["R_Foot"] == "toe_fk.R"
    assert mapping.followers == {
        "spine_fk": "Pelvis",
        "ORG-shoulder.L": "L_Collar",
        "ORG-shoulder.R": "R_Collar",
    }
    bone_mapping.validate(mapping, rig)
    # The take switches arms and legs to FK through the rig's own properties.
    keyed = {(s.bone, s.prop) for s in mapping.switches}
    assert keyed >= {("upper_arm_parent.L", "IK_FK"), ("thigh_parent.R", "FK_limb_follow"),
                     ("torso", "head_follow"), ("torso", "neck_follow")}  # fmt: skip
    for bone, prop in keyed:
        assert prop in switches[bone], (bone, prop)
    assert len(mapping.unmapped(rig)) > 600  # face, fingers, tweaks, MCH and DEF bones


def test_blender_rigify_metarig(rigify: Any) -> None:
    metarig, _, _ = rigify
    mapping = bone_mapping.auto_mapping(metarig)
    assert mapping.convention == "RIGIFY_METARIG"
    assert mapping.joints["Head"] == "spine.006" and mapping.joints["L_Ankle"] == "foot.L"
    bone_mapping.validate(mapping, metarig)


def test_not_an_armature(scene: Any) -> None:
    mesh = bpy.data.objects.new("Body", bpy.data.meshes.new("Body"))
    scene.collection.objects.link(mesh)
    with pytest.raises(RigError, match="'Body' is a mesh, not an armature"):
        rig_reader.rig_bones(mesh)
    with pytest.raises(RigError, match="no armature is selected"):
        rig_reader.check_rig(None)


def test_rig_in_edit_mode(scene: Any) -> None:
    obj = rigs.build_armature(scene, rigs.rig_bones("UE5"), "Manny")
    from blender_addon import build

    with build.object_context(obj):
        bpy.ops.object.mode_set(mode="EDIT")
    try:
        with pytest.raises(RigError, match="'Manny' is in Edit Mode"):
            rig_reader.rig_bones(obj)
    finally:
        with build.object_context(obj):
            bpy.ops.object.mode_set(mode="OBJECT")


def test_non_uniform_and_mirrored_scale(scene: Any) -> None:
    obj = rigs.build_armature(scene, rigs.rig_bones("VRM"), "Avatar")
    obj.scale = (1.0, 2.0, 1.0)
    scene.view_layers[0].update()
    with pytest.raises(RigError, match=r"non-uniform scale \(1, 2, 1\)"):
        rig_reader.rig_bones(obj)
    obj.scale = (-1.0, 1.0, 1.0)
    scene.view_layers[0].update()
    with pytest.raises(RigError, match="mirrored"):
        rig_reader.rig_bones(obj)


def test_linked_rig(scene: Any, tmp_path: Path) -> None:
    obj = rigs.build_armature(scene, rigs.rig_bones("CC"), "Hero")
    library = tmp_path / "characters.blend"
    bpy.data.libraries.write(str(library), {obj})
    bpy.data.objects.remove(obj)
    with bpy.data.libraries.load(str(library), link=True) as (_, into):
        into.objects = ["Hero"]
    linked = into.objects[0]
    scene.collection.objects.link(linked)
    with pytest.raises(RigError, match=r"'Hero' is linked from .*characters\.blend"):
        rig_reader.rig_bones(linked)
