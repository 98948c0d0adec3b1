"""The batch onto a character file (``--target-rig``), as users run it: a subprocess under the
bpy module and a real daemon (bpy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from tests.addon import rigs
from tests.addon.test_addon_batch import daemon, run_batch  # noqa: F401 (fixture)

ASSIMP = shutil.which("assimp")


def character_file(scene: Any, folder: Path) -> Path:
    """hero.blend holding the Mixamo rig 'Hero' (child-sized, A-pose)."""
    rig = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_A), "Hero")
    path = folder / "hero.blend"
    bpy.data.libraries.write(str(path), {rig})
    return path


def test_batch_onto_a_character_for_unreal(scene: Any, tmp_path: Path, daemon: Any) -> None:  # noqa: F811
    hero = character_file(scene, tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
                       "--duration", "1", "--steps", "5", "--seed", "3", "--candidates", "2",
                       "--target-rig", f"{hero}:Hero", "--engine", "unreal",
                       "--root-motion", "in_place")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # The character flags as docs/addon.md lists them, values included.
    assert summary["character"] == {
        "file": str(hero), "object": "Hero", "root_motion": "IN_PLACE", "plant_feet": True,
        "relax_fingers": True, "ik_controls": True, "ik_limbs": False, "engine": "UNREAL",
        "deform_only": False, "meshes": True, "preset": None,
    }  # fmt: skip
    item = summary["items"][0]
    assert sorted(item["character"]) == ["convention", "joints", "object", "unmapped_bones"]
    assert item["character"]["convention"] == "Mixamo"
    assert "mixamorig:LeftHandIndex3" in item["character"]["unmapped_bones"]
    fbx = out / "001_a_person_walks" / "a_person_walks_s3.fbx"
    assert fbx.stat().st_size > 10_000
    if ASSIMP:
        info = subprocess.run([ASSIMP, "info", str(fbx)], capture_output=True, text=True,
                              timeout=60).stdout  # fmt: skip
        assert "'a_person_walks_s3'" in info and "mixamorig:Hips" in info
        assert "Armature" in info
    # The saved scene holds the character playing the first take, its other take kept.
    bpy.ops.wm.open_mainfile(filepath=str(out / "001_a_person_walks" / "001_a_person_walks.blend"))
    hero_obj = bpy.data.objects["Hero"]
    assert hero_obj.animation_data.action.name == "HYM a_person_walks_s3 @ Hero"
    assert "HYM a_person_walks_s4 @ Hero" in bpy.data.actions


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target-rig", "missing.blend:Hero"], "does not exist"),
        (["--target-rig", "{hero}"], "name the armature object after ':'"),
        (["--target-rig", "{hero}:Villain"], "has no object 'Villain'"),
        (["--root-motion", "root_bone"], "--root-motion needs --target-rig"),
        (["--root-motion", "keep"], "--root-motion needs --target-rig"),  # the default, given
        (["--target-rig", "{no_rig}"], "no_rig.fbx holds no armature (objects: none)"),
    ],
)
def test_bad_character_flags_exit_2(
    scene: Any,
    tmp_path: Path,
    flags: list[str],
    message: str,
    daemon: Any,  # noqa: F811
) -> None:
    hero = character_file(scene, tmp_path)
    no_rig = tmp_path / "no_rig.fbx"  # an FBX without an armature
    bpy.ops.export_scene.fbx(filepath=str(no_rig), object_types={"EMPTY"})
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    args = [f.format(hero=hero, no_rig=no_rig) for f in flags]
    result = run_batch("--prompts", str(prompts), "--out", str(tmp_path / "out"),
                       "--address", daemon.address, *args)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_batch_onto_a_character_fbx(scene: Any, tmp_path: Path, daemon: Any) -> None:  # noqa: F811
    """A character .fbx (here a VRM-named rig written by Blender's exporter), for Unity."""
    from blender_addon import build

    rig = rigs.build_armature(scene, rigs.rig_bones("VRM", rigs.TALL_A), "Avatar")
    hero = tmp_path / "avatar.fbx"
    with build.object_context(rig):
        bpy.ops.export_scene.fbx(filepath=str(hero), use_selection=True,
                                 object_types={"ARMATURE"}, add_leaf_bones=False)  # fmt: skip
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person jumps\n")
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
                       "--duration", "1", "--steps", "5", "--seed", "8", "--candidates", "1",
                       "--target-rig", str(hero), "--engine", "unity",
                       "--formats", "fbx,bvh")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    item = json.loads((out / "summary.json").read_text())["items"][0]
    assert item["character"]["convention"].startswith("VRM")
    folder = out / "001_a_person_jumps"
    assert sorted(p.name for p in folder.iterdir()) == ["a_person_jumps_s8.bvh",
                                                        "a_person_jumps_s8.fbx"]  # fmt: skip
    bvh = (folder / "a_person_jumps_s8.bvh").read_text()
    assert bvh.startswith("HIERARCHY\nROOT hips") and "JOINT leftUpperLeg" in bvh


