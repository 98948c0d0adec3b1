"""The models a daemon offers can change while a job runs (a Ray cluster that came back offering
others): the job whose model left is answered with a typed error, never an exception in the
daemon, and the daemon keeps serving (real daemon, real sockets)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared_protocol import Error, Generate, Result
from tests.support import MODEL, TestEngine, make_config, run_daemon
from tests.support.wire import Peer


def test_a_job_whose_model_left_while_it_ran_gets_model_unavailable(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.05)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        lifecycle = daemon.server.lifecycle
        offered = dict(lifecycle.models)
        peer = peers(daemon.address)
        peer.hello()
        running = peer.send(Generate(prompt="walk", duration_s=1.0, seed=1, steps=20))
        peer.until_running(running)
        lifecycle.models = {n: m for n, m in offered.items() if n != MODEL}  # as a rejoin does
        error = peer.recv_until((Result, Error), re=running)[1]
        assert isinstance(error, Error) and error.code == "model_unavailable", error
        assert error.message == (
            f"model {MODEL!r} is no longer offered (the cluster changed while this job ran); "
            "resubmit with one of the models welcome lists"
        )
        lifecycle.models = offered  # the daemon still serves
        again = peer.send(Generate(prompt="walk", duration_s=1.0, seed=2, steps=4))
        assert isinstance(peer.recv_until((Result, Error), re=again)[1], Result)
