"""Direction on the artist's rig, figures (prints them; not a test):
.venv/bin/python tests/addon/bench_direction_rig.py [REPEATS]

1. Round trip on the rig, as Blender poses it: the rig keyed with each CMU clip (retargeted, as
   the artist's own action), its pose read at 14 frames onto the model skeleton, retargeted back
   (anchored at the first pose, planted feet off: poses judged as poses) and posed by Blender
   again. Per rig and clip: mapped segment directions (median / max degrees), worst hand/foot
   and worst mapped bone head (mm). Rigs: Mixamo (tall adult A-pose, twisted rolls), UE5 (child
   A-pose), Mixamo with feet unlike the model's (the ground anchor matters), and the rig
   Blender's own Rigify generates. Also Mixamo with every mapped bone
   turned up to 25 degrees at the read frames (poses no retarget makes).
2. Cost of reading the poses Direction needs (Start: Current Pose + End on Pose: 2 frames)
   from the character, vs the baseline in the same run: reading them from the active take on
   the add-on's armature (build.read_motion of a 90-frame take, the New-armature path).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


from blender_addon import build, history, rig_reader, rig_takes  # noqa: E402
from blender_addon.core import retarget, rig_pose  # noqa: E402
from blender_addon.core.motion.skeletons import MODEL_SKELETON  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from tests.addon import retarget_checks, rigs  # noqa: E402
from tests.addon.retarget_checks import CLIPS, clip_motion  # noqa: E402
from tests.addon.test_addon_direction_rig import (  # noqa: E402
    READ_FRAMES,
    _key_artist_action,
    other_feet,
    round_trip,
)
from tests.addon.test_addon_scene import make_result  # noqa: E402


def show(label: str, figures: tuple[float, ...]) -> None:
    median, worst, limb_cm, head_cm = figures
    print(f"  {label:44s} dir median {median:.2e} deg, max {worst:.2e} deg, "
          f"hands/feet {limb_cm * 10:.4f} mm, heads {head_cm * 10:.4f} mm")  # fmt: skip


def round_trips() -> None:
    print("1. rig pose -> model -> rig, as Blender poses it (14 poses per clip)")
    for key in ("MIXAMO", "UE5", "MIXAMO, feet unlike the model's"):
        if key == "UE5":
            rig = rigs.rig_bones(key, rigs.CHILD_A, roll="twisted")
        else:
            rig = rigs.rig_bones(key, rigs.TALL_A, "twisted") if key == "MIXAMO" else other_feet()
        for clip in CLIPS:
            scene = retarget_checks.fresh_scene()
            obj = rigs.build_armature(scene, rig, "rig")
            obj.location = (1.5, -2.0, 0.0)
            _key_artist_action(obj, clip_motion(clip))
            show(f"{key} {clip}", round_trip(scene, obj, READ_FRAMES))
    scene = retarget_checks.fresh_scene()
    _, rigify = rigs.rigify_rigs(scene)
    for clip in CLIPS:
        _key_artist_action(rigify, clip_motion(clip))
        show(f"Rigify (Blender's) {clip}", round_trip(scene, rigify, READ_FRAMES))
    scene = retarget_checks.fresh_scene()
    obj = rigs.build_armature(scene, rigs.rig_bones("MIXAMO", rigs.CHILD_T), "Mixamo")
    _key_artist_action(obj, clip_motion("kick_cmu_10_02_daz.bvh"))
    retarget_checks.turn_mapped_bones(scene, obj, READ_FRAMES, max_deg=25.0)
    show("Mixamo kick, bones turned up to 25 deg", round_trip(scene, obj, READ_FRAMES))


def reading_cost(repeats: int) -> None:
    print("2. reading the poses Direction needs (current frame + end frame)")
    scene = retarget_checks.fresh_scene()
    (take,) = history.add_result(scene, make_result(1, 90), ServerInfo())
    history.apply_take(scene, take)
    obj = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
    _key_artist_action(obj, clip_motion("walk_forward_cmu_35_01.bvh"))
    rig_times, take_times = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        build.read_motion(take.action, take.armature)
        take_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        rig = rig_reader.rig_bones(obj)
        plan = retarget.plan(MODEL_SKELETON, rig, rig_takes.rig_mapping(obj))
        matrices = rig_reader.posed_matrices(scene, obj, rig.names, [11, 41])
        heads, world = rig_pose.posed_bones(rig, matrices)
        rig_pose.model_poses(plan, heads, world)
        rig_times.append(time.perf_counter() - started)
    rig_ms, take_ms = statistics.median(rig_times) * 1e3, statistics.median(take_times) * 1e3
    print(f"  character ({rig.count} bones): {rig_ms:.1f} ms median of {repeats} "
          f"(rig read + plan + 2 frames evaluated + inverse)")  # fmt: skip
    print(f"  baseline, active take on the add-on's armature (90 frames): {take_ms:.1f} ms; "
          f"ratio {rig_ms / take_ms:.2f}x")  # fmt: skip


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    round_trips()
    reading_cost(repeats)
