"""The actor that carries cancellations from the daemon to whichever replica runs the job.

Serve routes each call to a replica of its choosing, so a second call cannot reach the replica
that runs a batch. Instead each replica keeps one long poll open on the board of each daemon it
serves (:class:`BoardWatcher`), for as long as that daemon lives: a cancel wakes every poll at
once and the replica's engine stops at its next sampler step. Batches cost the board nothing:
no call per batch or per job. One board per daemon, on the daemon's own node, found by its name
(``BatchRequest.board``); it dies with the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

#: Boards are named actors of this namespace, whatever the daemon's own namespace.
BOARD_NAMESPACE = "hymotion-cancel-boards"
#: One long poll of a board; renewed for as long as the board lives.
_POLL_S = 30.0

log = logging.getLogger("hymotion.replica")


class CancelBoard:
    """The ids of cancelled jobs whose batch may still run, with a version that changes with
    them. Waiters get the whole set each time: it holds only jobs cancelled while running."""

    def __init__(self) -> None:
        self._cancelled: set[str] = set()
        self._version = 0
        self._changed = asyncio.Event()

    async def cancel(self, job_ids: Sequence[str]) -> None:
        self._cancelled.update(job_ids)
        self._bump()

    async def forget(self, job_ids: Sequence[str]) -> None:
        """The batch is over: its ids need no more room (here or in the replicas' copies)."""
        self._cancelled.difference_update(job_ids)
        self._bump()

    async def watch(self, seen: int, timeout_s: float) -> tuple[int, list[str]]:
        """(version, cancelled ids) once the version differs from ``seen``, or after
        ``timeout_s`` (then the version is ``seen``)."""
        if self._version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self._version, sorted(self._cancelled)

    def _bump(self) -> None:
        # Wake every waiter once; later waits use a fresh event.
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass(frozen=True)
class Board:
    """The daemon's side of its board: the name replicas look it up by, and the handle that
    keeps it alive (a named actor is still collected once no handle is left)."""

    name: str
    actor: ray.actor.ActorHandle


def start_board(timeout_s: float) -> Board:
    """A board on this node (no CPU reserved), owned by this driver, answering once returned
    (a board still starting would delay the first cancels by its process start)."""
    node = ray.get_runtime_context().get_node_id()
    name = f"cancel-board-{uuid.uuid4().hex}"
    board = (
        ray.remote(CancelBoard)
        .options(
            name=name,
            namespace=BOARD_NAMESPACE,
            num_cpus=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        )
        .remote()
    )
    assert isinstance(board, ray.actor.ActorHandle)  # Ray types it as handle | class
    ray.get(board.forget.remote([]), timeout=timeout_s)
    return Board(name, board)


def board_of(name: str) -> ray.actor.ActorHandle:
    """The board named ``name`` (a daemon's, see :func:`start_board`); raises ValueError when
    it is gone."""
    return ray.get_actor(name, namespace=BOARD_NAMESPACE)


class BoardWatcher:
    """A replica's view of one daemon's board: the ids it has cancelled, kept current by one
    long poll at a time. Read from the engine thread (``cancelled`` is replaced, never changed)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cancelled: frozenset[str] = frozenset()
        self.task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        seen = -1  # the first poll answers at once with what the board holds now
        try:
            board = await asyncio.to_thread(board_of, self.name)  # a GCS lookup: blocking
            while True:
                seen, ids = await board.watch.remote(seen, _POLL_S)
                self.cancelled = frozenset(ids)
        except (ValueError, ray.exceptions.ActorDiedError):
            # the daemon owning the board has left; Serve cancels its calls when it notices
            log.info("cancel board %s ended with its daemon", self.name)
        except ray.exceptions.RayError as exc:
            # a daemon still there gets a new watcher with its next batch
            log.warning(
                "cancel board %s unreachable (%s); cancels are not heard until its daemon's "
                "next batch",
                self.name,
                type(exc).__name__,
            )

    @property
    def watching(self) -> bool:
        return not self.task.done()
