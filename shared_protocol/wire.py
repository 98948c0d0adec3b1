"""The envelope: how one message becomes ZeroMQ frames and back. No sockets here.

Wire layout of one message (a DEALER sends exactly these frames; a ROUTER sees its routing id
in front of them)::

    frame 0   SIGNATURE          b"HYMP/<major>"; anything else is refused before JSON is read
    frame 1   header             UTF-8 JSON object:
                                   {"v": "<major>.<minor>", "type": str, "id": str,
                                    "re": str | null,            # id of the request answered
                                    "session": str,              # sender's session id
                                    "body": {...},               # the message's scalar fields
                                    "arrays": [{"name", "dtype", "shape"}, ...]}
    frame 2+  array payloads     raw C-order little-endian bytes, one frame per "arrays" entry

Decoding is strict and bounded: frame count, per-frame and total bytes, header size and JSON
depth, a dtype allow-list, and shape x itemsize == frame length are all checked, and every
failure is a :class:`ProtocolError` (or :class:`UnsupportedVersion`).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ProtocolError, UnsupportedVersion

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1  # 1.1: constraints in generate (directed generation)
PROTOCOL_VERSION = f"{PROTOCOL_MAJOR}.{PROTOCOL_MINOR}"
SIGNATURE = f"HYMP/{PROTOCOL_MAJOR}".encode()
_SIGNATURE_PREFIX = b"HYMP/"

#: Array dtypes allowed on the wire (little-endian or byte-sized only).
ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1", "|b1"})

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_TYPE_PATTERN = re.compile(r"^[a-z_]{1,32}$")
_VERSION_PATTERN = re.compile(r"^(\d{1,4})\.(\d{1,4})$")


@dataclass(frozen=True)
class DecodeLimits:
    """Upper bounds a receiver enforces before it trusts a message."""

    max_frames: int = 32
    max_header_bytes: int = 2 << 20
    max_json_depth: int = 12
    max_array_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 96 * 1024 * 1024
    max_array_dims: int = 6


#: Requests are tiny; the daemon refuses anything bigger than this long before it parses it.
REQUEST_LIMITS = DecodeLimits(
    max_frames=8, max_header_bytes=32 * 1024, max_array_bytes=1 << 20, max_total_bytes=2 << 20
)
#: A request frame bigger than this never reaches the daemon's code: its libzmq closes the
#: connection (ZMQ_MAXMSGSIZE). Anything smaller is read, so a frame over ``REQUEST_LIMITS``
#: but under this gets a typed error on a connection that keeps working.
REQUEST_FRAME_HARD_LIMIT = 4 << 20
#: Replies carry motion arrays (8 candidates x 360 frames is about 2 MB); the largest header
#: is an admin's status listing 256 jobs with 1000-character prompts (at most about 1.1 MB).
REPLY_LIMITS = DecodeLimits(max_header_bytes=2 << 20)


@dataclass(frozen=True)
class Envelope:
    """One decoded message: header fields, JSON body and named arrays."""

    type: str
    id: str
    body: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    re: str | None = None
    session: str = ""
    version: str = PROTOCOL_VERSION


def new_id() -> str:
    """A fresh message id (also the idempotency key of a generate request)."""
    return uuid.uuid4().hex


def encode(envelope: Envelope) -> list[bytes]:
    """Serialise an envelope to frames (signature, header, array payloads)."""
    descriptors = []
    payloads: list[bytes] = []
    for name, array in envelope.arrays.items():
        wire_array = np.ascontiguousarray(array)
        dtype = wire_array.dtype.newbyteorder("<") if wire_array.dtype.byteorder == ">" else None
        if dtype is not None:
            wire_array = wire_array.astype(dtype)
        descr = wire_array.dtype.str
        if descr not in ALLOWED_DTYPES:
            raise ProtocolError(f"array {name!r} has dtype {descr}, not one of the wire dtypes")
        descriptors.append({"name": name, "dtype": descr, "shape": list(wire_array.shape)})
        payloads.append(wire_array.tobytes())
    header = {
        "v": envelope.version,
        "type": envelope.type,
        "id": envelope.id,
        "re": envelope.re,
        "session": envelope.session,
        "body": dict(envelope.body),
        "arrays": descriptors,
    }
    try:
        header_bytes = json.dumps(
            header, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"message {envelope.type!r} is not JSON-serialisable: {exc}") from exc
    return [SIGNATURE, header_bytes, *payloads]


def decode(frames: Sequence[bytes], limits: DecodeLimits = REPLY_LIMITS) -> Envelope:
    """Parse and check frames into an :class:`Envelope`; raise ProtocolError on anything off."""
    if not 2 <= len(frames) <= limits.max_frames:
        raise ProtocolError(f"expected 2 to {limits.max_frames} frames, got {len(frames)}")
    check_signature(frames[0])
    total = sum(len(f) for f in frames)
    if total > limits.max_total_bytes:
        raise ProtocolError(f"message is {total} bytes, over the {limits.max_total_bytes} limit")
    header = _parse_header(frames[1], limits)
    version = header.get("v")
    if not isinstance(version, str) or not (match := _VERSION_PATTERN.match(version)):
        raise ProtocolError("header field 'v' must be a 'major.minor' string", field="v")
    if int(match.group(1)) != PROTOCOL_MAJOR:
        raise UnsupportedVersion(
            f"peer speaks protocol {version}, this side speaks {PROTOCOL_VERSION}",
            field="v",
            allowed=f"{PROTOCOL_MAJOR}.x",
        )
    msg_type = _header_str(header, "type", _TYPE_PATTERN)
    msg_id = _header_str(header, "id", _ID_PATTERN)
    reply_to = header.get("re")
    if reply_to is not None and (not isinstance(reply_to, str) or not _ID_PATTERN.match(reply_to)):
        raise ProtocolError("header field 're' must be null or a message id", field="re")
    session = header.get("session", "")
    if not isinstance(session, str) or len(session) > 64:
        raise ProtocolError(
            "header field 'session' must be a string of at most 64 characters", field="session"
        )
    body = header.get("body", {})
    if not isinstance(body, dict):
        raise ProtocolError("header field 'body' must be a JSON object", field="body")
    arrays = _decode_arrays(header.get("arrays", []), frames[2:], limits)
    return Envelope(
        type=msg_type,
        id=msg_id,
        body=body,
        arrays=arrays,
        re=reply_to,
        session=session,
        version=version,
    )


#: How much of a refused header is searched for its id (bounds the work per bad message).
_SALVAGE_BYTES = 32 * 1024
_SALVAGE_STRINGS = 256
#: A JSON string (group 1: its content) and, if it is a key, the colon after it.
_JSON_STRING = re.compile(r'"((?:[^"\\]++|\\.)*+)"(\s*:)?')  # possessive: no backtracking
_ID_VALUE = re.compile(r'\s*"([A-Za-z0-9_.:-]{1,64})"\s*[,}]')


def salvage_id(header: bytes) -> str | None:
    """The top-level ``id`` of a header that failed to decode, so a refusal can answer it.

    Reads at most the first 32 KiB and 256 strings, tolerates anything past the id (too big,
    too deep, bad JSON, another version) and never returns a nested ``id`` or a malformed one.
    """
    text = bytes(header[:_SALVAGE_BYTES]).decode("utf-8", errors="replace")
    depth, position = 0, 0
    for count, string in enumerate(_JSON_STRING.finditer(text)):
        if count == _SALVAGE_STRINGS:
            break
        gap = text[position : string.start()]  # brackets between strings, counted in C
        depth += gap.count("{") + gap.count("[") - gap.count("}") - gap.count("]")
        position = string.end()
        if depth == 1 and string.group(2) and string.group(1) == "id":
            value = _ID_VALUE.match(text, position)
            return value.group(1) if value is not None else None
    return None


def check_signature(frame: bytes) -> None:
    """Refuse garbage and other protocol majors from frame 0 alone."""
    if frame == SIGNATURE:
        return
    if bytes(frame[: len(_SIGNATURE_PREFIX)]) == _SIGNATURE_PREFIX and len(frame) <= 16:
        raise UnsupportedVersion(
            f"peer speaks {bytes(frame).decode(errors='replace')}, this side speaks "
            f"{SIGNATURE.decode()}",
            field="signature",
            allowed=SIGNATURE.decode(),
        )
    raise ProtocolError("frame 0 is not the HYMP protocol signature")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _parse_header(frame: bytes, limits: DecodeLimits) -> dict[str, Any]:
    if len(frame) > limits.max_header_bytes:
        raise ProtocolError(
            f"header is {len(frame)} bytes, over the {limits.max_header_bytes} limit"
        )
    try:
        text = bytes(frame).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"header is not UTF-8: {exc}") from exc
    _check_depth(text, limits.max_json_depth)
    try:
        header = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    return header


def _check_depth(text: str, max_depth: int) -> None:
    """Bound JSON nesting before parsing, so hostile input cannot recurse deeply."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise ProtocolError(f"header JSON nests deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1


