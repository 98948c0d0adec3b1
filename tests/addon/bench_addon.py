"""Add-on benchmark (prints figures; not a test): .venv/bin/python tests/addon/bench_addon.py
(or build/bpy/<version>/bin/python with HYMOTION_DAEMON_PYTHON=.venv/bin/python)

1. Apply 8 candidates x 360 frames to the scene (armature, 8 Actions in bulk, takes, first take
   applied) — target <= 100 ms in bpy 5.0.1 headless.
2. One UI poll tick while a job is waiting on the daemon (runtime.tick with nothing new, and
   with a progress message arriving) — target <= 2 ms.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon import history, runtime  # noqa: E402
from blender_addon.core.session import ServerInfo  # noqa: E402
from shared_protocol import Generate, Result  # noqa: E402
from shared_protocol.client import ClientConfig  # noqa: E402
from tests.addon import synthetic  # noqa: E402
from tests.support import DaemonProcess  # noqa: E402


def bench_apply(repeats: int = 7) -> list[float]:
    rotations, pelvis, positions = synthetic.takes(8, 360)
    result = Result(job_id="bench", model="m", model_label="m", untrained=True, prompt="walk",
                    frames=360, fps=30, seeds=tuple(range(8)), guidance=5.0, steps=50,
                    skeleton=synthetic.skeleton(), rotations=rotations, root_positions=pelvis,
                    joint_positions=positions)  # fmt: skip
    times = []
    for _ in range(repeats):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        if not hasattr(bpy.types.Scene, "hy_motion"):
            blender_addon.register()
        scene = bpy.context.scene
        scene.render.fps = 30
        start = time.perf_counter()
        takes = history.add_result(scene, result, ServerInfo())
        history.apply_take(scene, takes[0])
        times.append(time.perf_counter() - start)
    return times


def bench_tick(tmp: Path, samples: int = 400) -> tuple[list[float], list[float]]:
    scene = bpy.context.scene
    # The daemon in its own process on HYMOTION_DAEMON_PYTHON: runs under every bpy's Python.
    with DaemonProcess(tmp, ["--step-s", "0.02"]) as daemon:
        session = runtime.session_for(ClientConfig(address=daemon.address))
        runtime.start_generation(scene, session, Generate("walk", 12.0, 8, 1, 5.0, 200))
        idle, busy = [], []
        while len(idle) < samples:
            start = time.perf_counter()
            runtime.tick()
            elapsed = time.perf_counter() - start
            # A tick that redrew the status had a message to apply; the rest found nothing.
            (busy if session.view.message and elapsed > 0 and _had_news() else idle).append(elapsed)
            time.sleep(0.002)
        runtime.shutdown()
    return idle, busy


_last = {"message": ""}


def _had_news() -> bool:
    message = bpy.context.scene.hy_motion.status_message
    changed = message != _last["message"]
    _last["message"] = message
    return changed


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return (
        f"median {statistics.median(values) * 1e3:.3f} ms, p95 {p95 * 1e3:.3f} ms, n={len(values)}"
    )


def main() -> None:
    import tempfile

    print(f"bpy {bpy.app.version_string}")
    apply = bench_apply()
    print(f"apply 8 candidates x 360 frames: min {min(apply) * 1e3:.1f} ms, "
          f"median {statistics.median(apply) * 1e3:.1f} ms (target <= 100 ms)")  # fmt: skip
    idle, busy = bench_tick(Path(tempfile.mkdtemp()))
    print(f"poll tick, nothing new: {ms(idle)} (target <= 2 ms)")
    if busy:
        print(f"poll tick, progress applied: {ms(busy)}")
    blender_addon.unregister()  # the bpy 4.2/4.5 modules crash or hang at exit otherwise


if __name__ == "__main__":
    main()
