"""What the daemon does with each request and each job event; no sockets and no threads here.

The transport (``server.py``) hands every decoded request to :meth:`Service.handle` and sends
what the service asks through an ``Outbox``; workers (``workers.py``) take batches and report
progress and outcomes back. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from daemon import __version__
from daemon.config import DaemonConfig
from daemon.engine_api import Engine, JobOutput, JobSpec
from daemon.jobs import Job, JobState, JobTable
from daemon.logs import EventLog
from daemon.metrics import Metrics
from daemon.quotas import QuotaBook
from daemon.scheduler import Scheduler, SchedulerLimits
from shared_protocol import (
    FPS,
    PROTOCOL_VERSION,
    Accepted,
    Busy,
    Cancel,
    Cancelled,
    Envelope,
    Error,
    Fetch,
    Generate,
    Hello,
    HYMotionError,
    InternalError,
    InvalidArgument,
    JobCancelled,
    Limits,
    Message,
    ModelInfo,
    ModelUnavailable,
    NotFound,
    Ping,
    Pong,
    Progress,
    ProtocolError,
    QuotaExceeded,
    Result,
    Status,
    StatusRequest,
    Welcome,
    new_id,
    parse_request,
)
from shared_protocol.keys import ARTIST_NAME

CAPABILITIES = ("progress", "cancel", "fetch", "resubmit", "status", "batching", "quotas")
_MAX_PEERS = 4096
#: A vanished connection's jobs wait this long for their client to reconnect and resubmit
#: (a Lazy Pirate client reopens its socket in milliseconds) before they are cancelled.
ORPHAN_GRACE_S = 0.25
#: Progress messages per job are throttled to this interval (stage changes always go out).
_PROGRESS_INTERVAL_S = 0.1
#: Waiting clients hear of a changed queue position in one pass over the queue at most this
#: often, however fast jobs come and go (50 clients never get a message per queue change).
QUEUE_UPDATE_INTERVAL_S = 0.25


class Outbox(Protocol):
    def send(self, peer: bytes, message: Message, re: str | None) -> None: ...


@dataclass(frozen=True)
class Peer:
    artist: str
    admin: bool


class Service:
    def __init__(
        self,
        config: DaemonConfig,
        engines: Sequence[Engine],
        outbox: Outbox,
        log: EventLog,
        metrics: Metrics,
        wake_workers: Callable[[], None],
    ) -> None:
        self._config = config
        self._engine = engines[0]  # every device runs the same models; any one describes them
        self._outbox = outbox
        self._log = log
        self._metrics = metrics
        self._wake_workers = wake_workers
        self.session = new_id()
        self.started = time.monotonic()
        self.jobs = JobTable()
        self.scheduler = Scheduler(
            SchedulerLimits(config.max_queue, config.max_per_artist, workers=len(engines))
        )
        self.quotas = QuotaBook(config.quota_for, config.state_path / "usage.json")
        self.limits = Limits(max_candidates=config.max_candidates)
        self.shutting_down = False
        self._peers: OrderedDict[bytes, Peer] = OrderedDict()
        self._models = {m.name: m for m in self._engine.models()}
        self._queue_update: asyncio.TimerHandle | None = None

    # --- requests ------------------------------------------------------------------------------

    def handle(self, peer: bytes, user_id: str | None, envelope: Envelope) -> None:
        """Answer one decoded request; any failure becomes a typed error reply."""
        try:
            message = parse_request(envelope)
            self._metrics.requests.labels(type=envelope.type).inc()
            self._dispatch(peer, user_id, envelope, message)
        except HYMotionError as exc:
            self._outbox.send(peer, Error.from_exception(exc), envelope.id)
        except Exception:
            log_id = new_id()[:12]
            self._log.error(
                "internal_error",
                exc=True,
                log_id=log_id,
                request_id=envelope.id,
                type=envelope.type,
            )
            error = InternalError(
                f"the daemon failed on this request (log id {log_id})", log_id=log_id
            )
            self._outbox.send(peer, Error.from_exception(error), envelope.id)

    def _dispatch(self, peer: bytes, user_id: str | None, env: Envelope, msg: Message) -> None:
        if isinstance(msg, Ping):
            self._outbox.send(peer, self._pong(), env.id)
        elif isinstance(msg, Hello):
            self._hello(peer, user_id, env, msg)
        else:
            who = self._identify(peer, user_id)
            if isinstance(msg, Generate):
                self._generate(peer, who, env, msg)
            elif isinstance(msg, Cancel):
                self._cancel(peer, who, env, msg)
            elif isinstance(msg, Fetch):
                self._fetch(peer, who, env, msg)
            elif isinstance(msg, StatusRequest):
                self._outbox.send(peer, self._status(who), env.id)

    def _identify(self, peer: bytes, user_id: str | None) -> Peer:
        known = self._peers.get(peer)
        if known is not None:
            self._peers.move_to_end(peer)
            return known
        if user_id is not None:  # CURVE: the key decided who this is
            return self._remember(peer, user_id)
        raise ProtocolError("send hello first: this connection has not said who it is")

    def _remember(self, peer: bytes, artist: str) -> Peer:
        who = Peer(artist, artist in self._config.admins)
        self._peers[peer] = who
        self._peers.move_to_end(peer)
        while len(self._peers) > _MAX_PEERS:
            self._peers.popitem(last=False)
        return who

    def _hello(self, peer: bytes, user_id: str | None, env: Envelope, msg: Hello) -> None:
        artist = user_id if user_id is not None else (msg.artist or "anonymous")
        if not ARTIST_NAME.match(artist):
            raise InvalidArgument(
                "artist", f"{artist!r} is not a valid artist name", allowed=ARTIST_NAME.pattern
            )
        who = self._remember(peer, artist)
        self._log.info(
            "hello",
            artist=artist,
            client=msg.client,
            client_version=msg.client_version,
            request_id=env.id,
        )
        welcome = Welcome(
            server_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            server_session=self.session,
            artist=artist,
            admin=who.admin,
            models=tuple(self._models.values()),
            default_model=self._engine.default_model(),
            limits=self.limits,
            skeleton=self._engine.skeleton(),
            capabilities=CAPABILITIES,
        )
        self._outbox.send(peer, welcome, env.id)

    def _generate(self, peer: bytes, who: Peer, env: Envelope, msg: Generate) -> None:
        existing = self.jobs.by_request(who.artist, env.id)
        if existing is not None:
            self._reattach(existing, peer, env.id, "resubmitted")
            return
        try:
            spec = self._admit(who, msg)
        except (Busy, QuotaExceeded) as exc:
            reason = exc.reason if isinstance(exc, Busy) else "quota_exceeded"
            self._metrics.rejections.labels(reason=reason).inc()
            self._log.info("rejected", artist=who.artist, request_id=env.id, reason=reason)
            raise
        job = Job(spec=spec, artist=who.artist, request_id=env.id, peer=peer)
        self.jobs.add(job)
        self.scheduler.push(job)
        self.quotas.charge_job(who.artist)
        position = self.scheduler.positions()[job.job_id]
        self._outbox.send(peer, Accepted(job_id=job.job_id, queue_position=position), env.id)
        self._queue_changed()
        self._log.info(
            "job_queued",
            job_id=job.job_id,
            artist=who.artist,
            request_id=env.id,
            candidates=job.candidates,
            frames=spec.frames,
            steps=spec.steps,
            model=spec.model,
            queue_position=position,
        )
        self._wake_workers()

    def _admit(self, who: Peer, msg: Generate) -> JobSpec:
        """Check everything about a new job, cheapest and most specific first."""
        if self.shutting_down:
            raise Busy(
                "the daemon is shutting down",
                retry_after_s=self._config.grace_period_s,
                reason="shutting_down",
            )
        msg.validate(self.limits)
        model = msg.model or self._engine.default_model()
        info = self._models.get(model)
        if info is None or not info.available:
            why = info.error if info is not None else "no such model"
            raise ModelUnavailable(
                f"model {model!r} is not available: {why}",
                field="model",
                allowed=", ".join(n for n, m in self._models.items() if m.available),
            )
        seed = msg.seed if msg.seed is not None else secrets.randbelow(2**32)
        spec = JobSpec(
            job_id=new_id(),
            prompt=msg.prompt.strip(),
            frames=msg.frames,
            seeds=tuple((seed + k) % 2**32 for k in range(msg.candidates)),
            guidance=msg.guidance,
            steps=msg.steps,
            model=model,
        )
        self._engine.check_admissible(spec)
        self.quotas.check(who.artist)
        self.scheduler.check_admission(who.artist)
        return spec

    def _reattach(self, job: Job, peer: bytes, re: str, why: str) -> None:
        """A reconnected client asks again: never run it twice; send what it missed."""
        self._log.info("job_reattached", job_id=job.job_id, artist=job.artist, reason=why)
        if job.final is not None:
            self._outbox.send(peer, job.final, re)
            return
        job.peer = peer
        job.told_position = None  # the new connection has not heard an estimate yet
        position = self.scheduler.positions().get(job.job_id, 0)
        accepted = Accepted(job_id=job.job_id, queue_position=position, duplicate=True)
        self._outbox.send(peer, accepted, re)

    def _visible(self, who: Peer, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        # Another artist's job is indistinguishable from a job that never existed.
        if job is None or (job.artist != who.artist and not who.admin):
            raise NotFound(f"no job {job_id} for {who.artist}", field="job_id")
        return job

    def _cancel(self, peer: bytes, who: Peer, env: Envelope, msg: Cancel) -> None:
        job = self._visible(who, msg.job_id)
        if job.state.finished:
            raise InvalidArgument(
                "job_id",
                f"job {job.job_id} already finished ({job.state.value})",
                allowed="a queued or running job",
            )
        reason = "artist" if job.artist == who.artist else "admin"
        self.cancel_job(job, reason)
        self._outbox.send(peer, Cancelled(job_id=job.job_id, reason=reason), env.id)

    def _fetch(self, peer: bytes, who: Peer, env: Envelope, msg: Fetch) -> None:
        self._reattach(self._visible(who, msg.job_id), peer, env.id, "fetch")

    def _status(self, who: Peer) -> Status:
        positions = self.scheduler.positions()
        jobs = tuple(
            job.info(positions.get(job.job_id))
            for job in self.jobs
            if who.admin or job.artist == who.artist
        )
        return Status(
            queue_depth=self.scheduler.depth,
            running=sum(1 for j in self.jobs if j.state is JobState.RUNNING),
            shutting_down=self.shutting_down,
            uptime_s=round(time.monotonic() - self.started, 3),
            jobs=jobs,
            models=tuple(self._models.values()),
        )

    def _pong(self) -> Pong:
        return Pong(
            server_session=self.session,
            uptime_s=round(time.monotonic() - self.started, 3),
            queue_depth=self.scheduler.depth,
        )

    # --- job lifecycle -------------------------------------------------------------------------

    def cancel_job(self, job: Job, reason: str, retry: bool = False) -> None:
        """Queued: cancelled now. Running: stops at the engine's next step."""
        if job.state.finished or job.cancel_reason:  # over, or already being stopped
            return
        job.cancel_reason = reason
        if job.state is JobState.QUEUED and self.scheduler.remove(job):
            self._finish(job, JobState.CANCELLED, Cancelled(job.job_id, reason, retry))
            self._queue_changed()
        else:
            job.cancel_event.set()
            self._log.info(
                "job_cancel_requested", job_id=job.job_id, artist=job.artist, reason=reason
            )

    def peer_gone(self, peer: bytes) -> None:
        """The connection vanished: closed, or silent for 3 ZMTP heartbeats (a frozen client).

        Noticed as EHOSTUNREACH at the next send to it (progress while a job runs, a queue
        update while it waits); its jobs stop costing the device soon after.
        """
        self._peers.pop(peer, None)
        orphans = self.jobs.on_peer(peer)
        if orphans:
            loop = asyncio.get_running_loop()
            loop.call_later(ORPHAN_GRACE_S, self._cancel_orphans, peer, orphans)

    def _cancel_orphans(self, peer: bytes, jobs: list[Job]) -> None:
        for job in jobs:
            # Not resubmitted from a new connection meanwhile, and not already being stopped
            # (every failed send reports the peer again).
            if job.peer == peer and not job.state.finished and not job.cancel_reason:
                self._log.info(
                    "client_gone",
                    job_id=job.job_id,
                    artist=job.artist,
                    request_id=job.request_id,
                    state=job.state.value,
                )
                self.cancel_job(job, "disconnected")

    def take_batch(self, engine: Engine) -> list[Job]:
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
            self._outbox.send(job.peer, progress, job.request_id)

    def on_progress(self, job_id: str, stage: str, step: int, total: int) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.state is not JobState.RUNNING:
            return
        now = time.monotonic()
        if stage != job.stage:
            job.stage, job.step_started_mono = stage, now
        elif now - job.last_progress_mono < _PROGRESS_INTERVAL_S and step < total:
            return
        job.last_progress_mono = now
        eta = None
        if 0 < step <= total:
            eta = round((now - job.step_started_mono) / step * (total - step), 3)
        progress = Progress(job_id=job_id, stage=stage, step=step, total=total, eta_s=eta)
        self._outbox.send(job.peer, progress, job.request_id)

    def finish_batch(
        self,
        engine: Engine,
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
                reason = job.cancel_reason or "cancelled"
                retry = reason == "shutdown"
                self._finish(job, JobState.CANCELLED, Cancelled(job.job_id, reason, retry))
            elif isinstance(outcome, HYMotionError):
                self._finish(job, JobState.FAILED, Error.from_exception(outcome))
            else:
                self._finish(job, *self._result(engine, job, outcome))

    def fail_batch(self, batch: list[Job], exc: BaseException, seconds: float) -> None:
        """The engine raised: every job of the batch gets an internal error with a log id."""
        log_id = new_id()[:12]
        self._log.error(
            "batch_failed",
            exc=True,
            log_id=log_id,
            jobs=[j.job_id for j in batch],
            error=repr(exc),
        )
        self.scheduler.record_batch(seconds)
        self._metrics.running.dec(len(batch))
        error = InternalError(f"the engine failed (log id {log_id})", log_id=log_id)
        for job in batch:
            self._finish(job, JobState.FAILED, Error.from_exception(error))

    def _result(self, engine: Engine, job: Job, out: JobOutput) -> tuple[JobState, Message]:
        now = time.monotonic()
        info = self._models.get(job.spec.model) or ModelInfo(job.spec.model, job.spec.model, True)
        timings = {k: round(v, 4) for k, v in out.timings.items()}
        timings["queue"] = round((job.started_mono or now) - job.queued_mono, 4)
        timings["total"] = round(now - job.queued_mono, 4)
        try:
            result = Result(
                job_id=job.job_id,
                model=job.spec.model,
                model_label=info.label,
                untrained=info.untrained,
                prompt=job.spec.prompt,
                frames=job.spec.frames,
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
            log_id = new_id()[:12]
            self._log.error(
                "bad_engine_output", log_id=log_id, job_id=job.job_id, error=exc.message
            )
            error = InternalError(
                f"the engine produced invalid motion (log id {log_id})", log_id=log_id
            )
            return JobState.FAILED, Error.from_exception(error)
        for stage, seconds in timings.items():
            if stage != "queue":  # observed when the job left the queue, for every job
                self._metrics.stage_seconds.labels(stage=stage).observe(seconds)
        return JobState.DONE, result

    def _finish(self, job: Job, state: JobState, final: Message) -> None:
        job.state, job.final, job.stage = state, final, state.value
        self.scheduler.release(job)
        outcome = {JobState.DONE: "ok", JobState.FAILED: "error"}.get(state, "cancelled")
        self._metrics.jobs.labels(outcome=outcome).inc()
        self._log.info(
            "job_finished",
            job_id=job.job_id,
            artist=job.artist,
            request_id=job.request_id,
            outcome=outcome,
            reason=job.cancel_reason or None,
            code=final.code if isinstance(final, Error) else None,
            queue_s=round(job.started_mono - job.queued_mono, 4) if job.started_mono else None,
            run_s=round(time.monotonic() - job.started_mono, 4) if job.started_mono else None,
            total_s=round(time.monotonic() - job.queued_mono, 4),
        )
        # Keep it for fetch and resubmission, then forget it.
        asyncio.get_running_loop().call_later(self._config.result_retention_s, self.jobs.drop, job)
        # Last: whoever reads the answer sees the metrics and log that go with it.
        self._outbox.send(job.peer, final, job.request_id)

    # --- shutdown ------------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """Stop admitting; queued jobs are told to come back later."""
        self.shutting_down = True
        if self._queue_update is not None:
            self._queue_update.cancel()
            self._queue_update = None
        for job in self.scheduler.order():
            self.cancel_job(job, "shutdown", retry=True)

    def cancel_running(self) -> None:
        for job in self.jobs.unfinished():
            self.cancel_job(job, "shutdown", retry=True)
