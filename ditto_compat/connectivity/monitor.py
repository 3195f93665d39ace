"""Per-connection metrics and logs (``connectivity-manage-connections``: ``/metrics``, ``/logs``).

The inbound and outbound paths record every message outcome here, so that a message is always either applied
or visible as refused: ``record`` counts it (Ditto's ``inbound``: consumed, mapped, dropped, enforced,
acknowledged; ``outbound``: dispatched, filtered, mapped, dropped, published, acknowledged) and ``log`` keeps
a bounded ring of entries for ``GET /connections/{id}/logs``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["inbound", "outbound"]
LogCategory = Literal["source", "target", "response", "connection"]
LogLevel = Literal["success", "failure"]


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


@dataclass
class ConnectionMonitor:
    connection_id: str
    log_capacity: int = 1000
    # (direction, kind, success, address) -> count
    counts: dict[tuple[Direction, str, bool, str], int] = field(default_factory=dict)
    logs: deque[LogEntry] = field(init=False)

    def __post_init__(self) -> None:
        self.logs = deque(maxlen=self.log_capacity)

    def record(self, direction: Direction, kind: str, success: bool, address: str, count: int = 1) -> None:
        key = (direction, kind, success, address)
        self.counts[key] = self.counts.get(key, 0) + count

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
        self.logs.append(
            LogEntry(timestamp, category, type, level, message, address, correlation_id, entity_id)
        )
