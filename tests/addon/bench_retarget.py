"""Retargeting benchmark (prints figures; not a test):
.venv/bin/python tests/addon/bench_retarget.py [REPEATS]

8 takes x 360 frames onto a ~70-bone UE5-style rig (69 bones: twist, IK and finger bones),
written in bulk as 8 Actions — target <= 300 ms in bpy 5.0.1 headless. Baseline in the same
run: the same 8 takes applied to the built-in armature (history.add_result + apply). Also the
largest single-take write (what the UI waits for when the artist applies one take).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import history, rig_takes  # noqa: E402
from blender_addon.core import retarget  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from shared_protocol import Result  # noqa: E402
from tests.addon import rigs, synthetic  # noqa: E402

TAKES, FRAMES = 8, 360


def fresh_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not hasattr(bpy.types.Scene, "hy_motion"):
        blender_addon.register()
    scene = bpy.context.scene
    scene.render.fps = 30
    return scene


def motions() -> list[rig_takes.Motion]:
    rotations, pelvis, _ = synthetic.takes(TAKES, FRAMES)
    skeleton = synthetic.skeleton()
    return [rig_takes.Motion(f"take {k}", skeleton, rotations[k], pelvis[k], 30.0)
            for k in range(TAKES)]  # fmt: skip


def bench_baseline(repeats: int) -> list[float]:
    rotations, pelvis, positions = synthetic.takes(TAKES, FRAMES)
    result = Result(job_id="bench", model="m", model_label="m", untrained=True, prompt="walk",
                    frames=FRAMES, fps=30, seeds=tuple(range(TAKES)), guidance=5.0, steps=50,
                    skeleton=synthetic.skeleton(), rotations=rotations, root_positions=pelvis,
                    joint_positions=positions)  # fmt: skip
    times = []
    for _ in range(repeats):
        scene = fresh_scene()
        start = time.perf_counter()
        takes = history.add_result(scene, result, ServerInfo())
        history.apply_take(scene, takes[0])
        times.append(time.perf_counter() - start)
    return times


def bench_retarget(repeats: int, count: int) -> tuple[list[float], int]:
    takes = motions()[:count]
    times, bones = [], 0
    for _ in range(repeats):
        scene = fresh_scene()
        rig = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
        bones = len(rig.data.bones)
        start = time.perf_counter()
        actions = rig_takes.retarget_actions(rig, takes, retarget.RetargetOptions())
        rig_takes.play(rig, actions[0])
        times.append(time.perf_counter() - start)
    return times, bones


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, min {min(values) * 1000:.1f} ms"


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"bpy {bpy.app.version_string}, {TAKES} takes x {FRAMES} frames, {repeats} repeats")
    baseline = bench_baseline(repeats)
    full, bones = bench_retarget(repeats, TAKES)
    one, _ = bench_retarget(repeats, 1)
    print(f"built-in armature, {TAKES} takes (baseline): {ms(baseline)}")
    print(
        f"retarget onto a {bones}-bone rig, {TAKES} takes: {ms(full)} (target <= 300 ms); "
        f"{statistics.median(full) / statistics.median(baseline):.2f}x the baseline"
    )
    print(f"retarget one take (one UI apply): {ms(one)}")
    blender_addon.unregister()


if __name__ == "__main__":
    main()
