"""SSE change streams and live messages against a real server process (``httpapi-sse``, ``httpapi-messages``,
``protocol-specification-things-messages``)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.live_server import LiveServer
from tests.system.realtime import ALICE, BOB, FRAME_TIMEOUT_S, receive, socket

STREAM = {"Accept": "text/event-stream"}


def new_thing_id() -> str:
    return f"org.sse:thing-{uuid.uuid4().hex[:10]}"


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The events of an SSE response: ``{"id": ..., "data": <parsed JSON>}``; heartbeats are skipped."""
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if "data" in current:
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        current[name] = json.loads(value) if name == "data" else value.strip()


async def next_event(stream: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(stream), FRAME_TIMEOUT_S)


async def test_sse_streams_partial_things(server: LiveServer) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 1, "y": 1}})
        assert r.status_code == 201
        params = {"ids": thing_id, "fields": "thingId,attributes,_revision"}
        async with client.stream("GET", "/api/2/things", params=params, headers=STREAM) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            await asyncio.sleep(0.2)  # the subscription is taken when the response starts
            assert (await client.put(f"/api/2/things/{thing_id}/attributes/x", json=2)).status_code == 204
            event = await next_event(stream)
            assert event["data"] == {"thingId": thing_id, "attributes": {"x": 2}, "_revision": 2}
        # a pointer stream sends the value at the pointer
        async with client.stream("GET", f"/api/2/things/{thing_id}/attributes/y", headers=STREAM) as response:
            stream = events(response)
            await asyncio.sleep(0.2)
            assert (await client.put(f"/api/2/things/{thing_id}/attributes/x", json=3)).status_code == 204
            assert (await client.put(f"/api/2/things/{thing_id}/attributes/y", json=5)).status_code == 204
            event = await next_event(stream)
            assert (event["data"], event["id"]) == (5, "4")


async def test_sse_resumes_from_the_journal(server: LiveServer) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        assert (
            await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 0}})
        ).status_code == 201
        for value in (1, 2, 3):
            r = await client.put(f"/api/2/things/{thing_id}/attributes/x", json=value)
            assert r.status_code == 204
        # a bounded replay ends by itself
        params = {"from-historical-revision": "2", "to-historical-revision": "3"}
        r = await client.get(f"/api/2/things/{thing_id}", params=params, headers=STREAM)
        replayed = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
        assert replayed == [
            {"thingId": thing_id, "attributes": {"x": 1}},
            {"thingId": thing_id, "attributes": {"x": 2}},
        ]
        # Last-Event-ID: what came after it, then live
        async with client.stream(
            "GET", f"/api/2/things/{thing_id}", headers={**STREAM, "Last-Event-ID": "3"}
        ) as response:
            stream = events(response)
            event = await next_event(stream)
            assert (event["id"], event["data"]["attributes"]) == ("4", {"x": 3})
            assert (await client.put(f"/api/2/things/{thing_id}/attributes/x", json=4)).status_code == 204
            event = await next_event(stream)
            assert (event["id"], event["data"]["attributes"]) == ("5", {"x": 4})
        r = await client.get(
            f"/api/2/things/{thing_id}", params={"from-historical-revision": "x"}, headers=STREAM
        )
        assert r.status_code == 400


