"""Per-connection metrics and logs (``connectivity-manage-connections``: ``/metrics``, ``/logs``).

The inbound and outbound paths record every message outcome here, so that a message is always either applied
or visible as refused: ``record`` counts it (Ditto's ``inbound``: consumed, mapped, dropped, enforced,
acknowledged; ``outbound``: dispatched, filtered, mapped, dropped, published, acknowledged) and ``log`` keeps
a bounded ring of entries for ``GET /connections/{id}/logs``.

Counts are kept per minute for the last 24 hours, so that the ``/metrics`` body can give Ditto's windows
``PT1M``, ``PT1H`` and ``PT24H`` (OpenAPI ``ConnectionMetrics``) with bounded memory: at most 1440 buckets per
(direction, kind, outcome, address). Logging is on for 24 hours after the monitor is created or
:meth:`ConnectionMonitor.enable_logs` is called, as Ditto enables it when a connection is created or opened
and by ``connectivity.commands:enableConnectionLogs``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

Direction = Literal["inbound", "outbound"]
LogCategory = Literal["source", "target", "response", "connection"]
LogLevel = Literal["success", "failure"]

# The metric types Ditto always reports (OpenAPI InboundMetrics / OutboundMetrics, plus acknowledged);
# any other kind recorded is reported as well.
INBOUND_KINDS: Final = ("consumed", "mapped", "dropped", "enforced", "acknowledged")
OUTBOUND_KINDS: Final = ("dispatched", "filtered", "mapped", "dropped", "published", "acknowledged")
WINDOWS: Final = (("PT1M", 60), ("PT1H", 3600), ("PT24H", 86400))
LOGS_ENABLED_FOR_S: Final = 86400.0
# Ditto's correlation id of a log entry without one (InfoProvider fallback).
NO_CORRELATION_ID: Final = "<not-provided>"

_Key = tuple[Direction, str, bool, str]


def iso(epoch_s: float) -> str:
    """A timestamp as Ditto writes them: ISO-8601 UTC with milliseconds and ``Z``."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LogEntry:
    timestamp: str
    category: LogCategory
    type: str
    level: LogLevel
    message: str
    address: str | None = None
    correlation_id: str | None = None
    entity_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "correlationId": self.correlation_id or NO_CORRELATION_ID,
            "timestamp": self.timestamp,
            "category": self.category,
            "type": self.type,
            "level": self.level,
            "message": self.message,
        }
        if self.address is not None:
            out["address"] = self.address
        if self.entity_id is not None:
            out["entityId"] = self.entity_id
        return out


