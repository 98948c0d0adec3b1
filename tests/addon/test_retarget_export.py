"""Engine-ready exports of takes on the artist's rig and on the built-in armature, read back by
an independent reader (assimp, Debian's assimp-utils) and by Blender's importers (bpy)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import export, history, rig_export
from blender_addon.core.session import ServerInfo
from blender_addon.props import scene_settings
from tests.addon import rigs
from tests.addon.test_addon_scene import make_result

ASSIMP = shutil.which("assimp")
needs_assimp = pytest.mark.skipif(ASSIMP is None, reason="assimp-utils is not installed")


def assimp_info(path: Path) -> str:
    assert ASSIMP is not None
    done = subprocess.run([ASSIMP, "info", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assimp_nodes(path: Path, tmp: Path) -> dict[str, np.ndarray]:
    """Node name -> local 4x4 matrix, from ``assimp dump`` (its own FBX reader)."""
    assert ASSIMP is not None
    xml = tmp / f"{path.stem}.xml"
    subprocess.run([ASSIMP, "dump", str(path), str(xml), "-s"], capture_output=True, timeout=60,
                   check=True)  # fmt: skip
    text = xml.read_text(errors="replace")
    nodes = {}
    for name, body in re.findall(r'<Node name="([^"]+)">\s*<Matrix4>(.*?)</Matrix4>', text, re.S):
        nodes[name] = np.array(body.split(), dtype=np.float64).reshape(4, 4)
    return nodes


def assimp_tree(path: Path, tmp: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(node name -> parent node name, mesh name -> {skin bone: weighted vertices}), as assimp
    reads the file."""
    assert ASSIMP is not None
    xml = tmp / f"{path.stem}.xml"
    subprocess.run([ASSIMP, "dump", str(path), str(xml)], capture_output=True, timeout=120,
                   check=True)  # fmt: skip
    root = ET.parse(xml).getroot()
    parents: dict[str, str] = {}

    def walk_nodes(node: ET.Element, parent: str) -> None:
        name = node.get("name", "")
        parents[name] = parent
        for child in node.iter("Node"):
            if child is not node and _parent_node(node, child):
                walk_nodes(child, name)

    scene_root = root.find(".//Node")
    assert scene_root is not None
    walk_nodes(scene_root, "")
    skins = {}
    for mesh in root.iter("Mesh"):
        skins[mesh.get("name", "")] = {b.get("name", ""): len(b.findall("WeightList/Weight"))
                                       for b in mesh.iter("Bone")}  # fmt: skip
    return parents, skins


def _parent_node(node: ET.Element, child: ET.Element) -> bool:
    """``child`` is a direct child node of ``node`` (assimp nests them under a NodeList)."""
    return any(child in list(group) for group in node.findall("NodeList"))


def unit_scale_cm(path: Path) -> float:
    """The FBX file's UnitScaleFactor (centimetres per file unit)."""
    data = path.read_bytes()
    at = data.index(b"UnitScaleFactor")
    at = data.index(b"D", at + len(b"UnitScaleFactor") + 20)
    return float(struct.unpack("<d", data[at + 1 : at + 9])[0])


def character(scene: Any) -> tuple[Any, list[Any]]:
    takes = history.add_result(scene, make_result(2, 45), ServerInfo(version="t"))
    bones = rigs.rig_bones("UE5", rigs.TALL_A)
    rig = rigs.build_armature(scene, bones, "Manny")
    for bone in rig.data.bones:
        bone.use_deform = not bone.name.startswith(("ik_", "root"))
    settings = scene_settings(scene)
    settings.target = "SELECTED_ARMATURE"
    settings.retarget.rig = rig
    settings.retarget.root_motion = "ROOT_BONE"
    return rig, takes


def heads_over_time(obj: Any, frames: range) -> np.ndarray:
    scene = bpy.context.scene
    out = []
    for frame in frames:
        scene.frame_set(frame)
        world = np.array(obj.matrix_world)
        heads = np.array([np.array(b.head) for b in obj.pose.bones])
        out.append(heads @ world[:3, :3].T + world[:3, 3])
    return np.array(out)


