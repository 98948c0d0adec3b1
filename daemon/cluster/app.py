"""The engine deployment as a Serve application: built by the daemon, or by an operator.

The daemon calls :func:`engine_app` when it deploys (``[cluster] deploy = true``). For a cluster
whose applications an operator manages (a KubeRay ``RayService``, ``serve deploy``), ``build``
is the Serve application builder: ``import_path: daemon.cluster.app:build`` with ``args`` holding
``engine`` (the ``[engine]`` table) and the ``[cluster]`` keys of ``BUILD_KEYS`` (replicas,
their resources, the text-encoder layout and its timeouts); the daemon then joins with
``deploy = false``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import serve
from ray.serve import Application

from daemon.config import ConfigError

from .config import ClusterConfig, parse_cluster
from .replica import EngineFactory, EngineReplica
from .text_replica import TextEncoderReplica

DEPLOYMENT = "engine"
#: The shared text-encoder deployment (``text_encoders = "shared"``).
ENCODERS = "text_encoders"
_ENCODER_QUEUE = 64
#: Keys of ``build``'s args that are ``[cluster]`` settings (besides them only "engine").
BUILD_KEYS = (
    "replicas",
    "min_replicas",
    "max_replicas",
    "upscale_delay_s",
    "downscale_delay_s",
    "gpus_per_replica",
    "cpus_per_replica",
    "text_encoders",
    "encoder_replicas",
    "encoder_gpus_per_replica",
    "encoder_cpus_per_replica",
    # the engine replicas' waits on the shared text encoders, and the step timeout bounding them
    "ready_timeout_s",
    "encode_timeout_s",
    "step_timeout_s",
)


def engine_app(
    cluster: ClusterConfig,
    engine_options: Mapping[str, Any],
    factory: EngineFactory | None,
    fingerprint: str,
    encoder_class: type[TextEncoderReplica] = TextEncoderReplica,
) -> Application:
    """Replicas of one engine each, one batch at a time per replica; with shared text encoders,
    a second deployment of encoders the engine replicas call (the engine stays the ingress).
    ``encoder_class`` (tests) replaces the encoder replica's class; it must be importable on
    the cluster."""
    scaling: dict[str, Any] = (
        {
            "autoscaling_config": {
                "min_replicas": cluster.min_replicas,
                "max_replicas": cluster.max_replicas,
                # one batch per replica at a time: a waiting batch asks for another replica
                "target_ongoing_requests": 1,
                "upscale_delay_s": cluster.upscale_delay_s,
                "downscale_delay_s": cluster.downscale_delay_s,
            }
        }
        if cluster.autoscaling
        else {"num_replicas": cluster.replicas}
    )
    # serve.deployment(options)(cls): Ray types only this form as returning a Deployment
    deployment = serve.deployment(
        name=DEPLOYMENT,
        max_ongoing_requests=1,
        ray_actor_options={
            "num_gpus": cluster.gpus_per_replica,
            "num_cpus": cluster.cpus_per_replica,
        },
        **scaling,
    )(EngineReplica)
    if not cluster.shared_encoders:
        return deployment.bind(dict(engine_options), factory, fingerprint)
    encoders = serve.deployment(
        name=ENCODERS,
        num_replicas=cluster.encoder_replicas,
        # engine replicas queue their prompts here; each replica encodes one request at a time
        max_ongoing_requests=_ENCODER_QUEUE,
        ray_actor_options={
            "num_gpus": cluster.encoder_gpus_per_replica,
            "num_cpus": cluster.encoder_cpus_per_replica,
        },
    )(encoder_class).bind(dict(engine_options))
    timeouts = (cluster.ready_timeout_s, cluster.encode_timeout_s)
    return deployment.bind(dict(engine_options), factory, fingerprint, encoders, timeouts)


def build(args: dict[str, Any]) -> Application:
    """Serve application builder for operators (see the module docstring). A key it does not
    know is refused by name: a misspelt one would otherwise deploy the defaults unnoticed."""
    for key in args:
        if key != "engine" and key not in BUILD_KEYS:
            raise ConfigError(
                f"daemon.cluster.app:build args has unknown key {key!r}",
                field=f"args.{key}",
                allowed=", ".join(("engine", *BUILD_KEYS)),
            )
    cluster = parse_cluster({k: args[k] for k in BUILD_KEYS if k in args})
    return engine_app(cluster, args.get("engine", {}), None, "operator")
