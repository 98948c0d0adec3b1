"""What travels between the daemon and a replica (pickled by Ray; both sides run this code).

A batch is one streaming call. The replica yields ``Report``s: each names the replica and
carries the progress that piled up since the last one (held up to 50 ms for more to join it);
the last one also carries the outcome (``Finished`` or ``EngineFailed``). A batch faster than
that is a single report: every streamed item costs a Ray round of its own. Typed job errors
travel as ``WireError`` (code, message, details), the form the protocol already round-trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.engine_api import JobOutput, JobSpec
from shared_protocol import HYMotionError, ModelInfo, Skeleton
from shared_protocol.errors import error_from_code

#: (job id, stage, step, total), as ``ProgressFn`` receives them.
StepUpdate = tuple[str, str, int, int]


@dataclass(frozen=True)
class WireError:
    code: str
    message: str
    details: dict[str, Any]

    @classmethod
    def of(cls, error: HYMotionError) -> WireError:
        return cls(error.code, error.message, dict(error.details))

    def exception(self) -> HYMotionError:
        return error_from_code(self.code, self.message, self.details)


@dataclass(frozen=True)
class ReplicaInfo:
    """Who runs a batch: named in the daemon's logs and metric labels."""

    replica: str
    node: str
    pid: int
    device: str


@dataclass(frozen=True)
class EngineProfile:
    """A replica's engine, described once at start for the daemon's admission and batching."""

    models: tuple[ModelInfo, ...]
    default_model: str
    skeleton: Skeleton
    max_batch_candidates: dict[str, int]
    #: Deployment settings the replica was built with; equal fingerprints: no redeploy.
    fingerprint: str
    replica: ReplicaInfo


@dataclass(frozen=True)
class BatchRequest:
    jobs: tuple[JobSpec, ...]
    #: The name of the daemon's CancelBoard: the replica keeps a long poll open on it.
    board: str


@dataclass(frozen=True)
class Finished:
    outcomes: tuple[JobOutput | WireError, ...]
    seconds: float
    #: CUDA memory allocated by the replica's engine after the batch (0 on CPU).
    device_memory_bytes: float
    #: The replica process's resident set size (host memory).
    rss_bytes: float


@dataclass(frozen=True)
class EngineFailed:
    """The engine raised: the batch fails with an internal error, the replica lives on."""

    error: str


@dataclass(frozen=True)
class Report:
    replica: ReplicaInfo
    updates: tuple[StepUpdate, ...]
    #: Set on the last report of a batch only.
    outcome: Finished | EngineFailed | None = None
