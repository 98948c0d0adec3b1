"""Deform-only FBX from a clean deform hierarchy (issue 9): Blender's own Rigify human playing a
real CMU walk retargeted onto it, with a mesh skinned to its DEF bones, read back by assimp (an
independent reader) and by Blender's importer; and a rig whose deforming bones are a clean tree
already, whose file stays as Blender's exporter writes it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bpy
import numpy as np
import pytest
from mathutils import Vector

from blender_addon import build, deform_export, export, rig_export, rig_reader, rig_takes
from blender_addon.core import retarget
from blender_addon.core.errors import ExportError
from blender_addon.core.motion import bvh_import
from tests.addon import rigs
from tests.addon.test_retarget_export import (
    ASSIMP,
    assimp_nodes,
    assimp_tree,
    needs_assimp,
    unit_scale_cm,
)

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
FRAMES = 60  # two steps of the walk: every frame is evaluated through Rigify's constraints
SAMPLED = range(1, FRAMES + 1, 7)
SKINNED = ("DEF-spine", "DEF-thigh.L", "DEF-shin.L", "DEF-upper_arm.R", "DEF-hand.R")


def walk() -> rig_takes.Motion:
    take = bvh_import.load_bvh_take(MOCAP / "walk_turn_left_cmu_16_11.bvh")
    return rig_takes.Motion("walk", take.skeleton, take.rotations[:FRAMES],
                            take.root_positions[:FRAMES], take.fps)  # fmt: skip


def skinned_mesh(scene: Any, rig: Any, bones: Sequence[str] = SKINNED) -> Any:
    """A small mesh on ``rig``, its child: a triangle at each of ``bones``, in its own vertex
    group (weight 1)."""
    verts, faces = [], []
    for k, name in enumerate(bones):
        head = rig.matrix_world @ rig.data.bones[name].head_local
        verts += [
            tuple(head),
            tuple(head + Vector((0.02, 0, 0))),
            tuple(head + Vector((0, 0, 0.02))),
        ]
        faces.append((3 * k, 3 * k + 1, 3 * k + 2))
    data = bpy.data.meshes.new("Body")
    data.from_pydata(verts, [], faces)
    mesh = bpy.data.objects.new("Body", data)
    scene.collection.objects.link(mesh)
    mesh.parent = rig
    mesh.matrix_parent_inverse = rig.matrix_world.inverted()
    for k, name in enumerate(bones):
        mesh.vertex_groups.new(name=name).add([3 * k, 3 * k + 1, 3 * k + 2], 1.0, "REPLACE")
    mesh.modifiers.new("Armature", "ARMATURE").object = rig
    return mesh


@pytest.fixture(scope="module")
def rigify(addon: None) -> Iterator[tuple[Any, Any, Any]]:
    """(rig, its Action playing the walk, the skinned mesh)."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    _, rig = rigs.rigify_rigs(scene)
    (action,) = rig_takes.retarget_actions(rig, [walk()], retarget.RetargetOptions())
    rig_takes.play(rig, action)
    yield rig, action, skinned_mesh(scene, rig)
    addon_utils.disable("rigify", default_set=True)


def world_matrices(obj: Any, names: list[str], frames: range) -> np.ndarray:
    """World matrices (F, K, 4, 4) of ``obj``'s bones ``names`` as Blender poses them."""
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(frame)
        world = np.array(obj.matrix_world, dtype=np.float64)
        out.append([world @ np.array(obj.pose.bones[n].matrix) for n in names])
    return np.array(out, dtype=np.float64)


def deform_names(rig: Any) -> set[str]:
    return {b.name for b in rig.data.bones if b.use_deform}


def file_state() -> dict[str, list[str]]:
    """Every datablock of the kinds an export could leave behind, by name."""
    return {kind: sorted(d.name for d in getattr(bpy.data, kind))
            for kind in ("objects", "armatures", "actions", "meshes", "scenes")}  # fmt: skip


