"""Prometheus metrics on an explicit registry (one per daemon, so tests can run several).

Labels are bounded sets (message type, outcome, reason, stage, device); artist names never
become labels, because a studio box would grow one series per person.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from . import __version__

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, devices: tuple[str, ...]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hymotion_requests_total", "Requests decoded, by type", ["type"], registry=r
        )
        self.jobs = Counter(
            "hymotion_jobs_total", "Finished jobs by outcome", ["outcome"], registry=r
        )
        self.rejections = Counter(
            "hymotion_rejections_total",
            "Generate requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self.malformed = Counter(
            "hymotion_malformed_messages_total",
            "Messages that failed to decode",
            ["reason"],
            registry=r,
        )
        self.dropped_sends = Counter(
            "hymotion_dropped_sends_total", "Replies not delivered", ["why"], registry=r
        )
        self.auth_refusals = Counter(
            "hymotion_auth_refusals_total", "CURVE clients refused", registry=r
        )
        self.queue_depth = Gauge("hymotion_queue_depth", "Jobs waiting", registry=r)
        self.running = Gauge("hymotion_running_jobs", "Jobs on a device now", registry=r)
        self.batch_size = Histogram(
            "hymotion_batch_jobs",
            "Jobs per engine call",
            buckets=(1, 2, 3, 4, 6, 8, 16),
            registry=r,
        )
        self.stage_seconds = Histogram(
            "hymotion_stage_seconds",
            "Seconds a job spent in one stage (queue, encode, sample, decode)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.job_latency = Histogram(
            "hymotion_job_latency_seconds",
            "Seconds from admission to result, jobs that finished ok",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        info = Gauge("hymotion_build_info", "Daemon version", ["version"], registry=r)
        info.labels(version=__version__).set(1)
        self._device_memory(devices)
        self.device_up = Gauge(
            "hymotion_device_up",
            "1 while the device serves, 0 once it failed",
            ["device"],
            registry=r,
        )
        self.device_failures = Counter(
            "hymotion_device_failures_total",
            "Device-level failures (the device was taken out of service)",
            ["device"],
            registry=r,
        )
        for device in devices:
            self.device_up.labels(device=device).set(1)
            self.device_failures.labels(device=device)  # exported as 0 from the start

    def _device_memory(self, devices: tuple[str, ...]) -> None:
        allocated = Gauge(
            "hymotion_device_memory_allocated_bytes",
            "torch.cuda.memory_allocated",
            ["device"],
            registry=self.registry,
        )
        reserved = Gauge(
            "hymotion_device_memory_reserved_bytes",
            "torch.cuda.memory_reserved",
            ["device"],
            registry=self.registry,
        )
        for device in devices:
            if device.startswith("cuda"):
                allocated.labels(device=device).set_function(
                    partial(_cuda_memory, "memory_allocated", device)
                )
                reserved.labels(device=device).set_function(
                    partial(_cuda_memory, "memory_reserved", device)
                )

    def serve_http(self, host: str, port: int) -> Any:
        """Start the /metrics HTTP server; returns the server (call ``.shutdown()``)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent); for tests."""
        return self.registry.get_sample_value(name, labels) or 0.0


def _cuda_memory(function: str, device: str) -> float:
    # Read torch only if the engine already imported it: the service itself never needs torch.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0.0
    return float(getattr(torch.cuda, function)(device))
