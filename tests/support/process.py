"""Run a real daemon for tests in its own process, and read its JSON log.

Imports nothing of the daemon: the add-on suite uses it under every Blender's Python (3.11 and
3.13), where the daemon's dependencies (torch) are absent. The daemon runs on
``HYMOTION_DAEMON_PYTHON`` (an interpreter with the daemon's dependencies; the Makefile points
it at ``.venv``), else on the interpreter running the tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
DAEMON_PYTHON_ENV = "HYMOTION_DAEMON_PYTHON"


def daemon_python() -> str:
    return os.environ.get(DAEMON_PYTHON_ENV) or sys.executable


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- subprocess daemons -----------------------------------------------------------------------


class DaemonProcess:
    """A daemon in its own process (``python -m tests.support.daemon_main``), for fault tests."""

    #: ``python -m daemon serve`` runs the real engine instead of the test engine.
    TEST_ENGINE = ("-m", "tests.support.daemon_main")
    REAL_ENGINE = ("-m", "daemon", "serve")

    def __init__(
        self,
        data_dir: Path,
        args: Sequence[str] = (),
        port: int = 0,
        entry: Sequence[str] = TEST_ENGINE,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.port = port
        self.entry = list(entry)
        self.start_timeout_s = start_timeout_s
        self.address = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "daemon.log"

    @property
    def stderr_path(self) -> Path:
        """The daemon's stderr, beside its log (a file: a pipe nobody reads can fill up and
        block the daemon)."""
        return self.log_path.with_name("daemon.stderr")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.is_file() else ""

    def log_events(self) -> list[dict[str, Any]]:
        return read_log(self.log_path)

    def start(self) -> DaemonProcess:
        """Start (again, on the same port once known) and wait for its ``started`` log line."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        bind = f"tcp://127.0.0.1:{self.port or '*'}"
        cmd = [daemon_python(), *self.entry, "--bind", bind, "--data-dir", str(self.data_dir),
               "--log-stderr", "false", *self.args]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("ab") as stderr:  # a restart appends
            self.proc = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            event = self._started_event(offset)
            if event is not None:
                self.address = event["address"]
                self.port = int(self.address.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"test daemon exited with {self.proc.returncode}: {self.stderr_text()}"
                )
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("test daemon did not start in time")

    def _started_event(self, offset: int) -> dict[str, Any] | None:
        if not self.log_path.exists():
            return None
        with self.log_path.open(encoding="utf-8") as f:
            f.seek(offset)
            for line in f:
                if line.endswith("\n") and '"event": "started"' in line:
                    return json.loads(line)
        return None

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        return self.wait()

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout_s)

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
