"""``python -m daemon``: the real ``serve`` with the built-in tiny engine, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


NO_CUDA = (
    "device cuda:3: this torch build ({}) has no CUDA support. Install a CUDA build of torch "
    "(https://pytorch.org/get-started/locally/), or set devices to cpu."
)


def _daemon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.skipif(torch.version.cuda is not None, reason="needs a torch without CUDA")
def test_serve_on_a_gpu_this_torch_cannot_use_exits_2_in_one_line(tmp_path: Path) -> None:
    done = _daemon("serve", "--devices", "cuda:3", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr == f"error: {NO_CUDA.format(torch.__version__)}\n"  # no traceback
    assert not (tmp_path / "tiny").exists()  # refused before any model was built


@pytest.mark.skipif(torch.version.cuda is not None, reason="needs a torch without CUDA")
def test_serve_names_every_unusable_device_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text('devices = ["cpu", "cuda:0", "gpu1"]\n')
    done = _daemon("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"error: device cuda:0: this torch build ({torch.__version__}) has no CUDA support. "
        "Install a CUDA build of torch (https://pytorch.org/get-started/locally/), or set "
        "devices to cpu.",
        "error: device 'gpu1': not a device name. Use cpu, cuda or cuda:N (cuda:0 is the first "
        "GPU).",
    ]


@pytest.mark.skipif(torch.version.cuda is not None, reason="needs a torch without CUDA")
def test_check_reports_the_device_and_exits_2(tmp_path: Path) -> None:
    tiny = str(tmp_path / "tiny")
    done = _daemon("check", "--tiny-dir", tiny, env={"HYMOTION_DEVICES": "cpu,cuda:3"})
    assert done.returncode == 2 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "devices:",
        "  cpu: host memory (not checked)",
        f"  FAILED: {NO_CUDA.format(torch.__version__)}",
    ]
    assert "loaded" in done.stdout  # the models were still checked, on the usable device
    assert lines[-1] == "1 problem(s)"
