"""``python -m tests.daemon.bench_scheduler``: what the scheduler costs the daemon's event loop
per admitted job, at growing queue depths: the new job's place counted per artist
(``position``, what ``accepted`` uses) against the place read from the whole run order
(``positions``, its baseline), and taking the next batch (``pop_batch``)."""

from __future__ import annotations

import timeit
from collections.abc import Callable

from daemon.engine_api import JobSpec
from daemon.jobs import Job
from daemon.scheduler import Scheduler, SchedulerLimits

ARTISTS = 50


def per_call_us(function: Callable[[], object], number: int = 500) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def queued(depth: int) -> tuple[Scheduler, Job]:
    """``depth`` one-candidate jobs from ``ARTISTS`` artists in turn, and the last one pushed."""
    scheduler = Scheduler(SchedulerLimits(max_queue=depth, max_per_artist=depth))
    for n in range(depth):
        spec = JobSpec(f"j{n}", "walk", 60, (0,), 5.0, 4, "m")
        job = Job(spec=spec, artist=f"artist{n % ARTISTS}", request_id=f"r{n}", peer=b"p")
        scheduler.push(job)
    return scheduler, job


def row(depth: int) -> str:
    scheduler, last = queued(depth)
    whole = per_call_us(lambda: scheduler.positions()[last.job_id])
    counted = per_call_us(lambda: scheduler.position(last))

    def pop_and_push_back() -> None:
        for job in scheduler.pop_batch(lambda spec: spec.steps, lambda model: 8):
            scheduler.push(job)

    batch = per_call_us(pop_and_push_back)
    return f"{depth:>6} {whole:>15.1f} {counted:>13.1f} {counted / whole:>6.2f} {batch:>10.1f}"


def main() -> None:
    print(f"scheduler cost per call, {ARTISTS} artists, best of 5 (microseconds)")
    print("queued positions()[id] position(job)  ratio  pop_batch")
    for depth in (8, 64, 256, 1024):
        print(row(depth))


if __name__ == "__main__":
    main()