@needs_assimp
def test_rigify_deform_only_is_a_clean_tree(rigify: Any, tmp_path: Path) -> None:
    rig, action, mesh = rigify
    scene = bpy.context.scene
    before = file_state()
    hierarchy = {b.name: b.parent.name if b.parent else "" for b in rig.data.bones}
    path = rig_export.export_rig_fbx(scene, rig, action, tmp_path / "walk.fbx", "walk",
                                     "UNREAL", deform_only=True)  # fmt: skip
    parents, skins = assimp_tree(path, tmp_path)
    deform = deform_names(rig)
    bones = {n for n, p in parents.items() if n in deform}
    assert bones == deform
    # The deforming bones, the armature node (Unreal drops it) and the mesh: nothing else.
    others = set(parents) - deform
    assert {"Armature", "Body"} <= others
    assert not [n for n in others if n.startswith(("ORG-", "MCH-", "root"))], others
    assert parents["DEF-spine"] == "Armature"
    assert [n for n in deform if parents[n] == "Armature"] == ["DEF-spine"]
    # Each bone under its nearest deforming ancestor (Rigify's ORG- bones stand for DEF- ones).
    assert parents["DEF-thigh.L"] == "DEF-spine"
    assert parents["DEF-pelvis.R"] == "DEF-spine"
    assert parents["DEF-shoulder.L"] == "DEF-spine.003"
    assert parents["DEF-upper_arm.L"] == "DEF-shoulder.L"
    assert parents["DEF-breast.R"] == "DEF-spine.003"
    assert parents["DEF-f_index.01.L"] == "DEF-palm.01.L"
    assert parents["DEF-shin.L"] == "DEF-thigh.L.001"
    assert parents["DEF-nose"] == "DEF-spine.006"
    # The mesh stays skinned: its clusters are on the deforming bones, weighted where it was.
    (skin,) = skins.values()
    assert set(skin) <= deform
    assert {bone for bone, weighted in skin.items() if weighted} == set(SKINNED)
    assert all(skin[bone] == 3 for bone in SKINNED)
    # Nothing is left in the artist's file; the rig, its action and the mesh are as they were.
    assert file_state() == before
    assert rig.name == "rig" and rig.animation_data.action == action
    assert mesh.modifiers["Armature"].object == rig
    assert {b.name: b.parent.name if b.parent else "" for b in rig.data.bones} == hierarchy


def test_rigify_bake_matches_every_deform_bone(rigify: Any) -> None:
    """The temporary armature poses every deforming bone as the rig does: 0.01 mm, 0.01 deg."""
    rig, _, _ = rigify
    scene = bpy.context.scene
    tree = deform_export.clean_tree(rig)
    assert tree is not None
    names = [rig.data.bones[i].name for i in tree.indices]
    frames = range(1, FRAMES + 1)
    expected = world_matrices(rig, names, frames)
    posed = rig_reader.posed_matrices(scene, rig, names, frames)
    with deform_export.temporary_armature(scene, rig, tree, posed, 1) as (temp, _):
        got = world_matrices(temp, names, frames)
        made = temp.name
    assert made not in bpy.data.objects
    assert np.abs(got[..., :3, 3] - expected[..., :3, 3]).max() < 1e-5
    # Each bone axis's turn, from the chord between the unit axes (exact near zero).
    axes_got = got[..., :3, :3] / np.linalg.norm(got[..., :3, :3], axis=-2, keepdims=True)
    axes_exp = expected[..., :3, :3] / np.linalg.norm(expected[..., :3, :3], axis=-2,
                                                      keepdims=True)  # fmt: skip
    chord = np.linalg.norm(axes_got - axes_exp, axis=-2)
    assert np.degrees(2 * np.arcsin(np.minimum(chord / 2, 1.0))).max() < 0.01


def test_rigify_deform_only_reimports_into_blender(rigify: Any, tmp_path: Path) -> None:
    """Blender's importer reads the Unity file: the deforming bones alone, one root, each at
    the rig's animated world position within 0.01 mm."""
    rig, action, _ = rigify
    scene = bpy.context.scene
    path = rig_export.export_rig_fbx(scene, rig, action, tmp_path / "walk.fbx", "walk",
                                     "UNITY", deform_only=True)  # fmt: skip
    names = sorted(deform_names(rig))
    expected = world_matrices(rig, names, SAMPLED)[..., :3, 3]
    known = set(bpy.data.objects)
    bpy.ops.import_scene.fbx(filepath=str(path), **export.FBX_REIMPORT_OPTIONS)
    imported = [o for o in bpy.data.objects if o not in known]
    try:
        (armature,) = [o for o in imported if o.type == "ARMATURE"]
        assert {b.name for b in armature.data.bones} == set(names)
        assert [b.name for b in armature.data.bones if b.parent is None] == ["DEF-spine"]
        assert armature.animation_data.action is not None
        got = world_matrices(armature, names, SAMPLED)[..., :3, 3]
        assert np.abs(got - expected).max() < 1e-5
    finally:
        bpy.data.batch_remove(imported)


