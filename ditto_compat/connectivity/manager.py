"""The connection manager (``connectivity-manage-connections``): the persisted connections, the runtimes of the
open ones, and what the connections API asks of them.

Persist first, then act: every change of a definition (create, modify, delete, and the ``connectionStatus``
that ``openConnection``/``closeConnection`` set) is committed to the ``connections`` collection with its
journal entry before the old runtime is closed and the new one opened, so that a restart reopens exactly the
connections whose acknowledged status is ``open``.

A connection that cannot be opened never blocks anything: it stays registered with ``liveStatus`` ``failed``
and a background task retries it with exponential backoff until it opens, is closed, modified or deleted.
A runtime that cannot be built at all (a type without client) fails the same way but is not retried.

Every journal entry carries the whole definition (``connection``), so that any revision kept in the journal
is a complete definition (``at-historical-revision``) and pruning simply drops the older entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from ditto_compat.connectivity.definition import check_connection_id, connection_from_json, connection_to_json
from ditto_compat.connectivity.errors import (
    ConnectionConflict,
    ConnectionFailed,
    ConnectionHistoryNotAccessible,
    ConnectionNotAccessible,
    ConnectivityCommandInvalid,
)
from ditto_compat.connectivity.model import Connection
from ditto_compat.connectivity.monitor import ConnectionMonitor, iso
from ditto_compat.connectivity.runtime import ConnectionRuntime
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.history import HistoricalPoint, parse_timestamp
from ditto_compat.errors import DittoError
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, Store, StoreUnavailable

__all__ = ["COMMANDS", "ConnectionManager", "RuntimeFactory"]

log = logging.getLogger(__name__)

RuntimeFactory = Callable[[Connection, ConnectionMonitor], ConnectionRuntime]
Clock = Callable[[], float]
# "elsewhere": another process sharing the database holds the connection's lease and runs it
LiveStatus = Literal["open", "closed", "failed", "connecting", "elsewhere"]

COLLECTION: Final = "connections"
COMMANDS: Final = (
    "connectivity.commands:openConnection",
    "connectivity.commands:closeConnection",
    "connectivity.commands:resetConnectionMetrics",
    "connectivity.commands:enableConnectionLogs",
    "connectivity.commands:resetConnectionLogs",
)
DRY_RUN_RESULT: Final = "successfully connected + initialized mapper"
# seconds a process holds a connection's lease without renewing it: how long another process sharing the
# database waits to take over a connection whose process died
LEASE_S: Final = 30.0
ELSEWHERE: Final = "Open in another ditto-compat process that shares this database."
_PAGE: Final = 200
# a lost compare-and-set (another process changed the connection) is retried this often
_ATTEMPTS: Final = 8


@dataclass
class _Entry:
    """A registered connection: its definition, monitor, runtime when open, and what the retries are doing."""

    connection: Connection
    monitor: ConnectionMonitor
    runtime: ConnectionRuntime | None = None
    live: LiveStatus = "closed"
    since: float = 0.0
    details: str | None = None
    retry: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # another process ran it meanwhile, and may have changed, closed or deleted it: read it again before opening
    stale: bool = False


class ConnectionManager:
    def __init__(
        self,
        store: Store,
        runtime_factory: RuntimeFactory,
        clock: Clock = time.time,
        *,
        open_timeout_s: float = 10.0,
        test_timeout_s: float = 15.0,
        backoff_s: tuple[float, float] = (1.0, 60.0),
        lease_s: float = LEASE_S,
    ) -> None:
        self._store = store
        self._factory = runtime_factory
        self._clock = clock
        self._open_timeout_s = open_timeout_s
        self._test_timeout_s = test_timeout_s
        self._backoff_s = backoff_s
        self._entries: dict[str, _Entry] = {}
        self._creating = asyncio.Lock()  # creates of one id, and their races with deletes, serialised
        self._instance = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._started = False
        # one process runs a connection: the holder of its lease in the store, renewed every third of it
        self._lease_s = lease_s
        self._renewing: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register every persisted connection and start opening the open ones in the background."""
        if self._started:
            return
        self._started = True
        self._renewing = asyncio.create_task(self._renew_leases(), name="connection-leases")
        await self._discover(stale=False)

    async def _discover(self, *, stale: bool = True) -> None:
        """Register the stored connections this process does not know: all of them at start-up, later those
        another process sharing the database created (``stale``: read again before opening); an open one is
        then run here only if its lease is free."""
        after: str | None = None
        while True:
            page = await self._store.list_page(COLLECTION, after=after, limit=_PAGE)
            for state in page:
                if state.entity_id not in self._entries and state.doc is not None:
                    async with self._creating:  # not while this process creates the same id
                        if state.entity_id not in self._entries:
                            self._register_stored(state, stale=stale)
            if len(page) < _PAGE:
                return
            after = page[-1].entity_id

    def _register_stored(self, state: EntityState, *, stale: bool = False) -> None:
        assert state.doc is not None
        try:
            connection = connection_from_json(state.doc, state.entity_id)
        except DittoError as error:
            # a definition an older version accepted: keep the server up, report it where the API shows it
            log.error("stored connection %s is invalid and stays closed: %s", state.entity_id, error.message)
            return
        entry = _Entry(
            connection, ConnectionMonitor(connection.id, clock=self._clock), since=self._clock(), stale=stale
        )
        self._entries[connection.id] = entry
        if connection.connection_status == "open":
            entry.live = "connecting"
            entry.retry = asyncio.create_task(self._keep_opening(entry, first_delay=0.0))

    async def stop(self) -> None:
        """Stop retrying and close every runtime."""
        renewing, self._renewing = self._renewing, None
        if renewing is not None:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        entries = list(self._entries.values())
        for entry in entries:
            await self._cancel_retry(entry)
        for entry in entries:
            await self._close_runtime(entry)
        self._entries.clear()
        self._started = False

    # -- queries ----------------------------------------------------------------------------------------------

    async def list_states(self) -> list[EntityState]:
        """Every live connection as stored, in id order."""
        states: list[EntityState] = []
        after: str | None = None
        while True:
            page = await self._store.list_page(COLLECTION, after=after, limit=_PAGE)
            states.extend(page)
            if len(page) < _PAGE:
                return states
            after = page[-1].entity_id

    async def retrieve(self, connection_id: str) -> EntityState:
        """The stored connection; 404 when it does not exist (or was deleted)."""
        check_connection_id(connection_id)
        state = await self._store.get(COLLECTION, connection_id)
        if state is None or state.doc is None:
            raise ConnectionNotAccessible.of(connection_id)
        return state

    async def retrieve_historical(self, connection_id: str, point: HistoricalPoint) -> EntityState:
        """The connection at a revision or point in time, from its journal."""
        current = await self._store.get(COLLECTION, check_connection_id(connection_id))
        if current is None:
            raise ConnectionNotAccessible.of(connection_id)
        if point.revision is not None:
            entries = await self._store.journal(
                COLLECTION, connection_id, from_revision=point.revision, to_revision=point.revision
            )
        else:
            entries = await self._store.journal(COLLECTION, connection_id)
            assert point.timestamp is not None
            entries = [e for e in entries if parse_timestamp(str(e["timestamp"])) <= point.timestamp][-1:]
        doc = entries[0].get("connection") if entries else None
        if not isinstance(doc, dict):
            at = "revision" if point.revision is not None else "timestamp"
            raise ConnectionHistoryNotAccessible(
                f"The Connection with ID '{connection_id}' at {at} '{point.text}' could not be found or "
                "requester had insufficient permissions to access it."
            )
        entry = entries[0]
        return EntityState(
            connection_id, int(entry["revision"]), doc, current.created, str(entry["timestamp"])
        )

    def _entry(self, connection_id: str) -> _Entry:
        entry = self._entries.get(check_connection_id(connection_id))
        if entry is None:
            raise ConnectionNotAccessible.of(connection_id)
        return entry

    def status(self, connection_id: str) -> dict[str, Any]:
        """Ditto's ``/status`` body (OpenAPI ``ConnectionStatus``)."""
        entry = self._entry(connection_id)
        body: dict[str, Any] = {
            "connectionId": connection_id,
            "connectionStatus": entry.connection.connection_status,
        }
        if entry.live == "open" and entry.runtime is not None:
            live = dict(entry.runtime.status())
            live.setdefault("liveStatus", "open")
            body.update(live)
        else:
            since = iso(entry.since)
            # "unknown" (Ditto's ConnectivityStatus) until the first attempt of a restart has an outcome
            shown = {"failed": "failed", "connecting": "unknown"}.get(entry.live, "closed")
            failed = shown != "closed" or entry.live == "elsewhere"
            body["liveStatus"] = shown
            if failed and entry.retry is not None:
                body["recoveryStatus"] = "ongoing"
            client: dict[str, Any] = {
                "type": "client",
                "client": self._instance,
                "status": body["liveStatus"],
                "inStateSince": since,
            }
            if entry.details:
                client["statusDetails"] = entry.details
            body["clientStatus"] = [client] if failed else []
            body["sourceStatus"] = []
            body["targetStatus"] = []
        for key in ("clientStatus", "sourceStatus", "targetStatus", "sshTunnelStatus"):
            body.setdefault(key, [])
        return body

    def metrics(self, connection_id: str) -> dict[str, Any]:
        return self._entry(connection_id).monitor.metrics_json()

    def monitor(self, connection_id: str) -> ConnectionMonitor | None:
        """The counters and logs of a registered connection (None: no such connection)."""
        entry = self._entries.get(connection_id)
        return entry.monitor if entry is not None else None

    def logs(self, connection_id: str) -> dict[str, Any]:
        return self._entry(connection_id).monitor.logs_json()

    def live_status(self, connection_id: str) -> LiveStatus:
        return self._entry(connection_id).live

    # -- changes ----------------------------------------------------------------------------------------------

    async def create(self, doc: Any, connection_id: str | None = None) -> EntityState:
        """``POST /connections`` (a generated id) or an explicit id; 409 if that connection exists."""
        connection_id = connection_id or str(uuid.uuid4())
        connection = connection_from_json(
            {**doc, "id": connection_id} if isinstance(doc, dict) else doc, connection_id
        )
        async with self._creating:
            stored = await self._store.get(COLLECTION, connection_id)
            if (stored is not None and stored.doc is not None) or connection_id in self._entries:
                raise ConnectionConflict(f"The Connection with ID '{connection_id}' was already created.")
            state = await self._persist(connection_id, connection, stored, "connectionCreated")
            entry = _Entry(
                connection, ConnectionMonitor(connection.id, clock=self._clock), since=self._clock()
            )
            self._entries[connection_id] = entry
        async with entry.lock:
            if connection.connection_status == "open":
                await self._open_or_retry(entry)
        return state

    async def modify(self, connection_id: str, doc: Any) -> EntityState:
        """``PUT /connections/{id}``: the connection must exist; its runtime is replaced."""
        connection = connection_from_json(doc, check_connection_id(connection_id))
        entry = self._entry(connection_id)
        async with entry.lock:
            state = await self._persist(connection_id, connection, None, "connectionModified")
            await self._cancel_retry(entry)
            await self._close_runtime(entry)
            entry.connection = connection
            entry.details = None
            entry.live, entry.since = "closed", self._clock()
            if connection.connection_status == "open":
                entry.monitor.enable_logs()
                await self._open_or_retry(entry)
        return state

    async def delete(self, connection_id: str) -> None:
        entry = self._entries.get(check_connection_id(connection_id))
        if entry is None:
            # stored but not registered (a definition this version refuses): it can still be deleted
            await self._persist(connection_id, None, None, "connectionDeleted", delete=True)
            return
        async with entry.lock:
            await self._persist(connection_id, None, None, "connectionDeleted", delete=True)
            self._entries.pop(connection_id, None)
            await self._cancel_retry(entry)
            await self._close_runtime(entry)

    async def command(self, connection_id: str, command: str) -> None:
        """``POST /connections/{id}/command`` with one of :data:`COMMANDS`."""
        command = command.strip()
        if command not in COMMANDS:
            raise ConnectivityCommandInvalid.of(command)
        entry = self._entry(connection_id)
        name = command.split(":", 1)[1]
        if name == "resetConnectionMetrics":
            entry.monitor.reset_metrics()
        elif name == "enableConnectionLogs":
            entry.monitor.enable_logs()
        elif name == "resetConnectionLogs":
            entry.monitor.reset_logs()
        elif name == "openConnection":
            await self._open_command(entry)
        else:
            await self._close_command(entry)

    async def _open_command(self, entry: _Entry) -> None:
        async with entry.lock:
            if entry.connection.connection_status != "open":
                opened = _with_status(entry.connection, "open")
                await self._persist(opened.id, opened, None, "connectionOpened")
                entry.connection = opened
            entry.monitor.enable_logs()
            if entry.live == "open":
                return
            await self._cancel_retry(entry)
            if not await self._open_or_retry(entry):
                raise ConnectionFailed.of(entry.connection.id, entry.details)

    async def _close_command(self, entry: _Entry) -> None:
        async with entry.lock:
            if entry.connection.connection_status != "closed":
                closed = _with_status(entry.connection, "closed")
                await self._persist(closed.id, closed, None, "connectionClosed")
                entry.connection = closed
            await self._cancel_retry(entry)
            await self._close_runtime(entry)
            entry.live, entry.since, entry.details = "closed", self._clock(), None

    async def test(self, doc: Any) -> str:
        """``POST /connections?dry-run=true``: validate, connect once, let go; nothing is persisted."""
        connection_id = f"{uuid.uuid4()}-dry-run"
        body = {**doc, "id": connection_id} if isinstance(doc, dict) else doc
        connection = connection_from_json(body, connection_id)
        runtime = self._factory(connection, ConnectionMonitor(connection_id, clock=self._clock))
        try:
            await asyncio.wait_for(runtime.test(), self._test_timeout_s)
        except DittoError:
            raise
        except TimeoutError:
            raise ConnectionFailed.of(
                connection_id, f"The connection test did not finish within {self._test_timeout_s:g}s."
            ) from None
        except Exception as exc:
            raise ConnectionFailed.of(connection_id, _describe(exc)) from None
        return DRY_RUN_RESULT

    # -- persistence --------------------------------------------------------------------------------------------

    async def _persist(
        self,
        connection_id: str,
        connection: Connection | None,
        known: EntityState | None,
        event: str,
        *,
        delete: bool = False,
    ) -> EntityState:
        """Commit the definition (or, ``delete``, its tombstone) with its journal entry; a concurrent change by
        another process is re-read and the write re-applied on top of it."""
        doc = None if connection is None else connection_to_json(connection)
        for _attempt in range(_ATTEMPTS):
            stored = known if known is not None else await self._store.get(COLLECTION, connection_id)
            known = None
            exists = stored is not None and stored.doc is not None
            if event == "connectionCreated" and exists:
                raise ConnectionConflict(f"The Connection with ID '{connection_id}' was already created.")
            if event != "connectionCreated" and not exists:
                raise ConnectionNotAccessible.of(connection_id)
            now = iso(self._clock())
            revision = (stored.revision if stored is not None else 0) + 1
            created = now if stored is None or stored.doc is None else stored.created
            state = EntityState(connection_id, revision, None if delete else doc, created, now)
            entry: dict[str, Any] = {
                "type": f"connectivity.events:{event}",
                "connectionId": connection_id,
                "revision": revision,
                "timestamp": now,
            }
            if doc is not None and not delete:
                entry["connection"] = doc
            expected = stored.revision if stored is not None else 0
            try:
                await self._store.commit([EntityWrite(COLLECTION, expected, state, entry)])
            except RevisionConflict:
                continue
            return state
        raise ConnectionConflict(
            f"The Connection with ID '{connection_id}' was changed concurrently; please retry.",
        )

    # -- runtimes ------------------------------------------------------------------------------------------------

    async def _open_or_retry(self, entry: _Entry) -> bool:
        """One attempt now; on failure, retries in the background (unless no runtime can be built). Open in
        another process counts as open; this one then watches for that process to go."""
        outcome = await self._attempt(entry)
        if outcome == "retry":
            entry.retry = asyncio.create_task(self._keep_opening(entry, first_delay=self._backoff_s[0]))
        elif outcome == "elsewhere":
            entry.retry = asyncio.create_task(self._keep_opening(entry, first_delay=self._lease_s / 2))
        return outcome in ("open", "elsewhere")

    async def _keep_opening(self, entry: _Entry, first_delay: float) -> None:
        delay = first_delay
        while True:
            if delay:
                await asyncio.sleep(delay)
            async with entry.lock:
                if self._entries.get(entry.connection.id) is not entry:
                    return  # deleted meanwhile
                outcome = await self._attempt(entry)
                if outcome in ("open", "failed"):
                    entry.retry = None
                    return
            if outcome == "elsewhere":  # ask again before the holder's lease could have run out unnoticed
                delay = self._lease_s / 2
            else:
                delay = min(max(delay * 2, self._backoff_s[0]), self._backoff_s[1])

    async def _attempt(self, entry: _Entry) -> Literal["open", "retry", "failed", "elsewhere"]:
        connection = entry.connection
        now = self._clock()
        try:
            held = await self._store.hold_lease(_lease(connection.id), self._instance, self._lease_s)
        except StoreUnavailable as error:
            self._failed(entry, f"The connection's lease cannot be taken: {error}")
            return "retry"
        if not held:
            if entry.live != "elsewhere":
                entry.since = now
            entry.live, entry.details, entry.stale = "elsewhere", ELSEWHERE, True
            return "elsewhere"
        if entry.stale:
            taken = await self._take_over(entry)
            if taken != "open":
                return taken
        connection = entry.connection
        try:
            runtime = self._factory(connection, entry.monitor)
        except DittoError as error:
            self._failed(
                entry, error.message if not error.description else f"{error.message} {error.description}"
            )
            return "failed"
        except Exception as exc:
            log.exception("no runtime for connection %s", connection.id)
            self._failed(entry, _describe(exc))
            return "failed"
        try:
            await asyncio.wait_for(runtime.open(), self._open_timeout_s)
        except Exception as exc:  # any failure to connect: report it and try again later
            with contextlib.suppress(Exception):
                await runtime.close()
            self._failed(entry, _describe(exc))
            return "retry"
        entry.runtime = runtime
        entry.live, entry.since, entry.details = "open", now, None
        entry.monitor.log("connection", "other", "success", "Connected.", timestamp=iso(now))
        return "open"

    async def _take_over(self, entry: _Entry) -> Literal["open", "failed", "retry"]:
        """The process that ran the connection is gone: run it as it is stored now (that process may have
        changed, closed or deleted it); "failed" when it is no longer to be opened."""
        connection_id = entry.connection.id
        try:
            state = await self._store.get(COLLECTION, connection_id)
        except StoreUnavailable as error:
            self._failed(entry, f"The stored connection cannot be read: {error}")
            return "retry"
        try:
            stored = (
                connection_from_json(state.doc, connection_id) if state and state.doc is not None else None
            )
        except DittoError as error:  # stored by a version that accepted what this one refuses
            self._failed(entry, error.message)
            stored = None
        if stored is None or stored.connection_status != "open":
            with contextlib.suppress(StoreUnavailable):
                await self._store.release_lease(_lease(connection_id), self._instance)
            if entry.live != "failed":
                entry.live, entry.since, entry.details = "closed", self._clock(), None
            if state is None or state.doc is None:
                if self._entries.get(connection_id) is entry:
                    del self._entries[connection_id]  # deleted meanwhile
            elif stored is not None:
                entry.connection = stored
            return "failed"
        entry.connection, entry.stale = stored, False
        return "open"

    def _failed(self, entry: _Entry, details: str) -> None:
        now = self._clock()
        if entry.live != "failed" or entry.details != details:
            entry.since = now
        entry.live, entry.details = "failed", details
        log.warning("connection %s failed to open: %s", entry.connection.id, details)
        entry.monitor.log(
            "connection", "other", "failure", f"Failed to connect: {details}", timestamp=iso(now)
        )

    async def _cancel_retry(self, entry: _Entry) -> None:
        task, entry.retry = entry.retry, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _close_runtime(self, entry: _Entry) -> None:
        runtime, entry.runtime = entry.runtime, None
        if runtime is None:
            return
        try:
            await runtime.close()
        except Exception:  # closing must go on for the other connections
            log.exception("closing connection %s failed", entry.connection.id)
        entry.live, entry.since = "closed", self._clock()
        with contextlib.suppress(StoreUnavailable):  # it runs out by itself otherwise
            await self._store.release_lease(_lease(entry.connection.id), self._instance)

    async def _renew_leases(self) -> None:
        """Renew the lease of every connection this process runs; one whose lease went to another process (this
        one could not renew in time) is closed here and watched like any connection open elsewhere. Also learn
        of the connections other processes created since this one started."""
        while True:
            await asyncio.sleep(self._lease_s / 3)
            try:
                await self._renew_round()
            except Exception:  # a bug must not stop the renewals: other processes would take every connection
                log.exception("renewing the connection leases failed")

    async def _renew_round(self) -> None:
        """One round of :meth:`_renew_leases`."""
        with contextlib.suppress(StoreUnavailable):
            await self._discover()
        for entry in list(self._entries.values()):
            if entry.runtime is None:
                continue
            try:
                held = await self._store.hold_lease(
                    _lease(entry.connection.id), self._instance, self._lease_s
                )
            except StoreUnavailable as error:
                log.warning("lease of connection %s not renewed: %s", entry.connection.id, error)
                continue
            if held:
                continue
            log.warning("connection %s is run by another process now: closing it here", entry.connection.id)
            async with entry.lock:
                runtime, entry.runtime = entry.runtime, None
                if runtime is not None:
                    with contextlib.suppress(Exception):
                        await runtime.close()
                entry.live, entry.since, entry.details = "elsewhere", self._clock(), ELSEWHERE
                entry.stale = True
                if entry.retry is None:
                    entry.retry = asyncio.create_task(
                        self._keep_opening(entry, first_delay=self._lease_s / 2)
                    )


def _lease(connection_id: str) -> str:
    return f"connection:{connection_id}"


def _with_status(connection: Connection, status: str) -> Connection:
    return replace(connection, connection_status=status)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