@needs_assimp
@pytest.mark.parametrize("engine", rig_export.FBX_ENGINES)
def test_fbx_per_engine(scene: Any, tmp_path: Path, engine: str) -> None:
    rig, takes = character(scene)
    scene_settings(scene).retarget.engine = engine
    (path,) = history.export_take(scene, takes[0], tmp_path, ["FBX"])
    info = assimp_info(path)
    assert re.search(rf"Named Animations:\s*'{re.escape(takes[0].name)}'", info), info
    nodes = assimp_nodes(path, tmp_path)
    top = "Armature" if engine == "UNREAL" else "Manny"
    assert top in nodes and "root" in nodes and "pelvis" in nodes
    # The armature node carries no 100x scale for the engines; the file's units give the size.
    scale = np.linalg.norm(nodes[top][:3, 0])
    assert scale == pytest.approx(1.0 if engine != "BLENDER" else 100.0, rel=1e-4)
    pelvis_cm = np.linalg.norm(nodes["pelvis"][:3, 3]) * scale * unit_scale_cm(path)
    rest_cm = np.linalg.norm(rig.data.bones["pelvis"].head_local) * 100
    # The node holds the first frame's pose (the pelvis a few cm off its rest): the right
    # size, not a 100x one.
    assert pelvis_cm == pytest.approx(rest_cm, abs=5.0)
    assert rig.name == "Manny" and scene.name == "Scene"  # names given back after export


@needs_assimp
def test_fbx_deform_bones_only(scene: Any, tmp_path: Path) -> None:
    rig, takes = character(scene)
    settings = scene_settings(scene).retarget
    settings.engine, settings.deform_only = "UNREAL", True
    (path,) = history.export_take(scene, takes[0], tmp_path, ["FBX"])
    nodes = assimp_nodes(path, tmp_path)
    assert "pelvis" in nodes and "hand_l" in nodes
    assert not any(name.startswith("ik_") for name in nodes)
    # Root motion on the root bone, which does not deform: it stays on top of the deform tree.
    parents, _ = assimp_tree(path, tmp_path)
    deform = {b.name for b in rig.data.bones if b.use_deform}
    assert parents["root"] == "Armature" and parents["pelvis"] == "root"
    assert set(parents) == deform | {"root", "Armature", parents["Armature"]}


def test_fbx_reimports_into_blender(scene: Any, tmp_path: Path) -> None:
    rig, takes = character(scene)
    scene_settings(scene).retarget.engine = "UNITY"
    (path,) = history.export_take(scene, takes[0], tmp_path, ["FBX"])
    history.apply_take(scene, takes[0])
    expected = heads_over_time(rig, range(1, 46, 11))
    names = [b.name for b in rig.pose.bones]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), **export.FBX_REIMPORT_OPTIONS)
    imported = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert imported.animation_data.action is not None
    got = heads_over_time(imported, range(1, 46, 11))
    order = [imported.pose.bones.find(n) for n in names]
    assert min(order) >= 0
    assert np.abs(got[:, order] - expected).max() < 1e-3


@needs_assimp
def test_bvh_of_the_rig(scene: Any, tmp_path: Path) -> None:
    rig, takes = character(scene)
    (path,) = history.export_take(scene, takes[1], tmp_path, ["BVH"])
    info = assimp_info(path)
    assert "Animations:         1" in info
    history.apply_take(scene, takes[1])
    expected = heads_over_time(rig, range(1, 46, 11))
    # The BVH holds the bone with the root motion (here the pelvis) and the bones below it.
    names = [b.name for b in rig.pose.bones]
    below = {"pelvis"} | {c.name for c in rig.pose.bones["pelvis"].children_recursive}
    keep = [i for i, n in enumerate(names) if n in below]
    expected, names = expected[:, keep], [names[i] for i in keep]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(path), **export.BVH_REIMPORT_OPTIONS)
    imported = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    bpy.context.scene.frame_start = 1
    got = heads_over_time(imported, range(1, 46, 11))
    order = [imported.pose.bones.find(n) for n in names]
    assert min(order) >= 0
    assert np.abs(got[:, order] - expected).max() < 1e-3


@needs_assimp
def test_built_in_armature_for_unreal(scene: Any, tmp_path: Path) -> None:
    takes = history.add_result(scene, make_result(1, 30), ServerInfo(version="t"))
    scene_settings(scene).retarget.engine = "UNREAL"
    (path,) = history.export_take(scene, takes[0], tmp_path, ["FBX"])
    nodes = assimp_nodes(path, tmp_path)
    assert "Armature" in nodes and "Pelvis" in nodes  # a stable name, not the take's
    assert re.search(rf"'{re.escape(takes[0].name)}'", assimp_info(path))
    scene_settings(scene).retarget.engine = "UNITY"
    (path,) = history.export_take(scene, takes[0], tmp_path / "unity", ["FBX"])
    assert "HY-Motion" in assimp_nodes(path, tmp_path)