def _header_str(header: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = header.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise ProtocolError(f"header field {name!r} is missing or malformed", field=name)
    return value


def _decode_arrays(
    descriptors: Any, payloads: Sequence[bytes], limits: DecodeLimits
) -> dict[str, np.ndarray]:
    if not isinstance(descriptors, list):
        raise ProtocolError("header field 'arrays' must be a list", field="arrays")
    if len(descriptors) != len(payloads):
        raise ProtocolError(
            f"header describes {len(descriptors)} arrays but {len(payloads)} payload frames came",
            field="arrays",
        )
    arrays: dict[str, np.ndarray] = {}
    for descriptor, payload in zip(descriptors, payloads, strict=True):
        name, array = _decode_array(descriptor, payload, limits)
        if name in arrays:
            raise ProtocolError(f"array {name!r} is described twice", field=name)
        arrays[name] = array
    return arrays


def _decode_array(descriptor: Any, payload: bytes, limits: DecodeLimits) -> tuple[str, np.ndarray]:
    if not isinstance(descriptor, dict):
        raise ProtocolError("each array descriptor must be an object", field="arrays")
    name, dtype, shape = descriptor.get("name"), descriptor.get("dtype"), descriptor.get("shape")
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise ProtocolError("array descriptor needs a 'name' of 1 to 64 characters", field="arrays")
    if dtype not in ALLOWED_DTYPES:
        raise ProtocolError(
            f"array {name!r}: dtype {dtype!r} is not allowed",
            field=name,
            allowed=", ".join(sorted(ALLOWED_DTYPES)),
        )
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_array_dims
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise ProtocolError(
            f"array {name!r}: shape must be a list of at most {limits.max_array_dims} "
            "non-negative integers",
            field=name,
        )
    if len(payload) > limits.max_array_bytes:
        raise ProtocolError(
            f"array {name!r} is {len(payload)} bytes, over the {limits.max_array_bytes} limit",
            field=name,
        )
    itemsize = np.dtype(dtype).itemsize
    # math.prod on Python ints cannot overflow, so a lying shape is caught here, not in numpy.
    expected = math.prod(shape) * itemsize
    if expected != len(payload):
        raise ProtocolError(
            f"array {name!r}: shape {shape} x {itemsize} bytes = {expected}, "
            f"but the frame has {len(payload)} bytes",
            field=name,
        )
    if dtype == "|b1" and bytes(payload).translate(None, b"\x00\x01"):
        # numpy would read any other byte as a bool that is neither False nor True.
        raise ProtocolError(f"array {name!r}: a |b1 array holds only the bytes 0 and 1", field=name)
    array = np.frombuffer(payload, dtype=np.dtype(dtype)).reshape(shape)
    return name, array
