"""Protocol v1 message types.

Requests (client -> daemon): hello, generate, cancel, status, fetch, ping.
Replies (daemon -> client): welcome, accepted, progress, result, error, cancelled, status_reply,
pong. Every reply's envelope ``re`` is the id of the request it answers; everything about a
job (accepted, progress, result, error, cancelled) answers its generate request, so a client
correlates by the id it chose. That id is also the job's idempotency key.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from . import schema
from .constraints import Constraints
from .errors import HYMotionError, InvalidArgument, ProtocolError, UnsupportedMessage
from .motion import FPS, MAX_FRAMES, MIN_FRAMES, MotionTakes, Skeleton, frames_for_duration
from .wire import Envelope, new_id

#: Every seed a request uses (seed + k for candidate k) is within 0..MAX_SEED: the largest value
#: a Blender integer field holds, so any seed a take reports can be typed back in; no wrap-around.
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Limits:
    """Allowed ranges for a generate request; the daemon sends its own in ``welcome``."""

    min_duration_s: float = MIN_FRAMES / FPS
    max_duration_s: float = MAX_FRAMES / FPS
    max_candidates: int = 8
    min_guidance: float = 1.0
    max_guidance: float = 10.0
    min_steps: int = 4
    max_steps: int = 200
    max_prompt_chars: int = 1000
    fps: int = FPS
    #: Longest joined clip of a timeline (protocol 1.1, capability "constraints").
    max_timeline_s: float = 120.0
    #: How long a vanished connection's jobs wait for their artist to re-attach (not a request
    #: limit: a client plans its re-attach with it).
    reconnect_grace_s: float = 10.0


DEFAULT_LIMITS = Limits()


class Message:
    """Base of every message dataclass; ``TYPE`` is its wire name."""

    TYPE: ClassVar[str]

    def envelope(
        self, *, msg_id: str | None = None, re: str | None = None, session: str = ""
    ) -> Envelope:
        body, arrays = schema.to_parts(self)
        return Envelope(
            type=self.TYPE,
            id=msg_id or new_id(),
            body=body,
            arrays=arrays,
            re=re,
            session=session,
        )


# --- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello(Message):
    TYPE = "hello"
    #: On loopback, the artist name the client claims; under CURVE the key decides.
    artist: str = ""
    client: str = ""
    client_version: str = ""
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generate(Message):
    TYPE = "generate"
    prompt: str
    duration_s: float
    candidates: int = 4
    #: Candidate k uses seed + k; None lets the daemon pick one (reported in the result).
    seed: int | None = None
    guidance: float = 5.0
    steps: int = 50
    #: Model name from ``welcome.models``; None means the daemon's default model.
    model: str | None = None
    #: Directed generation (protocol 1.1, capability "constraints"): ignored by older daemons,
    #: so send it only to a daemon whose welcome lists that capability.
    constraints: Constraints | None = None

    @property
    def frames(self) -> int:
        """Frames of the request's own prompt (the first segment of a timeline)."""
        return frames_for_duration(self.duration_s)

    def validate(self, limits: Limits = DEFAULT_LIMITS, joints: int = 22) -> None:
        """Raise InvalidArgument naming the first field outside ``limits``; ``joints`` is the
        served skeleton's joint count (poses in constraints have one rotation per joint)."""
        prompt = self.prompt.strip()
        if not prompt:
            raise InvalidArgument("prompt", "the prompt is empty", allowed="1 or more characters")
        if len(prompt) > limits.max_prompt_chars:
            raise InvalidArgument(
                "prompt",
                f"the prompt has {len(prompt)} characters, more than {limits.max_prompt_chars}",
                allowed=f"1 to {limits.max_prompt_chars} characters",
            )
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in prompt):
            raise InvalidArgument(
                "prompt", "the prompt contains control characters", allowed="printable text"
            )
        schema.check_text("prompt", prompt)
        low, high = limits.min_duration_s, limits.max_duration_s
        # A huge finite duration overflows to infinity in seconds x fps: out of range too.
        frames = self.frames if np.isfinite(self.duration_s * FPS) else -1
        if not round(low * limits.fps) <= frames <= round(high * limits.fps):
            raise InvalidArgument(
                "duration_s",
                f"duration {self.duration_s:g} s is outside {low:.2f} to {high:g} s",
                allowed=f"{low:.2f}-{high:g} s",
            )
        _check_range("candidates", self.candidates, 1, limits.max_candidates)
        if self.seed is not None:
            _check_range("seed", self.seed, 0, MAX_SEED)
            last = self.seed + self.candidates - 1
            if last > MAX_SEED:
                raise InvalidArgument(
                    "seed",
                    f"seed {self.seed} with {self.candidates} candidates uses seeds up to {last}, "
                    f"past the largest seed {MAX_SEED}",
                    allowed=f"0-{MAX_SEED - self.candidates + 1}",
                )
        _check_range("guidance", self.guidance, limits.min_guidance, limits.max_guidance)
        _check_range("steps", self.steps, limits.min_steps, limits.max_steps)
        if self.constraints is not None:
            self.constraints.validate(
                self.frames,
                joints,
                max_segment_s=limits.max_duration_s,
                max_total_s=limits.max_timeline_s,
                max_prompt_chars=limits.max_prompt_chars,
            )