async def test_messages_reach_websocket_receivers_and_their_replies_come_back(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=20) as client:
        assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        url = f"/api/2/things/{thing_id}/inbox/messages/ask"
        # nobody listens: 408 after the timeout; timeout=0: 202 at once
        r = await client.post(
            url, params={"timeout": "1"}, content=b"hi", headers={"content-type": "text/plain"}
        )
        assert (r.status_code, r.json()["error"]) == (408, "messages:message.timeout")
        r = await client.post(
            url, params={"timeout": "0"}, content=b"hi", headers={"content-type": "text/plain"}
        )
        assert r.status_code == 202
        async with socket(server, ALICE) as device:
            await device.send("START-SEND-MESSAGES")
            assert await receive(device) == "START-SEND-MESSAGES:ACK"
            sending = asyncio.create_task(
                client.post(url, json={"question": "temperature?"}, headers={"correlation-id": "msg-1"})
            )
            message = await receive(device)
            assert message["topic"] == f"{namespace}/{name}/things/live/messages/ask"
            assert message["path"] == "/inbox/messages/ask"
            assert message["value"] == {"question": "temperature?"}
            assert message["headers"]["correlation-id"] == "msg-1"
            reply = {
                "topic": message["topic"],
                "headers": {"correlation-id": "msg-1", "content-type": "application/json"},
                "path": "/outbox/messages/ask",
                "value": {"temperature": 21.5},
                "status": 200,
            }
            await device.send(json.dumps(reply))
            answered = await asyncio.wait_for(sending, FRAME_TIMEOUT_S)
            assert answered.status_code == 200
            assert answered.json() == {"temperature": 21.5}
            # a feature message, answered with 204
            sending = asyncio.create_task(
                client.post(
                    f"/api/2/things/{thing_id}/features/lamp/inbox/messages/switch",
                    content=b"on",
                    headers={"content-type": "text/plain", "correlation-id": "msg-2"},
                )
            )
            message = await receive(device)
            assert (message["path"], message["value"]) == ("/features/lamp/inbox/messages/switch", "on")
            await device.send(json.dumps({**reply, "headers": {"correlation-id": "msg-2"}, "status": 204}))
            assert (await asyncio.wait_for(sending, FRAME_TIMEOUT_S)).status_code == 204
        # bob has no WRITE on the Thing's message resources; payloads over 250 kB are refused
        r = await client.post(url, content=b"hi", headers={**BOB, "content-type": "text/plain"})
        assert r.status_code in (403, 404)
        r = await client.post(url, content=b"x" * (251 * 1024), headers={"content-type": "text/plain"})
        assert (r.status_code, r.json()["error"]) == (413, "messages:payload.toolarge")


@pytest.mark.parametrize("path", ["/inbox/claim"])
async def test_claim_messages_need_no_write_permission(server: LiveServer, path: str) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=20) as client:
        assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        async with socket(server, ALICE) as owner:
            await owner.send("START-SEND-MESSAGES")
            assert await receive(owner) == "START-SEND-MESSAGES:ACK"
            sending = asyncio.create_task(
                client.post(
                    f"/api/2/things/{thing_id}{path}",
                    content=b"please",
                    headers={**BOB, "content-type": "text/plain", "correlation-id": "claim-1"},
                )
            )
            message = await receive(owner)
            assert message["path"] == "/inbox/claim"
            await owner.send(
                json.dumps(
                    {
                        "topic": message["topic"],
                        "headers": {"correlation-id": "claim-1", "content-type": "text/plain"},
                        "path": "/inbox/claim",
                        "value": "granted",
                        "status": 200,
                    }
                )
            )
            answered = await asyncio.wait_for(sending, FRAME_TIMEOUT_S)
            assert (answered.status_code, answered.text) == (200, "granted")


