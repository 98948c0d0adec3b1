"""CURVE authentication: the allow-list of artist keys (file name = artist) behind ZAP.

A ZAP handler runs inside the daemon's event loop. An allowed key's artist name becomes the
``User-Id`` of every message on that connection, so the service never sees a raw key. Refusals
are logged with the key's fingerprint (never the key). Handshakes that fail before ZAP is asked
(a wrong server key, a plaintext client) are reported by a socket monitor.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import parse_monitor_message

from daemon.logs import EventLog
from daemon.metrics import Metrics
from shared_protocol.keys import fingerprint, load_allow_list

_HANDSHAKE_FAILURES = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol_mismatch (plaintext client or wrong server key)",
}
# EVENT_HANDSHAKE_FAILED_AUTH is left out: the ZAP callback already logged it, with the key.


class AllowList:
    """Public key (z85) -> artist, reloadable; the ZAP callback provider."""

    def __init__(self, directory: Path, log: EventLog, metrics: Metrics) -> None:
        self._directory = directory
        self._log = log
        self._metrics = metrics
        self._keys: dict[bytes, str] = load_allow_list(directory)
        log.info("allow_list_loaded", artists=len(self._keys), directory=str(directory))

    def reload(self) -> None:
        """Re-read the directory (SIGHUP); on error keep the previous list and say why."""
        try:
            keys = load_allow_list(self._directory)
        except Exception as exc:
            self._log.error("allow_list_reload_failed", error=str(exc))
            return
        self._keys = keys
        self._log.info("allow_list_loaded", artists=len(keys), directory=str(self._directory))

    def artist(self, key: bytes) -> str | None:
        return self._keys.get(key)

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self._keys:
            return True
        self._metrics.auth_refusals.inc()
        self._log.warning("auth_refused", fingerprint=fingerprint(key), reason="key not allowed")
        return False


class _Authenticator(AsyncioAuthenticator):
    def __init__(self, context: zmq.asyncio.Context, allow_list: AllowList) -> None:
        super().__init__(context)
        self._allow_list = allow_list

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = zmq.utils.z85.encode(client_public_key)
        return self._allow_list.artist(key) or ""


def start_auth(context: zmq.asyncio.Context, allow_list: AllowList) -> AsyncioAuthenticator:
    auth = _Authenticator(context, allow_list)
    auth.start()
    auth.configure_curve_callback("*", credentials_provider=allow_list)
    return auth


async def watch_handshakes(socket: zmq.asyncio.Socket, log: EventLog, metrics: Metrics) -> None:
    """Log handshake failures on ``socket`` until cancelled."""
    events = 0
    for event in _HANDSHAKE_FAILURES:
        events |= event
    monitor: Any = socket.get_monitor_socket(events)
    try:
        while True:
            frames = await monitor.recv_multipart()
            message = parse_monitor_message(frames)
            reason = _HANDSHAKE_FAILURES.get(zmq.Event(message["event"]), "handshake_failed")
            metrics.auth_refusals.inc()
            log.warning(
                "auth_refused",
                reason=reason,
                errno=message["value"],
                endpoint=message["endpoint"].decode(errors="replace"),
            )
    finally:
        with contextlib.suppress(zmq.ZMQError):
            socket.disable_monitor()
        monitor.close(linger=0)
