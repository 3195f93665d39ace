"""One open connection: its client adapter, its sources wired into the dispatcher (``inbound``) and the hub's
events wired out to its targets (``outbound``). The manager creates one per open connection."""

from __future__ import annotations

from typing import Any, Protocol

from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor


class ConnectionRuntime(Protocol):
    connection: Connection
    monitor: ConnectionMonitor

    async def open(self) -> None:
        """Connect the client and start sources and targets; raises ``ConnectionFailed`` when the broker cannot
        be reached on the first attempt (the manager then reports the connection as failed and retries)."""
        ...

    async def close(self) -> None: ...

    async def test(self) -> None:
        """``?dry-run=true``: check that the definition can be mapped and the broker reached, then let go."""
        ...

    def status(self) -> dict[str, Any]:
        """Ditto's ``/status`` body minus ``connectionId``/``connectionStatus``: ``liveStatus``,
        ``connectedSince``, ``clientStatus``, ``sourceStatus``, ``targetStatus``."""
        ...
