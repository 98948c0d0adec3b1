"""``RayBackend``: the daemon joins a Ray cluster and runs its batches on a Serve deployment.

``RayBackend.connect(config)`` (blocking, before the server starts): joins the cluster, deploys
the engine app unless an identical one is already running (a restarted daemon finds its
replicas warm), asks one replica to describe its engine, and starts the CancelBoard. Refuses
with ``ConfigError`` (exit 2) when Ray cannot be reached. While serving, a health check every
``health_interval_s`` counts live replicas (the queue's ETA divides by them) and notices a lost
cluster: new jobs get ``busy`` until it answers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from typing import Any, TypeVar

import ray
from ray import serve

from daemon import __version__
from daemon.config import ConfigError, DaemonConfig
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle
from daemon.logs import EventLog
from daemon.metrics import Metrics
from shared_protocol import ModelUnavailable

from .app import DEPLOYMENT, engine_app
from .cancel_board import Board, start_board
from .config import ClusterConfig
from .dispatch import DispatchSlot, SlotContext, first_line
from .engine_calls import EngineCalls
from .engine_view import ClusterEngine
from .messages import EngineProfile
from .metrics import ClusterMetrics
from .replica import EngineFactory
from .session import leave
from .text_replica import TextEncoderReplica

#: How long describing an already deployed app may take before it counts as absent.
_DESCRIBE_TIMEOUT_S = 15.0
_CONNECT_TIMEOUT_S = 5.0
#: A health check slower than this counts as the cluster lost (a busy one answers in < 1 s).
_HEALTH_TIMEOUT_S = 10.0
#: Leaving a lost cluster can hang in Ray; the daemon gives up on it after this.
_SHUTDOWN_TIMEOUT_S = 10.0
#: Ray's own setting: seconds a driver waits for a lost head before Ray ends its process.
_RECONNECT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
_OUTLIVE_HEAD_S = 10 * 365 * 24 * 3600
T = TypeVar("T")


class RayBackend:
    def __init__(
        self,
        config: DaemonConfig,
        engine_factory: EngineFactory | None = None,
        encoder_class: type[TextEncoderReplica] = TextEncoderReplica,
    ) -> None:
        """Use :meth:`connect`. ``engine_factory`` (tests, benchmarks) replaces
        ``daemon.engine.factory.create_engine`` on the replicas, ``encoder_class`` (tests) the
        shared text-encoder replica's class; they must be importable there."""
        self._config = config
        self._cluster: ClusterConfig = config.cluster
        self._factory = engine_factory
        self._encoders = encoder_class
        self.engine: ClusterEngine
        self.slots: list[DispatchSlot] = []
        self._board: Board | None = None
        self._handle: Any = None
        #: Every DeploymentHandle this Ray session made: stopped when the daemon leaves it.
        self._handles: list[Any] = []
        #: The slots' handle, its router on the daemon's loop.
        self._calls = EngineCalls(self._cluster.app, self._handles)
        self._down: str | None = None
        self._live = self._cluster.replicas
        self._log: EventLog | None = None
        self._context: SlotContext
        self._lifecycle: JobLifecycle | None = None
        self._metrics: ClusterMetrics | None = None
        #: What connecting found and did, logged once the daemon's log exists.
        self.facts: dict[str, Any] = {}

    # --- connecting ----------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        config: DaemonConfig,
        engine_factory: EngineFactory | None = None,
        encoder_class: type[TextEncoderReplica] = TextEncoderReplica,
    ) -> RayBackend:
        backend = cls(config, engine_factory, encoder_class)
        backend._connect()
        return backend

    def _connect(self) -> None:
        cluster = self._cluster
        started = time.monotonic()
        profile, deployed = self._join()
        self.engine = ClusterEngine(profile, self.down_reason)
        self.engine.retry_after_s = max(1.0, 2 * cluster.health_interval_s)
        self._live = self._count_running() or self._live
        self.facts = {
            "address": cluster.address,
            "namespace": cluster.namespace,
            "app": cluster.app,
            "deployed": deployed,
            "replicas": self._live,
            "slots": cluster.slots,
            "seconds": round(time.monotonic() - started, 3),
        }

    def _join(self) -> tuple[EngineProfile, bool]:
        """Join the cluster, make sure the app runs, start the CancelBoard (blocking).
        ConfigError when Ray cannot be reached; (the app's profile, whether it was deployed)."""
        cluster = self._cluster
        _driver_environment(cluster)
        _check_reachable(cluster.address)
        try:
            ray.init(
                address=cluster.address,
                namespace=cluster.namespace,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Ray cluster at {cluster.address!r}: {first_line(exc)}. "
                "Start it (`ray start --head`), join this machine to it (`ray start "
                "--address=HEAD:6379`), or fix cluster.address",
                field="cluster.address",
            ) from exc
        try:
            profile, deployed = self._ensure_app()
            self._board = start_board(cluster.ready_timeout_s)
        except BaseException:
            self._leave()
            raise
        return profile, deployed

    def _leave(self) -> None:
        """Leave the Ray session: its handles' routers first (see ``session``)."""
        self._handle, self._board = None, None
        leave(self._handles)

    def _rejoin(self) -> tuple[dict[str, int], EngineProfile | None]:
        """After an outage: the replica states, and the engine's profile when a new session
        was needed. A head that answers our session again (a network cut) needs nothing more;
        a new head (a restart) does: leave the old session and join as at start (deploying the
        app again when it is missing; an operator's app may now serve other models)."""
        _check_reachable(self._cluster.address)  # fast: ray calls hang on a dead head
        # A rejoin that failed before (no app yet, with deploy = false) left its session: Serve's
        # calls would then start a Ray instance of their own in this process.
        if ray.is_initialized():
            try:
                return _bounded(self._replica_states, _HEALTH_TIMEOUT_S), None
            except Exception:  # stuck or failing on the old session
                self._leave()
        profile, _ = self._join()
        return self._replica_states(), profile

    def _ensure_app(self) -> tuple[EngineProfile, bool]:
        """The running app's profile; (re)deploys it first when allowed and needed."""
        cluster = self._cluster
        want = self._fingerprint()
        current = self._describe(_DESCRIBE_TIMEOUT_S, quiet=True)
        if current is not None and (current.fingerprint == want or not cluster.deploy):
            return current, False
        if not cluster.deploy:
            raise ConfigError(
                f"no Serve application {cluster.app!r} answers on the Ray cluster and "
                "cluster.deploy is false: deploy it (docs/operations.md) or set deploy = true",
                field="cluster.app",
            )
        self._deploy(want)
        self._handle = None  # a handle made before the deploy may still route to old replicas
        profile = self._describe(cluster.ready_timeout_s, quiet=False)
        assert profile is not None  # quiet=False raises instead
        return profile, True

    def _fingerprint(self) -> str:
        cluster = self._cluster
        settings = {
            "engine": self._engine_options(),
            "factory": _qualname(self._factory),
            "replicas": None if cluster.autoscaling else cluster.replicas,
            "autoscaling": [
                cluster.min_replicas,
                cluster.max_replicas,
                cluster.upscale_delay_s,
                cluster.downscale_delay_s,
            ],
            "gpus": cluster.gpus_per_replica,
            "cpus": cluster.cpus_per_replica,
            "encoders": [
                cluster.text_encoders,
                cluster.encoder_replicas,
                cluster.encoder_gpus_per_replica,
                cluster.encoder_cpus_per_replica,
                # the engine replicas wait on shared encoders this long: bound at deploy
                [cluster.ready_timeout_s, cluster.encode_timeout_s, _qualname(self._encoders)]
                if cluster.shared_encoders
                else None,
            ],
            "version": __version__,
        }
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _engine_options(self) -> dict[str, Any]:
        # Paths are read on each replica's node; the daemon's data_dir is not theirs (a tiny
        # model without engine.tiny_dir goes to the node's ~/.cache/hy-motion/tiny).
        return dict(self._config.engine)

    def _deploy(self, fingerprint: str) -> None:
        cluster = self._cluster
        app = engine_app(
            cluster, self._engine_options(), self._factory, fingerprint, self._encoders
        )
        try:
            _bounded(
                lambda: serve.run(app, name=cluster.app, route_prefix=None),
                cluster.ready_timeout_s,
            )
        except FutureTimeout as exc:
            raise ModelUnavailable(
                f"the engine replicas were not ready within cluster.ready_timeout_s = "
                f"{cluster.ready_timeout_s:g} s ({self._app_message()}); check `ray status` "
                "for free GPUs/CPUs and the replica logs"
            ) from exc
        except RuntimeError as exc:  # a replica's constructor raised
            raise ModelUnavailable(
                f"deploying the engine on the Ray cluster failed: {first_line(exc)} "
                f"({self._app_message()})"
            ) from exc

    def _describe(self, timeout_s: float, quiet: bool) -> EngineProfile | None:
        try:
            if self._handle is None:
                self._handle = serve.get_app_handle(self._cluster.app)
                self._handles.append(self._handle)
            return self._handle.describe.remote().result(timeout_s=timeout_s)
        except Exception as exc:  # absent app, unhealthy replicas, timeout: all mean "not usable"
            if quiet:
                return None
            raise ModelUnavailable(
                f"the engine app {self._cluster.app!r} did not answer within {timeout_s:g} s: "
                f"{first_line(exc)}"
            ) from exc

    def _app_message(self) -> str:
        try:
            app = serve.status().applications.get(self._cluster.app)
        except Exception as exc:
            return f"status unknown: {first_line(exc)}"
        return f"{app.status}: {app.message}" if app is not None else "no such app"

    # --- EngineBackend -------------------------------------------------------------------------

    def capacity(self) -> int:
        return max(1, self._live)

    def down_reason(self) -> str | None:
        return self._down

    def start(
        self, lifecycle: JobLifecycle, log: EventLog, metrics: Metrics
    ) -> list[Coroutine[Any, Any, None]]:
        self._lifecycle, self._log = lifecycle, log
        self.engine.spread = lifecycle.scheduler.spread
        self._metrics = ClusterMetrics(metrics)
        self._metrics.up.set(1)
        assert self._board is not None  # connect() started it
        self._context = context = SlotContext(
            calls=self._calls,
            board=self._board,
            engine=self.engine,
            down=self.down_reason,
            step_timeout_s=self._cluster.step_timeout_s,
            ready_timeout_s=self._cluster.ready_timeout_s,
            batch_window_s=self._config.batch_window_s,
        )
        self.slots = [
            DispatchSlot(i, context, lifecycle, log, self._metrics)
            for i in range(self._cluster.slots)
        ]
        log.info("cluster_connected", **self.facts, replica=asdict(self.engine.profile.replica))
        return [slot.run() for slot in self.slots] + [self._watch_health()]

    def wake(self) -> None:
        for slot in self.slots:
            slot.wake()

    def running(self) -> list[Job]:
        return [job for slot in self.slots for job in slot.current]

    async def wait_idle(self) -> None:
        for slot in self.slots:
            await slot.idle.wait()

    def close(self) -> None:
        """Leave the cluster; the Serve app stays deployed and warm for the next daemon."""
        started = time.monotonic()
        try:
            _bounded(self._leave, _SHUTDOWN_TIMEOUT_S)
        except FutureTimeout:
            if self._log is not None:  # a lost cluster: the process exits without it
                self._log.warning("ray_shutdown_timeout", seconds=_SHUTDOWN_TIMEOUT_S)
            return
        if self._log is not None:
            self._log.info("cluster_left", seconds=round(time.monotonic() - started, 3))

    # --- health --------------------------------------------------------------------------------

    async def _watch_health(self) -> None:
        """Count live replicas every ``health_interval_s``; while the cluster is lost, try to
        rejoin it instead (a rejoin may deploy the app again: up to ``ready_timeout_s``)."""
        # The call in flight: a check stuck on a lost cluster may never return (Ray waits for
        # its old actors); a rejoin does not wait for it.
        probe: Future[tuple[dict[str, int], EngineProfile | None]] | None = None
        rejoining = False
        try:
            while True:
                await asyncio.sleep(self._cluster.health_interval_s)
                if probe is not None and not probe.done() and rejoining == (self._down is not None):
                    continue  # no pile-up of checks (or of rejoins) on a lost cluster
                rejoining = self._down is not None
                probe = _in_thread(self._rejoin if rejoining else self._check)
                limit_s = self._cluster.ready_timeout_s if rejoining else _HEALTH_TIMEOUT_S
                try:
                    states, rejoined = await asyncio.wait_for(
                        asyncio.shield(asyncio.wrap_future(probe)), limit_s
                    )
                except TimeoutError:
                    await self._lost(f"no answer to a health check within {limit_s:g} s")
                except Exception as exc:
                    await self._lost(first_line(exc))
                else:
                    if rejoined is not None:
                        self._use_new_session(rejoined)
                    self._mark_up(states)
        finally:
            # Shutdown cancels this task: the batch handle's router is this loop's to stop.
            await self._calls.close()

    def _check(self) -> tuple[dict[str, int], EngineProfile | None]:
        return self._replica_states(), None

    def _use_new_session(self, profile: EngineProfile) -> None:
        """After a rejoin: the slots use the new session's board (and make their handle in it
        at their next batch), and welcome, status and admission the models its engine app
        describes."""
        _restore_signal_handlers()
        assert self._board is not None  # the rejoin started a new one
        self._context.board = self._board
        self.engine.use(profile)
        if self._lifecycle is not None:
            self._lifecycle.models = {m.name: m for m in profile.models}
        if self._log is not None:
            self._log.info(
                "cluster_rejoined",
                address=self._cluster.address,
                models={m.name: m.available for m in profile.models},
                replica=asdict(profile.replica),
            )

    def _replica_states(self) -> dict[str, int]:
        app = serve.status().applications.get(self._cluster.app)
        if app is None or DEPLOYMENT not in app.deployments:
            raise RuntimeError(f"the Serve app {self._cluster.app!r} is gone")
        # Ray annotates the keys as ReplicaState; status() fills them with the states' str values
        return dict(app.deployments[DEPLOYMENT].replica_states)  # type: ignore[arg-type]

    def _count_running(self) -> int:
        try:
            return self._replica_states().get("RUNNING", 0)
        except Exception:
            return 0

    async def _lost(self, reason: str) -> None:
        self._mark_down(reason)
        await self._calls.close()  # its session may not come back; the next batch makes one

    def _mark_down(self, reason: str) -> None:
        assert self._log is not None and self._metrics is not None
        if self._down is None:
            self._log.error("cluster_unreachable", address=self._cluster.address, reason=reason)
        self._down = reason
        self._metrics.up.set(0)

    def _mark_up(self, states: dict[str, int]) -> None:
        assert self._log is not None and self._metrics is not None
        if self._down is not None:
            self._log.info("cluster_back", address=self._cluster.address, replicas=states)
            self._down = None
        self._metrics.up.set(1)
        for state, count in states.items():
            self._metrics.replicas.labels(state=state).set(count)
        live = states.get("RUNNING", 0)
        if live != self._live:
            self._log.info("cluster_replicas", running=live, states=states)
            self._live = live
            if self._lifecycle is not None:
                self._lifecycle.scheduler.set_workers(self.capacity())
            self.wake()


