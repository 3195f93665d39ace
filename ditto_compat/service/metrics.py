"""Server metrics without HTTP: request counters and latency histograms, cached entity counts, process figures,
and the Prometheus text exposition format (version 0.0.4) they are rendered in.

Everything here runs on the event loop thread, so counters are plain ints and dicts: no locks. Recording a
request costs two dict look-ups and a bisect; all the work of exposition (cumulating buckets, formatting) is
done when ``/metrics`` is scraped, not when requests are served.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ditto_compat.persistence.ports import Collection, Store

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds of the request duration buckets, in seconds: 1 ms to 10 s, roughly three per decade.
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How long a counted number of Things or Policies is reused: counting scans an index, a scrape must not.
COUNT_TTL_S: Final = 5.0

MetricKind = Literal["counter", "gauge", "histogram"]
Labels = Mapping[str, str]


# ------------------------------------------------------------------------------------------- the text format
def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a fraction, infinities and NaN as the format spells them."""
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 2**53):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _labels_text(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


class Exposition:
    """Builds one exposition: each metric family once, with its ``# HELP`` and ``# TYPE`` lines first."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._names: set[str] = set()

    def family(
        self, name: str, kind: MetricKind, help_text: str, samples: Iterable[tuple[Labels, float]]
    ) -> None:
        """A counter or gauge family (counters' names end in ``_total``)."""
        self._header(name, kind, help_text)
        for labels, value in samples:
            self._lines.append(f"{name}{_labels_text(labels)} {format_value(value)}")

    def histogram(self, name: str, help_text: str, series: Iterable[tuple[Labels, Histogram]]) -> None:
        """A histogram family: cumulative ``_bucket`` lines (``le`` up to ``+Inf``), then ``_sum`` and
        ``_count``, per label set."""
        self._header(name, "histogram", help_text)
        for labels, histogram in series:
            cumulative = 0
            for bound, count in zip((*histogram.bounds, math.inf), histogram.counts, strict=True):
                cumulative += count
                le = _labels_text({**labels, "le": format_value(bound) if math.isinf(bound) else repr(bound)})
                self._lines.append(f"{name}_bucket{le} {cumulative}")
            self._lines.append(f"{name}_sum{_labels_text(labels)} {format_value(histogram.sum)}")
            self._lines.append(f"{name}_count{_labels_text(labels)} {cumulative}")

    def _header(self, name: str, kind: MetricKind, help_text: str) -> None:
        if name in self._names:
            raise ValueError(f"metric family {name} rendered twice")
        self._names.add(name)
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def render(self) -> bytes:
        return ("\n".join(self._lines) + "\n").encode()


# ------------------------------------------------------------------------------------------------ requests
@dataclass(slots=True)
class Histogram:
    """Observations per bucket (not cumulative: one increment per observation; the last bucket is +Inf)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket ("less than or equal")
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class RequestMetrics:
    """HTTP requests by method, route template and status, and their durations by method and route.

    The labels must come from bounded sets (a route *template*, never a raw path) or every distinct Thing id
    would become a time series of its own.
    """

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.buckets = buckets
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get((method, route))
        if histogram is None:
            histogram = self.durations[(method, route)] = Histogram(self.buckets)
        histogram.observe(seconds)

    def render(self, out: Exposition) -> None:
        out.family(
            "ditto_http_requests_total",
            "counter",
            "HTTP requests answered, by method, route template and status code.",
            (
                ({"method": m, "route": r, "status": str(s)}, n)
                for (m, r, s), n in sorted(self.requests.items())
            ),
        )
        out.histogram(
            "ditto_http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its response headers, by method and route.",
            (({"method": m, "route": r}, h) for (m, r), h in sorted(self.durations.items())),
        )


# -------------------------------------------------------------------------------------------- entity counts
class LiveCounts:
    """The number of live entities of a collection, counted by the store at most every ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = COUNT_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._counted: dict[Collection, tuple[float, int]] = {}

    async def get(self, store: Store, collection: Collection) -> int:
        """The cached count while fresh, else a new one; raises what the store raises (``StoreUnavailable``)."""
        now = self._clock()
        cached = self._counted.get(collection)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        count = await store.count_live(collection)
        self._counted[collection] = (now, count)
        return count


# ----------------------------------------------------------------------------------------------- process
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_samples(started_at: float) -> dict[str, tuple[MetricKind, str, float]]:
    """The standard ``process_*`` metrics of a Prometheus client, read from ``/proc/self`` where it exists
    (Linux); a figure that cannot be read is left out rather than reported as 0."""
    times = os.times()
    out: dict[str, tuple[MetricKind, str, float]] = {
        "process_cpu_seconds_total": (
            "counter",
            "User and system CPU time spent, in seconds.",
            times[0] + times[1],
        ),
        "process_start_time_seconds": (
            "gauge",
            "Start time of the server since the Unix epoch, in seconds.",
            started_at,
        ),
    }
    with contextlib.suppress(OSError, IndexError, ValueError):
        with open("/proc/self/statm", "rb") as statm:
            pages = statm.read().split()
        out["process_virtual_memory_bytes"] = (
            "gauge",
            "Virtual memory size, in bytes.",
            int(pages[0]) * _PAGE_SIZE,
        )
        out["process_resident_memory_bytes"] = (
            "gauge",
            "Resident memory size, in bytes.",
            int(pages[1]) * _PAGE_SIZE,
        )
    with contextlib.suppress(OSError):
        out["process_open_fds"] = ("gauge", "Open file descriptors.", len(os.listdir("/proc/self/fd")))
    return out


def render_process(out: Exposition, started_at: float) -> None:
    for name, (kind, help_text, value) in process_samples(started_at).items():
        out.family(name, kind, help_text, [({}, value)])
