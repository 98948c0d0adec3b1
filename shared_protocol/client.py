"""The client side of the protocol: one DEALER socket, usable polled or blocking.

In Blender's UI a ``bpy.app.timers`` callback calls ``poll(0)`` (a few microseconds when idle);
in ``blender -b`` and scripts, ``run()`` drives the same ``poll`` in a blocking loop. libzmq's own
I/O thread does the network work, so no Python thread is needed.

Reliability (Lazy Pirate, with idempotent resubmission):
- the socket uses ``IMMEDIATE``, so a request to a daemon that is down is kept here, not queued
  inside libzmq to be delivered minutes later;
- if no ``welcome`` arrives within ``connect_timeout_s``, every waiting job fails with
  :class:`DaemonUnreachable` (the UI can say so within a second);
- while jobs are outstanding the client pings after ``heartbeat_s`` of silence and, after
  ``heartbeat_s * liveness``, reopens the socket and resubmits them with the **same ids**; the
  daemon de-duplicates, so nothing runs twice while the daemon still has it. A ``welcome`` with
  a new ``server_session`` (daemon restarted) also triggers a resubmission.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
from zmq.utils.monitor import recv_monitor_message

from .errors import DaemonUnreachable, HYMotionError, ProtocolError, UnsupportedVersion
from .keys import KeyPair
from .messages import (
    Accepted,
    Cancel,
    Cancelled,
    Error,
    Fetch,
    Generate,
    Hello,
    Message,
    Ping,
    Pong,
    Result,
    StatusRequest,
    Welcome,
    parse_reply,
)
from .wire import PROTOCOL_VERSION, REPLY_LIMITS, decode, encode, new_id

#: The welcome capability of daemons that honour ``Generate.constraints`` (protocol 1.1).
DIRECTED = "constraints"

CLIENT_VERSION = "0.1.0"
_TERMINAL = (Result, Error, Cancelled)


@dataclass(frozen=True)
class ClientConfig:
    address: str
    artist: str = field(default_factory=getpass.getuser)
    #: Daemon's CURVE public key (z85); None for a plaintext loopback daemon.
    server_key: bytes | None = None
    client_keys: KeyPair | None = None
    connect_timeout_s: float = 1.0
    heartbeat_s: float = 2.0
    liveness: int = 3
    max_resubmits: int = 3
    client_name: str = "hy-motion-client"
    client_version: str = CLIENT_VERSION


@dataclass(frozen=True)
class Connected(Message):
    """Local event: the daemon answered hello (again, after a restart if ``restarted``)."""

    TYPE = "_connected"
    welcome: Welcome
    restarted: bool = False


@dataclass(frozen=True)
class Disconnected(Message):
    """Local event: the connection went silent; the client is reconnecting."""

    TYPE = "_disconnected"
    reason: str


@dataclass(frozen=True)
class Event:
    """One thing that happened: ``request_id`` is the request it answers (None if none)."""

    request_id: str | None
    message: Message


@dataclass
class _Pending:
    request: Generate
    job_id: str | None = None
    sent: bool = False
    resubmits: int = 0


class MotionClient:
    """A connection to one daemon. Not thread-safe: use it from one thread."""

    def __init__(self, config: ClientConfig, context: zmq.Context | None = None) -> None:
        self.config = config
        self._context = context or zmq.Context.instance()
        self._session = uuid.uuid4().hex
        self._socket: zmq.Socket | None = None
        #: Reports each ZMTP handshake of the socket (see ``_check_replaced``).
        self._monitor: zmq.Socket | None = None
        self._handshakes = 0
        self._pending: dict[str, _Pending] = {}
        self._outbox: list[tuple[str, Message]] = []
        self.welcome: Welcome | None = None
        self._server_session: str | None = None
        self._opened_at = self._last_rx = self._last_ping = 0.0
        self._reported_unreachable = False
        #: The id of the hello in flight, and the daemon's refusal of it (a name it will not
        #: take): every request then fails with that refusal, not with "no daemon answered".
        self._hello_id = ""
        self._hello_refused: HYMotionError | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the socket and say hello; the answer arrives through ``poll``."""
        self._open_socket()

    def close(self) -> None:
        """Close without waiting; the daemon cancels our jobs if we do not come back for them
        within its ``reconnect_grace_s``."""
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
            self._socket = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    def shutdown(self, timeout_s: float = 0.3) -> None:
        """Cancel every outstanding job, wait briefly for the daemon to confirm, then close."""
        if self._socket is not None and self._pending:
            self.cancel_all()
            deadline = time.monotonic() + timeout_s
            while self._pending and time.monotonic() < deadline:
                self.poll(20)
        self.close()

    def __enter__(self) -> MotionClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @property
    def connected(self) -> bool:
        return self.welcome is not None

    @property
    def outstanding(self) -> list[str]:
        return list(self._pending)

    # --- requests ------------------------------------------------------------------------------

    def submit(self, request: Generate, request_id: str | None = None) -> str:
        """Queue a generate request; returns its id, which every event about it carries.

        A request with constraints to a daemon that does not list the "constraints" capability
        raises UnsupportedVersion here (or fails with it once the daemon's welcome arrives):
        such a daemon would ignore them and generate undirected motion."""
        if request.constraints is not None and self.welcome is not None:
            _check_directed(self.welcome)
        request_id = request_id or new_id()
        self._pending[request_id] = _Pending(request)
        # libzmq never retries a handshake CURVE refused: after "unreachable", start afresh.
        if self._socket is None or (self.welcome is None and self._reported_unreachable):
            self._open_socket()
        self._reported_unreachable = False
        self._send_job(request_id)
        return request_id

    def cancel(self, request_id: str) -> None:
        """Cancel a submitted job (queued or running)."""
        pending = self._pending.get(request_id)
        if pending is not None and pending.job_id is not None:
            self._send(Cancel(job_id=pending.job_id), new_id())
        elif pending is not None:
            # Never acknowledged: the daemon may not have it; forget it locally too.
            self._pending.pop(request_id)

    def cancel_all(self) -> None:
        for request_id in list(self._pending):
            self.cancel(request_id)

    def request_status(self) -> str:
        return self._send(StatusRequest(), new_id())

    def fetch(self, job_id: str) -> str:
        return self._send(Fetch(job_id=job_id), new_id())

    def ping(self) -> str:
        return self._send(Ping(), new_id())

    # --- the poll loop -------------------------------------------------------------------------

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        """Handle whatever arrived (waiting at most ``timeout_ms``) and return the events."""
        events: list[Event] = []
        if self._socket is None:
            return events
        self._flush_outbox()
        events.extend(self._check_replaced())
        if self._socket.poll(timeout_ms, zmq.POLLIN):
            while True:
                try:
                    frames = self._socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._last_rx = time.monotonic()
                events.extend(self._handle(frames))
        events.extend(self._check_liveness())
        return events

    def run(
        self,
        request: Generate,
        *,
        timeout_s: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        request_id: str | None = None,
    ) -> Result:
        """Submit and block until the result; raise the typed error the daemon sent."""
        request_id = self.submit(request, request_id)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while deadline is None or time.monotonic() < deadline:
            for event in self.poll(100):
                if on_event is not None:
                    on_event(event)
                if event.request_id != request_id:
                    continue
                message = event.message
                if isinstance(message, Result):
                    return message
                if isinstance(message, Error):
                    raise message.to_exception()
                if isinstance(message, Cancelled):
                    raise _cancelled_error(message)
        self.cancel(request_id)
        raise DaemonUnreachable(f"no result for {request_id} within {timeout_s} s")

    def call(self, message: Message, timeout_s: float = 5.0) -> Message:
        """Send a non-job request (status, ping, fetch) and block for its reply."""
        if self._socket is None:
            self._open_socket()
        msg_id = self._send(message, new_id())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.poll(50):
                if event.request_id == msg_id:
                    if isinstance(event.message, Error):
                        raise event.message.to_exception()
                    return event.message
        raise DaemonUnreachable(
            f"no reply to {message.TYPE} from {self.config.address} within {timeout_s} s"
        )

    def wait_connected(self, timeout_s: float | None = None) -> Welcome:
        """Block until the daemon's welcome arrives (raises DaemonUnreachable after timeout)."""
        if self._socket is None:
            self._open_socket()
        timeout_s = self.config.connect_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while self.welcome is None and time.monotonic() < deadline:
            self.poll(20)
            if self._hello_refused is not None:
                raise self._hello_refused
        if self.welcome is None:
            raise self._unreachable()
        return self.welcome

    # --- internals -----------------------------------------------------------------------------

    def _open_socket(self) -> None:
        self.close()
        socket = self._context.socket(zmq.DEALER)
        socket.linger = 0
        socket.immediate = 1
        socket.setsockopt(zmq.MAXMSGSIZE, REPLY_LIMITS.max_total_bytes)
        socket.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        socket.setsockopt(zmq.RECONNECT_IVL, 100)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if self.config.server_key is not None:
            keys = self.config.client_keys
            if keys is None:
                socket.close(linger=0)
                raise HYMotionError(
                    "a server key is set but this client has no key pair",
                    field="client_keys",
                )
            socket.curve_serverkey = self.config.server_key
            socket.curve_publickey = keys.public
            socket.curve_secretkey = keys.secret
        self._monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._handshakes = 0
        socket.connect(self.config.address)
        self._socket = socket
        self.welcome = None
        self._opened_at = self._last_rx = time.monotonic()
        self._outbox = [self._hello()]
        for pending in self._pending.values():
            pending.sent = False

    def _hello(self) -> tuple[str, Hello]:
        """A new hello for the outbox; its id is kept to recognise the daemon's refusal."""
        self._hello_id, self._hello_refused = new_id(), None
        return self._hello_id, Hello(
            artist=self.config.artist,
            client=self.config.client_name,
            client_version=self.config.client_version,
            capabilities=("progress", "cancel", "fetch", "resubmit"),
        )

    def _send(self, message: Message, msg_id: str) -> str:
        """Send now if the daemon is reachable, else keep it for the next poll."""
        if self._socket is None:
            self._open_socket()
        self._outbox.append((msg_id, message))
        self._flush_outbox()
        return msg_id

    def _send_job(self, request_id: str) -> None:
        pending = self._pending[request_id]
        if not pending.sent and self.welcome is not None:
            pending.sent = self._try_send(pending.request, request_id)

    def _flush_outbox(self) -> None:
        while self._outbox:
            msg_id, message = self._outbox[0]
            if not self._try_send(message, msg_id):
                return
            self._outbox.pop(0)
        if self.welcome is not None:
            for request_id in self._pending:
                self._send_job(request_id)

    def _try_send(self, message: Message, msg_id: str) -> bool:
        assert self._socket is not None
        frames = encode(message.envelope(msg_id=msg_id, session=self._session))
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _handle(self, frames: list[bytes]) -> list[Event]:
        try:
            envelope = decode(frames, REPLY_LIMITS)
            message = parse_reply(envelope)
        except ProtocolError as exc:
            error = Error(code=exc.code, message=f"the daemon sent a bad message: {exc.message}")
            return [Event(None, error)]
        if message is None:  # a reply type from a newer minor version: ignore it
            return []
        if isinstance(message, Welcome):
            return self._on_welcome(message)
        if isinstance(message, Pong) and self._server_session not in (None, message.server_session):
            # The daemon restarted faster than our liveness timeout and libzmq reconnected
            # silently: say hello again, so the new welcome triggers the resubmission.
            self._open_socket()
            return [Event(None, Disconnected("the daemon restarted; resubmitting"))]
        request_id = envelope.re
        if isinstance(message, Error) and request_id and request_id == self._hello_id:
            self._hello_refused = message.to_exception()
            return self._fail_all(self._hello_refused)
        if request_id and (pending := self._pending.get(request_id)) is not None:
            if isinstance(message, Accepted):
                pending.job_id = message.job_id
            elif isinstance(message, _TERMINAL):
                del self._pending[request_id]
        return [Event(request_id, message)]

    def _check_replaced(self) -> list[Event]:
        """libzmq reconnects a dropped connection by itself (a network blip, a daemon that
        dropped us), and the daemon then sees a stranger that never said hello. A second
        handshake on this socket means exactly that: say hello again and resend every pending
        request with its own id, which re-attaches the daemon's job instead of losing it."""
        assert self._monitor is not None
        replaced = False
        while self._monitor.poll(0, zmq.POLLIN):
            if recv_monitor_message(self._monitor)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshakes += 1
                replaced = replaced or self._handshakes > 1
        if not replaced:
            return []
        self.welcome = None
        self._opened_at = time.monotonic()
        self._outbox.insert(0, self._hello())
        for pending in self._pending.values():
            pending.sent = False
        self._flush_outbox()
        return [Event(None, Disconnected("the connection was replaced; re-attaching"))]

    def _on_welcome(self, welcome: Welcome) -> list[Event]:
        restarted = (
            self._server_session is not None and welcome.server_session != self._server_session
        )
        self.welcome = welcome
        self._server_session = welcome.server_session
        self._reported_unreachable = False
        if restarted:
            for pending in self._pending.values():
                pending.sent, pending.job_id = False, None
        refused = []
        for request_id, pending in list(self._pending.items()):
            try:
                if pending.request.constraints is not None:
                    _check_directed(welcome)
            except UnsupportedVersion as exc:
                del self._pending[request_id]
                refused.append(Event(request_id, Error.from_exception(exc)))
        self._flush_outbox()
        return [*refused, Event(None, Connected(welcome, restarted))]

    def _check_liveness(self) -> list[Event]:
        now = time.monotonic()
        if self.welcome is None:
            if self._hello_refused is not None:
                return self._fail_all(self._hello_refused)
            if (
                self._pending
                and not self._reported_unreachable
                and now - self._opened_at > self.config.connect_timeout_s
            ):
                self._reported_unreachable = True
                return self._fail_all(self._unreachable())
            return []
        if not self._pending:
            return []
        silent = now - self._last_rx
        if silent > self.config.heartbeat_s * self.config.liveness:
            return self._reconnect(now, silent)
        if silent > self.config.heartbeat_s and now - self._last_ping > self.config.heartbeat_s:
            self._last_ping = now
            self._try_send(Ping(), new_id())
        return []

    def _reconnect(self, now: float, silent: float) -> list[Event]:
        events = [Event(None, Disconnected(f"no answer for {silent:.1f} s; reconnecting"))]
        exhausted = [
            rid for rid, p in self._pending.items() if p.resubmits >= self.config.max_resubmits
        ]
        for request_id in exhausted:
            error = Error.from_exception(
                DaemonUnreachable(f"gave up after {self.config.max_resubmits} reconnects")
            )
            del self._pending[request_id]
            events.append(Event(request_id, error))
        for pending in self._pending.values():
            pending.resubmits += 1
        self._open_socket()
        return events

    def _fail_all(self, exc: HYMotionError) -> list[Event]:
        error = Error.from_exception(exc)
        events = [Event(request_id, error) for request_id in self._pending]
        self._pending.clear()
        return events

    def _unreachable(self) -> DaemonUnreachable:
        secure = " (CURVE: check the server key and that your key is allowed)"
        return DaemonUnreachable(
            f"no HY-Motion daemon answered at {self.config.address} within "
            f"{self.config.connect_timeout_s:g} s" + (secure if self.config.server_key else ""),
            address=self.config.address,
        )


def _check_directed(welcome: Welcome) -> None:
    if DIRECTED not in welcome.capabilities:
        raise UnsupportedVersion(
            f"the daemon speaks protocol {welcome.protocol_version} without the "
            f"{DIRECTED!r} capability, so it would ignore the constraints and generate "
            "undirected motion; upgrade the daemon, or send the request without constraints",
            field="constraints",
            allowed=f"a daemon whose welcome lists {DIRECTED!r} (protocol 1.1 or newer)",
        )


def _cancelled_error(message: Cancelled) -> HYMotionError:
    from .errors import JobCancelled

    return JobCancelled(
        f"job {message.job_id} was cancelled ({message.reason})",
        job_id=message.job_id,
        reason=message.reason,
        retry=message.retry,
    )


__all__ = [
    "PROTOCOL_VERSION",
    "ClientConfig",
    "Connected",
    "Disconnected",
    "Event",
    "MotionClient",
]
