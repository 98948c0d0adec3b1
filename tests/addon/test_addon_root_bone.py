"""Finishing's *Root bone* on the built-in armature (issue #10), with the real bpy module: the
travel moves onto a root bone without changing one joint of the take, in the scene and in the
FBX and BVH exports; the root's travel per cycle is reported; turning it off gives the take back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, history, rig_export
from blender_addon.core.channels import bone_path
from blender_addon.core.finishing.options import FinishOptions
from blender_addon.core.finishing.pipeline import finish
from blender_addon.core.motion import bvh_import, kinematics
from blender_addon.core.motion.root import ROOT_BONE
from blender_addon.core.rig import C
from blender_addon.export import FBX_REIMPORT_OPTIONS
from blender_addon.props import scene_settings
from tests.addon.test_addon_batch import run_batch
from tests.addon.test_addon_finishing import WALK, _imported, _keys
from tests.addon.test_addon_scene import bone_heads

#: Scene and exports against the finished motion: float32 keys, metres (0.01 mm).
SCENE_TOLERANCE_M = 1e-5
FBX_TOLERANCE_M = 1e-3  # the FBX round trip (as the other FBX checks)


def _expected(options: FinishOptions) -> Any:
    """The finished take as the core computes it from the BVH (world joints, report)."""
    take = bvh_import.load_bvh_take(WALK)
    return finish(take.skeleton, take.rotations, take.root_positions, take.fps, options)


def _world_joints(done: Any) -> np.ndarray:
    clip = done.clip
    return kinematics.joint_positions(clip.skeleton, clip.rotations, clip.root_positions)


def test_root_bone_carries_the_travel_and_changes_no_joint(scene: Any) -> None:
    take = _imported(scene)
    obj = scene_settings(scene).armature
    plain = take.armature
    take.finishing.loop = True
    take.finishing.root_bone = True
    data = take.armature
    assert data != plain and build.has_root_bone(data) and obj.data == data
    assert data.bones["Pelvis"].parent.name == ROOT_BONE and data.bones[ROOT_BONE].parent is None
    assert np.allclose(data.bones[ROOT_BONE].head_local, 0.0)
    done = _expected(FinishOptions(loop=True, root_bone=True))
    names = done.clip.skeleton.joint_names
    frames = range(1, take.frames + 1)
    heads = bone_heads(obj, names, frames)
    want = _world_joints(done) @ C.T
    assert np.abs(heads - want).max() < SCENE_TOLERANCE_M
    # The root is on the ground under the pelvis, facing where it faces.
    root = np.array([_root_head(obj, scene, f) for f in frames])
    pelvis = want[:, 0]
    assert np.abs(root[:, 2]).max() < SCENE_TOLERANCE_M
    assert np.abs(root[:, :2] - pelvis[:, :2]).max() < SCENE_TOLERANCE_M
    # Its net travel per cycle is reported (panel and summary.json): the loop's travel.
    report = json.loads(take.finishing.report)
    travel = report["root_bone"]["travel_per_cycle"]
    assert report["root_bone"]["bone"] == ROOT_BONE
    assert travel == report["loop"]["travel_per_cycle"] and travel["distance_m"] > 0.5
    assert "root/cycle" in take.finishing.status
    # Turning it off: the same motion on the plain armature, no root keys left.
    take.finishing.root_bone = False
    assert take.armature == plain and obj.data == plain
    assert build.find_curve(take.action, bone_path(ROOT_BONE, "location"), 0) is None
    heads = bone_heads(obj, names, frames)
    assert np.abs(heads - want).max() < SCENE_TOLERANCE_M
    take.finishing.loop = False
    np.testing.assert_array_equal(_keys(take.action), _keys(take.raw_action))


def _root_head(obj: Any, scene: Any, frame: int) -> np.ndarray:
    scene.frame_set(frame)
    return np.array(obj.matrix_world @ obj.pose.bones[ROOT_BONE].head)


def test_root_bone_with_in_place_reports_what_the_root_keeps(scene: Any) -> None:
    take = _imported(scene)
    take.finishing.in_place = True
    take.finishing.in_place_x = False  # forward travel removed, sideways kept on the root
    take.finishing.root_bone = True
    report = json.loads(take.finishing.report)
    full, left = report["travel_per_cycle"], report["root_bone"]["travel_per_cycle"]
    assert left["offset_m"] == [full["offset_m"][0], 0.0, 0.0]
    assert left["turn_deg"] == full["turn_deg"] and left["distance_m"] < full["distance_m"]


def test_new_takes_and_other_takes_stay_on_the_plain_armature(scene: Any) -> None:
    first = _imported(scene)
    first.finishing.root_bone = True
    second = _imported_again(scene)
    assert not build.has_root_bone(second.armature)
    obj = history.apply_take(scene, second)
    assert obj == scene_settings(scene).armature and obj.data == second.armature
    obj = history.apply_take(scene, first)  # the same object, its armature switched
    assert obj == scene_settings(scene).armature and build.has_root_bone(obj.data)
    assert len([o for o in bpy.data.objects if o.type == "ARMATURE"]) == 1


def _imported_again(scene: Any) -> Any:
    assert bpy.ops.hy_motion.import_bvh(filepath=str(WALK)) == {"FINISHED"}
    return scene_settings(scene).takes[-1]


@pytest.mark.parametrize("engine", ["BLENDER", "UNREAL"])
def test_fbx_has_the_root_on_top_and_the_same_joints(scene: Any, tmp_path: Path,
                                                     engine: str) -> None:  # fmt: skip
    take = _imported(scene)
    take.finishing.root_bone = True
    scene_settings(scene).retarget.engine = engine
    (path,) = history.export_take(scene, take, tmp_path, ["FBX"])
    done = _expected(FinishOptions(root_bone=True))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.fbx(filepath=str(path), **FBX_REIMPORT_OPTIONS) == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    expected_name = rig_export.UNREAL_ARMATURE_NAME if engine == "UNREAL" else "HY-Motion"
    # (Blender's importer may add ".001"); Unreal drops "Armature": "root" is the skeleton root
    assert obj.name.startswith(expected_name)
    tops = [b.name for b in obj.data.bones if b.parent is None]
    assert tops == [ROOT_BONE] and len(obj.data.bones) == 23
    assert obj.data.bones["Pelvis"].parent.name == ROOT_BONE
    names = done.clip.skeleton.joint_names
    frames = range(1, done.clip.frames + 1, 7)
    heads = bone_heads(obj, names, frames)
    want = _world_joints(done)[[f - 1 for f in frames]] @ C.T
    assert np.abs(heads - want).max() < FBX_TOLERANCE_M
    roots = np.array([_root_head(obj, bpy.context.scene, f) for f in frames])
    assert np.abs(roots[:, 2]).max() < FBX_TOLERANCE_M  # on the ground
    assert np.ptp(roots[:, 1]) > 0.5  # and travelling


def test_bvh_of_a_root_bone_take_is_the_same_motion(scene: Any, tmp_path: Path) -> None:
    # BVH has no root bone: its root joint (the pelvis) carries the travel as before.
    take = _imported(scene)
    take.finishing.root_bone = True
    (path,) = history.export_take(scene, take, tmp_path, ["BVH"])
    clip = bvh_import.read_bvh(path)
    done = _expected(FinishOptions(root_bone=True))
    pelvis = clip.root_positions() / 100.0  # the writer's centimetres
    assert np.abs(pelvis - done.clip.root_positions).max() < 1e-4


@pytest.mark.slow
def test_batch_root_bone_flag(scene: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_batch("--bvh", str(WALK), "--out", str(out), "--formats", "fbx",
                       "--root-bone", "--loop", "--engine", "unreal")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finishing"]["root_bone"] is True
    (item,) = summary["items"]
    report = item["finishing"]["report"]
    assert report["root_bone"]["travel_per_cycle"] == report["loop"]["travel_per_cycle"]
    (fbx,) = item["files"]
    assert bpy.ops.import_scene.fbx(filepath=fbx, **FBX_REIMPORT_OPTIONS) == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert [b.name for b in obj.data.bones if b.parent is None] == [ROOT_BONE]


def test_a_root_bone_take_on_the_artist_s_rig_moves_as_without(scene: Any) -> None:
    # The character follows the take's motion (read back through the root), not its root keys.
    from tests.addon.test_retarget_history import character_scene

    rig, takes, _, _ = character_scene(scene)
    history.apply_take(scene, takes[0])
    hips = []
    for root_bone in (False, True):
        takes[0].finishing.root_bone = root_bone
        assert build.has_root_bone(takes[0].armature) == root_bone
        hips.append(bone_heads(rig, ("mixamorig:Hips", "mixamorig:LeftFoot"), range(1, 41, 3)))
    assert np.abs(hips[1] - hips[0]).max() < SCENE_TOLERANCE_M


def test_root_bone_survives_save_and_reload(scene: Any, tmp_path: Path) -> None:
    take = _imported(scene)
    take.finishing.root_bone = True
    path = tmp_path / "rooted.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    take = scene_settings(scene).takes[0]
    obj = scene_settings(scene).armature
    assert build.has_root_bone(take.armature) and obj.data == take.armature
    done = _expected(FinishOptions(root_bone=True))
    names = done.clip.skeleton.joint_names
    want = _world_joints(done) @ C.T
    frames = range(1, take.frames + 1, 11)
    heads = bone_heads(obj, names, frames)
    assert np.abs(heads - want[[f - 1 for f in frames]]).max() < SCENE_TOLERANCE_M
    take.finishing.root_bone = False  # the plain armature is made again if it was not saved
    assert not build.has_root_bone(take.armature) and obj.data == take.armature
    np.testing.assert_array_equal(_keys(take.action), _keys(take.raw_action))
