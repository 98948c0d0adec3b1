"""The actor that carries cancellations from the daemon to whichever replica runs the job.

Serve routes each call to a replica of its choosing, so a second call cannot reach the replica
that runs a batch. Instead the replica long-polls this board for its batch's job ids while the
batch runs; a cancel wakes the poll at once, and the engine stops at its next sampler step.
One board per daemon, on the daemon's own node; it dies with the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


class CancelBoard:
    def __init__(self) -> None:
        self._cancelled: set[str] = set()
        self._changed = asyncio.Event()

    async def cancel(self, job_ids: Sequence[str]) -> None:
        self._cancelled.update(job_ids)
        # Wake every waiter once; later waits use a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def forget(self, job_ids: Sequence[str]) -> None:
        """The batch is over: its ids need no more room."""
        self._cancelled.difference_update(job_ids)

    async def wait(self, job_ids: Sequence[str], timeout_s: float) -> list[str]:
        """The cancelled ones among ``job_ids``, as soon as there are any; [] on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            hits = [job_id for job_id in job_ids if job_id in self._cancelled]
            left = deadline - loop.time()
            if hits or left <= 0:
                return hits
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return []


def start_board(timeout_s: float) -> ray.actor.ActorHandle:
    """A board on this node (no CPU reserved), owned by this driver, answering once returned
    (a board still starting would delay the first cancels by its process start)."""
    node = ray.get_runtime_context().get_node_id()
    board = (
        ray.remote(CancelBoard)
        .options(
            num_cpus=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        )
        .remote()
    )
    assert isinstance(board, ray.actor.ActorHandle)  # Ray types it as handle | class
    ray.get(board.forget.remote([]), timeout=timeout_s)
    return board
