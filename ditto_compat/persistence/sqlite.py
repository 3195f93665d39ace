"""SQLite implementation of the storage port (:class:`ditto_compat.persistence.ports.Store`), the embedded
default of DESIGN.md "Storage": one file, stdlib ``sqlite3`` in WAL mode, no other process.

Layout: tables ``things`` and ``policies`` (current state, ``doc`` is the entity JSON or NULL for a tombstone,
``namespace`` is the id's text before the first ``:``) and ``journal`` (one JSON event per
``(collection, entity_id, revision)``).

Writes use group commit: one writer thread owns the only write connection; :meth:`SqliteStore.commit` queues
its writes and the writer applies every queued commit of a round in ONE transaction, each inside its own
SAVEPOINT so that a compare-and-set miss rolls back only that commit. A caller's future is resolved only once
the round's COMMIT has returned, so "acknowledged" always means "in the database file". With the default
``synchronous=NORMAL`` a committed transaction survives a crash of the process, and may be lost only on power
loss or an OS crash before the next WAL checkpoint; ``synchronous="FULL"`` also covers that at a cost in
throughput.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ditto_compat.domain.entity import EntityState
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import (
    COLLECTIONS,
    Collection,
    EntityWrite,
    RevisionConflict,
    StoreUnavailable,
)

__all__ = ["SqliteStore"]

_SYNCHRONOUS_MODES: Final = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
# A round of group commit is capped so that the first caller of a long queue is not kept waiting behind an
# unbounded transaction, and so that a failed COMMIT fails a bounded number of callers.
_MAX_BATCH: Final = 512
# Parameters per "IN (...)" list: well below SQLITE_MAX_VARIABLE_NUMBER of old builds (999).
_IN_CHUNK: Final = 500
_WRITER_BUSY_TIMEOUT_MS: Final = 5000
# Reads run on the event loop: in WAL mode they only meet a lock in rare cases (another process recovering the
# WAL), and then they must give up quickly rather than stall the loop.
_READER_BUSY_TIMEOUT_MS: Final = 250

_SCHEMA: Final = [
    *(
        stmt
        for table in COLLECTIONS
        for stmt in (
            f"""CREATE TABLE IF NOT EXISTS {table} (
                id TEXT PRIMARY KEY,
                namespace TEXT NOT NULL,
                revision INTEGER NOT NULL,
                deleted INTEGER NOT NULL,
                created TEXT NOT NULL,
                modified TEXT NOT NULL,
                doc TEXT
            )""",
            # Partial index: list_page only ever asks for live entities, and filters on namespace while
            # ordering by id. Queries must say "deleted = 0" literally for the planner to use it.
            f"CREATE INDEX IF NOT EXISTS {table}_live_ns ON {table} (namespace, id) WHERE deleted = 0",
        )
    ),
    # WITHOUT ROWID clusters the journal by its key, so a range read of one entity is one contiguous scan.
    """CREATE TABLE IF NOT EXISTS journal (
        collection TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (collection, entity_id, revision)
    ) WITHOUT ROWID""",
]


@dataclass(frozen=True, slots=True)
class _Sql:
    """Statements of one entity table; built once so that sqlite3's statement cache hits every time."""

    insert: str
    update: str
    get: str
    get_many: str
    list_all: str
    list_ns: str

    @classmethod
    def for_table(cls, table: str) -> _Sql:
        cols = "id, revision, doc, created, modified"
        return cls(
            insert=f"INSERT INTO {table} (id, namespace, revision, deleted, created, modified, doc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            update=f"UPDATE {table} SET revision = ?, deleted = ?, created = ?, modified = ?, doc = ? "
            "WHERE id = ? AND revision = ?",
            get=f"SELECT {cols} FROM {table} WHERE id = ?",
            get_many=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND id IN ({{}})",
            list_all=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND id > ? ORDER BY id LIMIT ?",
            list_ns=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND namespace IN ({{}}) AND id > ? "
            "ORDER BY id LIMIT ?",
        )


_SQL: Final[dict[str, _Sql]] = {c: _Sql.for_table(c) for c in COLLECTIONS}
_INSERT_EVENT: Final = "INSERT INTO journal (collection, entity_id, revision, event) VALUES (?, ?, ?, ?)"
_JOURNAL_RANGE: Final = (
    "SELECT event FROM journal WHERE collection = ? AND entity_id = ? AND revision BETWEEN ? AND ? "
    "ORDER BY revision"
)
# SQLite integers are signed 64-bit; "no upper bound" is expressed as the largest one.
_MAX_REVISION: Final = 2**63 - 1

_Row = tuple[str, int, str | None, str, str]