async def test_live_commands_are_answered_by_the_device(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=20) as client:
        r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 1, "online": True}})
        assert r.status_code == 201
        url = f"/api/2/things/{thing_id}/attributes/x"
        async with socket(server, ALICE) as device:
            await device.send("START-SEND-LIVE-COMMANDS")
            assert await receive(device) == "START-SEND-LIVE-COMMANDS:ACK"
            asking = asyncio.create_task(
                client.get(url, headers={"channel": "live", "correlation-id": "live-1"})
            )
            command = await receive(device)
            assert command["topic"] == f"{namespace}/{name}/things/live/commands/retrieve"
            assert (command["path"], command["headers"]["correlation-id"]) == ("/attributes/x", "live-1")
            response = {
                "topic": command["topic"],
                "headers": {"correlation-id": "live-1"},
                "path": "/attributes/x",
                "value": 42,
                "status": 200,
            }
            await device.send(json.dumps(response))
            answered = await asyncio.wait_for(asking, FRAME_TIMEOUT_S)
            assert (answered.status_code, answered.json()) == (200, 42)
            # nobody answers: 408, or the twin's answer with the use-twin strategy
            r = await client.get(url, params={"channel": "live", "timeout": "1"})
            assert r.status_code == 408
            assert (await receive(device))["path"] == "/attributes/x"
            r = await client.get(
                url, params={"channel": "live", "timeout": "1", "live-channel-timeout-strategy": "use-twin"}
            )
            assert (r.status_code, r.json()) == (200, 1)
            assert (await receive(device))["path"] == "/attributes/x"
            # the condition decides per request: an offline device is answered for by its twin
            r = await client.get(
                url, params={"channel": "live", "live-channel-condition": "eq(attributes/online,false)"}
            )
            assert (r.status_code, r.json()) == (200, 1)
        # a live command needs the same permission as on the twin
        r = await client.put(url, json=5, headers={**BOB, "channel": "live"})
        assert r.status_code in (403, 404)


async def test_requested_acknowledgements_are_aggregated(server: LiveServer) -> None:
    thing_id = new_thing_id()
    namespace, name = thing_id.split(":")
    label = f"device-{uuid.uuid4().hex[:6]}:applied"
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=20) as client:
        assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        url = f"/api/2/things/{thing_id}/attributes/x"
        async with socket(server, ALICE, f"?declared-acks={label}") as device:
            # a label is declared by one session at a time
            with pytest.raises(InvalidStatus) as taken:
                async with socket(server, ALICE, f"?declared-acks={label}"):
                    pass
            assert taken.value.response.status_code == 409
            await device.send("START-SEND-EVENTS")
            assert await receive(device) == "START-SEND-EVENTS:ACK"

            async def acknowledge(status: int) -> None:
                event = await receive(device)
                assert label in event["headers"]["requested-acks"]
                ack = {
                    "topic": f"{namespace}/{name}/things/twin/acks/{label}",
                    "headers": {"correlation-id": event["headers"]["correlation-id"]},
                    "path": "/",
                    "value": {"applied": status < 300},
                    "status": status,
                }
                await device.send(json.dumps(ack))

            for status, expected in ((200, 200), (500, 424)):
                writing = asyncio.create_task(
                    client.put(url, json=status, headers={"requested-acks": f"twin-persisted,{label}"})
                )
                await acknowledge(status)
                answered = await asyncio.wait_for(writing, FRAME_TIMEOUT_S)
                assert answered.status_code == expected
                body = answered.json()
                assert body[label]["status"] == status
                assert body[label]["payload"] == {"applied": status < 300}
                assert body["twin-persisted"]["status"] in (201, 204)
            # only a custom label, never issued: its own status, 408
            r = await client.put(url, json=1, params={"requested-acks": label, "timeout": "1"})
            assert r.status_code == 408
            await receive(device)  # the event was still delivered


async def test_sse_streams_messages_of_a_thing(server: LiveServer) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=20) as client:
        assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        async with client.stream(
            "GET", f"/api/2/things/{thing_id}/inbox/messages", headers=STREAM
        ) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            await asyncio.sleep(0.2)
            for subject, body, media in (
                ("greet", b"hello", "text/plain"),
                ("set", b'{"v":1}', "application/json"),
            ):
                r = await client.post(
                    f"/api/2/things/{thing_id}/inbox/messages/{subject}",
                    params={"timeout": "0"},
                    content=body,
                    headers={"content-type": media},
                )
                assert r.status_code == 202
            received: list[tuple[str, str]] = []
            event = ""
            while len(received) < 2:
                line = await asyncio.wait_for(anext(lines), FRAME_TIMEOUT_S)
                if line.startswith("event:"):
                    event = line[6:]
                elif line.startswith("data:"):
                    received.append((event, line[5:]))
            assert received == [("greet", "hello"), ("set", '{"v":1}')]
