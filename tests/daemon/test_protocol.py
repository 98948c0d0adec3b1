"""shared_protocol, pure: every message type round-trips; the decoder only ever raises
ProtocolError subclasses, whatever the frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_protocol import (
    REQUEST_LIMITS,
    SIGNATURE,
    Accepted,
    Busy,
    Cancel,
    Cancelled,
    Error,
    Fetch,
    Generate,
    Hello,
    InvalidArgument,
    JobInfo,
    Limits,
    Message,
    ModelInfo,
    Ping,
    Pong,
    Progress,
    ProtocolError,
    QuotaExceeded,
    Result,
    Status,
    StatusRequest,
    UnsupportedVersion,
    Welcome,
    decode,
    encode,
    parse_reply,
    parse_request,
)
from tests.support import SKELETON, motion_for_seed


def _result() -> Result:
    takes = [motion_for_seed(s, 20) for s in (1, 2)]
    return Result(
        job_id="j1", model="test", model_label="Test", untrained=True, prompt="walk", frames=20,
        fps=30, seeds=(1, 2), guidance=5.0, steps=8, skeleton=SKELETON,
        rotations=np.stack([t[0] for t in takes]),
        root_positions=np.stack([t[1] for t in takes]),
        joint_positions=np.stack([t[2] for t in takes]),
        warnings=("w",), timings={"total": 0.5},
    )  # fmt: skip


REQUESTS: list[Message] = [
    Hello(artist="alice", client="blender", client_version="1.2", capabilities=("x",)),
    Generate(
        prompt="walk", duration_s=2.0, candidates=3, seed=5, guidance=4.0, steps=25, model="tiny"
    ),
    Cancel(job_id="j1"),
    StatusRequest(),
    Fetch(job_id="j1"),
    Ping(),
]
REPLIES: list[Message] = [
    Welcome(
        server_version="0.1.0",
        protocol_version="1.0",
        server_session="s",
        artist="alice",
        admin=True,
        models=(ModelInfo("tiny", "Tiny (untrained)", True, untrained=True),),
        default_model="tiny",
        limits=Limits(max_candidates=4),
        skeleton=SKELETON,
        capabilities=("progress",),
    ),
    Accepted(job_id="j1", queue_position=2, duplicate=True),
    Progress(job_id="j1", stage="sampling", step=3, total=50, eta_s=1.5),
    _result(),
    Error.from_exception(Busy("full", retry_after_s=2.5, reason="queue_full")),
    Cancelled(job_id="j1", reason="shutdown", retry=True),
    Status(
        queue_depth=1,
        running=1,
        shutting_down=False,
        uptime_s=3.0,
        jobs=(JobInfo("j1", "alice", "queued", "walk", 2, 60, "tiny", queue_position=0),),
        models=(ModelInfo("tiny", "Tiny", False, error="missing"),),
    ),
    Pong(server_session="s", uptime_s=1.0, queue_depth=0),
]


def _same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            _same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__
        )
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: m.TYPE)
def test_requests_round_trip(message: Message) -> None:
    frames = encode(message.envelope(msg_id="m1", session="c1"))
    envelope = decode(frames, REQUEST_LIMITS)
    assert (envelope.type, envelope.id, envelope.session) == (message.TYPE, "m1", "c1")
    assert _same(parse_request(envelope), message)


@pytest.mark.parametrize("message", REPLIES, ids=lambda m: m.TYPE)
def test_replies_round_trip(message: Message) -> None:
    envelope = decode(encode(message.envelope(msg_id="r1", re="m1")))
    assert envelope.re == "m1"
    assert _same(parse_reply(envelope), message)


def test_error_round_trips_to_the_same_exception_class() -> None:
    for exc in (
        InvalidArgument("steps", "too many", allowed="4-200"),
        QuotaExceeded("over", resets_at=3600.0, limit="jobs_per_hour"),
        Busy("busy", retry_after_s=1.0, reason="shutting_down"),
    ):
        reply = parse_reply(decode(encode(Error.from_exception(exc).envelope())))
        assert isinstance(reply, Error)
        again = reply.to_exception()
        assert type(again) is type(exc) and again.details == exc.details


def test_newer_minor_version_and_unknown_fields_are_accepted() -> None:
    header = {"v": "1.9", "type": "ping", "id": "a", "body": {"future_field": 1}, "extra": 2}
    envelope = decode([SIGNATURE, json.dumps(header).encode()], REQUEST_LIMITS)
    assert isinstance(parse_request(envelope), Ping)
    reply = {"v": "1.9", "type": "shiny_new_reply", "id": "b", "body": {}}
    assert parse_reply(decode([SIGNATURE, json.dumps(reply).encode()])) is None


def test_other_major_versions_are_refused_before_json() -> None:
    with pytest.raises(UnsupportedVersion):
        decode([b"HYMP/2", b"this is not even JSON"])
    with pytest.raises(UnsupportedVersion):
        decode([SIGNATURE, b'{"v":"2.0","type":"ping","id":"a"}'])


def test_result_arrays_are_validated() -> None:
    good = _result()
    with pytest.raises(ProtocolError, match="shape"):
        Result(**{**good.__dict__, "rotations": good.rotations[:, :10]})
    bad = good.rotations.copy()
    bad[0, 0, 0] = (2, 0, 0, 0)
    with pytest.raises(ProtocolError, match="unit quaternions"):
        Result(**{**good.__dict__, "rotations": bad})


def test_request_limits_cap_frames_and_bytes() -> None:
    big = [SIGNATURE, b"{}", b"x" * (REQUEST_LIMITS.max_array_bytes + 1)]
    with pytest.raises(ProtocolError):
        decode(big, REQUEST_LIMITS)
    with pytest.raises(ProtocolError, match="frames"):
        decode([SIGNATURE, b"{}"] + [b""] * REQUEST_LIMITS.max_frames, REQUEST_LIMITS)


# --- fuzzing ---------------------------------------------------------------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=20,
)  # fmt: skip
_header = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from(["1.0", "1.7", "2.0", "x", 1]),
        "type": st.sampled_from(["hello", "generate", "cancel", "status", "fetch", "ping", "x"]),
        "id": st.sampled_from(["a", "", "b c", 7]),
        "re": st.sampled_from([None, "a", 3]),
        "session": st.text(max_size=70),
        "body": _json,
        "arrays": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.text(max_size=5),
                    "dtype": st.sampled_from(["<f4", "<i4", "|u1", ">f8", "O", 5]),
                    "shape": st.lists(st.integers(-2, 10**13), max_size=8) | _json,
                },
            ),
            max_size=3,
        ),
    },
)


def _check_decodes_or_protocol_error(frames: list[bytes]) -> None:
    try:
        envelope = decode(frames, REQUEST_LIMITS)
        message = parse_request(envelope)
        if isinstance(message, Generate):
            message.validate()
    except (ProtocolError, InvalidArgument):
        pass


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=10))
def test_fuzz_random_frames(frames: list[bytes]) -> None:
    _check_decodes_or_protocol_error(frames)


@pytest.mark.slow
@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_header, st.lists(st.binary(max_size=48), max_size=3))
def test_fuzz_structured_headers(header: dict, payloads: list[bytes]) -> None:
    try:
        text = json.dumps(header).encode()
    except ValueError:
        return
    _check_decodes_or_protocol_error([SIGNATURE, text, *payloads])


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_fuzz_bit_flips_of_valid_requests(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(REQUESTS))
    frames = encode(message.envelope())
    index = data.draw(st.integers(0, len(frames) - 1))
    raw = bytearray(frames[index])
    if raw:
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= 1 << data.draw(st.integers(0, 7))
    frames[index] = bytes(raw)
    _check_decodes_or_protocol_error(frames)
