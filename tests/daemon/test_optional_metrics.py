"""``prometheus_client`` is optional: never imported unless metrics are on, and its absence never
stops the daemon from starting (a real daemon process in which the import fails)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from shared_protocol import Generate, Result
from tests.support import DaemonProcess, read_log
from tests.support.wire import Peer

#: The test daemon's entry point, in an interpreter where ``import prometheus_client`` fails.
WITHOUT_PROMETHEUS = (
    "-c",
    "import sys; sys.modules['prometheus_client'] = None; "
    "from tests.support.daemon_main import main; sys.exit(main(sys.argv[1:]))",
)


@pytest.mark.parametrize("metrics_on", [False, True])
def test_the_daemon_serves_without_prometheus_client(
    tmp_path: Path, peers: Callable[..., Peer], metrics_on: bool
) -> None:
    with socket.socket() as probe:  # a free port for the metrics endpoint it cannot serve
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--metrics-bind", f"127.0.0.1:{port}"] if metrics_on else []
    with DaemonProcess(tmp_path, args, entry=WITHOUT_PROMETHEUS) as daemon:
        peer = peers(daemon.address)
        peer.hello("alice")
        request_id = peer.send(Generate(prompt="walk", duration_s=1.0, candidates=1, steps=4))
        assert isinstance(peer.recv_until(Result, re=request_id)[1], Result)
        events = read_log(daemon.log_path)
    unavailable = [e for e in events if e["event"] == "metrics_unavailable"]
    if not metrics_on:
        assert unavailable == []  # off: nothing tried to import it
    else:
        assert len(unavailable) == 1 and "prometheus_client" in unavailable[0]["error"]
