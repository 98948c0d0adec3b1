"""Longest UI block of a re-bake and of a multi-take export (prints figures; not a test):
.venv/bin/python tests/addon/bench_take_steps.py [--repeats N] [--characters K] [--formats F]

Issue 9 item 6: "the UI never blocks longer than one take's write". Both jobs run step by step
as the modal operator runs them (one step per timer tick); every block is timed, and the
longest is what the artist can wait for at once. Baseline, measured in the same run: the same
work in one call, as the panel did it before the steps (the blocking path).

- Re-bake: a 12 s take (360 frames) played by K characters (69-bone UE5-style rigs); its trim
  is toggled, which re-bakes the take's own Action, then remakes its Action on every character.
- Export: 8 takes x 360 frames exported from the character (FBX for Unreal by default): a
  retarget per take, then one take's files per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import history, take_finishing  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from blender_addon.core.steps import StepJob  # noqa: E402
from blender_addon.props import scene_settings  # noqa: E402
from tests.addon import rigs  # noqa: E402
from tests.addon.bench_retarget import FRAMES, TAKES, bench_result, fresh_scene  # noqa: E402


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def stepped(make_job: Callable[[], StepJob]) -> tuple[list[float], int]:
    """Blocks of a job run one step per tick: making the job (the operator's execute), then
    each step; and the job's step count."""
    job: list[StepJob] = []
    blocks = [timed(lambda: job.append(make_job()))]
    while not job[0].over:
        blocks.append(timed(job[0].step))
    assert job[0].finished, job[0].outcome()
    return blocks, job[0].total


def characters_playing(count: int) -> tuple[bpy.types.Scene, object]:
    """A fresh scene: the first of the 8 takes applied onto ``count`` characters."""
    scene = fresh_scene()
    takes = history.add_result(scene, bench_result(), ServerInfo())
    settings = scene_settings(scene)
    settings.target = "SELECTED_ARMATURE"
    for k in range(count):
        rig = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), f"Manny {k}")
        rig.location.x = k
        settings.retarget.rig = rig
        history.apply_take(scene, takes[0])
    return scene, takes[0]


def set_trim(take: object, start: int, end: int) -> None:
    with take_finishing.quiet():
        take.finishing.trim_start, take.finishing.trim_end = start, end  # type: ignore[attr-defined]


def bench_rebake(repeats: int, characters: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"blocking": [], "longest": [], "own": [], "character": []}
    for _ in range(repeats):
        for mode in ("blocking", "steps"):
            scene, take = characters_playing(characters)
            set_trim(take, 11, 350)
            if mode == "blocking":
                out["blocking"].append(timed(partial(take_finishing.refinish, scene, take)))
                continue
            blocks, total = stepped(partial(take_finishing.refinish_job, scene, take))
            assert total == 1 + characters
            out["longest"].append(max(blocks))
            out["own"].append(blocks[1])
            out["character"] += blocks[2:]
    return out


def bench_export(repeats: int, formats: tuple[str, ...]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"blocking": [], "longest": [], "retarget": [], "files": []}
    for _ in range(repeats):
        for mode in ("blocking", "steps"):
            scene, _ = characters_playing(1)
            scene_settings(scene).retarget.engine = "UNREAL"
            takes = list(scene_settings(scene).takes)
            folder = Path(tempfile.mkdtemp(prefix="hy_motion_bench_export_"))
            if mode == "blocking":  # the panel before the steps: one call, retargets inside
                out["blocking"].append(timed(partial(export_each, scene, takes, folder, formats)))
                continue
            job = partial(history.export_job, scene, takes, folder, formats, True)
            blocks, total = stepped(job)
            retargets = total - len(takes)  # take 0 plays already: its Action is current
            out["longest"].append(max(blocks))
            out["retarget"] += blocks[1 : 1 + retargets]
            out["files"] += blocks[1 + retargets :]
    return out


def export_each(
    scene: bpy.types.Scene, takes: list[object], folder: Path, formats: tuple[str, ...]
) -> None:
    for take in takes:
        history.export_take(scene, take, folder, formats, True)  # type: ignore[arg-type]


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--characters", type=int, default=4)
    parser.add_argument("--formats", default="FBX", help="FBX, BVH or FBX,BVH")
    args = parser.parse_args()
    formats = tuple(args.formats.upper().split(","))
    print(f"bpy {bpy.app.version_string}, takes of {FRAMES} frames, 69-bone rigs, "
          f"median of {args.repeats}")  # fmt: skip

    rebake = bench_rebake(args.repeats, args.characters)
    blocking, longest = statistics.median(rebake["blocking"]), statistics.median(rebake["longest"])
    print(f"re-bake of a take played by {args.characters} characters (trim toggled):")
    print(f"  blocking path, one call (baseline): {ms(rebake['blocking'])}")
    print(f"  steps: the take's own Action {ms(rebake['own'])}; "
          f"one character {ms(rebake['character'])}")  # fmt: skip
    print(f"  longest UI block: {ms(rebake['longest'])} = {longest / blocking:.2f}x the baseline")

    export = bench_export(args.repeats, formats)
    blocking, longest = statistics.median(export["blocking"]), statistics.median(export["longest"])
    print(f"export of {TAKES} takes from the character ({'+'.join(formats)}, Unreal):")
    print(f"  blocking path, one call (baseline): {ms(export['blocking'])}")
    print(f"  steps: one retarget {ms(export['retarget'])}; one take's files {ms(export['files'])}")
    print(f"  longest UI block: {ms(export['longest'])} = {longest / blocking:.2f}x the baseline")
    blender_addon.unregister()


if __name__ == "__main__":
    main()
