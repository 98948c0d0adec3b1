"""One bad request can harm only its own sender (docs/operations.md), fuzzed: mutated *valid*
generate requests from some artists, batched with good ones from others, on a live loopback
daemon over plain pyzmq DEALERs. Every good job still gets its own, correct result."""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from shared_protocol import SIGNATURE, Generate, Ping, Pong, Result, Status, StatusRequest
from tests.support import (
    CRASH_MARKER,
    FAIL_MARKER,
    TestEngine,
    make_config,
    motion_for_seed,
    run_daemon,
)
from tests.support.wire import Peer

MUTATED_REQUESTS = 400
GOOD_ARTISTS, GOOD_JOBS_EACH = 4, 12
BAD_ARTISTS = 4
#: The whole exchange must finish well within this (it takes a few seconds).
DEADLINE_S = 120.0

VALID = {"prompt": "a person walks", "duration_s": 1.0, "candidates": 1, "steps": 4}

#: Values a field may be mutated to: edges, wrong types, text that is not Unicode.
FIELD_VALUES: dict[str, list[Any]] = {
    "prompt": [
        f"walk {CRASH_MARKER}", f"walk {FAIL_MARKER}", CRASH_MARKER * 3, "walk \ud800 fast",
        "\udfff", "x\ufffe", "\ufdd0", "walk\x00", "walk\x1b[31m", "", "   ", "x" * 1000,
        "x" * 1001, "y" * 8193, "\U0001f642" * 1000, "\u202egnp.exe", "walk\n\tfast", 7, None,
        [], {"a": 1},
    ],
    "duration_s": [0.65, 0.66, 0.67, 12.0, 12.02, 1e308, -0.0, 0, "1.0", True, None, [1.0]],
    "candidates": [0, 1, 8, 9, 16, 2.0, -1, 2**63, "2", False, None],
    "seed": [None, 0, 2**32 - 1, 2**32, -1, 2**64, 1.5, "7", True],
    "guidance": [1.0, 0.999, 10.0, 10.0001, 5, "5", None, True, 1e-300],
    "steps": [4, 3, 200, 201, 4.0, "4", None, -4],
    "model": [None, "", "test", "broken", "no-such-model", "\ud800", "x" * 8193, 1, ["test"]],
    "unknown": [1, "x", None, [1, 2], {"deep": [[[[[[1]]]]]]}, "\ud83d"],
}  # fmt: skip


def mutated_generate(rng: random.Random, index: int) -> tuple[str, list[bytes]]:
    """A valid generate header with one to three fields changed (or dropped, or added)."""
    body: dict[str, Any] = dict(VALID, seed=rng.randrange(2**32))
    if rng.random() < 0.2:  # valid in every field, but the engine chokes on it
        body["prompt"] = rng.choice([f"walk {CRASH_MARKER}", f"run {FAIL_MARKER}"])
    for name in rng.sample(sorted(FIELD_VALUES), rng.randint(0, 3)):
        if rng.random() < 0.15 and name in body:
            del body[name]
        else:
            body[name] = rng.choice(FIELD_VALUES[name])
    msg_id = rng.choice([f"bad-{index}", f"bad-{index}", "bad-reused", "good-0-0"])
    header: dict[str, Any] = {"v": rng.choice(["1.0", "1.0", "1.7"]), "type": "generate",
                              "id": msg_id, "re": None, "body": body, "arrays": []}  # fmt: skip
    if rng.random() < 0.1:
        header["extra"] = {"ignored": True}
    return msg_id, [SIGNATURE, json.dumps(header).encode()]


@pytest.mark.slow
def test_mutated_valid_requests_never_cost_another_artist_a_result(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    rng = random.Random(20261201)
    engine = TestEngine(step_s=0.002, max_batch_candidates=16)
    config = make_config(tmp_path, max_queue=1000, max_per_artist=1000, batch_window_s=0.05)
    with run_daemon(config, [engine]) as daemon:
        good = [peers(daemon.address) for _ in range(GOOD_ARTISTS)]
        bad = [peers(daemon.address) for _ in range(BAD_ARTISTS)]
        for i, peer in enumerate(good):
            peer.hello(f"good{i}")
        for i, peer in enumerate(bad):
            peer.hello(f"bad{i}")
        # Interleave: each good job is sent among a burst of mutated ones, so they share batches.
        expected: dict[str, tuple[int, int]] = {}  # good request id -> (good artist, seed)
        sent_bad: dict[int, set[str]] = defaultdict(set)
        per_good = MUTATED_REQUESTS // (GOOD_ARTISTS * GOOD_JOBS_EACH)
        index = 0
        for k in range(GOOD_JOBS_EACH):
            for i, peer in enumerate(good):
                request_id, seed = f"good-{i}-{k}", 1000 * i + k
                peer.send(Generate(**VALID, seed=seed), msg_id=request_id)
                expected[request_id] = (i, seed)
                for _ in range(per_good):
                    attacker = rng.randrange(BAD_ARTISTS)
                    msg_id, frames = mutated_generate(rng, index)
                    bad[attacker].send_raw(frames)
                    sent_bad[attacker].add(msg_id)
                    index += 1
        finals: dict[str, list[Any]] = defaultdict(list)
        answered_bad: dict[int, set[str]] = defaultdict(set)
        poller = zmq.Poller()
        for peer in good + bad:
            poller.register(peer.socket, zmq.POLLIN)
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and (
            len(finals) < len(expected)
            or any(not ids <= answered_bad[a] for a, ids in sent_bad.items())
        ):
            ready = dict(poller.poll(1000))
            for peer in good:
                while peer.socket in ready and peer.socket.poll(0):
                    envelope, message = peer.recv()
                    if envelope.type in ("result", "error", "cancelled"):
                        finals[str(envelope.re)].append(message or envelope.body)
            for i, peer in enumerate(bad):
                while peer.socket in ready and peer.socket.poll(0):
                    envelope, _ = peer.recv()
                    answered_bad[i].add(str(envelope.re))
        # The daemon is still alive for everyone, and good artists' status still works.
        for peer in good[:1] + bad[:1]:
            ping_id = peer.send(Ping())
            assert isinstance(peer.recv_until(Pong, re=ping_id)[1], Pong)
        status_id = good[0].send(StatusRequest())
        assert isinstance(good[0].recv_until(Status, re=status_id)[1], Status)
    # Every good job got exactly one answer, a result, with its own motion.
    assert set(finals) == set(expected), sorted(set(expected) - set(finals))[:5]
    for request_id, answers in finals.items():
        assert len(answers) == 1, (request_id, answers)
        (result,) = answers
        assert isinstance(result, Result), (request_id, result)
        _, seed = expected[request_id]
        assert result.seeds == (seed,)
        np.testing.assert_array_equal(result.rotations[0], motion_for_seed(seed, 30)[0])
    # Every mutated request whose id could be read was answered, too.
    for attacker, ids in sent_bad.items():
        assert ids <= answered_bad[attacker], sorted(ids - answered_bad[attacker])[:5]
    # And the mutations really shared batches with good jobs and really broke some of them.
    splits = Counter(e["event"] for e in daemon.log_events())
    good_jobs = {answers[0].job_id for answers in finals.values()}
    shared = [c for c in engine.calls if len(c) > 1 and good_jobs & set(c)]
    print(
        f"{index} mutated requests, {len(expected)} good jobs, {len(engine.calls)} engine calls "
        f"({len(shared)} shared), {splits['batch_split']} batch splits, "
        f"{splits['batch_failed']} failed single jobs"
    )
    assert splits["batch_split"] > 0 and shared