@dataclass(frozen=True)
class Cancel(Message):
    TYPE = "cancel"
    job_id: str


@dataclass(frozen=True)
class StatusRequest(Message):
    TYPE = "status"


@dataclass(frozen=True)
class Fetch(Message):
    """Ask again for a finished job's result (after a reconnect)."""

    TYPE = "fetch"
    job_id: str


@dataclass(frozen=True)
class Ping(Message):
    TYPE = "ping"


# --- replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    name: str
    label: str
    available: bool
    #: True for the built-in tiny model: seeded random weights, not real motion.
    untrained: bool = False
    device: str = ""
    dtype: str = ""
    parameters: int = 0
    #: Why the model is unavailable, and what to do about it.
    error: str = ""


@dataclass(frozen=True)
class Welcome(Message):
    TYPE = "welcome"
    server_version: str
    protocol_version: str
    #: Changes when the daemon restarts; clients resubmit what they were waiting for.
    server_session: str
    artist: str
    admin: bool
    models: tuple[ModelInfo, ...]
    default_model: str
    limits: Limits
    skeleton: Skeleton | None = None
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Accepted(Message):
    TYPE = "accepted"
    job_id: str
    queue_position: int
    #: True when this request id was already known (a resubmission after a reconnect).
    duplicate: bool = False


@dataclass(frozen=True)
class Progress(Message):
    TYPE = "progress"
    job_id: str
    #: "queued", "encoding", "sampling" or "decoding".
    stage: str
    step: int = 0
    total: int = 0
    eta_s: float | None = None
    queue_position: int | None = None


@dataclass(frozen=True, eq=False)
class Result(Message):
    TYPE = "result"
    job_id: str
    model: str
    model_label: str
    untrained: bool
    prompt: str
    frames: int
    fps: int
    seeds: tuple[int, ...]
    guidance: float
    steps: int
    skeleton: Skeleton
    rotations: np.ndarray
    root_positions: np.ndarray
    joint_positions: np.ndarray
    warnings: tuple[str, ...] = ()
    prompt_truncated: bool = False
    #: Seconds per stage: queue, encode, sample, decode, total.
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.takes.validate(self.skeleton, len(self.seeds), self.frames)

    @property
    def takes(self) -> MotionTakes:
        return MotionTakes(self.rotations, self.root_positions, self.joint_positions)


@dataclass(frozen=True)
class Error(Message):
    TYPE = "error"
    code: str
    message: str
    hint: str = ""
    #: Typed details: field, allowed, retry_after_s, reason, resets_at, limit, log_id, job_id.
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_exception(cls, exc: HYMotionError) -> Error:
        return cls(code=exc.code, message=exc.message, hint=exc.hint, details=dict(exc.details))

    def to_exception(self) -> HYMotionError:
        from .errors import error_from_code

        return error_from_code(self.code, self.message, self.details)


