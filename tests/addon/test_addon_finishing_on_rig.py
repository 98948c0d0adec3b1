"""Issue #10's "done means", end to end on an artist's rig (bpy): a walk take, *Foot lock*,
*In place* and *Loop* ticked in the panel, applied to a Mixamo character, gives a clean cycle
on the character (no skate on its feet, no pop at its seam, no travel); the batch
(``--bvh ... --target-rig ...`` with the same finishing flags) gives the same keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest

from blender_addon import rig_takes
from blender_addon.core import naming
from blender_addon.core.motion import contacts, kinematics
from blender_addon.core.motion.skeletons import Legs
from blender_addon.props import scene_settings
from tests.addon import rigs
from tests.addon.retarget_checks import evaluated
from tests.addon.test_addon_batch import run_batch

WALK = Path(__file__).resolve().parents[2] / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh"
#: hips, left/right knee, ankle and toe: the model joints the figures need, in this order
JOINTS = ("Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "L_Foot", "R_Foot")
LEGS = Legs(hip=(1, 2), knee=(3, 4), ankle=(5, 6), toe=(7, 8))


def _character(scene: Any) -> Any:
    rig = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.TALL_A), "Hero")
    bpy.context.view_layer.objects.active = rig
    return rig


def _posed(rig: Any, frames: int) -> np.ndarray:
    """The rig's hips, knees, ankles and toes as Blender poses them (F, 9, 3), Y up, metres."""
    mapping = rig_takes.rig_mapping(rig)
    names = tuple(mapping.joints[j] for j in JOINTS)
    heads, _ = evaluated(rig, names, frames)
    return heads


def _figures(positions: np.ndarray, fps: float, during: np.ndarray) -> dict[str, float]:
    """Skate of the rig's toes on the contact frames ``during``; the step across the seam of
    the take played twice and the 90th percentile of its other steps (pose relative to the
    hips' ground point and heading, mean over the joints); the hips' horizontal travel."""
    leg = kinematics.leg_length(positions[0], LEGS.chains())
    scaled = contacts.ContactThresholds().scaled(leg)
    skate = contacts.foot_skate(positions, fps, LEGS, scaled, during=during)
    local = _local(positions)
    twice = np.concatenate([local, local])
    steps = np.linalg.norm(np.diff(twice, axis=0), axis=-1).mean(axis=1)  # (2F-1,)
    seam = len(local) - 1
    return {
        "skate_fraction": skate.fraction,
        "skate_m": skate.distance_m,
        "seam_step_m": float(steps[seam]),
        "p90_step_m": float(np.percentile(np.delete(steps, seam), 90)),
        "travel_m": float(np.ptp(positions[:, 0, [0, 2]], axis=0).max()),
    }


def _local(positions: np.ndarray) -> np.ndarray:
    """Joints relative to the hips' ground point, turned so the hip line faces +X."""
    across = positions[:, 1] - positions[:, 2]
    angle = np.arctan2(across[:, 2], across[:, 0])
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    offset = positions - positions[:, :1] * np.array([1.0, 0.0, 1.0])
    x, z = offset[..., 0], offset[..., 2]
    return np.stack([cos * x + sin * z, offset[..., 1], -sin * x + cos * z], axis=-1)


def _contacts(positions: np.ndarray, fps: float) -> np.ndarray:
    leg = kinematics.leg_length(positions[0], LEGS.chains())
    return contacts.detect_contacts(positions, fps, LEGS,
                                    contacts.ContactThresholds().scaled(leg)).foot  # fmt: skip


@pytest.mark.slow
def test_foot_lock_in_place_and_loop_give_a_clean_cycle_on_the_character(
    scene: Any, tmp_path: Path
) -> None:
    rig = _character(scene)
    hero = tmp_path / "hero.blend"  # the character's file, for the batch
    bpy.data.libraries.write(str(hero), {rig})
    assert bpy.ops.hy_motion.use_character() == {"FINISHED"}
    assert bpy.ops.hy_motion.import_bvh(filepath=str(WALK)) == {"FINISHED"}
    settings = scene_settings(scene)
    take = settings.takes[0]
    raw = _posed(rig, take.frames)  # the take as it came, on the character
    fps = float(take.fps)
    before = _figures(raw, fps, _contacts(raw, fps))
    # What an artist clicks: three options in the Finishing panel, one at a time.
    take.finishing.foot_lock = "AUTO"
    take.finishing.in_place = True
    take.finishing.loop = True
    assert "loop" in take.finishing.status, take.finishing.status
    assert rig.animation_data.action.name == rig_takes.action_name(take.name, "Hero")
    cycle = _posed(rig, take.frames)
    report = json.loads(take.finishing.report)
    assert take.frames == report["loop"]["frames"] < raw.shape[0]
    # In place on a treadmill: the feet are planted on ground that moves with the removed
    # travel (as an engine moves the character); the same cycle with the travel kept shows it.
    take.finishing.in_place = False
    travelling = _posed(rig, take.frames)
    take.finishing.in_place = True
    shift = travelling - cycle
    assert np.abs(shift - shift[:, :1]).max() < 1e-4 and np.abs(shift[..., 1]).max() < 1e-4
    after = _figures(travelling, fps, _contacts(travelling, fps))
    in_place = _figures(cycle, fps, _contacts(travelling, fps))
    print(f"on the character: before {before}\nafter {after}\nin place {in_place}")
    assert in_place["travel_m"] <= 1e-3 < before["travel_m"]
    assert after["skate_m"] <= 0.1 * before["skate_m"]
    assert after["skate_fraction"] <= 0.1 * before["skate_fraction"]
    # played twice, the seam is an ordinary frame of the cycle (it was a 0.35 m jump before)
    assert in_place["seam_step_m"] <= in_place["p90_step_m"]
    assert in_place["seam_step_m"] < before["seam_step_m"] / 5
    assert _contacts(travelling, fps).any(axis=0).all()  # both feet plant during the cycle

    # The batch with the same flags, onto the same character saved in a .blend.
    out = tmp_path / "out"
    result = run_batch("--bvh", str(WALK), "--out", str(out), "--formats", "blend",
                       "--target-rig", f"{hero}:Hero", "--foot-lock", "auto", "--in-place",
                       "--loop")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    item = summary["items"][0]
    assert item["finishing"]["report"]["loop"] == report["loop"]
    assert item["finishing"]["report"]["foot_lock"] == report["foot_lock"]
    (blend,) = [Path(f) for f in item["files"] if f.endswith(".blend")]
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    batch_rig = bpy.data.objects["Hero"]
    batch_take = naming.take_name(item["prompt"], item["seed"])
    assert batch_rig.animation_data.action.name == rig_takes.action_name(batch_take, "Hero")
    batched = _posed(batch_rig, cycle.shape[0])
    assert np.abs(batched - cycle).max() < 1e-4  # the same cycle, to 0.1 mm
