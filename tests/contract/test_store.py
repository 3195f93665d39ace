"""The storage port's contract (``ditto_compat.persistence.ports.Store``), run against every backend."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from ditto_compat.domain.entity import EntityState
from ditto_compat.persistence.ports import Collection, EntityWrite, RevisionConflict, Store, StoreUnavailable

T0 = "2024-05-01T10:00:00.000Z"


def state(entity_id: str, revision: int, doc: dict[str, Any] | None, modified: str = T0) -> EntityState:
    return EntityState(entity_id=entity_id, revision=revision, doc=doc, created=T0, modified=modified)


def event(entity_id: str, revision: int, kind: str = "modified") -> dict[str, Any]:
    return {"type": f"things.events:thing{kind.capitalize()}", "thingId": entity_id, "revision": revision}


def write(
    entity_id: str,
    expected: int,
    revision: int,
    doc: dict[str, Any] | None,
    collection: Collection = "things",
) -> EntityWrite:
    return EntityWrite(
        collection=collection,
        expected_revision=expected,
        state=state(entity_id, revision, doc),
        event=event(entity_id, revision),
    )


async def create(
    store: Store, entity_id: str, doc: dict[str, Any], collection: Collection = "things"
) -> None:
    await store.commit([write(entity_id, 0, 1, doc, collection)])


def revisions(entries: list[dict[str, Any]]) -> list[int]:
    return [e["revision"] for e in entries]


# -- single entity ---------------------------------------------------------------------------------------


async def test_get_on_missing(store: Store) -> None:
    assert await store.get("things", "org.test:missing") is None
    assert await store.get_many("things", ["org.test:missing"]) == {}
    assert await store.journal("things", "org.test:missing") == []
    assert await store.list_page("things", after=None, limit=10) == []


async def test_create_then_get(store: Store) -> None:
    doc = {"thingId": "org.test:a", "attributes": {"x": 1}}
    await store.commit([write("org.test:a", 0, 1, doc)])

    assert await store.get("things", "org.test:a") == state("org.test:a", 1, doc)
    assert await store.journal("things", "org.test:a") == [event("org.test:a", 1)]
    # The collections are separate: the same id is not a policy.
    assert await store.get("policies", "org.test:a") is None


async def test_update_with_the_right_revision(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    await store.commit([write("org.test:a", 1, 2, {"v": 2})])

    got = await store.get("things", "org.test:a")
    assert got == state("org.test:a", 2, {"v": 2})
    assert revisions(await store.journal("things", "org.test:a")) == [1, 2]


async def test_a_revision_may_jump(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    await store.commit([write("org.test:a", 1, 5, {"v": 5})])

    assert (await store.get("things", "org.test:a")) == state("org.test:a", 5, {"v": 5})
    assert revisions(await store.journal("things", "org.test:a")) == [1, 5]


@pytest.mark.parametrize("expected", [0, 1, 3, 99])
async def test_cas_conflict_on_a_wrong_revision_writes_nothing(store: Store, expected: int) -> None:
    await create(store, "org.test:a", {"v": 1})
    await store.commit([write("org.test:a", 1, 2, {"v": 2})])

    with pytest.raises(RevisionConflict):
        await store.commit([write("org.test:a", expected, expected + 1, {"v": "lost"})])

    assert await store.get("things", "org.test:a") == state("org.test:a", 2, {"v": 2})
    assert revisions(await store.journal("things", "org.test:a")) == [1, 2]


async def test_update_of_a_missing_entity_conflicts(store: Store) -> None:
    with pytest.raises(RevisionConflict):
        await store.commit([write("org.test:ghost", 1, 2, {"v": 2})])
    assert await store.get("things", "org.test:ghost") is None
    assert await store.journal("things", "org.test:ghost") == []


async def test_tombstone_delete_then_recreate_continues_revisions(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    await store.commit([write("org.test:a", 1, 2, {"v": 2})])
    await store.commit([write("org.test:a", 2, 3, None)])

    tombstone = await store.get("things", "org.test:a")
    assert tombstone == state("org.test:a", 3, None)
    assert tombstone is not None and not tombstone.exists
    assert await store.get_many("things", ["org.test:a"]) == {}
    assert await store.list_page("things", after=None, limit=10) == []

    # A create over a tombstone is a CAS on the tombstone's revision, not on 0.
    with pytest.raises(RevisionConflict):
        await store.commit([write("org.test:a", 0, 1, {"v": "again"})])
    await store.commit([write("org.test:a", 3, 4, {"v": "again"})])

    assert await store.get("things", "org.test:a") == state("org.test:a", 4, {"v": "again"})
    assert revisions(await store.journal("things", "org.test:a")) == [1, 2, 3, 4]
    assert [s.entity_id for s in await store.list_page("things", after=None, limit=10)] == ["org.test:a"]


async def test_a_revision_that_does_not_grow_is_a_programming_error(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    with pytest.raises(ValueError):
        await store.commit([write("org.test:a", 1, 1, {"v": 2})])
    assert await store.get("things", "org.test:a") == state("org.test:a", 1, {"v": 1})


async def test_an_empty_commit_is_a_no_op(store: Store) -> None:
    await store.commit([])
    assert await store.list_page("things", after=None, limit=10) == []


# -- atomicity of one commit -----------------------------------------------------------------------------


async def test_multi_write_commit_applies_all(store: Store) -> None:
    await store.commit(
        [
            write("org.test:t", 0, 1, {"policyId": "org.test:p"}, "things"),
            write("org.test:p", 0, 1, {"entries": {}}, "policies"),
        ]
    )
    assert (await store.get("things", "org.test:t")) == state("org.test:t", 1, {"policyId": "org.test:p"})
    assert (await store.get("policies", "org.test:p")) == state("org.test:p", 1, {"entries": {}})
    assert revisions(await store.journal("policies", "org.test:p")) == [1]


async def test_multi_write_commit_is_all_or_nothing_on_create(store: Store) -> None:
    await create(store, "org.test:p", {"entries": {}}, "policies")

    with pytest.raises(RevisionConflict):
        await store.commit(
            [
                write("org.test:t", 0, 1, {"policyId": "org.test:p"}, "things"),
                write("org.test:p", 0, 1, {"entries": {"new": {}}}, "policies"),  # exists already
            ]
        )

    assert await store.get("things", "org.test:t") is None
    assert await store.journal("things", "org.test:t") == []
    assert (await store.get("policies", "org.test:p")) == state("org.test:p", 1, {"entries": {}})
    assert revisions(await store.journal("policies", "org.test:p")) == [1]


async def test_multi_write_commit_is_all_or_nothing_on_update(store: Store) -> None:
    await create(store, "org.test:t", {"v": 1}, "things")
    await create(store, "org.test:p", {"v": 1}, "policies")

    with pytest.raises(RevisionConflict):
        await store.commit(
            [
                write("org.test:t", 1, 2, {"v": 2}, "things"),
                write("org.test:p", 7, 8, {"v": 8}, "policies"),  # stale
            ]
        )

    assert (await store.get("things", "org.test:t")) == state("org.test:t", 1, {"v": 1})
    assert revisions(await store.journal("things", "org.test:t")) == [1]
    assert (await store.get("policies", "org.test:p")) == state("org.test:p", 1, {"v": 1})


async def test_two_writes_of_one_entity_in_one_commit(store: Store) -> None:
    await store.commit([write("org.test:a", 0, 1, {"v": 1}), write("org.test:a", 1, 2, {"v": 2})])
    assert (await store.get("things", "org.test:a")) == state("org.test:a", 2, {"v": 2})
    assert revisions(await store.journal("things", "org.test:a")) == [1, 2]


async def test_a_conflict_fails_only_its_own_commit(store: Store) -> None:
    await create(store, "org.test:taken", {"v": 1})
    ids = [f"org.test:c{i:02d}" for i in range(10)]

    results = await asyncio.gather(
        *(create(store, i, {"id": i}) for i in ids),
        store.commit([write("org.test:taken", 0, 1, {"v": "lost"})]),
        return_exceptions=True,
    )

    assert results[:-1] == [None] * len(ids)
    assert isinstance(results[-1], RevisionConflict)
    assert sorted((await store.get_many("things", ids)).keys()) == ids
    assert (await store.get("things", "org.test:taken")) == state("org.test:taken", 1, {"v": 1})


# -- journal ---------------------------------------------------------------------------------------------


async def test_journal_ranges(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    for rev in range(2, 6):
        await store.commit([write("org.test:a", rev - 1, rev, {"v": rev})])
    await create(store, "org.test:b", {"v": 1})
    await create(store, "org.test:a", {"policy": True}, "policies")

    async def revs(**bounds: int | None) -> list[int]:
        return revisions(await store.journal("things", "org.test:a", **bounds))  # type: ignore[arg-type]

    assert await revs() == [1, 2, 3, 4, 5]
    assert await revs(from_revision=3) == [3, 4, 5]
    assert await revs(to_revision=2) == [1, 2]
    assert await revs(from_revision=2, to_revision=4) == [2, 3, 4]
    assert await revs(from_revision=4, to_revision=4) == [4]
    assert await revs(from_revision=4, to_revision=2) == []
    assert await revs(from_revision=6) == []
    assert await revs(from_revision=0, to_revision=99) == [1, 2, 3, 4, 5]
    assert await store.journal("things", "org.test:a", from_revision=5) == [event("org.test:a", 5)]
    assert revisions(await store.journal("things", "org.test:b")) == [1]
    assert revisions(await store.journal("policies", "org.test:a")) == [1]


# -- get_many and list_page ------------------------------------------------------------------------------


async def test_get_many_ignores_tombstones_and_missing(store: Store) -> None:
    await create(store, "org.test:a", {"v": "a"})
    await create(store, "org.test:b", {"v": "b"})
    await create(store, "org.test:dead", {"v": "dead"})
    await store.commit([write("org.test:dead", 1, 2, None)])

    got = await store.get_many(
        "things", ["org.test:b", "org.test:missing", "org.test:dead", "org.test:a", "org.test:b"]
    )

    assert got == {
        "org.test:b": state("org.test:b", 1, {"v": "b"}),
        "org.test:a": state("org.test:a", 1, {"v": "a"}),
    }
    assert await store.get_many("things", []) == {}
    assert await store.get_many("policies", ["org.test:a"]) == {}


async def test_get_many_with_many_ids(store: Store) -> None:
    ids = [f"org.test:m{i:04d}" for i in range(1200)]
    await asyncio.gather(*(create(store, i, {"i": n}) for n, i in enumerate(ids[::2])))
    got = await store.get_many("things", ids)
    assert list(got) == ids[::2]


async def test_list_page_ordering_after_limit_and_namespaces(store: Store) -> None:
    ids = ["b.ns:2", "a.ns:1", "c.ns:1", "a.ns:3", "b.ns:1", "a.ns:2", "a.nsx:1", "a:9"]
    for i in ids:
        await create(store, i, {"id": i})
    await store.commit([write("b.ns:2", 1, 2, None)])  # tombstone: never listed
    live = sorted(set(ids) - {"b.ns:2"})

    async def page(**kw: Any) -> list[str]:
        return [s.entity_id for s in await store.list_page("things", **kw)]

    assert await page(after=None, limit=100) == live
    assert await page(after=None, limit=3) == live[:3]
    assert await page(after="a.ns:2", limit=3) == ["a.ns:3", "a.nsx:1", "a:9"]  # "." < ":"
    assert await page(after="a.ns:25", limit=100) == live[live.index("a.ns:3") :]
    assert await page(after="zzz", limit=100) == []
    assert await page(after=None, limit=0) == []
    assert await page(after=None, limit=100, namespaces=["a.ns"]) == ["a.ns:1", "a.ns:2", "a.ns:3"]
    assert await page(after="a.ns:1", limit=1, namespaces=["a.ns"]) == ["a.ns:2"]
    assert await page(after=None, limit=100, namespaces=["c.ns", "b.ns"]) == ["b.ns:1", "c.ns:1"]
    assert await page(after=None, limit=100, namespaces=["a"]) == ["a:9"]
    assert await page(after=None, limit=100, namespaces=["nowhere"]) == []
    assert await page(after=None, limit=100, namespaces=[]) == []

    # Paging through everything with the last id of each page visits every live entity once, in order.
    seen: list[str] = []
    after: str | None = None
    while chunk := await page(after=after, limit=2):
        seen += chunk
        after = chunk[-1]
    assert seen == live

    first = (await store.list_page("things", after=None, limit=1))[0]
    assert first == state("a.ns:1", 1, {"id": "a.ns:1"})


# -- JSON fidelity ---------------------------------------------------------------------------------------

AWKWARD_DOC: dict[str, Any] = {
    "thingId": "org.test:awkward",
    "attributes": {
        "a.b": 1,
        "$x": {"$ref": "r", "$id": 2, "$set": [{"$inc": True, "x.y.z": None}]},
        "~0": "tilde zero",
        "~1.$~2": "mixed",
        "end.": ".",
        "ünïcødé €": "✓ 𝄞 日本語 \u0000 \t\n",
        "": "empty key",
        "nested": [[], {}, [1, [2.5, {"deep.er": -0.0}]]],
        "numbers": [0, -1, 2**31, 2**53 + 1, -(2**63), 2**63 - 1, 1.5e300, -2.25e-300],
        "flags": [True, False, None],
    },
    "features": {"f.1": {"properties": {"$value": {"z": 1, "a": 2, "m": 3}}}},
}


async def test_awkward_keys_and_values_round_trip_exactly(store: Store) -> None:
    awkward_event = {"type": "things.events:thingCreated", "revision": 1, "thing": AWKWARD_DOC, "$k.e.y": "~"}
    await store.commit(
        [
            EntityWrite(
                collection="things",
                expected_revision=0,
                state=state("org.test:awkward", 1, AWKWARD_DOC),
                event=awkward_event,
            )
        ]
    )

    stored = await store.get("things", "org.test:awkward")
    assert stored is not None and stored.doc == AWKWARD_DOC
    # Same bytes means the same key order as well, at every depth.
    assert orjson.dumps(stored.doc) == orjson.dumps(AWKWARD_DOC)
    (journaled,) = await store.journal("things", "org.test:awkward")
    assert orjson.dumps(journaled) == orjson.dumps(awkward_event)
    listed = await store.list_page("things", after=None, limit=1)
    assert orjson.dumps(listed[0].doc) == orjson.dumps(AWKWARD_DOC)
    many = await store.get_many("things", ["org.test:awkward"])
    assert orjson.dumps(many["org.test:awkward"].doc) == orjson.dumps(AWKWARD_DOC)


async def test_unicode_entity_ids_and_timestamps(store: Store) -> None:
    entity = EntityState(
        "org.test:ü-€", 1, {"k": "v"}, created="2024-01-01T00:00:00Z", modified="2025-02-03T04:05:06Z"
    )
    await store.commit([EntityWrite("things", 0, entity, {"revision": 1})])
    assert await store.get("things", "org.test:ü-€") == entity


# -- concurrency -----------------------------------------------------------------------------------------


async def test_concurrent_read_modify_cas_increments(store: Store) -> None:
    """20 writers x 10 increments of one entity, each a read-modify-CAS with retry on conflict."""
    entity_id = "org.test:counter"
    writers, increments = 20, 10

    async def increment_many() -> int:
        conflicts = 0
        for _ in range(increments):
            while True:
                current = await store.get("things", entity_id)
                revision = 0 if current is None else current.revision
                count = 0 if current is None or current.doc is None else current.doc["count"]
                try:
                    await store.commit([write(entity_id, revision, revision + 1, {"count": count + 1})])
                    break
                except RevisionConflict:
                    conflicts += 1
        return conflicts

    conflicts = await asyncio.gather(*(increment_many() for _ in range(writers)))

    final = await store.get("things", entity_id)
    assert final is not None
    assert final.revision == writers * increments
    assert final.doc == {"count": writers * increments}
    assert revisions(await store.journal("things", entity_id)) == list(range(1, writers * increments + 1))
    assert sum(conflicts) > 0  # the test did exercise contention


# -- lifecycle -------------------------------------------------------------------------------------------


async def test_health_is_up(store: Store) -> None:
    health = await store.health()
    assert health["status"] == "UP"
    assert health["backend"] == store.name


async def test_closed_store_is_unavailable_and_down(store: Store) -> None:
    await create(store, "org.test:a", {"v": 1})
    await store.close()

    assert (await store.health())["status"] == "DOWN"
    with pytest.raises(StoreUnavailable):
        await store.get("things", "org.test:a")
    with pytest.raises(StoreUnavailable):
        await store.commit([write("org.test:a", 1, 2, {"v": 2})])
    await store.close()  # closing twice is harmless


# -- commit_each: independent groups in one round trip ---------------------------------------------------


async def test_commit_each_applies_every_group_and_isolates_a_conflict(store: Store) -> None:
    await create(store, "org.test:a", {"v": 0})
    await create(store, "org.test:b", {"v": 0})
    outcomes = await store.commit_each(
        [
            # two revisions of one Thing in one group, chained
            [write("org.test:a", 1, 2, {"v": 1}), write("org.test:a", 2, 3, {"v": 2})],
            # a stale expected revision: only this group is refused
            [write("org.test:b", 5, 6, {"v": 9})],
            [write("org.test:c", 0, 1, {"v": 1})],
            [],
        ]
    )
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None
    assert isinstance(outcomes[1], RevisionConflict)
    a, b, c = [await store.get("things", f"org.test:{x}") for x in "abc"]
    assert a is not None and (a.revision, a.doc) == (3, {"v": 2})
    assert b is not None and (b.revision, b.doc) == (1, {"v": 0})
    assert c is not None and c.revision == 1
    assert revisions(await store.journal("things", "org.test:a")) == [1, 2, 3]
    assert revisions(await store.journal("things", "org.test:b")) == [1]


async def test_commit_each_group_is_atomic(store: Store) -> None:
    await create(store, "org.test:a", {"v": 0})
    # the second write of the group misses: its first write is undone with it
    outcomes = await store.commit_each(
        [[write("org.test:a", 1, 2, {"v": 1}), write("org.test:a", 7, 8, {"v": 2})]]
    )
    assert isinstance(outcomes[0], RevisionConflict)
    a = await store.get("things", "org.test:a")
    assert a is not None and (a.revision, a.doc) == (1, {"v": 0})
    assert revisions(await store.journal("things", "org.test:a")) == [1]


# -- leases: one of several processes does a piece of work ---------------------------------------------------


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(store: Store) -> None:
    assert await store.hold_lease("connection:a", "p1", 30)
    assert await store.hold_lease("connection:a", "p1", 30)  # renewed
    assert await store.hold_lease("connection:b", "p2", 30)  # another lease, another holder
    if store.name == "sqlite":
        # one process owns a SQLite file: whoever asks in it holds every lease
        assert await store.hold_lease("connection:a", "p2", 30)
        return
    assert not await store.hold_lease("connection:a", "p2", 30)
    await store.release_lease("connection:a", "p2")  # not the holder's: no effect
    assert not await store.hold_lease("connection:a", "p2", 30)
    await store.release_lease("connection:a", "p1")
    assert await store.hold_lease("connection:a", "p2", 0.2)
    await asyncio.sleep(0.4)  # expired: the next one takes it
    assert await store.hold_lease("connection:a", "p1", 30)
    assert not await store.hold_lease("connection:a", "p2", 30)
