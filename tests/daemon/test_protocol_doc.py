"""docs/protocol.md is enough to write a client, and its examples cannot drift from the daemon.

Every ```json request / ```json reply block of the page is a complete header (frame 1). The
request examples are sent, as written, to a live daemon over a plain pyzmq DEALER; every reply
example must have the same fields, JSON types and array descriptors as a message the daemon
really sent in the same situation.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from daemon.server import HANDSHAKE_IVL_MS, SNDHWM
from daemon.service import CAPABILITIES, MAX_PEERS
from shared_protocol import (
    ERROR_CODES,
    REPLY_LIMITS,
    REQUEST_LIMITS,
    SIGNATURE,
    Envelope,
    Generate,
    HYMotionError,
    ProtocolError,
    decode,
    parse_reply,
    parse_request,
)
from shared_protocol.keys import ARTIST_NAME
from shared_protocol.messages import REPLY_TYPES, REQUEST_TYPES
from shared_protocol.wire import PROTOCOL_VERSION, REQUEST_FRAME_HARD_LIMIT
from tests.support import CRASH_MARKER, TestEngine, make_config, run_daemon
from tests.support.runner import REPO_ROOT
from tests.support.wire import RECV_TIMEOUT_S, Peer

DOC = REPO_ROOT / "docs" / "protocol.md"
_EXAMPLE = re.compile(r"^```json (request|reply)\n(.*?)\n```$", re.MULTILINE | re.DOTALL)

Header = dict[str, Any]


def examples(kind: str) -> list[Header]:
    text = DOC.read_text(encoding="utf-8")
    return [json.loads(body) for k, body in _EXAMPLE.findall(text) if k == kind]


def doc_request(msg_type: str, **body: Any) -> Header:
    """The page's example of a request type, its body fields optionally replaced."""
    (header,) = [h for h in examples("request") if h["type"] == msg_type]
    return {**header, "body": {**header["body"], **body}}


def frames_of(header: Header) -> list[bytes]:
    """The frames a header describes (zero-filled arrays of the declared shapes)."""
    payloads = [
        bytes(int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize) for a in header["arrays"]
    ]
    return [SIGNATURE, json.dumps(header).encode(), *payloads]


def situation(header: Header) -> tuple[str, ...]:
    """What a reply is about: its type, plus the progress stage or the error code."""
    body = header["body"]
    if header["type"] == "progress":
        return ("progress", body["stage"])
    if header["type"] == "error":
        return ("error", body["code"])
    return (header["type"],)


def differences(doc: Any, live: Any, path: str) -> list[str]:
    """How the doc's JSON differs from the daemon's in fields and types (values may differ;
    ``null`` matches anything, for fields that are null in some situations)."""
    if doc is None or live is None:
        return []
    if isinstance(doc, dict) or isinstance(live, dict):
        if not (isinstance(doc, dict) and isinstance(live, dict)):
            return [f"{path}: {_kind(doc)} in the doc, {_kind(live)} from the daemon"]
        found = []
        if set(doc) != set(live):
            found.append(
                f"{path}: fields only in the doc {sorted(set(doc) - set(live))}, "
                f"only from the daemon {sorted(set(live) - set(doc))}"
            )
        for key in sorted(set(doc) & set(live)):
            found += differences(doc[key], live[key], f"{path}.{key}")
        return found
    if isinstance(doc, list) and isinstance(live, list):
        return differences(doc[0], live[0], f"{path}[0]") if doc and live else []
    if _kind(doc) != _kind(live):
        return [f"{path}: {_kind(doc)} in the doc, {_kind(live)} from the daemon"]
    return []


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _arrays(header: Header) -> list[tuple[str, str, int]]:
    return [(a["name"], a["dtype"], len(a["shape"])) for a in header["arrays"]]


