"""The ``clientStatus`` part of a connection's ``/status`` (``connectivity-manage-connections``): the state a
client adapter is in, why, and since when. Broker threads (paho's network loop) and the asyncio loop both
report into it, so updates are guarded by a lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from ditto_compat.connectivity.clients.base import ClientState, ClientStatus


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StatusTracker:
    def __init__(self, state: ClientState = "closed", detail: str = "") -> None:
        self._lock = threading.Lock()
        self._status = ClientStatus(state, detail, utc_now_iso())

    def set(self, state: ClientState, detail: str = "") -> None:
        with self._lock:
            if self._status.state == state and self._status.detail == detail:
                return
            # ``in_state_since`` tells how long the state has lasted: a new detail does not restart it.
            since = self._status.in_state_since if self._status.state == state else utc_now_iso()
            self._status = ClientStatus(state, detail, since)

    def get(self) -> ClientStatus:
        with self._lock:
            return self._status
