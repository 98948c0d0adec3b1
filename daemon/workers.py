"""One worker per device: takes a batch from the job lifecycle and runs it on a single thread.

The engine runs in a one-thread executor, so the event loop keeps answering while the device
works; progress callbacks hop back to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from daemon.engine_api import DeviceFailure, Engine
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle

#: Told (device, failure, the failed batch) when the engine reports that its device failed.
OnDeviceFailure = Callable[[str, DeviceFailure, list[Job]], None]


class DeviceWorker:
    def __init__(
        self,
        device: str,
        engine: Engine,
        lifecycle: JobLifecycle,
        batch_window_s: float,
        on_device_failure: OnDeviceFailure,
    ) -> None:
        self.device = device
        self.engine = engine
        self._lifecycle = lifecycle
        self._batch_window_s = batch_window_s
        self._on_device_failure = on_device_failure
        #: Set once the device failed: this worker takes no more batches.
        self.failure: DeviceFailure | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"engine-{device}")
        self._work = asyncio.Event()
        self.current: list[Job] = []
        self.idle = asyncio.Event()
        self.idle.set()

    def wake(self) -> None:
        self._work.set()

    async def run(self) -> None:
        """Take and run batches until cancelled (at shutdown, once idle) or the device fails."""
        while self.failure is None:
            await self._work.wait()
            self._work.clear()
            if self._batch_window_s:
                # Let jobs that arrive together share one engine call.
                await asyncio.sleep(self._batch_window_s)
            while not self._lifecycle.shutting_down and self.failure is None:
                batch = self._lifecycle.take_batch(self.engine)
                if not batch:
                    break
                await self._run_batch(batch)

    async def _run_batch(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        self.current = batch
        self.idle.clear()
        stops = {job.job_id: job.cancel_event for job in batch}

        def progress(job_id: str, stage: str, step: int, total: int) -> None:
            loop.call_soon_threadsafe(self._lifecycle.on_progress, job_id, stage, step, total)

        def should_stop(job_id: str) -> bool:
            event = stops.get(job_id)
            return event is not None and event.is_set()

        specs = [job.spec for job in batch]
        started = time.monotonic()
        try:
            outcomes = await loop.run_in_executor(
                self._executor, self.engine.run_batch, specs, progress, should_stop
            )
            if len(outcomes) != len(batch):
                raise RuntimeError(f"engine returned {len(outcomes)} outcomes for {len(batch)}")
        except DeviceFailure as failure:
            self._device_failed(batch, failure)
        except Exception as exc:
            self._lifecycle.fail_batch(batch, exc, time.monotonic() - started)
        else:
            self._lifecycle.finish_batch(self.engine, batch, outcomes, time.monotonic() - started)
        finally:
            self.current = []
            self.idle.set()

    def _device_failed(self, batch: list[Job], failure: DeviceFailure) -> None:
        """Not this batch's fault: the device is broken, so this worker stops for good."""
        self.failure = failure
        self._on_device_failure(self.device, failure, batch)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
