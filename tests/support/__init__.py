"""Shared test fixtures: a real daemon to talk to, and the deterministic test engine.

In-process (fast; the real ``daemon.server.Server`` on its own event loop thread)::

    from tests.support import make_config, run_daemon, TestEngine

    config = make_config(tmp_path, max_candidates=8)       # loopback, ephemeral port
    with run_daemon(config, [TestEngine(step_s=0.01)]) as daemon:
        daemon.address          # "tcp://127.0.0.1:<port>"
        daemon.engine.calls     # batches the engine ran (tuples of job ids)
        daemon.call(lambda: daemon.server.lifecycle.scheduler.depth)  # read state on its loop
        daemon.log_events()     # parsed JSON log lines (data_dir/logs/daemon.log)

As a subprocess (kill, restart, signals; same flags as ``python -m daemon serve`` plus
``--step-s`` and ``--max-batch-candidates``)::

    from tests.support import DaemonProcess

    with DaemonProcess(tmp_path, ["--step-s", "0.02"]) as proc:   # waits until it serves
        proc.address; proc.signal(signal.SIGTERM); proc.wait()    # exit code
        proc.kill(); proc.start()                                 # restart on the same port

Raw protocol helpers for tests: :mod:`tests.support.wire` (a DEALER with timed receives).
The engine: :class:`TestEngine` (``step_s`` per sampler step, ``FAIL_MARKER`` /
``CRASH_MARKER`` in a prompt inject a job failure / an engine crash), its skeleton
``SKELETON`` and ``motion_for_seed`` (what any result must contain);
``TestEngine(device_fault_at_step=N)`` makes its device fail mid-batch.
"""

from typing import Any

# Importable without the daemon package (the add-on suite under Blender's Python 3.13 has no
# torch): the subprocess daemon and the markers. The rest is imported on first use.
from .markers import BROKEN_MODEL, CRASH_MARKER, FAIL_MARKER, MODEL
from .process import DaemonProcess, read_log

_NEEDS_DAEMON = {
    "SKELETON": "engine",
    "TestEngine": "engine",
    "motion_for_seed": "engine",
    "DaemonHandle": "runner",
    "make_config": "runner",
    "run_daemon": "runner",
}

__all__ = [
    "BROKEN_MODEL",
    "CRASH_MARKER",
    "FAIL_MARKER",
    "MODEL",
    "SKELETON",
    "DaemonHandle",
    "DaemonProcess",
    "TestEngine",
    "make_config",
    "motion_for_seed",
    "read_log",
    "run_daemon",
]


def __getattr__(name: str) -> Any:
    module = _NEEDS_DAEMON.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
