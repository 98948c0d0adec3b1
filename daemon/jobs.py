"""Jobs and the table that finds them by id, by (artist, request id) and by peer.

A job is created when a generate request is admitted and lives until its result has been kept
for ``result_retention_s``. ``peer`` is the routing id its messages go to, answering
``reply_to``; a resubmission from a new connection moves it (routing ids change on every
reconnect). ``observers`` are other connections that fetched it unfinished: they get copies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypedDict

from daemon.engine_api import JobSpec
from shared_protocol import JobInfo, Message


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobLogFields(TypedDict):
    job_id: str
    artist: str
    #: The client's id for the generate request: joins the daemon's log to the client's.
    request_id: str


@dataclass(eq=False)
class Job:
    spec: JobSpec
    artist: str
    request_id: str
    peer: bytes
    state: JobState = JobState.QUEUED
    stage: str = "queued"
    submitted_at: float = field(default_factory=time.time)
    queued_mono: float = field(default_factory=time.monotonic)
    started_mono: float | None = None
    #: Set from the event loop, read by the worker thread through ``should_stop``.
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = ""
    #: The terminal message (result, error or cancelled), resent on fetch or resubmission.
    final: Message | None = None
    last_progress_mono: float = 0.0
    #: When the job's current stage was first reported, and at which step: the pace of a
    #: stage counts only the steps reported after that first report.
    stage_seen_mono: float = 0.0
    stage_first_step: int = 0
    #: The queue position last sent in a "queued" progress (None: no position sent yet).
    told_position: int | None = None
    #: The request id the job's own messages answer: the generate id, or the fetch id of the
    #: connection that re-attached to it.
    reply_to: str = ""
    #: True once ``peer`` is known to be gone: waiting for its artist to re-attach.
    orphaned: bool = False
    #: Connections watching the job without owning it: routing id -> (fetch id, their artist).
    observers: dict[bytes, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reply_to = self.reply_to or self.request_id

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def candidates(self) -> int:
        return len(self.spec.seeds)

    @property
    def log_fields(self) -> JobLogFields:
        """What every log event about this job carries, to grep one job or one artist."""
        return {"job_id": self.job_id, "artist": self.artist, "request_id": self.request_id}

    @property
    def queue_s(self) -> float | None:
        """Seconds it waited in the queue; None while it waits (or if it never ran)."""
        if self.started_mono is None:
            return None
        return round(self.started_mono - self.queued_mono, 4)

    def info(self, queue_position: int | None) -> JobInfo:
        return JobInfo(
            job_id=self.job_id,
            artist=self.artist,
            state=self.state.value,
            prompt=self.spec.prompt,
            candidates=self.candidates,
            frames=self.spec.total_frames,  # a timeline's joined clip, as in its result
            model=self.spec.model,
            stage=self.stage,
            queue_position=queue_position,
            submitted_at=self.submitted_at,
        )


class JobTable:
    """Every known job; finished ones until they expire. Used from the event loop only."""

    def __init__(self) -> None:
        self._by_id: dict[str, Job] = {}
        self._by_request: dict[tuple[str, str], Job] = {}

    def add(self, job: Job) -> None:
        self._by_id[job.job_id] = job
        self._by_request[(job.artist, job.request_id)] = job

    def get(self, job_id: str) -> Job | None:
        return self._by_id.get(job_id)

    def by_request(self, artist: str, request_id: str) -> Job | None:
        return self._by_request.get((artist, request_id))

    def drop(self, job: Job) -> None:
        if self._by_id.get(job.job_id) is job:
            del self._by_id[job.job_id]
        if self._by_request.get((job.artist, job.request_id)) is job:
            del self._by_request[(job.artist, job.request_id)]

    def on_peer(self, peer: bytes) -> list[Job]:
        return [j for j in self._by_id.values() if j.peer == peer and not j.state.finished]

    def observed_by(self, peer: bytes) -> list[Job]:
        return [j for j in self._by_id.values() if peer in j.observers]

    def unfinished(self) -> list[Job]:
        return [j for j in self._by_id.values() if not j.state.finished]

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)
