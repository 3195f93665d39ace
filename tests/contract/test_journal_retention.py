"""``journal_retention``: both stores keep the last N journal entries per entity, the oldest rewritten as a
snapshot of the entity at that revision, so that replay from it gives every kept revision exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingEvent, apply_event
from ditto_compat.domain.history import replay
from ditto_compat.domain.policies import policy_event
from ditto_compat.model.pointer import MISSING, parse_pointer
from ditto_compat.persistence.mongo import MongoStore
from ditto_compat.persistence.ports import EntityWrite, Store
from ditto_compat.persistence.sqlite import SqliteStore
from tests import services


def ts(revision: int) -> str:
    return f"2024-05-01T10:00:{revision:02d}.000Z"


@pytest.fixture(params=["sqlite", pytest.param("mongo", marks=pytest.mark.mongo)])
async def open_store(request: pytest.FixtureRequest, sqlite_path: str) -> AsyncIterator[Any]:
    """A factory of open stores of one backend with a given retention (all closed at the end)."""
    opened: list[Store] = []
    dropped: list[tuple[str, str]] = []

    async def open_with(retention: int) -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(f"{sqlite_path}.{len(opened)}", journal_retention=retention)
        else:
            uri: str = request.getfixturevalue("mongo_uri")
            database = services.fresh_database_name()
            dropped.append((uri, database))
            store = MongoStore(uri, database, journal_retention=retention)
        await store.open()
        opened.append(store)
        return store

    try:
        yield open_with
    finally:
        for store in opened:
            await store.close()
        for uri, database in dropped:
            await services.drop_mongo_database(uri, database)


class Thing:
    """Writes a Thing through real events, as the dispatcher does, remembering every state."""

    def __init__(self, store: Store, thing_id: str) -> None:
        self.store = store
        self.thing_id = thing_id
        self.states: list[EntityState] = []

    async def change(self, action: str, path: str, value: Any = MISSING) -> None:
        previous = self.states[-1] if self.states else None
        revision = previous.revision + 1 if previous else 1
        kind = "Created" if action == "created" else action.capitalize()
        event = ThingEvent(
            f"things.events:thing{kind}",
            self.thing_id,
            action,
            parse_pointer(path),
            value,
            revision,
            ts(revision),
        )
        doc = apply_event(previous.doc if previous else None, event)
        created = ts(revision) if previous is None or previous.doc is None else previous.created
        state = EntityState(self.thing_id, revision, doc, created, ts(revision))
        await self.store.commit(
            [EntityWrite("things", previous.revision if previous else 0, state, event.to_json())]
        )
        self.states.append(state)


async def test_keeps_the_last_n_revisions_and_a_snapshot(open_store: Any) -> None:
    store: Store = await open_store(3)
    thing = Thing(store, "org.test:t")
    await thing.change("created", "/", {"thingId": "org.test:t", "attributes": {"n": 1}})
    for n in range(2, 7):
        await thing.change("modified", "/attributes/n", n)
    journal = await store.journal("things", "org.test:t")
    assert [e["revision"] for e in journal] == [4, 5, 6]
    snapshot = journal[0]
    assert snapshot["snapshot"] is True
    assert (snapshot["action"], snapshot["path"], snapshot["timestamp"]) == ("created", "/", ts(4))
    assert snapshot["value"] == thing.states[3].doc
    assert snapshot["created"] == ts(1)  # the creation's time, not the snapshot's
    assert journal[1:] == [
        {"type": "things.events:thingModified", "thingId": "org.test:t", "action": "modified",
         "path": "/attributes/n", "revision": r, "timestamp": ts(r), "value": r}
        for r in (5, 6)
    ]  # fmt: skip
    assert replay("things", "org.test:t", journal) == thing.states[3:]


async def test_a_tombstone_snapshot_and_recreation(open_store: Any) -> None:
    store: Store = await open_store(2)
    thing = Thing(store, "org.test:t")
    await thing.change("created", "/", {"thingId": "org.test:t"})
    await thing.change("deleted", "/")
    await thing.change("created", "/", {"thingId": "org.test:t", "attributes": {"again": True}})
    journal = await store.journal("things", "org.test:t")
    assert [(e["revision"], e["action"], e.get("snapshot", False)) for e in journal] == [
        (2, "deleted", True),
        (3, "created", False),
    ]
    assert replay("things", "org.test:t", journal) == thing.states[1:]
    await thing.change("modified", "/attributes/again", False)
    journal = await store.journal("things", "org.test:t")
    assert replay("things", "org.test:t", journal) == thing.states[2:]
    assert journal[0]["created"] == ts(3)


async def test_retention_of_one_keeps_the_present_only(open_store: Any) -> None:
    store: Store = await open_store(1)
    thing = Thing(store, "org.test:t")
    await thing.change("created", "/", {"thingId": "org.test:t"})
    assert [e["revision"] for e in await store.journal("things", "org.test:t")] == [1]
    await thing.change("modified", "/attributes", {"a": 1})
    await thing.change("merged", "/attributes", {"b": 2})
    journal = await store.journal("things", "org.test:t")
    assert len(journal) == 1 and journal[0]["snapshot"] is True
    assert replay("things", "org.test:t", journal) == thing.states[-1:]


async def test_unbounded_by_default(open_store: Any) -> None:
    store: Store = await open_store(0)
    thing = Thing(store, "org.test:t")
    await thing.change("created", "/", {"thingId": "org.test:t"})
    for n in range(5):
        await thing.change("modified", "/attributes/n", n)
    assert [e["revision"] for e in await store.journal("things", "org.test:t")] == list(range(1, 7))


async def test_every_entity_of_a_multi_write_commit_is_pruned(open_store: Any) -> None:
    store: Store = await open_store(1)
    policy = {"policyId": "org.test:p", "entries": {}}
    for revision in (1, 2, 3):
        doc = {**policy, "imports": {}} if revision == 3 else policy
        p_state = EntityState("org.test:p", revision, doc, ts(1), ts(revision))
        t_state = EntityState(
            "org.test:t", revision, {"thingId": "org.test:t", "n": revision}, ts(1), ts(revision)
        )
        action = "created" if revision == 1 else "modified"
        verb = "Created" if revision == 1 else "Modified"
        t_event = {
            "type": f"things.events:thing{verb}", "thingId": "org.test:t", "action": action, "path": "/",
            "revision": revision, "timestamp": ts(revision), "value": t_state.doc,
        }  # fmt: skip
        p_event = policy_event("org.test:p", action, doc, revision, ts(revision))
        await store.commit(
            [
                EntityWrite("things", revision - 1, t_state, t_event),
                EntityWrite("policies", revision - 1, p_state, p_event),
            ]
        )
    for collection, entity_id in (("things", "org.test:t"), ("policies", "org.test:p")):
        journal = await store.journal(collection, entity_id)  # type: ignore[arg-type]
        assert [(e["revision"], e["snapshot"]) for e in journal] == [(3, True)]
        state = await store.get(collection, entity_id)  # type: ignore[arg-type]
        assert replay(collection, entity_id, journal) == [state]  # type: ignore[arg-type]


def test_a_negative_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="journal_retention"):
        SqliteStore("/tmp/never-opened.sqlite3", journal_retention=-1)
    with pytest.raises(ValueError, match="journal_retention"):
        MongoStore("mongodb://127.0.0.1:1/", "x", journal_retention=-1)
