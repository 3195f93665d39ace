"""Resuming an SSE stream of several Things (``GET /api/2/things?ids=..``) with ``Last-Event-ID``, against a real
server process. The id is the stream's position in every requested Thing (api/sse.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.live_server import LiveServer
from tests.system.realtime import ALICE, BOB, FRAME_TIMEOUT_S

STREAM = {"Accept": "text/event-stream"}


def new_thing_id() -> str:
    return f"org.sseresume:thing-{uuid.uuid4().hex[:10]}"


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Every event of an SSE response, also those with an ``id`` only: ``{"id"?: .., "data"?: <JSON>}``."""
    current: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if current:
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        current[name] = json.loads(value) if name == "data" else value


async def next_event(stream: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(stream), FRAME_TIMEOUT_S)


def position(**revisions: int) -> str:
    return ",".join(f"{thing_id}={revision}" for thing_id, revision in sorted(revisions.items()))


async def test_a_stream_of_several_things_resumes_each_of_them(server: LiveServer) -> None:
    a, b, c, other = sorted(new_thing_id() for _ in range(4))
    params = {"ids": f"{a},{b},{c}", "fields": "thingId,attributes,_revision"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        for thing_id in (a, b, other):
            r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"n": 0}})
            assert r.status_code == 201
        async with client.stream("GET", "/api/2/things", params=params, headers=STREAM) as response:
            assert response.status_code == 200
            stream = sse_events(response)
            # the position the stream starts at, before any change (c does not exist yet)
            assert await next_event(stream) == {"id": position(**{a: 1, b: 1, c: 0})}
            assert (await client.put(f"/api/2/things/{a}/attributes/n", json=1)).status_code == 204
            event = await next_event(stream)
            assert event == {
                "id": position(**{a: 2, b: 1, c: 0}),
                "data": {"thingId": a, "attributes": {"n": 1}, "_revision": 2},
            }
            last_id = event["id"]
        # while the client is away
        assert (await client.put(f"/api/2/things/{b}/attributes/n", json=2)).status_code == 204
        assert (await client.put(f"/api/2/things/{a}/attributes/n", json=3)).status_code == 204
        assert (await client.put(f"/api/2/things/{other}/attributes/n", json=9)).status_code == 204
        assert (await client.put(f"/api/2/things/{c}", json={"attributes": {"n": 4}})).status_code == 201

        headers = {**STREAM, "Last-Event-ID": last_id}
        async with client.stream("GET", "/api/2/things", params=params, headers=headers) as response:
            assert response.status_code == 200
            stream = sse_events(response)
            assert await next_event(stream) == {"id": last_id}
            replayed = [await next_event(stream) for _ in range(3)]
            assert replayed == [  # in the order they happened, each with the position after it
                {
                    "id": position(**{a: 2, b: 2, c: 0}),
                    "data": {"thingId": b, "attributes": {"n": 2}, "_revision": 2},
                },
                {
                    "id": position(**{a: 3, b: 2, c: 0}),
                    "data": {"thingId": a, "attributes": {"n": 3}, "_revision": 3},
                },
                {
                    "id": position(**{a: 3, b: 2, c: 1}),
                    "data": {"thingId": c, "attributes": {"n": 4}, "_revision": 1},
                },
            ]
            # then live, without repeating what was replayed
            assert (await client.put(f"/api/2/things/{b}/attributes/n", json=5)).status_code == 204
            event = await next_event(stream)
            assert event == {
                "id": position(**{a: 3, b: 3, c: 1}),
                "data": {"thingId": b, "attributes": {"n": 5}, "_revision": 3},
            }
            resumed_again = event["id"]
        # a deletion is replayed too; nothing else is
        assert (await client.delete(f"/api/2/things/{c}")).status_code == 204
        headers = {**STREAM, "Last-Event-ID": resumed_again}
        async with client.stream("GET", "/api/2/things", params=params, headers=headers) as response:
            stream = sse_events(response)
            assert await next_event(stream) == {"id": resumed_again}
            deleted = await next_event(stream)
            assert deleted["id"] == position(**{a: 3, b: 3, c: 2})
            assert deleted["data"]["thingId"] == c
            assert (await client.put(f"/api/2/things/{a}/attributes/n", json=6)).status_code == 204
            event = await next_event(stream)
            assert (event["id"], event["data"]["attributes"]) == (position(**{a: 4, b: 3, c: 2}), {"n": 6})


