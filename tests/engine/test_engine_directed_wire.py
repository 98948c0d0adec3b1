"""Constraints on the wire (protocol 1.1): encoding, strict validation with typed errors, and a
live daemon on the real tiny engine that meets them and keeps serving after bad requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from daemon.engine.factory import create_engine
from shared_protocol import (
    REQUEST_LIMITS,
    Constraints,
    Error,
    Generate,
    InvalidArgument,
    Ping,
    Pong,
    Result,
    TimelineRow,
    Welcome,
    decode,
    encode,
    forward_kinematics,
    parse_request,
)
from tests.support import make_config, run_daemon
from tests.support.wire import Peer, zmq_context

JOINTS = 22


def _identity(count: int) -> np.ndarray:
    q = np.zeros((count, JOINTS, 4), np.float32)
    q[..., 0] = 1.0
    return q


def _poses(frames: list[int]) -> dict[str, Any]:
    roots = np.zeros((len(frames), 3), np.float32)
    roots[:, 1] = 0.95
    roots[:, 2] = np.linspace(0.0, 1.0, len(frames))
    return {
        "pose_frames": np.array(frames, np.int32),
        "pose_rotations": _identity(len(frames)),
        "pose_root_positions": roots,
    }


def _request(**constraints: Any) -> Generate:
    return Generate(
        prompt="a person walks over and sits down",
        duration_s=3.0,
        candidates=1,
        seed=3,
        steps=6,
        constraints=Constraints(**constraints),
    )


def test_constraints_travel_as_raw_arrays_and_round_trip() -> None:
    sent = _request(
        **_poses([0, 1, 80]),
        path_frames=np.array([0, 89], np.int32),
        path_points=np.array([[0, 0, 0], [0, 1, 0.3]], np.float32),
        timeline=(TimelineRow("a person jumps", 2.0),),
    )
    envelope = decode(encode(sent.envelope(msg_id="m1")), REQUEST_LIMITS)
    assert set(envelope.arrays) == {
        "constraints.pose_frames",
        "constraints.pose_rotations",
        "constraints.pose_root_positions",
        "constraints.path_frames",
        "constraints.path_points",
    }
    got = parse_request(envelope)
    assert isinstance(got, Generate) and got.constraints is not None
    assert got.constraints.timeline == (TimelineRow("a person jumps", 2.0),)
    assert np.array_equal(got.constraints.pose_frames, [0, 1, 80])
    assert got.constraints.path_points is not None and got.constraints.path_points.shape == (2, 3)
    got.validate()


def test_a_request_without_constraints_is_what_protocol_1_0_sent() -> None:
    envelope = decode(encode(Generate(prompt="walk", duration_s=2.0).envelope()), REQUEST_LIMITS)
    assert envelope.arrays == {} and envelope.body["constraints"] is None
    old = dict(envelope.body)
    del old["constraints"]  # a 1.0 client never sends the field
    parsed = parse_request(dataclasses.replace(envelope, body=old))
    assert isinstance(parsed, Generate) and parsed.constraints is None


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("key outside the clip", _poses([0, 90]), "constraints.pose_frames"),
    ("prefix longer than the clip", _poses(list(range(95))), "constraints.pose_frames"),
    ("negative frame", _poses([-1, 5]), "constraints.pose_frames"),
    ("unsorted frames", _poses([10, 5]), "constraints.pose_frames"),
    ("missing rotations", {**_poses([3]), "pose_rotations": None}, "constraints.pose_frames"),
    (
        "non-unit quaternion",
        {**_poses([3]), "pose_rotations": _identity(1) * 1.5},
        "constraints.pose_rotations",
    ),
    (
        "NaN position",
        {**_poses([3]), "pose_root_positions": np.full((1, 3), np.nan, np.float32)},
        "constraints.pose_root_positions",
    ),
    (
        "wrong joint count",
        {**_poses([3]), "pose_rotations": np.ones((1, 21, 4), np.float32) / 2},
        "constraints.pose_rotations",
    ),
    (
        "loop with different start and end",
        {**_poses([0, 89]), "loop": True},
        "constraints.loop",
    ),
    (
        "path without points",
        {"path_frames": np.array([1], np.int32)},
        "constraints.path_frames",
    ),
    (
        "path point away from a pose on the same frame",
        {
            **_poses([10]),
            "path_frames": np.array([10], np.int32),
            "path_points": np.array([[3.0, 3.0]], np.float32),
        },
        "constraints.path_points",
    ),
    (
        "infinite heading",
        {
            "path_frames": np.array([10], np.int32),
            "path_points": np.array([[0, 0, np.inf]], np.float32),
        },
        "constraints.path_points",
    ),
    (
        "timeline over the limit",
        {"timeline": tuple(TimelineRow("a person runs", 11.0) for _ in range(11))},
        "constraints.timeline",
    ),
    (
        "timeline row too long for one window",
        {"timeline": (TimelineRow("a person runs", 12.0),)},
        "constraints.timeline[0].duration_s",
    ),
    ("empty timeline prompt", {"timeline": (TimelineRow(" ", 2.0),)}, "constraints.timeline[0]"),
    (
        "loop and timeline",
        {"loop": True, "timeline": (TimelineRow("a person runs", 2.0),)},
        "constraints.loop",
    ),
    ("impose_until out of range", {"impose_until": 0.2}, "constraints.impose_until"),
]


@pytest.mark.parametrize(("case", "fields", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_constraints_are_refused_naming_the_field(
    case: str, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        _request(**fields).validate()
    assert err.value.field.startswith(field), (case, err.value.field, err.value.message)


def test_the_same_pose_at_both_ends_of_a_loop_is_allowed() -> None:
    fields = _poses([0, 89])
    fields["pose_root_positions"][1] = fields["pose_root_positions"][0]
    _request(**fields, loop=True).validate()


@pytest.fixture(scope="module")
def context() -> Iterator[zmq.Context]:
    with zmq_context() as ctx:
        yield ctx


def test_a_live_daemon_meets_the_constraints_and_survives_bad_ones(
    tmp_path: Path, tiny_root: Path, context: zmq.Context
) -> None:
    engine = create_engine({"tiny_dir": str(tiny_root)}, "cpu")
    with run_daemon(make_config(tmp_path), [engine]) as daemon:
        peer = Peer(context, daemon.address)
        try:
            welcome = peer.hello()
            assert isinstance(welcome, Welcome)
            assert "constraints" in welcome.capabilities
            assert welcome.protocol_version == "1.1" and welcome.limits.max_timeline_s >= 60
            for _, fields, field in BAD[:4] + BAD[8:9]:
                request_id = peer.send(_request(**fields))
                _, error = peer.recv_until(Error, re=request_id)
                assert isinstance(error, Error) and error.code == "invalid_argument"
                assert error.details["field"].startswith(field)
            good = _request(**_poses([0, 1, 2, 80]), loop=False)
            request_id = peer.send(good)
            _, result = peer.recv_until(Result, re=request_id, timeout_s=60)
            assert isinstance(result, Result) and result.frames == 90
            c = good.constraints
            assert c is not None and c.pose_frames is not None
            target = forward_kinematics(result.skeleton, c.pose_rotations, c.pose_root_positions)
            assert np.abs(result.joint_positions[0, c.pose_frames] - target).max() < 1e-3
            timeline = _request(timeline=(TimelineRow("a person jumps", 2.0),))
            request_id = peer.send(timeline)
            _, joined = peer.recv_until(Result, re=request_id, timeout_s=60)
            assert isinstance(joined, Result) and joined.frames == 150
            request_id = peer.send(Ping())
            _, pong = peer.recv_until(Pong, re=request_id)
            assert isinstance(pong, Pong)
        finally:
            peer.close()
