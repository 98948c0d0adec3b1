"""The Serve deployment: each replica owns one engine on one device, loaded once, kept warm.

``run`` is a streaming method: the engine runs in the replica's one engine thread while the
event loop forwards its progress (coalesced: whatever piled up since the last report goes in
one ``Report``). Cancels come from the daemon's CancelBoard, which the replica watches with one
long poll for as long as that daemon lives (not one per batch). When the daemon gives up on a
batch (Serve cancels the call), the engine stops at its next sampler step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from daemon.engine_api import Engine, JobOutput, JobSpec, ProgressFn, ShouldStop
from shared_protocol import HYMotionError

from .cancel_board import BoardWatcher
from .messages import (
    BatchRequest,
    EngineFailed,
    EngineProfile,
    Finished,
    ReplicaInfo,
    Report,
    StepUpdate,
    WireError,
)


class EngineFactory(Protocol):
    """Builds a replica's engine: ``daemon.engine.factory.create_engine``, or a test engine.
    ``text_source`` is the shared encoder deployment's client (None: the engine's own)."""

    def __call__(
        self, options: Mapping[str, Any], device: str, text_source: TextSource | None = None
    ) -> Engine: ...


#: How long progress waits on the replica for more to send with it (half the 0.1 s at which
#: the daemon forwards a job's steps): a batch faster than this is one streamed report.
_REPORT_HOLD_S = 0.05

if TYPE_CHECKING:
    from daemon.engine.factory import TextSource

log = logging.getLogger("hymotion.replica")


class EngineReplica:
    # async: the engine is built in the engine thread, where a shared encoder deployment's
    # handle may block on its answers (Serve forbids that on the replica's event loop)
    async def __init__(  # type: ignore[misc]
        self,
        engine_options: Mapping[str, Any],
        factory: EngineFactory | None,
        fingerprint: str,
        encoders: DeploymentHandle | None = None,
        encoder_timeouts_s: tuple[float, float] | None = None,
    ) -> None:
        """``encoders``: the shared text-encoder deployment (``text_encoders = "shared"``),
        waited for up to ``encoder_timeouts_s[0]`` at start, each call up to ``[1]`` (both
        given together: ``engine_app`` passes the cluster's ready and encode timeouts)."""
        if factory is None:
            from daemon.engine.factory import create_engine

            factory = create_engine
        # Ray hides every GPU but this replica's: "cuda" is its own device.
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        started = time.monotonic()
        text_source = None
        if encoders is not None:
            from .text_replica import SharedEncoders

            assert encoder_timeouts_s is not None, "shared encoders come with their timeouts"
            text_source = SharedEncoders(encoders, *encoder_timeouts_s)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._engine = await asyncio.get_running_loop().run_in_executor(
            self._executor, factory, dict(engine_options), device, text_source
        )
        self._fingerprint = fingerprint
        #: One per daemon this replica serves, by the name of its CancelBoard.
        self._boards: dict[str, BoardWatcher] = {}
        self._info = ReplicaInfo(
            replica=serve.get_replica_context().replica_id.unique_id,
            node=ray.util.get_node_ip_address(),
            pid=os.getpid(),
            device=device,
        )
        log.info(
            "replica %s on node %s (pid %d, %s) loaded in %.1f s",
            self._info.replica,
            self._info.node,
            self._info.pid,
            device,
            time.monotonic() - started,
        )

    def describe(self) -> EngineProfile:
        engine = self._engine
        models = tuple(engine.models())
        return EngineProfile(
            models=models,
            default_model=engine.default_model(),
            skeleton=engine.skeleton(),
            max_batch_candidates={m.name: engine.max_batch_candidates(m.name) for m in models},
            fingerprint=self._fingerprint,
            replica=self._info,
        )

    async def run(self, request: BatchRequest) -> AsyncIterator[Report]:
        loop = asyncio.get_running_loop()
        pending: list[StepUpdate] = []
        arrived = asyncio.Event()
        board = self._board(request.board)
        give_up = threading.Event()

        def progress(job_id: str, stage: str, step: int, total: int) -> None:
            loop.call_soon_threadsafe(_push, pending, arrived, (job_id, stage, step, total))

        def should_stop(job_id: str) -> bool:
            return give_up.is_set() or job_id in board.cancelled

        started = time.monotonic()
        work = loop.run_in_executor(
            self._executor, _run_groups, self._engine, request.jobs, progress, should_stop
        )
        try:
            while not work.done():
                waiter = asyncio.ensure_future(arrived.wait())
                either: set[asyncio.Future[Any]] = {waiter, work}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if pending and not work.done():
                    # Let the next steps, or the batch's end, join this report: each streamed
                    # item is a Ray round trip, and the daemon forwards a job's steps to its
                    # client at most every 0.1 s anyway.
                    await asyncio.wait({work}, timeout=_REPORT_HOLD_S)
                    if not work.done():
                        yield Report(self._info, _drain(pending, arrived))
            yield Report(self._info, _drain(pending, arrived), self._outcome(work, started))
        finally:
            # Also reached when the daemon cancels the call: stop computing at the next step.
            give_up.set()

    def _board(self, name: str) -> BoardWatcher:
        """The watcher of the daemon's board ``name``, started on its first batch (or again
        after it lost the board)."""
        watcher = self._boards.get(name)
        if watcher is None or not watcher.watching:
            for gone in [n for n, w in self._boards.items() if not w.watching]:
                del self._boards[gone]  # daemons that have left
            watcher = self._boards[name] = BoardWatcher(name)
        return watcher

    def _outcome(
        self, work: asyncio.Future[list[JobOutput | HYMotionError]], started: float
    ) -> Finished | EngineFailed:
        try:
            outcomes = work.result()
        except Exception as exc:  # the engine's failure, not the replica's
            log.exception("engine failed on a batch")
            return EngineFailed(f"{type(exc).__name__}: {exc}")
        return Finished(
            outcomes=tuple(o if isinstance(o, JobOutput) else WireError.of(o) for o in outcomes),
            seconds=time.monotonic() - started,
            device_memory_bytes=_device_memory(self._info.device),
            rss_bytes=_rss_bytes(),
        )


def _push(pending: list[StepUpdate], arrived: asyncio.Event, update: StepUpdate) -> None:
    pending.append(update)
    arrived.set()


def _drain(pending: list[StepUpdate], arrived: asyncio.Event) -> tuple[StepUpdate, ...]:
    """The updates that piled up, keeping only the newest step of each job and stage."""
    latest: dict[tuple[str, str], StepUpdate] = {}
    for update in pending:
        latest.pop((update[0], update[1]), None)  # re-insert: keep arrival order of the newest
        latest[(update[0], update[1])] = update
    pending.clear()
    arrived.clear()
    return tuple(latest.values())


def _run_groups(
    engine: Engine,
    jobs: Sequence[JobSpec],
    progress: ProgressFn,
    should_stop: ShouldStop,
) -> list[JobOutput | HYMotionError]:
    """Run the daemon's batch as the engine's own batch keys allow; one outcome per job.

    The daemon batches by model and step count; an engine whose key is finer (guidance, say)
    gets one call per group. Jobs the engine cannot admit (memory) get their typed error.
    """
    outcomes: dict[str, JobOutput | HYMotionError] = {}
    groups: dict[Hashable, list[JobSpec]] = {}
    for job in jobs:
        try:
            engine.check_admissible(job)
        except HYMotionError as exc:
            outcomes[job.job_id] = exc
            continue
        groups.setdefault(engine.batch_key(job), []).append(job)
    for group in groups.values():
        try:
            results = engine.run_batch(group, progress, should_stop)
        except HYMotionError as exc:  # typed and meant for the artist (a lost encoder replica)
            outcomes.update((job.job_id, exc) for job in group)
            continue
        if len(results) != len(group):
            raise RuntimeError(f"engine returned {len(results)} outcomes for {len(group)}")
        outcomes.update((job.job_id, result) for job, result in zip(group, results, strict=True))
    return [outcomes[job.job_id] for job in jobs]


def _device_memory(device: str) -> float:
    torch = sys.modules.get("torch")
    if device != "cuda" or torch is None or not torch.cuda.is_available():
        return 0.0
    return float(torch.cuda.memory_allocated())


def _rss_bytes() -> float:
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as statm:
        return float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
