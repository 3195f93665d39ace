"""The event hub: who sees which event, reduced how, and what happens to a subscriber that cannot keep up."""

from __future__ import annotations

import asyncio
from typing import Any

from ditto_compat.domain.enforcer import Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingChange, ThingEvent
from ditto_compat.domain.policy_resolution import resolve_entries
from ditto_compat.rql.evaluator import compile_query
from ditto_compat.rql.parser import parse_rql
from ditto_compat.service.hub import EventHub, Subscription

THING_ID = "org.hub:sensor-1"
POLICY = {
    "policyId": "org.hub:policy",
    "entries": {
        "OWNER": {
            "subjects": {"nginx:alice": {"type": "t"}},
            "resources": {"thing:/": {"grant": ["READ", "WRITE"], "revoke": []}},
        },
        "READER": {
            "subjects": {"nginx:bob": {"type": "t"}},
            "resources": {
                "thing:/attributes": {"grant": ["READ"], "revoke": []},
                "thing:/attributes/secret": {"grant": [], "revoke": ["READ"]},
            },
        },
    },
}
ENFORCER = Enforcer.compile(resolve_entries(POLICY, {}), namespace="org.hub")


async def enforcer_of(state: EntityState) -> Enforcer | None:
    return ENFORCER if state.doc and state.doc.get("policyId") == POLICY["policyId"] else None


def change(
    revision: int, path: tuple[str, ...], value: Any, doc: dict[str, Any], cid: str = "c"
) -> ThingChange:
    event = ThingEvent(
        "things.events:attributeModified", THING_ID, "modified", path, value, revision, "2026-12-01T00:00:00Z"
    )
    thing = {"thingId": THING_ID, "policyId": POLICY["policyId"], **doc}
    return ThingChange(
        event, EntityState(THING_ID, revision, thing, "t0", "t1"), None, {"correlation-id": cid}
    )


async def started(hub: EventHub) -> EventHub:
    hub.start()
    return hub


async def test_events_are_reduced_to_each_subscribers_view() -> None:
    hub = await started(EventHub(enforcer_of))
    try:
        alice = hub.add(Subscription(("nginx:alice",)))
        bob = hub.add(Subscription(("nginx:bob",)))
        doc = {"attributes": {"a": 1, "secret": "s"}, "features": {"f": {"properties": {"p": 1}}}}
        hub.publish(change(2, ("attributes",), {"a": 1, "secret": "s"}, doc))
        hub.publish(change(3, ("attributes", "secret"), "t", doc))
        hub.publish(change(4, ("features", "f", "properties", "p"), 2, doc))
        await hub.drain()
        assert [alice.pending(), bob.pending()] == [3, 1]
        seen = await bob.next()
        assert seen is not None and seen.value == {"a": 1}
        first = await alice.next()
        assert first is not None and first.value == {"a": 1, "secret": "s"}
    finally:
        await hub.stop()


async def test_filters_see_the_changed_part_with_extra_fields() -> None:
    hub = await started(EventHub(enforcer_of))
    try:
        hot = hub.add(
            Subscription(
                ("nginx:alice",),
                matches=compile_query(parse_rql('and(gt(attributes/x,5),eq(attributes/hall,"h3"))')),
                extra_fields=(("attributes", "hall"),),
            )
        )
        other_ns = hub.add(Subscription(("nginx:alice",), namespaces=frozenset({"org.other"})))
        doc = {"attributes": {"x": 7, "hall": "h3"}}
        hub.publish(change(2, ("attributes", "x"), 3, {"attributes": {"x": 3, "hall": "h3"}}))
        hub.publish(change(3, ("attributes", "x"), 7, doc))
        await hub.drain()
        assert (hot.pending(), other_ns.pending()) == (1, 0)
        delivery = await hot.next()
        assert delivery is not None
        assert (delivery.change.event.revision, delivery.extra) == (3, {"attributes": {"hall": "h3"}})
    finally:
        await hub.stop()


