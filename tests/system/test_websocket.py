"""``/ws/2`` against a real server process (uvicorn), with a plain WebSocket client speaking the Ditto Protocol
as Ditto's docs describe it (``httpapi-protocol-bindings-websocket``, ``protocol-specification-*``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.live_server import LiveServer
from tests.system.realtime import (
    ALICE,
    BOB,
    basic,
    health_events,
    nothing_arrives,
    receive,
    socket,
    subscribe,
)


def new_thing_id() -> str:
    return f"org.ws:thing-{uuid.uuid4().hex[:10]}"


def put(server: LiveServer, path: str, body: Any, headers: dict[str, str] = ALICE) -> httpx.Response:
    return httpx.put(f"{server.base_url}/api/2/things/{path}", json=body, headers=headers, timeout=10)


async def test_upgrade_needs_credentials(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with socket(server, {}):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as wrong:
        async with socket(server, basic("alice", "wrong")):
            pass
    assert wrong.value.response.status_code == 401


async def test_events_of_http_writes_reach_subscribers(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    async with socket(server, ALICE) as ws:
        await subscribe(ws)
        assert put(server, thing_id, {"attributes": {"x": 1}}).status_code == 201
        created = await receive(ws)
        assert created["topic"] == f"{namespace}/{name}/things/twin/events/created"
        assert created["path"] == "/"
        assert created["value"]["attributes"] == {"x": 1}
        assert created["revision"] == 1
        r = put(server, f"{thing_id}/attributes/x", 2, {**ALICE, "correlation-id": "corr-42"})
        assert r.status_code == 204
        modified = await receive(ws)
        assert modified["topic"] == f"{namespace}/{name}/things/twin/events/modified"
        assert modified["path"] == "/attributes/x"
        assert modified["value"] == 2
        assert modified["revision"] == 2
        assert modified["headers"]["correlation-id"] == "corr-42"
        events = await health_events(server)
        assert (events["subscribers"], events["delivered"], events["dropped"]) == (1, 2, 0)
        await ws.send("STOP-SEND-EVENTS")
        assert await receive(ws) == "STOP-SEND-EVENTS:ACK"
        assert (await health_events(server))["subscribers"] == 0
        assert put(server, f"{thing_id}/attributes/x", 3).status_code == 204
        await nothing_arrives(ws)


async def test_commands_answer_before_their_events(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    async with socket(server, ALICE) as ws:
        await subscribe(ws)
        command = {
            "topic": f"{namespace}/{name}/things/twin/commands/create",
            "headers": {"correlation-id": "create-1"},
            "path": "/",
            "value": {"attributes": {"location": "hall-3"}},
        }
        await ws.send(json.dumps(command))
        response = await receive(ws)
        assert response["topic"] == command["topic"]
        assert response["status"] == 201
        assert response["headers"]["correlation-id"] == "create-1"
        assert response["value"]["thingId"] == thing_id
        event = await receive(ws)
        assert event["topic"] == f"{namespace}/{name}/things/twin/events/created"
        assert event["headers"]["correlation-id"] == "create-1"
        # retrieve and modify over the socket
        await ws.send(
            json.dumps(
                {
                    "topic": f"{namespace}/{name}/things/twin/commands/modify",
                    "headers": {"correlation-id": "modify-1"},
                    "path": "/attributes/location",
                    "value": "hall-4",
                }
            )
        )
        response = await receive(ws)
        assert (response["status"], response["headers"]["correlation-id"]) == (204, "modify-1")
        event = await receive(ws)
        assert (event["path"], event["value"]) == ("/attributes/location", "hall-4")
        await ws.send(
            json.dumps(
                {
                    "topic": f"{namespace}/{name}/things/twin/commands/retrieve",
                    "headers": {"correlation-id": "get-1"},
                    "path": "/attributes",
                }
            )
        )
        response = await receive(ws)
        assert (response["status"], response["value"]) == (200, {"location": "hall-4"})


async def test_errors_come_back_as_protocol_errors(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    async with socket(server, ALICE) as ws:
        await ws.send("this is not json")
        error = await receive(ws)
        assert error["topic"] == "unknown/unknown/things/twin/errors"
        assert error["status"] == 400
        assert error["value"]["status"] == 400
        await ws.send(
            json.dumps(
                {
                    "topic": f"{namespace}/{name}/things/twin/commands/retrieve",
                    "headers": {"correlation-id": "missing-1"},
                    "path": "/",
                }
            )
        )
        error = await receive(ws)
        assert error["topic"] == f"{namespace}/{name}/things/twin/errors"
        assert error["status"] == 404
        assert error["value"]["error"] == "things:thing.notfound"
        assert error["headers"]["correlation-id"] == "missing-1"
        await ws.send("START-SEND-EVENTS?filter=eq(attributes/x")
        error = await receive(ws)
        assert error["status"] == 400
        assert error["value"]["error"] == "rql.expression.invalid"


async def test_filters_namespaces_and_extra_fields(server: LiveServer) -> None:
    thing_id = new_thing_id()
    other_ns = f"org.other:thing-{uuid.uuid4().hex[:10]}"
    assert put(server, thing_id, {"attributes": {"location": "hall-3", "x": 0}}).status_code == 201
    assert put(server, other_ns, {"attributes": {"x": 0}}).status_code == 201
    async with socket(server, ALICE) as ws:
        await subscribe(ws, "namespaces=org.ws&filter=gt(attributes/x,5)&extraFields=attributes/location")
        assert put(server, f"{other_ns}/attributes/x", 10).status_code == 204  # other namespace
        assert put(server, f"{thing_id}/attributes/x", 3).status_code == 204  # filtered out
        assert put(server, f"{thing_id}/attributes/x", 7).status_code == 204
        event = await receive(ws)
        assert (event["path"], event["value"], event["revision"]) == ("/attributes/x", 7, 3)
        assert event["extra"] == {"attributes": {"location": "hall-3"}}
        await nothing_arrives(ws)


async def test_events_are_reduced_to_what_the_subscriber_may_read(server: LiveServer) -> None:
    thing_id = new_thing_id()
    policy = {
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
    r = put(
        server, thing_id, {"_policy": policy, "attributes": {"a": 1, "secret": "s"}, "features": {"f": {}}}
    )
    assert r.status_code == 201, r.text
    async with socket(server, BOB) as bob, socket(server, ALICE) as alice:
        await subscribe(bob)
        await subscribe(alice)
        r = put(server, f"{thing_id}/attributes", {"a": 2, "secret": "t"})
        assert r.status_code == 204
        seen_by_bob = await receive(bob)
        assert seen_by_bob["value"] == {"a": 2}
        seen_by_alice = await receive(alice)
        assert seen_by_alice["value"] == {"a": 2, "secret": "t"}
        # nothing of these is readable for bob
        assert put(server, f"{thing_id}/attributes/secret", "u").status_code == 204
        assert put(server, f"{thing_id}/features/f/properties", {"p": 1}).status_code == 201
        assert (await receive(alice))["path"] == "/attributes/secret"
        assert (await receive(alice))["path"] == "/features/f/properties"
        await nothing_arrives(bob)


async def test_live_events_go_from_devices_to_live_subscribers(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    assert put(server, thing_id, {"attributes": {"x": 0}}).status_code == 201
    async with socket(server, ALICE) as device, socket(server, ALICE) as app, socket(server, BOB) as stranger:
        await app.send("START-SEND-LIVE-EVENTS?filter=gt(attributes/x,5)")
        assert await receive(app) == "START-SEND-LIVE-EVENTS:ACK"
        await subscribe(app)  # twin events too: live events must not arrive as twin events
        await stranger.send("START-SEND-LIVE-EVENTS")
        assert await receive(stranger) == "START-SEND-LIVE-EVENTS:ACK"
        for value in (3, 9):
            live_event = {
                "topic": f"{namespace}/{name}/things/live/events/modified",
                "headers": {"correlation-id": f"live-{value}"},
                "path": "/attributes/x",
                "value": value,
            }
            await device.send(json.dumps(live_event))
        event = await receive(app)
        assert event["topic"] == f"{namespace}/{name}/things/live/events/modified"
        assert (event["value"], event["headers"]["correlation-id"]) == (9, "live-9")
        await nothing_arrives(app)
        await nothing_arrives(stranger)  # bob may not read the thing
        # the twin did not change
        async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
            assert (await client.get(f"/api/2/things/{thing_id}/attributes/x")).json() == 0
        # bob may not announce events of alice's thing
        await stranger.send(json.dumps({**live_event, "headers": {"correlation-id": "bob-1"}}))
        error = await receive(stranger)
        assert error["status"] in (403, 404) and error["headers"]["correlation-id"] == "bob-1"


async def test_policy_commands_and_retrieving_several_things(server: LiveServer) -> None:
    first, second = new_thing_id(), new_thing_id()
    for thing_id in (first, second):
        assert put(server, thing_id, {"attributes": {"id": thing_id}}).status_code == 201
    namespace, name = first.split(":")
    async with socket(server, ALICE) as ws:
        await ws.send(
            json.dumps(
                {
                    "topic": f"{namespace}/{name}/policies/commands/retrieve",
                    "headers": {"correlation-id": "pol-1"},
                    "path": "/entries/DEFAULT/subjects",
                }
            )
        )
        response = await receive(ws)
        assert response["topic"] == f"{namespace}/{name}/policies/commands/retrieve"
        assert response["status"] == 200
        assert "nginx:alice" in response["value"]
        await ws.send(
            json.dumps(
                {
                    "topic": "_/_/things/twin/commands/retrieve",
                    "headers": {"correlation-id": "many-1"},
                    "path": "/",
                    "value": {"thingIds": [first, second, "org.ws:missing"]},
                    "fields": "thingId",
                }
            )
        )
        response = await receive(ws)
        assert response["status"] == 200
        assert response["value"] == [{"thingId": first}, {"thingId": second}]
    async with socket(server, BOB) as ws:
        await ws.send(
            json.dumps(
                {
                    "topic": f"{namespace}/{name}/policies/commands/retrieve",
                    "headers": {"correlation-id": "pol-2"},
                    "path": "/",
                }
            )
        )
        error = await receive(ws)
        assert (error["status"], error["value"]["error"]) == (404, "policies:policy.notfound")
