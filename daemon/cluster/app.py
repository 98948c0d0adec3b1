"""The engine deployment as a Serve application: built by the daemon, or by an operator.

The daemon calls :func:`engine_app` when it deploys (``[cluster] deploy = true``). For a cluster
whose applications an operator manages (a KubeRay ``RayService``, ``serve deploy``), ``build``
is the Serve application builder: ``import_path: daemon.cluster.app:build`` with ``args`` holding
``engine`` (the ``[engine]`` table) and the ``[cluster]`` keys ``replicas``, ``min_replicas``,
``max_replicas``, ``gpus_per_replica``, ``cpus_per_replica``; the daemon then joins with
``deploy = false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve import Application

from .config import ClusterConfig, parse_cluster
from .replica import EngineFactory, EngineReplica

DEPLOYMENT = "engine"
#: Keys of ``build``'s args that are ``[cluster]`` settings (the rest is "engine").
_SCALING_KEYS = ("replicas", "min_replicas", "max_replicas", "gpus_per_replica", "cpus_per_replica")


def engine_app(
    cluster: ClusterConfig,
    engine_options: Mapping[str, Any],
    factory: EngineFactory | None,
    fingerprint: str,
) -> Application:
    """One deployment: replicas of one engine each, one batch at a time per replica."""
    scaling: dict[str, Any] = (
        {
            "autoscaling_config": {
                "min_replicas": cluster.min_replicas,
                "max_replicas": cluster.max_replicas,
                # one batch per replica at a time: a waiting batch asks for another replica
                "target_ongoing_requests": 1,
                "downscale_delay_s": 600,
            }
        }
        if cluster.autoscaling
        else {"num_replicas": cluster.replicas}
    )
    deployment = serve.deployment(
        EngineReplica,
        name=DEPLOYMENT,
        max_ongoing_requests=1,
        ray_actor_options={
            "num_gpus": cluster.gpus_per_replica,
            "num_cpus": cluster.cpus_per_replica,
        },
        **scaling,
    )
    return deployment.bind(dict(engine_options), factory, fingerprint)


def build(args: dict[str, Any]) -> Application:
    """Serve application builder for operators (see the module docstring)."""
    cluster = parse_cluster({k: args[k] for k in _SCALING_KEYS if k in args})
    return engine_app(cluster, args.get("engine", {}), None, "operator")
