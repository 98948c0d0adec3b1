"""Process-level faults: a client killed mid-job, a daemon killed or frozen, SIGTERM drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared_protocol import (
    Accepted,
    Cancelled,
    Error,
    Generate,
    Progress,
    Result,
)
from shared_protocol.client import ClientConfig, Connected, Disconnected, Event, MotionClient
from tests.support import DaemonHandle, DaemonProcess, TestEngine, make_config, run_daemon
from tests.support.runner import REPO_ROOT
from tests.support.wire import Peer

LONG = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=100)


def _poll_until(
    client: MotionClient, predicate: Callable[[Event], bool], timeout_s: float = 20.0
) -> list[Event]:
    """Poll until an event matches; returns every event seen (fails on timeout)."""
    seen: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in client.poll(50):
            seen.append(event)
            if predicate(event):
                return seen
    raise AssertionError(f"no matching event within {timeout_s} s; saw {seen}")


@contextmanager
def _client_with_a_running_job(
    address: str, artist: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A client process (``tests.support.job_client``) whose long job is on the device."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    client = subprocess.Popen(
        [sys.executable, "-m", "tests.support.job_client", address, artist],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert client.stdout is not None
        job_id = client.stdout.readline().decode().strip()
        assert job_id, "the client never saw its job run"
        yield client, job_id
    finally:
        client.send_signal(signal.SIGCONT)  # a frozen process cannot die until it is resumed
        client.kill()
        client.wait(10)
        if client.stdout is not None:
            client.stdout.close()


def _assert_cancelled_and_device_freed(
    daemon: DaemonHandle, peers: Callable[..., Peer], engine: TestEngine, job_id: str, artist: str
) -> None:
    # Another artist's job waits behind the lost one; it runs once the device is free.
    other = peers(daemon.address)
    other.hello("next")
    request_id = other.send(Generate(prompt="wave", duration_s=1.0, candidates=1, steps=4))
    other.recv_until(Result, re=request_id, timeout_s=30)
    job = daemon.call(lambda: daemon.server.lifecycle.jobs.get(job_id))
    assert job is not None and job.state.value == "cancelled"
    assert job.cancel_reason == "disconnected"
    assert engine.cancelled == [job_id]  # stopped at a sampler step, not run to the end
    gone = [e for e in daemon.log_events() if e["event"] == "client_gone"]
    assert [(e["job_id"], e["artist"], e["state"]) for e in gone] == [(job_id, artist, "running")]


@pytest.mark.slow
def test_client_killed_mid_job_frees_the_worker(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    engine = TestEngine(step_s=0.02)
    config = make_config(tmp_path, reconnect_grace_s=0.25)
    with run_daemon(config, [engine]) as daemon:
        with _client_with_a_running_job(daemon.address, "doomed") as (client, job_id):
            client.kill()
            client.wait(10)
        _assert_cancelled_and_device_freed(daemon, peers, engine, job_id, "doomed")


@pytest.mark.slow
def test_frozen_client_is_dropped_by_heartbeats_and_its_job_cancelled(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    # The job would run for 10 s; heartbeats (0.5 s, dropped after 3 silent) must end it first.
    # Without them the job runs to the end and the assertions on its state fail.
    engine = TestEngine(step_s=0.05)
    config = make_config(tmp_path, heartbeat_s=0.5, reconnect_grace_s=0.25)
    with (
        run_daemon(config, [engine]) as daemon,
        _client_with_a_running_job(daemon.address, "frozen") as (client, job_id),
    ):
        client.send_signal(signal.SIGSTOP)  # frozen: its TCP connection stays open
        _assert_cancelled_and_device_freed(daemon, peers, engine, job_id, "frozen")


@pytest.mark.slow
def test_daemon_killed_and_restarted_client_resubmits(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, ["--step-s", "0.02", "--heartbeat-s", "0.2"]).start()
    config = ClientConfig(
        address=daemon.address,
        artist="alice",
        heartbeat_s=0.2,
        liveness=3,
        connect_timeout_s=20.0,
    )
    try:
        with MotionClient(config) as client:
            client.wait_connected(10)
            first_session = client.welcome.server_session  # type: ignore[union-attr]
            request_id = client.submit(LONG)
            _poll_until(client, lambda e: isinstance(e.message, Progress))
            daemon.kill()
            _poll_until(client, lambda e: isinstance(e.message, Disconnected))
            daemon.start()  # same port
            seen = _poll_until(
                client,
                lambda e: e.request_id == request_id and isinstance(e.message, Result),
                timeout_s=30,
            )
            connected = [e.message for e in seen if isinstance(e.message, Connected)]
            assert connected and connected[-1].restarted
            assert connected[-1].welcome.server_session != first_session
    finally:
        daemon.kill()


@pytest.mark.slow
def test_frozen_daemon_resumed_does_not_run_the_resubmitted_job_twice(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, ["--step-s", "0.02", "--heartbeat-s", "5"]).start()
    config = ClientConfig(address=daemon.address, artist="alice", heartbeat_s=0.2, liveness=3)
    try:
        with MotionClient(config) as client:
            client.wait_connected(10)
            request_id = client.submit(LONG)
            seen = _poll_until(client, lambda e: isinstance(e.message, Progress))
            daemon.signal(signal.SIGSTOP)
            _poll_until(client, lambda e: isinstance(e.message, Disconnected))
            daemon.signal(signal.SIGCONT)
            seen += _poll_until(
                client,
                lambda e: e.request_id == request_id and isinstance(e.message, Result),
                timeout_s=30,
            )
            time.sleep(0.3)
            seen += client.poll(0)
    finally:
        daemon.kill()
    mine = [e.message for e in seen if e.request_id == request_id]
    accepted = [m for m in mine if isinstance(m, Accepted)]
    assert len(accepted) == 2 and accepted[1].duplicate
    assert accepted[0].job_id == accepted[1].job_id  # the same job, re-attached
    assert sum(isinstance(m, Result | Cancelled | Error) for m in mine) == 1
    assert not any(isinstance(e.message, Connected) and e.message.restarted for e in seen)
    started = [line for line in daemon.log_path.read_text().splitlines() if "job_queued" in line]
    assert len(started) == 1


@pytest.mark.slow
def test_sigterm_drains_and_exits_zero(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    daemon = DaemonProcess(tmp_path, ["--step-s", "0.02", "--grace-period-s", "20"]).start()
    try:
        running, queued = peers(daemon.address), peers(daemon.address)
        running.hello("alice")
        queued.hello("bob")
        run_id = running.send(LONG)
        running.until_running(run_id)
        queued_id = queued.send(Generate(prompt="wave", duration_s=1.0, candidates=1, steps=4))
        queued.recv_until(Accepted, re=queued_id)
        daemon.signal(signal.SIGTERM)
        _, told = queued.recv_until(Cancelled, re=queued_id)
        assert told.reason == "shutdown" and told.retry
        late_id = queued.send(Generate(prompt="wave", duration_s=1.0, candidates=1, steps=4))
        _, busy = queued.recv_until(Error, re=late_id)
        assert busy.code == "busy" and busy.details["reason"] == "shutting_down"
        running.recv_until(Result, re=run_id)  # the running job finished
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()


@pytest.mark.slow
def test_sigterm_cancels_the_running_batch_after_the_grace_period(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    daemon = DaemonProcess(tmp_path, ["--step-s", "0.02", "--grace-period-s", "0.3"]).start()
    try:
        peer = peers(daemon.address)
        peer.hello("alice")
        run_id = peer.send(Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200))
        peer.until_running(run_id)
        daemon.signal(signal.SIGTERM)
        _, cancelled = peer.recv_until(Cancelled, re=run_id)
        assert cancelled.reason == "shutdown" and cancelled.retry
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()
