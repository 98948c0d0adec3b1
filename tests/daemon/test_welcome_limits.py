"""What the operator sets is what a client is told in ``welcome.limits`` and what the daemon
holds requests to: max_timeline_s (the longest timeline) and reconnect_grace_s (how long a
vanished connection's jobs wait to be re-attached). Real daemon, real sockets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shared_protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Constraints,
    Error,
    Generate,
    Ping,
    Pong,
    TimelineRow,
    Welcome,
)
from tests.support import TestEngine, make_config, run_daemon
from tests.support.wire import Peer


def _timeline(*row_seconds: float) -> Generate:
    rows = tuple(TimelineRow(f"then step {i}", s) for i, s in enumerate(row_seconds))
    return Generate(prompt="walk", duration_s=12.0, candidates=1, steps=200,
                    constraints=Constraints(timeline=rows))  # fmt: skip


def test_welcome_advertises_the_operators_limits_and_timelines_are_held_to_them(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(tmp_path, max_timeline_s=20.0, reconnect_grace_s=3.5)
    with run_daemon(config, [TestEngine(step_s=0.05)]) as daemon:  # still running at cancel
        peer = peers(daemon.address)
        welcome = peer.hello()
        assert isinstance(welcome, Welcome)
        assert welcome.limits.max_timeline_s == 20.0
        assert welcome.limits.reconnect_grace_s == 3.5
        refused = peer.send(_timeline(8.5))  # 12 + 8.5 s
        _, error = peer.recv_until(Error, re=refused)
        assert isinstance(error, Error) and error.code == "invalid_argument"
        assert error.details["field"] == "constraints.timeline"
        assert error.message == "the timeline lasts 20.5 s in all, more than 20 s"
        assert error.details["allowed"] == "at most 20 s in all"
        fits = peer.send(_timeline(8.0))  # 12 + 8 s, exactly the limit
        _, accepted = peer.recv_until((Accepted, Error), re=fits)
        assert isinstance(accepted, Accepted), accepted
        peer.send(Cancel(accepted.job_id))
        peer.recv_until(Cancelled, re=fits)
        assert isinstance(peer.recv_until(Pong, re=peer.send(Ping()))[1], Pong)


def test_the_defaults_are_advertised_too(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        welcome = peers(daemon.address).hello()
        assert isinstance(welcome, Welcome)
        assert (welcome.limits.max_timeline_s, welcome.limits.reconnect_grace_s) == (120.0, 10.0)
