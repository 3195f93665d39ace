"""A test-only :class:`~ditto_compat.connectivity.runtime.ConnectionRuntime` over plain TCP, for the API tests
of the connection lifecycle (the broker clients have their own tests against real brokers).

It is a real client of a real socket: ``open`` connects to the host and port of the connection's ``uri`` (a
:class:`LineServer` on 127.0.0.1 that the test starts and stops), every line the server sends is counted as
``consumed`` and logged on the connection's monitor, ``close`` disconnects. Every call is recorded in
:attr:`TcpRuntimes.calls`, so tests can assert what the manager did.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor, iso


class TcpRuntime:
    def __init__(
        self, connection: Connection, monitor: ConnectionMonitor, calls: list[tuple[str, str]]
    ) -> None:
        self.connection = connection
        self.monitor = monitor
        self._calls = calls
        parts = urlsplit(connection.uri)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._since = ""

    async def open(self) -> None:
        self._calls.append(("open", self.connection.id))
        reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._since = iso(self.monitor.clock())
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        address = f"{self._host}:{self._port}"
        while line := await reader.readline():
            self.monitor.record("inbound", "consumed", True, address)
            self.monitor.log(
                "source",
                "consumed",
                "success",
                f"received {line.decode().strip()}",
                timestamp=self._since,
                address=address,
            )

    async def close(self) -> None:
        self._calls.append(("close", self.connection.id))
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()

    async def test(self) -> None:
        self._calls.append(("test", self.connection.id))
        _reader, writer = await asyncio.open_connection(self._host, self._port)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    def status(self) -> dict[str, Any]:
        client = {"type": "client", "client": "tcp", "status": "open", "inStateSince": self._since}
        return {"liveStatus": "open", "connectedSince": self._since, "clientStatus": [client]}


class TcpRuntimes:
    """The runtime factory handed to ``create_app``: builds a :class:`TcpRuntime` and records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, connection: Connection, monitor: ConnectionMonitor) -> TcpRuntime:
        return TcpRuntime(connection, monitor, self.calls)


class LineServer:
    """A TCP server on 127.0.0.1 that sends ``lines`` to every client; startable again on the same port."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.lines: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._clients: list[asyncio.StreamWriter] = []

    async def start(self) -> LineServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.append(writer)
        for line in self.lines:
            writer.write(line + b"\n")
        await writer.drain()

    async def stop(self) -> None:
        for writer in self._clients:
            writer.close()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
