"""SQLite implementation of the storage port (:class:`ditto_compat.persistence.ports.Store`), the embedded
default of DESIGN.md "Storage": one file, stdlib ``sqlite3`` in WAL mode, no other process.

Layout: tables ``things``, ``policies`` and ``connections`` (current state, ``doc`` is the entity JSON or NULL
for a tombstone, ``namespace`` is the id's text before the first ``:``) and ``journal`` (one JSON event per
``(collection, entity_id, revision)``, appended in the order written). ``things`` also has ``n``, a stable
integer key (``INTEGER PRIMARY KEY`` survives VACUUM, a plain rowid may not) that the search index refers to,
and ``policy_id``.

Search (:mod:`.query_sqlite` builds the SQL): ``search_values`` holds the flattened values of every live Thing
and ``search_paths`` the ids of their paths; ``policy_readers (subject, policy_id)`` and ``search_policies
(policy_id, uniform)`` are the index of each policy (:class:`~ditto_compat.persistence.ports.PolicyReaders`).
All of them are written in the same transaction as the entity they describe, so a search sees exactly what
was acknowledged. Searches run on a small thread pool with their own read connections: a filter that no index
serves scans, and must not hold up the event loop meanwhile.

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
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.history import HistoryCollection, compact
from ditto_compat.model.ids import namespace_of
from ditto_compat.model.pointer import Pointer
from ditto_compat.persistence import sqlite_bulk
from ditto_compat.persistence.ports import (
    COLLECTIONS,
    Collection,
    EntityWrite,
    PolicyReaders,
    RevisionConflict,
    SearchHit,
    SearchRequest,
    StoreUnavailable,
)
from ditto_compat.persistence.query_common import over_views
from ditto_compat.persistence.query_sqlite import (
    LIKE_FUNCTION,
    SORT_VALUE_FUNCTION,
    IndexEntries,
    SqlBuilder,
    index_changes,
    index_entries,
    keyset_condition,
    order_by,
    path_text,
    sql_like,
    sql_sort_value,
    where,
    wildcard_text,
)
from ditto_compat.persistence.sqlite_checkpoint import WRITER_CHECKPOINT_FRAMES, WalCheckpointer
from ditto_compat.persistence.sqlite_ownership import (
    DataFileInUse,
    KnownRevisions,
    lock_data_file,
    unlock_data_file,
)

__all__ = ["SqliteStore"]

_log = logging.getLogger(__name__)

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

# Queries run on a thread pool this size: searches in parallel with the event loop and with each other.
_SEARCH_THREADS: Final = 2
# The writer's cache of path ids is dropped when it grows past this many paths (ids stay in the table).
_MAX_CACHED_PATHS: Final = 100_000
# ANALYZE after this many writes, then after twice as many, and so on, up to every _MAX_ANALYZE_INTERVAL;
# each run reads the (small) tables the planner chooses between for search.
_FIRST_ANALYZE: Final = 1000
_MAX_ANALYZE_INTERVAL: Final = 200_000
_ANALYZED: Final = ("things", "policy_readers", "search_policies")
# PRAGMA user_version of the current layout; 0 is a new file or the layout before search, 2 the journal
# clustered by entity.
_SCHEMA_VERSION: Final = 3

# Entries in the order they were written: appending keeps a write's pages together (the table used to be
# clustered by entity, and every event of a batch over many Things then rewrote a page of its own).
_JOURNAL_TABLE: Final = """CREATE TABLE IF NOT EXISTS journal (
        seq INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        entity_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        event TEXT NOT NULL
    )"""

_SCHEMA: Final = [
    # n: the search index's key of a Thing (INTEGER PRIMARY KEY: an alias of the rowid that VACUUM keeps).
    """CREATE TABLE IF NOT EXISTS things (
        n INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        namespace TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        created TEXT NOT NULL,
        modified TEXT NOT NULL,
        doc TEXT,
        policy_id TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS policies (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        created TEXT NOT NULL,
        modified TEXT NOT NULL,
        doc TEXT
    )""",
    # connection definitions (connectivity-manage-connections): few, and read whole at start-up
    """CREATE TABLE IF NOT EXISTS connections (
        id TEXT PRIMARY KEY,
        namespace TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        created TEXT NOT NULL,
        modified TEXT NOT NULL,
        doc TEXT
    )""",
    # Partial indexes: list_page only ever asks for live entities, and filters on namespace while ordering by
    # id. Queries must say "deleted = 0" literally for the planner to use them.
    *(
        f"CREATE INDEX IF NOT EXISTS {table}_live_ns ON {table} (namespace, id) WHERE deleted = 0"
        for table in COLLECTIONS
    ),
    # search by readers: from the caller's subjects to their policies to those policies' Things
    "CREATE INDEX IF NOT EXISTS things_live_policy ON things (policy_id) WHERE deleted = 0",
    """CREATE TABLE IF NOT EXISTS search_paths (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        wpath TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS search_paths_wildcard ON search_paths (wpath) WHERE wpath IS NOT NULL",
    # v has no declared type, hence no affinity: every value keeps its storage class (see query_sqlite).
    # Clustered by the key the predicates seek, (path, v), so the table is its own index; a Thing's rows are
    # found by recomputing them from its previous JSON, not through a second index by Thing.
    """CREATE TABLE IF NOT EXISTS search_values (
        path INTEGER NOT NULL,
        v NOT NULL,
        thing INTEGER NOT NULL,
        k INTEGER NOT NULL,
        PRIMARY KEY (path, v, thing)
    ) WITHOUT ROWID""",
    # The values of paths that hold several (arrays): few, and what a range over one path needs apart from
    # the single scalars (see query_sqlite._merged_range).
    "CREATE INDEX IF NOT EXISTS search_values_spread ON search_values (path, v, thing) WHERE k <> 1",
    """CREATE TABLE IF NOT EXISTS policy_readers (
        subject TEXT NOT NULL,
        policy_id TEXT NOT NULL,
        PRIMARY KEY (subject, policy_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS policy_readers_policy ON policy_readers (policy_id)",
    """CREATE TABLE IF NOT EXISTS search_policies (
        policy_id TEXT PRIMARY KEY,
        uniform INTEGER NOT NULL
    ) WITHOUT ROWID""",
    _JOURNAL_TABLE,
    # An entity's entries, in order. Only this small index takes the inserts at random places: a batch of
    # events for a thousand Things dirties a page of it per Thing, not a page of event JSON per Thing.
    "CREATE UNIQUE INDEX IF NOT EXISTS journal_entity ON journal (collection, entity_id, revision)",
]


@dataclass(frozen=True, slots=True)
class _Sql:
    """Statements of one entity table; built once so that sqlite3's statement cache hits every time."""

    insert: str
    update: str
    # things only: an update that changes neither ``deleted`` nor ``policy_id`` leaves their indexes alone
    update_doc: str
    get: str
    get_many: str
    revisions: str
    list_all: str
    list_ns: str
    # "deleted = 0" literally, so that the planner counts over a partial index of live entities
    count_live: str

    @classmethod
    def for_table(cls, table: str) -> _Sql:
        cols = "id, revision, doc, created, modified"
        # Things: the 8th value is the policy id, and the statements return the search index key n.
        extra, value, returning = (
            (", policy_id", ", ?", " RETURNING n") if table == "things" else ("", "", "")
        )
        return cls(
            insert=f"INSERT INTO {table} (id, namespace, revision, deleted, created, modified, doc{extra}) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?{value}) ON CONFLICT (id) DO NOTHING{returning}",
            update=f"UPDATE {table} SET revision = ?, deleted = ?, created = ?, modified = ?, doc = ?"
            f"{extra.replace(', policy_id', ', policy_id = ?')} WHERE id = ? AND revision = ?{returning}",
            update_doc=f"UPDATE {table} SET revision = ?, modified = ?, doc = ? WHERE id = ? AND revision = ?"
            f"{returning}",
            get=f"SELECT {cols} FROM {table} WHERE id = ?",
            get_many=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND id IN ({{}})",
            revisions=f"SELECT id, revision FROM {table} WHERE deleted = 0 AND id IN ({{}})",
            list_all=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND id > ? ORDER BY id LIMIT ?",
            list_ns=f"SELECT {cols} FROM {table} WHERE deleted = 0 AND namespace IN ({{}}) AND id > ? "
            "ORDER BY id LIMIT ?",
            count_live=f"SELECT count(*) FROM {table} WHERE deleted = 0",
        )


_SQL: Final[dict[str, _Sql]] = {c: _Sql.for_table(c) for c in COLLECTIONS}
_INSERT_EVENT: Final = "INSERT INTO journal (collection, entity_id, revision, event) VALUES (?, ?, ?, ?)"
_JOURNAL_RANGE: Final = (
    "SELECT event FROM journal WHERE collection = ? AND entity_id = ? AND revision BETWEEN ? AND ? "
    "ORDER BY revision"
)
# journal_retention: the entries up to the new oldest kept one (replayed into its snapshot), its rewrite as
# that snapshot, and the removal of everything older (domain/history.py)
_JOURNAL_HEAD: Final = (
    "SELECT event FROM journal WHERE collection = ? AND entity_id = ? AND revision <= ? ORDER BY revision"
)
_REWRITE_EVENT: Final = "UPDATE journal SET event = ? WHERE collection = ? AND entity_id = ? AND revision = ?"
_PRUNE_JOURNAL: Final = "DELETE FROM journal WHERE collection = ? AND entity_id = ? AND revision < ?"
# SQLite integers are signed 64-bit; "no upper bound" is expressed as the largest one.
_MAX_REVISION: Final = 2**63 - 1

_SELECT_PATH: Final = "SELECT id FROM search_paths WHERE path = ?"
_INSERT_PATH: Final = "INSERT INTO search_paths (path, wpath) VALUES (?, ?)"
_SELECT_DOC: Final = "SELECT doc FROM things WHERE id = ?"
# A scan of the policies that import anything: imports are rare, and policies few next to Things.
_IMPORTERS: Final = (
    "SELECT id FROM policies WHERE deleted = 0 AND json_type(doc, '$.imports') = 'object' "
    "AND EXISTS (SELECT 1 FROM json_each(doc, '$.imports') WHERE key = ?) ORDER BY id"
)
_DELETE_READERS: Final = "DELETE FROM policy_readers WHERE policy_id = ?"
_INSERT_READER: Final = "INSERT INTO policy_readers (subject, policy_id) VALUES (?, ?)"
_UPSERT_UNIFORM: Final = (
    "INSERT INTO search_policies (policy_id, uniform) VALUES (?, ?) "
    "ON CONFLICT (policy_id) DO UPDATE SET uniform = excluded.uniform"
)
_DELETE_UNIFORM: Final = "DELETE FROM search_policies WHERE policy_id = ?"
_HIT_COLUMNS: Final = "t.id, t.revision, t.doc, t.created, t.modified, sp.uniform"

_Row = tuple[str, int, str | None, str, str]


@dataclass(slots=True)  # not frozen: a frozen init costs 2 us for these fields, once per write of a batch
class _PreparedWrite:
    """An :class:`EntityWrite` with its JSON already serialised (by the caller, off the writer thread); never
    changed once made."""

    sql: _Sql
    collection: str
    entity_id: str
    namespace: str  # written by inserts only (an update keeps the row's); "" for updates
    expected_revision: int
    revision: int
    deleted: int
    created: str
    modified: str
    doc: str | None
    event: str
    # things: the policy id column, and the search index rows of a new Thing (those of an update are the
    # difference to the stored JSON, which only the writer sees)
    policy_id: str | None = None
    index: IndexEntries | None = None
    # policies: the new search index of the policy (None: unchanged, unless deleted)
    readers: PolicyReaders | None = None
    # things updated from a known previous document: the index rows to delete and to upsert, computed by the
    # caller (None: the writer diffs against the stored JSON)
    index_delta: tuple[list[tuple[Pointer, Any]], IndexEntries] | None = None
    # a live Thing stays live under the same policy (and creation time): only revision, modified and doc change
    doc_only: bool = False


@dataclass(slots=True)
class _Job:
    """One queued :meth:`SqliteStore.commit` (``writes``) or :meth:`SqliteStore.set_policy_readers`
    (``readers``) call."""

    writes: list[_PreparedWrite]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop
    readers: list[PolicyReaders] = field(default_factory=list)
    # commit_each(): independent groups of writes, each atomic on its own; the writer leaves each group's
    # outcome here before it resolves the future
    groups: list[list[_PreparedWrite]] | None = None
    group_outcomes: list[BaseException | None] = field(default_factory=list)


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
    is_thing = write.collection == "things"
    policy_id = state.doc.get("policyId") if is_thing and state.doc is not None else None
    readers = write.readers
    if write.collection == "policies" and state.doc is None and readers is None:
        # a deleted policy grants nothing: its Things leave every search
        readers = PolicyReaders(state.entity_id, (), True)
    return _PreparedWrite(
        sql=sql,
        collection=write.collection,
        entity_id=state.entity_id,
        namespace=namespace_of(state.entity_id) if write.expected_revision == 0 else "",  # inserts only
        expected_revision=write.expected_revision,
        revision=state.revision,
        deleted=0 if state.doc is not None else 1,
        created=state.created,
        modified=state.modified,
        # TEXT, not the BLOB orjson returns: SQLite's JSON functions (used by search) read BLOBs as JSONB.
        doc=None if state.doc is None else orjson.dumps(state.doc).decode(),
        event=orjson.dumps(write.event).decode(),
        policy_id=policy_id if isinstance(policy_id, str) else None,
        # flattened here, on the caller's side like the JSON, to keep the writer thread's rounds short
        index=(
            index_entries(state.doc)
            if is_thing and state.doc is not None and write.expected_revision == 0
            else None
        ),
        readers=readers if write.collection == "policies" else None,
        index_delta=(
            index_changes(write.previous_doc, state.doc, changed_at=write.changed_at)
            if is_thing and write.expected_revision != 0 and write.previous_known
            else None
        ),
        doc_only=(
            is_thing
            and write.expected_revision != 0
            and write.previous_known
            and write.previous_doc is not None
            and state.doc is not None
            and write.previous_doc.get("policyId") == policy_id
        ),
    )


def _document_updates(group: list[_PreparedWrite]) -> bool:
    """A group that only changes the document of one live Thing, each write on the revision of the one before,
    with the search rows to change known: what the writer applies in bulk (sqlite_bulk)."""
    previous: _PreparedWrite | None = None
    for w in group:
        if not w.doc_only or w.index_delta is None or w.doc is None:
            return False
        if previous is not None and (
            w.entity_id != previous.entity_id or w.expected_revision != previous.revision
        ):
            return False
        previous = w
    return previous is not None


def _net_index_delta(group: list[_PreparedWrite]) -> tuple[list[tuple[Pointer, Any]], IndexEntries]:
    """The search rows to delete and to upsert that have the effect of the group's deltas applied in order: per
    row, the last write that removes or sets it decides."""
    if len(group) == 1 and group[0].index_delta is not None:
        return group[0].index_delta
    last: dict[tuple[Pointer, Any], int | None] = {}
    for w in group:
        assert w.index_delta is not None  # _document_updates
        removed, changed = w.index_delta
        for row in removed:
            last[row] = None
        last.update(changed)
    return [row for row, kind in last.items() if kind is None], {
        row: kind for row, kind in last.items() if kind is not None
    }


def _hit(row: tuple[str, int, str | None, str, str, int]) -> SearchHit:
    return SearchHit(state=_to_state(row[:5]), uniform=bool(row[5]))


def _to_state(row: _Row) -> EntityState:
    entity_id, revision, doc, created, modified = row
    return EntityState(
        entity_id=entity_id,
        revision=revision,
        doc=None if doc is None else orjson.loads(doc),
        created=created,
        modified=modified,
    )


# A round's policy writes: (id, revision, live) of those committed, and the ids whose outcome is not known.
_PolicyOutcomes = tuple[list[tuple[str, int, bool]], list[str]]


def _policy_outcomes(
    jobs: Sequence[_Job], outcomes: Sequence[BaseException | None]
) -> _PolicyOutcomes | None:
    written: list[tuple[str, int, bool]] = []
    unknown: list[str] = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        groups: list[tuple[list[_PreparedWrite], BaseException | None]]
        if job.groups is None:  # commit(): one group
            groups = [(job.writes, outcome)]
        elif outcome is None:  # commit_each() in a round that committed: each group its own outcome
            groups = list(zip(job.groups, job.group_outcomes, strict=True))
        else:  # the round failed as a whole
            groups = [(group, outcome) for group in job.groups]
        for writes, group_outcome in groups:
            for w in writes:
                if w.collection != "policies":
                    continue
                if group_outcome is None:
                    written.append((w.entity_id, w.revision, w.doc is not None))
                elif isinstance(group_outcome, StoreUnavailable):
                    unknown.append(w.entity_id)
    return (written, unknown) if written or unknown else None


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

    def __init__(self, path: str, *, synchronous: str = "NORMAL", journal_retention: int = 0) -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS_MODES)}, not {synchronous!r}")
        if journal_retention < 0:
            raise ValueError(f"journal_retention must be 0 (unbounded) or more, not {journal_retention}")
        self.path = path
        self.synchronous = mode
        # revisions kept in the journal per entity; 0 keeps all
        self.journal_retention = journal_retention
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
        # Searches: a thread pool whose threads each open their own read connection (see _search_connection).
        self._searchers: concurrent.futures.ThreadPoolExecutor | None = None
        self._search_local = threading.local()
        self._search_connections: list[sqlite3.Connection] = []
        self._search_lock = threading.Lock()
        # Path ids, owned by the writer thread: _paths holds committed ones, _round_paths the ones looked up or
        # created in the current round, which a rollback may take back.
        self._paths: dict[Pointer, int] = {}
        self._round_paths: dict[Pointer, int] = {}
        # Written by the writer thread only; read for metrics and benchmarks.
        self._rounds = 0
        self._commits = 0
        self._largest_round = 0
        # Planner statistics (ANALYZE), refreshed by the writer as the data grows; see _analyze.
        self._writes_since_analyze = 0
        self._analyze_every = _FIRST_ANALYZE
        # Started and stopped by the writer thread, around its connection.
        self._checkpointer: WalCheckpointer | None = None
        # The data file's lock (sqlite_ownership), held while open; and the policy revisions this owner knows.
        self._lock_fd: int | None = None
        self._policy_revisions = KnownRevisions()

    @property
    def group_commit_stats(self) -> dict[str, int]:
        """How well group commit batches: transactions ("rounds"), commit() calls applied, largest round; and
        the WAL checkpoints run (sqlite_checkpoint) with the size of the WAL at the last one, in pages."""
        checkpointer = self._checkpointer
        return {
            "rounds": self._rounds,
            "commits": self._commits,
            "largest_round": self._largest_round,
            "checkpoints": checkpointer.checkpoints if checkpointer is not None else 0,
            "wal_frames": checkpointer.wal_frames if checkpointer is not None else 0,
        }

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
        try:
            self._lock_fd = lock_data_file(self.path)
        except (DataFileInUse, OSError) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
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
            self._unlock()
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
        self._searchers = concurrent.futures.ThreadPoolExecutor(
            max_workers=_SEARCH_THREADS, thread_name_prefix="sqlite-search"
        )

    async def close(self) -> None:
        """Apply every commit queued so far, stop the writer thread, close all connections."""
        if self._writer is None or self._closing:
            return
        self._closing = True
        self._queue.put(_STOP)
        if self._stopped is not None:
            await asyncio.wrap_future(self._stopped)
        if self._searchers is not None:
            await asyncio.to_thread(self._searchers.shutdown, wait=True)
            self._searchers = None
        with self._search_lock:
            connections, self._search_connections = self._search_connections, []
        for conn in connections:
            conn.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._unlock()

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            unlock_data_file(fd)

    async def health(self) -> dict[str, Any]:
        """``UP`` when the writer thread runs and the file answers a query; never raises."""
        down = {"status": "DOWN", "backend": self.name, "path": self.path}
        try:
            if self._reader is None or self._closing:
                return {**down, "reason": "store is not open"}
            if self._writer is None or not self._writer.is_alive():
                return {**down, "reason": "writer thread is not running"}
            self._reader.execute("SELECT 1 FROM things LIMIT 1").fetchall()
            return {
                "status": "UP",
                "backend": self.name,
                "path": self.path,
                "groupCommit": self.group_commit_stats,
            }
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
        found = {row[0]: _to_state(row) for row in self._rows_in(_sql(collection).get_many, ids)}
        return {i: found[i] for i in ids if i in found}

    async def revisions(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, int]:
        """Revisions of the given ids that exist and are not deleted (their documents are not read). Those of
        policies come from memory where this process, the file's only writer, knows them (sqlite_ownership)."""
        ids = list(dict.fromkeys(entity_ids))
        if collection != "policies":
            return {row[0]: row[1] for row in self._rows_in(_sql(collection).revisions, ids)}
        known, unknown = self._policy_revisions.split(ids)
        if unknown:
            found = {row[0]: row[1] for row in self._rows_in(_sql(collection).revisions, unknown)}
            self._policy_revisions.read(unknown, found)
            known.update(found)
        return known

    def _rows_in(self, template: str, ids: list[str]) -> list[Any]:
        """The rows of ``template`` (an ``IN ({})`` query) for ``ids``, in chunks of bound parameters."""
        rows: list[Any] = []
        try:
            conn = self._read()
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                rows += conn.execute(template.format(", ".join("?" * len(chunk))), chunk).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return rows

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

    async def count_live(self, collection: Collection) -> int:
        """The number of live (not deleted) entities. Counts through the partial index on live entities, so
        it reads the index only; still linear in their number, so it runs on a search thread, not the loop."""
        rows = await self._run_search((_sql(collection).count_live, {}))
        return int(rows[0][0][0])

    async def importers(self, policy_id: str) -> list[str]:
        """Ids of the live policies whose ``imports`` name ``policy_id`` (directly), in id order."""
        try:
            rows = self._read().execute(_IMPORTERS, (policy_id,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc
        return [row[0] for row in rows]

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

    # -- search ------------------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        """At most ``request.limit`` live Things matching the filter, in sort order, after ``after``."""
        if request.limit <= 0 or not request.readers or request.namespaces == ():
            return []
        (rows,) = await self._run_search(self._search_statement(request))
        return [_hit(row) for row in rows]

    async def explain(self, request: SearchRequest) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` of the statement :meth:`search` runs for ``request``, one line per
        step: how an operator checks that a filter is served by the index."""
        sql, params = self._search_statement(request)
        (rows,) = await self._run_search((f"EXPLAIN QUERY PLAN {sql}", params))
        return [str(row[3]) for row in rows]

    def _search_statement(self, request: SearchRequest) -> tuple[str, dict[str, Any]]:
        builder = SqlBuilder()
        sql = (
            f"SELECT {_HIT_COLUMNS} {self._search_body(builder, request, None)} "
            f"ORDER BY {order_by(builder, request.sort)} LIMIT {builder.param(request.limit)}"
        )
        return sql, builder.params

    async def count(self, request: SearchRequest) -> tuple[int, list[SearchHit]]:
        """``(n, to_verify)``: matches of uniform policies counted by the database, matches of the others
        returned for the caller to check (``limit``, ``sort`` and ``after`` are ignored)."""
        if not request.readers or request.namespaces == ():
            return 0, []
        request = SearchRequest(readers=request.readers, filter=request.filter, namespaces=request.namespaces)
        counting = SqlBuilder()
        count_sql = f"SELECT COUNT(*) {self._search_body(counting, request, True)}"
        listing = SqlBuilder()
        list_sql = f"SELECT {_HIT_COLUMNS} {self._search_body(listing, request, False)} ORDER BY t.id"
        counted, to_verify = await self._run_search((count_sql, counting.params), (list_sql, listing.params))
        return int(counted[0][0]), [_hit(row) for row in to_verify]

    @staticmethod
    def _search_body(builder: SqlBuilder, request: SearchRequest, uniform: bool | None) -> str:
        """``FROM ... WHERE ...`` of a search: live Things of a policy one of the readers may read, in the
        namespaces, matching the filter, after the keyset position; only (non-)uniform policies if asked."""
        now = datetime.now(UTC)
        readers = ", ".join(builder.param(s) for s in dict.fromkeys(request.readers))
        conditions = [
            "t.deleted = 0",
            f"t.policy_id IN (SELECT policy_id FROM policy_readers WHERE subject IN ({readers}))",
        ]
        if request.namespaces is not None:
            listed = ", ".join(builder.param(ns) for ns in dict.fromkeys(request.namespaces))
            conditions.append(f"t.namespace IN ({listed})")
        if request.filter is not None:
            # policies that hide fields from some readers get the filter relaxed (query_common.over_views)
            relaxed = over_views(request.filter)
            if relaxed == request.filter or uniform is True:
                conditions.append(f"({where(builder, request.filter, now)})")
            else:
                loose = "1" if relaxed is None else where(builder, relaxed, now)
                if uniform is False:
                    conditions.append(f"({loose})")
                else:
                    strict = where(builder, request.filter, now)
                    conditions.append(f"((sp.uniform = 1 AND ({strict})) OR (sp.uniform = 0 AND ({loose})))")
        if uniform is not None:
            conditions.append(f"sp.uniform = {int(uniform)}")
        if request.after is not None:
            conditions.append(f"({keyset_condition(builder, request.sort, request.after)})")
        return (
            "FROM things AS t JOIN search_policies AS sp ON sp.policy_id = t.policy_id "
            f"WHERE {' AND '.join(conditions)}"
        )

    async def _run_search(self, *statements: tuple[str, dict[str, Any]]) -> list[list[Any]]:
        """The rows of each statement, all read from one snapshot of the database."""
        if self._searchers is None or self._closing:
            raise StoreUnavailable("SQLite store is not open")
        try:
            return await asyncio.wrap_future(self._searchers.submit(self._search_rows, statements))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite search failed: {exc}") from exc

    def _search_rows(self, statements: tuple[tuple[str, dict[str, Any]], ...]) -> list[list[Any]]:
        """Runs on a search thread, on that thread's connection."""
        conn = self._search_connection()
        if len(statements) == 1:
            sql, params = statements[0]
            return [conn.execute(sql, params).fetchall()]
        # one read transaction: a count and its list of hits to verify describe the same moment
        conn.execute("BEGIN")
        try:
            return [conn.execute(sql, params).fetchall() for sql, params in statements]
        finally:
            conn.execute("COMMIT")

    def _search_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._search_local, "conn", None)
        if conn is None:
            # check_same_thread=False only so that close() can close it from the event loop's thread; it is
            # used by its own search thread alone.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {_READER_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA query_only = ON")
            conn.create_function(LIKE_FUNCTION, 3, sql_like, deterministic=True)
            conn.create_function(SORT_VALUE_FUNCTION, 2, sql_sort_value, deterministic=True)
            with self._search_lock:
                self._search_connections.append(conn)
            self._search_local.conn = conn
        return conn

    async def hold_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Always held: one process owns the SQLite file (sqlite_ownership), so nobody else can ask."""
        return True

    async def release_lease(self, name: str, owner: str) -> None:
        return None

    async def set_policy_readers(self, readers: Sequence[PolicyReaders]) -> None:
        """Replace the search index of these policies, durably (through the writer, like a commit)."""
        if not readers:
            return
        if self._writer is None or self._closing:
            raise StoreUnavailable("SQLite store is not open")
        if not self._writer.is_alive():
            raise StoreUnavailable("SQLite writer thread is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job([], future, loop, list(readers)))
        await future

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

    async def commit_each(self, groups: Sequence[Sequence[EntityWrite]]) -> list[BaseException | None]:
        """Apply independent groups of writes in one transaction, each group atomic on its own: a group whose
        compare-and-set misses gets its :class:`RevisionConflict` and leaves the others applied. Raises
        :class:`StoreUnavailable` when the transaction as a whole failed (then nothing was written)."""
        prepared = [[_prepare(w) for w in group] for group in groups]
        if not any(prepared):
            return [None for _ in prepared]
        if self._writer is None or self._closing:
            raise StoreUnavailable("SQLite store is not open")
        if not self._writer.is_alive():
            raise StoreUnavailable("SQLite writer thread is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        job = _Job([], future, loop, groups=prepared)
        self._queue.put(job)
        await future
        return job.group_outcomes

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
            # checkpoints run on the checkpointer thread, not inside this connection's commits
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < _SCHEMA_VERSION:
                self._migrate(conn)
            for stmt in _SCHEMA:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            conn.execute("COMMIT")
            self._commit_paths()
            self._analyze(conn)
        except BaseException:
            self._round_paths.clear()
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring a file of an earlier layout up to this one (inside the opening transaction)."""
        self._migrate_journal(conn)  # first: the others create the current schema's journal index
        self._migrate_things_for_search(conn)

    @staticmethod
    def _migrate_journal(conn: sqlite3.Connection) -> None:
        """A journal clustered by entity (``WITHOUT ROWID``) becomes the append-ordered table and its index."""
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'journal'"
        ).fetchone()
        if row is None or "WITHOUT ROWID" not in str(row[0]).upper():
            return  # a new file, or already migrated
        conn.execute("ALTER TABLE journal RENAME TO journal_by_entity")
        conn.execute(_JOURNAL_TABLE)
        conn.execute(
            "INSERT INTO journal (collection, entity_id, revision, event) "
            "SELECT collection, entity_id, revision, event FROM journal_by_entity"
        )
        conn.execute("DROP TABLE journal_by_entity")

    def _migrate_things_for_search(self, conn: sqlite3.Connection) -> None:
        """A file of the layout before search: give ``things`` its index key and policy id, and index every
        live Thing. Its Things become searchable once their policies' readers are set."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(things)")}
        if not columns or "n" in columns:
            return  # a new file, or already migrated
        conn.execute("DROP INDEX IF EXISTS things_live_ns")
        conn.execute("ALTER TABLE things RENAME TO things_before_search")
        for stmt in _SCHEMA:
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO things (id, namespace, revision, deleted, created, modified, doc, policy_id) "
            "SELECT id, namespace, revision, deleted, created, modified, doc, "
            "CASE WHEN deleted = 0 AND json_type(doc, '$.policyId') = 'text' "
            "THEN json_extract(doc, '$.policyId') END FROM things_before_search"
        )
        conn.execute("DROP TABLE things_before_search")
        for n, doc in conn.execute("SELECT n, doc FROM things WHERE deleted = 0").fetchall():
            self._write_index(conn, n, [], index_entries(orjson.loads(doc)))

    def _run_writer(
        self, ready: concurrent.futures.Future[None], stopped: concurrent.futures.Future[None]
    ) -> None:
        try:
            conn = self._connect_writer()
        except BaseException as exc:
            ready.set_exception(exc)
            stopped.set_result(None)
            return
        checkpointer = WalCheckpointer(self.path, self.synchronous)
        self._checkpointer = checkpointer
        checkpointer.start()
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
                    self._writes_since_analyze += sum(len(job.writes) for job in jobs)
                    if self._writes_since_analyze >= self._analyze_every:
                        self._analyze(conn)
        finally:
            checkpointer.stop()
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
            self._commit_paths()
            self._checkpoint_after_commit(conn)
        except sqlite3.Error as exc:
            self._round_paths.clear()
            # Nothing of this round is durable: every caller of it fails, including those whose own
            # savepoint had succeeded.
            if conn.in_transaction:
                # The failed transaction may already be gone; the original error is what matters.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [StoreUnavailable(f"SQLite commit failed: {exc}") for _ in jobs]
        except BaseException as exc:  # a bug must not leave callers waiting forever, nor kill the writer
            self._round_paths.clear()
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [StoreUnavailable(f"SQLite writer failed: {exc!r}") for _ in jobs]
        # Counted before the callers learn their outcome, so that a caller sees its own round in the stats.
        self._rounds += 1
        self._commits += len(jobs)
        self._largest_round = max(self._largest_round, len(jobs))
        self._deliver(jobs, outcomes, _policy_outcomes(jobs, outcomes))

    def _checkpoint_after_commit(self, conn: sqlite3.Connection) -> None:
        """Hand the checkpoint to the checkpointer thread, unless the WAL has outgrown it (sqlite_checkpoint)."""
        checkpointer = self._checkpointer
        if checkpointer is None:
            return
        if checkpointer.backlog_frames > WRITER_CHECKPOINT_FRAMES:
            # the commit is durable already: a failed checkpoint must not fail its round
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        checkpointer.committed()

    def _apply_job(self, conn: sqlite3.Connection, job: _Job) -> BaseException | None:
        """One commit() inside its own savepoint: a conflict undoes only this caller's writes.

        A commit of a single write needs no savepoint: a missed compare-and-set changes no row, and once it
        hit, the journal row for the new revision cannot exist yet (state and journal only ever change
        together). Skipping it halves the statements of the common case, each of which holds the GIL.
        A set_policy_readers() cannot conflict: an error in it fails the round."""
        for readers in job.readers:
            self._write_readers(conn, readers)
        if job.groups is not None:
            job.group_outcomes = self._apply_groups(conn, job.groups)
            return None
        return self._apply_writes(conn, job.writes)

    def _apply_groups(
        self, conn: sqlite3.Connection, groups: list[list[_PreparedWrite]]
    ) -> list[BaseException | None]:
        """commit_each(): the groups that only update the document of a Thing no earlier group touches (a batch of
        telemetry is nearly all of these) go together, a few statements for all (sqlite_bulk); then the others
        one by one, in their order. A group after a bulk one for the same entity thus still comes after it."""
        outcomes: list[BaseException | None] = [None] * len(groups)
        bulk: list[int] = []
        rest: list[int] = []
        seen: set[str] = set()
        for index, group in enumerate(groups):
            if _document_updates(group) and group[0].entity_id not in seen:
                bulk.append(index)
            else:
                rest.append(index)
            seen.update(w.entity_id for w in group)
        if len(bulk) > 1:
            for index, outcome in zip(bulk, self._apply_bulk(conn, [groups[i] for i in bulk]), strict=True):
                outcomes[index] = outcome
        else:
            rest = sorted(rest + bulk)
        for index in rest:
            outcomes[index] = self._apply_writes(conn, groups[index])
        return outcomes

    def _apply_bulk(
        self, conn: sqlite3.Connection, groups: list[list[_PreparedWrite]]
    ) -> list[BaseException | None]:
        """Groups of :func:`_document_updates`, of distinct Things. Each group is one compare-and-set, from the
        revision its first write expects to its last write's document (the revisions between exist only in the
        journal); a miss is that group's RevisionConflict and changes nothing. An SQLite error fails the round
        (_apply_batch), as a statement may have applied some chunks of rows already."""
        hits = sqlite_bulk.update_docs(
            conn,
            [
                (g[0].entity_id, g[-1].revision, g[-1].modified, g[-1].doc, g[0].expected_revision)
                for g in groups
            ],
        )
        outcomes: list[BaseException | None] = []
        written: list[_PreparedWrite] = []
        deletes: list[tuple[int, Any, int]] = []
        upserts: list[tuple[int, Any, int, int]] = []
        for group in groups:
            first = group[0]
            n = hits.get(first.entity_id)
            if n is None:
                outcomes.append(
                    RevisionConflict(
                        f"{first.collection} {first.entity_id!r} is not at revision {first.expected_revision}"
                    )
                )
                continue
            outcomes.append(None)
            written.extend(group)
            removed, changed = _net_index_delta(group)
            thing_deletes, thing_upserts = self._index_rows(conn, n, removed, changed)
            deletes += thing_deletes
            upserts += thing_upserts
        sqlite_bulk.delete_values(conn, deletes)
        sqlite_bulk.upsert_values(conn, upserts)
        sqlite_bulk.insert_events(conn, [(w.collection, w.entity_id, w.revision, w.event) for w in written])
        for w in written:
            self._prune_journal(conn, w)
        return outcomes

    def _apply_writes(self, conn: sqlite3.Connection, writes: list[_PreparedWrite]) -> BaseException | None:
        """Writes that succeed or fail together (one savepoint), inside the round's transaction."""
        if not writes:
            return None
        if len(writes) == 1:
            return self._apply_single(conn, writes[0])
        conn.execute("SAVEPOINT job")
        try:
            for w in writes:
                if not self._write_state(conn, w):
                    raise RevisionConflict(
                        f"{w.collection} {w.entity_id!r} is not at revision {w.expected_revision}"
                    )
                conn.execute(_INSERT_EVENT, (w.collection, w.entity_id, w.revision, w.event))
                self._prune_journal(conn, w)
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
        # Path ids created inside the savepoint are gone with it: forget this round's lookups.
        self._round_paths.clear()
        # If the error aborted the whole transaction, these raise and _apply_batch fails the round.
        conn.execute("ROLLBACK TO job")
        conn.execute("RELEASE job")
        return outcome

    def _apply_single(self, conn: sqlite3.Connection, w: _PreparedWrite) -> BaseException | None:
        previous: str | None = None
        try:
            if w.collection == "things" and w.expected_revision != 0 and w.index_delta is None:
                row = conn.execute(_SELECT_DOC, (w.entity_id,)).fetchone()
                previous = row[0] if row is not None else None
            written = self._write_state(conn, w, search=False)
        except sqlite3.IntegrityError as exc:
            return RevisionConflict(f"{w.collection} {w.entity_id!r} exists already: {exc}")
        except sqlite3.Error as exc:
            return StoreUnavailable(f"SQLite write failed: {exc}")
        if not written:
            return RevisionConflict(
                f"{w.collection} {w.entity_id!r} is not at revision {w.expected_revision}"
            )
        # An error from here on cannot be undone statement by statement: it fails the whole round
        # (_apply_batch).
        self._write_search(conn, w, written, previous)
        conn.execute(_INSERT_EVENT, (w.collection, w.entity_id, w.revision, w.event))
        self._prune_journal(conn, w)
        return None

    def _prune_journal(self, conn: sqlite3.Connection, w: _PreparedWrite) -> None:
        """``journal_retention`` N: after revision r, keep revisions r-N+1..r, the oldest rewritten as the
        snapshot of the entity at that revision (domain/history.py), in the transaction of the write. Each
        commit moves the window by one, so this replays two entries: the old snapshot and the next event."""
        keep_from = w.revision - self.journal_retention + 1
        if self.journal_retention <= 0 or keep_from <= 1:
            return
        key = (w.collection, w.entity_id)
        if w.collection == "connections":
            # every connection event carries the whole definition: older entries are simply dropped
            conn.execute(_PRUNE_JOURNAL, (*key, keep_from))
            return
        rows = conn.execute(_JOURNAL_HEAD, (*key, keep_from)).fetchall()
        collection: HistoryCollection = "things" if w.collection == "things" else "policies"
        try:
            snapshot = compact(collection, w.entity_id, [orjson.loads(row[0]) for row in rows])
        except Exception:
            # a journal entry this version cannot replay: keep the journal longer rather than fail the write
            _log.exception("journal of %s %r not pruned", w.collection, w.entity_id)
            return
        if snapshot is None:
            return
        conn.execute(_REWRITE_EVENT, (orjson.dumps(snapshot).decode(), *key, keep_from))
        conn.execute(_PRUNE_JOURNAL, (*key, keep_from))

    def _write_state(self, conn: sqlite3.Connection, w: _PreparedWrite, *, search: bool = True) -> int | None:
        """The compare-and-set of one entity: its search key (``n`` of a Thing, 1 for a policy) when it hit,
        None when it missed. With ``search``, also the search index of the entity."""
        values: tuple[Any, ...] = (w.revision, w.deleted, w.created, w.modified, w.doc)
        previous: str | None = None
        if w.collection == "things":
            values = (*values, w.policy_id)
            if w.expected_revision != 0 and search and w.index_delta is None:
                # the rows to replace are those of the stored JSON (read before it is overwritten)
                row = conn.execute(_SELECT_DOC, (w.entity_id,)).fetchone()
                previous = row[0] if row is not None else None
        if w.expected_revision == 0:
            cur = conn.execute(w.sql.insert, (w.entity_id, w.namespace, *values))
        elif w.doc_only:
            # the compare-and-set on the revision vouches for the rest of the row the caller read
            cur = conn.execute(
                w.sql.update_doc, (w.revision, w.modified, w.doc, w.entity_id, w.expected_revision)
            )
        else:
            cur = conn.execute(w.sql.update, (*values, w.entity_id, w.expected_revision))
        if w.collection == "things":
            # fetchall: a RETURNING statement is only finished once its rows are read
            rows = cur.fetchall()
            written = int(rows[0][0]) if rows else None
        else:
            written = 1 if cur.rowcount == 1 else None
        if written is not None and search:
            self._write_search(conn, w, written, previous)
        return written

    def _write_search(
        self, conn: sqlite3.Connection, w: _PreparedWrite, n: int, previous: str | None
    ) -> None:
        if w.collection == "things":
            if w.expected_revision == 0:
                removed: list[tuple[Pointer, Any]] = []
                changed = w.index or {}
            elif w.index_delta is not None:
                removed, changed = w.index_delta
            else:
                # both from the JSON text: the caller's dict may change once commit() was cancelled
                before = orjson.loads(previous) if previous is not None else None
                after = orjson.loads(w.doc) if w.doc is not None else None
                removed, changed = index_changes(before, after)
            self._write_index(conn, n, removed, changed)
        elif w.readers is not None:
            self._write_readers(conn, w.readers)

    def _write_index(
        self, conn: sqlite3.Connection, n: int, removed: list[tuple[Pointer, Any]], changed: IndexEntries
    ) -> None:
        deletes, upserts = self._index_rows(conn, n, removed, changed)
        sqlite_bulk.delete_values(conn, deletes)
        sqlite_bulk.upsert_values(conn, upserts)

    def _index_rows(
        self, conn: sqlite3.Connection, n: int, removed: list[tuple[Pointer, Any]], changed: IndexEntries
    ) -> tuple[list[tuple[int, Any, int]], list[tuple[int, Any, int, int]]]:
        """The search_values rows of Thing ``n`` to delete and to upsert (sqlite_bulk's row shapes)."""
        deletes = [(self._path_id(conn, keys), value, n) for keys, value in removed]
        upserts = [(self._path_id(conn, keys), value, n, kind) for (keys, value), kind in changed.items()]
        return deletes, upserts

    def _path_id(self, conn: sqlite3.Connection, keys: Pointer) -> int:
        known = self._paths.get(keys)
        if known is None:
            known = self._round_paths.get(keys)
        if known is not None:
            return known
        text = path_text(keys)
        row = conn.execute(_SELECT_PATH, (text,)).fetchone()
        if row is not None:
            path_id = int(row[0])
        else:
            path_id = conn.execute(_INSERT_PATH, (text, wildcard_text(keys))).lastrowid or 0
        self._round_paths[keys] = path_id
        return path_id

    def _commit_paths(self) -> None:
        """The round committed: its path ids are now safe to remember."""
        if len(self._paths) + len(self._round_paths) > _MAX_CACHED_PATHS:
            self._paths.clear()
        self._paths.update(self._round_paths)
        self._round_paths.clear()

    def _analyze(self, conn: sqlite3.Connection) -> None:
        """Refresh the query planner's statistics of the tables whose indexes it has to choose between. Without
        them SQLite cannot tell a selective policy from one that every Thing has (with them, a search without
        filter walks the id index and stops after a page instead of sorting every readable Thing). A sampled
        ANALYZE (``analysis_limit``) caps the rows per key it reports and misleads exactly there, so these
        tables are read in full; ``search_values``, by far the largest, is not: its every use is a seek on its
        key. Other connections pick the statistics up with their next statement."""
        self._writes_since_analyze = 0
        self._analyze_every = min(self._analyze_every * 2, _MAX_ANALYZE_INTERVAL)
        # statistics are an optimisation: never fail a write for them
        with contextlib.suppress(sqlite3.Error):
            for table in _ANALYZED:
                conn.execute(f"ANALYZE {table}")

    @staticmethod
    def _write_readers(conn: sqlite3.Connection, readers: PolicyReaders) -> None:
        conn.execute(_DELETE_READERS, (readers.policy_id,))
        subjects = list(dict.fromkeys(readers.subjects))
        if not subjects:
            # nobody reads: the policy leaves the index (its Things match no search)
            conn.execute(_DELETE_UNIFORM, (readers.policy_id,))
            return
        conn.executemany(_INSERT_READER, [(subject, readers.policy_id) for subject in subjects])
        conn.execute(_UPSERT_UNIFORM, (readers.policy_id, int(readers.uniform)))

    def _deliver(
        self,
        jobs: list[_Job],
        outcomes: Sequence[BaseException | None],
        policies: _PolicyOutcomes | None = None,
    ) -> None:
        """Hand the outcomes to the callers' loops: one wake-up per loop per round, not one per caller. The
        policy revisions the round wrote are recorded in the same callback, before any caller resumes and on the
        loop that reads them, so that no read started before the commit can record an older revision after it."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], BaseException | None]]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._resolve, items, policies)
            except RuntimeError:  # that loop is closed, nobody is left to tell
                continue
            policies = None  # recorded once

    def _resolve(
        self,
        items: list[tuple[asyncio.Future[None], BaseException | None]],
        policies: _PolicyOutcomes | None,
    ) -> None:
        if policies is not None:
            written, unknown = policies
            for policy_id, revision, live in written:
                self._policy_revisions.committed(policy_id, revision, live)
            self._policy_revisions.forget(unknown)
        _resolve(items)
