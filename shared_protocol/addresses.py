"""Daemon endpoints: which ones stay on this machine (and so may go without CURVE)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(endpoint: str) -> bool:
    """True for ``tcp://`` to 127.0.0.0/8, ::1 or a localhost name, and for ipc/inproc.

    Wildcards (``*``, ``0.0.0.0``), interface names and other host names are not provably
    local, so they count as remote.
    """
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        return False
    host = parts.netloc.rsplit(":", 1)[0].strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