class Recorder:
    """A plain DEALER that keeps every header it receives."""

    def __init__(self, peer: Peer, seen: list[Header]) -> None:
        self.peer, self.seen = peer, seen
        self.received: list[Header] = []

    def send(self, header: Header) -> str:
        self.peer.send_raw(frames_of(header))
        return str(header["id"])

    def until(self, test: Callable[[Header], bool], timeout_s: float = RECV_TIMEOUT_S) -> Header:
        """The first message, already received or still to come, that passes ``test``."""
        for header in self.received:
            if test(header):
                return header
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            if not self.peer.socket.poll(int(left * 1000), zmq.POLLIN):
                raise TimeoutError("the daemon did not send what the scenario expected")
            frames = self.peer.socket.recv_multipart()
            decode(frames, REPLY_LIMITS)  # every reply is within the documented reply limits
            header = json.loads(frames[1])
            self.seen.append(header)
            self.received.append(header)
            if test(header):
                return header

    def answer(self, request_id: str, *situations: tuple[str, ...]) -> Header:
        return self.until(lambda h: h["re"] == request_id and situation(h) in situations)


def test_every_message_error_code_and_limit_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert {h["type"] for h in examples("request")} == set(REQUEST_TYPES)
    assert {h["type"] for h in examples("reply")} == set(REPLY_TYPES)
    for code in (*ERROR_CODES, *CAPABILITIES):
        assert f"`{code}`" in text, code
    (welcome,) = [h for h in examples("reply") if h["type"] == "welcome"]
    assert welcome["body"]["capabilities"] == list(CAPABILITIES)
    for figure in (
        f"{REQUEST_FRAME_HARD_LIMIT:,} bytes",
        f"{REQUEST_LIMITS.max_total_bytes:,} bytes",
        f"{REQUEST_LIMITS.max_header_bytes:,} bytes",
        f"{REQUEST_LIMITS.max_array_bytes:,} bytes",
        f"| frames per message | {REQUEST_LIMITS.max_frames} |",
        f"{REQUEST_LIMITS.max_json_depth} levels",
        f"at most {REPLY_LIMITS.max_frames} frames",
        f"a header of at most {REPLY_LIMITS.max_header_bytes >> 20} MiB",
        f"an array frame of at most {REPLY_LIMITS.max_array_bytes >> 20} MiB",
        f"{REPLY_LIMITS.max_total_bytes >> 20} MiB in all",
        ARTIST_NAME.pattern,
        f'(this page: `"{PROTOCOL_VERSION}"`)',
        "## Directed generation",  # the place #11 fills in
        f"handshake (CURVE's included) within {HANDSHAKE_IVL_MS / 1000:g} s",
        f"at most {SNDHWM} messages for one connection",
        f"the `hello` of the {MAX_PEERS} connections",
    ):
        assert figure in " ".join(text.split()), figure


@pytest.mark.parametrize("kind", ["request", "reply"])
def test_every_example_is_a_valid_message(kind: str) -> None:
    for header in examples(kind):
        assert header["v"] == PROTOCOL_VERSION, (header["type"], header["id"], header["v"])
        envelope = decode(frames_of(header), REQUEST_LIMITS if kind == "request" else REPLY_LIMITS)
        if kind == "request":
            parse_request(envelope)
        elif not header["arrays"]:  # zero-filled arrays are not motion; the live test checks those
            parse_reply(envelope)


