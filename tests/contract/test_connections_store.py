"""The ``connections`` collection keeps the contract of ``things`` and ``policies`` on both backends: revisions
with compare-and-set, ``created``/``modified``, tombstones whose revisions go on counting, and the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ditto_compat.domain.entity import EntityState
from ditto_compat.persistence.mongo import MongoStore
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, Store
from ditto_compat.persistence.sqlite import SqliteStore
from tests import services


def definition(status: str = "closed") -> dict[str, Any]:
    return {
        "id": "conn-1",
        "connectionType": "kafka",
        "connectionStatus": status,
        "uri": "tcp://127.0.0.1:9092",
    }


def write(
    expected: int, revision: int, doc: dict[str, Any] | None, created: str = "t1", at: str = "t1"
) -> EntityWrite:
    kind = "connectionDeleted" if doc is None else "connectionModified"
    event: dict[str, Any] = {
        "type": f"connectivity.events:{kind}",
        "connectionId": "conn-1",
        "revision": revision,
    }
    if doc is not None:
        event["connection"] = doc
    return EntityWrite("connections", expected, EntityState("conn-1", revision, doc, created, at), event)


async def test_connections_have_revisions_tombstones_and_a_journal(store: Store) -> None:
    assert await store.get("connections", "conn-1") is None
    await store.commit([write(0, 1, definition())])
    await store.commit([write(1, 2, definition("open"), at="t2")])
    state = await store.get("connections", "conn-1")
    assert state == EntityState("conn-1", 2, definition("open"), "t1", "t2")
    # a stale writer loses, and nothing of it is written
    with pytest.raises(RevisionConflict):
        await store.commit([write(1, 2, definition("closed"))])
    with pytest.raises(RevisionConflict):
        await store.commit([write(0, 1, definition())])
    assert [s.entity_id for s in await store.list_page("connections", after=None, limit=10)] == ["conn-1"]
    # deletion keeps a tombstone; the id leaves every listing and its revisions go on counting
    await store.commit([write(2, 3, None, at="t3")])
    tombstone = await store.get("connections", "conn-1")
    assert tombstone is not None and tombstone.doc is None and tombstone.revision == 3
    assert await store.list_page("connections", after=None, limit=10) == []
    assert await store.get_many("connections", ["conn-1"]) == {}
    await store.commit([write(3, 4, definition(), created="t4", at="t4")])
    journal = await store.journal("connections", "conn-1")
    assert [e["revision"] for e in journal] == [1, 2, 3, 4]
    assert journal[1]["connection"]["connectionStatus"] == "open"
    assert "connection" not in journal[2]
    assert await store.journal("connections", "conn-1", from_revision=2, to_revision=2) == [journal[1]]


async def test_connections_are_apart_from_things_and_policies(store: Store) -> None:
    await store.commit([write(0, 1, definition())])
    assert await store.get("things", "conn-1") is None
    assert await store.get("policies", "conn-1") is None
    assert await store.journal("things", "conn-1") == []


async def test_many_connections_page_in_id_order(store: Store) -> None:
    ids = [f"c-{i:03d}" for i in range(7)]
    await store.commit(
        [EntityWrite("connections", 0, EntityState(i, 1, {"id": i}, "t", "t"), {"revision": 1}) for i in ids]
    )
    first = await store.list_page("connections", after=None, limit=4)
    rest = await store.list_page("connections", after=first[-1].entity_id, limit=4)
    assert [s.entity_id for s in first + rest] == ids


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def retaining_store(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[Store]:
    """A store that keeps the last 2 journal entries per entity."""
    store: Store
    if request.param == "sqlite":
        store = SqliteStore(sqlite_path, journal_retention=2)
        database = ""
    else:
        uri: str = request.getfixturevalue("mongo_uri")
        database = services.fresh_database_name()
        store = MongoStore(uri, database, journal_retention=2)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        if database:
            await services.drop_mongo_database(request.getfixturevalue("mongo_uri"), database)


async def test_journal_retention_drops_older_connection_entries(retaining_store: Store) -> None:
    store = retaining_store
    for revision in range(1, 6):
        status = "open" if revision % 2 else "closed"
        await store.commit([write(revision - 1, revision, definition(status), at=f"t{revision}")])
    journal = await store.journal("connections", "conn-1")
    # each kept entry is still a whole definition: no snapshot rewriting is needed
    assert [(e["revision"], e["connection"]["connectionStatus"]) for e in journal] == [
        (4, "closed"),
        (5, "open"),
    ]
