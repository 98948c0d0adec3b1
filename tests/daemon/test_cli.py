"""``python -m daemon``: the real ``serve`` with the built-in tiny engine, end to end."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import build_parser
from shared_protocol import Generate
from shared_protocol.client import ClientConfig, MotionClient
from tests.support import DaemonProcess
from tests.support.runner import REPO_ROOT


def test_parser_has_service_and_engine_commands() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"serve", "keygen", "bench-protocol", "check", "convert", "bench"} <= set(commands)


def test_bad_flag_value_exits_2_with_the_option_named(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--max-queue", "many", "--data-dir",
         str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and b"--max-queue" in proc.stderr


@pytest.mark.slow
def test_serve_tiny_model_generate_and_sigterm(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, entry=DaemonProcess.REAL_ENGINE, start_timeout_s=240)
    try:
        daemon.start()
        config = ClientConfig(address=daemon.address, artist="alice", connect_timeout_s=10)
        with MotionClient(config) as client:
            welcome = client.wait_connected(10)
            tiny = next(m for m in welcome.models if m.name == welcome.default_model)
            assert tiny.available and tiny.untrained  # labelled as untrained
            result = client.run(
                Generate(prompt="a person walks", duration_s=1.0, candidates=2, steps=4),
                timeout_s=120,
            )
        assert result.untrained and result.rotations.shape == (2, 30, 22, 4)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.kill()
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written <= {"logs", "state", "tiny"}  # nothing outside its data directory
