"""Run a real daemon for tests in-process, on its own loop thread (subprocesses: ``process``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
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
from .process import REPO_ROOT as REPO_ROOT
from .process import START_TIMEOUT_S, read_log

T = TypeVar("T")


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
    stop_event = ready.result(START_TIMEOUT_S)
    handle = DaemonHandle(server, engine_list, loop, stop_event)
    try:
        yield handle
    finally:
        loop.call_soon_threadsafe(stop_event.set)
        done.result(START_TIMEOUT_S)
        thread.join(START_TIMEOUT_S)
