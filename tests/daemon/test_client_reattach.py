"""A network blip in the middle of a job: libzmq reconnects the client's socket by itself, the
daemon sees a stranger, and ``MotionClient`` re-attaches to its running job instead of losing it
(a real TCP relay between a real client and a live daemon, cut mid-job)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import zmq

from shared_protocol import Generate, Progress, Result
from shared_protocol.client import ClientConfig, Disconnected, Event, MotionClient
from tests.support import TestEngine, make_config, run_daemon


class Relay:
    """A loopback TCP relay to ``target`` whose connections can be cut (a network blip)."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection at once, both ways."""
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


@contextmanager
def relay_to(address: str) -> Iterator[Relay]:
    relay = Relay(int(address.rsplit(":", 1)[1]))
    try:
        yield relay
    finally:
        relay.close()


def _poll_until(client: MotionClient, request_id: str, kind: type, timeout_s: float) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for event in client.poll(50):
            seen.append(event)
            if event.request_id == request_id and isinstance(event.message, kind):
                return seen
    raise AssertionError(f"no {kind.__name__} within {timeout_s} s; saw {seen}")


def test_a_network_blip_mid_job_is_survived_by_re_attaching(tmp_path, context: zmq.Context) -> None:
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path), [engine]) as daemon, relay_to(daemon.address) as relay:
        config = ClientConfig(address=f"tcp://127.0.0.1:{relay.port}", artist="alice")
        with MotionClient(config, context) as client:
            client.wait_connected(10)
            long_job = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200)
            request_id = client.submit(long_job)
            seen = _poll_until(client, request_id, Progress, 10)
            relay.cut()
            seen += _poll_until(client, request_id, Result, 30)
        events = daemon.log_events()
    assert any(isinstance(e.message, Disconnected) and "replaced" in e.message.reason for e in seen)
    (result,) = [e.message for e in seen if isinstance(e.message, Result)]
    assert engine.run_counts[result.job_id] == 1 and engine.cancelled == []
    reattached = [e for e in events if e["event"] == "job_reattached"]
    assert [(e["job_id"], e["reason"]) for e in reattached] == [(result.job_id, "resubmitted")]
