"""Per-replica and cluster series, on the daemon's own registry (the existing /metrics).

Labels are the Serve replica id and its node's address: bounded by the cluster's size (a
restarted replica gets a new id, so the set grows only as replicas are replaced).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from .messages import Finished, ReplicaInfo

#: Why a batch did not finish on its replica (the ``kind`` label of the errors counter).
ERROR_KINDS = ("lost", "timeout", "engine")


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["replica", "node"]
        self.busy = Gauge(
            "hymotion_replica_busy", "1 while the replica runs a batch", labels, registry=registry
        )
        self.jobs = Counter(
            "hymotion_replica_jobs_total", "Jobs a replica answered", labels, registry=registry
        )
        self.errors = Counter(
            "hymotion_replica_errors_total",
            "Batches a replica did not finish: lost (died), timeout (silent), engine (raised)",
            [*labels, "kind"],
            registry=registry,
        )
        self.device_memory = Gauge(
            "hymotion_replica_device_memory_bytes",
            "CUDA memory allocated by the replica's engine after its last batch (0 on CPU)",
            labels,
            registry=registry,
        )
        self.rss = Gauge(
            "hymotion_replica_rss_bytes",
            "Resident memory of the replica process after its last batch",
            labels,
            registry=registry,
        )
        self.replicas = Gauge(
            "hymotion_cluster_replicas",
            "Replicas of the engine deployment by Serve state",
            ["state"],
            registry=registry,
        )
        self.up = Gauge(
            "hymotion_cluster_up",
            "1 while the Ray cluster answers health checks",
            registry=registry,
        )

    def started(self, replica: ReplicaInfo) -> None:
        self.busy.labels(replica.replica, replica.node).set(1)

    def finished(self, replica: ReplicaInfo, jobs: int, done: Finished) -> None:
        labels = (replica.replica, replica.node)
        self.busy.labels(*labels).set(0)
        self.jobs.labels(*labels).inc(jobs)
        self.device_memory.labels(*labels).set(done.device_memory_bytes)
        self.rss.labels(*labels).set(done.rss_bytes)

    def failed(self, replica: ReplicaInfo | None, kind: str) -> None:
        labels = (replica.replica, replica.node) if replica else ("unassigned", "")
        self.busy.labels(*labels).set(0)
        self.errors.labels(*labels, kind).inc()
