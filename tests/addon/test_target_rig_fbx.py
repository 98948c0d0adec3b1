"""``--target-rig`` with a character FBX as artists have it: several armatures in one file
(``FILE.fbx:ARMATURE`` picks one), none at all, or a name that is not an armature; each refusal
says what to do with that FBX (bpy, the batch as a subprocess, a real daemon)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import pytest

from blender_addon import build
from tests.addon import rigs
from tests.addon.test_addon_batch import daemon, run_batch  # noqa: F401 (fixture)


def two_characters_fbx(scene: Any, folder: Path) -> Path:
    """crowd.fbx: the Mixamo rig 'Hero', the VRM rig 'Avatar' and an unparented mesh 'Body'."""
    hero = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_A), "Hero")
    avatar = rigs.build_armature(scene, rigs.rig_bones("VRM", rigs.TALL_A), "Avatar")
    avatar.location.x = 2.0
    mesh = bpy.data.meshes.new("Body")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
    body = bpy.data.objects.new("Body", mesh)
    scene.collection.objects.link(body)
    path = folder / "crowd.fbx"
    with build.object_context(hero, [avatar, body]):
        bpy.ops.export_scene.fbx(
            filepath=str(path),
            use_selection=True,
            object_types={"ARMATURE", "MESH"},
            add_leaf_bones=False,
        )
    return path


@pytest.mark.parametrize(
    ("rig", "message"),
    [
        ("{crowd}", "error: crowd.fbx holds 2 armatures (Avatar, Hero); name the one to use: "
                    "--target-rig crowd.fbx:Avatar"),
        ("{crowd}:Villain", "error: crowd.fbx has no object 'Villain' (armatures: Avatar, Hero)"),
        ("{crowd}:Body", "error: 'Body' is a mesh, not an armature"),
        ("{crowd}:", "error: --target-rig '{crowd}:': name the armature after ':' "
                     "(hero.fbx:Armature), or leave ':' out for an FBX with one armature"),
        ("{ascii}", "error: ascii.fbx could not be imported ("),
        ("{mesh_only}", "error: mesh_only.fbx holds no armature (objects: Body); export the "
                        "character with its armature (Blender's FBX export: Object Types "
                        "Armature and Mesh)"),
    ],
)  # fmt: skip
def test_an_fbx_the_batch_cannot_use_says_what_to_do(
    scene: Any,
    tmp_path: Path,
    rig: str,
    message: str,
    daemon: Any,  # noqa: F811
) -> None:
    crowd = two_characters_fbx(scene, tmp_path)
    mesh_only = tmp_path / "mesh_only.fbx"
    with build.object_context(bpy.data.objects["Body"]):
        bpy.ops.export_scene.fbx(filepath=str(mesh_only), use_selection=True,
                                 object_types={"MESH"})  # fmt: skip
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    out = tmp_path / "out"
    ascii_fbx = tmp_path / "ascii.fbx"  # not a file Blender's importer reads
    ascii_fbx.write_text("; FBX 7.4.0 project file\n")
    names = {"crowd": crowd, "mesh_only": mesh_only, "ascii": ascii_fbx}
    result = run_batch("--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
                       "--target-rig", rig.format(**names))  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    line = result.stderr.splitlines()[-1]  # Blender's importer may print its own lines first
    assert line.startswith(message.format(**names)), result.stderr
    if "could not be imported" in message:
        assert "export the character again as a binary FBX" in line
    # What the file holds (not the flag's form, not the rig check the panel shares) says how
    # to name the character.
    if "--target-rig '" not in message and "'Body'" not in message:
        assert line.endswith(
            "— Fix --target-rig: FILE.blend:OBJECT, FILE.fbx or FILE.fbx:ARMATURE (docs/addon.md)."
        )
    assert not out.exists()
    assert not [e for e in daemon.log_events() if e["event"] == "job_queued"]


def test_fbx_armature_picks_one_of_several(scene: Any, tmp_path: Path, daemon: Any) -> None:  # noqa: F811
    crowd = two_characters_fbx(scene, tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person walks\n")
    out = tmp_path / "out"
    result = run_batch("--prompts", str(prompts), "--out", str(out), "--address", daemon.address,
                       "--duration", "1", "--steps", "5", "--seed", "3", "--candidates", "1",
                       "--target-rig", f"{crowd}:Hero", "--formats", "blend,bvh")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["character"]["file"], summary["character"]["object"]) == (str(crowd), "Hero")
    assert summary["items"][0]["character"]["convention"] == "Mixamo"
    folder = out / "001_a_person_walks"
    bvh = (folder / "a_person_walks_s3.bvh").read_text()
    assert bvh.startswith("HIERARCHY\nROOT mixamorig:Hips")
    # The other character of the file is not brought along; the unparented mesh is kept.
    bpy.ops.wm.open_mainfile(filepath=str(folder / "001_a_person_walks.blend"))
    armatures = [o.name for o in bpy.data.objects if o.type == "ARMATURE"]
    assert armatures == ["Hero"]
    assert bpy.data.objects["Hero"].animation_data.action.name == "HYM a_person_walks_s3 @ Hero"


def test_the_name_splits_off_only_after_the_suffix(tmp_path: Path) -> None:
    """A drive letter stays in the path; the suffix may be in any case (docs/addon.md)."""
    from blender_addon.batch import parser
    from blender_addon.core.errors import BatchInputError
    from blender_addon.core.rig_cli import target_from_args

    def target(text: str) -> Any:
        return target_from_args(parser().parse_args(["--out", "o", "--target-rig", text]))

    upper = tmp_path / "HERO.BLEND"
    upper.write_bytes(b"")
    assert (target(f"{upper}:Rig").path, target(f"{upper}:Rig").object_name) == (upper, "Rig")
    crowd = tmp_path / "crowd.FBX"
    crowd.write_bytes(b"")
    assert (target(str(crowd)).object_name, target(f"{crowd}:A:B").object_name) == ("", "A:B")
    with pytest.raises(BatchInputError, match=r"C:\\rigs\\hero.fbx does not exist"):
        target("C:\\rigs\\hero.fbx:Hero")
