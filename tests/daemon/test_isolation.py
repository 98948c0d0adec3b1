"""One client's bad request harms only that client: poison text, failing jobs in a shared batch,
replies the daemon cannot encode (live daemon, real loopback sockets, raw frames)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from daemon.engine_api import JobOutput, JobSpec, ProgressFn, ShouldStop
from shared_protocol import (
    SIGNATURE,
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Generate,
    HYMotionError,
    Ping,
    Pong,
    Result,
    Status,
    StatusRequest,
)
from tests.support import CRASH_MARKER, FAIL_MARKER, TestEngine, make_config, run_daemon
from tests.support.wire import Peer

GOOD = Generate(prompt="a person walks forward", duration_s=1.0, candidates=1, steps=4)


def raw_request(msg_type: str, msg_id: str, body: dict[str, Any]) -> list[bytes]:
    """A request as plain pyzmq would send it; ``json.dumps`` spells a lone surrogate as an
    escape (valid JSON), exactly what a hostile or buggy client sends."""
    header = {"v": "1.0", "type": msg_type, "id": msg_id, "re": None, "body": body, "arrays": []}
    return [SIGNATURE, json.dumps(header).encode()]


@pytest.mark.parametrize(
    ("msg_type", "body", "field"),
    [
        ("generate", {"prompt": "walk \ud800 fast", "duration_s": 1.0}, "prompt"),
        ("generate", {"prompt": "walk \udfff", "duration_s": 1.0}, "prompt"),
        ("generate", {"prompt": "walk \ufffe", "duration_s": 1.0}, "prompt"),
        ("generate", {"prompt": "walk \ufdd0", "duration_s": 1.0}, "prompt"),
        ("generate", {"prompt": "walk \U0010ffff", "duration_s": 1.0}, "prompt"),
        ("generate", {"prompt": "walk", "duration_s": 1.0, "model": "x\ud800"}, "model"),
        ("hello", {"artist": "alice", "client": "tool \ud83d"}, "client"),
        ("cancel", {"job_id": "\ud800"}, "job_id"),
        ("fetch", {"job_id": "\ud800"}, "job_id"),
    ],
)
def test_text_that_is_not_unicode_is_refused_naming_the_field(
    tmp_path: Path, peers: Callable[..., Peer], msg_type: str, body: dict, field: str
) -> None:
    config = make_config(tmp_path, admins=("boss",))
    with run_daemon(config) as daemon:
        poisoner, boss = peers(daemon.address), peers(daemon.address)
        poisoner.hello("mallory")
        boss.hello("boss")
        poisoner.send_raw(raw_request(msg_type, "poison-1", body))
        _, error = poisoner.recv_until(Error, re="poison-1")
        assert error.code == "invalid_argument" and error.details["field"] == field
        assert "Unicode" in error.message
        # Nothing was kept from it: status still answers its sender and every admin.
        for peer in (poisoner, boss):
            status_id = peer.send(StatusRequest())
            _, status = peer.recv_until((Status, Error), re=status_id)
            assert isinstance(status, Status) and status.jobs == ()
        ok_id = poisoner.send(GOOD)
        assert isinstance(poisoner.recv_until(Result, re=ok_id)[1], Result)


def _batched_with_a_bystander(
    tmp_path: Path, peers: Callable[..., Peer], poison_prompt: str
) -> tuple[Error, Result, TestEngine]:
    """Mallory's poison job and Alice's good job share one engine call."""
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        mallory, alice, blocker = (peers(daemon.address) for _ in range(3))
        mallory.hello("mallory")
        alice.hello("alice")
        blocker.hello("blocker")
        # Both wait behind a running job, so they leave the queue together, in one batch.
        blocker_id = blocker.send(Generate(prompt="idle", duration_s=1.0, steps=200))
        _, blocking = blocker.recv_until(Accepted, re=blocker_id)
        blocker.until_running(blocker_id)
        poison_id = mallory.send(Generate(prompt=poison_prompt, duration_s=1.0, candidates=1))
        good_id = alice.send(Generate(prompt="walk", duration_s=1.0, candidates=2, seed=3))
        _, poison_job = mallory.recv_until(Accepted, re=poison_id)
        _, good_job = alice.recv_until(Accepted, re=good_id)
        blocker.send(Cancel(job_id=blocking.job_id))
        _, error = mallory.recv_until((Error, Result), re=poison_id)
        _, result = alice.recv_until((Error, Result), re=good_id)
        assert isinstance(error, Error) and isinstance(result, Result), (error, result)
        # Alice still gets status, and her job ran to the end exactly once.
        status_id = alice.send(StatusRequest())
        assert isinstance(alice.recv_until((Status, Error), re=status_id)[1], Status)
    assert (poison_job.job_id, good_job.job_id) in engine.calls  # they really shared a batch
    assert engine.run_counts[good_job.job_id] <= 2
    return error, result, engine


def test_a_job_that_crashes_the_engine_fails_alone_in_its_batch(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    error, result, engine = _batched_with_a_bystander(tmp_path, peers, f"walk {CRASH_MARKER}")
    assert error.code == "internal" and error.details["log_id"]
    assert result.seeds == (3, 4) and result.rotations.shape[0] == 2
    # Split and retried: the good job ran alone once the shared call had failed.
    assert (result.job_id,) in engine.calls


def test_a_job_that_fails_alone_does_not_rerun_its_neighbours(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    error, result, engine = _batched_with_a_bystander(tmp_path, peers, f"walk {FAIL_MARKER}")
    assert error.code == "internal"
    assert engine.run_counts[result.job_id] == 1  # a per-job error is no reason to split


class WarningEngine(TestEngine):
    """An engine whose output for one prompt carries text no UTF-8 encoder takes: a daemon-side
    fault that must come back as ``internal``, never ``bad_request``."""

    def run_batch(
        self, jobs: Sequence[JobSpec], progress: ProgressFn, should_stop: ShouldStop
    ) -> list[JobOutput | HYMotionError]:
        outcomes = super().run_batch(jobs, progress, should_stop)
        return [
            JobOutput(o.rotations, o.root_positions, o.joint_positions, warnings=("bad \ud800",))
            if isinstance(o, JobOutput) and "unencodable" in job.prompt
            else o
            for job, o in zip(jobs, outcomes, strict=True)
        ]


def test_a_reply_the_daemon_cannot_encode_is_internal_and_the_daemon_keeps_serving(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    with run_daemon(make_config(tmp_path), [WarningEngine()]) as daemon:
        peer = peers(daemon.address)
        peer.hello("alice")
        bad_id = peer.send(Generate(prompt="unencodable", duration_s=1.0, candidates=1))
        _, error = peer.recv_until((Error, Result), re=bad_id)
        assert isinstance(error, Error) and error.code == "internal" and error.details["log_id"]
        ok_id = peer.send(GOOD)  # the worker survived
        assert isinstance(peer.recv_until((Error, Result), re=ok_id)[1], Result)
        ping_id = peer.send(Ping())
        assert isinstance(peer.recv_until(Pong, re=ping_id)[1], Pong)
        events = daemon.log_events()
    logged = [e for e in events if e.get("log_id") == error.details["log_id"]]
    assert logged and logged[0]["event"] == "unencodable_reply"


def test_an_admins_status_stays_within_the_reply_limits_however_many_jobs_are_kept(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(tmp_path, admins=("boss",), max_per_artist=300)
    with run_daemon(config) as daemon:
        alice, boss = peers(daemon.address), peers(daemon.address)
        alice.hello("alice")
        boss.hello("boss")
        # The longest prompts in the widest characters (4 UTF-8 bytes each), kept as results.
        wide = Generate(prompt="\U0001f642" * 1000, duration_s=1.0, candidates=1, steps=4)
        for _ in range(300):
            alice.recv_until((Result, Error), re=alice.send(wide), timeout_s=30)
        status_id = boss.send(StatusRequest())
        _, status = boss.recv_until((Status, Error), re=status_id)  # decoded with REPLY_LIMITS
    assert isinstance(status, Status)
    assert len(status.jobs) == 256 and status.jobs_omitted == 44


def test_a_device_failure_during_a_split_answers_every_job_exactly_once(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    # The crash splits the batch; the device then fails under a half: no job is answered twice.
    engine = TestEngine(step_s=0.02, device_fault_at_step=50)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        blocker = peers(daemon.address)
        blocker.hello("blocker")
        blocker_id = blocker.send(Generate(prompt="idle", duration_s=1.0, steps=200))
        _, blocking = blocker.recv_until(Accepted, re=blocker_id)
        blocker.until_running(blocker_id)
        artists = [peers(daemon.address) for _ in range(4)]
        sent = []
        for i, peer in enumerate(artists):
            peer.hello(f"artist{i}")
            prompt = f"walk {CRASH_MARKER}" if i == 0 else "walk"
            request_id = peer.send(Generate(prompt=prompt, duration_s=1.0, candidates=1, steps=60))
            peer.recv_until(Accepted, re=request_id)
            sent.append(request_id)
        blocker.send(Cancel(job_id=blocking.job_id))  # before step 50: the device is still fine
        finals = [
            peer.recv_until((Result, Error), re=request_id, timeout_s=30)[1]
            for peer, request_id in zip(artists, sent, strict=True)
        ]
        for peer in artists:  # nothing more: every job was answered exactly once
            with pytest.raises(TimeoutError):
                peer.recv_until((Result, Error, Cancelled), timeout_s=0.5)
    assert len(engine.calls[1]) == 4  # the four shared one batch after the blocker
    codes = [f.code if isinstance(f, Error) else "result" for f in finals]
    assert codes[0] == "internal"
    assert set(codes[1:]) == {"model_unavailable"}


@pytest.mark.parametrize("artist", ["alice\n", "boss\n", "bad name"])
def test_an_artist_name_must_be_the_whole_pattern(
    tmp_path: Path, peers: Callable[..., Peer], artist: str
) -> None:
    # A regex's "$" also matches before a final newline: "boss\n" passed and became a log line,
    # a metric label and a quota key of its own.
    with run_daemon(make_config(tmp_path, admins=("boss",))) as daemon:
        peer = peers(daemon.address)
        peer.send_raw(raw_request("hello", "hello-1", {"artist": artist, "client": "probe"}))
        _, error = peer.recv_until(Error, re="hello-1")
        assert error.code == "invalid_argument" and error.details["field"] == "artist"
