"""Deform-only FBX of one 12 s take on Blender's Rigify human (prints figures; not a test):
.venv/bin/python tests/addon/bench_deform_export.py [--repeats N]

Issue 9: a deform-only export writes from a temporary clean deform armature (read the rig's
posed deforming bones every frame, build the armature, bake, write, remove). Baseline, measured
in the same run: the plain export of the same take (every bone, Blender's exporter on the rig).
Phases of the deform-only export: reading the posed bones, building + baking the temporary
armature, and the FBX write itself (the rest).
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

import blender_addon  # noqa: E402
from blender_addon import deform_export, rig_export, rig_takes  # noqa: E402
from blender_addon.core import retarget  # noqa: E402
from tests.addon import rigs, synthetic  # noqa: E402
from tests.addon.bench_retarget import fresh_scene  # noqa: E402

FRAMES = 360
T = TypeVar("T")


def timed(run: Callable[[], T], into: list[tuple[float, float]]) -> T:
    """``run()``, its (wall, CPU) seconds appended to ``into``: on a shared machine the CPU time
    is the steadier one."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    into.append((time.perf_counter() - wall, time.process_time() - cpu))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scene = fresh_scene()
    _, rig = rigs.rigify_rigs(scene)
    rotations, pelvis, _ = synthetic.takes(1, FRAMES, seed=5)
    motion = rig_takes.Motion("bench", synthetic.skeleton(), rotations[0], pelvis[0], 30.0)
    (action,) = rig_takes.retarget_actions(rig, [motion], retarget.RetargetOptions())
    rig_takes.play(rig, action)
    tree = deform_export.clean_tree(rig)
    assert tree is not None
    names = [rig.data.bones[i].name for i in tree.indices]
    frames = range(1, FRAMES + 1)
    figures: dict[str, list[tuple[float, float]]] = {"plain": [], "deform": [], "read": [],
                                                     "bake": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.repeats):
            for deform_only, key in ((False, "plain"), (True, "deform")):
                path = Path(folder) / f"{key}{k}.fbx"
                export = partial(rig_export.export_rig_fbx, scene, rig, action, path, "bench",
                                 "UNREAL", deform_only)  # fmt: skip
                timed(export, figures[key])
            read = partial(deform_export.posed_matrices, scene, rig, names, frames)
            posed = timed(read, figures["read"])
            with contextlib.ExitStack() as stack:
                bake = deform_export.temporary_armature(scene, rig, tree, posed, 1)
                timed(partial(stack.enter_context, bake), figures["bake"])
    wall = {key: statistics.median(v[0] for v in values) * 1000 for key, values in figures.items()}
    cpu = {key: statistics.median(v[1] for v in values) * 1000 for key, values in figures.items()}
    print(f"Rigify human: {len(rig.data.bones)} bones, {len(names)} deforming; one take of "
          f"{FRAMES} frames; bpy {bpy.app.version_string}; median of {args.repeats}, "
          "wall (CPU)")  # fmt: skip
    rows = (("plain export (every bone)", "plain"), ("deform-only (clean tree)", "deform"),
            ("  read posed deforming bones", "read"),
            ("  build + bake the armature", "bake"))  # fmt: skip
    for label, key in rows:
        ratio = f"  x{cpu[key] / cpu['plain']:.2f} of plain (CPU)" if key == "deform" else ""
        print(f"{label:31s}{wall[key]:9.1f} ms ({cpu[key]:8.1f}){ratio}")
    blender_addon.unregister()


if __name__ == "__main__":
    main()
