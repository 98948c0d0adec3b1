"""Typed errors shared by the daemon and its clients.

Every error has a stable wire ``code``. The daemon turns an exception into an ``error`` reply
with that code; the client turns the reply back into the same class (``error_from_code``), so
callers catch by class and never match message text.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HYMotionError(Exception):
    """Root of every error this project raises across the wire."""

    code: ClassVar[str] = "internal"
    #: What the user should do about it, shown under the message in the UI.
    hint: ClassVar[str] = ""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        #: Extra typed fields carried in the error reply (field, allowed, retry_after_s, ...).
        self.details = {k: v for k, v in details.items() if v is not None}

    def __getattr__(self, name: str) -> Any:
        # Lets callers read ``err.field`` / ``err.retry_after_s`` when the reply carried them.
        details = self.__dict__.get("details", {})
        if name in details:
            return details[name]
        raise AttributeError(name)


class ProtocolError(HYMotionError):
    """The message could not be decoded: wrong framing, bad JSON, bad arrays, missing fields."""

    code = "bad_request"
    hint = "The client and daemon disagree on the wire format; update the older one."


class MalformedField(ProtocolError):
    """A message's field is missing, of the wrong JSON type or over its size: the request is at
    fault, not the framing (a hand-written client, not a version mismatch)."""

    hint = "Fix the named field: its type, size and whether it is required are in docs/protocol.md."

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field=field)


class HelloRequired(ProtocolError):
    """The connection has not said who it is (or libzmq replaced it after a reconnect)."""

    hint = "Send hello on this connection, then re-attach to your unfinished jobs."

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="hello_required")


class UnsupportedVersion(ProtocolError):
    """The peer speaks a different protocol major version."""

    code = "unsupported_version"
    hint = "Install matching versions of the add-on and the daemon."


class UnsupportedMessage(ProtocolError):
    """A request type this daemon does not know (a newer client); the client may fall back."""

    code = "unsupported_message"


class InvalidArgument(HYMotionError):
    """A field is present and well typed but its value is out of range."""

    code = "invalid_argument"

    def __init__(self, field: str, message: str, *, allowed: str | None = None) -> None:
        super().__init__(message, field=field, allowed=allowed)
        self.field = field
        self.allowed = allowed


class Busy(HYMotionError):
    """The daemon cannot take the job now (queue full, per-artist limit, shutting down)."""

    code = "busy"
    hint = "Try again in a moment."

    def __init__(self, message: str, *, retry_after_s: float, reason: str = "queue_full") -> None:
        super().__init__(message, retry_after_s=round(retry_after_s, 3), reason=reason)
        self.retry_after_s = retry_after_s
        self.reason = reason


class QuotaExceeded(HYMotionError):
    """The artist used up their allowance for the current window."""

    code = "quota_exceeded"
    hint = "Ask the daemon's operator for a larger quota, or wait until it resets."

    def __init__(self, message: str, *, resets_at: float, limit: str | None = None) -> None:
        super().__init__(message, resets_at=resets_at, limit=limit)
        self.resets_at = resets_at


class NotFound(HYMotionError):
    """No such job for this artist (finished results expire; other artists' jobs are invisible)."""

    code = "not_found"


class ModelUnavailable(HYMotionError):
    """The requested model is not loaded (missing weights, load failure, unknown name)."""

    code = "model_unavailable"
    hint = "Run `python -m daemon check` on the daemon's machine to see why."


class ResourceExhausted(HYMotionError):
    """The job cannot fit in device memory, or ran out of it."""

    code = "resource_exhausted"
    hint = "Ask for fewer candidates or a shorter clip."


class Unauthorized(HYMotionError):
    """The artist may not do this (admin-only request)."""

    code = "unauthorized"


class JobCancelled(HYMotionError):
    """The job was cancelled (by its artist, by a disconnect, or by shutdown)."""

    code = "cancelled"


class DaemonUnreachable(HYMotionError):
    """Client side only: nothing answered at the configured address in time."""

    code = "unreachable"
    hint = (
        "Start the daemon (`python -m daemon serve`) or check the address; for a remote daemon "
        "check the server key and that your public key is in its allow-list."
    )


class InternalError(HYMotionError):
    """A bug or an unexpected failure in the daemon; ``log_id`` finds it in the daemon log."""

    code = "internal"
    hint = "Send the log id to whoever runs the daemon."


_BY_CODE: dict[str, type[HYMotionError]] = {
    cls.code: cls
    for cls in (
        ProtocolError,
        UnsupportedVersion,
        UnsupportedMessage,
        InvalidArgument,
        Busy,
        QuotaExceeded,
        NotFound,
        ModelUnavailable,
        ResourceExhausted,
        Unauthorized,
        JobCancelled,
        DaemonUnreachable,
        InternalError,
    )
}

ERROR_CODES: tuple[str, ...] = tuple(_BY_CODE)


def error_from_code(code: str, message: str, details: dict[str, Any]) -> HYMotionError:
    """Rebuild the typed exception an ``error`` reply describes (unknown codes -> InternalError)."""
    cls = _BY_CODE.get(code, InternalError)
    err = HYMotionError.__new__(cls)
    HYMotionError.__init__(err, message, **details)
    for key, value in err.details.items():
        setattr(err, key, value)
    return err
