"""Where the toes skate on a rig whose feet are not the model's shape (prints a Markdown table;
not a test): .venv/bin/python tests/addon/bench_toe_skate.py

Rig: the Mixamo rig with feet unlike the model's (toes 3 cm lower and 6 cm further forward than
the scaled model's; test_addon_direction_rig.other_feet) in the child A-pose body; clips:
examples/mocap, plant feet on, poses as the retarget plans them. Per clip: the summed toe travel
on skating frames (``retarget_checks``: faster than 0.2 m/s under 5 cm, scaled; the rig's in
model units, divided by the leg-length scale) of the model and of the rig; the rig's skating
toe-frames split by what the model's same foot does then (``motion.contacts``: heel and toe
down, toe only, heel only, up); the median speed of the rig's toe and of the model's toe on
those frames; the median toe height while the model's heel and toe are both down (flat foot,
model units): where each stands while it does not slide.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from blender_addon.core import bone_mapping, retarget  # noqa: E402
from blender_addon.core.motion import contacts  # noqa: E402
from blender_addon.core.motion.skeletons import model_legs  # noqa: E402
from tests.addon import retarget_checks, rigs  # noqa: E402
from tests.addon.test_addon_direction_rig import other_feet  # noqa: E402


def skating(toes: np.ndarray, fps: float, t: contacts.ContactThresholds) -> np.ndarray:
    """(F, 2) toe-frames that skate (the definition ``contacts.foot_skate`` sums)."""
    low = toes[..., 1] - t.toe_clearance < t.skate_height
    return low & (contacts.speeds(toes, fps, horizontal=True) > t.skate_speed)


def main() -> None:
    rig = other_feet(rigs.CHILD_A)
    mapping = bone_mapping.auto_mapping(rig)
    print("| clip | toe slide model / rig (m) | rig skating toe-frames: heel+toe / toe only / "
          "heel only / up | toe speed there, rig / model (m/s) | flat-foot toe height, rig / "
          "model (m) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for clip in retarget_checks.CLIPS:
        motion = retarget_checks.clip_motion(clip)
        plan = retarget.plan(motion.skeleton, rig, mapping)
        played = retarget_checks.planned(plan, motion, retarget.RetargetOptions())
        scale, fps = plan.calibration.scale, motion.fps
        legs = model_legs(plan.model)
        model_toes = played.model_positions[:, list(legs.toe)]
        rig_toes = played.heads[:, list(plan.target_legs.toe)]
        found = contacts.detect_contacts(played.model_positions, fps, legs)
        thresholds = contacts.ContactThresholds()
        rig_skates = skating(rig_toes, fps, thresholds.scaled(plan.target.leg_length))
        figures = played.figures()
        phases = (found.ankle & found.toe, found.toe & ~found.ankle,
                  found.ankle & ~found.toe, ~found.foot)  # fmt: skip
        split = " / ".join(str(int((rig_skates & phase).sum())) for phase in phases)
        rig_speed = contacts.speeds(rig_toes, fps, horizontal=True)[rig_skates] / scale
        model_speed = contacts.speeds(model_toes, fps, horizontal=True)[rig_skates]
        speeds = (f"{np.median(rig_speed):.2f} / {np.median(model_speed):.2f}"
                  if rig_skates.any() else "-")  # fmt: skip
        flat = phases[0]
        heights = f"{np.median(rig_toes[..., 1][flat]) / scale:.3f} / " \
                  f"{np.median(model_toes[..., 1][flat]):.3f}"  # fmt: skip
        print(
            f"| {clip} | {figures.slide_model_m:.3f} / {figures.slide_rig_m:.3f} | {split} | "
            f"{speeds} | {heights} |"
        )


if __name__ == "__main__":
    main()
