"""The request handlers: who is asking, and what each request gets. No sockets, no threads.

The transport (``server.py``) hands every decoded request to :meth:`Service.handle`; replies
leave through the ``Outbox``. Admitted jobs go to :class:`daemon.lifecycle.JobLifecycle`, which
owns them from then on. Everything here runs on the event loop thread.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

from daemon import __version__
from daemon.config import DaemonConfig
from daemon.engine_api import EngineDescription, JobSpec
from daemon.jobs import Job, JobState
from daemon.lifecycle import JobLifecycle, Outbox, internal_error
from daemon.logs import EventLog, new_log_id
from daemon.metrics import Metrics
from shared_protocol import (
    PROTOCOL_VERSION,
    Busy,
    Cancel,
    Envelope,
    Error,
    Fetch,
    Generate,
    Hello,
    HelloRequired,
    HYMotionError,
    InvalidArgument,
    Limits,
    Message,
    ModelUnavailable,
    NotFound,
    Ping,
    Pong,
    QuotaExceeded,
    Status,
    StatusRequest,
    Welcome,
    new_id,
    parse_request,
)
from shared_protocol.keys import ARTIST_NAME, is_artist_name
from shared_protocol.messages import MAX_SEED

CAPABILITIES = (
    "progress", "cancel", "fetch", "resubmit", "status", "batching", "quotas", "reattach",
    "constraints",  # protocol 1.1: docs/protocol.md, "Directed generation"
)  # fmt: skip
#: Jobs one status reply lists (a client decodes lists of at most 256 items).
STATUS_MAX_JOBS = 256
#: Connections remembered (routing id -> artist); the least recently heard are forgotten first
#: (docs/protocol.md, "Session rules").
MAX_PEERS = 4096


@dataclass(frozen=True)
class Peer:
    artist: str
    admin: bool


class Service:
    def __init__(
        self,
        config: DaemonConfig,
        engine: EngineDescription,
        lifecycle: JobLifecycle,
        outbox: Outbox,
        log: EventLog,
        metrics: Metrics,
    ) -> None:
        """``engine`` describes the models (every device runs the same ones)."""
        self._config = config
        self._engine = engine
        self._lifecycle = lifecycle
        self._outbox = outbox
        self._log = log
        self._metrics = metrics
        self.session = new_id()
        self.started = time.monotonic()
        self.limits = Limits(
            max_candidates=config.max_candidates,
            max_timeline_s=config.max_timeline_s,
            reconnect_grace_s=config.reconnect_grace_s,
        )
        self._peers: OrderedDict[bytes, Peer] = OrderedDict()

    def handle(self, peer: bytes, user_id: str | None, envelope: Envelope) -> None:
        """Answer one decoded request; any failure becomes a typed error reply."""
        try:
            message = parse_request(envelope)
            self._metrics.requests.labels(type=envelope.type).inc()
            self._dispatch(peer, user_id, envelope, message)
        except HYMotionError as exc:
            self._outbox.send(peer, Error.from_exception(exc), envelope.id)
        except Exception:
            log_id = new_log_id()
            known = self._peers.get(peer)
            self._log.error(
                "internal_error",
                exc=True,
                log_id=log_id,
                artist=known.artist if known is not None else None,
                request_id=envelope.id,
                type=envelope.type,
            )
            error = internal_error("the daemon failed on this request", log_id)
            self._outbox.send(peer, error, envelope.id)

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
        # Also what a client hears after libzmq replaced its connection (a new routing id).
        raise HelloRequired("send hello first: this connection has not said who it is")

    def _remember(self, peer: bytes, artist: str) -> Peer:
        who = Peer(artist, artist in self._config.admins)
        self._peers[peer] = who
        self._peers.move_to_end(peer)
        while len(self._peers) > MAX_PEERS:
            self._peers.popitem(last=False)
        return who

    def forget(self, peer: bytes) -> None:
        """The connection is gone (routing ids are never reused): drop who it was."""
        self._peers.pop(peer, None)

    def _hello(self, peer: bytes, user_id: str | None, env: Envelope, msg: Hello) -> None:
        artist = user_id if user_id is not None else (msg.artist or "anonymous")
        if not is_artist_name(artist):
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
            models=tuple(self._lifecycle.models.values()),
            default_model=self._engine.default_model(),
            limits=self.limits,
            skeleton=self._engine.skeleton(),
            capabilities=CAPABILITIES,
        )
        self._outbox.send(peer, welcome, env.id)

    def _generate(self, peer: bytes, who: Peer, env: Envelope, msg: Generate) -> None:
        existing = self._lifecycle.jobs.by_request(who.artist, env.id)
        if existing is not None:
            self._lifecycle.reattach(existing, peer, env.id, "resubmitted")
            return
        try:
            spec = self._admit(who, msg)
        except (Busy, QuotaExceeded) as exc:
            reason = exc.reason if isinstance(exc, Busy) else "quota_exceeded"
            self._metrics.rejections.labels(reason=reason).inc()
            self._log.info("rejected", artist=who.artist, request_id=env.id, reason=reason)
            raise
        job = Job(spec=spec, artist=who.artist, request_id=env.id, peer=peer)
        self._lifecycle.enqueue(job, env.id)

    def _admit(self, who: Peer, msg: Generate) -> JobSpec:
        """Check everything about a new job, cheapest and most specific first."""
        if self._lifecycle.shutting_down:
            raise Busy(
                f"the daemon is shutting down; retry in {self._config.grace_period_s:g} s "
                "(it may be restarting)",
                retry_after_s=self._lifecycle.scheduler.spread(self._config.grace_period_s),
                reason="shutting_down",
            )
        msg.validate(self.limits, self._engine.skeleton().joint_count)
        model = msg.model or self._engine.default_model()
        models = self._lifecycle.models
        info = models.get(model)
        if info is None or not info.available:
            why = info.error if info is not None else "no such model"
            raise ModelUnavailable(
                f"model {model!r} is not available: {why}",
                field="model",
                allowed=", ".join(n for n, m in models.items() if m.available),
            )
        # Validated: seed + k never passes MAX_SEED, so a picked one leaves room for every k.
        seed = (
            msg.seed if msg.seed is not None else secrets.randbelow(MAX_SEED + 2 - msg.candidates)
        )
        spec = JobSpec(
            job_id=new_id(),
            prompt=msg.prompt.strip(),
            frames=msg.frames,
            seeds=tuple(seed + k for k in range(msg.candidates)),
            guidance=msg.guidance,
            steps=msg.steps,
            model=model,
            constraints=msg.constraints,
        )
        self._engine.check_admissible(spec)
        self._lifecycle.quotas.check(who.artist)
        self._lifecycle.scheduler.check_admission(who.artist)
        return spec

    def _visible(self, who: Peer, job_id: str) -> Job:
        job = self._lifecycle.jobs.get(job_id)
        # Another artist's job is indistinguishable from a job that never existed.
        if job is None or (job.artist != who.artist and not who.admin):
            raise NotFound(
                f"no job {job_id} for {who.artist} (finished jobs are kept "
                f"{self._config.result_retention_s:g} s; resubmit the request if it expired)",
                field="job_id",
            )
        return job

    def _cancel(self, peer: bytes, who: Peer, env: Envelope, msg: Cancel) -> None:
        job = self._visible(who, msg.job_id)
        if job.state.finished:
            raise InvalidArgument(
                "job_id",
                f"job {job.job_id} already finished ({job.state.value}); fetch it for its answer",
                allowed="a queued or running job",
            )
        reason = "artist" if job.artist == who.artist else "admin"
        self._outbox.send(peer, self._lifecycle.cancel(job, reason), env.id)

    def _fetch(self, peer: bytes, who: Peer, env: Envelope, msg: Fetch) -> None:
        self._lifecycle.fetch(self._visible(who, msg.job_id), peer, env.id, who.artist)

    def _status(self, who: Peer) -> Status:
        jobs, scheduler = self._lifecycle.jobs, self._lifecycle.scheduler
        positions = scheduler.positions()
        visible = [job for job in jobs if who.admin or job.artist == who.artist]
        # Unfinished jobs first, then the most recently submitted: what a reader looks for.
        visible.sort(key=lambda job: (job.state.finished, -job.submitted_at))
        return Status(
            queue_depth=scheduler.depth,
            running=sum(1 for j in jobs if j.state is JobState.RUNNING),
            shutting_down=self._lifecycle.shutting_down,
            uptime_s=round(time.monotonic() - self.started, 3),
            jobs=tuple(job.info(positions.get(job.job_id)) for job in visible[:STATUS_MAX_JOBS]),
            models=tuple(self._lifecycle.models.values()),
            devices=self._lifecycle.devices,
            jobs_omitted=max(0, len(visible) - STATUS_MAX_JOBS),
        )

    def _pong(self) -> Pong:
        return Pong(
            server_session=self.session,
            uptime_s=round(time.monotonic() - self.started, 3),
            queue_depth=self._lifecycle.scheduler.depth,
        )