@needs_assimp
@pytest.mark.parametrize("engine", ["UNREAL", "UNITY"])
def test_rigify_deform_only_at_engine_size(rigify: Any, tmp_path: Path, engine: str) -> None:
    """Unreal: metres with UnitScaleFactor 100 and no node scale; Unity: every scale applied."""
    rig, action, _ = rigify
    path = rig_export.export_rig_fbx(bpy.context.scene, rig, action, tmp_path / "w.fbx", "walk",
                                     engine, deform_only=True)  # fmt: skip
    nodes = assimp_nodes(path, tmp_path)
    top = "Armature" if engine == "UNREAL" else "rig"
    scale = np.linalg.norm(nodes[top][:3, 0])
    assert scale == pytest.approx(1.0, rel=1e-4)
    # The shin hangs from the end of the upper thigh: that bone's length, in centimetres.
    shin_cm = np.linalg.norm(nodes["DEF-shin.L"][:3, 3]) * unit_scale_cm(path)
    thigh_cm = rig.data.bones["DEF-thigh.L.001"].length * 100
    assert shin_cm == pytest.approx(thigh_cm, rel=0.02)  # Rigify may stretch it a little


def test_rigify_root_motion_bone_stays_on_top(rigify: Any) -> None:
    rig, _, _ = rigify
    tree = deform_export.clean_tree(rig, root_bone="root")
    assert tree is not None
    names = [rig.data.bones[i].name for i in tree.indices]
    assert names[0] == "root" and tree.parents[0] == -1
    assert names[tree.parents[names.index("DEF-spine")]] == "root"
    assert set(names) == deform_names(rig) | {"root"}


def test_a_failed_deform_export_leaves_nothing(
    rigify: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blender's FBX exporter failing while the temporary armature exists: no file, no
    temporary data, and the rig, its action and the mesh's modifier as they were."""
    rig, action, mesh = rigify
    before = file_state()

    def failing_exporter(**_: Any) -> set[str]:
        raise RuntimeError("disk full")

    monkeypatch.setattr(bpy.ops, "export_scene", SimpleNamespace(fbx=failing_exporter))
    with pytest.raises(ExportError, match="disk full"):
        rig_export.export_rig_fbx(bpy.context.scene, rig, action, tmp_path / "walk.fbx", "walk",
                                  "UNITY", deform_only=True)  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    assert file_state() == before
    assert rig.name == "rig" and rig.animation_data.action == action
    assert mesh.modifiers["Armature"].object == rig


def fbx_dump(path: Path, tmp: Path) -> str:
    """assimp's reading of the file (nodes, matrices, animation keys), its file name left out."""
    assert ASSIMP is not None
    xml = tmp / f"{path.stem}.xml"
    subprocess.run([ASSIMP, "dump", str(path), str(xml)], capture_output=True, timeout=60,
                   check=True)  # fmt: skip
    text = xml.read_text(errors="replace")
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


@needs_assimp
def test_clean_rig_writes_what_blender_writes(scene: Any, tmp_path: Path) -> None:
    """A rig whose deforming bones are a clean tree already (UE5 naming, IK bones that do not
    deform) is exported by Blender's exporter itself, as before: the same file content."""
    obj = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
    for bone in obj.data.bones:
        bone.use_deform = not bone.name.startswith("ik_")
    (action,) = rig_takes.retarget_actions(obj, [walk()], retarget.RetargetOptions())
    rig_takes.play(obj, action)
    assert deform_export.clean_tree(obj) is None
    ours = rig_export.export_rig_fbx(scene, obj, action, tmp_path / "ours.fbx", "walk",
                                     "UNREAL", deform_only=True)  # fmt: skip
    # Today's export: Blender's exporter with the same options on the rig itself.
    with (
        rig_export._playing(scene, obj, action, ("Armature", "walk")),
        build.object_context(obj),
    ):
        bpy.ops.export_scene.fbx(filepath=str(tmp_path / "plain.fbx"),
                                 **rig_export.fbx_options("UNREAL", True))  # fmt: skip
    assert fbx_dump(ours, tmp_path) == fbx_dump(tmp_path / "plain.fbx", tmp_path)
    parents, _ = assimp_tree(ours, tmp_path)
    assert not [n for n in parents if n.startswith("ik_")]
    assert parents["root"] == "Armature"
