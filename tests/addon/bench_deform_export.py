"""Deform-only FBX of one 12 s take on Blender's Rigify human (prints figures; not a test):
.venv/bin/python tests/addon/bench_deform_export.py [--repeats N] [--body-vertices N]

Issue 9: a deform-only export writes from a temporary clean deform armature (read the rig's
posed deforming bones every frame, build the armature, bake, write, remove). Baseline, measured
in the same run: the plain export of the same take (every bone, Blender's exporter on the rig).
Phases of the deform-only export: reading the posed bones, building + baking the temporary
armature, and the FBX write itself (the rest). Both files hold the character's body (*Include
meshes*): a mesh of ``--body-vertices`` vertices skinned to the deforming bones, four weights
each, as an artist's character has (0: no mesh).

The read evaluates the rig alone (``rig_reader.posed_matrices``); its baseline, in the same run,
is session 4's read, which stepped the artist's whole scene (the skinned body deformed on every
frame too).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import build, deform_export, rig_export, rig_reader, rig_takes  # noqa: E402
from blender_addon.core import retarget  # noqa: E402
from tests.addon import rigs, synthetic  # noqa: E402
from tests.addon.retarget_checks import fresh_scene  # noqa: E402

FRAMES = 360
WEIGHTS_PER_VERTEX = 4
T = TypeVar("T")


def timed(run: Callable[[], T], into: list[tuple[float, float]]) -> T:
    """``run()``, its (wall, CPU) seconds appended to ``into``: on a shared machine the CPU time
    is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    into.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def skinned_body(scene: bpy.types.Scene, rig: bpy.types.Object, vertices: int) -> None:
    """A mesh of ``vertices`` vertices (triangles) near the rig's deforming bones, each vertex
    weighted to ``WEIGHTS_PER_VERTEX`` of them, deformed by an Armature modifier."""
    bones = [b for b in rig.data.bones if b.use_deform]
    rng = np.random.default_rng(3)
    heads = np.array([np.array(b.head_local) for b in bones])
    owner = rng.integers(0, len(bones), vertices)
    points = heads[owner] + rng.normal(scale=0.03, size=(vertices, 3))
    count = vertices - vertices % 3
    faces = np.arange(count).reshape(-1, 3).tolist()
    data = bpy.data.meshes.new("Body")
    data.from_pydata(points.tolist(), [], faces)
    body = bpy.data.objects.new("Body", data)
    scene.collection.objects.link(body)
    body.parent = rig
    picks = (owner[:, None] + np.arange(WEIGHTS_PER_VERTEX) * 7) % len(bones)
    for k, bone in enumerate(bones):
        members = np.flatnonzero((picks == k).any(axis=1))
        if members.size:
            group = body.vertex_groups.new(name=bone.name)
            group.add(members.tolist(), 1.0 / WEIGHTS_PER_VERTEX, "REPLACE")
    modifier = body.modifiers.new("Armature", "ARMATURE")
    assert isinstance(modifier, bpy.types.ArmatureModifier)
    modifier.object = rig


def read_in_the_scene(
    scene: bpy.types.Scene, obj: bpy.types.Object, names: list[str], frames: range
) -> np.ndarray:
    """Session 4's read, the baseline: step the artist's whole scene, read the rig's pose."""
    pose = build.pose_bones(obj)
    order = [pose.find(n) for n in names]
    flat = np.empty(len(pose) * 16, dtype=np.float32)
    out = np.empty((len(frames), len(names), 4, 4))
    for f, frame in enumerate(frames):
        scene.frame_set(frame)
        pose.foreach_get("matrix", flat)
        out[f] = flat.reshape(-1, 4, 4).transpose(0, 2, 1)[order]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--body-vertices", type=int, default=30000)
    args = parser.parse_args()
    scene = fresh_scene()
    _, rig = rigs.rigify_rigs(scene)
    if args.body_vertices:
        skinned_body(scene, rig, args.body_vertices)
    rotations, pelvis, _ = synthetic.takes(1, FRAMES, seed=5)
    motion = rig_takes.Motion("bench", synthetic.skeleton(), rotations[0], pelvis[0], 30.0)
    (action,) = rig_takes.retarget_actions(rig, [motion], retarget.RetargetOptions())
    rig_takes.play(rig, action)
    tree = deform_export.clean_tree(rig)
    assert tree is not None
    names = [rig.data.bones[i].name for i in tree.indices]
    frames = range(1, FRAMES + 1)
    figures: dict[str, list[tuple[float, float]]] = {"plain": [], "deform": [], "read": [],
                                                     "scene": [], "bake": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.repeats):
            for deform_only, key in ((False, "plain"), (True, "deform")):
                path = Path(folder) / f"{key}{k}.fbx"
                export = partial(rig_export.export_rig_fbx, scene, rig, action, path, "bench",
                                 "UNREAL", deform_only)  # fmt: skip
                timed(export, figures[key])
            read = partial(rig_reader.posed_matrices, scene, rig, names, frames)
            posed = timed(read, figures["read"])
            in_scene = timed(partial(read_in_the_scene, scene, rig, names, frames),
                             figures["scene"])  # fmt: skip
            assert np.abs(posed - in_scene).max() < 1e-5  # the same poses, read either way
            with contextlib.ExitStack() as stack:
                bake = deform_export.temporary_armature(scene, rig, tree, posed, 1)
                timed(partial(stack.enter_context, bake), figures["bake"])
    wall = {key: statistics.median(v[0] for v in values) * 1000 for key, values in figures.items()}
    cpu = {key: statistics.median(v[1] for v in values) * 1000 for key, values in figures.items()}
    print(f"Rigify human: {len(rig.data.bones)} bones, {len(names)} deforming; body mesh "
          f"{args.body_vertices} vertices; one take of {FRAMES} frames; bpy "
          f"{bpy.app.version_string}; median of {args.repeats}, wall (CPU)")  # fmt: skip
    rows = (("plain export (every bone)", "plain"), ("deform-only (clean tree)", "deform"),
            ("  read posed deforming bones", "read"),
            ("  (baseline: stepping the scene)", "scene"),
            ("  build + bake the armature", "bake"))  # fmt: skip
    ratios = {"deform": ("plain", "of plain"), "read": ("scene", "of stepping the scene")}
    for label, key in rows:
        base, what = ratios.get(key, ("", ""))
        ratio = f"  x{cpu[key] / cpu[base]:.2f} {what} (CPU)" if base else ""
        print(f"{label:33s}{wall[key]:9.1f} ms ({cpu[key]:8.1f}){ratio}")
    blender_addon.unregister()


if __name__ == "__main__":
    main()
