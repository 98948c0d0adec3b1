"""Retargeting benchmark (prints figures; not a test):
.venv/bin/python tests/addon/bench_retarget.py [REPEATS]

8 takes x 360 frames onto a ~70-bone UE5-style rig (69 bones: twist, IK and finger bones),
written in bulk as 8 Actions — target <= 300 ms in bpy 5.0.1 headless. Baseline in the same
run: the same 8 takes applied to the built-in armature (history.add_result + apply). Then:

- where the time goes (wall and CPU medians): reading the rig and its mapping, the rest
  calibration (once per rig), and per take the retarget (motion core), the F-Curve channels
  and the bulk write;
- the longest block of the UI: Compare on the character runs one step per timer tick (one
  take's retarget and write, read from the take's Action as the panel does), after a start
  (mapping, what is stale) and before the copies are made: every block is timed, the longest
  is what the artist can wait for at once.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import history, rig_history, rig_takes  # noqa: E402
from blender_addon.core import retarget  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from blender_addon.props import scene_settings  # noqa: E402
from shared_protocol import Result  # noqa: E402
from tests.addon import retarget_checks, rigs, synthetic  # noqa: E402

TAKES, FRAMES = 8, 360


def motions() -> list[rig_takes.Motion]:
    rotations, pelvis, _ = synthetic.takes(TAKES, FRAMES)
    skeleton = synthetic.skeleton()
    return [rig_takes.Motion(f"take {k}", skeleton, rotations[k], pelvis[k], 30.0)
            for k in range(TAKES)]  # fmt: skip


def bench_result() -> Result:
    rotations, pelvis, positions = synthetic.takes(TAKES, FRAMES)
    return Result(job_id="bench", model="m", model_label="m", untrained=True, prompt="walk",
                  frames=FRAMES, fps=30, seeds=tuple(range(TAKES)), guidance=5.0, steps=50,
                  skeleton=synthetic.skeleton(), rotations=rotations, root_positions=pelvis,
                  joint_positions=positions)  # fmt: skip


class Phases:
    """Wall and CPU seconds per named phase, over repeats."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def measure(self, name: str, add: bool = False) -> Iterator[None]:
        """Time the block under ``name``; ``add``: onto the phase's last figure (per take)."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        walls, cpus = self.wall.setdefault(name, []), self.cpu.setdefault(name, [])
        if add and walls:
            walls[-1] += wall
            cpus[-1] += cpu
        else:
            walls.append(wall)
            cpus.append(cpu)


def bench_baseline(repeats: int, timer: Phases) -> None:
    result = bench_result()
    for _ in range(repeats):
        scene = retarget_checks.fresh_scene()
        with timer.measure("baseline"):
            takes = history.add_result(scene, result, ServerInfo())
            history.apply_take(scene, takes[0])


def bench_retarget(repeats: int, count: int, timer: Phases, name: str) -> int:
    """``count`` takes retargeted onto the rig and the first one played; returns its bones."""
    takes = motions()[:count]
    bones = 0
    for _ in range(repeats):
        scene = retarget_checks.fresh_scene()
        rig = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
        bones = len(rig.data.bones)
        with timer.measure(name):
            actions = rig_takes.retarget_actions(rig, takes, retarget.RetargetOptions())
            rig_takes.play(rig, actions[0])
    return bones


def bench_phases(repeats: int) -> Phases:
    """The 8-take retarget phase by phase (per-take phases summed over the takes)."""
    takes = motions()
    phases = Phases()
    for _ in range(repeats):
        scene = retarget_checks.fresh_scene()
        rig = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
        with phases.measure("rig and mapping"):
            writer = rig_takes.RigWriter(rig, retarget.RetargetOptions())
        with phases.measure("rest calibration"):
            plan = writer.plan(takes[0].skeleton)
        for k, m in enumerate(takes):
            with phases.measure("retarget (core)", add=k > 0):
                take = writer.retarget_take(plan, m)
            with phases.measure("channels", add=k > 0):
                channels = writer.channels(plan, take)
            with phases.measure("write", add=k > 0):
                writer.write(m.name, channels)
    return phases


def bench_ui_blocks(repeats: int) -> Phases:
    """Compare on the character, step by step as the modal operator runs it: each block."""
    result = bench_result()
    blocks = Phases()
    for _ in range(repeats):
        scene = retarget_checks.fresh_scene()
        takes = history.add_result(scene, result, ServerInfo())
        rig = rigs.build_armature(scene, rigs.rig_bones("UE5", rigs.TALL_A), "Manny")
        settings = scene_settings(scene)
        settings.target, settings.retarget.rig = "SELECTED_ARMATURE", rig
        with blocks.measure("start (mapping, stale takes)"):
            job = rig_history.compare_job(scene, takes)
        for index in range(job.total - 1):
            with blocks.measure("one take (retarget + write)" if index else "first take"):
                job.step()
        with blocks.measure("the comparison (copies)"):
            job.step()
        assert job.finished
    return blocks


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, min {min(values) * 1000:.1f} ms"


def print_phases(title: str, phases: Phases) -> None:
    print(title)
    for name, wall in phases.wall.items():
        cpu = statistics.median(phases.cpu[name]) * 1000
        most = max(wall) * 1000
        print(f"  {name:30s} wall {ms(wall)}, max {most:.1f} ms; cpu median {cpu:.1f} ms")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"bpy {bpy.app.version_string}, {TAKES} takes x {FRAMES} frames, {repeats} repeats")
    totals = Phases()
    bench_baseline(repeats, totals)
    bones = bench_retarget(repeats, TAKES, totals, "all")
    bench_retarget(repeats, 1, totals, "one")
    wall, cpu = totals.wall, totals.cpu

    def ratio(figures: dict[str, list[float]]) -> float:
        return statistics.median(figures["all"]) / statistics.median(figures["baseline"])

    print(f"built-in armature, {TAKES} takes (baseline): {ms(wall['baseline'])}; "
          f"cpu {ms(cpu['baseline'])}")  # fmt: skip
    print(
        f"retarget onto a {bones}-bone rig, {TAKES} takes: {ms(wall['all'])} (target <= 300 ms); "
        f"cpu {ms(cpu['all'])}; {ratio(wall):.2f}x the baseline (cpu {ratio(cpu):.2f}x)"
    )
    print(f"retarget one take (one UI apply): {ms(wall['one'])}; cpu {ms(cpu['one'])}")
    print_phases(f"phases of the {TAKES}-take retarget (per-take phases summed):",
                 bench_phases(repeats))  # fmt: skip
    blocks = bench_ui_blocks(repeats)
    print_phases(f"Compare {TAKES} takes on the character, each UI block:", blocks)
    longest = max(max(v) for v in blocks.wall.values())
    print(f"longest single UI block: {longest * 1000:.1f} ms (all blocks, all repeats)")
    blender_addon.unregister()


if __name__ == "__main__":
    main()
