"""Takes on the artist's rig through the history and the panel's operators (bpy): one Action per
take and rig, the artist's own actions and NLA left alone, re-apply replacing only that take's
action, compare, delete, and nothing half-made on errors."""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, history, rig_history, rig_takes
from blender_addon.core import bone_mapping
from blender_addon.core.errors import MappingError, RigError
from blender_addon.core.session import ServerInfo
from blender_addon.props import scene_settings
from tests.addon import rigs
from tests.addon.test_addon_scene import make_result


def character_scene(scene: Any) -> tuple[Any, list[Any], Any, Any]:
    """A scene with 3 takes, a Mixamo character playing the artist's own action and an NLA
    strip of another one: (rig, takes, artist action, NLA action)."""
    takes = history.add_result(scene, make_result(3, 40), ServerInfo(version="t"))
    rig = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.TALL_A), "Hero")
    anim = rig.animation_data_create()
    artist = bpy.data.actions.new("Hero idle")
    rig.pose.bones["mixamorig:Head"].rotation_mode = "QUATERNION"
    rig.pose.bones["mixamorig:Head"].keyframe_insert("rotation_quaternion", frame=1)
    artist_keyed = anim.action  # keyframe_insert made an action (slotted on 4.4+)
    assert artist_keyed is not None
    artist.use_fake_user = False
    track = anim.nla_tracks.new()
    nla_action = bpy.data.actions.new("Hero wave")
    nla_action.use_fake_user = True
    track.strips.new("wave", 1, nla_action)
    settings = scene_settings(scene)
    settings.target = "SELECTED_ARMATURE"
    settings.retarget.rig = rig
    bpy.data.actions.remove(artist)
    return rig, takes, artist_keyed, nla_action


def ours(rig: Any) -> list[str]:
    return sorted(a.name for a in bpy.data.actions if a.get(rig_takes.TAKE_KEY) is not None)


def test_apply_reapply_compare_delete(scene: Any) -> None:
    rig, takes, artist, nla_action = character_scene(scene)
    settings = scene_settings(scene)
    history.apply_take(scene, takes[0])
    first = rig.animation_data.action
    assert first.name == rig_takes.action_name(takes[0].name, "Hero")
    assert artist.use_fake_user  # the artist's action survives saving without its user
    assert len(rig.animation_data.nla_tracks) == 1
    assert rig.animation_data.nla_tracks[0].strips[0].action == nla_action
    assert (scene.frame_start, scene.frame_end) == (1, 40)
    # The take moves the character: the hips travel like the take's pelvis.
    scene.frame_set(1)
    start = np.array(rig.pose.bones["mixamorig:Hips"].head)
    scene.frame_set(40)
    assert np.linalg.norm(np.array(rig.pose.bones["mixamorig:Hips"].head) - start) > 0.1

    history.apply_take(scene, takes[1])
    second = rig.animation_data.action
    assert second != first and len(ours(rig)) == 2
    history.apply_take(scene, takes[0])  # same options: the same action plays again
    assert rig.animation_data.action == first and len(ours(rig)) == 2

    settings.retarget.root_motion = "IN_PLACE"  # other options: only take 0's action is remade
    history.apply_take(scene, takes[0])
    remade = rig.animation_data.action
    assert len(ours(rig)) == 2 and second.name in ours(rig)
    assert rig_history.record_for(takes[0], rig).action == remade
    scene.frame_set(40)
    hips = np.array(rig.pose.bones["mixamorig:Hips"].head)
    scene.frame_set(1)
    travel = np.array(rig.pose.bones["mixamorig:Hips"].head) - hips
    assert np.hypot(travel[0], travel[1]) < 1e-4  # in place: no travel along the ground

    assert remade.name == rig_takes.action_name(takes[0].name, "Hero")
    settings.retarget.root_motion = "KEEP"
    copies = history.compare_takes(scene, [takes[1], takes[1]])
    assert [c.animation_data.action for c in copies] == [second, second]
    assert all(c.data == rig.data for c in copies)
    assert copies[0].location.x < copies[1].location.x

    history.delete_take(scene, 0)  # its action on the rig goes
    assert ours(rig) == [second.name]
    history.apply_take(scene, settings.takes[0])  # was takes[1]
    history.delete_take(scene, 0)
    assert rig.animation_data.action == artist
    assert ours(rig) == []
    assert rig.animation_data.nla_tracks[0].strips[0].action == nla_action


