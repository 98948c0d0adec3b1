"""Cost of planted feet and IK poles in retargeting (prints figures; not a test):
.venv/bin/python tests/addon/bench_planting.py [REPEATS]

8 real motion-capture takes (the six bundled CMU clips, then the first two again, each cut or
looped to 360 frames) onto the 69-bone UE5 test rig (child A-pose: other proportions than the
model, so the feet have something to do), the bpy-free part of a retarget
(``retarget.retarget_takes``: one transfer, then per take contacts, planting and pose
channels). Baseline in the same run: the same call with plant feet off. Also: limbs in IK on a
rig with four IK poles (the same rig with pole bones declared), against limbs in FK. Wall and
CPU time per case (medians). Then the same takes onto the human rig Blender's own Rigify
generates, plant feet off and on (its legs differ from the model's: there planting runs its
rounds of limited IK).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from blender_addon.core import bone_mapping, retarget  # noqa: E402
from blender_addon.core.motion import bvh_import  # noqa: E402
from tools import character_rigs  # noqa: E402

TAKES, FRAMES = 8, 360
MOCAP = ROOT / "examples" / "mocap"


def takes() -> tuple[object, list[retarget.TakeMotion]]:
    clips = [bvh_import.load_bvh_take(p) for p in sorted(MOCAP.glob("*.bvh"))]
    out = []
    for k in range(TAKES):
        clip = clips[k % len(clips)]
        index = np.arange(FRAMES) % clip.rotations.shape[0]  # looped where shorter
        out.append(retarget.TakeMotion(clip.rotations[index], clip.root_positions[index],
                                       clip.fps))  # fmt: skip
    return clips[0].skeleton, out


def timed(run, repeats: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms): on a shared machine the CPU time is the steadier."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    skeleton, motions = takes()
    rig = character_rigs.rig_bones("UE5", character_rigs.CHILD_A)
    mapping = bone_mapping.auto_mapping(rig)
    # The same rig declaring IK poles on its calves and forearms (bones exist: the IK bones
    # stand in for pole controls; what is timed is the keying).
    poles = tuple((f"ik_hand_{s}" if limb == "lowerarm" else f"ik_foot_{s}", f"{limb}_{s}")
                  for s in "lr" for limb in ("calf", "lowerarm"))  # fmt: skip
    posed = dataclasses.replace(rig, ik_poles=poles)
    plan = retarget.plan(skeleton, rig, mapping)
    plan_poles = retarget.plan(skeleton, posed, mapping)
    assert len(plan_poles.poles) == 4, plan_poles.poles
    cases = [
        ("plant feet off (baseline)", plan, retarget.RetargetOptions(pin_feet=False)),
        ("plant feet on", plan, retarget.RetargetOptions()),
        ("limbs in FK, rig with poles", plan_poles, retarget.RetargetOptions()),
        ("limbs in IK, 4 poles keyed", plan_poles, retarget.RetargetOptions(ik_limbs=True)),
    ]
    print(f"{TAKES} takes x {FRAMES} frames onto the UE5 test rig ({rig.count} bones), "
          f"{repeats} repeats, retarget.retarget_takes only (no Blender writes)")  # fmt: skip
    run_cases(cases, motions, repeats)
    rigify = rigify_plan(skeleton)
    if rigify is not None:
        print("the same takes onto Blender's Rigify human (other leg proportions: planting works "
              "at its limit there)")  # fmt: skip
        off, on = retarget.RetargetOptions(pin_feet=False), retarget.RetargetOptions()
        run_cases([("plant feet off (baseline)", rigify, off), ("plant feet on", rigify, on)],
                  motions, repeats)  # fmt: skip


def run_cases(cases: list, motions: list[retarget.TakeMotion], repeats: int) -> None:
    baseline = None
    for label, p, options in cases:
        wall, cpu = timed(lambda p=p, o=options: retarget.retarget_takes(p, motions, o),
                          repeats)  # fmt: skip
        baseline = baseline or cpu
        print(f"  {label:32s} {wall:7.1f} ms wall, {cpu:7.1f} ms CPU (medians), "
              f"{cpu / baseline:4.2f}x baseline CPU")  # fmt: skip


def rigify_plan(skeleton: object) -> retarget.RigPlan | None:
    """The plan of the human rig Blender's own Rigify generates (None where bpy has no Rigify)."""
    import bpy

    from blender_addon import rig_reader, rig_takes

    bpy.ops.wm.read_factory_settings(use_empty=True)
    generated = character_rigs.rigify_rigs(bpy.context.scene)
    if generated is None:
        return None
    rig = generated[1]
    return retarget.plan(skeleton, rig_reader.rig_bones(rig), rig_takes.rig_mapping(rig))


if __name__ == "__main__":
    main()
