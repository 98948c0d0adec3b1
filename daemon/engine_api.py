"""The contract between the daemon service and an inference engine.

The service owns sockets, queues, fairness and cancellation policy; an engine owns a model on one
device. ``run_batch`` is called from the device's worker thread, never from the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from shared_protocol import Constraints, HYMotionError, ModelInfo, Skeleton


@dataclass(frozen=True)
class JobSpec:
    """One validated generate request: one prompt, ``len(seeds)`` candidates."""

    job_id: str
    prompt: str
    frames: int
    seeds: tuple[int, ...]
    guidance: float
    steps: int
    model: str
    #: Directed generation (protocol 1.1); None samples exactly as an undirected request.
    constraints: Constraints | None = None

    @property
    def total_frames(self) -> int:
        """Frames of the result: ``frames``, plus the timeline rows' when there are any."""
        return self.constraints.total_frames(self.frames) if self.constraints else self.frames


@dataclass(frozen=True, eq=False)
class JobOutput:
    """An engine's answer for one job, in the DESIGN.md model-space conventions."""

    rotations: np.ndarray  # (C, F, J, 4) float32, (w, x, y, z); joint 0 global
    root_positions: np.ndarray  # (C, F, 3) float32, pelvis world position, grounded
    joint_positions: np.ndarray  # (C, F, J, 3) float32, world joint positions
    warnings: tuple[str, ...] = ()
    prompt_truncated: bool = False
    #: Seconds spent per stage for this job: "encode", "sample", "decode".
    timings: dict[str, float] = field(default_factory=dict)


class ProgressFn(Protocol):
    def __call__(self, job_id: str, stage: str, step: int, total: int) -> None: ...


#: Called between sampler steps; True means the job was cancelled and should be dropped.
ShouldStop = Callable[[str], bool]


class EngineDescription(Protocol):
    """What the service and the scheduler need to know of the engines behind a backend."""

    def models(self) -> list[ModelInfo]:
        """Every model this engine knows, available or not (with the reason)."""
        ...

    def default_model(self) -> str: ...

    def skeleton(self) -> Skeleton: ...

    def batch_key(self, job: JobSpec) -> Hashable:
        """Jobs with equal keys may share one ``run_batch`` call."""
        ...

    def max_batch_candidates(self, model: str) -> int:
        """How many candidates (summed over jobs) one ``run_batch`` call may hold."""
        ...

    def check_admissible(self, job: JobSpec) -> None:
        """Raise ModelUnavailable / ResourceExhausted before the job is queued."""
        ...


class Engine(EngineDescription, Protocol):
    """A model (or several) resident on one device."""

    def run_batch(
        self, jobs: Sequence[JobSpec], progress: ProgressFn, should_stop: ShouldStop
    ) -> list[JobOutput | HYMotionError]:
        """Run the jobs together; one entry per job, in order.

        A cancelled job (``should_stop``) yields JobCancelled and stops costing compute at the
        next sampler step; a failure of one job yields its typed error. Exceptions escaping this
        method fail the whole batch (the service answers each job with an error and keeps going).
        """
        ...

    def close(self) -> None: ...


class DeviceFailure(Exception):
    """The device itself failed (a CUDA error, a lost GPU): raised by ``run_batch``.

    Three kinds of failure, three answers:

    - one job's failure: ``run_batch`` returns a typed error in that job's place; only that job
      fails, its batch neighbours get their results;
    - any other exception from ``run_batch``: the batch is split and re-run
      (``JobLifecycle.run_isolated``); only a job that fails on its own gets ``internal``; the
      device keeps serving;
    - ``DeviceFailure``: that batch's jobs fail with ``model_unavailable``, the device is taken
      out of service until the daemon restarts (CUDA errors poison the process's context), and
      the other devices keep serving.
    """

    def __init__(self, device: str, reason: str) -> None:
        super().__init__(f"{device}: {reason}")
        self.device = device
        self.reason = reason
