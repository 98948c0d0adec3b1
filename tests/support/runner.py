"""Run a real daemon for tests: in-process on its own loop thread, or as a subprocess."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from daemon.backend import EngineBackend
from daemon.config import DaemonConfig, with_overrides
from daemon.engine_api import Engine
from daemon.server import Server

from .engine import TestEngine

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT_S = 30.0


def make_config(data_dir: Path, **overrides: Any) -> DaemonConfig:
    """A test config: loopback on an ephemeral port, everything written under ``data_dir``."""
    base = DaemonConfig(
        bind="tcp://127.0.0.1:*",
        data_dir=Path(data_dir),
        log_stderr=False,
        log_file=True,
        log_level="debug",
        batch_window_s=0.005,
        heartbeat_s=0.5,
        grace_period_s=5.0,
    )
    return with_overrides(base, **overrides)


@dataclass
class DaemonHandle:
    """A running in-process daemon. ``call`` runs a function on its loop (for inspection)."""

    server: Server
    engines: list[Engine]
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def engine(self) -> Engine:
        return self.engines[0]

    @property
    def log_path(self) -> Path:
        return self.server.config.logs_path / "daemon.log"

    def call(self, fn: Callable[[], T], timeout_s: float = 5.0) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    def log_events(self) -> list[dict[str, Any]]:
        return read_log(self.log_path)


@contextmanager
def run_daemon(
    config: DaemonConfig,
    engines: Sequence[Engine] | None = None,
    backend: EngineBackend | None = None,
) -> Iterator[DaemonHandle]:
    """Start ``Server(config, engines)`` on a private event loop thread; stop it on exit.

    ``engines`` defaults to one zero-cost :class:`TestEngine` per configured device, unless a
    ``backend`` (e.g. a connected ``RayBackend``) runs the batches.
    """
    engine_list: list[Engine] = []
    if backend is None:
        engine_list = (
            list(engines) if engines is not None else [TestEngine(device=d) for d in config.devices]
        )
    server = Server(config, engine_list, backend=backend)
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[asyncio.Event] = concurrent.futures.Future()
    done: concurrent.futures.Future[None] = concurrent.futures.Future()

    async def main() -> None:
        stop = asyncio.Event()
        try:
            await server.startup()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(stop)
        await stop.wait()
        await server.shutdown()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
            done.set_result(None)
        except BaseException as exc:  # surfaced to the test at exit
            done.set_exception(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=thread_main, name="test-daemon", daemon=True)
    thread.start()
    stop_event = ready.result(_START_TIMEOUT_S)
    handle = DaemonHandle(server, engine_list, loop, stop_event)
    try:
        yield handle
    finally:
        loop.call_soon_threadsafe(stop_event.set)
        done.result(_START_TIMEOUT_S)
        thread.join(_START_TIMEOUT_S)


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
        start_timeout_s: float = _START_TIMEOUT_S,
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

    def start(self) -> DaemonProcess:
        """Start (again, on the same port once known) and wait for its ``started`` log line."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        bind = f"tcp://127.0.0.1:{self.port or '*'}"
        cmd = [sys.executable, *self.entry, "--bind", bind, "--data-dir", str(self.data_dir),
               "--log-stderr", "false", *self.args]  # fmt: skip
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            event = self._started_event(offset)
            if event is not None:
                self.address = event["address"]
                self.port = int(self.address.rsplit(":", 1)[1])
                return self
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"test daemon exited with {self.proc.returncode}: {err}")
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
        code = self.proc.wait(timeout_s)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
