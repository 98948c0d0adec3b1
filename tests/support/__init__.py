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

from .engine import BROKEN_MODEL, CRASH_MARKER, FAIL_MARKER, MODEL, SKELETON, TestEngine
from .engine import motion_for_seed as motion_for_seed
from .runner import DaemonHandle, DaemonProcess, make_config, read_log, run_daemon

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
