"""The batch onto a character file (``--target-rig``), as users run it: a subprocess under the
bpy module and a real daemon (bpy)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import bpy
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
    assert summary["character"]["engine"] == "UNREAL"
    item = summary["items"][0]
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
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    args = [f.format(hero=hero) for f in flags]
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