@dataclass(frozen=True, slots=True)
class _PreparedWrite:
    """An :class:`EntityWrite` with its JSON already serialised (by the caller, off the writer thread)."""

    sql: _Sql
    collection: str
    entity_id: str
    namespace: str
    expected_revision: int
    revision: int
    deleted: int
    created: str
    modified: str
    doc: str | None
    event: str


@dataclass(slots=True)
class _Job:
    """One queued :meth:`SqliteStore.commit` call."""

    writes: list[_PreparedWrite]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class _Stop:
    """Queue sentinel: everything queued before it is applied, then the writer thread ends."""


_STOP: Final = _Stop()


def _sql(collection: str) -> _Sql:
    try:
        return _SQL[collection]
    except KeyError:
        raise ValueError(f"unknown collection {collection!r}") from None


def _prepare(write: EntityWrite) -> _PreparedWrite:
    sql = _sql(write.collection)
    state = write.state
    if write.expected_revision < 0 or state.revision <= write.expected_revision:
        raise ValueError(
            f"revision of {state.entity_id!r} must grow: expected {write.expected_revision}, new {state.revision}"
        )
    return _PreparedWrite(
        sql=sql,
        collection=write.collection,
        entity_id=state.entity_id,
        namespace=namespace_of(state.entity_id),
        expected_revision=write.expected_revision,
        revision=state.revision,
        deleted=0 if state.doc is not None else 1,
        created=state.created,
        modified=state.modified,
        # TEXT, not the BLOB orjson returns: SQLite's JSON functions (used by search) read BLOBs as JSONB.
        doc=None if state.doc is None else orjson.dumps(state.doc).decode(),
        event=orjson.dumps(write.event).decode(),
    )


def _to_state(row: _Row) -> EntityState:
    entity_id, revision, doc, created, modified = row
    return EntityState(
        entity_id=entity_id,
        revision=revision,
        doc=None if doc is None else orjson.loads(doc),
        created=created,
        modified=modified,
    )


