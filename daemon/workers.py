"""One worker per device: takes a batch from the job lifecycle and runs it on a single thread
(the loop itself, ``BatchLoop``, is shared with the cluster's dispatch slots).

The engine runs in a one-thread executor, so the event loop keeps answering while the device
works; progress callbacks hop back to the loop with ``call_soon_threadsafe``. Batches run
through ``JobLifecycle.run_isolated``, so one job's failure never fails the rest of its batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from daemon.engine_api import DeviceFailure, Engine, EngineDescription, JobOutput
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle
from shared_protocol import HYMotionError

#: Told (device, failure, the failed batch) when the engine reports that its device failed.
OnDeviceFailure = Callable[[str, DeviceFailure, list[Job]], None]


class BatchLoop:
    """Takes batches from the job lifecycle and runs them one at a time: the loop a local
    device's worker and a cluster dispatch slot share. ``_run`` runs one batch."""

    def __init__(
        self, engine: EngineDescription, lifecycle: JobLifecycle, batch_window_s: float
    ) -> None:
        self._batch_engine = engine
        self._lifecycle = lifecycle
        self._batch_window_s = batch_window_s
        self._work = asyncio.Event()
        self.current: list[Job] = []
        self.idle = asyncio.Event()
        self.idle.set()

    def wake(self) -> None:
        self._work.set()

    def stopped(self) -> bool:
        """True once this loop takes no more batches (until then, it runs until cancelled)."""
        return False

    async def run(self) -> None:
        """Take and run batches until cancelled (at shutdown, once idle) or stopped."""
        while not self.stopped():
            await self._work.wait()
            self._work.clear()
            if self._batch_window_s:
                # Let jobs that arrive together share one engine call.
                await asyncio.sleep(self._batch_window_s)
            while not self._lifecycle.shutting_down and not self.stopped():
                batch = self._lifecycle.take_batch(self._batch_engine)
                if not batch:
                    break
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[Job]) -> None:
        self.current = batch
        self.idle.clear()
        try:
            await self._run(batch)
        finally:
            self.current = []
            self.idle.set()

    async def _run(self, batch: list[Job]) -> None:
        raise NotImplementedError


class DeviceWorker(BatchLoop):
    def __init__(
        self,
        device: str,
        engine: Engine,
        lifecycle: JobLifecycle,
        batch_window_s: float,
        on_device_failure: OnDeviceFailure,
    ) -> None:
        super().__init__(engine, lifecycle, batch_window_s)
        self.device = device
        self.engine = engine
        self._on_device_failure = on_device_failure
        #: Set once the device failed: this worker takes no more batches.
        self.failure: DeviceFailure | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"engine-{device}")

    def stopped(self) -> bool:
        return self.failure is not None

    async def _run(self, batch: list[Job]) -> None:
        try:
            await self._lifecycle.run_isolated(self.engine, batch, self._call_engine)
        except DeviceFailure as failure:
            # Not the batch's fault, so not split: answer what a split has not answered yet.
            self._device_failed([job for job in batch if not job.state.finished], failure)

    async def _call_engine(self, jobs: Sequence[Job]) -> list[JobOutput | HYMotionError]:
        """One ``run_batch`` on the device thread; progress hops back to the event loop."""
        loop = asyncio.get_running_loop()
        stops = {job.job_id: job.cancel_event for job in jobs}

        def progress(job_id: str, stage: str, step: int, total: int) -> None:
            # Timed here, not when the busy loop gets to it: the ETA goes by the engine's pace.
            reported = time.monotonic()
            loop.call_soon_threadsafe(
                self._lifecycle.on_progress, job_id, stage, step, total, reported
            )

        def should_stop(job_id: str) -> bool:
            event = stops.get(job_id)
            return event is not None and event.is_set()

        specs = [job.spec for job in jobs]
        return await loop.run_in_executor(
            self._executor, self.engine.run_batch, specs, progress, should_stop
        )

    def _device_failed(self, batch: list[Job], failure: DeviceFailure) -> None:
        """Not this batch's fault: the device is broken, so this worker stops for good."""
        self.failure = failure
        self._on_device_failure(self.device, failure, batch)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