@dataclass(frozen=True)
class Cancelled(Message):
    TYPE = "cancelled"
    job_id: str
    #: "artist", "disconnected", "shutdown" or "admin".
    reason: str
    #: True when the job never ran and is worth resubmitting (e.g. daemon shutdown).
    retry: bool = False
    #: In the reply to a ``cancel``: the job was already being stopped (an earlier cancel, the
    #: daemon's stop); ``reason`` and ``retry`` are those the job's own ``cancelled`` will carry.
    already_stopping: bool = False


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    artist: str
    state: str
    prompt: str
    candidates: int
    frames: int
    model: str
    stage: str = ""
    queue_position: int | None = None
    submitted_at: float = 0.0


@dataclass(frozen=True)
class DeviceInfo:
    """One device the daemon runs a worker on."""

    name: str
    #: "ok", or "failed": it failed while serving and takes no more jobs until a restart.
    state: str
    #: Why it failed, empty while ok.
    error: str = ""


@dataclass(frozen=True)
class Status(Message):
    TYPE = "status_reply"
    queue_depth: int
    running: int
    shutting_down: bool
    uptime_s: float
    jobs: tuple[JobInfo, ...] = ()
    models: tuple[ModelInfo, ...] = ()
    devices: tuple[DeviceInfo, ...] = ()
    #: Jobs left out of ``jobs`` to keep the reply bounded (at most 256 are listed).
    jobs_omitted: int = 0


@dataclass(frozen=True)
class Pong(Message):
    TYPE = "pong"
    server_session: str
    uptime_s: float
    queue_depth: int


REQUEST_TYPES: dict[str, type[Message]] = {
    m.TYPE: m for m in (Hello, Generate, Cancel, StatusRequest, Fetch, Ping)
}
REPLY_TYPES: dict[str, type[Message]] = {
    m.TYPE: m for m in (Welcome, Accepted, Progress, Result, Error, Cancelled, Status, Pong)
}


def parse_request(envelope: Envelope) -> Message:
    """Typed request from an envelope; unknown types raise UnsupportedMessage."""
    cls = REQUEST_TYPES.get(envelope.type)
    if cls is None:
        raise UnsupportedMessage(
            f"unknown request type {envelope.type!r}",
            field="type",
            allowed=", ".join(REQUEST_TYPES),
        )
    message = schema.from_parts(cls, envelope.body, envelope.arrays)
    if isinstance(message, Generate) and message.constraints is None:
        _refuse_stray_constraint_arrays(envelope)
    return message


def _refuse_stray_constraint_arrays(envelope: Envelope) -> None:
    """Constraint arrays without a ``constraints`` object would be ignored, and the motion
    silently undirected: refuse them instead."""
    stray = sorted(name for name in envelope.arrays if name.startswith("constraints."))
    if stray:
        raise ProtocolError(
            f"arrays {', '.join(stray)} came without a 'constraints' object in the body "
            "(send constraints: {} to use them)",
            field="constraints",
        )


def parse_reply(envelope: Envelope) -> Message | None:
    """Typed reply from an envelope; None for reply types newer than this client knows."""
    cls = REPLY_TYPES.get(envelope.type)
    if cls is None:
        return None
    return schema.from_parts(cls, envelope.body, envelope.arrays)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        shown, lo, hi = (_format_number(v) for v in (value, low, high))
        raise InvalidArgument(name, f"{name} {shown} is outside {lo} to {hi}", allowed=f"{lo}-{hi}")


def _format_number(value: float) -> str:
    # Integers (seeds up to 2**31 - 1) must print in full, not as 2.14748e+09.
    return str(value) if isinstance(value, int) else f"{value:g}"


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_SEED",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "Accepted",
    "Cancel",
    "Cancelled",
    "DeviceInfo",
    "Error",
    "Fetch",
    "Generate",
    "Hello",
    "JobInfo",
    "Limits",
    "Message",
    "ModelInfo",
    "Ping",
    "Pong",
    "Progress",
    "ProtocolError",
    "Result",
    "Status",
    "StatusRequest",
    "Welcome",
    "parse_reply",
    "parse_request",
]
