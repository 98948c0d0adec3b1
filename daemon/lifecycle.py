"""A job's life once admitted: queued, on a device, finished or cancelled. No sockets, no threads.

The request handlers (``service.py``) hand admitted jobs to :meth:`JobLifecycle.enqueue`; device
workers (``workers.py``) take batches and report progress and outcomes back; the transport
(``server.py``) reports connections that vanished. Every message to a client leaves through the
``Outbox``. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from daemon.config import DaemonConfig
from daemon.engine_api import DeviceFailure, EngineDescription, JobOutput
from daemon.jobs import Job, JobState, JobTable
from daemon.logs import EventLog, elapsed, new_log_id
from daemon.metrics import Metrics
from daemon.quotas import QuotaBook
from daemon.scheduler import Scheduler, SchedulerLimits
from shared_protocol import (
    FPS,
    Accepted,
    Cancelled,
    DeviceInfo,
    Error,
    HYMotionError,
    InternalError,
    JobCancelled,
    Message,
    ModelInfo,
    ModelUnavailable,
    Progress,
    ProtocolError,
    Result,
)

#: Progress messages per job are throttled to this interval (stage changes always go out).
_PROGRESS_INTERVAL_S = 0.1
#: Waiting clients hear of a changed queue position in one pass over the queue at most this
#: often, however fast jobs come and go (50 clients never get a message per queue change).
QUEUE_UPDATE_INTERVAL_S = 0.25
#: The engine stages measured per job (``JobOutput.timings``); other keys stay out of metrics.
ENGINE_STAGES = ("encode", "sample", "decode")


#: Runs jobs on an engine backend (a local device, a remote replica) and returns one outcome
#: per job, in order; raising means the whole call failed.
EngineCall = Callable[[Sequence[Job]], Awaitable[Sequence[JobOutput | HYMotionError]]]


class Outbox(Protocol):
    def send(self, peer: bytes, message: Message, re: str | None) -> None: ...


def internal_error(what: str, log_id: str) -> Error:
    """The reply for a failure that is the daemon's fault; ``log_id`` finds it in the log."""
    return Error.from_exception(InternalError(f"{what} (log id {log_id})", log_id=log_id))