def test_bvh_takes_onto_a_character(scene: Any, tmp_path: Path) -> None:
    # Motion capture retargeted onto the artist's rig with no daemon: --bvh with --target-rig.
    hero = character_file(scene, tmp_path)
    clip = Path(__file__).resolve().parents[2] / "examples" / "mocap" / "run_cmu_02_03.bvh"
    out = tmp_path / "out"
    result = run_batch("--bvh", str(clip), "--out", str(out), "--formats", "blend,fbx",
                       "--target-rig", f"{hero}:Hero", "--engine", "unity")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["character"]["engine"] == "UNITY"
    item = summary["items"][0]
    assert (item["convention"], item["character"]["convention"]) == ("cmu", "Mixamo")
    assert (out / "001_run_cmu_02_03" / "run_cmu_02_03_s0.fbx").stat().st_size > 10_000
    bpy.ops.wm.open_mainfile(filepath=str(out / "001_run_cmu_02_03" / "001_run_cmu_02_03.blend"))
    assert bpy.data.objects["Hero"].animation_data.action.name == "HYM run_cmu_02_03_s0 @ Hero"


def test_bvh_mode_refuses_a_character_it_cannot_load(scene: Any, tmp_path: Path) -> None:
    hero = character_file(scene, tmp_path)
    clip = Path(__file__).resolve().parents[2] / "examples" / "mocap" / "run_cmu_02_03.bvh"
    out = tmp_path / "out"
    result = run_batch("--bvh", str(clip), "--out", str(out), "--target-rig", f"{hero}:Villain")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "has no object 'Villain'" in result.stderr
    assert not out.exists() or not any(out.rglob("*.*"))


def bad_characters_file(scene: Any, folder: Path) -> Path:
    """cast.blend: 'Body' (a mesh), 'Legless' (a Mixamo rig without legs), 'Squashed' (a rig
    scaled 1, 2, 1), and 'Hero' (a good Mixamo rig) for bad presets."""
    rig = rigs.rig_bones("MIXAMO")
    keep = [i for i, n in enumerate(rig.names) if not any(w in n for w in ("Leg", "Foot", "Toe"))]
    legless = type(rig)(
        tuple(rig.names[i] for i in keep),
        np.array([keep.index(int(rig.parents[i])) if rig.parents[i] >= 0 else -1 for i in keep]),
        rig.heads[keep], rig.tails[keep], rig.rest[keep], rig.deform[keep],
    )  # fmt: skip
    objects = {rigs.build_armature(scene, legless, "Legless"),
               rigs.build_armature(scene, rig, "Squashed"),
               rigs.build_armature(scene, rig, "Hero")}  # fmt: skip
    bpy.data.objects["Squashed"].scale = (1.0, 2.0, 1.0)
    body = bpy.data.objects.new("Body", bpy.data.meshes.new("Body"))
    scene.collection.objects.link(body)
    path = folder / "cast.blend"
    bpy.data.libraries.write(str(path), {*objects, body})
    return path


@pytest.mark.parametrize(
    ("target", "preset", "message"),
    [
        ("Body", None, "'Body' is a mesh, not an armature"),
        ("Legless", None, "has no recognisable legs"),
        ("Squashed", None, r"has a non-uniform scale (1, 2, 1)"),
        ("Hero", "twice", "L_Knee and R_Knee are both mapped to bone 'mixamorig:LeftLeg'"),
        ("Hero", "ue5", "is for Unreal Engine 5"),
    ],
)
def test_bvh_mode_refuses_bad_characters_up_front(
    scene: Any, tmp_path: Path, target: str, preset: str | None, message: str
) -> None:
    """Each bad character gets exit 2 and one plain-words line naming the object, bone or joint,
    before anything is written."""
    from blender_addon.core import bone_mapping

    cast = bad_characters_file(scene, tmp_path)
    flags = ["--target-rig", f"{cast}:{target}"]
    if preset is not None:
        mapping = bone_mapping.auto_mapping(
            rigs.rig_bones("MIXAMO" if preset == "twice" else "UE5")
        )
        if preset == "twice":
            joints = {**mapping.joints, "R_Knee": mapping.joints["L_Knee"]}
            mapping = type(mapping)(mapping.convention, joints, mapping.followers,
                                    mapping.translation_bone)  # fmt: skip
        path = tmp_path / f"{preset}.json"
        path.write_text(bone_mapping.preset_text(mapping))
        flags += ["--mapping-preset", str(path)]
    clip = Path(__file__).resolve().parents[2] / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
    out = tmp_path / "out"
    result = run_batch("--bvh", str(clip), "--out", str(out), *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not out.exists() or not any(out.rglob("*.*"))
