"""Who may do what, and how much: isolation, admin, quotas, busy, fairness (live daemon)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from daemon.config import QuotaLimits
from shared_protocol import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Fetch,
    Generate,
    Result,
    Status,
    StatusRequest,
)
from tests.support import TestEngine, make_config, run_daemon
from tests.support.wire import Peer

JOB = Generate(prompt="a person waves", duration_s=1.0, candidates=1, steps=4)


def _long_job(peer: Peer) -> tuple[str, str]:
    request_id = peer.send(Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200))
    _, accepted = peer.recv_until(Accepted, re=request_id)
    return request_id, accepted.job_id


def test_artists_cannot_see_cancel_or_fetch_each_others_jobs(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(tmp_path, admins=("boss",))
    with run_daemon(config, [TestEngine(step_s=0.02)]) as daemon:
        alice, bob, boss = (peers(daemon.address) for _ in range(3))
        alice.hello("alice")
        bob.hello("bob")
        assert boss.hello("boss").admin
        request_id, job_id = _long_job(alice)
        for message in (Cancel(job_id=job_id), Fetch(job_id=job_id)):
            msg_id = bob.send(message)
            _, error = bob.recv_until(Error, re=msg_id)
            assert error.code == "not_found"  # indistinguishable from a job that never existed
        bob_status = bob.send(StatusRequest())
        assert bob.recv_until(Status, re=bob_status)[1].jobs == ()
        boss_status = boss.send(StatusRequest())
        jobs = boss.recv_until(Status, re=boss_status)[1].jobs
        assert [(j.job_id, j.artist) for j in jobs] == [(job_id, "alice")]
        cancel_id = boss.send(Cancel(job_id=job_id))
        assert boss.recv_until(Cancelled, re=cancel_id)[1].reason == "admin"
        _, cancelled = alice.recv_until(Cancelled, re=request_id)
        assert cancelled.reason == "admin"


def test_quota_exceeded_with_reset_time_while_others_are_served(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(
        tmp_path,
        quota_default=QuotaLimits(jobs_per_hour=2),
        quota_artists=MappingProxyType({"vip": QuotaLimits()}),
    )
    with run_daemon(config) as daemon:
        alice, vip = peers(daemon.address), peers(daemon.address)
        alice.hello("alice")
        vip.hello("vip")
        for _ in range(2):
            ok_id = alice.send(JOB)
            alice.recv_until(Result, re=ok_id)
        over_id = alice.send(JOB)
        before = time.time()
        _, error = alice.recv_until(Error, re=over_id)
        assert error.code == "quota_exceeded"
        assert error.details["limit"] == "jobs_per_hour"
        resets_at = error.details["resets_at"]
        assert before < resets_at <= before + 3600 and resets_at % 3600 == 0
        for _ in range(3):  # the unlimited artist is still served
            vip_id = vip.send(JOB)
            assert isinstance(vip.recv_until(Result, re=vip_id)[1], Result)
    usage = (tmp_path / "state" / "usage.json").read_text()
    assert '"alice"' in usage  # persisted in the state directory


def test_busy_when_queue_or_artist_limit_is_full(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    config = make_config(tmp_path, max_queue=2, max_per_artist=2, grace_period_s=0.1)
    with run_daemon(config, [TestEngine(step_s=0.02)]) as daemon:
        alice, bob, carol = (peers(daemon.address) for _ in range(3))
        for peer, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            peer.hello(name)
        running_id, _ = _long_job(alice)
        alice.until_running(running_id)  # on the device: the queue is empty again
        _long_job(alice)  # alice: 1 running + 1 queued = her limit
        third = alice.send(JOB)
        _, busy = alice.recv_until(Error, re=third)
        assert busy.code == "busy" and busy.details["reason"] == "artist_limit"
        assert busy.details["retry_after_s"] > 0
        bob.recv_until(Accepted, re=bob.send(JOB))  # queue: alice's + bob's = max_queue
        carol_id = carol.send(JOB)
        _, full = carol.recv_until(Error, re=carol_id)
        assert full.code == "busy" and full.details["reason"] == "queue_full"
        assert full.details["retry_after_s"] > 0
        metrics = daemon.server.metrics
        assert metrics.value("hymotion_rejections_total", reason="queue_full") == 1
        assert metrics.value("hymotion_rejections_total", reason="artist_limit") == 1


def test_fairness_one_artist_with_eight_jobs_delays_another_by_at_most_one(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    # One candidate per batch, so "one job" and "one batch" are the same thing here.
    engine = TestEngine(step_s=0.005, max_batch_candidates=1)
    with run_daemon(make_config(tmp_path, max_per_artist=16), [engine]) as daemon:
        greedy, other = peers(daemon.address), peers(daemon.address)
        greedy.hello("greedy")
        other.hello("other")
        blocker_id, blocker_job = _long_job(greedy)
        greedy.until_running(blocker_id)
        greedy_jobs = []
        for _ in range(8):
            request_id = greedy.send(JOB)
            greedy_jobs.append(greedy.recv_until(Accepted, re=request_id)[1].job_id)
        other_id = other.send(JOB)
        _, accepted = other.recv_until(Accepted, re=other_id)
        assert accepted.queue_position == 1  # behind at most one of greedy's jobs
        greedy.send(Cancel(job_id=blocker_job))  # let the queue run
        other.recv_until(Result, re=other_id)
        order = [call[0] for call in engine.calls]
    ahead = order.index(accepted.job_id) - order.index(greedy_jobs[0])
    assert order[0] == blocker_job and 0 < ahead <= 1