def _driver_environment(cluster: ClusterConfig) -> None:
    """Ray reads its token settings, and how long its driver outlives a lost head, from the
    environment when it connects."""
    # Ray ends a driver whose head has been unreachable for 60 s (the whole daemon with it);
    # the daemon waits for the head to come back instead, answering `busy` meanwhile.
    os.environ.setdefault(_RECONNECT_ENV, str(_OUTLIVE_HEAD_S))
    if cluster.auth == "none":
        os.environ["RAY_AUTH_MODE"] = "disabled"
        _reload_ray_auth()
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if cluster.token_file is not None:
        if not cluster.token_file.is_file():
            raise ConfigError(
                f"cluster.token_file {cluster.token_file} does not exist (copy the cluster's "
                "token there, e.g. from ~/.ray/auth_token on the head node)",
                field="cluster.token_file",
            )
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(cluster.token_file)
    _reload_ray_auth()


def _restore_signal_handlers() -> None:
    """Joining from a thread lets Ray's core worker take SIGTERM (it then ends the process
    without a drain): hand the daemon's signals back to Python's handlers (main thread)."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        handler = signal.getsignal(sig)
        if callable(handler):
            signal.signal(sig, handler)


def _reload_ray_auth() -> None:
    """Ray caches its auth settings when it loads; re-read them as Ray's own test helpers do
    (a daemon connects once, but tests and benchmarks connect several times per process)."""
    # ray/_raylet.pyi declares only the id types; both exist in the compiled module
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _check_reachable(address: str) -> None:
    """Refuse fast: ``ray.init`` retries an unreachable HOST:PORT forever."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return  # "auto" fails fast by itself; ray:// clients have their own timeout
    try:
        socket.create_connection((host.strip("[]"), int(port)), _CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r}: {exc.strerror or exc} (no Ray head "
            f"answers there within {_CONNECT_TIMEOUT_S:g} s). Start it (`ray start --head`) or "
            "fix cluster.address",
            field="cluster.address",
        ) from exc


def _in_thread(fn: Callable[[], T]) -> Future[T]:
    """``fn()`` in a daemon thread: a Ray call stuck on a lost cluster must not hold the
    daemon's exit (executor threads are joined at exit, daemon threads are not)."""
    done: Future[T] = Future()

    def run() -> None:
        try:
            done.set_result(fn())
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=run, name="ray-call", daemon=True).start()
    return done


def _bounded(fn: Callable[[], T], timeout_s: float) -> T:
    """``fn()``, given up on (not stopped) after ``timeout_s``."""
    return _in_thread(fn).result(timeout=timeout_s)


def _qualname(factory: EngineFactory | type | None) -> str:
    if factory is None:
        return "daemon.engine.factory.create_engine"
    return f"{factory.__module__}.{getattr(factory, '__qualname__', repr(factory))}"
