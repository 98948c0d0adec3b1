"""shared_protocol.client.MotionClient against the live daemon, and with nothing listening."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
import zmq

from shared_protocol import (
    DaemonUnreachable,
    Generate,
    InvalidArgument,
    JobCancelled,
    Ping,
    Pong,
    Status,
    StatusRequest,
)
from shared_protocol.client import ClientConfig, MotionClient
from tests.support import TestEngine, make_config, run_daemon


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_blocking_run_status_ping_and_typed_errors(tmp_path: Path, context: zmq.Context) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        config = ClientConfig(address=daemon.address, artist="alice")
        with MotionClient(config, context) as client:
            welcome = client.wait_connected(5)
            assert welcome.artist == "alice"
            result = client.run(Generate(prompt="walk", duration_s=2.0, candidates=3, seed=1),
                                timeout_s=30)  # fmt: skip
            assert result.rotations.shape == (3, 60, 22, 4) and result.seeds == (1, 2, 3)
            assert isinstance(client.call(Ping()), Pong)
            status = client.call(StatusRequest())
            assert isinstance(status, Status) and status.jobs[0].job_id == result.job_id
            with pytest.raises(InvalidArgument) as caught:
                client.run(Generate(prompt="walk", duration_s=30.0), timeout_s=10)
            assert caught.value.field == "duration_s"


def test_polling_cancel_raises_job_cancelled(tmp_path: Path, context: zmq.Context) -> None:
    with run_daemon(make_config(tmp_path), [TestEngine(step_s=0.02)]) as daemon:
        config = ClientConfig(address=daemon.address, artist="alice")
        with MotionClient(config, context) as client:
            client.wait_connected(5)
            request_id = client.submit(Generate(prompt="walk", duration_s=1.0, steps=200))
            deadline = time.monotonic() + 10
            while not client.outstanding or client._pending[request_id].job_id is None:
                client.poll(20)
                assert time.monotonic() < deadline
            client.cancel(request_id)
            with pytest.raises(JobCancelled):
                client.run(Generate(prompt="x", duration_s=1.0), request_id=request_id,
                           timeout_s=10)  # fmt: skip


def test_unreachable_within_the_connect_timeout(context: zmq.Context) -> None:
    config = ClientConfig(address=f"tcp://127.0.0.1:{_free_port()}", connect_timeout_s=0.5)
    with MotionClient(config, context) as client:
        started = time.monotonic()
        with pytest.raises(DaemonUnreachable):
            client.run(Generate(prompt="walk", duration_s=1.0), timeout_s=10)
        waited = time.monotonic() - started
    print(f"DaemonUnreachable after {waited:.2f} s (connect timeout 0.5 s)")


def test_a_refused_hello_is_the_daemon_s_error_not_unreachable(
    tmp_path: Path, context: zmq.Context
) -> None:
    # The daemon answers a hello whose name it will not take with invalid_argument; the client
    # used to drop that reply and report "no daemon answered" after the connect timeout.
    with run_daemon(make_config(tmp_path)) as daemon:
        config = ClientConfig(address=daemon.address, artist="bad name!", connect_timeout_s=30)
        with MotionClient(config, context) as client:
            started = time.monotonic()
            with pytest.raises(InvalidArgument) as caught:
                client.wait_connected()
            assert caught.value.field == "artist" and "bad name!" in caught.value.message
            with pytest.raises(InvalidArgument) as caught:
                client.run(Generate(prompt="walk", duration_s=1.0), timeout_s=60)
            assert caught.value.field == "artist"
            assert time.monotonic() - started < 30  # refused, not timed out


def test_metrics_over_http_on_loopback(tmp_path: Path, context: zmq.Context) -> None:
    port = _free_port()
    with run_daemon(make_config(tmp_path, metrics_bind=f"127.0.0.1:{port}")) as daemon:
        config = ClientConfig(address=daemon.address, artist="alice")
        with MotionClient(config, context) as client:
            client.run(Generate(prompt="walk", duration_s=1.0, candidates=1), timeout_s=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            text = reply.read().decode()
    assert 'hymotion_jobs_total{outcome="ok"} 1.0' in text
    for stage in ("queue", "encode", "sample", "decode"):
        assert f'hymotion_stage_seconds_count{{stage="{stage}"}} 1.0' in text
    assert 'stage="total"' not in text  # the end-to-end time is its own metric
    assert "hymotion_job_latency_seconds_count 1.0" in text
    assert "hymotion_queue_depth 0.0" in text
    assert "alice" not in text  # artists are never labels
