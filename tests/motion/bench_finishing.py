"""Finishing benchmark (prints figures; not a test).

    .venv/bin/python tests/motion/bench_finishing.py [--repeats N]

8 takes x 360 frames (30 fps, 12 s) made from the bundled CMU clips (each clip's loop played
until 360 frames), then each finishing operation on all 8 takes, median of ``--repeats`` runs.
Target (issue #10): <= 100 ms per operation for the 8 takes. The baseline, measured in the same
run, is one forward kinematics pass over the 8 takes (what any operation needs at least once).
"""

from __future__ import annotations

import argparse
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
    "all: loop + foot lock + in place": FinishOptions(loop=True, foot_lock="AUTO", in_place=True),
}


def timed(run: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    clips = takes()
    print(f"machine: {platform.processor() or platform.machine()}, Python "
          f"{platform.python_version()}, numpy {np.__version__}")  # fmt: skip
    print(f"{len(clips)} takes x {FRAMES} frames, median of {args.repeats} runs")
    baseline = timed(lambda: [c.joint_positions() for c in clips], args.repeats)
    print(f"{'baseline: forward kinematics':36s} {baseline:7.1f} ms")
    for label, options in OPERATIONS.items():

        def run(options: FinishOptions = options) -> None:
            for c in clips:
                finish(c.skeleton, c.rotations, c.root_positions, c.fps, options)

        ms = timed(run, args.repeats)
        verdict = "ok" if ms <= 100.0 else "OVER"
        print(f"{label:36s} {ms:7.1f} ms  ({ms / baseline:4.1f}x FK)  target <= 100 ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