def _resolve(outcomes: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """Runs on the caller's event loop: hands each caller its outcome."""
    for future, error in outcomes:
        if future.done():  # the caller was cancelled; its commit was applied (or not) all the same
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class SqliteStore:
    """The storage port on a single SQLite file (WAL), with group commit on a dedicated writer thread."""

    name: str = "sqlite"

    def __init__(self, path: str, *, synchronous: str = "NORMAL") -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS_MODES)}, not {synchronous!r}")
        self.path = path
        self.synchronous = mode
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._stopped: concurrent.futures.Future[None] | None = None
        # Reads run inline on the event loop thread, on this connection only (sqlite3's check_same_thread
        # guards it). A point read by primary key costs under 10 us (~130k/s measured), far less than a
        # hand-off to a thread pool and back, which would also add GIL churn with the writer; in WAL mode
        # readers never wait for the writer. Range reads (list_page, journal) are bounded by their callers'
        # limits and revision ranges.
        self._reader: sqlite3.Connection | None = None
        self._closing = False
        # Written by the writer thread only; read for metrics and benchmarks.
        self._rounds = 0
        self._commits = 0
        self._largest_round = 0

    @property
    def group_commit_stats(self) -> dict[str, int]:
        """How well group commit batches: transactions ("rounds"), commit() calls applied, largest round."""
        return {"rounds": self._rounds, "commits": self._commits, "largest_round": self._largest_round}

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the directory, the file and the schema; start the writer thread; open the read connection."""
        if self._closing:
            raise StoreUnavailable("SQLite store was closed; create a new one")
        if self._writer is not None:
            return
        # Relative paths resolve against the working directory: fine for the embedded default "./data".
        directory = os.path.dirname(self.path) or "."
        try:
            await asyncio.to_thread(os.makedirs, directory, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create data directory {directory}: {exc}") from exc
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stopped = stopped
        writer = threading.Thread(
            target=self._run_writer, args=(ready, stopped), name="sqlite-writer", daemon=True
        )
        writer.start()
        try:
            await asyncio.wrap_future(ready)
        except Exception as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._writer = writer
        try:
            reader = sqlite3.connect(self.path, isolation_level=None)
            reader.execute(f"PRAGMA busy_timeout = {_READER_BUSY_TIMEOUT_MS}")
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            await self.close()
            raise StoreUnavailable(f"cannot open {self.path} for reading: {exc}") from exc
        self._reader = reader

    async def close(self) -> None:
        """Apply every commit queued so far, stop the writer thread, close both connections."""
        if self._writer is None or self._closing:
            return
        self._closing = True
        self._queue.put(_STOP)
        if self._stopped is not None:
            await asyncio.wrap_future(self._stopped)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def health(self) -> dict[str, Any]:
        """``UP`` when the writer thread runs and the file answers a query; never raises."""
        down = {"status": "DOWN", "backend": self.name, "path": self.path}
        try:
            if self._reader is None or self._closing:
                return {**down, "reason": "store is not open"}
            if self._writer is None or not self._writer.is_alive():
                return {**down, "reason": "writer thread is not running"}
            self._reader.execute("SELECT 1 FROM things LIMIT 1").fetchall()
            return {"status": "UP", "backend": self.name, "path": self.path}
        except Exception as exc:  # health must describe any failure, not raise it
            return {**down, "reason": f"{type(exc).__name__}: {exc}"}

    # -- reads -------------------------------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        if self._reader is None or self._closing:
            raise StoreUnavailable("SQLite store is not open")
        return self._reader

    async def get(self, collection: Collection, entity_id: str) -> EntityState | None:
        """The stored state, tombstones included; ``None`` when the id was never stored."""
        try:
            row = self._read().execute(_sql(collection).get, (entity_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return None if row is None else _to_state(row)

    async def get_many(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, EntityState]:
        """States of the given ids that exist and are not deleted, in the order asked for."""
        ids = list(dict.fromkeys(entity_ids))
        found: dict[str, EntityState] = {}
        template = _sql(collection).get_many
        try:
            conn = self._read()
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                sql = template.format(", ".join("?" * len(chunk)))
                for row in conn.execute(sql, chunk):
                    found[row[0]] = _to_state(row)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return {i: found[i] for i in ids if i in found}

    async def list_page(
        self,
        collection: Collection,
        *,
        after: str | None,
        limit: int,
        namespaces: Sequence[str] | None = None,
    ) -> list[EntityState]:
        """Live entities ordered by id, strictly after ``after``, at most ``limit``, optionally only in the
        given namespaces."""
        if limit <= 0 or (namespaces is not None and not namespaces):
            return []
        sql = _sql(collection)
        # Ids are never empty, so "id > ''" is "no lower bound" and keeps one statement shape per query.
        lower = "" if after is None else after
        try:
            conn = self._read()
            if namespaces is None:
                rows = conn.execute(sql.list_all, (lower, limit)).fetchall()
            else:
                ns = list(dict.fromkeys(namespaces))
                rows = []
                # More namespaces than fit in one statement: merge the ordered pages of every chunk.
                for start in range(0, len(ns), _IN_CHUNK):
                    chunk = ns[start : start + _IN_CHUNK]
                    stmt = sql.list_ns.format(", ".join("?" * len(chunk)))
                    rows.extend(conn.execute(stmt, (*chunk, lower, limit)).fetchall())
                if len(ns) > _IN_CHUNK:
                    rows = sorted(rows, key=lambda r: r[0])[:limit]
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return [_to_state(row) for row in rows]

    async def journal(
        self,
        collection: Collection,
        entity_id: str,
        *,
        from_revision: int = 1,
        to_revision: int | None = None,
    ) -> list[dict[str, Any]]:
        """Journal entries of one entity in revision order, both bounds inclusive."""
        upper = _MAX_REVISION if to_revision is None else to_revision
        try:
            rows = (
                self._read().execute(_JOURNAL_RANGE, (collection, entity_id, from_revision, upper)).fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return [orjson.loads(row[0]) for row in rows]

    # -- writes ------------------------------------------------------------------------------------------

    async def commit(self, writes: Sequence[EntityWrite]) -> None:
        """Apply all writes atomically and durably (group commit); :class:`RevisionConflict` when any
        ``expected_revision`` does not match, in which case nothing of this call was written."""
        if not writes:
            return
        prepared = [_prepare(w) for w in writes]
        if self._writer is None or self._closing:
            raise StoreUnavailable("SQLite store is not open")
        if not self._writer.is_alive():
            raise StoreUnavailable("SQLite writer thread is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job(prepared, future, loop))
        # Cancelling the caller does not withdraw the queued commit: it may still be applied.
        await future

    # -- writer thread -----------------------------------------------------------------------------------

    def _connect_writer(self) -> sqlite3.Connection:
        # isolation_level=None: the writer issues BEGIN/SAVEPOINT/COMMIT itself; sqlite3 must not add its own.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch {self.path} to WAL (journal_mode={mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute(f"PRAGMA busy_timeout = {_WRITER_BUSY_TIMEOUT_MS}")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def _run_writer(
        self, ready: concurrent.futures.Future[None], stopped: concurrent.futures.Future[None]
    ) -> None:
        try:
            conn = self._connect_writer()
        except BaseException as exc:
            ready.set_exception(exc)
            stopped.set_result(None)
            return
        ready.set_result(None)
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < _MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                jobs: list[_Job] = []
                for item in batch:
                    if isinstance(item, _Stop):
                        stop = True
                    else:
                        jobs.append(item)
                if jobs:
                    self._apply_batch(conn, jobs)
        finally:
            conn.close()
            # Nothing should be left (commit() refuses once closing), but no caller may wait forever.
            leftovers: list[_Job] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Job):
                    leftovers.append(item)
            self._deliver(leftovers, [StoreUnavailable("SQLite store is closed") for _ in leftovers])
            stopped.set_result(None)

    def _apply_batch(self, conn: sqlite3.Connection, jobs: list[_Job]) -> None:
        outcomes: list[BaseException | None]
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [self._apply_job(conn, job) for job in jobs]
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # Nothing of this round is durable: every caller of it fails, including those whose own
            # savepoint had succeeded.
            if conn.in_transaction:
                # The failed transaction may already be gone; the original error is what matters.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [StoreUnavailable(f"SQLite commit failed: {exc}") for _ in jobs]
        except BaseException as exc:  # a bug must not leave callers waiting forever, nor kill the writer
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [StoreUnavailable(f"SQLite writer failed: {exc!r}") for _ in jobs]
        # Counted before the callers learn their outcome, so that a caller sees its own round in the stats.
        self._rounds += 1
        self._commits += len(jobs)
        self._largest_round = max(self._largest_round, len(jobs))
        self._deliver(jobs, outcomes)

    @staticmethod
    def _apply_job(conn: sqlite3.Connection, job: _Job) -> BaseException | None:
        """One commit() inside its own savepoint: a conflict undoes only this caller's writes.

        A commit of a single write needs no savepoint: a missed compare-and-set changes no row, and once it
        hit, the journal row for the new revision cannot exist yet (state and journal only ever change
        together). Skipping it halves the statements of the common case, each of which holds the GIL."""
        if len(job.writes) == 1:
            return SqliteStore._apply_single(conn, job.writes[0])
        conn.execute("SAVEPOINT job")
        try:
            for w in job.writes:
                if w.expected_revision == 0:
                    cur = conn.execute(
                        w.sql.insert,
                        (w.entity_id, w.namespace, w.revision, w.deleted, w.created, w.modified, w.doc),
                    )
                else:
                    cur = conn.execute(
                        w.sql.update,
                        (
                            w.revision,
                            w.deleted,
                            w.created,
                            w.modified,
                            w.doc,
                            w.entity_id,
                            w.expected_revision,
                        ),
                    )
                if cur.rowcount != 1:
                    raise RevisionConflict(
                        f"{w.collection} {w.entity_id!r} is not at revision {w.expected_revision}"
                    )
                conn.execute(_INSERT_EVENT, (w.collection, w.entity_id, w.revision, w.event))
        except RevisionConflict as exc:
            outcome: BaseException = exc
        except sqlite3.IntegrityError as exc:
            # The journal already holds this revision: someone else got there first.
            outcome = RevisionConflict(f"revision already taken: {exc}")
        except sqlite3.Error as exc:
            outcome = StoreUnavailable(f"SQLite write failed: {exc}")
        else:
            conn.execute("RELEASE job")
            return None
        # If the error aborted the whole transaction, these raise and _apply_batch fails the round.
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return outcome

    @staticmethod
    def _apply_single(conn: sqlite3.Connection, w: _PreparedWrite) -> BaseException | None:
        try:
            if w.expected_revision == 0:
                cur = conn.execute(
                    w.sql.insert,
                    (w.entity_id, w.namespace, w.revision, w.deleted, w.created, w.modified, w.doc),
                )
            else:
                cur = conn.execute(
                    w.sql.update,
                    (w.revision, w.deleted, w.created, w.modified, w.doc, w.entity_id, w.expected_revision),
                )
        except sqlite3.IntegrityError as exc:
            return RevisionConflict(f"{w.collection} {w.entity_id!r} exists already: {exc}")
        except sqlite3.Error as exc:
            return StoreUnavailable(f"SQLite write failed: {exc}")
        if cur.rowcount != 1:
            return RevisionConflict(
                f"{w.collection} {w.entity_id!r} is not at revision {w.expected_revision}"
            )
        # An error here cannot be undone statement by statement: it fails the whole round (_apply_batch).
        conn.execute(_INSERT_EVENT, (w.collection, w.entity_id, w.revision, w.event))
        return None

    @staticmethod
    def _deliver(jobs: list[_Job], outcomes: Sequence[BaseException | None]) -> None:
        """Hand the outcomes to the callers' loops: one wake-up per loop per round, not one per caller."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
        for loop, items in by_loop.items():
            # RuntimeError: that loop is closed, nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, items)
