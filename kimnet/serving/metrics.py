"""Prometheus metrics of the model server, at TF Serving's path ``/monitoring/prometheus/metrics``.

Standard library only, in the Prometheus text format (version 0.0.4):
  ``kimnet_requests_total{model,version,signature,api,code}``  requests answered
  ``kimnet_request_latency_seconds{model,api}``                 histogram, per request
  ``kimnet_batch_size``                                         histogram, per model run
  ``kimnet_model_load_failures_total{model,version}``           failed loads and warm-ups
  ``kimnet_resident_memory_bytes``                              the server's RSS
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

from kimnet.serving.memory import rss_bytes

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.bounds, "+Inf"), self.counts, strict=True):
            running += count
            sep = "," if labels else ""
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        braces = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{braces} {self.total:.6f}")
        out.append(f"{name}_count{braces} {running}")
        return out


def _labels(**values: object) -> str:
    def escape(text: object) -> str:
        return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{key}="{escape(value)}"' for key, value in values.items())


class Metrics:
    """Thread-safe counters and histograms; :meth:`render` is the scrape page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple, int] = defaultdict(int)
        self._latency: dict[tuple, _Histogram] = {}
        self._batches = _Histogram(BATCH_BUCKETS)
        self._load_failures: dict[tuple, int] = defaultdict(int)

    def request(
        self, model: str, version: str, signature: str, api: str, code: int, seconds: float
    ) -> None:
        with self._lock:
            self._requests[(model, version, signature, api, code)] += 1
            key = (model, api)
            if key not in self._latency:
                self._latency[key] = _Histogram(LATENCY_BUCKETS_S)
            self._latency[key].observe(seconds)

    def batch(self, size: int) -> None:
        with self._lock:
            self._batches.observe(size)

    def load_failure(self, model: str, version: int) -> None:
        with self._lock:
            self._load_failures[(model, str(version))] += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP kimnet_requests_total Requests answered, by model, version, signature, "
                "API and HTTP status code.",
                "# TYPE kimnet_requests_total counter",
            ]
            for (model, version, signature, api, code), count in sorted(self._requests.items()):
                labels = _labels(
                    model=model, version=version, signature=signature, api=api, code=code
                )
                lines.append(f"kimnet_requests_total{{{labels}}} {count}")
            lines += [
                "# HELP kimnet_request_latency_seconds Time from request to response.",
                "# TYPE kimnet_request_latency_seconds histogram",
            ]
            for (model, api), histogram in sorted(self._latency.items()):
                lines += histogram.lines(
                    "kimnet_request_latency_seconds", _labels(model=model, api=api)
                )
            lines += [
                "# HELP kimnet_batch_size Examples per model run (server-side batches).",
                "# TYPE kimnet_batch_size histogram",
                *self._batches.lines("kimnet_batch_size", ""),
                "# HELP kimnet_model_load_failures_total Versions that failed to load or warm up.",
                "# TYPE kimnet_model_load_failures_total counter",
            ]
            for (model, version), count in sorted(self._load_failures.items()):
                labels = _labels(model=model, version=version)
                lines.append(f"kimnet_model_load_failures_total{{{labels}}} {count}")
        lines += [
            "# HELP kimnet_resident_memory_bytes Resident memory of the server process.",
            "# TYPE kimnet_resident_memory_bytes gauge",
            f"kimnet_resident_memory_bytes {rss_bytes()}",
        ]
        return "\n".join(lines) + "\n"
