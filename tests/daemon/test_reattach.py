"""Oversized frames and lost connections never silently cost a client its jobs: a frame under
the hard limit gets a typed error on a connection that keeps working; a dropped connection's
artist re-attaches to its running job; fetch never steals a stream; refusals keep the request
id (live daemon, plain pyzmq DEALERs on loopback)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from shared_protocol import (
    REQUEST_LIMITS,
    SIGNATURE,
    Accepted,
    Cancelled,
    Error,
    Fetch,
    Generate,
    Ping,
    Pong,
    Result,
    Status,
    StatusRequest,
)
from shared_protocol.wire import REQUEST_FRAME_HARD_LIMIT, salvage_id
from tests.support import TestEngine, make_config, run_daemon
from tests.support.wire import Peer

#: About 2 s on the device at 0.01 s a step: long enough to do things while it runs.
LONG = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200)


def oversized_ping(msg_id: str, payload_bytes: int) -> list[bytes]:
    """A ping carrying one array frame of ``payload_bytes`` (plain pyzmq frames)."""
    header = {
        "v": "1.0",
        "type": "ping",
        "id": msg_id,
        "body": {},
        "arrays": [{"name": "blob", "dtype": "|u1", "shape": [payload_bytes]}],
    }
    return [SIGNATURE, json.dumps(header).encode(), bytes(payload_bytes)]


def test_a_1_5_mib_frame_during_a_running_job_gets_a_typed_error_and_the_job_goes_on(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello("alice")
        job_id = peer.send(LONG)
        _, accepted = peer.recv_until(Accepted, re=job_id)
        peer.until_running(job_id)
        size = 3 * (1 << 20) // 2
        assert REQUEST_LIMITS.max_array_bytes < size < REQUEST_FRAME_HARD_LIMIT
        peer.send_raw(oversized_ping("big-1", size))
        _, error = peer.recv_until(Error)
        assert error.code == "bad_request" and "over the 1048576 limit" in error.message
        ping_id = peer.send(Ping())  # the same connection, still known: no hello needed
        assert isinstance(peer.recv_until(Pong, re=ping_id)[1], Pong)
        status_id = peer.send(StatusRequest())
        assert isinstance(peer.recv_until((Status, Error), re=status_id)[1], Status)
        _, result = peer.recv_until((Result, Error), re=job_id, timeout_s=30)
        assert isinstance(result, Result) and result.job_id == accepted.job_id
    assert engine.cancelled == [] and engine.run_counts[accepted.job_id] == 1


def test_a_frame_over_the_hard_limit_drops_the_link_but_the_artist_reattaches(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello("alice")
        job_id = peer.send(LONG)
        _, accepted = peer.recv_until(Accepted, re=job_id)
        peer.until_running(job_id)
        # libzmq closes the connection unread; the DEALER reconnects with a new routing id.
        peer.send_raw(oversized_ping("huge-1", REQUEST_FRAME_HARD_LIMIT + 1))
        # The daemon no longer knows this connection: it says so in a way a client can test.
        status_id = peer.send(StatusRequest())
        _, reply = peer.recv_until((Status, Error), re=status_id)
        assert isinstance(reply, Error) and reply.details["reason"] == "hello_required"
        assert reply.code == "bad_request" and reply.hint.startswith("Send hello"), reply.hint
        peer.hello("alice")
        fetch_id = peer.send(Fetch(job_id=accepted.job_id))
        _, again = peer.recv_until((Accepted, Result), re=fetch_id)
        assert again.job_id == accepted.job_id
        _, result = peer.recv_until((Result, Error), re=fetch_id, timeout_s=30)
        assert isinstance(result, Result)
        events = daemon.log_events()
    assert engine.cancelled == [] and engine.run_counts[accepted.job_id] == 1
    # Whether the daemon had noticed the old connection's loss before the fetch (the job waited
    # as an orphan) or after it (the fetching connection watched, then took over), the job
    # stayed alive and moved to the new connection.
    reattached = [e for e in events if e["event"] == "job_reattached"]
    assert [e["job_id"] for e in reattached] == [accepted.job_id]
    assert reattached[0]["reason"] in ("fetch", "observer_took_over")
    assert not [e for e in events if e["event"] == "client_gone"]


def test_a_vanished_clients_jobs_are_cancelled_after_the_grace_and_fetch_says_so(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    config = make_config(tmp_path, reconnect_grace_s=0.3, admins=("boss",))
    with run_daemon(config, [engine]) as daemon:
        first, boss = peers(daemon.address), peers(daemon.address)
        first.hello("alice")
        boss.hello("boss")
        job_id = first.send(LONG)
        _, accepted = first.recv_until(Accepted, re=job_id)
        first.until_running(job_id)
        first.close()
        states = []
        while not states or states[-1] == "running":
            status_id = boss.send(StatusRequest())
            _, status = boss.recv_until(Status, re=status_id)
            states.append(next(j.state for j in status.jobs if j.job_id == accepted.job_id))
        again = peers(daemon.address)
        again.hello("alice")
        fetch_id = again.send(Fetch(job_id=accepted.job_id))
        _, told = again.recv_until((Cancelled, Result, Accepted), re=fetch_id)
    assert states[-1] == "cancelled"
    assert isinstance(told, Cancelled) and told.reason == "disconnected"
    assert engine.cancelled == [accepted.job_id]  # stopped mid-run, not run to the end


def test_an_admins_fetch_of_a_running_job_never_takes_it_from_its_owner(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path, admins=("boss",)), [engine]) as daemon:
        alice, boss = peers(daemon.address), peers(daemon.address)
        alice.hello("alice")
        boss.hello("boss")
        job_id = alice.send(LONG)
        _, accepted = alice.recv_until(Accepted, re=job_id)
        alice.until_running(job_id)
        fetch_id = boss.send(Fetch(job_id=accepted.job_id))
        _, watching = boss.recv_until(Accepted, re=fetch_id)
        assert watching.duplicate and watching.job_id == accepted.job_id
        # The owner keeps hearing its job, and so does the observer, each on its own id.
        alice.until_running(job_id)
        boss.until_running(fetch_id)
        _, owners = alice.recv_until((Result, Error, Cancelled), re=job_id, timeout_s=30)
        _, copy = boss.recv_until((Result, Error, Cancelled), re=fetch_id, timeout_s=30)
    assert isinstance(owners, Result) and isinstance(copy, Result)
    assert owners.job_id == copy.job_id == accepted.job_id
    assert engine.run_counts[accepted.job_id] == 1


def test_the_same_artists_second_socket_watches_then_takes_over_when_the_first_goes(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    # No grace at all: only the watching connection can keep the job from being cancelled.
    with run_daemon(make_config(tmp_path, reconnect_grace_s=0.0), [engine]) as daemon:
        first, second = peers(daemon.address), peers(daemon.address)
        first.hello("alice")
        second.hello("alice")
        job_id = first.send(LONG)
        _, accepted = first.recv_until(Accepted, re=job_id)
        first.until_running(job_id)
        fetch_id = second.send(Fetch(job_id=accepted.job_id))
        second.recv_until(Accepted, re=fetch_id)
        first.until_running(job_id)  # the first socket still owns the stream
        first.close()
        _, result = second.recv_until((Result, Error, Cancelled), re=fetch_id, timeout_s=30)
        events = daemon.log_events()
    assert isinstance(result, Result) and engine.cancelled == []
    took_over = [e for e in events if e["event"] == "job_reattached"]
    assert [e["reason"] for e in took_over] == ["observer_took_over"]


def _header(msg_id: str, **extra: object) -> bytes:
    return json.dumps({"v": "1.0", "type": "ping", "id": msg_id, "body": {}, **extra}).encode()


@pytest.mark.parametrize(
    ("frames", "fragment"),
    [
        ([SIGNATURE, _header("keep-1", v="2.0")], "2.0"),
        ([SIGNATURE, _header("keep-1", body={"pad": "x" * 40_000})], "header is"),
        ([SIGNATURE, _header("keep-1", body={"deep": json.loads("[" * 20 + "]" * 20)})], "nests"),
        (
            [
                SIGNATURE,
                _header(
                    "keep-1",
                    arrays=[
                        {"name": f"a{i}", "dtype": "|u1", "shape": [900_000]} for i in range(3)
                    ],
                ),
                *[bytes(900_000)] * 3,
            ],
            "message is",
        ),
        ([SIGNATURE, _header("keep-1"), *[b""] * 9], "frames"),
        (
            [SIGNATURE, json.dumps({"body": {"id": "decoy"}, "id": "keep-1", "v": "9.9"}).encode()],
            "",
        ),
        ([SIGNATURE, _header("keep-1", type="generate")], "missing"),
    ],
)
def test_refusals_answer_the_request_id_whenever_it_can_be_read(
    tmp_path: Path, peers: Callable[..., Peer], frames: list[bytes], fragment: str
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.send_raw(frames)
        envelope, error = peer.recv_until(Error)
        assert envelope.re == "keep-1" and fragment in error.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b'{"body":{"id":"nested"},"x":["}",{"id":"n2"}],"id":"top"}', "top"),
        (b'{"a":"quote \\" and \\\\","id" : "spaced"}', "spaced"),
        (b'{"body":{"id":"nested"}}', None),
        (b'{"id":"bad id"}', None),
        (b'{"id":3}', None),
        (b'[{"id":"in-a-list"}]', None),
        (b'{"id":"x' + b"y" * 100 + b'"}', None),
        (b"\xff\xfe" + b'{"id":"after-garbage"}', "after-garbage"),
    ],
)
def test_salvaged_ids_are_top_level_and_well_formed(header: bytes, expected: str | None) -> None:
    assert salvage_id(header) == expected
