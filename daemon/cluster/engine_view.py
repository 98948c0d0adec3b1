"""The daemon's view of the engines on the cluster: what admission and batching need to know.

Built from one replica's ``EngineProfile`` (every replica runs the same engine options). Batches
are keyed by model and step count; a replica splits a batch further if its engine's own key is
finer (``replica._run_groups``). While the cluster is unreachable, new jobs get ``busy``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from daemon.engine_api import JobSpec
from shared_protocol import Busy, ModelInfo, ModelUnavailable, Skeleton

from .messages import EngineProfile


class ClusterEngine:
    def __init__(self, profile: EngineProfile, cluster_down: Callable[[], str | None]) -> None:
        """``cluster_down()``: why the cluster cannot take work now, or None when it can."""
        self.use(profile)
        self._cluster_down = cluster_down
        #: Seconds a refused client should wait at least: about one health check.
        self.retry_after_s = 5.0
        #: Turns that estimate into a retry hint (the scheduler's spread, set by the backend),
        #: so clients refused together do not come back together.
        self.spread: Callable[[float], float] = lambda estimate_s: estimate_s

    def use(self, profile: EngineProfile) -> None:
        """Describe the engines of ``profile`` from now on (a rejoined cluster's app)."""
        self.profile = profile
        self._models = {m.name: m for m in profile.models}

    def models(self) -> list[ModelInfo]:
        return list(self.profile.models)

    def default_model(self) -> str:
        return self.profile.default_model

    def skeleton(self) -> Skeleton:
        return self.profile.skeleton

    def batch_key(self, job: JobSpec) -> Hashable:
        return (job.model, job.steps)

    def max_batch_candidates(self, model: str) -> int:
        return self.profile.max_batch_candidates.get(model, 1)

    def check_admissible(self, job: JobSpec) -> None:
        """Unknown or unloaded model: ModelUnavailable. Cluster unreachable: Busy.

        Memory fit is checked by the replica's engine when the batch arrives (a job that does
        not fit gets resource_exhausted then).
        """
        info = self._models.get(job.model)
        if info is None or not info.available:
            why = info.error if info is not None else "no such model on the cluster"
            raise ModelUnavailable(
                f"model {job.model!r} is not available: {why}",
                field="model",
                allowed=", ".join(n for n, m in self._models.items() if m.available),
            )
        down = self._cluster_down()
        if down is not None:
            retry_s = self.spread(self.retry_after_s)
            raise Busy(
                f"the Ray cluster is unreachable ({down}); retry in {retry_s:.1f} s",
                retry_after_s=retry_s,
                reason="cluster_unavailable",
            )
