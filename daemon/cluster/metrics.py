"""Per-replica and cluster series, recorded with the daemon's own metrics (the same /metrics).

Labels are the Serve replica id and its node's address: bounded by the cluster's size (a
restarted replica gets a new id, so the set grows only as replicas are replaced).
"""

from __future__ import annotations

from daemon.metrics import Family, Metrics

from .messages import Finished, ReplicaInfo

_REPLICA = ("replica", "node")


class ClusterMetrics:
    def __init__(self, metrics: Metrics) -> None:
        def add(kind: str, name: str, documentation: str, *labels: str) -> Family:
            family = Family(kind, name, documentation, labels)
            metrics.families.append(family)
            return family

        self.busy = add(
            "gauge", "hymotion_replica_busy", "1 while the replica runs a batch", *_REPLICA
        )
        self.jobs = add(
            "counter", "hymotion_replica_jobs_total", "Jobs a replica answered", *_REPLICA
        )
        self.errors = add(
            "counter",
            "hymotion_replica_errors_total",
            "Batches a replica did not finish: lost (died), timeout (silent), engine (raised)",
            *_REPLICA,
            "kind",
        )
        self.device_memory = add(
            "gauge",
            "hymotion_replica_device_memory_bytes",
            "CUDA memory allocated by the replica's engine after its last batch (0 on CPU)",
            *_REPLICA,
        )
        self.rss = add(
            "gauge",
            "hymotion_replica_rss_bytes",
            "Resident memory of the replica process after its last batch",
            *_REPLICA,
        )
        self.replicas = add(
            "gauge", "hymotion_cluster_replicas", "Replicas of the engine by Serve state", "state"
        )
        self.up = add("gauge", "hymotion_cluster_up", "1 while the Ray cluster answers")

    def started(self, replica: ReplicaInfo) -> None:
        self.busy.labels(replica=replica.replica, node=replica.node).set(1)

    def finished(self, replica: ReplicaInfo, jobs: int, done: Finished) -> None:
        labels = {"replica": replica.replica, "node": replica.node}
        self.busy.labels(**labels).set(0)
        self.jobs.labels(**labels).inc(jobs)
        self.device_memory.labels(**labels).set(done.device_memory_bytes)
        self.rss.labels(**labels).set(done.rss_bytes)

    def failed(self, replica: ReplicaInfo | None, kind: str) -> None:
        labels = (
            {"replica": replica.replica, "node": replica.node}
            if replica
            else {"replica": "unassigned", "node": ""}
        )
        self.busy.labels(**labels).set(0)
        self.errors.labels(**labels, kind=kind).inc()
