"""One dispatch slot per replica there may be: takes a batch, runs it on the cluster, reports.

A slot sends its batch as one streaming call; Serve hands it to a free replica (each replica
takes one batch at a time), or holds it until one is free. Progress reports go to the lifecycle
as they arrive; cancels go to the CancelBoard as soon as the lifecycle sets them.

Faults: a replica that dies (its process, or its node) or stays silent for ``step_timeout_s``
loses its batch; the batch is sent once more and Serve picks a live replica. A second loss
answers each job with ``model_unavailable`` (reason ``replica_lost``). While the cluster itself
is unreachable, batches are answered at once with ``model_unavailable`` (reason
``cluster_unavailable``) instead of being sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.serve.handle import DeploymentResponseGenerator

from daemon.engine_api import JobOutput
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle
from daemon.logs import EventLog
from daemon.workers import BatchLoop
from shared_protocol import HYMotionError, JobCancelled, ModelUnavailable

from .cancel_board import Board
from .engine_calls import EngineCalls
from .engine_view import ClusterEngine
from .messages import (
    BatchRequest,
    EngineFailed,
    Finished,
    ReplicaInfo,
    Report,
    WireError,
)
from .metrics import ClusterMetrics

#: How often a waiting slot looks for new cancels and for a cluster outage: a cancel reaches
#: the replica within about this plus one Ray call, well inside one sampler step on a GPU.
_POLL_S = 0.005
#: A batch lost on its replica is sent this many times in all.
ATTEMPTS = 2


@dataclass
class SlotContext:
    """What every slot shares: the deployment, the board, the policy. ``board`` is replaced
    when the daemon rejoins a cluster that came back after an outage."""

    calls: EngineCalls
    board: Board
    engine: ClusterEngine
    #: Why the cluster cannot take work now (None while it can).
    down: Callable[[], str | None]
    step_timeout_s: float
    #: The first event may wait for a free or starting replica this long.
    ready_timeout_s: float
    batch_window_s: float


class ReplicaLost(Exception):
    def __init__(self, reason: str, replica: ReplicaInfo | None, kind: str) -> None:
        super().__init__(reason)
        self.reason, self.replica, self.kind = reason, replica, kind


class ClusterGone(Exception):
    """The whole cluster became unreachable while the batch ran."""


class EngineCrashed(Exception):
    """The engine raised on its replica: like a local engine crash, the batch fails."""


class DispatchSlot(BatchLoop):
    def __init__(
        self,
        index: int,
        context: SlotContext,
        lifecycle: JobLifecycle,
        log: EventLog,
        metrics: ClusterMetrics,
    ) -> None:
        super().__init__(context.engine, lifecycle, context.batch_window_s)
        self.index = index
        self._ctx = context
        self._log = log
        self._metrics = metrics
        #: Jobs of the current batch whose cancel went to the board.
        self._told: set[str] = set()

    async def _run(self, batch: list[Job]) -> None:
        try:
            # An engine that raises (EngineCrashed) gets the batch split, as on local devices.
            await self._lifecycle.run_isolated(self._ctx.engine, batch, self._outcomes)
        finally:
            if self._told:  # the board keeps only cancelled ids
                self._ctx.board.actor.forget.remote(sorted(self._told))
                self._told.clear()

    async def _outcomes(self, batch: Sequence[Job]) -> list[JobOutput | HYMotionError]:
        """One outcome per job: the replica's, or a typed error saying why there is none."""
        for attempt in range(1, ATTEMPTS + 1):
            down = self._ctx.down()
            if down is not None:
                return [_cluster_unavailable(down) for _ in batch]
            try:
                return await self._attempt(batch)
            except ClusterGone as exc:
                return [_cluster_unavailable(str(exc)) for _ in batch]
            except ReplicaLost as lost:
                self._metrics.failed(lost.replica, lost.kind)
                rerun = attempt < ATTEMPTS and not all(j.cancel_event.is_set() for j in batch)
                where = lost.replica
                self._log.warning(
                    "replica_lost",
                    replica=where.replica if where else None,
                    node=where.node if where else None,
                    pid=where.pid if where else None,
                    reason=lost.reason,
                    jobs=[job.job_id for job in batch],
                    attempt=attempt,
                    rerun=rerun,
                )
                if not rerun:
                    return [
                        JobCancelled(f"job {job.job_id} was cancelled", job_id=job.job_id)
                        if job.cancel_event.is_set()
                        else _replica_lost(lost)
                        for job in batch
                    ]
        raise AssertionError("unreachable: the last attempt returns")

    async def _attempt(self, batch: Sequence[Job]) -> list[JobOutput | HYMotionError]:
        request = BatchRequest(tuple(job.spec for job in batch), self._ctx.board.name)
        stream = self._ctx.calls.streaming().run.remote(request)
        assert isinstance(stream, DeploymentResponseGenerator)  # what stream=True returns
        reports: AsyncIterator[Report] = stream.__aiter__()
        replica: ReplicaInfo | None = None
        timeout_s = self._ctx.ready_timeout_s
        try:
            while True:
                report = await self._next(reports, batch, timeout_s, replica)
                if replica is None:
                    replica, timeout_s = report.replica, self._ctx.step_timeout_s
                    self._metrics.started(replica)
                    self._log.debug(
                        "batch_dispatched",
                        replica=replica.replica,
                        node=replica.node,
                        pid=replica.pid,
                        jobs=[job.job_id for job in batch],
                    )
                for update in report.updates:
                    self._lifecycle.on_progress(*update)
                if isinstance(report.outcome, EngineFailed):
                    self._metrics.failed(replica, "engine")
                    raise EngineCrashed(f"on replica {replica}: {report.outcome.error}")
                if isinstance(report.outcome, Finished):
                    self._metrics.finished(replica, len(batch), report.outcome)
                    self._log.info(
                        "batch_ran",
                        replica=replica.replica,
                        node=replica.node,
                        jobs=[job.job_id for job in batch],
                        seconds=round(report.outcome.seconds, 4),
                    )
                    return [_outcome(o) for o in report.outcome.outcomes]
        except (ReplicaLost, ClusterGone):
            stream.cancel()  # a silent replica stops computing at its next step
            raise

    async def _next(
        self,
        reports: AsyncIterator[Report],
        batch: Sequence[Job],
        timeout_s: float,
        replica: ReplicaInfo | None,
    ) -> Report:
        """The next report, forwarding cancels while waiting; typed failures otherwise."""
        pending = asyncio.ensure_future(reports.__anext__())
        # Given up on (cancelled, or failing after stream.cancel()): nothing is lost unread.
        pending.add_done_callback(_consume)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                self._forward_cancels(batch)
                done, _ = await asyncio.wait({pending}, timeout=_POLL_S)
                if done:
                    return pending.result()
                down = self._ctx.down()
                if down is not None:
                    raise ClusterGone(down)
                if time.monotonic() > deadline:
                    what = "no replica took the batch" if replica is None else "no progress"
                    raise ReplicaLost(f"{what} within {timeout_s:g} s", replica, "timeout")
        except StopAsyncIteration:
            raise ReplicaLost(
                "the replica ended the call without a result", replica, "lost"
            ) from None
        except ray.exceptions.RayTaskError as exc:  # our replica code raised: a bug, not a death
            raise EngineCrashed(f"on replica {replica}: {exc}") from exc
        except ray.exceptions.RayError as exc:
            raise ReplicaLost(first_line(exc), replica, "lost") from exc
        finally:
            if not pending.done():
                pending.cancel()

    def _forward_cancels(self, batch: Sequence[Job]) -> None:
        fresh = [j.job_id for j in batch if j.cancel_event.is_set() and j.job_id not in self._told]
        if fresh:
            self._told.update(fresh)
            self._ctx.board.actor.cancel.remote(fresh)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _outcome(outcome: JobOutput | WireError) -> JobOutput | HYMotionError:
    return outcome.exception() if isinstance(outcome, WireError) else outcome


def first_line(exc: BaseException) -> str:
    """An exception in one line: Ray's messages run to dozens."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _cluster_unavailable(why: str) -> HYMotionError:
    return ModelUnavailable(
        f"the Ray cluster is unreachable ({why}); the job did not run to the end. Resubmit it "
        "once the daemon accepts jobs again",
        reason="cluster_unavailable",
    )


def _replica_lost(lost: ReplicaLost) -> HYMotionError:
    where = (
        f"replica {lost.replica.replica} on {lost.replica.node}" if lost.replica else "no replica"
    )
    return ModelUnavailable(
        f"the engine replica running this job was lost twice (last: {where}, {lost.reason}); "
        "resubmit it, or ask the operator to check the Ray cluster",
        reason="replica_lost",
    )