@dataclass(slots=True)
class _Series:
    """Counts per minute (epoch minute -> count), oldest first, and the time of the last message."""

    minutes: deque[tuple[int, int]] = field(default_factory=deque)
    last_at: float | None = None

    def add(self, now: float, count: int) -> None:
        minute = int(now // 60)
        if self.minutes and self.minutes[-1][0] == minute:
            self.minutes[-1] = (minute, self.minutes[-1][1] + count)
        else:
            self.minutes.append((minute, count))
        self.last_at = now
        self._trim(minute)

    def _trim(self, minute: int) -> None:
        while self.minutes and self.minutes[0][0] <= minute - 1440:
            self.minutes.popleft()

    def window(self, now: float, seconds: int) -> int:
        """Messages in the last ``seconds``, at minute granularity (the current minute counts whole)."""
        first = int(now // 60) - seconds // 60 + 1
        return sum(c for m, c in self.minutes if m >= first)


BATCHES_KEPT = 10_000


@dataclass
class ConnectionMonitor:
    connection_id: str
    log_capacity: int = 1000
    # (direction, kind, success, address) -> count since the last reset
    counts: dict[tuple[Direction, str, bool, str], int] = field(default_factory=dict)
    logs: deque[LogEntry] = field(init=False)
    # seconds since the epoch; replaceable so that the windows can be tested without waiting
    clock: Callable[[], float] = field(default=time.time)
    logs_enabled_since: float | None = field(init=False, default=None)
    logs_enabled_until: float | None = field(init=False, default=None)
    _series: dict[_Key, _Series] = field(init=False, default_factory=dict)
    # inbound batches (a Kafka fetch, messages that arrived together): how long applying them took, in seconds
    _batches: deque[tuple[float, int]] = field(init=False, default_factory=lambda: deque(maxlen=BATCHES_KEPT))

    def __post_init__(self) -> None:
        self.logs = deque(maxlen=self.log_capacity)
        self.enable_logs()

    # -- recording (the signatures the inbound/outbound paths use) ------------------------------------------

    def record(self, direction: Direction, kind: str, success: bool, address: str, count: int = 1) -> None:
        key = (direction, kind, success, address)
        self.counts[key] = self.counts.get(key, 0) + count
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series()
        series.add(self.clock(), count)

    def batch(self, seconds: float, size: int) -> None:
        """One inbound batch applied (mapped, enforced, persisted) in ``seconds``."""
        self._batches.append((seconds, size))

    def log(
        self,
        category: LogCategory,
        type: str,
        level: LogLevel,
        message: str,
        *,
        timestamp: str,
        address: str | None = None,
        correlation_id: str | None = None,
        entity_id: str | None = None,
    ) -> None:
        if not self.logs_enabled:
            return
        self.logs.append(
            LogEntry(timestamp, category, type, level, message, address, correlation_id, entity_id)
        )

    # -- commands ---------------------------------------------------------------------------------------------

    @property
    def logs_enabled(self) -> bool:
        return self.logs_enabled_until is not None and self.clock() < self.logs_enabled_until

    def enable_logs(self) -> None:
        """``enableConnectionLogs``: log for the next 24 hours."""
        now = self.clock()
        self.logs_enabled_since = now
        self.logs_enabled_until = now + LOGS_ENABLED_FOR_S

    def reset_logs(self) -> None:
        """``resetConnectionLogs``: drop the entries; logging stays as enabled as it was."""
        self.logs.clear()

    def reset_metrics(self) -> None:
        """``resetConnectionMetrics``."""
        self.counts.clear()
        self._series.clear()

    # -- rendering ----------------------------------------------------------------------------------------------

    def _measurement(self, keys: list[_Key], now: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        last: float | None = None
        for name, seconds in WINDOWS:
            out[name] = sum(self._series[k].window(now, seconds) for k in keys)
        for k in keys:
            at = self._series[k].last_at
            if at is not None and (last is None or at > last):
                last = at
        if last is not None:
            out["lastMessageAt"] = iso(last)
        return out

    def _typed(self, direction: Direction, address: str | None, now: float) -> dict[str, Any]:
        """``{kind: {success: {...}, failure: {...}}}`` of one address (None: all addresses)."""
        base = INBOUND_KINDS if direction == "inbound" else OUTBOUND_KINDS
        recorded = [k for k in self._series if k[0] == direction and (address is None or k[3] == address)]
        kinds = list(base) + sorted({k[1] for k in recorded} - set(base))
        return {
            kind: {
                outcome: self._measurement(
                    [k for k in recorded if k[1] == kind and k[2] == (outcome == "success")], now
                )
                for outcome in ("success", "failure")
            }
            for kind in kinds
        }

    def metrics_json(self) -> dict[str, Any]:
        """Ditto's ``/metrics`` body (OpenAPI ``ConnectionMetrics``)."""
        now = self.clock()
        addresses: dict[Direction, list[str]] = {"inbound": [], "outbound": []}
        for direction, _kind, _success, address in self._series:
            if address not in addresses[direction]:
                addresses[direction].append(address)
        failures = any(
            not success and series.window(now, 86400) > 0
            for (_d, _k, success, _a), series in self._series.items()
        )
        return {
            "connectionId": self.connection_id,
            "containsFailures": failures,
            "connectionMetrics": {
                "inbound": self._typed("inbound", None, now),
                "outbound": self._typed("outbound", None, now),
            },
            "sourceMetrics": {
                "addressMetrics": {a: self._typed("inbound", a, now) for a in sorted(addresses["inbound"])}
            },
            "targetMetrics": {
                "addressMetrics": {a: self._typed("outbound", a, now) for a in sorted(addresses["outbound"])}
            },
            **({"inboundBatches": self._batches_json()} if self._batches else {}),
        }

    def _batches_json(self) -> dict[str, Any]:
        """An addition to Ditto's body (clients ignore unknown fields): the time inbound batches took to apply,
        over the last :data:`BATCHES_KEPT` batches, for benchmarks and capacity planning."""
        durations = sorted(seconds for seconds, _ in self._batches)

        def percentile(p: float) -> float:
            return round(durations[min(len(durations) - 1, int(p * len(durations)))] * 1000, 2)

        return {
            "count": len(durations),
            "messages": sum(size for _, size in self._batches),
            "largest": max(size for _, size in self._batches),
            "p50Ms": percentile(0.50),
            "p99Ms": percentile(0.99),
            "maxMs": round(durations[-1] * 1000, 2),
        }

    def logs_json(self) -> dict[str, Any]:
        """Ditto's ``/logs`` body (OpenAPI ``ConnectionLogs``); the enabled period only while enabled."""
        out: dict[str, Any] = {
            "connectionId": self.connection_id,
            "connectionLogs": [entry.to_json() for entry in self.logs],
        }
        if self.logs_enabled and self.logs_enabled_since is not None and self.logs_enabled_until is not None:
            out["enabledSince"] = iso(self.logs_enabled_since)
            out["enabledUntil"] = iso(self.logs_enabled_until)
        return out
