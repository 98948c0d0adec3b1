"""The add-on's session through daemon faults (a daemon subprocess): killed and restarted on the
same port mid-job, or frozen long enough for the add-on to reconnect. Either way the add-on
gets its result and writes the takes, and no daemon runs the job twice while it still has it.

The UI path: ``runtime.start_generation``, then the timer callback ``runtime.tick`` called in a
loop (timers never fire in the bpy module).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from blender_addon import runtime
from blender_addon.core.session import GenerationSession
from blender_addon.core.settings import ConnectionSettings, client_config
from shared_protocol import Generate
from tests.addon.test_addon_daemon import check_takes_match_result
from tests.support import DaemonProcess, read_log

#: 40 sampler steps of 50 ms: the job runs for about 2 s.
DAEMON_ARGS = ["--step-s", "0.05"]
REQUEST = Generate("a person walks", 1.0, 2, 7, 5.0, 40)


def start(scene: Any, address: str, heartbeat_s: float) -> tuple[GenerationSession, str]:
    # A generous connect timeout: a restarted daemon has to import and bind first.
    settings = ConnectionSettings(address, connect_timeout_s=20.0, heartbeat_s=heartbeat_s)
    session = runtime.session_for(client_config(settings, online_access=False))
    return session, runtime.start_generation(scene, session, REQUEST)


def run_timer(scene: Any, shown: list[str], until: Callable[[], bool] | None = None) -> None:
    """Call the timer callback as Blender would, until ``until()`` holds or (None) until the
    timer ends itself; ``shown`` collects the status lines the panel showed."""
    deadline = time.monotonic() + 60.0
    while until is None or not until():
        again = runtime.tick()
        shown.append(scene.hy_motion.status_message)
        if again is None:
            assert until is None, f"the generation ended early: {shown[-1]}"
            return
        assert time.monotonic() < deadline, "the poll timer never finished"
        time.sleep(0.01)


def events(log: list[dict[str, Any]], name: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in log if e["event"] == name and all(e.get(k) == v for k, v in fields.items())]


@pytest.mark.slow
def test_result_arrives_after_a_daemon_restart(scene: Any, tmp_path: Path) -> None:
    shown: list[str] = []
    with DaemonProcess(tmp_path / "daemon", DAEMON_ARGS) as daemon:
        session, request_id = start(scene, daemon.address, heartbeat_s=1.0)
        run_timer(scene, shown, until=lambda: session.view.stage == "sampling")
        daemon.kill()
        daemon.start()  # same port; it knows nothing of the job
        run_timer(scene, shown)
        assert scene.hy_motion.status_state == "done"
        result = check_takes_match_result(scene)
        log = read_log(daemon.log_path)
    assert any(line.startswith("Connection lost") for line in shown)
    lives = [i for i, e in enumerate(log) if e["event"] == "started"]
    assert len(lives) == 2
    # Submitted once to each daemon, under the same request id; the result is the second's.
    first, second = log[: lives[1]], log[lives[1] :]
    assert len(events(first, "job_queued", request_id=request_id)) == 1
    (queued,) = events(second, "job_queued", request_id=request_id)
    assert queued["job_id"] == result.job_id
    assert len(events(second, "job_finished", job_id=result.job_id, outcome="ok")) == 1


@pytest.mark.slow
def test_a_frozen_daemon_is_not_asked_to_run_the_job_twice(scene: Any, tmp_path: Path) -> None:
    shown: list[str] = []
    with DaemonProcess(tmp_path / "daemon", DAEMON_ARGS) as daemon:
        # Reconnect after 3 x 0.2 s of silence (progress arrives every 50 ms until the freeze).
        session, request_id = start(scene, daemon.address, heartbeat_s=0.2)
        run_timer(scene, shown, until=lambda: session.view.stage == "sampling")
        daemon.signal(signal.SIGSTOP)
        try:
            # The add-on gives up on the silent connection, opens a new one and resubmits.
            run_timer(scene, shown, until=lambda: session.view.message.startswith("Connection"))
        finally:
            daemon.signal(signal.SIGCONT)
        run_timer(scene, shown)
        assert scene.hy_motion.status_state == "done"
        result = check_takes_match_result(scene)
        log = read_log(daemon.log_path)
    (queued,) = events(log, "job_queued", request_id=request_id)  # never queued twice
    assert queued["job_id"] == result.job_id
    assert events(log, "job_reattached", job_id=result.job_id, reason="resubmitted")
    assert len(events(log, "job_finished", job_id=result.job_id)) == 1