class JobLifecycle:
    def __init__(
        self,
        config: DaemonConfig,
        models: Mapping[str, ModelInfo],
        outbox: Outbox,
        log: EventLog,
        metrics: Metrics,
        wake_workers: Callable[[], None],
        workers: int,
    ) -> None:
        self._retention_s = config.result_retention_s
        self._reconnect_grace_s = config.reconnect_grace_s
        #: Every model the engines know, by name (the same on every device).
        self.models = models
        #: Every device's state; ``daemon.device_health`` keeps it and ``models`` current.
        self.devices: tuple[DeviceInfo, ...] = ()
        self._outbox = outbox
        self._log = log
        self._metrics = metrics
        self._wake_workers = wake_workers
        self.jobs = JobTable()
        self.scheduler = Scheduler(
            SchedulerLimits(config.max_queue, config.max_per_artist, workers=workers)
        )
        self.quotas = QuotaBook(
            config.quota_for,
            config.state_path / "usage.json",
            call_later=lambda delay, save: asyncio.get_running_loop().call_later(delay, save),
            on_unsaved=lambda error: log.error("quota_usage_unsaved", error=error),
        )
        self.shutting_down = False
        self._queue_update: asyncio.TimerHandle | None = None

    # --- queue ---------------------------------------------------------------------------------

    def enqueue(self, job: Job, re: str) -> None:
        """Queue an admitted job, charge it to its artist, tell the client and the workers."""
        self.jobs.add(job)
        self.scheduler.push(job)
        self.quotas.charge_job(job.artist)
        position = self.scheduler.position(job)
        assert position is not None  # pushed just now
        self._queue_changed()
        self._log.info(
            "job_queued",
            **job.log_fields,
            candidates=job.candidates,
            frames=job.spec.total_frames,
            steps=job.spec.steps,
            model=job.spec.model,
            queue_position=position,
        )
        self._outbox.send(job.peer, Accepted(job_id=job.job_id, queue_position=position), re)
        self._wake_workers()

    def reattach(self, job: Job, peer: bytes, re: str, why: str) -> None:
        """The job's own client, on a new connection, takes its stream: never run it twice;
        send what it missed. Later job messages go to ``peer`` and answer ``re``."""
        self._log.info("job_reattached", **job.log_fields, reason=why, state=job.state.value)
        if job.final is not None:
            self._outbox.send(peer, job.final, re)
            return
        job.observers.pop(peer, None)
        job.peer, job.reply_to, job.orphaned = peer, re, False
        job.told_position = None  # the new connection has not heard an estimate yet
        self._outbox.send(peer, self._accepted_again(job), re)

    def fetch(self, job: Job, peer: bytes, re: str, artist: str) -> None:
        """``fetch`` never takes a job's stream from a live connection.

        Finished: the kept answer. Unfinished: the fetching connection gets its own copy of
        the job's messages, answering ``re``; only when the job's connection is gone does its
        own artist's fetch re-attach the job instead (and keep it from being cancelled).
        """
        if job.final is not None:
            self._outbox.send(peer, job.final, re)
        elif job.orphaned and artist == job.artist:
            self.reattach(job, peer, re, "fetch")
        else:
            job.observers[peer] = (re, artist)
            self._log.info("job_observed", **job.log_fields, observer=artist)
            self._outbox.send(peer, self._accepted_again(job), re)

    def _accepted_again(self, job: Job) -> Accepted:
        position = self.scheduler.position(job) or 0  # 0 for a running job too
        return Accepted(job_id=job.job_id, queue_position=position, duplicate=True)

    def _send_job(self, job: Job, message: Message) -> None:
        """A job message to the job's connection (unless it is gone) and to its observers."""
        if not job.orphaned:
            self._outbox.send(job.peer, message, job.reply_to)
        for peer, (re, _) in list(job.observers.items()):
            self._outbox.send(peer, message, re)

    def cancel(self, job: Job, reason: str) -> Cancelled:
        """Stop an unfinished job. Queued: cancelled now. Running: stops at the engine's next
        step. Returns what the requester is told: a job already being stopped keeps the reason
        it was first stopped for, and the reply says so (``already_stopping``)."""
        if job.cancel_reason:
            return self._cancelled(job, already_stopping=True)
        job.cancel_reason = reason
        if job.state is JobState.QUEUED and self.scheduler.remove(job):
            self._finish(job, JobState.CANCELLED, self._cancelled(job))
            self._queue_changed()
        else:
            job.cancel_event.set()
            self._log.info("job_cancel_requested", **job.log_fields, reason=reason)
        return self._cancelled(job)

    @staticmethod
    def _cancelled(job: Job, already_stopping: bool = False) -> Cancelled:
        """A cancelled job as clients hear of it: only one the daemon's stop cut short is worth
        resubmitting (``retry``)."""
        reason = job.cancel_reason or "cancelled"
        return Cancelled(job.job_id, reason, reason == "shutdown", already_stopping)

    def peer_gone(self, peer: bytes) -> None:
        """The connection vanished: closed, dropped by libzmq, or silent for 3 ZMTP heartbeats.

        Noticed as EHOSTUNREACH at the next send to it (progress while a job runs, a queue
        update while it waits). A connection of the same artist that observes a job takes it
        over; otherwise the job keeps its place for ``reconnect_grace_s`` so its artist can
        re-attach (resubmit or fetch), and is cancelled as ``disconnected`` after that.
        """
        for job in self.jobs.observed_by(peer):
            job.observers.pop(peer, None)
        orphans = []
        for job in self.jobs.on_peer(peer):
            if job.orphaned:  # every failed send reports the peer again
                continue
            heir = next((p for p, (_, a) in job.observers.items() if a == job.artist), None)
            if heir is not None:
                re, _ = job.observers.pop(heir)
                self.reattach(job, heir, re, "observer_took_over")
                continue
            job.orphaned = True
            orphans.append(job)
            grace_s = self._reconnect_grace_s
            self._log.info("job_orphaned", **job.log_fields, state=job.state.value, grace_s=grace_s)
        if orphans:
            loop = asyncio.get_running_loop()
            loop.call_later(self._reconnect_grace_s, self._cancel_orphans, peer, orphans)

    def _cancel_orphans(self, peer: bytes, jobs: list[Job]) -> None:
        for job in jobs:
            # Not re-attached from a new connection meanwhile, and not already being stopped.
            if (
                job.orphaned
                and job.peer == peer
                and not job.state.finished
                and not job.cancel_reason
            ):
                self._log.info("client_gone", **job.log_fields, state=job.state.value)
                self.cancel(job, "disconnected")

    def _queue_changed(self) -> None:
        """Positions may have moved: schedule one pass that tells waiting clients."""
        self._metrics.queue_depth.set(self.scheduler.depth)
        if self._queue_update is None and not self.shutting_down:
            loop = asyncio.get_running_loop()
            self._queue_update = loop.call_later(QUEUE_UPDATE_INTERVAL_S, self._tell_positions)

    def _tell_positions(self) -> None:
        """Each queued job whose place changed since it was last told hears the new one."""
        self._queue_update = None
        for position, job in enumerate(self.scheduler.order()):
            if position == job.told_position:
                continue
            job.told_position = position
            wait = round(self.scheduler.wait_s(position), 1)
            progress = Progress(job.job_id, "queued", eta_s=wait, queue_position=position)
            self._send_job(job, progress)

    # --- on a device ---------------------------------------------------------------------------

    def take_batch(self, engine: EngineDescription) -> list[Job]:
        """The next batch for ``engine`` (empty when nothing is queued), marked running."""
        batch = self.scheduler.pop_batch(engine.batch_key, engine.max_batch_candidates)
        now = time.monotonic()
        for job in batch:
            job.state, job.started_mono = JobState.RUNNING, now
            self._metrics.stage_seconds.labels(stage="queue").observe(now - job.queued_mono)
        if batch:
            self._queue_changed()
            self._metrics.running.inc(len(batch))
            self._metrics.batch_size.observe(len(batch))
        return batch

    def on_progress(
        self, job_id: str, stage: str, step: int, total: int, reported: float | None = None
    ) -> None:
        """A stage or step of a running job; ``reported`` is when the engine reported it
        (``time.monotonic()``; default: now)."""
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.RUNNING:
            return
        now = time.monotonic() if reported is None else reported
        if stage != job.stage:
            job.stage, job.stage_seen_mono, job.stage_first_step = stage, now, step
        elif now - job.last_progress_mono < _PROGRESS_INTERVAL_S and step < total:
            return
        job.last_progress_mono = now
        eta = None
        if job.stage_first_step < step <= total:
            pace = (now - job.stage_seen_mono) / (step - job.stage_first_step)
            eta = round(pace * (total - step), 3)
        progress = Progress(job_id=job_id, stage=stage, step=step, total=total, eta_s=eta)
        self._send_job(job, progress)

    def finish_batch(
        self,
        engine: EngineDescription,
        batch: list[Job],
        outcomes: Sequence[JobOutput | HYMotionError],
        seconds: float,
    ) -> None:
        self.scheduler.record_batch(seconds)
        self._metrics.running.dec(len(batch))
        total_candidates = sum(j.candidates for j in batch)
        for job, outcome in zip(batch, outcomes, strict=True):
            self.quotas.charge_gpu(job.artist, seconds * job.candidates / total_candidates)
            if isinstance(outcome, JobCancelled):
                self._finish(job, JobState.CANCELLED, self._cancelled(job))
            elif isinstance(outcome, HYMotionError):
                self._finish(job, JobState.FAILED, Error.from_exception(outcome))
            else:
                self._finish(job, *self._result(engine, job, outcome))

    async def run_isolated(
        self, engine: EngineDescription, batch: list[Job], call: EngineCall
    ) -> None:
        """Run ``batch`` through ``call`` so that one job's failure never fails its neighbours.

        Every engine backend runs its batches through here. When the call raises (a prompt the
        text encoder chokes on, a job that breaks the model), the batch is split in halves and
        each half is run again, down to single jobs: only a job that fails on its own gets an
        error; every other job gets its own outcome. Each job is answered exactly once, except
        that a ``DeviceFailure`` is not split but raised to the backend, with the jobs not yet
        answered still unfinished.
        """
        started = time.monotonic()
        try:
            outcomes = list(await call(batch))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"engine returned {len(outcomes)} outcomes for {len(batch)}")
        except DeviceFailure:
            raise  # the device, not a job: splitting cannot help; the backend takes it out
        except Exception as exc:
            seconds = time.monotonic() - started
            if len(batch) == 1:
                self.fail_batch(batch, exc, seconds)
                return
            self._log.warning(
                "batch_split",
                jobs=[j.job_id for j in batch],
                artists=sorted({j.artist for j in batch}),
                seconds=round(seconds, 4),
                error=repr(exc),
            )
            half = len(batch) // 2
            await self.run_isolated(engine, batch[:half], call)
            await self.run_isolated(engine, batch[half:], call)
            return
        self.finish_batch(engine, batch, outcomes, time.monotonic() - started)

    def fail_batch(self, batch: list[Job], exc: BaseException, seconds: float) -> None:
        """The engine raised: every job of the batch gets an internal error with a log id.

        Backends call :meth:`run_isolated`, which comes here only for a single job."""
        log_id = new_log_id()
        self._log.error(
            "batch_failed",
            exc=True,
            log_id=log_id,
            jobs=[j.job_id for j in batch],
            artists=sorted({j.artist for j in batch}),
            seconds=round(seconds, 4),
            error=repr(exc),
        )
        self.scheduler.record_batch(seconds)
        self._metrics.running.dec(len(batch))
        error = internal_error("the engine failed", log_id)
        for job in batch:
            self._finish(job, JobState.FAILED, error)

    def fail_jobs(self, jobs: Sequence[Job], error: HYMotionError) -> None:
        """Jobs that cannot run (their device failed), running or queued: each gets ``error``."""
        for job in jobs:
            if job.state is JobState.RUNNING:
                self._metrics.running.dec()
            else:
                self.scheduler.remove(job)
            self._finish(job, JobState.FAILED, Error.from_exception(error))
        self._queue_changed()

    def _result(
        self, engine: EngineDescription, job: Job, out: JobOutput
    ) -> tuple[JobState, Message]:
        info = self.models.get(job.spec.model)
        if info is None:  # the cluster came back offering other models while this job ran
            error = ModelUnavailable(
                f"model {job.spec.model!r} is no longer offered (the cluster changed while this "
                "job ran); resubmit with one of the models welcome lists"
            )
            return JobState.FAILED, Error.from_exception(error)
        timings = {k: round(v, 4) for k, v in out.timings.items()}
        timings["queue"] = job.queue_s or 0.0  # a job with an output has left the queue
        timings["total"] = elapsed(job.queued_mono)
        try:
            result = Result(
                job_id=job.job_id,
                model=job.spec.model,
                model_label=info.label,
                untrained=info.untrained,
                prompt=job.spec.prompt,
                frames=job.spec.total_frames,  # a timeline's joined clip
                fps=FPS,
                seeds=job.spec.seeds,
                guidance=job.spec.guidance,
                steps=job.spec.steps,
                skeleton=engine.skeleton(),
                rotations=out.rotations,
                root_positions=out.root_positions,
                joint_positions=out.joint_positions,
                warnings=out.warnings,
                prompt_truncated=out.prompt_truncated,
                timings=timings,
            )
        except ProtocolError as exc:  # the engine broke the data contract: a bug, not the user
            log_id = new_log_id()
            self._log.error("bad_engine_output", **job.log_fields, log_id=log_id, error=exc.message)
            return JobState.FAILED, internal_error("the engine produced invalid motion", log_id)
        for stage in ENGINE_STAGES:  # "queue" was observed when the job left the queue
            if stage in timings:
                self._metrics.stage_seconds.labels(stage=stage).observe(timings[stage])
        self._metrics.job_latency.observe(timings["total"])
        return JobState.DONE, result

    def _finish(self, job: Job, state: JobState, final: Message) -> None:
        job.state, job.final, job.stage = state, final, state.value
        self.scheduler.release(job)
        outcome = {JobState.DONE: "ok", JobState.FAILED: "error"}.get(state, "cancelled")
        self._metrics.jobs.labels(outcome=outcome).inc()
        self._log.info(
            "job_finished",
            **job.log_fields,
            outcome=outcome,
            reason=job.cancel_reason or None,
            code=final.code if isinstance(final, Error) else None,
            queue_s=job.queue_s,
            run_s=elapsed(job.started_mono) if job.started_mono is not None else None,
            total_s=elapsed(job.queued_mono),
        )
        # Keep it for fetch and resubmission, then forget it.
        asyncio.get_running_loop().call_later(self._retention_s, self.jobs.drop, job)
        # Last: whoever reads the answer sees the metrics and log that go with it.
        self._send_job(job, final)
        job.observers.clear()

    # --- shutdown ------------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Stop admitting; queued jobs are told to come back later."""
        self.shutting_down = True
        if self._queue_update is not None:
            self._queue_update.cancel()
            self._queue_update = None
        for job in self.scheduler.order():
            self.cancel(job, "shutdown")

    def cancel_running(self) -> None:
        """The grace period is over: whatever still runs stops at its next sampler step."""
        for job in self.jobs.unfinished():
            self.cancel(job, "shutdown")