def test_operators_choose_and_map_the_character(scene: Any, tmp_path: Any) -> None:
    rig, takes, _, _ = character_scene(scene)
    settings = scene_settings(scene)
    settings.retarget.rig = None
    settings.target = "NEW_ARMATURE"
    body = bpy.data.objects.new("Hero body", bpy.data.meshes.new("Hero body"))
    scene.collection.objects.link(body)
    body.parent = rig
    bpy.context.view_layer.objects.active = body  # the mesh selected: its armature is used
    assert bpy.ops.hy_motion.use_character() == {"FINISHED"}
    assert settings.target == "SELECTED_ARMATURE" and settings.retarget.rig == rig
    assert settings.retarget.mapping_label == "Mixamo"
    rows = {row.name: row.bone for row in settings.retarget.mapping}
    assert rows["L_Knee"] == "mixamorig:LeftLeg"
    assert "bones follow their parents" in settings.retarget.unmapped
    # An edit in the panel lands on the rig; a bone mapped twice is refused when applied.
    next(r for r in settings.retarget.mapping if r.name == "R_Knee").bone = "mixamorig:LeftLeg"
    with pytest.raises(MappingError, match="L_Knee and R_Knee are both mapped"):
        history.apply_take(scene, takes[0])
    assert ours(rig) == []  # nothing was made
    assert bpy.ops.hy_motion.map_character() == {"FINISHED"}
    settings.retarget.preset_folder = str(tmp_path)
    assert bpy.ops.hy_motion.save_mapping(name="hero") == {"FINISHED"}
    # An existing preset is replaced only with the dialog's Overwrite ticked.
    with pytest.raises(RuntimeError, match=r"hero\.json already exists"):
        bpy.ops.hy_motion.save_mapping(name="hero")
    assert bpy.ops.hy_motion.save_mapping(name="hero", overwrite=True) == {"FINISHED"}
    settings.retarget.preset = "hero"  # the folder's presets are listed in the panel
    assert bpy.ops.hy_motion.load_mapping() == {"FINISHED"}
    assert bpy.ops.hy_motion.apply_take(index=0) == {"FINISHED"}
    assert len(ours(rig)) == 1
    # A preset of another convention is refused, and the rig keeps its mapping.
    ue5 = bone_mapping.auto_mapping(rigs.rig_bones("UE5"))
    bone_mapping.save_preset(tmp_path, "manny", ue5)
    with pytest.raises(RuntimeError, match="is for Unreal Engine 5"):
        bpy.ops.hy_motion.load_mapping(filepath=str(tmp_path / "manny.json"))
    assert rig_takes.rig_mapping(rig).convention == "MIXAMO"


def test_rig_errors_leave_the_rig_alone(scene: Any) -> None:
    rig, takes, artist, _ = character_scene(scene)
    with build.object_context(rig):
        bpy.ops.object.mode_set(mode="EDIT")
    try:
        with pytest.raises(RigError, match="is in Edit Mode"):
            history.apply_take(scene, takes[0])
    finally:
        with build.object_context(rig):
            bpy.ops.object.mode_set(mode="OBJECT")
    rig.scale = (1.0, 1.0, 3.0)
    scene.view_layers[0].update()
    with pytest.raises(RigError, match="non-uniform scale"):
        history.apply_take(scene, takes[0])
    assert rig.animation_data.action == artist and ours(rig) == []
    rig.scale = (0.5, 0.5, 0.5)  # uniform: handled
    scene.view_layers[0].update()
    history.apply_take(scene, takes[0])
    assert len(ours(rig)) == 1


def test_no_character_chosen(scene: Any) -> None:
    takes = history.add_result(scene, make_result(1, 30), ServerInfo(version="t"))
    scene_settings(scene).target = "SELECTED_ARMATURE"
    with pytest.raises(RigError, match="no character chosen"):
        history.apply_take(scene, takes[0])


def test_fingers_the_artist_animates_keep_their_keys(scene: Any) -> None:
    rig, takes, _, nla_action = character_scene(scene)
    finger = "mixamorig:LeftHandIndex2"
    strip_action = bpy.data.actions.new("Hero grip")
    track = rig.animation_data.nla_tracks.new()
    rig.pose.bones[finger].rotation_mode = "QUATERNION"
    anim = rig.animation_data
    saved = anim.action
    anim.action = strip_action
    rig.pose.bones[finger].keyframe_insert("rotation_quaternion", frame=1)
    anim.action = saved
    track.strips.new("grip", 1, strip_action)
    history.apply_take(scene, takes[0])
    keyed = {c.data_path.split('"')[1] for c in _curves(rig.animation_data.action)}
    assert finger not in keyed  # the artist's grip shows through from the NLA
    assert "mixamorig:LeftHandIndex3" in keyed and "mixamorig:Head" in keyed
    del nla_action


def _curves(action: Any) -> list[Any]:
    if not build.IS_SLOTTED:
        return list(action.fcurves)
    return list(action.layers[0].strips[0].channelbag(action.slots[0]).fcurves)


def test_finishing_a_take_updates_the_character_playing_it(scene: Any) -> None:
    # Finishing on a retargeted take: the rig's Action is remade from the finished take at once.
    rig, takes, _, _ = character_scene(scene)
    history.apply_take(scene, takes[0])
    before = rig.animation_data.action
    assert build.action_frames(before) == (1, 40)
    takes[0].finishing.trim_start, takes[0].finishing.trim_end = 5, 30
    after = rig.animation_data.action
    assert after.name == rig_takes.action_name(takes[0].name, "Hero")
    assert build.action_frames(after) == (1, 26)
    assert (scene.frame_start, scene.frame_end) == (1, 26)
    assert len(takes[0].rig_actions) == 1 and takes[0].rig_actions[0].action == after
    # The rig follows the finished take: hips where the take's pelvis is on frame 5 before.
    scene.frame_set(1)
    hips_trimmed = rig.matrix_world @ rig.pose.bones["mixamorig:Hips"].head
    takes[0].finishing.trim_start, takes[0].finishing.trim_end = 0, 0
    assert build.action_frames(rig.animation_data.action) == (1, 40)
    scene.frame_set(5)
    hips_raw = rig.matrix_world @ rig.pose.bones["mixamorig:Hips"].head
    assert (hips_trimmed - hips_raw).length < 1e-4
