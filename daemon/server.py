"""The transport and lifecycle: one ROUTER socket, its receive loop, workers, shutdown.

``serve()`` is ``startup()`` -> wait for the stop event -> ``shutdown()``. The receive loop only
decodes and dispatches; it never waits on inference. A message cannot kill the loop: frames
without the protocol signature are dropped and counted, anything else that fails to decode is
answered with a typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import zmq
import zmq.asyncio

from daemon.auth import AllowList, start_auth, watch_handshakes
from daemon.backend import EngineBackend, LocalBackend
from daemon.config import ConfigError, DaemonConfig, metrics_address
from daemon.engine_api import Engine
from daemon.lifecycle import JobLifecycle, internal_error
from daemon.logs import EventLog, close_handlers, new_log_id, setup_logging
from daemon.metrics import Metrics, MetricsUnavailable
from daemon.service import Service
from shared_protocol import (
    REQUEST_LIMITS,
    Error,
    HYMotionError,
    Message,
    ProtocolError,
    decode,
    encode,
    new_id,
)
from shared_protocol.keys import KeyFileError, load_keypair
from shared_protocol.wire import REQUEST_FRAME_HARD_LIMIT, check_signature, salvage_id

_RCVHWM = 100
#: Messages queued for one connection that is not reading; past it, sends to it are dropped
#: (libzmq's default, set here so docs/protocol.md can state it).
SNDHWM = 1000
#: A connection must finish its ZMTP (and CURVE) handshake within this.
HANDSHAKE_IVL_MS = 5000
#: Bounded wait for an engine to notice a cancel once the grace period is over.
CANCEL_WAIT_S = 10.0
#: Long enough for the final replies of a drain to leave; a closing daemon never hangs on it.
_SHUTDOWN_LINGER_MS = 500


class Server:
    def __init__(
        self,
        config: DaemonConfig,
        engines: Sequence[Engine] = (),
        log_name: str | None = None,
        backend: EngineBackend | None = None,
    ) -> None:
        """``engines``: one per configured device (the local backend), unless ``backend``."""
        self.config = config
        self.backend = backend or LocalBackend(config.devices, engines, config.batch_window_s)
        self._log_name = log_name or f"hymotion.daemon.{new_id()[:8]}"
        self.address = ""
        # Device series only for devices the daemon itself runs on (the Ray backend has replicas).
        self.metrics = Metrics(config.devices if backend is None else ())
        self.log: EventLog
        self.lifecycle: JobLifecycle
        self.service: Service
        self.allow_list: AllowList | None = None
        self._context: zmq.asyncio.Context
        self._socket: zmq.asyncio.Socket
        self._tasks: list[asyncio.Task[Any]] = []
        self._auth: Any = None
        self._metrics_http: Any = None
        self._log_handlers: list[Any] = []

    async def serve(self, stop: asyncio.Event) -> None:
        await self.startup()
        try:
            await stop.wait()
        finally:
            await self.shutdown()

    # --- startup -------------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self.config
        with _writable("log_dir", config.logs_path):
            self.log, self._log_handlers = setup_logging(
                config.log_level,
                config.log_stderr,
                config.logs_path if config.log_file else None,
                self._log_name,
            )
        try:
            with _writable("state_dir", config.state_path):
                # Quota usage is saved here while serving: find out now, not on the first job.
                config.state_path.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=config.state_path).close()
        except ConfigError:
            close_handlers(self._log_name, self._log_handlers)
            raise
        self._context = zmq.asyncio.Context()
        try:
            self._socket = self._router()
        except ConfigError:
            self._context.term()
            close_handlers(self._log_name, self._log_handlers)
            raise
        engine = self.backend.engine
        self.lifecycle = JobLifecycle(
            config,
            {m.name: m for m in engine.models()},
            self,
            self.log,
            self.metrics,
            self.backend.wake,
            workers=self.backend.capacity(),
        )
        self.service = Service(config, engine, self.lifecycle, self, self.log, self.metrics)
        try:
            self._socket.bind(config.bind)
            self._serve_metrics()
        except (zmq.ZMQError, ConfigError) as exc:
            self._close_transport()
            close_handlers(self._log_name, self._log_handlers)
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(
                f"bind: cannot bind {config.bind}: {exc.strerror} (is another daemon running?)",
                field="bind",
            ) from exc
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive_loop(), name="receive")]
        self._tasks += [
            loop.create_task(runner)
            for runner in self.backend.start(self.lifecycle, self.log, self.metrics)
        ]
        if config.curve:
            self._tasks.append(
                loop.create_task(watch_handshakes(self._socket, self.log, self.metrics))
            )
        if self.lifecycle.quotas.load_error is not None:
            self.log.error("quota_usage_unreadable", error=self.lifecycle.quotas.load_error)
        self.log.info(
            "started",
            address=self.address,
            curve=config.curve,
            devices=list(config.devices),
            session=self.service.session,
            models=[(m.name, m.available, m.error) for m in self.lifecycle.models.values()],
            metrics=config.metrics_bind,
        )

    def _serve_metrics(self) -> None:
        """The Prometheus endpoint, when asked for: a port in use stops the daemon (the
        operator asked for it), a missing optional library does not."""
        if self.config.metrics_bind is None:
            return
        host, port = metrics_address(self.config.metrics_bind)
        try:
            self._metrics_http = self.metrics.serve_http(host, port)
        except MetricsUnavailable as exc:  # an optional extra: serve without it
            self.log.error("metrics_unavailable", error=str(exc))
        except OSError as exc:
            raise ConfigError(
                f"metrics_bind: cannot serve metrics on {self.config.metrics_bind}: "
                f"{exc.strerror or exc}",
                field="metrics_bind",
            ) from exc

    def _router(self) -> zmq.asyncio.Socket:
        """The ROUTER socket, with CURVE when configured (a key file that cannot be used
        stops the daemon, naming its option)."""
        config = self.config
        if config.curve:
            assert config.server_secret_key is not None and config.allowed_keys_dir is not None
            with _key_option("server_secret_key"):
                keys = load_keypair(config.server_secret_key)
            with _key_option("allowed_keys_dir"):
                self.allow_list = AllowList(config.allowed_keys_dir, self.log, self.metrics)
            self._auth = start_auth(self._context, self.allow_list)
        socket = self._context.socket(zmq.ROUTER)
        # Sends to a vanished peer raise EHOSTUNREACH: that is how a dead client is noticed.
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        socket.setsockopt(zmq.MAXMSGSIZE, REQUEST_FRAME_HARD_LIMIT)
        socket.setsockopt(zmq.RCVHWM, _RCVHWM)
        socket.setsockopt(zmq.SNDHWM, SNDHWM)
        socket.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_IVL_MS)
        socket.setsockopt(zmq.HEARTBEAT_IVL, int(config.heartbeat_s * 1000))
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, int(config.heartbeat_s * 3000))
        socket.setsockopt(zmq.LINGER, 0)
        if config.curve:
            socket.curve_secretkey = keys.secret
            socket.curve_publickey = keys.public
            socket.curve_server = True
        return socket

    def reload(self) -> None:
        """SIGHUP: re-read the allow-list (existing connections keep their identity)."""
        if self.allow_list is not None:
            self.allow_list.reload()

    # --- transport -----------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while True:
            frames = await self._socket.recv_multipart(copy=False)
            try:
                self._on_frames(frames)
            except Exception:  # never let one message end the loop
                self.log.error("receive_failed", exc=True, log_id=new_log_id())

    def _on_frames(self, frames: list[zmq.Frame]) -> None:
        peer = frames[0].bytes
        body = [f.bytes for f in frames[1:]]
        user_id = self._user_id(frames[-1]) if self.config.curve else None
        try:
            if not body:
                raise ProtocolError("empty message")
            check_signature(body[0])
        except ProtocolError as exc:
            if exc.code == "bad_request":  # no HYMP signature at all: garbage, drop silently
                self.metrics.malformed.labels(reason="no_signature").inc()
                return
            self.metrics.malformed.labels(reason=exc.code).inc()
            self.log.debug("malformed", reason=exc.message, artist=user_id)
            self.send(peer, Error.from_exception(exc), None)
            return
        try:
            envelope = decode(body, REQUEST_LIMITS)
        except ProtocolError as exc:
            self.metrics.malformed.labels(reason=exc.code).inc()
            # Answer the request's id whenever it can be read, so its sender is not left waiting.
            request_id = salvage_id(body[1]) if len(body) > 1 else None
            self.log.debug("malformed", reason=exc.message, artist=user_id, request_id=request_id)
            self.send(peer, Error.from_exception(exc), request_id)
            return
        self.service.handle(peer, user_id, envelope)

    @staticmethod
    def _user_id(frame: zmq.Frame) -> str | None:
        try:
            user_id = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        return user_id if isinstance(user_id, str) and user_id else None

    def send(self, peer: bytes, message: Message, re: str | None) -> None:
        """Send without ever blocking; a vanished peer's jobs are cancelled."""
        frames = self._encode(message, re)
        # With DONTWAIT pyzmq tries the send at once and returns an already-settled future.
        future = cast(
            "asyncio.Future[Any]",
            self._socket.send_multipart([peer, *frames], flags=zmq.DONTWAIT),
        )
        exc = future.exception() if future.done() else None
        if exc is None:
            return
        if isinstance(exc, zmq.Again):  # the peer is at its high-water mark: it is not reading
            self.metrics.dropped_sends.labels(why="hwm").inc()
        elif isinstance(exc, zmq.ZMQError) and exc.errno == zmq.EHOSTUNREACH:
            self.metrics.dropped_sends.labels(why="peer_gone").inc()
            # Later, not now: the caller may be iterating over this peer's jobs.
            asyncio.get_running_loop().call_soon(self._peer_gone, peer)
        else:
            raise exc

    def _encode(self, message: Message, re: str | None) -> list[bytes]:
        """Frames for ``message``; one the daemon cannot encode is its own fault, so the peer
        gets ``internal`` with a log id instead (never ``bad_request``)."""
        try:
            return encode(message.envelope(re=re, session=self.service.session))
        except HYMotionError as exc:
            log_id = new_log_id()
            self.log.error("unencodable_reply", log_id=log_id, type=message.TYPE, error=exc.message)
            error = internal_error(f"the daemon could not encode its {message.TYPE}", log_id)
            return encode(error.envelope(re=re, session=self.service.session))

    def _peer_gone(self, peer: bytes) -> None:
        self.service.forget(peer)
        self.lifecycle.peer_gone(peer)

    # --- shutdown ------------------------------------------------------------------------------

    def _close_transport(self, linger_ms: int = 0) -> None:
        if self._auth is not None:
            self._auth.stop()
        self._socket.close(linger=linger_ms)
        self._context.term()

    async def shutdown(self) -> None:
        """Stop admitting, tell queued clients to retry, drain or cancel, close, flush logs."""
        started = time.monotonic()
        self.log.info(
            "shutdown_begin",
            queued=self.lifecycle.scheduler.depth,
            running=len(self.backend.running()),
        )
        self.lifecycle.begin_shutdown()
        try:
            await asyncio.wait_for(self.backend.wait_idle(), self.config.grace_period_s)
        except TimeoutError:
            self.log.warning(
                "grace_period_over", cancelling=[j.job_id for j in self.backend.running()]
            )
            self.lifecycle.cancel_running()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.backend.wait_idle(), CANCEL_WAIT_S)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.lifecycle.quotas.save()  # every job has been charged: a clean stop loses nothing
        self.backend.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        self._close_transport(_SHUTDOWN_LINGER_MS)
        self.log.info("shutdown_done", seconds=round(time.monotonic() - started, 3))
        close_handlers(self._log_name, self._log_handlers)


@contextlib.contextmanager
def _key_option(option: str) -> Iterator[None]:
    """A key file that cannot be used is a bad value of ``option``: exit code 2, named."""
    try:
        yield
    except KeyFileError as exc:
        raise ConfigError(f"{option}: {exc.message}", field=option) from exc


@contextlib.contextmanager
def _writable(option: str, directory: Path) -> Iterator[None]:
    """A directory the daemon cannot write is a bad value of ``option``: exit code 2, named."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(
            f"{option}: cannot write in {directory}: {exc.strerror or exc}", field=option
        ) from exc
