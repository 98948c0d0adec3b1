"""The Ray Serve engine backend: batches run on replicas anywhere in a Ray cluster.

The daemon stays the front door (protocol, keys, quotas, fairness, results); with
``[cluster] backend = "ray"`` its batches go to a Serve deployment whose replicas each own one
engine on one device. Modules, from the wire inward:

- ``config``: the ``[cluster]`` table (no Ray import: the daemon reads it without Ray installed);
- ``messages``: what travels between the daemon and a replica (requests, events, outcomes);
- ``replica``: the Serve deployment (runs on the cluster);
- ``cancel_board``: the actor that carries cancellations to the replica running a job;
- ``engine_view``: the daemon's Engine facade over the deployment (models, batch keys, admission);
- ``dispatch``: one loop per replica slot: send a batch, stream progress, re-run once on a death;
- ``backend``: connects, deploys, watches the cluster's health; ``metrics``: per-replica series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.config import DaemonConfig

    from .backend import RayBackend


def connect_ray(config: DaemonConfig) -> RayBackend:
    """Join the cluster named in ``config.cluster``; ConfigError when Ray is not installed."""
    from daemon.config import ConfigError

    try:
        from .backend import RayBackend
    except ImportError as exc:
        raise ConfigError(
            f"cluster.backend = 'ray' needs Ray Serve ({exc}); install the cluster extra: "
            "pip install 'hy-motion-blender[daemon,cluster]'",
            field="cluster.backend",
        ) from exc
    return RayBackend.connect(config)
