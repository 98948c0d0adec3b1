"""The daemon's metrics: recorded in process always, served to Prometheus only when asked.

Recording is a few dict updates and needs no library, so a daemon without ``prometheus_client``
(an optional dependency) starts and counts as usual; the library is imported only by
:meth:`Metrics.serve_http`, when ``metrics_bind`` is set, and only to expose what is recorded.
Labels are bounded sets (message type, outcome, reason, stage, device); artist names never
become labels, because a studio box would grow one series per person.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from . import __version__

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class MetricsUnavailable(Exception):
    """``metrics_bind`` is set but the exposition library is missing: serve without metrics."""


class Series:
    """One labelled time series: a number (counter, gauge) or bucket counts (histogram)."""

    def __init__(self, buckets: tuple[float, ...] = ()) -> None:
        self.value = 0.0
        self.function: Callable[[], float] | None = None
        self.buckets = buckets
        self.bucket_counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)

    def set_function(self, function: Callable[[], float]) -> None:
        self.function = function

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            self.bucket_counts[index] += 1
        self.count += 1
        self.sum += value

    def current(self) -> float:
        return self.function() if self.function is not None else self.value


class Family:
    """A metric and its series by label values; unlabelled metrics are used directly."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: tuple[str, ...] = (),
        buckets: tuple[float, ...] = (),
    ) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames, self.buckets = labelnames, buckets
        self.series: dict[tuple[str, ...], Series] = {}

    def labels(self, **labels: str) -> Series:
        key = tuple(str(labels[name]) for name in self.labelnames)
        if key not in self.series:
            self.series[key] = Series(self.buckets)
        return self.series[key]

    # An unlabelled metric is its own single series.
    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.labels().dec(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float) -> None:
        self.labels().observe(value)


class Metrics:
    def __init__(self, devices: tuple[str, ...]) -> None:
        self.families: list[Family] = []
        self.requests = self._add(
            "counter", "hymotion_requests_total", "Requests decoded, by type", "type"
        )
        self.jobs = self._add(
            "counter", "hymotion_jobs_total", "Finished jobs by outcome", "outcome"
        )
        self.rejections = self._add(
            "counter", "hymotion_rejections_total", "Generate requests refused, by reason", "reason"
        )
        self.malformed = self._add(
            "counter",
            "hymotion_malformed_messages_total",
            "Messages that failed to decode",
            "reason",
        )
        self.dropped_sends = self._add(
            "counter", "hymotion_dropped_sends_total", "Replies not delivered", "why"
        )
        self.auth_refusals = self._add(
            "counter", "hymotion_auth_refusals_total", "CURVE clients refused"
        )
        self.queue_depth = self._add("gauge", "hymotion_queue_depth", "Jobs waiting")
        self.running = self._add("gauge", "hymotion_running_jobs", "Jobs on a device now")
        self.batch_size = self._add(
            "histogram",
            "hymotion_batch_jobs",
            "Jobs per engine call",
            buckets=(1, 2, 3, 4, 6, 8, 16),
        )
        self.stage_seconds = self._add(
            "histogram",
            "hymotion_stage_seconds",
            "Seconds a job spent in one stage (queue, encode, sample, decode)",
            "stage",
            buckets=_LATENCY_BUCKETS,
        )
        self.job_latency = self._add(
            "histogram",
            "hymotion_job_latency_seconds",
            "Seconds from admission to result, jobs that finished ok",
            buckets=_LATENCY_BUCKETS,
        )
        info = self._add("gauge", "hymotion_build_info", "Daemon version", "version")
        info.labels(version=__version__).set(1)
        self._device_memory(devices)
        self.device_up = self._add(
            "gauge", "hymotion_device_up", "1 while the device serves, 0 once it failed", "device"
        )
        self.device_failures = self._add(
            "counter",
            "hymotion_device_failures_total",
            "Device-level failures (the device was taken out of service)",
            "device",
        )
        for device in devices:
            self.device_up.labels(device=device).set(1)
            self.device_failures.labels(device=device)  # exported as 0 from the start

    def _add(
        self,
        kind: str,
        name: str,
        documentation: str,
        *labelnames: str,
        buckets: tuple[float, ...] = (),
    ) -> Family:
        family = Family(kind, name, documentation, labelnames, buckets)
        if not labelnames:
            family.labels()  # exported as 0 from the first scrape, so rate() has a start
        self.families.append(family)
        return family

    def _device_memory(self, devices: tuple[str, ...]) -> None:
        allocated = self._add(
            "gauge",
            "hymotion_device_memory_allocated_bytes",
            "torch.cuda.memory_allocated",
            "device",
        )
        reserved = self._add(
            "gauge", "hymotion_device_memory_reserved_bytes", "torch.cuda.memory_reserved", "device"
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
        """Start the /metrics HTTP server; returns the server (call ``.shutdown()``).

        Raises MetricsUnavailable when ``prometheus_client`` is not installed."""
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as exc:
            raise MetricsUnavailable(
                f"metrics_bind is set but prometheus_client cannot be imported ({exc}); "
                "install it (pip install prometheus-client) to serve metrics"
            ) from exc
        registry = CollectorRegistry()
        registry.register(_Exposition(self.families))
        server, _thread = start_http_server(port, addr=host, registry=registry)
        return server

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), by its Prometheus sample name."""
        for family in self.families:
            for suffix in ("", "_count", "_sum"):
                if family.name + suffix != name:
                    continue
                series = family.series.get(tuple(labels.get(n, "") for n in family.labelnames))
                if series is None:
                    return 0.0
                if suffix == "_count":
                    return float(series.count)
                return series.sum if suffix == "_sum" else series.current()
        return 0.0


class _Exposition:
    """A prometheus_client collector that reads the recorded families (imported lazily)."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        kinds = {
            "counter": CounterMetricFamily,
            "gauge": GaugeMetricFamily,
            "histogram": HistogramMetricFamily,
        }
        for family in self._families:
            labels = list(family.labelnames)
            metric = kinds[family.kind](family.name, family.documentation, labels=labels)
            for key, series in family.series.items():
                if family.kind == "histogram":
                    cumulative, buckets = 0, []
                    for bound, count in zip(family.buckets, series.bucket_counts, strict=True):
                        cumulative += count
                        buckets.append((_bound(bound), cumulative))
                    buckets.append(("+Inf", series.count))
                    metric.add_metric(list(key), buckets=buckets, sum_value=series.sum)
                else:
                    metric.add_metric(list(key), series.current())
            yield metric


def _bound(value: float) -> str:
    return str(float(value))


def _cuda_memory(function: str, device: str) -> float:
    # Read torch only if the engine already imported it: the service itself never needs torch.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return 0.0
    return float(getattr(torch.cuda, function)(device))
