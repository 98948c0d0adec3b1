"""Finishing re-bake benchmark (prints figures; not a test).

    .venv/bin/python tests/addon/bench_rebake.py [--repeats N]

A 12 s take (360 frames at 30 fps: the bundled CMU walk, its loop played to 360 frames) is added
to the scene like a generated take; then each finishing option is toggled on the panel's
properties and the take's Action is re-baked from the raw take (one re-bake per row). Target
(issue #10): well under a second per toggle. The baseline, measured in the same run, is
writing the take in the first place (``history.add_result``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hy_motion_bench_"))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import history, take_finishing  # noqa: E402
from blender_addon.core.finishing import loop as looping  # noqa: E402
from blender_addon.core.finishing.clip import as_clip  # noqa: E402
from blender_addon.core.motion import bvh_import, kinematics  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from blender_addon.props import scene_settings  # noqa: E402

FRAMES = 360
TOGGLES = [
    ("foot lock Auto", {"foot_lock": "AUTO"}),
    ("+ in place", {"in_place": True}),
    ("+ loop", {"loop": True}),
    ("+ trim 11-350", {"trim_start": 11, "trim_end": 350}),
    ("all off (raw back)", {"foot_lock": "OFF", "in_place": False, "loop": False,
                            "trim_start": 0, "trim_end": 0}),
]  # fmt: skip


def twelve_second_result() -> bvh_import.messages.Result:
    take = bvh_import.load_bvh_take(ROOT / "examples" / "mocap" / "walk_forward_cmu_35_01.bvh")
    clip = as_clip(take.skeleton, take.rotations, take.root_positions, take.fps)
    cycle, report = looping.make_loop(clip)
    long = looping.repeat(cycle, report.travel, -(-FRAMES // cycle.frames)).frames_slice(0, FRAMES)
    positions = kinematics.joint_positions(long.skeleton, long.rotations, long.root_positions)
    walk = bvh_import.BvhTake(
        skeleton=take.skeleton, rotations=long.rotations.astype("float32"),
        root_positions=long.root_positions.astype("float32"),
        joint_positions=positions.astype("float32"), fps=30.0, convention="cmu", unmapped=(),
        skipped_tpose=True, source_frames=FRAMES, source_fps=30.0,
    )  # fmt: skip
    return bvh_import.as_result(walk, "walk 12 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = twelve_second_result()
    blender_addon.register()
    print(f"bpy {bpy.app.version_string}, take of {FRAMES} frames, median of {args.repeats}")
    adds: list[float] = []
    timings: dict[str, list[float]] = {label: [] for label, _ in TOGGLES}
    for _ in range(args.repeats):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps = 30
        start = time.perf_counter()
        (take,) = history.add_result(scene, result, ServerInfo())
        history.apply_take(scene, take)
        adds.append(time.perf_counter() - start)
        take = scene_settings(scene).takes[0]
        for label, changes in TOGGLES:
            start = time.perf_counter()
            with take_finishing.quiet():  # several fields: one re-bake, as one click makes
                for name, value in changes.items():
                    setattr(take.finishing, name, value)
            take_finishing.refinish(scene, take)
            timings[label].append(time.perf_counter() - start)
            assert not take.finishing.status.endswith("unchanged."), take.finishing.status
    baseline = statistics.median(adds) * 1e3
    print(f"{'baseline: write the take (add_result)':40s} {baseline:7.1f} ms")
    for label, values in timings.items():
        median = statistics.median(values) * 1e3
        print(f"{'toggle ' + label:40s} {median:7.1f} ms  ({median / baseline:4.1f}x baseline)")
    blender_addon.unregister()  # the bpy 4.2/4.5 modules crash or hang at exit otherwise
    return 0


if __name__ == "__main__":
    sys.exit(main())
