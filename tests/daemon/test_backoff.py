"""Busy clients are told to come back at different times, so they do not retry in lockstep
(live daemon, plain pyzmq DEALERs on loopback)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

from shared_protocol import Accepted, Error, Generate
from tests.support import TestEngine, make_config, run_daemon
from tests.support.wire import Peer

JOB = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=4)


def test_clients_refused_together_get_spread_retry_hints(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.02)
    config = make_config(tmp_path, max_queue=1, max_per_artist=1)
    with run_daemon(config, [engine]) as daemon:
        owner = peers(daemon.address)
        owner.hello("owner")
        running_id = owner.send(Generate(prompt="walk", duration_s=1.0, steps=200))
        owner.until_running(running_id)
        queued = peers(daemon.address)
        queued.hello("queued")
        queued.recv_until(Accepted, re=queued.send(JOB))  # the queue is full now
        crowd = [peers(daemon.address) for _ in range(30)]
        for i, peer in enumerate(crowd):
            peer.hello(f"artist{i}")
        sent = [(peer, peer.send(JOB)) for peer in crowd]  # all refused at the same moment
        hints = []
        for peer, request_id in sent:
            _, busy = peer.recv_until(Error, re=request_id)
            assert busy.code == "busy" and busy.details["reason"] == "queue_full"
            hints.append(busy.details["retry_after_s"])
    low, high = min(hints), max(hints)
    print(f"retry_after_s over 30 refusals: min {low:.3f}, median "
          f"{statistics.median(hints):.3f}, max {high:.3f}")  # fmt: skip
    assert len(set(hints)) >= 25  # not one shared instant
    assert high >= 1.5 * low  # spread over a window as wide as the estimate itself
