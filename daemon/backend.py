"""Where admitted batches run: the seam between the job lifecycle and the engines.

The server owns one ``EngineBackend``. Its loops take batches from the lifecycle
(``take_batch``), run them somewhere, and report progress and outcomes back (``on_progress``,
``finish_batch``, ``fail_batch``). Two implementations:

- :class:`LocalBackend`: one :class:`daemon.workers.DeviceWorker` per local device (the default);
- ``daemon.cluster.backend.RayBackend``: replicas of a Ray Serve deployment, anywhere in a Ray
  cluster (``[cluster] backend = "ray"``).
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from daemon.device_health import DeviceHealth
from daemon.engine_api import Engine, EngineDescription
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle
from daemon.logs import EventLog
from daemon.metrics import Metrics
from daemon.workers import DeviceWorker


class EngineBackend(Protocol):
    @property
    def engine(self) -> EngineDescription:
        """Describes the models every runner serves: names, skeleton, batch keys, admission."""
        ...

    def capacity(self) -> int:
        """Batches that can run at once now (the queue's ETA divides by it)."""
        ...

    def start(
        self, lifecycle: JobLifecycle, log: EventLog, metrics: Metrics
    ) -> list[Coroutine[Any, Any, None]]:
        """The loops the server runs as tasks until shutdown cancels them."""
        ...

    def wake(self) -> None:
        """Jobs were queued: idle runners should take a batch."""
        ...

    def running(self) -> list[Job]:
        """Jobs on a runner now."""
        ...

    async def wait_idle(self) -> None:
        """Return once no batch is running."""
        ...

    def close(self) -> None: ...


class LocalBackend:
    """One worker thread per local device, each with its own engine."""

    def __init__(
        self, devices: Sequence[str], engines: Sequence[Engine], batch_window_s: float
    ) -> None:
        if len(engines) != len(devices):
            raise ValueError(f"{len(engines)} engines for {len(devices)} devices")
        if not engines:
            raise ValueError("the local backend needs at least one engine")
        self._devices = tuple(devices)
        self._engines = list(engines)
        self._batch_window_s = batch_window_s
        # every device runs the same models: any one engine describes them
        self.engine = self._engines[0]
        self.workers: list[DeviceWorker] = []
        #: Takes a failed device out of service (``daemon/device_health.py``); set by ``start``.
        self.health: DeviceHealth | None = None

    def capacity(self) -> int:
        """Devices still serving: all of them until one fails at run time."""
        if self.health is None:
            return len(self._devices)
        return len(self.health.working())

    def start(
        self, lifecycle: JobLifecycle, log: EventLog, metrics: Metrics
    ) -> list[Coroutine[Any, Any, None]]:
        health = self.health = DeviceHealth(self._devices, self._engines, lifecycle, log, metrics)
        self.workers = [
            DeviceWorker(device, engine, lifecycle, self._batch_window_s, health.device_failed)
            for device, engine in zip(self._devices, self._engines, strict=True)
        ]
        return [worker.run() for worker in self.workers]

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def running(self) -> list[Job]:
        return [job for worker in self.workers for job in worker.current]

    async def wait_idle(self) -> None:
        for worker in self.workers:
            await worker.idle.wait()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
