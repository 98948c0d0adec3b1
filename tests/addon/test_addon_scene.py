"""Scene building and exports with the real bpy module, on synthetic motion (no daemon)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import build, export, history
from blender_addon.core.errors import ExportError, FileExists
from blender_addon.core.rig import C
from blender_addon.core.session import ServerInfo
from shared_protocol import Result
from tests.addon import synthetic

TOLERANCE_M = 0.001


def make_result(candidates: int = 2, frames: int = 45, prompt: str = "a person walks") -> Result:
    rotations, pelvis, positions = synthetic.takes(candidates, frames)
    return Result(
        job_id="job-1", model="test", model_label="Test", untrained=True, prompt=prompt,
        frames=frames, fps=30, seeds=tuple(100 + k for k in range(candidates)), guidance=5.0,
        steps=10, skeleton=synthetic.skeleton(), rotations=rotations, root_positions=pelvis,
        joint_positions=positions,
    )  # fmt: skip


def bone_heads(obj: Any, names: tuple[str, ...], frames: range) -> np.ndarray:
    """World bone heads (F, J, 3), Blender space, evaluated frame by frame."""
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(frame)
        matrix = np.array(obj.matrix_world)
        heads = np.array([obj.pose.bones[n].head for n in names])
        out.append(heads @ matrix[:3, :3].T + matrix[:3, 3])
    return np.array(out)


def test_armature_from_skeleton(scene: Any) -> None:
    obj = build.build_armature(scene, synthetic.skeleton())
    bones = obj.data.bones
    assert len(bones) == 22
    assert {b.name for b in bones} == set(synthetic.NAMES)
    for name, parent in zip(synthetic.NAMES, synthetic.PARENTS, strict=True):
        bone = bones[name]
        assert (bone.parent.name if bone.parent else None) == (
            synthetic.NAMES[parent] if parent >= 0 else None
        )
        head = np.array(bone.head_local)
        np.testing.assert_allclose(head, C @ synthetic.REST[synthetic.NAMES.index(name)], atol=1e-6)
    # Sensible rolls: legs' Z axes face forward (-Y), arms' face up.
    assert bones["L_Knee"].matrix_local.col[2][1] < -0.9
    assert bones["L_Elbow"].matrix_local.col[2][2] > 0.9


def test_every_frame_of_every_candidate_matches_within_1mm(scene: Any) -> None:
    result = make_result(candidates=3, frames=40)
    takes = history.add_result(scene, result, ServerInfo(version="t"))
    assert [t.seed for t in takes] == ["100", "101", "102"]
    objects = history.compare_takes(scene, takes)
    for k, obj in enumerate(objects):
        heads = bone_heads(obj, result.skeleton.joint_names, range(1, 41))
        expected = result.joint_positions[k] @ C.T + np.array(obj.location)
        assert np.abs(heads - expected).max() < TOLERANCE_M
        assert obj.location.x == pytest.approx((k - 1) * scene.hy_motion.spacing)


def test_compare_shows_the_active_takes_generate_or_every_take(scene: Any) -> None:
    """As docs/addon.md states: the active take and its sibling candidates by default, every
    take with *All*; centred on the origin, in one collection a new comparison replaces."""
    history.add_result(scene, make_result(candidates=2, frames=30), ServerInfo())
    waves = dataclasses.replace(make_result(3, 30, "a person waves"), job_id="job-2")
    second = [t.name for t in history.add_result(scene, waves, ServerInfo())]
    scene.hy_motion.active_take = 3  # a take of the second Generate
    assert bpy.ops.hy_motion.compare_takes() == {"FINISHED"}
    compared = bpy.data.collections[history.COMPARE_COLLECTION].objects
    assert sorted(o.name for o in compared) == sorted(second)
    assert sorted(o.location.x for o in compared) == pytest.approx([-1.0, 0.0, 1.0])
    assert bpy.ops.hy_motion.compare_takes(scope="ALL") == {"FINISHED"}
    assert len(compared) == 5
    assert sorted(o.location.x for o in compared) == pytest.approx([-2, -1, 0, 1, 2])


def test_other_scene_fps_resamples(scene: Any) -> None:
    scene.render.fps = 24
    result = make_result(candidates=1, frames=61)
    (take,) = history.add_result(scene, result, ServerInfo())
    obj = history.apply_take(scene, take)
    assert (scene.frame_start, scene.frame_end) == (1, 49)  # 2 s at 24 fps
    heads = bone_heads(obj, result.skeleton.joint_names, range(1, 50, 4))
    expected = result.joint_positions[0][::5] @ C.T  # the instants both rates share
    assert np.abs(heads - expected).max() < TOLERANCE_M


def test_history_is_saved_in_the_blend(scene: Any, tmp_path: Path) -> None:
    result = make_result(candidates=2, frames=30)
    takes = history.add_result(scene, result, ServerInfo(version="9.9"))
    history.apply_take(scene, takes[1])
    assert bpy.ops.hy_motion.rename_take(index=1, name="keeper") == {"FINISHED"}
    path = tmp_path / "takes.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    settings = bpy.context.scene.hy_motion
    assert [t.name for t in settings.takes] == ["a_person_walks_s100", "keeper"]
    take = settings.takes[1]
    assert (take.prompt, take.seed, take.server_version, take.untrained) == (
        "a person walks", "101", "9.9", True,
    )  # fmt: skip
    assert take.action.name == "HYM keeper" and take.created
    obj = settings.armature
    heads = bone_heads(obj, result.skeleton.joint_names, range(1, 31, 7))
    assert np.abs(heads - result.joint_positions[1][::7] @ C.T).max() < TOLERANCE_M
    # Apply the other take, then delete it: its action goes too.
    assert bpy.ops.hy_motion.apply_take(index=0) == {"FINISHED"}
    assert obj.animation_data.action == settings.takes[0].action
    action_name = settings.takes[0].action.name
    assert bpy.ops.hy_motion.delete_take(index=0) == {"FINISHED"}
    assert len(settings.takes) == 1 and action_name not in bpy.data.actions


def test_fbx_round_trip(scene: Any, tmp_path: Path) -> None:
    result = make_result(candidates=1, frames=50)
    (take,) = history.add_result(scene, result, ServerInfo())
    (path,) = history.export_take(scene, take, tmp_path, ["FBX"])
    assert path.name == "a_person_walks_s100.fbx"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.import_scene.fbx(filepath=str(path), **export.FBX_REIMPORT_OPTIONS) == {
        "FINISHED"
    }
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    imported = bpy.context.scene
    assert len(obj.data.bones) == 22
    assert tuple(obj.animation_data.action.frame_range) == (1.0, 50.0)
    assert imported.render.fps == 30 and imported.render.fps_base == pytest.approx(1.0)
    heads = bone_heads(obj, result.skeleton.joint_names, range(1, 51))
    assert np.abs(heads - result.joint_positions[0] @ C.T).max() < TOLERANCE_M


def test_bvh_round_trip_is_y_up(scene: Any, tmp_path: Path) -> None:
    result = make_result(candidates=1, frames=50)
    (take,) = history.add_result(scene, result, ServerInfo())
    (path,) = history.export_take(scene, take, tmp_path, ["BVH"])
    text = path.read_text()
    pelvis_offset = [float(v) for v in text.split("OFFSET", 1)[1].split()[:3]]
    assert pelvis_offset == [0.0, 0.0, 0.0]  # the root channels alone place the pelvis
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # Documented re-import: default axes (the file is Y up), centimetres to metres.
    status = bpy.ops.import_anim.bvh(filepath=str(path), **export.BVH_REIMPORT_OPTIONS)
    assert status == {"FINISHED"}
    (obj,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    imported = bpy.context.scene
    assert len(obj.data.bones) == 22
    assert tuple(obj.animation_data.action.frame_range) == (1.0, 50.0)
    assert round(imported.render.fps / imported.render.fps_base) == 30
    heads = bone_heads(obj, result.skeleton.joint_names, range(1, 51))
    assert np.abs(heads - result.joint_positions[0] @ C.T).max() < TOLERANCE_M


def test_export_refuses_overwrite_and_leaves_nothing_on_error(scene: Any, tmp_path: Path) -> None:
    (take,) = history.add_result(scene, make_result(candidates=1, frames=30), ServerInfo())
    (first,) = history.export_take(scene, take, tmp_path, ["FBX"])
    stamp = first.stat().st_mtime_ns
    with pytest.raises(FileExists):
        history.export_take(scene, take, tmp_path, ["FBX"])
    assert first.stat().st_mtime_ns == stamp
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(ExportError):
        history.export_take(scene, take, blocker / "sub", ["FBX", "BVH"])
    # Exists and not confirmed: reported (an error from bpy.ops), not overwritten.
    with pytest.raises(RuntimeError, match="already exists — Confirm the overwrite"):
        bpy.ops.hy_motion.export_takes(scope="ALL", directory=str(tmp_path))
    assert first.stat().st_mtime_ns == stamp
    assert bpy.ops.hy_motion.export_takes(scope="ALL", directory=str(tmp_path), overwrite=True) == {
        "FINISHED"
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_person_walks_s100.fbx", "not_a_folder"]
