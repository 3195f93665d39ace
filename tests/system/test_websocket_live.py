"""Messages and live commands between ``/ws/2`` clients against a real server process
(``protocol-specification-things-messages``, ``protocol-twinlive``, ``basic-acknowledgements``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from tests.live_server import LiveServer
from tests.system.realtime import ALICE, BOB, nothing_arrives, receive, socket


def new_thing_id() -> str:
    return f"org.live:thing-{uuid.uuid4().hex[:10]}"


async def create(server: LiveServer, thing_id: str) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 1}})
        assert r.status_code == 201


async def start(ws: ClientConnection, kind: str) -> None:
    await ws.send(f"START-SEND-{kind}")
    assert await receive(ws) == f"START-SEND-{kind}:ACK"


def frame(
    topic: str, path: str, headers: dict[str, Any], value: Any = None, status: int | None = None
) -> str:
    body: dict[str, Any] = {"topic": topic, "headers": headers, "path": path}
    if value is not None:
        body["value"] = value
    if status is not None:
        body["status"] = status
    return json.dumps(body)


async def test_messages_between_sockets(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    topic = f"{namespace}/{name}/things/live/messages/ask"
    async with (
        socket(server, ALICE) as device,
        socket(server, ALICE) as app,
        socket(server, BOB) as stranger,
    ):
        for ws in (device, app, stranger):
            await start(ws, "MESSAGES")
        headers = {"correlation-id": "m-1", "content-type": "application/json"}
        await app.send(frame(topic, "/inbox/messages/ask", headers, {"q": "temperature?"}))
        message = await receive(device)
        assert (message["topic"], message["path"]) == (topic, "/inbox/messages/ask")
        assert (message["value"], message["headers"]["correlation-id"]) == ({"q": "temperature?"}, "m-1")
        reply_headers = {"correlation-id": "m-1", "content-type": "application/json"}
        await device.send(frame(topic, "/outbox/messages/ask", reply_headers, {"t": 21.5}, status=200))
        answer = await receive(app)
        assert (answer["topic"], answer["status"], answer["value"]) == (topic, 200, {"t": 21.5})
        assert answer["headers"]["correlation-id"] == "m-1"
        # a feature's outbox message, answered with a custom status and text
        feature_topic = f"{namespace}/{name}/things/live/messages/smoke"
        path = "/features/detector/outbox/messages/smoke"
        await app.send(
            frame(feature_topic, path, {"correlation-id": "m-2", "content-type": "text/plain"}, "!")
        )
        message = await receive(device)
        assert (message["path"], message["value"]) == (path, "!")
        await device.send(frame(feature_topic, path, {"correlation-id": "m-2"}, "seen", status=418))
        answer = await receive(app)
        assert (answer["status"], answer["value"]) == (418, "seen")
        # response-required=false: delivered, nothing comes back
        no_reply = {"correlation-id": "m-3", "content-type": "text/plain", "response-required": False}
        await app.send(frame(topic, "/inbox/messages/ask", no_reply, "fyi"))
        assert (await receive(device))["headers"]["correlation-id"] == "m-3"
        # nobody answers within the timeout: 408
        await app.send(frame(topic, "/inbox/messages/ask", {"correlation-id": "m-4", "timeout": "1"}, "?"))
        assert (await receive(device))["headers"]["correlation-id"] == "m-4"
        error = await receive(app)
        assert (error["status"], error["value"]["error"]) == (408, "messages:message.timeout")
        assert error["headers"]["correlation-id"] == "m-4"
        # the sender does not get its own messages back; bob may not read alice's messages
        await nothing_arrives(app)
        await nothing_arrives(stranger)
        # ... nor send them
        await stranger.send(frame(topic, "/inbox/messages/ask", {"correlation-id": "m-5"}, "hi"))
        error = await receive(stranger)
        assert error["status"] in (403, 404) and error["headers"]["correlation-id"] == "m-5"
        await nothing_arrives(device)


async def test_messages_with_custom_acknowledgements(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    label = f"device-{uuid.uuid4().hex[:6]}:received"
    topic = f"{namespace}/{name}/things/live/messages/switch"
    async with socket(server, ALICE, f"?declared-acks={label}") as device, socket(server, ALICE) as app:
        await start(device, "MESSAGES")
        headers = {"correlation-id": "ma-1", "requested-acks": [label], "timeout": "5"}
        await app.send(frame(topic, "/inbox/messages/switch", headers, "on"))
        message = await receive(device)
        assert message["headers"]["requested-acks"] == [label, "live-response"]
        ack = {"correlation-id": "ma-1"}
        await device.send(frame(f"{namespace}/{name}/things/live/acks/{label}", "/", ack, status=200))
        await device.send(
            frame(topic, "/outbox/messages/switch", {"correlation-id": "ma-1"}, "ok", status=200)
        )
        answer = await receive(app)
        assert (answer["topic"], answer["status"]) == (f"{namespace}/{name}/things/live/acks", 200)
        assert answer["value"]["live-response"]["payload"] == "ok"
        assert answer["value"][label]["status"] == 200


async def test_live_commands_between_sockets(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    retrieve = f"{namespace}/{name}/things/live/commands/retrieve"
    modify = f"{namespace}/{name}/things/live/commands/modify"
    async with (
        socket(server, ALICE) as device,
        socket(server, ALICE) as app,
        socket(server, BOB) as stranger,
    ):
        for ws in (device, app, stranger):
            await start(ws, "LIVE-COMMANDS")
        await app.send(frame(retrieve, "/attributes/x", {"correlation-id": "l-1"}))
        command = await receive(device)
        assert (command["topic"], command["path"]) == (retrieve, "/attributes/x")
        assert command["headers"]["correlation-id"] == "l-1"
        await device.send(frame(retrieve, "/attributes/x", {"correlation-id": "l-1"}, 42, status=200))
        answer = await receive(app)
        assert (answer["topic"], answer["path"], answer["status"], answer["value"]) == (
            retrieve,
            "/attributes/x",
            200,
            42,
        )
        assert answer["headers"]["correlation-id"] == "l-1"
        # a live modify is answered by the device; the twin does not change
        await app.send(frame(modify, "/attributes/x", {"correlation-id": "l-2"}, 5))
        command = await receive(device)
        assert (command["topic"], command["value"]) == (modify, 5)
        await device.send(frame(modify, "/attributes/x", {"correlation-id": "l-2"}, status=204))
        answer = await receive(app)
        assert (answer["status"], answer["headers"]["correlation-id"]) == (204, "l-2")
        async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
            assert (await client.get(f"/api/2/things/{thing_id}/attributes/x")).json() == 1
        # no live response in time: 408
        await app.send(frame(retrieve, "/attributes/x", {"correlation-id": "l-3", "timeout": "1"}))
        assert (await receive(device))["headers"]["correlation-id"] == "l-3"
        error = await receive(app)
        assert (error["status"], error["headers"]["correlation-id"]) == (408, "l-3")
        assert error["topic"] == f"{namespace}/{name}/things/live/errors"
        # the sender does not get its own commands; bob may neither read nor send them
        await nothing_arrives(app)
        await nothing_arrives(stranger)
        await stranger.send(frame(modify, "/attributes/x", {"correlation-id": "l-4"}, 6))
        error = await receive(stranger)
        assert error["status"] in (403, 404) and error["headers"]["correlation-id"] == "l-4"
        await nothing_arrives(device)


async def test_live_events_from_a_device_socket(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    await create(server, thing_id)
    async with socket(server, ALICE) as device, socket(server, ALICE) as app:
        await start(app, "LIVE-EVENTS")
        await start(device, "LIVE-EVENTS")  # subscribed too, but it does not get its own events back
        topic = f"{namespace}/{name}/things/live/events/modified"
        await device.send(frame(topic, "/attributes/x", {"correlation-id": "e-1"}, 9))
        event = await receive(app)
        assert (event["topic"], event["path"], event["value"]) == (topic, "/attributes/x", 9)
        assert event["headers"]["correlation-id"] == "e-1"
        await nothing_arrives(device)
