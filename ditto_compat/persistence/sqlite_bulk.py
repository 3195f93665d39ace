"""Statements of the SQLite writer that apply many rows in one call.

Why: Python's ``sqlite3`` releases the GIL while SQLite runs a statement and must win it back afterwards. One
statement per row means a writer round of a thousand Thing updates wins the GIL back several thousand times, and
whenever another thread is running Python (paho's network thread reading the next messages, the event loop
deciding the next batch) each of those waits up to the interpreter's switch interval (5 ms): rounds that need
13 ms of CPU took 130 ms to 2 s of wall time. Here one statement carries up to :data:`CHUNK` rows, so such a
round is a handful of calls per table.

Rows are bound as parameters, so every value keeps its Python type exactly as a one-row statement would bind it
(rows passed as one JSON text would turn floats and booleans into whatever SQLite's JSON parser makes of them).
A statement's text depends on its number of rows; rows are split into :data:`CHUNK`-row statements and one
padded to a power of two (:func:`chunks`), so the few shapes of each statement all stay in the connection's
statement cache.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

__all__ = [
    "CHUNK",
    "chunks",
    "delete_values",
    "delete_values_statement",
    "insert_events",
    "insert_events_statement",
    "update_docs",
    "update_docs_statement",
    "upsert_values",
    "upsert_values_statement",
]

# Rows per statement: 256 rows of the widest statement (5 values) bind 1,280 parameters, far below SQLite's
# limit (32,766 since 3.32, 999 before), and an OR of 256 keys stays well within its expression depth (1,000).
CHUNK: Final = 256


def chunks(count: int) -> Iterator[tuple[int, int]]:
    """How ``count`` rows are split into statements, as (rows, statement size) pairs: full chunks of CHUNK rows,
    then the rest in one statement of the next power of two, padded with rows of NULLs that match and insert
    nothing. 1,000 rows are four statements of 256; each statement has at most nine sizes."""
    for _ in range(count // CHUNK):
        yield CHUNK, CHUNK
    rest = count % CHUNK
    if rest:
        yield rest, 1 << (rest - 1).bit_length()


def _run(
    conn: sqlite3.Connection, statement: Callable[[int], str], width: int, rows: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """Execute ``statement(size)`` over consecutive chunks of ``rows``; returns the rows they return."""
    returned: list[Any] = []
    start = 0
    for taken, size in chunks(len(rows)):
        params = [value for row in rows[start : start + taken] for value in row]
        start += taken
        params.extend([None] * ((size - taken) * width))
        cursor = conn.execute(statement(size), params)
        # a RETURNING statement is finished only once its rows are read
        returned.extend(cursor.fetchall())
    return returned


def _values(rows: int, width: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * rows)


def _columns(width: int) -> str:
    return ", ".join(f"column{i}" for i in range(1, width + 1))


@functools.cache
def update_docs_statement(rows: int) -> str:
    # The planner walks the VALUES rows and finds each Thing by its unique id (sqlite_autoindex_things_1); the
    # NULL id of a padding row finds none.
    return (
        "UPDATE things SET revision = u.column2, modified = u.column3, doc = u.column4 "
        f"FROM (VALUES {_values(rows, 5)}) AS u "
        "WHERE things.id = u.column1 AND things.revision = u.column5 RETURNING things.id, things.n"
    )


@functools.cache
def delete_values_statement(rows: int) -> str:
    # An OR of primary keys: the planner seeks each one (MULTI-INDEX OR). A row-value "IN (VALUES ...)" would
    # seek by path only (v has no affinity) and scan every value of the path.
    return "DELETE FROM search_values WHERE " + " OR ".join(["(path = ? AND v = ? AND thing = ?)"] * rows)


@functools.cache
def upsert_values_statement(rows: int) -> str:
    # the WHERE drops the padding rows (and is what lets SQLite parse an upsert of a SELECT)
    return (
        f"INSERT INTO search_values (path, v, thing, k) SELECT {_columns(4)} FROM (VALUES {_values(rows, 4)}) "
        "WHERE column1 IS NOT NULL ON CONFLICT (path, v, thing) DO UPDATE SET k = excluded.k"
    )


@functools.cache
def insert_events_statement(rows: int) -> str:
    return (
        f"INSERT INTO journal (collection, entity_id, revision, event) SELECT {_columns(4)} "
        f"FROM (VALUES {_values(rows, 4)}) WHERE column1 IS NOT NULL"
    )


def update_docs(
    conn: sqlite3.Connection, rows: Sequence[tuple[str, int, str, str | None, int]]
) -> dict[str, int]:
    """Compare-and-set of Things that stay live under the same policy: rows ``(id, revision, modified, doc,
    expected_revision)`` with distinct ids. Returns the search key ``n`` of each Thing whose stored revision was
    the expected one (and is now updated); the others are unchanged."""
    return {str(entity_id): int(n) for entity_id, n in _run(conn, update_docs_statement, 5, rows)}


def delete_values(conn: sqlite3.Connection, rows: Sequence[tuple[int, Any, int]]) -> None:
    """Remove search index rows ``(path, v, thing)``."""
    _run(conn, delete_values_statement, 3, rows)


def upsert_values(conn: sqlite3.Connection, rows: Sequence[tuple[int, Any, int, int]]) -> None:
    """Insert search index rows ``(path, v, thing, k)``, or set ``k`` of those that exist (a later row of the
    same call included)."""
    _run(conn, upsert_values_statement, 4, rows)


def insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[str, str, int, str]]) -> None:
    """Append journal entries ``(collection, entity_id, revision, event)``, in order; an existing ``(collection,
    entity_id, revision)`` raises :class:`sqlite3.IntegrityError`."""
    _run(conn, insert_events_statement, 4, rows)
