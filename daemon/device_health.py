"""A device that fails while serving is taken out of service; the other devices carry on.

A worker whose engine raised :class:`daemon.engine_api.DeviceFailure` reports it here, from its
``except`` block (so the log keeps the traceback). Then:

- the jobs of that batch fail with ``model_unavailable`` naming the device, with a ``log_id``;
- the device shows as ``failed`` with the reason in ``status`` and as ``hymotion_device_up 0``
  in the metrics;
- the queue's ETA counts only the devices still working;
- a model that no working device serves any more becomes unavailable, with the reason, in
  ``welcome`` and ``status`` (new requests for it get ``model_unavailable``);
- with no device left, the queued jobs fail the same way.

Everything here runs on the event loop thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from daemon.engine_api import DeviceFailure, Engine
from daemon.jobs import Job
from daemon.lifecycle import JobLifecycle
from daemon.logs import EventLog, new_log_id
from daemon.metrics import Metrics
from shared_protocol import DeviceInfo, ModelInfo, ModelUnavailable

RESTART = "fix it (`python -m daemon check` says what it sees) and restart the daemon"


class DeviceHealth:
    def __init__(
        self,
        devices: Sequence[str],
        engines: Sequence[Engine],
        lifecycle: JobLifecycle,
        log: EventLog,
        metrics: Metrics,
    ) -> None:
        self._devices = tuple(devices)
        #: The models each device's engine serves, as loaded at start.
        self._serves = {
            device: {m.name for m in engine.models() if m.available}
            for device, engine in zip(devices, engines, strict=True)
        }
        self._offered = dict(lifecycle.models)
        self._lifecycle = lifecycle
        self._log = log
        self._metrics = metrics
        #: Failed device -> why.
        self.failures: dict[str, str] = {}
        lifecycle.devices = self.infos()

    def infos(self) -> tuple[DeviceInfo, ...]:
        return tuple(
            DeviceInfo(d, "failed", self.failures[d]) if d in self.failures else DeviceInfo(d, "ok")
            for d in self._devices
        )

    def working(self) -> list[str]:
        return [d for d in self._devices if d not in self.failures]

    def device_failed(self, device: str, failure: DeviceFailure, batch: Sequence[Job]) -> None:
        """Take ``device`` out of service and answer the jobs of its failed ``batch``."""
        log_id = new_log_id()
        self.failures[device] = failure.reason
        self._log.error(
            "device_failed",
            exc=True,
            log_id=log_id,
            device=device,
            reason=failure.reason,
            jobs=[j.job_id for j in batch],
            artists=sorted({j.artist for j in batch}),
        )
        self._metrics.device_up.labels(device=device).set(0)
        self._metrics.device_failures.labels(device=device).inc()
        self._lifecycle.devices = self.infos()
        self._lifecycle.models = self._models()
        left = self.working()
        self._lifecycle.scheduler.set_workers(len(left))
        after = f"{', '.join(left)} still serve{'s' if len(left) == 1 else ''}: resubmit"
        error = ModelUnavailable(
            f"device {device} failed while running this job ({failure.reason}); the daemon "
            f"stopped using it; {after if left else 'no device is left'}",
            device=device,
            log_id=log_id,
        )
        self._lifecycle.fail_jobs(batch, error)
        if not left:
            queued = ModelUnavailable(
                f"every device failed ({self._reasons()}); {RESTART}", log_id=log_id
            )
            self._lifecycle.fail_jobs(self._lifecycle.scheduler.order(), queued)

    def _models(self) -> dict[str, ModelInfo]:
        """The models offered at start, less those whose every device has failed."""
        models = {}
        for name, info in self._offered.items():
            on = [d for d in self._devices if name in self._serves[d]]
            if info.available and on and all(d in self.failures for d in on):
                reasons = "; ".join(f"{d}: {self.failures[d]}" for d in on)
                info = replace(
                    info, available=False, error=f"its device failed ({reasons}); {RESTART}"
                )
            models[name] = info
        return models

    def _reasons(self) -> str:
        return "; ".join(f"{d}: {why}" for d, why in self.failures.items())
