"""Fixtures for add-on tests: the real bpy module, isolated from the user's Blender settings, and
real daemons in their own processes.

The add-on suite runs under every supported Blender's Python (``make test-blender-all``): 3.11
with numpy 1.26 and 3.13 with numpy 2, where the daemon package and torch are not installed.
So tests here never import ``daemon`` (nor ``tests.support``'s in-process daemon): they start
daemons with ``start_daemon``, which runs them on ``HYMOTION_DAEMON_PYTHON`` (the Makefile
points it at ``.venv``). Every ``test_*.py`` file in this folder runs on every version.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import DaemonProcess
from tests.support.exit_guard import end_with_status_at_exit

# Before bpy is imported: keep its config, extensions and scripts out of the real home.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hy_motion_blender_"))

#: Quick test daemons: short batch window and heartbeats, debug logs (read by the tests).
_TEST_FLAGS = ("--log-level", "debug", "--batch-window-s", "0.005", "--heartbeat-s", "0.5",
               "--grace-period-s", "5")  # fmt: skip
#: The real engine creates the tiny model first (a few seconds, more on a busy machine).
_REAL_ENGINE_START_S = 180.0

StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[StartDaemon]:
    """``start_daemon(*flags, step_s=0.002, real_engine=False)``: a daemon serving, in its own
    process, with ``python -m daemon serve`` flags (e.g. ``"--max-per-artist", "1"``). The test
    engine by default (``step_s`` per sampler step); ``real_engine`` serves the built-in tiny
    model. All are killed at the end of the test."""
    started: list[DaemonProcess] = []

    def start(*flags: str, step_s: float = 0.002, real_engine: bool = False) -> DaemonProcess:
        data_dir = tmp_path / f"daemon{len(started)}"
        if real_engine:
            process = DaemonProcess(data_dir, [*_TEST_FLAGS, *flags],
                                    entry=DaemonProcess.REAL_ENGINE,
                                    start_timeout_s=_REAL_ENGINE_START_S)  # fmt: skip
        else:
            process = DaemonProcess(data_dir, ["--step-s", str(step_s), *_TEST_FLAGS, *flags])
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="session")
def addon() -> Iterator[None]:
    """The add-on registered from the repository for the whole session, and unregistered at the
    end: bpy 4.2 crashes and 4.5 hangs at interpreter exit with Python classes registered."""
    import blender_addon

    blender_addon.register()
    yield
    blender_addon.unregister()


@pytest.fixture
def scene(addon: None) -> Iterator[object]:
    """An empty scene at 30 fps with the add-on registered."""
    import bpy

    from blender_addon import runtime

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    yield scene
    runtime.shutdown()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Where the bpy module crashes or hangs at interpreter exit (4.2, 4.5: see
    ``blender_addon.batch.unsafe_module_exit``), pytest's exit status would be lost: there, the
    process ends with that status right after pytest, without the interpreter's clean-up (the
    batch does the same: ``blender_addon.batch.exit_with``)."""
    from blender_addon.batch import unsafe_module_exit

    if unsafe_module_exit():
        end_with_status_at_exit(exitstatus)
