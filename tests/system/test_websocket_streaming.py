"""The reactive-streams protocols over ``/ws/2`` against a real server process: search
(``protocol-specification-things-search``) and persisted events (``protocol-specification-streaming-subscription``,
``basic-history``), as Ditto's ``StreamThingsIT`` and ``StreamPersistedEventsIT`` drive them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.live_server import LiveServer
from tests.system.realtime import ALICE, BOB, nothing_arrives, receive, socket, subscribe

SEARCH = "_/_/things/twin/search"

# alice owns everything; bob may READ the attributes except the secret ones
SHARED_POLICY = {
    "entries": {
        "OWNER": {
            "subjects": {"nginx:alice": {"type": "t"}},
            "resources": {
                "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
            },
        },
        "READER": {
            "subjects": {"nginx:bob": {"type": "t"}},
            "resources": {
                "thing:/attributes": {"grant": ["READ"], "revoke": []},
                "thing:/attributes/secret": {"grant": [], "revoke": ["READ"]},
            },
        },
    }
}


def new_namespace() -> str:
    return f"org.stream{uuid.uuid4().hex[:8]}"


def put(server: LiveServer, path: str, body: Any, headers: dict[str, str] = ALICE) -> httpx.Response:
    return httpx.put(f"{server.base_url}/api/2/{path}", json=body, headers=headers, timeout=10)


def http_search(server: LiveServer, params: dict[str, str], headers: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.base_url}/api/2/search/things", params=params, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def send(
    ws: ClientConnection, topic: str, value: Any = None, headers: dict[str, Any] | None = None, **extra: Any
) -> None:
    message: dict[str, Any] = {"topic": topic, "headers": headers or {}, "path": "/", **extra}
    if value is not None:
        message["value"] = value
    await ws.send(json.dumps(message))


async def created_id(ws: ClientConnection, topic: str) -> str:
    frame = await receive(ws)
    assert frame["topic"] == f"{topic}/created", frame
    subscription_id: str = frame["value"]["subscriptionId"]
    return subscription_id


async def failure(ws: ClientConnection, topic: str, subscription_id: str) -> dict[str, Any]:
    frame = await receive(ws)
    assert frame["topic"] == f"{topic}/failed", frame
    assert frame["value"]["subscriptionId"] == subscription_id
    error: dict[str, Any] = frame["value"]["error"]
    return error


async def drain(ws: ClientConnection, topic: str) -> list[dict[str, Any]]:
    """The ``next`` values up to ``complete`` (which must come)."""
    values: list[dict[str, Any]] = []
    while True:
        frame = await receive(ws)
        if frame["topic"] == f"{topic}/complete":
            return values
        assert frame["topic"] == f"{topic}/next", frame
        values.append(frame["value"])


# ---------------------------------------------------------------------------------------------------- search


async def test_search_pages_by_demand_as_http_search_answers(server: LiveServer) -> None:
    namespace = new_namespace()
    for i in range(5):
        body = {"_policy": SHARED_POLICY, "attributes": {"n": i, "public": f"p{i}", "secret": f"s{i}"}}
        assert put(server, f"things/{namespace}:t{i}", body).status_code == 201
    query = {
        "filter": "exists(attributes/n)",
        "options": "size(2),sort(-attributes/n)",
        "namespaces": [namespace],
    }
    async with socket(server, ALICE) as alice, socket(server, BOB) as bob:
        await send(
            alice, f"{SEARCH}/subscribe", query, {"correlation-id": "s-1"}, fields="thingId,attributes"
        )
        created = await receive(alice)
        assert created["topic"] == f"{SEARCH}/created"
        assert created["headers"]["correlation-id"] == "s-1"
        subscription_id = created["value"]["subscriptionId"]
        await nothing_arrives(alice)  # nothing before the first request
        await send(
            alice,
            f"{SEARCH}/request",
            {"subscriptionId": subscription_id, "demand": 1},
            {"correlation-id": "r-1"},
        )
        first = await receive(alice)
        assert first["topic"] == f"{SEARCH}/next"
        assert first["headers"]["correlation-id"] == "r-1"  # Ditto answers with the request's headers
        await nothing_arrives(alice)  # one page per unit of demand
        await send(alice, f"{SEARCH}/request", {"subscriptionId": subscription_id, "demand": 10})
        rest = await drain(alice, SEARCH)
        pages = [first["value"]["items"], *(v["items"] for v in rest)]
        assert [len(p) for p in pages] == [2, 2, 1]
        expected = http_search(
            server,
            {
                "filter": "exists(attributes/n)",
                "option": "sort(-attributes/n)",
                "namespaces": namespace,
                "fields": "thingId,attributes",
            },
            ALICE,
        )
        assert [item for page in pages for item in page] == expected
        assert expected[0] == {
            "thingId": f"{namespace}:t4",
            "attributes": {"n": 4, "public": "p4", "secret": "s4"},
        }

        # bob sees the READ views HTTP search gives him: no secret, and no filter on what he cannot read
        await send(bob, f"{SEARCH}/subscribe", {"namespaces": [namespace], "options": "sort(+thingId)"})
        bob_id = await created_id(bob, SEARCH)
        await send(bob, f"{SEARCH}/request", {"subscriptionId": bob_id, "demand": 1})
        (page,) = await drain(bob, SEARCH)
        assert page["items"] == http_search(
            server, {"namespaces": namespace, "option": "sort(+thingId)"}, BOB
        )
        assert page["items"][0] == {"thingId": f"{namespace}:t0", "attributes": {"n": 0, "public": "p0"}}
        await send(
            bob, f"{SEARCH}/subscribe", {"filter": "exists(attributes/secret)", "namespaces": [namespace]}
        )
        hidden_id = await created_id(bob, SEARCH)
        await send(bob, f"{SEARCH}/request", {"subscriptionId": hidden_id, "demand": 1})
        assert await drain(bob, SEARCH) == []  # no page at all: complete right away


async def test_search_failures_come_after_the_first_request(server: LiveServer) -> None:
    async with socket(server, ALICE) as ws:
        cases = [
            ({"options": "size=3"}, "thing-search:search.option.invalid"),
            ({"options": "size(300)"}, "thing-search:search.option.invalid"),
            ({"options": "size(5),cursor(abc)"}, "thing-search:search.option.invalid"),
            ({"options": "limit(0,5)"}, "thing-search:search.option.invalid"),
            ({"filter": "exist=attribute/lol"}, "rql.expression.invalid"),
        ]
        for value, code in cases:
            await send(ws, f"{SEARCH}/subscribe", value)
            subscription_id = await created_id(ws, SEARCH)
            await nothing_arrives(ws)
            await send(ws, f"{SEARCH}/request", {"subscriptionId": subscription_id, "demand": 1})
            error = await failure(ws, SEARCH, subscription_id)
            assert (error["error"], error["status"]) == (code, 400), value
            # a failed subscription is over: a further request is refused as cancelled
            await send(ws, f"{SEARCH}/request", {"subscriptionId": subscription_id, "demand": 1})
            assert (await failure(ws, SEARCH, subscription_id))[
                "error"
            ] == "thing-search:subscription.protocol.error"


async def test_search_demand_ids_and_cancel(server: LiveServer) -> None:
    namespace = new_namespace()
    for i in range(3):
        assert put(server, f"things/{namespace}:t{i}", {"attributes": {"n": i}}).status_code == 201
    query = {"namespaces": [namespace], "options": "size(1)"}
    async with socket(server, ALICE) as alice, socket(server, BOB) as bob:
        # a demand <= 0 breaks rule 3.9
        await send(alice, f"{SEARCH}/subscribe", query)
        first = await created_id(alice, SEARCH)
        await send(alice, f"{SEARCH}/request", {"subscriptionId": first, "demand": 0})
        error = await failure(alice, SEARCH, first)
        assert (error["error"], error["status"]) == ("thing-search:subscription.protocol.error", 400)
        assert error["message"].startswith("Rule 3.9")
        # unknown ids, and ids of another session, are not found
        await send(
            alice, f"{SEARCH}/request", {"subscriptionId": "4711", "demand": 1}, {"correlation-id": "u-1"}
        )
        unknown = await receive(alice)
        assert unknown["topic"] == f"{SEARCH}/failed"
        assert unknown["headers"]["correlation-id"] == "u-1"
        assert unknown["value"]["error"]["error"] == "thing-search:subscription.not.found"
        assert unknown["value"]["error"]["status"] == 404
        await send(alice, f"{SEARCH}/subscribe", query)
        second = await created_id(alice, SEARCH)
        assert second != first
        await send(bob, f"{SEARCH}/request", {"subscriptionId": second, "demand": 1})
        assert (await failure(bob, SEARCH, second))["error"] == "thing-search:subscription.not.found"
        await send(bob, f"{SEARCH}/cancel", {"subscriptionId": second})
        assert (await failure(bob, SEARCH, second))["error"] == "thing-search:subscription.not.found"
        # bob's cancel did not touch alice's subscription
        await send(alice, f"{SEARCH}/request", {"subscriptionId": second, "demand": 1})
        page = await receive(alice)
        assert page["topic"] == f"{SEARCH}/next"
        assert page["value"] == {
            "subscriptionId": second,
            "items": http_search(server, {"namespaces": namespace, "option": "size(1)"}, ALICE),
        }
        assert page["value"]["items"][0]["thingId"] == f"{namespace}:t0"
        # cancelled: nothing more comes, and a request is refused as cancelled
        await send(alice, f"{SEARCH}/cancel", {"subscriptionId": second})
        await nothing_arrives(alice)
        await send(alice, f"{SEARCH}/request", {"subscriptionId": second, "demand": 5})
        error = await failure(alice, SEARCH, second)
        assert error["error"] == "thing-search:subscription.protocol.error"
        assert "cancelled" in error["message"]


async def test_malformed_subscription_commands_are_protocol_errors(server: LiveServer) -> None:
    async with socket(server, ALICE) as ws:
        await send(
            ws, f"{SEARCH}/request", {"subscriptionId": "0", "demand": "many"}, {"correlation-id": "m-1"}
        )
        error = await receive(ws)
        assert error["topic"] == "_/_/things/twin/errors"
        assert (error["status"], error["value"]["error"]) == (400, "json.invalid")
        assert error["headers"]["correlation-id"] == "m-1"
        await send(ws, f"{SEARCH}/cancel", {"demand": 1})
        error = await receive(ws)
        assert (error["status"], error["value"]["error"]) == (400, "json.field.missing")
        await send(ws, f"{SEARCH}/subscribe", {"namespaces": "org.a"})
        assert (await receive(ws))["value"]["error"] == "json.invalid"
        await send(ws, f"{SEARCH}/next", {"subscriptionId": "0", "items": []})  # an event is not a command
        assert (await receive(ws))["value"]["error"] == "things:protocol.message.unsupported"
        await send(ws, "_/_/things/live/search/subscribe", {})  # search is twin only
        assert (await receive(ws))["value"]["error"] == "things.protocol.adapter:unknown.topicpath"
        await nothing_arrives(ws)


# ---------------------------------------------------------------------------------------------------- history


async def persisted_events(
    ws: ClientConnection, thing_id: str, value: dict[str, Any], demand: int = 1000
) -> list[dict[str, Any]]:
    """Subscribe, ask for ``demand`` and return the items up to ``complete``."""
    namespace, name = thing_id.split(":")
    topic = f"{namespace}/{name}/things/twin/streaming"
    await send(ws, f"{topic}/subscribeForPersistedEvents", value)
    subscription_id = await created_id(ws, topic)
    await send(ws, f"{topic}/request", {"subscriptionId": subscription_id, "demand": demand})
    return [v["item"] for v in await drain(ws, topic)]


async def test_persisted_events_by_revision_with_demand(server: LiveServer) -> None:
    thing_id = f"{new_namespace()}:counter"
    namespace, name = thing_id.split(":")
    topic = f"{namespace}/{name}/things/twin/streaming"
    assert put(server, f"things/{thing_id}", {"attributes": {"counter": 0}}).status_code == 201
    for i in range(1, 6):
        assert put(server, f"things/{thing_id}/attributes/counter", i).status_code == 204
    async with socket(server, ALICE) as ws:
        await send(
            ws,
            f"{topic}/subscribeForPersistedEvents",
            {"fromHistoricalRevision": 0},
            {"correlation-id": "h-1"},
        )
        created = await receive(ws)
        assert (created["topic"], created["headers"]["correlation-id"]) == (f"{topic}/created", "h-1")
        subscription_id = created["value"]["subscriptionId"]
        await nothing_arrives(ws)
        await send(ws, f"{topic}/request", {"subscriptionId": subscription_id, "demand": 2})
        first = [await receive(ws), await receive(ws)]
        await nothing_arrives(ws)  # no more than the demand, no complete yet
        assert [f["topic"] for f in first] == [f"{topic}/next"] * 2
        created_event, modified = (f["value"]["item"] for f in first)
        assert created_event["topic"] == f"{namespace}/{name}/things/twin/events/created"
        assert (created_event["path"], created_event["revision"]) == ("/", 1)
        assert created_event["value"]["attributes"] == {"counter": 0}
        assert created_event["timestamp"]
        assert modified["topic"] == f"{namespace}/{name}/things/twin/events/modified"
        assert (modified["path"], modified["value"], modified["revision"]) == ("/attributes/counter", 1, 2)
        await send(ws, f"{topic}/request", {"subscriptionId": subscription_id, "demand": 4})
        rest = await drain(ws, topic)  # complete follows the last event without further demand
        assert [(v["item"]["revision"], v["item"]["value"]) for v in rest] == [(3, 2), (4, 3), (5, 4), (6, 5)]

    async with socket(server, ALICE) as ws:
        # a range with a filter (Ditto's "we don't like twelves"), and relative revisions
        items = await persisted_events(
            ws,
            thing_id,
            {"fromHistoricalRevision": 2, "toHistoricalRevision": 5, "filter": "ne(attributes/counter,3)"},
        )
        assert [i["revision"] for i in items] == [2, 3, 5]
        items = await persisted_events(
            ws, thing_id, {"fromHistoricalRevision": -2, "toHistoricalRevision": -1}
        )
        assert [i["revision"] for i in items] == [4, 5]
        everything = await persisted_events(ws, thing_id, {})
        assert [i["revision"] for i in everything] == [1, 2, 3, 4, 5, 6]
        # by timestamp: the events whose timestamps lie within the bounds
        lower, upper = everything[2]["timestamp"], everything[3]["timestamp"]
        items = await persisted_events(
            ws, thing_id, {"fromHistoricalTimestamp": lower, "toHistoricalTimestamp": upper}
        )
        expected = [i["revision"] for i in everything if lower <= i["timestamp"] <= upper]
        assert [i["revision"] for i in items] == expected
        assert 3 in expected and 4 in expected


async def test_persisted_events_are_the_live_events_a_reader_saw(server: LiveServer) -> None:
    thing_id = f"{new_namespace()}:shared"
    live: list[dict[str, Any]] = []
    async with socket(server, BOB) as bob_live:
        await subscribe(bob_live)
        body = {"_policy": SHARED_POLICY, "attributes": {"public": 0, "secret": "s0"}, "features": {"f": {}}}
        assert put(server, f"things/{thing_id}", body).status_code == 201
        live.append(await receive(bob_live))
        assert put(server, f"things/{thing_id}/attributes/secret", "s1").status_code == 204  # hidden from bob
        assert put(server, f"things/{thing_id}/attributes/public", 1).status_code == 204
        live.append(await receive(bob_live))
        assert put(server, f"things/{thing_id}/features/f/properties", {"x": 1}).status_code == 201  # hidden
        assert put(server, f"things/{thing_id}/attributes", {"public": 2, "secret": "s2"}).status_code == 204
        live.append(await receive(bob_live))
        await nothing_arrives(bob_live)
    async with socket(server, BOB) as bob:
        items = await persisted_events(bob, thing_id, {})
    assert [i["revision"] for i in items] == [1, 3, 5]
    assert items[0]["value"]["attributes"] == {"public": 0}
    for persisted, seen in zip(items, live, strict=True):
        assert {k: v for k, v in persisted.items() if k != "headers"} == {
            k: v for k, v in seen.items() if k != "headers"
        }
    assert items[2]["value"] == {"public": 2}
    async with socket(server, ALICE) as alice:
        assert [i["revision"] for i in await persisted_events(alice, thing_id, {})] == [1, 2, 3, 4, 5]


async def test_persisted_events_need_read_permission(server: LiveServer) -> None:
    namespace = new_namespace()
    thing_id = f"{namespace}:private"
    assert put(server, f"things/{thing_id}", {"attributes": {"a": 1}}).status_code == 201
    for entity, path in ((thing_id, "things/twin"), (f"{namespace}:missing", "things/twin")):
        ns, name = entity.split(":")
        topic = f"{ns}/{name}/{path}/streaming"
        async with socket(server, BOB) as bob:
            await send(bob, f"{topic}/subscribeForPersistedEvents", {"fromHistoricalRevision": 0})
            subscription_id = await created_id(bob, topic)
            await nothing_arrives(bob)  # the refusal waits for the first request, as in Ditto
            await send(bob, f"{topic}/request", {"subscriptionId": subscription_id, "demand": 1})
            error = await failure(bob, topic, subscription_id)
            assert (error["error"], error["status"]) == ("things:thing.notfound", 404)
            await nothing_arrives(bob)
    async with socket(server, ALICE) as alice:
        ns, name = thing_id.split(":")
        topic = f"{ns}/{name}/things/twin/streaming"
        await send(alice, f"{topic}/request", {"subscriptionId": "99", "demand": 1})
        assert (await failure(alice, topic, "99"))["error"] == "streaming.subscription.not.found"
        await send(alice, f"{topic}/subscribeForPersistedEvents", {"filter": "eq(attributes/a"})
        subscription_id = await created_id(alice, topic)
        await send(alice, f"{topic}/request", {"subscriptionId": subscription_id, "demand": 1})
        assert (await failure(alice, topic, subscription_id))["error"] == "rql.expression.invalid"
        await send(alice, f"{topic}/subscribeForPersistedEvents", {"fromHistoricalTimestamp": "yesterday"})
        assert (await receive(alice))["value"]["error"] == "json.invalid"


async def test_persisted_policy_events(server: LiveServer) -> None:
    policy_id = f"{new_namespace()}:policy"
    namespace, name = policy_id.split(":")
    topic = f"{namespace}/{name}/policies/streaming"
    assert put(server, f"policies/{policy_id}", SHARED_POLICY).status_code == 201
    entry = {
        "subjects": {"nginx:carol": {"type": "t"}},
        "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
    }
    assert put(server, f"policies/{policy_id}/entries/CAROL", entry).status_code == 201
    async with socket(server, ALICE) as alice, socket(server, BOB) as bob:
        await send(alice, f"{topic}/subscribeForPersistedEvents", {})
        subscription_id = await created_id(alice, topic)
        await send(alice, f"{topic}/request", {"subscriptionId": subscription_id, "demand": 5})
        items = [v["item"] for v in await drain(alice, topic)]
        assert [(i["topic"], i["path"], i["revision"]) for i in items] == [
            (f"{namespace}/{name}/policies/events/created", "/", 1),
            (f"{namespace}/{name}/policies/events/created", "/entries/CAROL", 2),
        ]
        assert items[1]["value"] == entry
        # bob reads no part of the policy
        await send(bob, f"{topic}/subscribeForPersistedEvents", {})
        bob_id = await created_id(bob, topic)
        await send(bob, f"{topic}/request", {"subscriptionId": bob_id, "demand": 5})
        assert (await failure(bob, topic, bob_id))["error"] == "policies:policy.notfound"