def test_the_examples_match_what_a_live_daemon_sends(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    seen: list[Header] = []
    answered: dict[str, Header] = {}
    config = make_config(tmp_path, admins=("boss",), max_per_artist=2)
    with run_daemon(config, [TestEngine(step_s=0.02, max_batch_candidates=2)]) as daemon:
        alice = Recorder(peers(daemon.address), seen)
        boss = Recorder(peers(daemon.address), seen)
        ping, status, hello = doc_request("ping"), doc_request("status"), doc_request("hello")
        generate = doc_request("generate")
        answered["ping"] = alice.answer(alice.send(ping), ("pong",))
        alice.answer(alice.send({**status, "id": "status-2"}), ("error", "bad_request"))
        answered["hello"] = alice.answer(alice.send(hello), ("welcome",))
        gen_id = alice.send(generate)
        job_id = alice.answer(gen_id, ("accepted",))["body"]["job_id"]
        alice.answer(gen_id, ("progress", "sampling"))
        waiting_id = alice.send({**generate, "id": "gen-waits"})
        waiting_job = alice.answer(waiting_id, ("accepted",))["body"]["job_id"]
        alice.answer(waiting_id, ("progress", "queued"))
        alice.answer(alice.send({**generate, "id": "gen-3"}), ("error", "busy"))
        too_long = {**generate, "id": "gen-2", "body": {**generate["body"], "duration_s": 30}}
        alice.answer(alice.send(too_long), ("error", "invalid_argument"))
        boss.answer(boss.send({**hello, "id": "hello-boss", "body": {"artist": "boss"}}),
                    ("welcome",))  # fmt: skip
        fetch = doc_request("fetch", job_id=job_id)
        answered["fetch"] = boss.answer(boss.send(fetch), ("accepted",))
        cancel = doc_request("cancel", job_id=waiting_job)
        answered["cancel"] = alice.answer(alice.send(cancel), ("cancelled",))
        alice.answer(waiting_id, ("cancelled",))
        missing = doc_request("fetch", job_id="0badc0de")
        alice.answer(alice.send({**missing, "id": "fetch-2"}), ("error", "not_found"))
        alice.answer(alice.send({**ping, "id": "ping-2", "v": "2.0"}),
                     ("error", "unsupported_version"))  # fmt: skip
        answered["generate"] = alice.answer(gen_id, ("result",), ("error", "internal"))
        boss.answer(fetch["id"], ("result",))  # the observer's copy
        crash = {**generate, "id": "gen-4", "body": {**generate["body"], "prompt": CRASH_MARKER}}
        alice.answer(alice.send(crash), ("error", "internal"))
        answered["status"] = alice.answer(alice.send(status), ("status_reply",))
    # Every documented request was understood as written.
    for msg_type, reply in answered.items():
        assert situation(reply)[0] != "error", (msg_type, reply["body"])
    assert set(answered) == set(REQUEST_TYPES)
    # Every documented reply has the fields, types and arrays the daemon really sends.
    for doc in examples("reply"):
        live = [h for h in seen if situation(h) == situation(doc)]
        assert live, f"no live {situation(doc)} to check the doc's example against"
        for header in live:
            assert header["v"] == doc["v"], (situation(doc), header["v"])
            assert not differences(doc, header, "/".join(situation(doc))), differences(
                doc, header, "/".join(situation(doc))
            )
            assert _arrays(doc) == _arrays(header), (situation(doc), _arrays(header))


def _refusal(msg_type: str, **body: Any) -> HYMotionError:
    """What parsing and validating the page's example request, with ``body`` changed, raises."""
    header = doc_request(msg_type, **body)
    with pytest.raises(HYMotionError) as refused:
        message = parse_request(decode(frames_of(header), REQUEST_LIMITS))
        if isinstance(message, Generate):
            message.validate()
    return refused.value


def test_a_string_over_the_string_limit_is_bad_request_naming_its_field() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "A longer string or list is `bad_request` naming the field" in text
    over = _refusal("generate", prompt="a" * 8193)
    assert (over.code, over.details["field"]) == ("bad_request", "prompt")
    assert "Fix the named field" in over.hint
    within = _refusal("generate", prompt="a" * 8192)  # over max_prompt_chars only
    assert (within.code, within.details["field"]) == ("invalid_argument", "prompt")
    many = _refusal("hello", capabilities=["x"] * 257)
    assert (many.code, many.details["field"]) == ("bad_request", "capabilities")


def test_a_generate_is_checked_in_the_documented_order(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    assert "then\n   `constraints` (`invalid_argument`" in DOC.read_text(encoding="utf-8")
    with run_daemon(make_config(tmp_path)) as daemon:
        alice = Recorder(peers(daemon.address), [])
        alice.answer(alice.send(doc_request("hello")), ("welcome",))
        cases = {  # body changes -> the field refused first
            "bad-steps": ({"steps": 1, "model": "nope"}, "steps"),
            "bad-constraint": (
                {"model": "nope", "constraints": {"impose_until": 0.1}},
                "constraints.impose_until",
            ),
        }
        for request_id, (changes, field) in cases.items():
            request = {**doc_request("generate", **changes), "id": request_id}
            refused = alice.answer(alice.send(request), ("error", "invalid_argument"))
            assert refused["body"]["details"]["field"] == field
        unknown = {**doc_request("generate", model="nope"), "id": "bad-model"}
        refused = alice.answer(alice.send(unknown), ("error", "model_unavailable"))
        assert refused["body"]["details"]["field"] == "model"
        first = alice.answer(alice.send(doc_request("generate")), ("result",))
        alice.received.clear()
        resent = {**doc_request("generate", prompt="", steps=1), "id": "gen-1"}
        again = alice.answer(alice.send(resent), ("result",), ("error", "invalid_argument"))
        assert situation(again) == ("result",)  # a resubmission: its body is not checked
        assert again["body"]["job_id"] == first["body"]["job_id"]


def test_status_gives_a_timeline_job_the_frames_of_its_joined_clip(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    assert "timeline's joined clip, as its `result` will have" in DOC.read_text(encoding="utf-8")
    with run_daemon(make_config(tmp_path), [TestEngine(step_s=0.05)]) as daemon:
        alice = Recorder(peers(daemon.address), [])
        alice.answer(alice.send(doc_request("hello")), ("welcome",))
        running = alice.answer(alice.send(doc_request("generate")), ("progress", "sampling"))
        timeline = {"timeline": [{"prompt": "then sits down", "duration_s": 2.0}]}
        waiting = {**doc_request("generate", constraints=timeline), "id": "gen-timeline"}
        job_id = alice.answer(alice.send(waiting), ("accepted",))["body"]["job_id"]
        status = alice.answer(alice.send(doc_request("status")), ("status_reply",))
        (listed,) = [job for job in status["body"]["jobs"] if job["job_id"] == job_id]
        assert listed["frames"] == round(4.0 * 30) + round(2.0 * 30)
        alice.received.clear()
        again = alice.answer(alice.send(doc_request("generate")), ("accepted",))
        assert again["body"]["duplicate"] and again["body"]["queue_position"] == 0  # running
        for job in (job_id, running["body"]["job_id"]):
            alice.send({**doc_request("cancel", job_id=job), "id": f"cancel-{job}"})


def test_constraint_arrays_without_a_constraints_object_are_refused() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "arrays without it are refused with `bad_request`, field `constraints`" in text
    path = {
        "constraints.path_frames": np.array([0, 10], np.int32),
        "constraints.path_points": np.zeros((2, 2), np.float32),
    }
    body = dict(doc_request("generate")["body"])
    with pytest.raises(ProtocolError) as refused:
        parse_request(Envelope("generate", "gen-1", body, path))
    assert refused.value.details["field"] == "constraints"
    directed = parse_request(Envelope("generate", "gen-1", {**body, "constraints": {}}, path))
    assert isinstance(directed, Generate) and directed.constraints is not None
    assert directed.constraints.has_path
    empty = {**path, "constraints.path_frames": np.zeros(0, np.int32)}
    directed = parse_request(Envelope("generate", "gen-1", {**body, "constraints": {}}, empty))
    assert isinstance(directed, Generate)
    with pytest.raises(HYMotionError) as refused:
        directed.validate()
    assert refused.value.details["field"] == "constraints.path_frames"


@pytest.mark.parametrize("seconds", [1e308, -1e308, 30.0])
def test_any_duration_out_of_range_is_invalid_argument(seconds: float) -> None:
    refused = _refusal("generate", duration_s=seconds)  # 1e308 x 30 overflows: not `internal`
    assert (refused.code, refused.details["field"]) == ("invalid_argument", "duration_s")


@pytest.mark.parametrize(
    ("constraints", "field"),
    [("loop", "constraints"), ({"timeline": ["sits down"]}, "constraints.timeline[0]"),
     ({"loop": "yes"}, "constraints.loop")],
)  # fmt: skip
def test_a_wrong_json_type_is_bad_request_naming_the_field(constraints: Any, field: str) -> None:
    refused = _refusal("generate", constraints=constraints)
    assert (refused.code, refused.details.get("field")) == ("bad_request", field)
    # The request is at fault, not the wire format: the hint says so.
    assert "Fix the named field" in refused.hint and "wire format" not in refused.hint


def test_a_refused_array_is_named_in_the_field() -> None:
    header = doc_request("generate", constraints={})
    header["arrays"] = [{"name": "constraints.path_frames", "dtype": "<i4", "shape": [3]}]
    lying = [SIGNATURE, json.dumps(header).encode(), bytes(8)]  # 3 x 4 bytes declared
    with pytest.raises(ProtocolError) as refused:
        decode(lying, REQUEST_LIMITS)
    assert refused.value.details["field"] == "constraints.path_frames"


def test_a_model_on_several_devices_names_the_first_and_status_lists_them_all(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    assert "the first of them when several devices run it" in " ".join(
        DOC.read_text(encoding="utf-8").split()
    )
    with run_daemon(make_config(tmp_path, devices=("cpu:0", "cpu:1"))) as daemon:
        alice = Recorder(peers(daemon.address), [])
        welcome = alice.answer(alice.send(doc_request("hello")), ("welcome",))
        status = alice.answer(alice.send(doc_request("status")), ("status_reply",))
    assert {m["device"] for m in welcome["body"]["models"]} == {"cpu:0"}
    assert [d["name"] for d in status["body"]["devices"]] == ["cpu:0", "cpu:1"]


def test_the_sampling_eta_follows_the_pace_of_the_timed_steps(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "`null` on the first `sampling` message" in text
    step_s = 0.05  # the engine sleeps at least this long per step
    with run_daemon(make_config(tmp_path), [TestEngine(step_s=step_s)]) as daemon:
        alice = Recorder(peers(daemon.address), [])
        alice.answer(alice.send(doc_request("hello")), ("welcome",))
        gen_id = alice.send(doc_request("generate", steps=12))
        alice.answer(gen_id, ("result",))
    sampling = [h["body"] for h in alice.received if situation(h) == ("progress", "sampling")]
    assert sampling[0]["eta_s"] is None  # one step reported: no pace to go by yet
    for body in sampling[1:]:
        # At least the sleeps still to come (was (step - 1) / step of it: the first step's
        # report was taken as the start of sampling, so the pace counted one step too many).
        left = step_s * (body["total"] - body["step"])
        assert body["eta_s"] >= left - 0.001, body


@pytest.mark.parametrize(
    ("field", "value"),
    [("v", "1"), ("type", "Ping"), ("id", "a b"), ("re", 7), ("session", "x" * 65),
     ("body", []), ("arrays", {}), ("arrays", [{"name": "", "dtype": "<f4", "shape": [0]}]),
     ("arrays", ["frame"])],
)  # fmt: skip
def test_a_malformed_header_field_is_bad_request_naming_it(field: str, value: Any) -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "A header field that breaks its rule is `bad_request` with `details.field`" in text
    header = {**doc_request("ping"), field: value}
    payloads = [b""] * len(value) if field == "arrays" and isinstance(value, list) else []
    with pytest.raises(ProtocolError) as refused:
        decode([SIGNATURE, json.dumps(header).encode(), *payloads], REQUEST_LIMITS)
    assert refused.value.details.get("field") == field
    if field == "arrays":  # a descriptor with no frame of its own is blamed on the list too
        with pytest.raises(ProtocolError) as refused:
            decode([SIGNATURE, json.dumps(header).encode(), *payloads, b""], REQUEST_LIMITS)
        assert refused.value.details.get("field") == field


def test_unknown_body_fields_are_ignored_whatever_they_hold() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "Unknown header and body fields are ignored whatever they hold" in text
    header = doc_request("generate", future=list(range(257)), later={str(i): 1 for i in range(257)})
    frame = json.dumps({**header, "extra": "a" * 9000}).replace("aaaa", "\\ud800", 1)
    message = parse_request(decode([SIGNATURE, frame.encode()], REQUEST_LIMITS))
    assert isinstance(message, Generate)
    message.validate()
    assert "So is an array whose name this page does not list" in text
    later = {"later.weights": np.zeros(3, np.float32)}
    message = parse_request(Envelope("generate", "gen-1", doc_request("generate")["body"], later))
    assert isinstance(message, Generate) and message.constraints is None
    with pytest.raises(ProtocolError) as refused:  # the same list in a field the daemon reads
        parse_request(decode(frames_of(doc_request("hello", capabilities=["x"] * 257))))
    assert refused.value.details["field"] == "capabilities"


def test_a_job_cancelled_inside_a_shared_batch_is_answered_when_the_batch_ends(
    tmp_path: Path, peers: Callable[..., Peer]
) -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "but its own `cancelled` comes when the batch ends, with its neighbours' answers" in text
    with run_daemon(make_config(tmp_path), [TestEngine(step_s=0.02)]) as daemon:
        alice = Recorder(peers(daemon.address), [])
        alice.answer(alice.send(doc_request("hello")), ("welcome",))
        kept, dropped = (
            alice.send({**doc_request("generate", steps=40), "id": request_id})
            for request_id in ("gen-kept", "gen-dropped")
        )
        job_id = alice.answer(dropped, ("progress", "sampling"))["body"]["job_id"]
        alice.answer(kept, ("progress", "sampling"))  # one batch: both are sampling
        alice.answer(alice.send(doc_request("cancel", job_id=job_id)), ("cancelled",))
        alice.answer(dropped, ("cancelled",))
        alice.answer(kept, ("result",))
    order = [(h["re"], h["type"], h["body"].get("step")) for h in alice.received]
    last_step = order.index(("gen-kept", "progress", 40))
    assert order.index(("gen-dropped", "cancelled", None)) > last_step, order
    cancelled_at = order.index(("cancel-1", "cancelled", None))
    late = [m for m in order[cancelled_at + 1 :] if m[0] == "gen-dropped" and m[1] == "progress"]
    assert len(late) <= 1, late  # at most the step under way when the cancel arrived


def test_a_bool_array_holds_only_bytes_0_and_1() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "a `|b1` array holds only the bytes 0 and 1" in text
    header = doc_request("ping")
    header["arrays"] = [{"name": "flags", "dtype": "|b1", "shape": [3]}]
    frames = [SIGNATURE, json.dumps(header).encode()]
    assert decode([*frames, bytes([0, 1, 1])], REQUEST_LIMITS).arrays["flags"].tolist() == [
        False, True, True
    ]  # fmt: skip
    with pytest.raises(ProtocolError) as refused:  # numpy would read 2 as a "True" that is 2
        decode([*frames, bytes([0, 2, 1])], REQUEST_LIMITS)
    assert (refused.value.code, refused.value.details["field"]) == ("bad_request", "flags")


def test_a_non_blocking_send_to_no_daemon_fails_at_once(context: zmq.Context) -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "`IMMEDIATE=1` with non-blocking sends (`ZMQ_DONTWAIT`)" in text
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dealer = context.socket(zmq.DEALER)
    try:
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IMMEDIATE, 1)
        dealer.connect(f"tcp://127.0.0.1:{port}")
        with pytest.raises(zmq.Again):  # a blocking send here would never return
            dealer.send_multipart(frames_of(doc_request("ping")), zmq.DONTWAIT)
    finally:
        dealer.close()
