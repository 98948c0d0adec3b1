"""Golden figures of retargeting (no bpy): the keyed values of CMU takes on test rigs, as the
straightforward per-bone code computed them before the transfer was vectorised (issue 9,
session 3; the file was written by main at 66c46b1, again when planting changed on purpose:
the body follows its planted feet, and in session 5 when a take stood on its flat feet instead
of its lowest joint: on these rigs, whose feet are the model's shape, that moved every key by at
most 7e-8 m, the float32 rounding of the skeletons' rest positions, and turned none).
``test_retarget_golden.py`` holds the current code to them.

Regenerate only when retargeting results change on purpose (a quality change, not a speed
change): ``.venv/bin/python -m tests.addon.retarget_golden`` rewrites
``tests/addon/data/retarget_golden.npz`` and prints what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blender_addon.core import bone_mapping, retarget
from blender_addon.core.motion import bvh_import
from tests.addon import rigs

MOCAP = Path(__file__).resolve().parents[2] / "examples" / "mocap"
GOLDEN = Path(__file__).resolve().parent / "data" / "retarget_golden.npz"
CLIPS = ("walk_turn_left_cmu_16_11.bvh", "run_cmu_02_03.bvh")
FRAMES = 120
EVERY = 3  # frames kept in the file (it stays small; any frame would do)


@dataclass(frozen=True)
class Case:
    name: str
    rig: str
    body: rigs.Body
    options: retarget.RetargetOptions


CASES = (
    Case("ue5_tall_a_keep", "UE5", rigs.TALL_A, retarget.RetargetOptions()),
    Case("ue5_tall_a_root_bone", "UE5", rigs.TALL_A, retarget.RetargetOptions("ROOT_BONE")),
    Case("mixamo_child_t_in_place", "MIXAMO", rigs.CHILD_T, retarget.RetargetOptions("IN_PLACE")),
    Case("arp_adult_t_keep", "ARP", rigs.ADULT_T, retarget.RetargetOptions()),
    Case("cc_child_a_keep", "CC", rigs.CHILD_A, retarget.RetargetOptions()),
)


def takes() -> list[retarget.TakeMotion]:
    out = []
    for clip in CLIPS:
        take = bvh_import.load_bvh_take(MOCAP / clip)
        out.append(retarget.TakeMotion(take.rotations[:FRAMES], take.root_positions[:FRAMES],
                                       take.fps))  # fmt: skip
    return out


def compute(case: Case) -> list[retarget.RigTake]:
    """Each clip retargeted on its own onto the case's rig (as one UI apply does)."""
    rig = rigs.rig_bones(case.rig, case.body)
    mapping = bone_mapping.auto_mapping(rig)
    plan = retarget.plan(bvh_import.MODEL_SKELETON, rig, mapping)
    return [retarget.retarget_takes(plan, [take], case.options)[0] for take in takes()]


def figures(case: Case) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, take in enumerate(compute(case)):
        key = f"{case.name}/{k}"
        out[f"{key}/bone_names"] = np.array(take.bone_names)
        out[f"{key}/quaternions"] = take.quaternions[::EVERY]
        out[f"{key}/location_bones"] = np.array(take.location_bones)
        out[f"{key}/locations"] = take.locations[::EVERY]
        out[f"{key}/root_positions"] = take.root_positions[::EVERY]
    return out


def main() -> None:
    data: dict[str, np.ndarray] = {}
    for case in CASES:
        data.update(figures(case))
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **data)
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes, {len(data)} arrays)")


if __name__ == "__main__":
    main()
