"""Finishing benchmark (prints figures; not a test).

    .venv/bin/python tests/motion/bench_finishing.py [--repeats N]

8 takes x 360 frames (30 fps, 12 s) made from the bundled CMU clips (each clip's loop played
until 360 frames), then each finishing operation on all 8 takes, median of ``--repeats`` runs.
Target (issue #10): <= 100 ms per operation for the 8 takes. The baseline, measured in the same
run, is one forward kinematics pass over the 8 takes (what any operation needs at least once).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from blender_addon.core.finishing import loop as looping  # noqa: E402
from blender_addon.core.finishing.clip import Clip, as_clip  # noqa: E402
from blender_addon.core.finishing.options import FinishOptions  # noqa: E402
from blender_addon.core.finishing.pipeline import finish  # noqa: E402
from blender_addon.core.motion import bvh_import  # noqa: E402

FRAMES = 360
CLIPS = ("walk_forward_cmu_35_01.bvh", "walk_turn_left_cmu_16_11.bvh", "run_cmu_02_03.bvh",
         "jump_in_place_cmu_16_01.bvh", "kick_cmu_10_02_daz.bvh", "idle_wave_cmu_141_16.bvh",
         "walk_forward_cmu_35_01.bvh", "walk_turn_left_cmu_16_11.bvh")  # fmt: skip


def takes() -> list[Clip]:
    out = []
    for name in CLIPS:
        take = bvh_import.load_bvh_take(ROOT / "examples" / "mocap" / name)
        clip = as_clip(take.skeleton, take.rotations, take.root_positions, take.fps)
        cycle, report = looping.make_loop(clip)
        times = -(-FRAMES // cycle.frames)
        long = looping.repeat(cycle, report.travel, times)
        out.append(long.frames_slice(0, FRAMES))
    return out


OPERATIONS: dict[str, FinishOptions] = {
    "foot lock (Auto)": FinishOptions(foot_lock="AUTO"),
    "foot lock (Always)": FinishOptions(foot_lock="ALWAYS"),
    "in place (X, Z)": FinishOptions(in_place=True),
    "loop (search + blend)": FinishOptions(loop=True),
    "trim + ease in/out (rest)": FinishOptions(
        trim_start=11, trim_end=350, ease_in=15, ease_out=15
    ),
    "all (3 operations): loop + foot lock + in place": FinishOptions(
        loop=True, foot_lock="AUTO", in_place=True
    ),
}


def quality() -> None:
    """The judged figures per bundled clip (the tests assert them; here they are printed)."""
    from blender_addon.core.finishing.footlock import foot_lock, thresholds_for
    from blender_addon.core.motion import contacts
    from tests.motion import synthetic

    print("foot skate on contact frames, before -> after Auto (fraction, metres); seam figures")
    for name in sorted(set(CLIPS)):
        take = bvh_import.load_bvh_take(ROOT / "examples" / "mocap" / name)
        clip = as_clip(take.skeleton, take.rotations, take.root_positions, take.fps)
        before_pos = clip.joint_positions()
        found = contacts.detect_contacts(before_pos, clip.fps, clip.legs,
                                         thresholds_for(clip, "AUTO"))  # fmt: skip
        locked, report = foot_lock(clip, "AUTO")
        b = contacts.foot_skate(before_pos, clip.fps, clip.legs, during=found.foot)
        a = contacts.foot_skate(locked.joint_positions(), clip.fps, clip.legs, during=found.foot)
        cycle, loop = looping.make_loop(clip)
        twice = looping.repeat(cycle, loop.travel, 2)
        n = cycle.frames
        local = looping.local_pose(twice)
        step = np.linalg.norm(np.diff(local, axis=0), axis=-1).mean(-1)
        change = np.linalg.norm(np.diff(local, 2, axis=0), axis=-1).mean(-1)
        median = np.median(np.linalg.norm(np.diff(looping.local_pose(clip), axis=0), axis=-1)
                           .mean(-1))  # fmt: skip
        done = finish(clip.skeleton, clip.rotations, clip.root_positions, clip.fps,
                      FinishOptions(loop=True, foot_lock="AUTO", in_place=True))  # fmt: skip
        locked_steps = np.linalg.norm(
            np.diff(looping.local_pose(looping.repeat(done.clip, loop.travel, 2)), axis=0), axis=-1
        ).mean(-1)
        m = done.clip.frames
        print(f"  {name:30s} skate {b.fraction:.3f}/{b.distance_m:.3f} -> {a.fraction:.3f}/"
              f"{a.distance_m:.3f}; pelvis -{report.pelvis_lowered_m * 100:.1f} cm; loop "
              f"{loop.start + 1}-{loop.end} seam step {step[n - 1] * 1000:.1f} mm, velocity "
              f"change {max(change[n - 2], change[n - 1]) * 1000:.1f} mm, median step "
              f"{median * 1000:.1f} mm; + foot lock + in place: seam step "
              f"{locked_steps[m - 1] * 1000:.1f} mm, cycle's p90 "
              f"{np.percentile(np.delete(locked_steps, m - 1), 90) * 1000:.1f} mm")  # fmt: skip
    for slide, mode in ((0.25, "AUTO"), (0.4, "ALWAYS"), (0.6, "ALWAYS"), (0.8, "ALWAYS"),
                        (1.0, "ALWAYS")):  # fmt: skip
        walk = synthetic.walk(frames=150, slide=slide)
        clip = as_clip(synthetic.SKELETON, walk.rotations, walk.root_positions, synthetic.FPS)
        found = contacts.detect_contacts(walk.joint_positions, clip.fps, clip.legs,
                                         thresholds_for(clip, mode))  # fmt: skip
        locked, _ = foot_lock(clip, mode)
        b = contacts.foot_skate(walk.joint_positions, clip.fps, clip.legs, during=walk.contacts)
        a = contacts.foot_skate(locked.joint_positions(), clip.fps, clip.legs,
                                during=walk.contacts)  # fmt: skip
        print(f"  synthetic walk, slide {slide} m/s, {mode:6s} contacts "
              f"{(found.foot == walk.contacts).mean():.1%} of frames as known; skate "
              f"{b.fraction:.3f}/{b.distance_m:.3f} -> "
              f"{a.fraction:.3f}/{a.distance_m:.3f}")  # fmt: skip


def timed(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``run`` (CPU time is steadier on a shared machine)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000.0, statistics.median(cpu) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--figures", action="store_true", help="also print the judged figures")
    args = parser.parse_args()
    if args.figures:
        quality()
    clips = takes()
    print(f"machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, numpy {np.__version__}")  # fmt: skip
    print(f"{len(clips)} takes x {FRAMES} frames, median of {args.repeats} runs")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; wall (CPU) ms")
    baseline, baseline_cpu = timed(lambda: [c.joint_positions() for c in clips], args.repeats)
    print(f"{'baseline: forward kinematics':48s} {baseline:6.1f} ({baseline_cpu:6.1f})")
    for label, options in OPERATIONS.items():

        def run(options: FinishOptions = options) -> None:
            for c in clips:
                finish(c.skeleton, c.rotations, c.root_positions, c.fps, options)

        ms, cpu = timed(run, args.repeats)
        budget = 100.0 * (3 if label.startswith("all") else 1)  # per operation
        verdict = (
            f"wall {'ok' if ms <= budget else 'OVER'}, CPU {'ok' if cpu <= budget else 'OVER'}"
        )
        print(f"{label:48s} {ms:6.1f} ({cpu:6.1f})  {ms / baseline:4.1f}x FK  "
              f"target <= {budget:.0f} ms: {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
