"""``Dispatcher.handle_many``: a batch of modifications (a connection's Kafka fetch) gives each command the
outcome the one-command path would have given it, keeps each Thing's order, publishes every event in order,
and survives another writer (a second dispatcher on the same store, as a second process) changing a Thing
between the batch's read and its commit. On both backends."""

from __future__ import annotations

from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.events import ThingChange
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import DittoError
from ditto_compat.persistence.ports import Store
from ditto_compat.service.dispatcher import Dispatcher

ALICE = AuthContext(("nginx:alice",))
MALLORY = AuthContext(("nginx:mallory",))


def prop(thing: str, value: object) -> ThingCommand:
    return ThingCommand("modify", thing, ("features", "f", "properties", "p"), value)


async def test_a_batch_answers_each_command_as_one_by_one_would(store: Store) -> None:
    dispatcher = Dispatcher(store)
    events: list[ThingChange] = []
    dispatcher.subscribe(events.append)
    for name in ("a", "b"):
        await dispatcher.handle(
            ThingCommand("create", f"org.batch:{name}", (), {"features": {"f": {}}}), ALICE
        )
    events.clear()
    results = await dispatcher.handle_many(
        [
            (prop("org.batch:a", 1), ALICE),
            (prop("org.batch:b", 10), ALICE),
            (prop("org.batch:a", 2), MALLORY),  # refused by the policy: the next command goes on
            (prop("org.batch:a", 3), ALICE),
            (ThingCommand("create", "org.batch:c", (), {"attributes": {"x": 1}}), ALICE),
            (prop("org.batch:missing", 1), ALICE),  # no such Thing
            (ThingCommand("delete", "org.batch:b"), ALICE),
        ]
    )
    assert [type(r) is Outcome for r in results] == [True, True, False, True, True, False, True]
    assert isinstance(results[2], DittoError) and results[2].status == 403
    assert isinstance(results[5], DittoError) and results[5].status == 404
    a = await store.get("things", "org.batch:a")
    assert a is not None and a.revision == 3 and a.doc is not None
    assert a.doc["features"]["f"]["properties"]["p"] == 3
    b = await store.get("things", "org.batch:b")
    assert b is not None and b.doc is None  # modified, then deleted, in order
    c = await store.get("things", "org.batch:c")
    assert c is not None and c.revision == 1 and await store.get("policies", "org.batch:c") is not None
    # every accepted command has its event, each Thing's in revision order
    by_thing: dict[str, list[int]] = {}
    for change in events:
        by_thing.setdefault(change.event.thing_id, []).append(change.event.revision)
    assert by_thing == {"org.batch:a": [2, 3], "org.batch:b": [2, 3], "org.batch:c": [1]}
    assert [e["revision"] for e in await store.journal("things", "org.batch:a")] == [1, 2, 3]


async def test_a_thing_changed_by_another_writer_is_decided_again(store: Store) -> None:
    first, second = Dispatcher(store), Dispatcher(store)
    await first.handle(ThingCommand("create", "org.batch:t", (), {"attributes": {"n": 0}}), ALICE)
    await first.handle(ThingCommand("modify", "org.batch:t", ("attributes", "n"), 1), ALICE)  # cached rev 2
    await second.handle(ThingCommand("modify", "org.batch:t", ("attributes", "m"), 7), ALICE)  # rev 3
    results = await first.handle_many(
        [
            (ThingCommand("modify", "org.batch:t", ("attributes", "n"), 2), ALICE),
            (ThingCommand("modify", "org.batch:t", ("attributes", "n"), 3), ALICE),
        ]
    )
    assert all(isinstance(r, Outcome) for r in results)
    state = await store.get("things", "org.batch:t")
    assert state is not None and state.revision == 5
    assert state.doc is not None and state.doc["attributes"] == {"n": 3, "m": 7}  # nothing lost