async def test_the_replay_shows_only_what_the_caller_may_see(server: LiveServer) -> None:
    thing_id = new_thing_id()
    policy = {
        "entries": {
            "owner": {
                "subjects": {"nginx:alice": {"type": "basic"}},
                "resources": {
                    "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                    "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
                },
            },
            "reader": {
                "subjects": {"nginx:bob": {"type": "basic"}},
                "resources": {"thing:/attributes/public": {"grant": ["READ"], "revoke": []}},
            },
        }
    }
    body = {"_policy": policy, "attributes": {"public": 0, "secret": 0}}
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as alice,
        httpx.AsyncClient(base_url=server.base_url, headers=BOB, timeout=10) as bob,
    ):
        assert (await alice.put(f"/api/2/things/{thing_id}", json=body)).status_code == 201
        params = {"ids": thing_id, "filter": "exists(attributes/public)"}
        headers = {**STREAM, "Last-Event-ID": f"{thing_id}=1"}
        assert (await alice.put(f"/api/2/things/{thing_id}/attributes/secret", json=1)).status_code == 204
        assert (await alice.put(f"/api/2/things/{thing_id}/attributes/public", json=2)).status_code == 204
        async with bob.stream("GET", "/api/2/things", params=params, headers=headers) as response:
            stream = sse_events(response)
            assert await next_event(stream) == {"id": f"{thing_id}=1"}
            # revision 2 changed nothing Bob may read: not sent, but passed
            event = await next_event(stream)
            assert event == {
                "id": f"{thing_id}=3",
                "data": {"thingId": thing_id, "attributes": {"public": 2}},
            }


async def test_last_event_ids_that_are_not_positions(server: LiveServer) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        params = {"ids": thing_id}
        r = await client.get("/api/2/things", params=params, headers={**STREAM, "Last-Event-ID": "7"})
        assert (r.status_code, r.json()["error"]) == (400, "header.invalid")
        # a position of Things this stream does not have is no position of it: the stream starts afresh
        headers = {**STREAM, "Last-Event-ID": "org.sseresume:unknown=3"}
        async with client.stream("GET", "/api/2/things", params=params, headers=headers) as response:
            assert response.status_code == 200
            assert await next_event(sse_events(response)) == {"id": f"{thing_id}=1"}
        # Thing ids are percent-encoded in the position, but for ':'
        suffix = uuid.uuid4().hex[:6]
        odd = f"org.sseresume:a=b;λ-{suffix}"
        encoded = f"org.sseresume:a%3Db%3B%CE%BB-{suffix}"
        assert (await client.put(f"/api/2/things/{odd}", json={})).status_code == 201
        async with client.stream("GET", "/api/2/things", params={"ids": odd}, headers=STREAM) as response:
            first = await next_event(sse_events(response))
            assert first == {"id": f"{encoded}=1"}
        headers = {**STREAM, "Last-Event-ID": first["id"]}
        assert (await client.put(f"/api/2/things/{odd}/attributes", json={"x": 1})).status_code == 201
        async with client.stream("GET", "/api/2/things", params={"ids": odd}, headers=headers) as response:
            stream = sse_events(response)
            assert await next_event(stream) == {"id": first["id"]}
            event = await next_event(stream)
            assert (event["id"], event["data"]) == (
                f"{encoded}=2",
                {"thingId": odd, "attributes": {"x": 1}},
            )


async def test_a_stream_without_ids_has_no_position(server: LiveServer) -> None:
    thing_id = new_thing_id()
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        params = {"namespaces": "org.sseresume"}
        async with client.stream("GET", "/api/2/things", params=params, headers=STREAM) as response:
            stream = sse_events(response)
            await asyncio.sleep(0.2)  # no first event tells that the subscription is taken
            assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
            event = await next_event(stream)
            assert "id" not in event
            assert event["data"]["thingId"] == thing_id
