"""The scheduler, pure: no sockets (the quota book: test_quotas.py)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from daemon.engine_api import JobSpec
from daemon.jobs import Job
from daemon.scheduler import Scheduler, SchedulerLimits
from shared_protocol import Busy

_count = 0


def job(artist: str, candidates: int = 1, steps: int = 50) -> Job:
    global _count
    _count += 1
    spec = JobSpec(f"j{_count}", "walk", 60, tuple(range(candidates)), 5.0, steps, "m")
    return Job(spec=spec, artist=artist, request_id=f"r{_count}", peer=b"p")


def _key(spec: JobSpec) -> tuple[int, float]:
    return (spec.steps, spec.guidance)


def test_round_robin_across_artists() -> None:
    scheduler = Scheduler(SchedulerLimits(max_queue=100, max_per_artist=100))
    greedy = [job("greedy") for _ in range(8)]
    for j in greedy:
        scheduler.push(j)
    single = job("single")
    scheduler.push(single)
    assert scheduler.positions()[single.job_id] == 1
    ran = [scheduler.pop_batch(_key, lambda m: 1)[0] for _ in range(9)]
    assert ran[:3] == [greedy[0], single, greedy[1]]
    assert scheduler.pop_batch(_key, lambda m: 1) == []


def test_a_jobs_place_counted_per_artist_is_its_place_in_the_run_order() -> None:
    rng = random.Random(3)
    scheduler = Scheduler(SchedulerLimits(max_queue=1000, max_per_artist=1000))
    outside = job("nobody")
    assert scheduler.position(outside) is None
    for _ in range(300):  # pushes, cancels and batches in a random mix, checked after each
        roll = rng.random()
        if roll < 0.6:
            scheduler.push(job(f"artist{rng.randrange(6)}", candidates=rng.randint(1, 4)))
        elif roll < 0.8 and scheduler.depth:
            scheduler.remove(rng.choice(scheduler.order()))
        else:
            scheduler.pop_batch(_key, lambda m: rng.randint(1, 8))
        order = scheduler.order()
        assert [scheduler.position(j) for j in order] == list(range(len(order)))
        assert scheduler.positions() == {j.job_id: i for i, j in enumerate(order)}
    assert scheduler.position(outside) is None


def test_served_artists_go_to_the_back_of_the_rotation() -> None:
    scheduler = Scheduler(SchedulerLimits(max_queue=100, max_per_artist=100))
    a1, a2, b1, c1 = job("a"), job("a"), job("b"), job("c")
    for j in (a1, a2, b1, c1):
        scheduler.push(j)
    assert scheduler.pop_batch(_key, lambda m: 2) == [a1, b1]
    assert scheduler.order() == [c1, a2]


def test_batches_only_equal_keys_within_the_candidate_limit() -> None:
    scheduler = Scheduler(SchedulerLimits(max_queue=100, max_per_artist=100))
    first, other_steps, fits, too_big, last = (
        job("a", 2), job("b", 1, steps=25), job("c", 3), job("d", 4), job("e", 3),
    )  # fmt: skip
    for j in (first, other_steps, fits, too_big, last):
        scheduler.push(j)
    assert scheduler.pop_batch(_key, lambda m: 8) == [first, fits, last]
    assert scheduler.pop_batch(_key, lambda m: 8) == [other_steps]
    # A job bigger than the limit still runs, alone.
    assert scheduler.pop_batch(_key, lambda m: 2) == [too_big]


def test_admission_limits_and_retry_after_follow_recent_batches() -> None:
    scheduler = Scheduler(SchedulerLimits(max_queue=3, max_per_artist=2), initial_batch_s=1.0)
    for j in (job("a"), job("a")):
        scheduler.push(j)
    with pytest.raises(Busy) as per_artist:
        scheduler.check_admission("a")
    assert per_artist.value.reason == "artist_limit"
    scheduler.push(job("b"))
    with pytest.raises(Busy) as full:
        scheduler.check_admission("c")
    assert full.value.reason == "queue_full"
    assert 4 * 1.0 <= full.value.retry_after_s < 2 * 4 * 1.0  # 4 batches ahead x 1 s, spread
    for _ in range(20):
        scheduler.record_batch(3.0)
    assert scheduler.wait_s(0) == pytest.approx(3.0, rel=0.01)  # follows recent batch times


def test_wait_estimate_counts_batches_ahead_spread_over_workers() -> None:
    scheduler = Scheduler(SchedulerLimits(10, 10, workers=2), initial_batch_s=2.0)
    # Position 0 waits for the batch running now; two workers take two batches at a time.
    assert [scheduler.wait_s(p) for p in range(5)] == [2.0, 2.0, 4.0, 4.0, 6.0]


def test_release_and_remove_free_the_artist_slot() -> None:
    scheduler = Scheduler(SchedulerLimits(max_queue=10, max_per_artist=1))
    queued = job("a")
    scheduler.push(queued)
    assert scheduler.remove(queued) and not scheduler.remove(queued)
    scheduler.release(queued)
    scheduler.check_admission("a")  # free again
    running = job("a")
    scheduler.push(running)
    assert scheduler.pop_batch(_key, lambda m: 8) == [running]
    with pytest.raises(Busy):  # running still counts against the artist
        scheduler.check_admission("a")
    scheduler.release(running)
    scheduler.check_admission("a")


def test_retry_hints_are_spread_over_one_estimate_never_before_it() -> None:
    scheduler = Scheduler(
        SchedulerLimits(max_queue=1, max_per_artist=8), initial_batch_s=1.0, rng=random.Random(7)
    )
    scheduler.push(job("a"))
    hints = []
    for _ in range(200):
        with pytest.raises(Busy) as full:
            scheduler.check_admission("b")
        hints.append(full.value.retry_after_s)
    estimate = scheduler.retry_after_s()
    assert estimate <= min(hints) and max(hints) < 2 * estimate
    # Evenly spread: every tenth of the window gets some of the 200 clients.
    deciles = Counter(int((h / estimate - 1.0) * 10) for h in hints)
    assert set(deciles) == set(range(10))
