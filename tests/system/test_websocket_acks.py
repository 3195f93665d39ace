"""Acknowledgements over ``/ws/2`` against a real server process (``basic-acknowledgements``,
``protocol-specification-acks``): commands sent over the socket request them, other sockets issue them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.live_server import LiveServer
from tests.system.realtime import ALICE, nothing_arrives, receive, socket, subscribe


def new_thing_id() -> str:
    return f"org.acks:thing-{uuid.uuid4().hex[:10]}"


def new_label(name: str) -> str:
    return f"app-{uuid.uuid4().hex[:6]}:{name}"


def command(thing_id: str, correlation_id: str, value: Any, **headers: Any) -> str:
    namespace, name = thing_id.split(":")
    return json.dumps(
        {
            "topic": f"{namespace}/{name}/things/twin/commands/modify",
            "headers": {"correlation-id": correlation_id, **headers},
            "path": "/attributes/x",
            "value": value,
        }
    )


def ack(event: dict[str, Any], label: str, status: int, value: Any = None) -> str:
    namespace, name = event["topic"].split("/")[:2]
    frame: dict[str, Any] = {
        "topic": f"{namespace}/{name}/things/twin/acks/{label}",
        "headers": {"correlation-id": event["headers"]["correlation-id"]},
        "path": "/",
        "status": status,
    }
    if value is not None:
        frame["value"] = value
    return json.dumps(frame)


async def create(server: LiveServer, thing_id: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        assert (
            await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 0}})
        ).status_code == 201


async def answer_next_event(device: ClientConnection, label: str, status: int, value: Any = None) -> None:
    event = await receive(device)
    assert event["topic"].endswith("/things/twin/events/modified")
    assert label in event["headers"]["requested-acks"]
    await device.send(ack(event, label, status, value))


async def test_commands_over_the_socket_are_answered_with_aggregated_acks(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    label = new_label("applied")
    # Ditto's Java client declares its labels as a header of the upgrade, a JSON array
    device_headers = {**ALICE, "declared-acks": json.dumps([label])}
    async with socket(server, device_headers) as device, socket(server, ALICE) as app:
        await subscribe(device)
        for status, combined in ((200, 200), (400, 424)):
            cid = f"acks-{status}"
            requested = ["twin-persisted", label]
            await app.send(command(thing_id, cid, status, **{"requested-acks": requested, "timeout": "5s"}))
            await answer_next_event(device, label, status, {"applied": status})
            answer = await receive(app)
            assert answer["topic"] == f"{namespace}/{name}/things/twin/acks"
            assert (answer["path"], answer["status"]) == ("/", combined)
            assert answer["headers"]["correlation-id"] == cid
            assert set(answer["value"]) == {"twin-persisted", label}
            assert answer["value"]["twin-persisted"]["status"] == 204
            assert answer["value"]["twin-persisted"]["headers"]["correlation-id"] == cid
            assert answer["value"][label]["status"] == status
            assert answer["value"][label]["payload"] == {"applied": status}
        # one requested label: the aggregate carries its own status; not issued in time: 408
        await app.send(command(thing_id, "acks-late", 7, **{"requested-acks": [label], "timeout": "1"}))
        await receive(device)  # the event came, but nobody acknowledges it
        answer = await receive(app)
        assert (answer["topic"], answer["status"]) == (f"{namespace}/{name}/things/twin/acks", 408)
        timed_out = answer["value"][label]
        assert timed_out["status"] == 408
        assert timed_out["payload"]["error"] == "acknowledgement:request.timeout"
        assert timed_out["payload"]["message"].endswith("timeout of 1,000ms.")
        # the default (twin-persisted only) is the ordinary response
        await app.send(command(thing_id, "plain", 8, **{"requested-acks": ["twin-persisted"]}))
        answer = await receive(app)
        assert (answer["topic"], answer["status"]) == (f"{namespace}/{name}/things/twin/commands/modify", 204)


async def test_a_session_acknowledges_the_events_of_its_own_commands(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    label = new_label("self")
    async with socket(server, ALICE, f"?declared-acks={label}") as ws:
        await subscribe(ws)
        await ws.send(command(thing_id, "own-1", 1, **{"requested-acks": [label], "timeout": "5"}))
        # the event is not held back behind the response: the response waits for the acknowledgement
        await answer_next_event(ws, label, 202)
        answer = await receive(ws)
        assert (answer["topic"], answer["status"]) == (f"{namespace}/{name}/things/twin/acks", 202)
        assert answer["headers"]["correlation-id"] == "own-1"


async def test_acks_from_the_socket_complete_http_commands(server: LiveServer) -> None:
    thing_id = new_thing_id()
    await create(server, thing_id)
    first, second = new_label("one"), new_label("two")
    async with (
        socket(server, ALICE, f"?declared-acks={first}") as one,
        socket(server, {**ALICE, "declared-acks": second}) as two,
        httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client,
    ):
        await subscribe(one)
        await subscribe(two)
        params = {"requested-acks": f"twin-persisted,{first},{second}", "timeout": "5s"}
        writing = asyncio.create_task(
            client.put(f"/api/2/things/{thing_id}/attributes/x", json=3, params=params)
        )
        await answer_next_event(one, first, 200, "done")
        await answer_next_event(two, second, 204)
        answered = await asyncio.wait_for(writing, 10)
        assert answered.status_code == 200
        body = answered.json()
        assert {label: body[label]["status"] for label in body} == {
            "twin-persisted": 204,
            first: 200,
            second: 204,
        }
        assert body[first]["payload"] == "done"


async def test_acknowledgement_rules_over_the_socket(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    label = new_label("mine")
    async with socket(server, ALICE, f"?declared-acks={label}") as ws:
        # a label this session did not declare
        event_like = {
            "topic": f"{namespace}/{name}/things/twin/events/modified",
            "headers": {"correlation-id": "c"},
        }
        await ws.send(ack(event_like, new_label("other"), 200))
        error = await receive(ws)
        assert (error["status"], error["value"]["error"]) == (400, "acknowledgement:label.not.declared")
        # a zero timeout with acknowledgements, or a response, is a client error
        for headers in ({"requested-acks": ["twin-persisted"]}, {"response-required": True}):
            await ws.send(command(thing_id, "zero", 1, timeout="0", **headers))
            error = await receive(ws)
            assert (error["status"], error["value"]["error"]) == (400, "header.invalid")
            assert error["headers"]["correlation-id"] == "zero"
        # acknowledgements need the response they come with
        await ws.send(
            command(thing_id, "no-answer", 1, **{"requested-acks": [label], "response-required": False})
        )
        error = await receive(ws)
        assert (error["status"], error["value"]["error"]) == (400, "header.invalid")
        # a zero timeout alone: no answer, but the change is applied
        await ws.send(command(thing_id, "fire", 42, timeout="0"))
        await nothing_arrives(ws)
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        assert (await client.get(f"/api/2/things/{thing_id}/attributes/x")).json() == 42


async def test_a_subscriber_that_filters_the_event_out_answers_with_a_weak_ack(server: LiveServer) -> None:
    """``basic-acknowledgements`` "Weak Acknowledgements": the requester does not wait for the timeout."""
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    filtered, other_ns, acking = new_label("filtered"), new_label("elsewhere"), new_label("real")
    async with (
        socket(server, ALICE, f"?declared-acks={filtered}") as by_filter,
        socket(server, ALICE, f"?declared-acks={other_ns}") as by_namespace,
        socket(server, ALICE, f"?declared-acks={acking}") as device,
        socket(server, ALICE) as app,
    ):
        await subscribe(by_filter, "filter=eq(attributes/x,-1)")
        await subscribe(by_namespace, "namespaces=org.elsewhere")
        await subscribe(device)
        requested = ["twin-persisted", filtered, other_ns, acking]
        await app.send(command(thing_id, "weak-1", 5, **{"requested-acks": requested, "timeout": "20s"}))
        await answer_next_event(device, acking, 200)
        answer = await asyncio.wait_for(receive(app), 5)  # long before the 20 s timeout
        assert (answer["topic"], answer["status"]) == (f"{namespace}/{name}/things/twin/acks", 200)
        for label in (filtered, other_ns):
            assert answer["value"][label]["status"] == 200
            assert answer["value"][label]["headers"]["ditto-weak-ack"] is True
        assert "ditto-weak-ack" not in answer["value"][acking]["headers"]
        await nothing_arrives(by_filter)
        await nothing_arrives(by_namespace)
