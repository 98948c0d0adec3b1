"""Admission, fairness and batching: which queued job runs next. No I/O, no clock of its own.

Jobs wait in one deque per artist; artists take turns (round-robin), so an artist with many
queued jobs delays another artist's single job by at most one batch. A batch starts with the
next job in turn and adds later jobs (still in turn order) whose engine batch key is equal,
while the summed candidates fit the engine's limit. Retry hints in ``busy`` are spread at random
over [estimate, 2 x estimate), so clients refused together do not come back together.
"""

from __future__ import annotations

import math
import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace

from daemon.engine_api import JobSpec
from daemon.jobs import Job
from shared_protocol import Busy


@dataclass(frozen=True)
class SchedulerLimits:
    max_queue: int
    max_per_artist: int
    workers: int = 1


class Scheduler:
    def __init__(
        self,
        limits: SchedulerLimits,
        initial_batch_s: float = 2.0,
        ewma_alpha: float = 0.3,
        rng: random.Random | None = None,
    ) -> None:
        self._limits = limits
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()
        #: Queued plus running jobs per artist (the per-artist limit counts both).
        self._active: Counter[str] = Counter()
        self._batch_s = initial_batch_s
        self._alpha = ewma_alpha
        self._rng = rng or random.Random()

    # --- admission -----------------------------------------------------------------------------

    def check_admission(self, artist: str) -> None:
        """Raise Busy (with a retry-after from recent batch times) if the job cannot queue."""
        if self._active[artist] >= self._limits.max_per_artist:
            raise Busy(
                f"you already have {self._active[artist]} jobs queued or running "
                f"(limit {self._limits.max_per_artist})",
                retry_after_s=self.spread(self._batch_s),
                reason="artist_limit",
            )
        if self.depth >= self._limits.max_queue:
            raise Busy(
                f"the queue is full ({self.depth} jobs)",
                retry_after_s=self.spread(self.retry_after_s()),
                reason="queue_full",
            )

    def retry_after_s(self) -> float:
        """Estimated seconds until a queue slot frees: what a job joining the queue would wait."""
        return self.wait_s(self.depth)

    def spread(self, estimate_s: float) -> float:
        """A retry hint: never before the estimate (a retry then is refused again), and spread
        over one more estimate so that clients refused at the same moment retry apart."""
        return estimate_s * (1.0 + self._rng.random())

    def wait_s(self, position: int) -> float:
        """Estimated seconds until the job at 0-based ``position`` starts.

        Conservative: one batch per job ahead plus the batch running now, spread over the
        workers, each taking the recent batch time (jobs that share a batch make it shorter).
        """
        batches_ahead = math.ceil((position + 1) / self._limits.workers)
        return max(0.1, batches_ahead * self._batch_s)

    def set_workers(self, workers: int) -> None:
        """The backend's capacity changed (a cluster's replicas came or went)."""
        self._limits = replace(self._limits, workers=max(1, workers))

    def record_batch(self, seconds: float) -> None:
        self._batch_s += self._alpha * (seconds - self._batch_s)

    # --- queue ---------------------------------------------------------------------------------

    def push(self, job: Job) -> None:
        self._queues.setdefault(job.artist, deque()).append(job)
        self._active[job.artist] += 1

    def remove(self, job: Job) -> bool:
        """Take a queued job out (cancel); False if it was not queued. Call ``release`` too."""
        queue = self._queues.get(job.artist)
        if queue is None or job not in queue:
            return False
        queue.remove(job)
        if not queue:
            del self._queues[job.artist]
        return True

    def release(self, job: Job) -> None:
        """A job left the system (finished or cancelled): free its per-artist slot."""
        self._active[job.artist] -= 1
        if self._active[job.artist] <= 0:
            del self._active[job.artist]

    @property
    def depth(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def order(self) -> list[Job]:
        """Queued jobs in the order they would run: one per artist per round."""
        return list(self._in_order())

    def _in_order(self) -> Iterator[Job]:
        queues = list(self._queues.values())
        rounds = max((len(q) for q in queues), default=0)
        return (q[i] for i in range(rounds) for q in queues if i < len(q))

    def positions(self) -> dict[str, int]:
        """job_id -> 0-based place in the run order."""
        return {job.job_id: i for i, job in enumerate(self._in_order())}

    def position(self, job: Job) -> int | None:
        """``job``'s 0-based place in the run order, None if it is not queued; counted per
        artist instead of walking the whole queue (each admitted job asks)."""
        own = self._queues.get(job.artist)
        if own is None or job not in own:
            return None
        rounds = own.index(job)  # full rounds before the job's own
        place, before = rounds, True
        for artist, queue in self._queues.items():
            if artist == job.artist:
                before = False
            else:  # an artist before it in the rotation also has a job in its round
                place += min(len(queue), rounds + 1 if before else rounds)
        return place

    def pop_batch(
        self, batch_key: Callable[[JobSpec], Hashable], max_candidates: Callable[[str], int]
    ) -> list[Job]:
        """Remove and return the next batch (empty if nothing is queued)."""
        order = self._in_order()
        first = next(order, None)
        if first is None:
            return []
        key, limit = batch_key(first.spec), max_candidates(first.spec.model)
        batch, total = [first], first.candidates
        for job in order:
            if total >= limit:  # full: the rest of the queue need not be looked at
                break
            if total + job.candidates <= limit and batch_key(job.spec) == key:
                batch.append(job)
                total += job.candidates
        for job in batch:
            queue = self._queues[job.artist]
            queue.remove(job)
            # Served artists go to the back of the rotation, in the order they were served.
            if queue:
                self._queues.move_to_end(job.artist)
            else:
                del self._queues[job.artist]
        return batch
