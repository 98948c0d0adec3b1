"""Retarget quality on every test rig and every bundled CMU clip, plant feet on and off
(prints Markdown tables; not a test): .venv/bin/python tests/addon/bench_retarget_quality.py

Rigs: each convention's test rig in the body the convention test gives it (test_retarget_motion
BODIES, twisted rolls), the two rigs every clip is tested on (UE5 child A-pose, Mixamo uniform
A-pose), the Mixamo rig with feet unlike the model's (test_addon_direction_rig) and the human
rig Blender's own Rigify generates. Clips: examples/mocap (first 150 frames, all of each clip).
The rig poses are the retarget's plan (the tests hold Blender's posing of them to 1 mm).

Per rig, the worst over the clips of (``retarget_checks`` for the definitions): direction error
max (median is 0.00 everywhere unless shown), hands and feet vs the model scaled per limb chain
(the judged figure) and vs the model scaled by leg length (raw), toe slide on the rig against
the model's (worst clip: rig minus model, negative = less slide than the model), how far a
planted foot slips beyond the model's over a contact (summed, at its ankle or toe, whichever
slips less), and the largest frame-to-frame bone
turn (flips) against the model's own. Then every clip on the Rigify human.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from blender_addon import rig_reader, rig_takes  # noqa: E402
from blender_addon.core import bone_mapping, retarget  # noqa: E402
from blender_addon.core.bone_mapping import BoneMapping  # noqa: E402
from blender_addon.core.motion import kinematics  # noqa: E402
from blender_addon.core.motion import rotations as rot  # noqa: E402
from blender_addon.core.rig_bones import RigBones  # noqa: E402
from tests.addon import retarget_checks, rigs  # noqa: E402
from tests.addon.test_addon_direction_rig import other_feet  # noqa: E402
from tests.addon.test_retarget_motion import BODIES, UNIFORM_A  # noqa: E402


def test_rigs() -> list[tuple[str, RigBones, BoneMapping]]:
    out = []
    for index, key in enumerate(sorted(rigs.SPECS)):
        body = BODIES[index % len(BODIES)]
        out.append((f"{key} ({body.name})", rigs.rig_bones(key, body, roll="twisted")))
    out.append(("UE5 (child A-pose)", rigs.rig_bones("UE5", rigs.CHILD_A)))
    out.append((f"MIXAMO ({UNIFORM_A.name})", rigs.rig_bones("MIXAMO", UNIFORM_A)))
    out.append(("MIXAMO, feet unlike the model's", other_feet(rigs.CHILD_A)))
    with_mappings = [(name, rig, bone_mapping.auto_mapping(rig)) for name, rig in out]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    generated = rigs.rigify_rigs(bpy.context.scene)
    if generated is not None:
        rig = generated[1]
        with_mappings.append(("Rigify human (Blender's Rigify)", rig_reader.rig_bones(rig),
                              rig_takes.rig_mapping(rig)))  # fmt: skip
    return with_mappings


def model_step_deg(motion: rig_takes.Motion) -> float:
    world = kinematics.world_rotations(motion.rotations, motion.skeleton.parents)
    return float(np.degrees(rot.angle_between(world[1:], world[:-1]).max()))


def main() -> None:
    motions = [retarget_checks.clip_motion(clip) for clip in retarget_checks.CLIPS]
    steps = [model_step_deg(m) for m in motions]
    per_clip = []
    print("| rig | dir max off / on (deg) | hands chain / raw (cm) | feet chain off / on, raw "
          "(cm) | toe slide minus the model's, off / on (m) | planted foot slip off / on "
          "(cm) | step over the model's (deg) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, rig, mapping in test_rigs():
        rows = []
        for motion, step in zip(motions, steps, strict=True):
            plan = retarget.plan(motion.skeleton, rig, mapping)
            off, on = (retarget_checks.planned(plan, motion, retarget.RetargetOptions(pin_feet=p))
                       .figures() for p in (False, True))  # fmt: skip
            rows.append((motion.name, off, on, step))
            if name.startswith("Rigify"):
                per_clip.append((motion.name, off, on))

        def worst(field: str, which: int, rows: list = rows) -> float:
            return max(getattr(row[which], field) for row in rows)

        slides = [max(row[which].slide_rig_m - row[which].slide_model_m for row in rows)
                  for which in (1, 2)]  # fmt: skip
        step_over = max(max(row[1].max_step_deg, row[2].max_step_deg) - row[3] for row in rows)
        print(f"| {name} | {worst('max_deg', 1):.2f} / {worst('max_deg', 2):.2f} | "
              f"{worst('hands_cm', 1):.3f} / {worst('hands_raw_cm', 1):.1f} | "
              f"{worst('feet_cm', 1):.3f} / {worst('feet_cm', 2):.2f}, "
              f"{worst('feet_raw_cm', 1):.1f} | "
              f"{slides[0]:+.3f} / {slides[1]:+.3f} | "
              f"{worst('plant_drift_cm', 1):.2f} / {worst('plant_drift_cm', 2):.2f} | "
              f"{step_over:+.1f} |")  # fmt: skip
    print()
    print("Rigify human, every clip (plant feet off -> on):")
    print("| clip | frames | dir median / max (deg) | feet chain (cm) | hands chain (cm) | toe "
          "slide rig / model (m) | planted foot slip (cm) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for clip, off, on in per_clip:
        frames = next(m.rotations.shape[0] for m in motions if m.name == clip)
        print(f"| {clip} | {frames} | {off.median_deg:.2f} / {off.max_deg:.2f} -> "
              f"{on.median_deg:.2f} / {on.max_deg:.2f} | {off.feet_cm:.3f} -> {on.feet_cm:.2f} | "
              f"{off.hands_cm:.3f} -> {on.hands_cm:.3f} | {off.slide_rig_m:.3f} -> "
              f"{on.slide_rig_m:.3f} / {on.slide_model_m:.3f} | {off.plant_drift_cm:.2f} -> "
              f"{on.plant_drift_cm:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
