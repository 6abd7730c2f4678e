"""Prometheus text exposition, by hand: request counts, latency histograms and a few gauges."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from itertools import accumulate

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and histograms for this worker process (Prometheus sums across workers)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list[float]] = {}
        self.counters: dict[str, int] = defaultdict(int)
        self.gauges: dict[str, Callable[[], float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request (on every request's path: one bucket is counted, summed when rendered)."""
        with self._lock:
            self.requests[(route, method, status)] += 1
            hist = self.latency.get(route)
            if hist is None:
                hist = self.latency[route] = [0.0] * (len(BUCKETS) + 2)  # buckets, +Inf, sum
            hist[bisect_left(BUCKETS, seconds)] += 1  # the first bucket with le >= seconds (+Inf past all)
            hist[-1] += seconds

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] += n

    def render(self) -> str:
        """The text format (version 0.0.4)."""
        lines = [
            "# HELP hashbank_requests_total HTTP requests by route template, method and status.",
            "# TYPE hashbank_requests_total counter",
        ]
        with self._lock:
            for (route, method, status), n in sorted(self.requests.items()):
                lines.append(f'hashbank_requests_total{{route="{route}",method="{method}",status="{status}"}} {n}')
            lines += [
                "# HELP hashbank_request_seconds Request latency by route template.",
                "# TYPE hashbank_request_seconds histogram",
            ]
            for route, hist in sorted(self.latency.items()):
                cumulative = list(accumulate(hist[:-1]))
                for bound, n in zip((*BUCKETS, "+Inf"), cumulative, strict=True):
                    lines.append(f'hashbank_request_seconds_bucket{{route="{route}",le="{bound}"}} {int(n)}')
                lines.append(f'hashbank_request_seconds_count{{route="{route}"}} {int(cumulative[-1])}')
                lines.append(f'hashbank_request_seconds_sum{{route="{route}"}} {hist[-1]:.6f}')
            for name, n in sorted(self.counters.items()):
                lines += [f"# TYPE hashbank_{name}_total counter", f"hashbank_{name}_total {n}"]
        for name, read in sorted(self.gauges.items()):
            lines += [f"# TYPE hashbank_{name} gauge", f"hashbank_{name} {read()}"]
        return "\n".join(lines) + "\n"
