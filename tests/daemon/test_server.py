"""The live daemon over real loopback sockets: requests, jobs, bad input, cancel, fetch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from daemon.config import ConfigError
from shared_protocol import (
    SIGNATURE,
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Fetch,
    Generate,
    Hello,
    Ping,
    Pong,
    Progress,
    Result,
    Status,
    StatusRequest,
    Welcome,
)
from shared_protocol.motion import forward_kinematics
from tests.support import (
    BROKEN_MODEL,
    CRASH_MARKER,
    FAIL_MARKER,
    SKELETON,
    TestEngine,
    make_config,
    motion_for_seed,
    run_daemon,
)
from tests.support.wire import Peer

WALK = Generate(prompt="a person walks forward", duration_s=1.0, candidates=2, seed=7, steps=8)


def test_hello_generate_progress_result(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    with run_daemon(make_config(tmp_path), [TestEngine(step_s=0.001)]) as daemon:
        peer = peers(daemon.address)
        welcome = peer.hello("alice")
        assert isinstance(welcome, Welcome)
        assert welcome.artist == "alice" and not welcome.admin
        assert welcome.skeleton is not None and welcome.skeleton.joint_names == SKELETON.joint_names
        assert {m.name: m.available for m in welcome.models} == {"test": True, "broken": False}
        request_id = peer.send(WALK)
        _, accepted = peer.recv_until(Accepted, re=request_id)
        seen_stages = set()
        while True:
            envelope, message = peer.recv()
            assert envelope.re == request_id  # every job message answers the generate id
            if isinstance(message, Progress):
                seen_stages.add(message.stage)
                assert message.job_id == accepted.job_id
                continue
            assert isinstance(message, Result)
            break
    assert {"encoding", "sampling", "decoding"} <= seen_stages
    assert message.seeds == (7, 8) and message.frames == 30 and message.untrained
    rotations, root, _ = motion_for_seed(8, 30)
    np.testing.assert_array_equal(message.rotations[1], rotations)
    np.testing.assert_array_equal(message.root_positions[1], root)
    # Self-consistent: joint positions are the forward kinematics of rotations and root.
    fk = forward_kinematics(message.skeleton, message.rotations, message.root_positions)
    np.testing.assert_allclose(message.joint_positions, fk, atol=1e-5)
    assert {"queue", "total"} <= set(message.timings)


@pytest.mark.parametrize(
    ("changes", "field", "allowed"),
    [
        ({"prompt": "   "}, "prompt", "1 or more characters"),
        ({"prompt": "x" * 1001}, "prompt", "1 to 1000 characters"),
        ({"duration_s": 0.5}, "duration_s", "0.67-12 s"),
        ({"duration_s": 12.5}, "duration_s", "0.67-12 s"),
        ({"candidates": 0}, "candidates", "1-8"),
        ({"candidates": 9}, "candidates", "1-8"),
        ({"guidance": 0.5}, "guidance", "1-10"),
        ({"steps": 1000}, "steps", "4-200"),
        ({"seed": -1}, "seed", "0-2147483647"),
        ({"seed": 2**31 - 1, "candidates": 2}, "seed", "0-2147483646"),  # no wrap to seed 0
        ({"seed": 2**32 - 1, "candidates": 2}, "seed", "0-2147483647"),
    ],
)
def test_out_of_range_values_name_field_and_range(
    tmp_path: Path, peers: Callable[..., Peer], changes: dict, field: str, allowed: str | None
) -> None:
    body = {**WALK.envelope().body, **changes}
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        msg = Generate(**body)
        request_id = peer.send(msg)
        _, error = peer.recv_until(Error, re=request_id)
        assert error.code == "invalid_argument"
        assert error.details["field"] == field
        assert allowed is None or error.details["allowed"] == allowed
        assert daemon.call(lambda: len(daemon.server.lifecycle.jobs)) == 0


def _raw(header: bytes, *arrays: bytes) -> list[bytes]:
    return [SIGNATURE, header, *arrays]


@pytest.mark.parametrize(
    ("frames", "code", "fragment"),
    [
        (_raw(b'{"v":"1.0","type":"launch","id":"x1","body":{}}'), "unsupported_message", "launch"),
        (_raw(b'{"v":"2.0","type":"ping","id":"x1","body":{}}'), "unsupported_version", "2.0"),
        ([b"HYMP/2", b"{}"], "unsupported_version", "HYMP/2"),
        (_raw(b"{not json"), "bad_request", "not valid JSON"),
        (_raw(b'{"v":"1.0","type":"generate","id":"x1","body":{}}'), "bad_request", "prompt"),
        (
            _raw(b'{"v":"1.0","type":"generate","id":"x1","body":{"prompt":3,"duration_s":2}}'),
            "bad_request",
            "must be a string",
        ),
        (
            _raw(
                b'{"v":"1.0","type":"ping","id":"x1","body":{},'
                b'"arrays":[{"name":"a","dtype":"<f4","shape":[3]}]}',
                b"\x00" * 8,
            ),
            "bad_request",
            "shape",
        ),
        (
            _raw(
                b'{"v":"1.0","type":"ping","id":"x1","body":{},'
                b'"arrays":[{"name":"a","dtype":"object","shape":[1]}]}',
                b"\x00",
            ),
            "bad_request",
            "dtype",
        ),
        (_raw(b"[" * 50 + b"]" * 50), "bad_request", "nests deeper"),
        (_raw(b"{}", *([b""] * 10)), "bad_request", "frames"),
    ],
)
def test_bad_messages_get_typed_errors(
    tmp_path: Path, peers: Callable[..., Peer], frames: list[bytes], code: str, fragment: str
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.send_raw(frames)
        _, error = peer.recv_until(Error)
        assert error.code == code
        assert fragment in error.message
        ping_id = peer.send(Ping())  # and it keeps serving
        assert isinstance(peer.recv_until(Pong, re=ping_id)[1], Pong)


def test_garbage_without_signature_is_dropped_and_counted(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.send_raw([b"GET / HTTP/1.1", b"\r\n"])
        ping_id = peer.send(Ping())
        envelope, pong = peer.recv()  # the first answer is the pong: garbage got no reply
        assert isinstance(pong, Pong) and envelope.re == ping_id
        count = daemon.server.metrics.value(
            "hymotion_malformed_messages_total", reason="no_signature"
        )
        assert count == 1


def test_requests_before_hello_are_refused_but_ping_works(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        request_id = peer.send(WALK)
        _, error = peer.recv_until(Error, re=request_id)
        assert error.code == "bad_request" and "hello" in error.message
        ping_id = peer.send(Ping())
        assert isinstance(peer.recv_until(Pong, re=ping_id)[1], Pong)


def test_bad_artist_name_in_hello(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        hello_id = peer.send(Hello(artist="../etc/passwd"))
        _, error = peer.recv_until(Error, re=hello_id)
        assert error.code == "invalid_argument" and error.details["field"] == "artist"


def test_unavailable_model_is_reported_and_refused(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        for model in (BROKEN_MODEL, "no-such-model"):
            request_id = peer.send(Generate(prompt="walk", duration_s=1.0, model=model))
            _, error = peer.recv_until(Error, re=request_id)
            assert error.code == "model_unavailable" and error.details["allowed"] == "test"
        status_id = peer.send(StatusRequest())
        _, status = peer.recv_until(Status, re=status_id)
        broken = next(m for m in status.models if m.name == BROKEN_MODEL)
        assert not broken.available and "weights missing" in broken.error


def test_engine_admission_error_is_typed(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    engine = TestEngine(max_candidate_frames=100)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        request_id = peer.send(Generate(prompt="walk", duration_s=4.0, candidates=2))
        _, error = peer.recv_until(Error, re=request_id)
        assert error.code == "resource_exhausted"


def test_job_failure_and_engine_crash_are_typed_and_logged(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    with run_daemon(make_config(tmp_path)) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        fail_id = peer.send(Generate(prompt=f"walk {FAIL_MARKER}", duration_s=1.0, steps=4))
        _, failed = peer.recv_until(Error, re=fail_id)
        assert failed.code == "internal"
        crash_id = peer.send(Generate(prompt=f"walk {CRASH_MARKER}", duration_s=1.0, steps=4))
        _, crashed = peer.recv_until(Error, re=crash_id)
        assert crashed.code == "internal"
        log_id = crashed.details["log_id"]
        ok_id = peer.send(WALK)  # the daemon keeps serving after a crashed batch
        assert isinstance(peer.recv_until(Result, re=ok_id)[1], Result)
        events = daemon.log_events()
    crash = [e for e in events if e.get("log_id") == log_id]
    assert crash and crash[0]["event"] == "batch_failed" and "injected" in crash[0]["traceback"]


def test_cancel_queued_and_running(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    engine = TestEngine(step_s=0.02)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        long_job = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200)
        running_id = peer.send(long_job)
        _, running = peer.recv_until(Accepted, re=running_id)
        peer.until_running(running_id)  # it is on the device now
        queued_id = peer.send(Generate(prompt="jog", duration_s=1.0, candidates=1, steps=10))
        _, queued = peer.recv_until(Accepted, re=queued_id)
        assert queued.queue_position == 0
        cancel_id = peer.send(Cancel(job_id=queued.job_id))
        _, gone = peer.recv_until(Cancelled, re=queued_id)
        assert gone.reason == "artist" and not gone.retry
        peer.recv_until(Cancelled, re=cancel_id)
        peer.send(Cancel(job_id=running.job_id))
        _, stopped = peer.recv_until(Cancelled, re=running_id)
        assert stopped.reason == "artist"
        assert engine.cancelled == [running.job_id]
        assert queued.job_id not in engine.run_counts  # never reached the engine
        again_id = peer.send(Cancel(job_id=running.job_id))
        _, error = peer.recv_until(Error, re=again_id)
        assert error.code == "invalid_argument"


def test_a_second_cancel_is_told_the_job_is_already_stopping_and_the_reason_it_ends_with(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.02)
    with run_daemon(make_config(tmp_path, admins=("boss",)), [engine]) as daemon:
        alice, boss = peers(daemon.address), peers(daemon.address)
        alice.hello("alice")
        assert boss.hello("boss").admin
        # Two jobs in one batch: a cancelled one is answered only when the batch ends, so it is
        # "being stopped" for as long as its neighbour runs.
        long_job = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200)
        kept_id, dropped_id = alice.send(long_job), alice.send(long_job)
        kept = alice.recv_until(Accepted, re=kept_id)[1].job_id
        dropped = alice.recv_until(Accepted, re=dropped_id)[1].job_id
        alice.until_running(kept_id)
        alice.until_running(dropped_id)
        first = alice.recv_until(Cancelled, re=alice.send(Cancel(job_id=dropped)))[1]
        assert (first.reason, first.retry, first.already_stopping) == ("artist", False, False)
        by_admin = boss.recv_until(Cancelled, re=boss.send(Cancel(job_id=dropped)))[1]
        assert (by_admin.reason, by_admin.retry, by_admin.already_stopping) == (
            "artist", False, True
        )  # fmt: skip
        again = alice.recv_until(Cancelled, re=alice.send(Cancel(job_id=dropped)))[1]
        assert (again.reason, again.already_stopping) == ("artist", True)
        alice.send(Cancel(job_id=kept))  # ends the batch: both jobs' own answers come now
        finals = {}
        while len(finals) < 2:
            envelope, message = alice.recv_until(Cancelled)
            if envelope.re in (kept_id, dropped_id):
                finals[envelope.re] = message
        final = finals[dropped_id]
        assert (final.reason, final.retry, final.already_stopping) == ("artist", False, False)
    assert engine.calls == [(kept, dropped)]  # one batch all along
    stops = [e for e in daemon.log_events() if e["event"] == "job_cancel_requested"]
    assert [(e["job_id"], e["reason"]) for e in stops] == [(dropped, "artist"), (kept, "artist")]


def test_waiting_clients_hear_their_place_and_wait_until_they_start(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    # One job per batch, and jobs ahead that run until cancelled: the test moves the queue.
    engine = TestEngine(step_s=0.05, max_batch_candidates=1)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        ahead, me = peers(daemon.address), peers(daemon.address)
        ahead.hello("alice")
        me.hello("alice")  # same artist: her jobs run in the order she sent them
        blockers = []
        for _ in range(4):
            blocker_id = ahead.send(Generate(prompt="walk", duration_s=1.0, candidates=1))
            blockers.append(ahead.recv_until(Accepted, re=blocker_id)[1].job_id)
            if len(blockers) == 1:
                ahead.until_running(blocker_id)
        request_id = me.send(Generate(prompt="wave", duration_s=1.0, candidates=1, steps=4))
        _, accepted = me.recv_until(Accepted, re=request_id)
        assert accepted.queue_position == 3  # three of the four blockers wait ahead of it
        told: list[Progress] = []
        for job_id in blockers:
            _, update = me.recv_until(Progress, re=request_id)
            assert update.stage == "queued"
            told.append(update)
            ahead.send(Cancel(job_id=job_id))  # the running job ends; the queue moves up one
        me.until_running(request_id)
        me.recv_until(Result, re=request_id)
    assert [t.queue_position for t in told] == [3, 2, 1, 0]
    assert all(t.eta_s is not None and t.eta_s > 0 for t in told)


def test_resubmission_is_deduplicated_and_fetch_resends(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    engine = TestEngine(step_s=0.01)
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        first = peers(daemon.address)
        first.hello("alice")
        request_id = first.send(Generate(prompt="walk", duration_s=1.0, steps=30))
        _, accepted = first.recv_until(Accepted, re=request_id)
        first.close()
        # A reconnecting client: new connection, same artist, same request id.
        second = peers(daemon.address)
        second.hello("alice")
        second.send(Generate(prompt="walk", duration_s=1.0, steps=30), msg_id=request_id)
        _, again = second.recv_until((Accepted, Result), re=request_id)
        if isinstance(again, Accepted):
            assert again.duplicate and again.job_id == accepted.job_id
            _, result = second.recv_until((Result, Cancelled), re=request_id)
        else:
            result = again
        # Closing the first connection may have cancelled it before the resubmission arrived;
        # either way it ran at most once and the answer reached the new connection.
        assert engine.run_counts[accepted.job_id] == 1
        fetch_id = second.send(Fetch(job_id=accepted.job_id))
        _, fetched = second.recv_until((Result, Cancelled), re=fetch_id)
        assert type(fetched) is type(result) and fetched.job_id == accepted.job_id
        missing_id = second.send(Fetch(job_id="nope"))
        assert second.recv_until(Error, re=missing_id)[1].code == "not_found"


def test_finished_result_expires_after_retention(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(tmp_path, result_retention_s=0.0)
    with run_daemon(config) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        request_id = peer.send(WALK)
        _, result = peer.recv_until(Result, re=request_id)
        status_id = peer.send(StatusRequest())  # after call_later(0): the job is gone
        _, status = peer.recv_until(Status, re=status_id)
        fetch_id = peer.send(Fetch(job_id=result.job_id))
        assert peer.recv_until(Error, re=fetch_id)[1].code == "not_found"
        assert status.jobs == ()


def test_batching_runs_compatible_jobs_together(tmp_path: Path, peers: Callable[..., Peer]) -> None:
    engine = TestEngine(step_s=0.005, max_batch_candidates=4)
    with run_daemon(make_config(tmp_path, batch_window_s=0.2), [engine]) as daemon:
        peer = peers(daemon.address)
        peer.hello()
        same = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=8, guidance=5.0)
        other = Generate(prompt="walk", duration_s=1.0, candidates=1, steps=16, guidance=5.0)
        ids = [peer.send(same) for _ in range(5)] + [peer.send(other)]
        results = {}
        while len(results) < len(ids):
            envelope, message = peer.recv()
            if isinstance(message, Result):
                results[envelope.re] = message
    sizes = sorted(len(call) for call in engine.calls)
    # 5 compatible single-candidate jobs, limit 4 candidates: one batch of 4 then 1; the job
    # with different steps never joins them.
    assert sizes == [1, 1, 4]
    assert all(isinstance(r, Result) for r in results.values())


def test_a_taken_address_is_a_typed_startup_error(tmp_path: Path) -> None:
    with run_daemon(make_config(tmp_path / "one")) as first:
        second = make_config(tmp_path / "two", bind=first.address)
        with pytest.raises(ConfigError, match="cannot bind") as caught, run_daemon(second):
            pass
        assert caught.value.details["field"] == "bind"
