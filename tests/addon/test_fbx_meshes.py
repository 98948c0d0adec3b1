"""*Include meshes* (panel) / ``--no-meshes`` (batch): an FBX of a take on the artist's rig holds
the meshes skinned to the rig (a character file) or the skeleton and the animation only, the same
way for every bone choice; read back by assimp (an independent reader) and Blender's importer,
and the artist's file left as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import export, history
from blender_addon.props import scene_settings
from tests.addon import rigs
from tests.addon.test_addon_batch import run_batch
from tests.addon.test_deform_export import file_state, skinned_mesh
from tests.addon.test_retarget_export import assimp_tree, character, needs_assimp

UE5_SKINNED = ("pelvis", "thigh_l", "calf_r", "upperarm_l", "hand_r")
MIXAMO_SKINNED = ("mixamorig:Hips", "mixamorig:LeftUpLeg", "mixamorig:RightLeg",
                  "mixamorig:LeftArm", "mixamorig:RightHand")  # fmt: skip
SAMPLED = range(1, 46, 11)
RUN = Path(__file__).resolve().parents[2] / "examples" / "mocap" / "run_cmu_02_03.bvh"


def playing_character(scene: Any) -> tuple[Any, Any, Any]:
    """(UE5 rig 'Manny' playing its first take, that take, the mesh 'Body' skinned to it)."""
    rig, takes = character(scene)
    mesh = skinned_mesh(scene, rig, UE5_SKINNED)
    history.apply_take(scene, takes[0])
    return rig, takes[0], mesh


def selection(scene: Any) -> tuple[list[str], str]:
    active = bpy.context.view_layer.objects.active
    return sorted(o.name for o in scene.objects if o.select_get()), active.name if active else ""


def evaluated_vertices(mesh: Any, frames: range) -> np.ndarray:
    """World positions (F, V, 3) of ``mesh``'s vertices as Blender deforms them."""
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(frame)
        evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
        data = evaluated.to_mesh()
        world = np.array(evaluated.matrix_world)
        local = np.array([tuple(v.co) for v in data.vertices])
        out.append(local @ world[:3, :3].T + world[:3, 3])
        evaluated.to_mesh_clear()
    return np.array(out)


@needs_assimp
@pytest.mark.parametrize("deform_only", [False, True], ids=["all_bones", "deform_only"])
@pytest.mark.parametrize("include_meshes", [True, False], ids=["meshes", "no_meshes"])
def test_meshes_are_one_choice_for_every_export(
    scene: Any, tmp_path: Path, deform_only: bool, include_meshes: bool
) -> None:
    rig, take, mesh = playing_character(scene)
    settings = scene_settings(scene).retarget
    settings.engine, settings.deform_only = "UNREAL", deform_only
    settings.include_meshes = include_meshes
    before, selected = file_state(), selection(scene)
    (path,) = history.export_take(scene, take, tmp_path, ["FBX"])
    parents, skins = assimp_tree(path, tmp_path)
    written = {b.name for b in rig.data.bones if b.name in parents}
    assert any(name.startswith("ik_") for name in written) is not deform_only
    if include_meshes:
        # Skinned to the bones the file holds, weighted where it was on the rig.
        assert "Body" in parents
        (skin,) = skins.values()
        assert set(skin) <= written
        assert {bone: count for bone, count in skin.items() if count} == dict.fromkeys(
            UE5_SKINNED, 3
        )
    else:
        assert skins == {} and "Body" not in parents
    # The artist's file as it was: no data added or left, names, modifier, selection.
    assert file_state() == before and selection(scene) == selected
    assert rig.name == "Manny" and mesh.name == "Body" and scene.name == "Scene"
    assert mesh.modifiers["Armature"].object == rig


@pytest.mark.parametrize("deform_only", [False, True], ids=["all_bones", "deform_only"])
def test_the_mesh_moves_with_the_take_in_blenders_importer(
    scene: Any, tmp_path: Path, deform_only: bool
) -> None:
    """Blender's importer reads the Unity file: the mesh skinned to the imported armature, its
    vertices where the artist's mesh is on every sampled frame (within 1 mm)."""
    _, take, mesh = playing_character(scene)
    settings = scene_settings(scene).retarget
    settings.engine, settings.deform_only = "UNITY", deform_only
    (path,) = history.export_take(scene, take, tmp_path, ["FBX"])
    expected = evaluated_vertices(mesh, SAMPLED)
    known = set(bpy.data.objects)
    bpy.ops.import_scene.fbx(filepath=str(path), **export.FBX_REIMPORT_OPTIONS)
    imported = [o for o in bpy.data.objects if o not in known]
    try:
        (armature,) = [o for o in imported if o.type == "ARMATURE"]
        (body,) = [o for o in imported if o.type == "MESH"]
        (modifier,) = [m for m in body.modifiers if m.type == "ARMATURE"]
        assert modifier.object == armature
        assert set(UE5_SKINNED) <= {group.name for group in body.vertex_groups}
        moved = np.linalg.norm(expected - expected[0], axis=-1).max()
        assert moved > 0.05  # the check below is about motion, not a mesh standing still
        got = evaluated_vertices(body, SAMPLED)
        assert np.abs(got - expected).max() < 1e-3
    finally:
        bpy.data.batch_remove(imported)


def character_with_mesh(scene: Any, folder: Path) -> Path:
    """hero.blend: the Mixamo rig 'Hero' and its child mesh 'Body' skinned to it."""
    rig = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_A), "Hero")
    mesh = skinned_mesh(scene, rig, MIXAMO_SKINNED)
    path = folder / "hero.blend"
    bpy.data.libraries.write(str(path), {rig, mesh})
    return path


@pytest.mark.slow
@needs_assimp
def test_batch_writes_meshes_unless_no_meshes(scene: Any, tmp_path: Path) -> None:
    hero = character_with_mesh(scene, tmp_path)
    fbx = Path("001_run_cmu_02_03") / "run_cmu_02_03_s0.fbx"
    for flags, meshes in (([], True), (["--no-meshes", "--deform-only"], False)):
        out = tmp_path / ("meshes" if meshes else "none")
        result = run_batch("--bvh", str(RUN), "--out", str(out), "--formats", "fbx",
                           "--target-rig", f"{hero}:Hero", "--engine", "unreal",
                           *flags)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads((out / "summary.json").read_text())["character"]["meshes"] is meshes
        parents, skins = assimp_tree(out / fbx, tmp_path)
        assert "mixamorig:Hips" in parents
        assert ("Body" in parents) is meshes and bool(skins) is meshes
    refused = run_batch("--bvh", str(RUN), "--out", str(tmp_path / "x"), "--no-meshes")
    assert refused.returncode == 2 and "--no-meshes needs --target-rig" in refused.stderr
