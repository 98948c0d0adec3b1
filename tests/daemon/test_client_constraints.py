"""The Python client and constraints (protocol 1.1): sent to a daemon that lists the
"constraints" capability; refused with a typed error, never sent, to one that does not (an
older daemon would ignore them and generate undirected motion)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zmq

import daemon.service
from shared_protocol import Constraints, Generate, UnsupportedVersion
from shared_protocol.client import ClientConfig, MotionClient
from tests.support import make_config, run_daemon

PROTOCOL_1_0_CAPABILITIES = ("progress", "cancel", "fetch", "resubmit", "status", "batching",
                             "quotas")  # fmt: skip


def _directed() -> Generate:
    rotations = np.zeros((1, 22, 4), np.float32)
    rotations[..., 0] = 1.0
    return Generate(
        prompt="walk",
        duration_s=2.0,
        candidates=1,
        constraints=Constraints(
            pose_frames=np.array([59], np.int32),
            pose_rotations=rotations,
            pose_root_positions=np.array([[0.0, 0.95, 1.0]], np.float32),
        ),
    )


def test_a_daemon_with_the_capability_takes_constraints(
    tmp_path: Path, context: zmq.Context
) -> None:
    with run_daemon(make_config(tmp_path)) as server:
        config = ClientConfig(address=server.address, artist="alice")
        with MotionClient(config, context) as client:
            welcome = client.wait_connected(5)
            assert "constraints" in welcome.capabilities and welcome.protocol_version == "1.1"
            result = client.run(_directed(), timeout_s=30)
            assert result.frames == 60


def test_an_older_daemon_is_never_sent_constraints(
    tmp_path: Path, context: zmq.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon.service, "CAPABILITIES", PROTOCOL_1_0_CAPABILITIES)
    with run_daemon(make_config(tmp_path)) as server:
        config = ClientConfig(address=server.address, artist="alice")
        with MotionClient(config, context) as client:
            # submitted before the welcome: refused when it arrives
            with pytest.raises(UnsupportedVersion) as early:
                client.run(_directed(), timeout_s=10)
            assert early.value.field == "constraints"
            # submitted after it: refused at once
            with pytest.raises(UnsupportedVersion):
                client.submit(_directed())
            assert client.run(Generate(prompt="walk", duration_s=1.0), timeout_s=30).frames == 30
            jobs = server.call(lambda: list(server.server.lifecycle.jobs))
    assert len(jobs) == 1  # only the undirected request reached the daemon
