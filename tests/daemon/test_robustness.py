"""A live daemon under hostile and heavy traffic: malformed floods and many clients."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from daemon.lifecycle import QUEUE_UPDATE_INTERVAL_S
from shared_protocol import (
    SIGNATURE,
    Accepted,
    Error,
    Generate,
    Hello,
    Ping,
    Pong,
    Progress,
    Result,
    encode,
)
from tests.support import TestEngine, make_config, run_daemon
from tests.support.wire import Peer

MALFORMED_COUNT = 10_000


def malformed_messages(rng: random.Random) -> list[list[bytes]]:
    """Every kind of bad input, deterministic for a given seed."""
    valid_ping = encode(Ping().envelope(msg_id="p1"))
    valid_gen = encode(Generate(prompt="walk", duration_s=2.0).envelope(msg_id="g1"))
    makers: list[Callable[[], list[bytes]]] = [
        lambda: [rng.randbytes(rng.randint(0, 64)) for _ in range(rng.randint(1, 6))],
        lambda: [SIGNATURE, rng.randbytes(rng.randint(0, 200))],
        lambda: [SIGNATURE, json.dumps(rng.choice([[], 1, "x", None, {"v": "1.0"}])).encode()],
        lambda: [SIGNATURE, b"[" * rng.randint(13, 5000)],
        lambda: [b"HYMP/" + str(rng.randint(2, 99)).encode(), b"{}"],
        lambda: [SIGNATURE, valid_ping[1]] + [b"x"] * rng.randint(1, 20),
        lambda: [
            SIGNATURE,
            json.dumps(
                {
                    "v": "1.0",
                    "type": "ping",
                    "id": "a",
                    "body": {},
                    "arrays": [{"name": "a", "dtype": "<f4", "shape": [10**12]}],
                }
            ).encode(),
            b"\x00" * 16,
        ],
        lambda: [
            SIGNATURE,
            json.dumps(
                {
                    "v": "1.0",
                    "type": rng.choice(["generate", "cancel", "fetch", "hello", "zap"]),
                    "id": rng.choice(["ok", "", "x" * 100, "bad id"]),
                    "body": {
                        "prompt": rng.choice([1, None, [], "walk"]),
                        "duration_s": rng.choice(["2", 1e300, -1, None]),
                        "job_id": rng.choice([3, "j"]),
                        "artist": rng.choice([4, "a b"]),
                    },
                }
            ).encode(),
        ],
        lambda: _flip(rng, valid_ping),
        lambda: _flip(rng, valid_gen),
        lambda: [SIGNATURE, b"\xff\xfe" + rng.randbytes(10)],
    ]
    return [rng.choice(makers)() for _ in range(MALFORMED_COUNT)]


def _flip(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    index = rng.randrange(1, len(frames))
    data = bytearray(frames[index])
    position = rng.randrange(len(data))
    data[position] ^= 1 << rng.randrange(8)
    return [*frames[:index], bytes(data), *frames[index + 1 :]]


@pytest.mark.slow
def test_ten_thousand_malformed_messages(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        attacker = peers(daemon.address)
        bystander = peers(daemon.address)
        bystander.hello("bystander")
        messages = malformed_messages(random.Random(1234))
        for start in range(0, len(messages), 200):
            for frames in messages[start : start + 200]:
                attacker.send_raw(frames)
            while attacker.socket.poll(20, zmq.POLLIN):  # drain the error replies
                attacker.socket.recv_multipart()
        # Still alive and serving the attacker and everyone else.
        for peer in (attacker, bystander):
            ping_id = peer.send(Ping())
            assert isinstance(peer.recv_until(Pong, re=ping_id, timeout_s=10)[1], Pong)
        job_id = bystander.send(Generate(prompt="walk", duration_s=1.0, candidates=1, steps=4))
        assert isinstance(bystander.recv_until(Result, re=job_id)[1], Result)
        lifecycle = daemon.server.lifecycle
        assert daemon.call(lambda: len(lifecycle.jobs.unfinished())) == 0
        assert daemon.call(lambda: lifecycle.scheduler.depth) == 0
        metrics = daemon.server.metrics
        malformed = sum(
            metrics.value("hymotion_malformed_messages_total", reason=r)
            for r in ("no_signature", "bad_request", "unsupported_version")
        )
        assert malformed > MALFORMED_COUNT / 2


@pytest.mark.slow
def test_fifty_clients_four_jobs_each_answered_exactly_once(
    tmp_path: Path, context: zmq.Context
) -> None:
    clients, jobs_each = 50, 4
    config = make_config(tmp_path, max_queue=150, max_per_artist=4)
    with run_daemon(config, [TestEngine(max_batch_candidates=8)]) as daemon:
        peers = [Peer(context, daemon.address) for _ in range(clients)]
        try:
            for i, peer in enumerate(peers):
                peer.send(Hello(artist=f"artist{i}"), msg_id=f"hello{i}")
            for peer in peers:
                peer.recv()
            sent: dict[str, int] = {}
            started = time.monotonic()
            for i, peer in enumerate(peers):
                for k in range(jobs_each):
                    request_id = f"job-{i}-{k}"
                    peer.send(
                        Generate(
                            prompt=f"walk {i} {k}",
                            duration_s=1.0,
                            candidates=1,
                            steps=4,
                            seed=i * 10 + k,
                        ),
                        msg_id=request_id,
                    )
                    sent[request_id] = i
            terminal: Counter[str] = Counter()
            accepted: Counter[str] = Counter()
            outcomes: Counter[str] = Counter()
            told: defaultdict[str, list[int | None]] = defaultdict(list)
            poller = zmq.Poller()
            for peer in peers:
                poller.register(peer.socket, zmq.POLLIN)
            while sum(terminal.values()) < len(sent):
                ready = dict(poller.poll(10_000))
                assert ready, f"silence with {len(sent) - sum(terminal.values())} jobs unanswered"
                for peer in peers:
                    if peer.socket in ready:
                        while peer.socket.poll(0, zmq.POLLIN):
                            envelope, message = peer.recv()
                            assert envelope.re in sent
                            if isinstance(message, Accepted):
                                accepted[envelope.re] += 1
                            elif isinstance(message, Progress) and message.stage == "queued":
                                told[envelope.re].append(message.queue_position)
                            elif isinstance(message, Result | Error):
                                terminal[envelope.re] += 1
                                code = "result" if isinstance(message, Result) else message.code
                                outcomes[code] += 1
            # Nothing else arrives late (no duplicate answers).
            assert not poller.poll(300)
            elapsed = time.monotonic() - started
        finally:
            for peer in peers:
                peer.close()
        engine = daemon.engine
    assert set(terminal) == set(sent) and set(terminal.values()) == {1}
    assert set(accepted.values()) <= {1}
    assert set(outcomes) <= {"result", "busy"} and outcomes["result"] == len(accepted)
    assert sum(engine.run_counts.values()) == len(accepted)
    assert max(engine.run_counts.values()) == 1
    # Queue positions go out in passes at least QUEUE_UPDATE_INTERVAL_S apart, each telling a
    # job only a changed place: no flood, however often the queue moved.
    passes = elapsed / QUEUE_UPDATE_INTERVAL_S
    assert all(len(places) <= passes for places in told.values())
    assert all(a != b for places in told.values() for a, b in itertools.pairwise(places))
    updates = sum(len(places) for places in told.values())
    print(f"outcomes {dict(outcomes)}, engine calls {len(engine.calls)}, queue updates {updates}")