async def test_a_subscriber_that_cannot_keep_up_is_closed_and_its_drops_counted() -> None:
    hub = await started(EventHub(enforcer_of))
    try:
        slow = hub.add(Subscription(("nginx:alice",), queue_size=3))
        fast = hub.add(Subscription(("nginx:alice",), queue_size=100))
        doc = {"attributes": {"x": 0}}
        for revision in range(2, 12):  # ten events; the slow subscriber never reads
            hub.publish(change(revision, ("attributes", "x"), revision, doc))
        await hub.drain()
        assert slow.overflowed
        # the event that found its queue full is counted; the subscription is closed at that point, so later
        # events are no longer its events (its client is told and must resume)
        assert slow.dropped == 1 and hub.dropped == 1
        assert hub.subscribers == 1  # the slow one is gone, the fast one got everything
        assert fast.pending() == 10 and hub.delivered == 13
        received = [await slow.next() for _ in range(3)]
        assert [d.change.event.revision for d in received if d is not None] == [2, 3, 4]
        # after what it holds, the consumer learns that it overflowed
        assert await asyncio.wait_for(slow.next(), 1) is None
    finally:
        await hub.stop()


async def test_an_event_nobody_may_read_reaches_nobody() -> None:
    hub = await started(EventHub(enforcer_of))
    try:
        carol = hub.add(Subscription(("nginx:carol",)))
        bob = hub.add(Subscription(("nginx:bob",)))
        hub.publish(change(2, ("attributes", "secret"), "x", {"attributes": {"secret": "x"}}))
        hub.publish(change(3, ("features",), {"f": {}}, {"features": {"f": {}}}))
        await hub.drain()
        assert (carol.pending(), bob.pending()) == (0, 0)
    finally:
        await hub.stop()


async def test_subscribers_alike_share_one_decision_and_each_gets_the_event() -> None:
    evaluated: list[str] = []
    query = compile_query(parse_rql("gt(attributes/x,5)"))

    def counting(doc: Any) -> bool:
        evaluated.append(str(doc.get("thingId")))
        return query(doc)

    hub = await started(EventHub(enforcer_of))
    try:
        alike = [
            hub.add(Subscription(("nginx:alice",), matches=counting, filter_text="gt(attributes/x,5)"))
            for _ in range(50)
        ]
        hub.publish(change(2, ("attributes", "x"), 9, {"attributes": {"x": 9}}))
        hub.publish(change(3, ("attributes", "x"), 1, {"attributes": {"x": 1}}))
        await hub.drain()
        assert [s.pending() for s in alike] == [1] * 50  # only the event that matches, for each of them
        assert len(evaluated) == 2  # the filter ran once per event, not once per subscriber
        hub.remove(alike[0])  # leaving the audience (its first member) keeps the others served
        hub.publish(change(4, ("attributes", "x"), 7, {"attributes": {"x": 7}}))
        await hub.drain()
        assert alike[0].pending() == 1 and [s.pending() for s in alike[1:]] == [2] * 49
    finally:
        await hub.stop()


async def test_a_sink_that_refuses_overflows_its_subscription_and_ends_it() -> None:
    taken: list[int] = []
    ended: list[bool] = []

    def sink(delivery: Any) -> bool:
        if len(taken) == 2:
            return False  # the consumer's buffer is full
        taken.append(delivery.change.event.revision)
        return True

    hub = await started(EventHub(enforcer_of))
    try:
        subscription = Subscription(("nginx:alice",), sink=sink)
        subscription.on_end = lambda: ended.append(subscription.overflowed)
        hub.add(subscription)
        for revision in range(2, 6):
            hub.publish(change(revision, ("attributes", "x"), revision, {"attributes": {"x": revision}}))
        await hub.drain()
        assert taken == [2, 3] and ended == [True]
        assert subscription.dropped == 1 and hub.dropped == 1 and hub.subscribers == 0
    finally:
        await hub.stop()
