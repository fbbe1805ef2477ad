"""Prometheus counters and histograms, kept in memory and written as text by hand.

Exposed by ``GET /metrics`` (text format 0.0.4). Each worker process keeps its own
numbers; scrape each worker or run one worker per container.

Example:
    >>> m = Metrics()
    >>> m.observe_request("/v1/predict", "POST", 200, 0.012)
    >>> "cvpipe_requests_total" in m.render()
    True
"""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    """Cumulative-bucket histogram (``le`` buckets, ``+Inf``, sum and count)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, b in enumerate(self.buckets):
            if value <= b:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out = []
        acc = 0
        sep = "," if labels else ""
        for b, c in zip(self.buckets, self.counts[:-1], strict=True):
            acc += c
            out.append(f'{name}_bucket{{{labels}{sep}le="{_num(b)}"}} {acc}')
        acc += self.counts[-1]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {acc}')
        lab = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{lab} {_num(self.sum)}")
        out.append(f"{name}_count{lab} {self.count}")
        return out


def _num(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else f"{float(v):.1f}"


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Thread-safe request, error and model-time metrics of one server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[tuple[int, str], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.model_time = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.images = 0
        self.in_flight = 0

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, method, status)] += 1
            h = self.latency.get(route)
            if h is None:
                h = self.latency[route] = Histogram(LATENCY_BUCKETS)
            h.observe(seconds)

    def observe_error(self, status: int, code: str) -> None:
        with self._lock:
            self.errors[(status, code)] += 1

    def observe_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self.model_time.observe(seconds)
            self.batch_size.observe(size)
            self.images += size

    def render(self) -> str:
        """Prometheus text exposition format."""
        with self._lock:
            out = [
                "# HELP cvpipe_requests_total HTTP requests by route, method and status.",
                "# TYPE cvpipe_requests_total counter",
            ]
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(
                    f'cvpipe_requests_total{{route="{_esc(route)}",method="{method}",status="{status}"}} {n}'
                )
            out += [
                "# HELP cvpipe_request_duration_seconds Request latency by route.",
                "# TYPE cvpipe_request_duration_seconds histogram",
            ]
            for route, h in sorted(self.latency.items()):
                out += h.lines("cvpipe_request_duration_seconds", f'route="{_esc(route)}"')
            out += [
                "# HELP cvpipe_errors_total Error responses by status and error code.",
                "# TYPE cvpipe_errors_total counter",
            ]
            for (status, code), n in sorted(self.errors.items()):
                out.append(f'cvpipe_errors_total{{status="{status}",code="{_esc(code)}"}} {n}')
            out += [
                "# HELP cvpipe_model_seconds Model run time per batch.",
                "# TYPE cvpipe_model_seconds histogram",
                *self.model_time.lines("cvpipe_model_seconds"),
                "# HELP cvpipe_batch_size Images per model run.",
                "# TYPE cvpipe_batch_size histogram",
                *self.batch_size.lines("cvpipe_batch_size"),
                "# HELP cvpipe_images_total Images run through the model.",
                "# TYPE cvpipe_images_total counter",
                f"cvpipe_images_total {self.images}",
                "# HELP cvpipe_requests_in_flight Requests being handled now.",
                "# TYPE cvpipe_requests_in_flight gauge",
                f"cvpipe_requests_in_flight {self.in_flight}",
            ]
        return "\n".join(out) + "\n"
