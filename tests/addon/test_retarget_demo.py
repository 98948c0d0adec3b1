"""The demo's characters (``tools/demo_characters.py``, part of ``make demo``): the finished CMU
walk retargeted through the batch onto Blender's own Rigify human and a UE5-named rig, the
FBX files read back by assimp (an independent reader) and the .blend by Blender (bpy)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon.core.motion import rotations as rot
from tests.addon.test_retarget_export import ASSIMP, assimp_info
from tools import demo_characters

pytestmark = pytest.mark.slow
TAKE = "walk_forward_cmu_35_01_s0"
#: Per character: its convention as the batch reports it, and a thigh that must swing.
EXPECTED = {
    "Rigify_Human": ("Rigify (generated rig, FK controls)", "DEF-thigh.L"),
    "Manny": ("Unreal Engine 5 (Manny / Quinn)", "thigh_l"),
}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("characters")
    done = subprocess.run([sys.executable, str(Path(demo_characters.__file__)), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out


def rotation_keys(xml: str, node: str) -> np.ndarray:
    """(K, 4) rotation keys (w, x, y, z) of ``node`` in an ``assimp dump`` of one animation."""
    block = re.search(rf'<NodeAnim node="{re.escape(node)}">(.*?)</NodeAnim>', xml, re.S)
    assert block, f"no animation channel for {node}"
    keys = re.findall(r"<RotationKey time=[^>]*>(.*?)</RotationKey>", block.group(1), re.S)
    return np.array([k.split() for k in keys], dtype=np.float64)


@pytest.mark.skipif(ASSIMP is None, reason="assimp-utils is not installed")
@pytest.mark.parametrize("character", demo_characters.CHARACTERS)
@pytest.mark.parametrize("engine", demo_characters.ENGINES)
def test_engine_fbx_holds_the_walk(demo_out: Path, character: str, engine: str) -> None:
    convention, thigh = EXPECTED[character]
    out = demo_out / character / engine
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and summary["character"]["engine"] == engine.upper(), summary
    assert summary["character"]["deform_only"] and summary["finishing"]["loop"]
    (item,) = summary["items"]
    assert item["character"]["object"] == character
    assert item["character"]["convention"] == convention
    frames = item["finishing"]["report"]["frames_out"]
    fbx = out / "001_walk_forward_cmu_35_01" / f"{TAKE}.fbx"
    assert str(fbx) in item["files"]
    info = assimp_info(fbx)
    assert re.search(rf"Named Animations:\s*'{TAKE}'", info), info
    xml_path = demo_out / f"{character}_{engine}.xml"
    assert ASSIMP is not None
    subprocess.run([ASSIMP, "dump", str(fbx), str(xml_path), "-s"], capture_output=True,
                   timeout=120, check=True)  # fmt: skip
    xml = xml_path.read_text(errors="replace")
    top = "Armature" if engine == "unreal" else character  # Unreal: the stable armature name
    assert f'<Node name="{top}">' in xml
    # Deforming bones only, as one clean tree: no Rigify controls or ORG/MCH parents, no UE IK
    # bones.
    nodes = set(re.findall(r'<Node name="([^"]+)">', xml))
    assert thigh in nodes and "thigh_fk.L" not in nodes and "foot_ik.L" not in nodes
    assert not any(n.startswith(("ik_", "ORG-", "MCH-")) for n in nodes)
    if character == "Rigify_Human":
        assert len([n for n in nodes if n.startswith("DEF-")]) == 160
    # The whole finished loop, at 30 fps, and the thigh swings like a walking leg's.
    animation = re.search(r'<Animation name="([^"]+)" duration="([^"]+)" tick_cnt="([^"]+)"', xml)
    assert animation and animation.group(1) == TAKE
    assert float(animation.group(2)) == frames - 1 and float(animation.group(3)) == 30.0
    keys = rotation_keys(xml, thigh)
    assert keys.shape == (frames, 4)
    swing = np.degrees(rot.angle_between(keys, keys[:1]).max())
    assert 25.0 < swing < 90.0, swing


def test_blend_shows_the_character_playing_the_walk(demo_out: Path, scene: Any) -> None:
    for character in demo_characters.CHARACTERS:
        folder = demo_out / character / "unreal" / "001_walk_forward_cmu_35_01"
        assert (folder / f"{TAKE}.bvh").stat().st_size > 10_000
        bpy.ops.wm.open_mainfile(filepath=str(folder / "001_walk_forward_cmu_35_01.blend"))
        rig = bpy.data.objects[character]
        assert rig.animation_data.action.name == f"HYM {TAKE} @ {character}"
