"""The ``[cluster]`` table of the daemon config: which engine backend, and how to reach Ray.

Read from the TOML file only (like ``[engine]``). Imports nothing from Ray, so a daemon without
the ``cluster`` extra still reads and checks its configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shared_protocol.errors import HYMotionError

BACKENDS = ("local", "ray")
AUTH_MODES = ("token", "none")
#: Where the text encoders run: inside every engine replica, or as one deployment they share.
ENCODER_LAYOUTS = ("per_replica", "shared")


@dataclass(frozen=True)
class ClusterConfig:
    backend: str = "local"
    #: ``ray.init`` address: "auto" joins the cluster this machine is a node of.
    address: str = "auto"
    namespace: str = "hymotion"
    #: Serve application name; one daemon (or several sharing one app) per name.
    app: str = "hymotion"
    #: Deploy (or update) the app at start; false: use the app an operator deployed.
    deploy: bool = True
    replicas: int = 1
    #: Autoscaling bounds; setting ``max_replicas`` turns autoscaling on.
    min_replicas: int = 1
    max_replicas: int | None = None
    #: Serve's autoscaler (with ``max_replicas``): how long more (fewer) replicas must be
    #: wanted before it adds (removes) one.
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    text_encoders: str = "per_replica"
    #: The shared encoder deployment (``text_encoders = "shared"``): its size and resources.
    encoder_replicas: int = 1
    encoder_gpus_per_replica: float = 1.0
    encoder_cpus_per_replica: float = 1.0
    #: How long an engine replica waits for one call to the shared encoders (queue included)
    #: before it sends the encoding once more; at most a third of ``step_timeout_s``.
    encode_timeout_s: float = 20.0
    auth: str = "token"
    token_file: Path | None = None
    #: A replica silent for this long (no progress event) is treated as lost.
    step_timeout_s: float = 60.0
    #: How long the daemon waits at start for the replicas to load their models.
    ready_timeout_s: float = 600.0
    health_interval_s: float = 2.0

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None

    @property
    def slots(self) -> int:
        """Batches the daemon keeps in flight: one per replica there may be."""
        return self.max_replicas if self.max_replicas is not None else self.replicas

    @property
    def replica_device(self) -> str:
        return "cuda" if self.gpus_per_replica > 0 else "cpu"

    @property
    def shared_encoders(self) -> bool:
        return self.text_encoders == "shared"


_KINDS: dict[str, type | tuple[type, ...]] = {
    "backend": str,
    "address": str,
    "namespace": str,
    "app": str,
    "deploy": bool,
    "replicas": int,
    "min_replicas": int,
    "max_replicas": int,
    "upscale_delay_s": (int, float),
    "downscale_delay_s": (int, float),
    "gpus_per_replica": (int, float),
    "cpus_per_replica": (int, float),
    "text_encoders": str,
    "encoder_replicas": int,
    "encoder_gpus_per_replica": (int, float),
    "encoder_cpus_per_replica": (int, float),
    "encode_timeout_s": (int, float),
    "auth": str,
    "token_file": str,
    "step_timeout_s": (int, float),
    "ready_timeout_s": (int, float),
    "health_interval_s": (int, float),
}


#: With shared encoders, an encoding whose call fails (its encoder replica died, or gave no
#: answer within ``encode_timeout_s``) is sent this many times in all (text_replica.py).
ENCODE_ATTEMPTS = 2


#: The autoscaler's delays: up to a day.
_MAX_DELAY_S = 86400

_RESOURCE_KEYS = (
    "gpus_per_replica",
    "cpus_per_replica",
    "encoder_gpus_per_replica",
    "encoder_cpus_per_replica",
)


def parse_cluster(table: Any) -> ClusterConfig:
    """``[cluster]`` -> ClusterConfig; ConfigError names the bad ``cluster.<key>``."""
    from daemon.config import ConfigError  # late: daemon.config imports this module

    if not isinstance(table, Mapping):
        raise ConfigError("[cluster] must be a table", field="cluster")
    known = {f.name for f in fields(ClusterConfig)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"cluster.{key}"
        if key not in known:
            raise ConfigError(
                f"[cluster] has unknown key {key!r}", field=where, allowed=", ".join(known)
            )
        kind = _KINDS[key]
        if not _has_kind(value, kind):
            raise ConfigError(f"{where} must be {_kind_name(kind)}, got {value!r}", field=where)
        if isinstance(value, float) and not math.isfinite(value):  # TOML reads inf and nan
            raise ConfigError(f"{where} must be a finite number, got {value!r}", field=where)
        values[key] = Path(value).expanduser() if key == "token_file" else value
    config = ClusterConfig(**values)
    _check(config, ConfigError)
    return config


def _has_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    """TOML booleans are ints to Python: only a ``bool`` key takes true/false."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return "a number" if isinstance(kind, tuple) else kind.__name__


def _check(config: ClusterConfig, error: type[HYMotionError]) -> None:
    def refuse(key: str, message: str, allowed: str) -> None:
        raise error(f"cluster.{key} {message}", field=f"cluster.{key}", allowed=allowed)

    if config.backend not in BACKENDS:
        refuse("backend", f"{config.backend!r} is unknown", ", ".join(BACKENDS))
    if config.auth not in AUTH_MODES:
        refuse("auth", f"{config.auth!r} is unknown", ", ".join(AUTH_MODES))
    if config.text_encoders not in ENCODER_LAYOUTS:
        refuse("text_encoders", f"{config.text_encoders!r} is unknown", ", ".join(ENCODER_LAYOUTS))
    for key in ("replicas", "encoder_replicas"):
        if getattr(config, key) < 1:
            refuse(key, "must be at least 1", ">= 1")
    if config.min_replicas < 0:
        refuse("min_replicas", "must be 0 or more", ">= 0")
    if config.max_replicas is not None and config.max_replicas < max(1, config.min_replicas):
        refuse("max_replicas", "must be at least 1 and at least min_replicas", ">= min_replicas")
    for key in _RESOURCE_KEYS:
        if getattr(config, key) < 0:
            refuse(key, "must be 0 or more (fractions share a device)", ">= 0")
    for key in ("upscale_delay_s", "downscale_delay_s"):
        if not 0 <= getattr(config, key) <= _MAX_DELAY_S:
            refuse(key, f"must be 0 to {_MAX_DELAY_S} seconds", f"0-{_MAX_DELAY_S}")
    for key in ("step_timeout_s", "ready_timeout_s", "health_interval_s", "encode_timeout_s"):
        if getattr(config, key) <= 0:
            refuse(key, "must be greater than 0", "> 0")
    _check_encode_timeout(config, refuse)


def _check_encode_timeout(config: ClusterConfig, refuse: Callable[[str, str, str], None]) -> None:
    """With shared encoders, an encoder that hangs must be answered by the engine replica's
    typed error, never by the daemon's step timeout (which would re-run the batch elsewhere)."""
    # every attempt may take encode_timeout_s; one more leaves room for routing and reporting
    limit = config.step_timeout_s / (ENCODE_ATTEMPTS + 1)
    if config.shared_encoders and config.encode_timeout_s > limit:
        refuse(
            "encode_timeout_s",
            f'is {config.encode_timeout_s:g} s: with text_encoders = "shared" it must be at '
            f"most a third of cluster.step_timeout_s ({config.step_timeout_s:g} s), so both "
            "attempts of an encoding end before the step timeout; lower it or raise "
            "step_timeout_s",
            f"> 0 and <= {limit:g}",
        )
