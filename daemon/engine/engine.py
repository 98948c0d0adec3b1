"""The daemon's Engine (daemon/engine_api.py) over one or more loaded pipelines on one device."""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from daemon.engine_api import DeviceFailure, JobOutput, JobSpec, ProgressFn, ShouldStop
from shared_protocol import (
    HYMotionError,
    ModelInfo,
    ModelUnavailable,
    ResourceExhausted,
    Skeleton,
)

from .memory import GIB, MemoryPlan, activation_bytes
from .pipeline import Generated, MotionPipeline
from .skeleton import BODY_SKELETON
from .text import TEXT_SLOTS
from .timeline import generate_timeline, largest_window

log = logging.getLogger(__name__)
#: Fraction of device memory jobs may plan to use (allocator fragmentation, other processes).
USABLE_FRACTION = 0.92
#: How torch words errors of the CUDA runtime, cuBLAS and cuDNN (a plain RuntimeError in torch
#: versions before ``torch.AcceleratorError``).
_DEVICE_ERROR_TEXTS = ("CUDA error", "CUDA driver error", "CUBLAS_STATUS_", "CUDNN_STATUS_")


@dataclass
class ServedModel:
    """One model slot: a pipeline, or the reason there is none."""

    info: ModelInfo
    pipeline: MotionPipeline | None = None
    plan: MemoryPlan | None = None


def device_memory_bytes(device: torch.device, limit_gb: float | None) -> float:
    """Memory jobs may use on the device: the configured limit, the GPU's size, or the RAM."""
    if limit_gb is not None:
        return limit_gb * GIB
    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


class HYMotionEngine:
    def __init__(
        self,
        models: dict[str, ServedModel],
        default: str,
        device: torch.device,
        max_candidates: int,
        memory_limit_gb: float | None = None,
    ) -> None:
        self._models = models
        self._default = default
        self.device = device
        self._max_candidates = max_candidates
        self._memory = device_memory_bytes(device, memory_limit_gb) * USABLE_FRACTION

    def models(self) -> list[ModelInfo]:
        return [m.info for m in self._models.values()]

    def default_model(self) -> str:
        return self._default

    def skeleton(self) -> Skeleton:
        return BODY_SKELETON

    def batch_key(self, job: JobSpec) -> Hashable:
        # one forward per evaluation needs one model and one time grid; prompts, lengths, seeds,
        # guidance and constraints may differ (tests/engine/test_engine_shortcuts.py); a
        # timeline samples its segments one after another, alone
        if job.constraints is not None and job.constraints.timeline:
            return ("timeline", job.job_id)
        return (job.model, job.steps)

    def max_batch_candidates(self, model: str) -> int:
        return self._max_candidates

    def _served(self, name: str) -> MotionPipeline:
        served = self._models.get(name)
        if served is None:
            raise ModelUnavailable(
                f"unknown model {name!r}; this daemon serves {', '.join(self._models)}",
                field="model",
                allowed=self._available(),
            )
        if served.pipeline is None:
            raise ModelUnavailable(
                f"model {name!r} is unavailable: {served.info.error}",
                field="model",
                allowed=self._available(),
            )
        return served.pipeline

    def _available(self) -> str:
        return ", ".join(n for n, m in self._models.items() if m.pipeline is not None)

    def check_admissible(self, job: JobSpec) -> None:
        """Unknown/unavailable model -> ModelUnavailable; too big for the device ->
        ResourceExhausted, before anything runs."""
        pipeline = self._served(job.model)
        plan = self._models[job.model].plan
        resident = sum(m.plan.resident_bytes for m in self._models.values() if m.plan)
        rows = 2 * len(job.seeds)
        need = activation_bytes(
            pipeline.model.cfg, rows, largest_window(job), TEXT_SLOTS, pipeline.model.dtype
        ) + (plan.text_peak_bytes - plan.text_bytes if plan else 0.0)
        if resident + need > self._memory:
            raise ResourceExhausted(
                f"{len(job.seeds)} candidates of {largest_window(job)} frames need about "
                f"{need / GIB:.1f} GiB beyond the {resident / GIB:.1f} GiB of loaded models; "
                f"{self._memory / GIB:.1f} GiB are usable on {self.device}",
                needed_gib=round(need / GIB, 2),
            )

    def run_batch(
        self, jobs: Sequence[JobSpec], progress: ProgressFn, should_stop: ShouldStop
    ) -> list[JobOutput | HYMotionError]:
        models = {job.model for job in jobs}
        if len(models) != 1:
            raise ValueError(f"a batch must name one model, got {sorted(models)}")
        pipeline = self._served(jobs[0].model)
        try:
            if len(jobs) == 1 and jobs[0].constraints and jobs[0].constraints.timeline:
                results = [generate_timeline(pipeline, jobs[0], progress, should_stop)]
            else:
                results = pipeline.generate(jobs, progress, should_stop)
        except torch.OutOfMemoryError as exc:
            self._release_memory(exc)  # the daemon keeps serving once the batch's memory is back
            log.warning("out of device memory in a batch of %d jobs: %s", len(jobs), exc)
            return [
                ResourceExhausted(
                    f"the device ran out of memory during this batch ({len(jobs)} jobs, "
                    f"{sum(len(j.seeds) for j in jobs)} candidates); memory was released"
                )
                for _ in jobs
            ]
        except RuntimeError as exc:
            failure = device_failure(exc, self.device)
            if failure is None:
                raise
            raise failure from exc
        return [r if isinstance(r, HYMotionError) else _output(r) for r in results]

    def _release_memory(self, oom: torch.OutOfMemoryError) -> None:
        """Free what a batch that ran out of memory held; a device that cannot is failed."""
        if self.device.type != "cuda":
            return
        try:
            torch.cuda.empty_cache()
        except RuntimeError as exc:
            raise DeviceFailure(
                str(self.device),
                f"out of memory, and releasing the memory failed: {first_line(exc)}",
            ) from oom

    def close(self) -> None:
        for served in self._models.values():
            served.pipeline = None
        if self.device.type == "cuda":
            try:
                torch.cuda.empty_cache()
            except RuntimeError as exc:  # a failed device must not break the shutdown
                log.warning("releasing memory on %s at close failed: %s", self.device, exc)


def device_failure(exc: BaseException, device: torch.device) -> DeviceFailure | None:
    """The DeviceFailure an exception from a batch means, or None when it is the batch's own
    failure (out of memory included: the batch was too big, the device is fine)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return None
    accelerator = getattr(torch, "AcceleratorError", ())
    if isinstance(exc, accelerator) or (
        isinstance(exc, RuntimeError) and any(text in str(exc) for text in _DEVICE_ERROR_TEXTS)
    ):
        return DeviceFailure(str(device), first_line(exc))
    return None


def first_line(exc: BaseException) -> str:
    """An exception's first line: CUDA errors append pages of advice after it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _output(result: Generated) -> JobOutput:
    motion = result.motion
    return JobOutput(
        rotations=motion.rotations,
        root_positions=motion.root_positions,
        joint_positions=motion.joint_positions,
        warnings=result.warnings,
        prompt_truncated=result.truncated,
        timings=dict(result.timings),
    )
