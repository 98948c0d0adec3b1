"""The daemon's configuration: one frozen ``DaemonConfig`` built once in ``main()``.

Precedence: command-line flags > ``HYMOTION_*`` environment variables > TOML file > defaults.
Every scalar option is declared once in ``OPTIONS``; flags, environment variables and the
operations guide are all derived from that table, so they cannot drift apart. Tables (quotas,
engine options) come from the file only.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from daemon.cluster.config import ClusterConfig, parse_cluster
from shared_protocol import FPS, MAX_FRAMES, REPLY_LIMITS, HYMotionError, frames_for_duration
from shared_protocol.addresses import is_loopback
from shared_protocol.constraints import MAX_TIMELINE_ROWS, TIMELINE_OVERLAP_FRAMES
from shared_protocol.keys import ARTIST_NAME, is_artist_name

ENV_PREFIX = "HYMOTION_"


class ConfigError(HYMotionError):
    """The configuration is invalid or unsafe; the daemon refuses to start."""

    code = "bad_config"
    hint = "Fix the option named in the message (see docs/operations.md)."


@dataclass(frozen=True)
class QuotaLimits:
    """Allowance per artist and fixed UTC window; None means unlimited."""

    jobs_per_hour: int | None = None
    jobs_per_day: int | None = None
    gpu_seconds_per_hour: float | None = None
    gpu_seconds_per_day: float | None = None


@dataclass(frozen=True)
class DaemonConfig:
    bind: str = "tcp://127.0.0.1:7878"
    data_dir: Path = field(default_factory=lambda: _default_data_dir())
    #: None: ``data_dir/logs`` and ``data_dir/state``.
    log_dir: Path | None = None
    state_dir: Path | None = None
    log_level: str = "info"
    log_stderr: bool = True
    log_file: bool = True
    max_queue: int = 64
    max_per_artist: int = 8
    max_candidates: int = 8
    max_timeline_s: float = 120.0
    batch_window_s: float = 0.015
    result_retention_s: float = 600.0
    reconnect_grace_s: float = 10.0
    heartbeat_s: float = 1.0
    grace_period_s: float = 30.0
    server_secret_key: Path | None = None
    allowed_keys_dir: Path | None = None
    admins: tuple[str, ...] = ()
    metrics_bind: str | None = None
    devices: tuple[str, ...] = ("cpu",)
    quota_default: QuotaLimits = QuotaLimits()
    quota_artists: Mapping[str, QuotaLimits] = field(default_factory=lambda: MappingProxyType({}))
    #: Passed unchanged to ``daemon.engine.factory.create_engine``.
    engine: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: The engine backend: local devices, or a Ray Serve cluster (``daemon/cluster``).
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def curve(self) -> bool:
        return self.server_secret_key is not None

    @property
    def logs_path(self) -> Path:
        return self.log_dir or self.data_dir / "logs"

    @property
    def state_path(self) -> Path:
        return self.state_dir or self.data_dir / "state"

    def quota_for(self, artist: str) -> QuotaLimits:
        return self.quota_artists.get(artist, self.quota_default)


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hy-motion"


# --- option table -----------------------------------------------------------------------------


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _optional_str(text: str) -> str | None:
    return text or None


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("bind", str, "ZeroMQ endpoint of the ROUTER socket; non-loopback requires CURVE"),
    Option("data_dir", Path, "root of everything the daemon writes"),
    Option("log_dir", Path, "JSON log files (default: DATA_DIR/logs)"),
    Option("state_dir", Path, "persistent state, e.g. quota usage (default: DATA_DIR/state)"),
    Option("log_level", str, "debug, info, warning or error"),
    Option("log_stderr", _bool, "write JSON log lines to stderr"),
    Option("log_file", _bool, "write JSON log lines to LOG_DIR/daemon.log"),
    Option("max_queue", _int, "queued jobs, all artists together, before 'busy'"),
    Option("max_per_artist", _int, "queued plus running jobs per artist before 'busy'"),
    Option("max_candidates", _int, "most candidates one generate request may ask for"),
    Option("max_timeline_s", _float, "longest joined clip a timeline request may ask for, seconds"),
    Option("batch_window_s", _float, "how long a free worker waits for more jobs to batch"),
    Option("result_retention_s", _float, "how long finished results stay available to fetch"),
    Option(
        "reconnect_grace_s", _float, "how long a vanished client's jobs wait for it to re-attach"
    ),
    Option("heartbeat_s", _float, "ZMTP heartbeat interval; a peer is dead after 3 missed"),
    Option("grace_period_s", _float, "on SIGTERM, how long the running batch may finish"),
    Option("server_secret_key", Path, "CURVE server .key_secret file (enables CURVE)"),
    Option("allowed_keys_dir", Path, "directory of allowed artist public keys (NAME.key)"),
    Option("admins", _names, "artist names that see and may cancel every job"),
    Option("metrics_bind", _optional_str, "HOST:PORT for Prometheus metrics; empty = off"),
    Option("devices", _names, "devices to run one worker each on, e.g. cuda:0,cuda:1"),
)
_PATH_OPTIONS = {"data_dir", "log_dir", "state_dir", "server_secret_key", "allowed_keys_dir"}
_TABLES = {"quotas", "engine", "cluster"}


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper()


def flag_name(option: str) -> str:
    return "--" + option.replace("_", "-")


# --- building ---------------------------------------------------------------------------------


def load_config(
    file: Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, str | None],
) -> DaemonConfig:
    """Merge file, environment and flags (flags win) into a checked DaemonConfig."""
    values: dict[str, Any] = {}
    tables: dict[str, Any] = {}
    if file is not None:
        values, tables = _read_file(file)
    by_name = {o.name: o for o in OPTIONS}
    given = [(o, environ.get(env_name(o.name)), env_name(o.name)) for o in OPTIONS]
    given += [(by_name[name], raw, flag_name(name)) for name, raw in flags.items()]
    for option, raw, where in given:  # in precedence order: the last one given wins
        if raw is None:
            continue
        if option.name in _PATH_OPTIONS and not raw:
            values.pop(option.name, None)  # Path("") would be the working directory
        else:
            values[option.name] = _parse(option, raw, where)
    config = DaemonConfig(**values, **_tables(tables))
    check_config(config)
    return config


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    known = {o.name for o in OPTIONS}
    unknown = set(data) - known - _TABLES
    if unknown:
        raise ConfigError(
            f"{path}: unknown option(s) {', '.join(sorted(unknown))}",
            field=sorted(unknown)[0],
            allowed=", ".join(sorted(known | _TABLES)),
        )
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.name not in data:
            continue
        value = data[option.name]
        where = f"{path}: {option.name}"
        if option.name in _PATH_OPTIONS:
            if not _typed(value, str, where):
                continue  # empty: the default, as from a flag or the environment
            # Relative paths in a file are relative to the file, not to wherever it is run from.
            value = path.parent / value
        elif option.parse is _names:
            value = tuple(_typed(v, str, where) for v in _typed(value, list, where))
        elif option.parse is _bool:
            value = _typed(value, bool, where)
        elif option.parse is _float:
            value = float(_typed(value, (int, float), where))
        elif option.parse is _int:
            value = _typed(value, int, where)
        else:
            value = _typed(value, str, where) or None
        values[option.name] = value
    return values, {k: data[k] for k in _TABLES if k in data}


def _typed(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where} must be {names}, got {value!r}", field=where)
    return value


def _parse(option: Option, raw: str, where: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{where} ({option.name}): {exc}", field=option.name) from exc


def _tables(tables: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    engine = tables.get("engine", {})
    if not isinstance(engine, dict):
        raise ConfigError("[engine] must be a table", field="engine")
    out["engine"] = MappingProxyType(dict(engine))
    out["cluster"] = parse_cluster(tables.get("cluster", {}))
    quotas = tables.get("quotas", {})
    if not isinstance(quotas, dict):
        raise ConfigError("[quotas] must be a table", field="quotas")
    unknown = sorted(set(quotas) - {"default", "artists"})
    if unknown:  # a misspelt table would silently leave everybody unlimited
        raise ConfigError(
            f"[quotas] has unknown key {unknown[0]!r}",
            field=f"quotas.{unknown[0]}",
            allowed="default, artists",
        )
    out["quota_default"] = _quota(quotas.get("default", {}), "quotas.default")
    artists = quotas.get("artists", {})
    if not isinstance(artists, dict):
        raise ConfigError("[quotas.artists] must be a table of tables", field="quotas.artists")
    out["quota_artists"] = MappingProxyType(
        {name: _quota(limits, f"quotas.artists.{name}") for name, limits in artists.items()}
    )
    return out


def _quota(table: Any, where: str) -> QuotaLimits:
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table", field=where)
    allowed = {f.name for f in fields(QuotaLimits)}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(
                f"[{where}] has unknown key {key!r}",
                field=f"{where}.{key}",
                allowed=", ".join(allowed),
            )
        kind: type | tuple[type, ...] = int if key.startswith("jobs") else (int, float)
        _typed(value, kind, f"{where}.{key}")
        if not math.isfinite(value) or value < 0:  # inf and nan would mean "unlimited" silently
            raise ConfigError(f"{where}.{key} must be a finite number >= 0", field=f"{where}.{key}")
    return QuotaLimits(**table)


#: Upper bound of batch_window_s, result_retention_s, grace_period_s and reconnect_grace_s.
MAX_DURATION_OPTION_S = 86400


def check_config(config: DaemonConfig) -> None:
    """Refuse unsafe or impossible settings before anything is bound."""
    for option in OPTIONS:
        value = getattr(config, option.name)
        # float() reads "inf" and "nan" (TOML too): no timer, estimate or reply can use them.
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{option.name} must be a finite number", field=option.name)
    positive = ("max_queue", "max_per_artist", "max_candidates")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0", field=name)
    _check_range(config, "heartbeat_s", HEARTBEAT_RANGE_S)
    for name in ("batch_window_s", "result_retention_s", "grace_period_s", "reconnect_grace_s"):
        # A day bounds every timer and retry hint built from them (a huge finite value made
        # the shutting-down hint infinite, which no reply can carry).
        _check_range(config, name, (0, MAX_DURATION_OPTION_S))
    _check_timeline_limit(config)
    _check_devices(config.devices)
    # A name no artist can have would silently never apply (an admin who is not one).
    named = [("admins", name) for name in config.admins]
    named += [(f"quotas.artists.{name}", name) for name in config.quota_artists]
    for where, name in named:
        if not is_artist_name(name):
            raise ConfigError(
                f"{where}: {name!r} is not an artist name", field=where, allowed=ARTIST_NAME.pattern
            )
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"log_level {config.log_level!r} is unknown",
            field="log_level",
            allowed="debug, info, warning, error",
        )
    if (config.server_secret_key is None) != (config.allowed_keys_dir is None):
        raise ConfigError(
            "CURVE needs both server_secret_key and allowed_keys_dir",
            field="server_secret_key" if config.server_secret_key is None else "allowed_keys_dir",
        )
    if not config.curve and not is_loopback(config.bind):
        raise ConfigError(
            f"refusing to bind {config.bind} without CURVE: anyone on the network could use the "
            "GPU and read prompts. Set server_secret_key and allowed_keys_dir (create keys with "
            "`python -m daemon keygen`), or bind tcp://127.0.0.1",
            field="bind",
            allowed="a loopback address, or any address with CURVE",
        )
    if config.metrics_bind is not None:
        metrics_address(config.metrics_bind)


#: libzmq takes whole milliseconds (under 1 ms would switch heartbeats off) and a 32-bit
#: timeout of 3 intervals; beyond 10 minutes a dead peer would hold its jobs for half an hour.
HEARTBEAT_RANGE_S = (0.01, 600.0)
#: From one full clip (a shorter limit would refuse timelines shorter than a plain request) to
#: the longest a timeline can be: a full first clip plus MAX_TIMELINE_ROWS of the longest row.
TIMELINE_RANGE_S = (
    MAX_FRAMES / FPS,
    (MAX_FRAMES + MAX_TIMELINE_ROWS * (MAX_FRAMES - TIMELINE_OVERLAP_FRAMES)) / FPS,
)
#: Result bytes per candidate and frame: float32 rotations (J, 4), joint positions (J, 3) and
#: pelvis (3) on the model's 22 joints.
_RESULT_BYTES_PER_FRAME = (22 * (4 + 3) + 3) * 4
#: The rest of a result message (header, skeleton arrays, signature) takes a few KB.
RESULT_OVERHEAD_BYTES = 64 * 1024


def _check_range(config: DaemonConfig, name: str, bounds: tuple[float, float]) -> None:
    """Refuse option ``name`` (seconds) outside ``bounds``, naming it and the range."""
    low, high = bounds
    value = getattr(config, name)
    if not low <= value <= high:
        raise ConfigError(
            f"{name} {value:g} is outside {low:g} to {high:g} s",
            field=name,
            allowed=f"{low:g}-{high:g} s",
        )


def _check_devices(devices: tuple[str, ...]) -> None:
    """One worker per device, named by it in status, metrics, logs and failures: each once."""
    if not devices:
        raise ConfigError("devices must name at least one device", field="devices")
    seen: dict[str, str] = {}
    for name in devices:
        key = "cuda:0" if name == "cuda" else name
        if key in seen:
            same = "twice" if seen[key] == name else f"twice ({name} is {seen[key]})"
            raise ConfigError(
                f"devices lists {name} {same}; each device runs one worker: list it once",
                field="devices",
            )
        seen[key] = name


def _check_timeline_limit(config: DaemonConfig) -> None:
    _check_range(config, "max_timeline_s", TIMELINE_RANGE_S)
    frames = frames_for_duration(config.max_timeline_s)
    result_bytes = config.max_candidates * frames * _RESULT_BYTES_PER_FRAME + RESULT_OVERHEAD_BYTES
    if result_bytes > REPLY_LIMITS.max_total_bytes:
        raise ConfigError(
            f"max_timeline_s {config.max_timeline_s:g} with max_candidates "
            f"{config.max_candidates}: the longest result would be {result_bytes / 2**20:.0f} "
            f"MiB, over the {REPLY_LIMITS.max_total_bytes >> 20} MiB a client accepts; lower "
            "one of them",
            field="max_timeline_s",
        )


def metrics_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"metrics_bind {text!r} is not HOST:PORT", field="metrics_bind", allowed="HOST:PORT"
        )
    return host.strip("[]"), int(port)


def with_overrides(config: DaemonConfig, **changes: Any) -> DaemonConfig:
    """A checked copy with some fields changed (tests and the benchmark build configs this way)."""
    updated = replace(config, **changes)
    check_config(updated)
    return updated
