"""``/metrics`` on a real server process: SSE streams and ``/ws/2`` sessions pass through the request metrics
middleware unharmed and show up as event subscribers, and the exposition parses."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.api.test_metrics import Family, parse, requests_of
from tests.live_server import LiveServer
from tests.system.realtime import ALICE, FRAME_TIMEOUT_S, receive, socket, subscribe

STREAM = {"Accept": "text/event-stream"}


async def scrape(client: httpx.AsyncClient) -> dict[str, Family]:
    response = await client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    return parse(response.text)


async def subscribers_become(client: httpx.AsyncClient, expected: int) -> None:
    deadline = time.monotonic() + FRAME_TIMEOUT_S
    while (await scrape(client))["ditto_event_subscribers"].value() != expected:
        assert time.monotonic() < deadline, f"event subscribers never became {expected}"
        await asyncio.sleep(0.02)


async def test_streams_and_sockets_are_subscribers_and_keep_streaming(server: LiveServer) -> None:
    thing_id = f"org.metrics:thing-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=10) as client:
        assert (
            await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"a": 0}})
        ).status_code == 201
        async with (
            client.stream("GET", "/api/2/things", params={"ids": thing_id}, headers=STREAM) as stream,
            socket(server, ALICE) as ws,
        ):
            assert stream.status_code == 200
            await subscribe(ws)
            await subscribers_become(client, 2)
            assert (await client.put(f"/api/2/things/{thing_id}/attributes/a", json=1)).status_code == 204
            frame = await receive(ws)
            assert frame["path"] == "/attributes/a" and frame["value"] == 1
            lines = stream.aiter_lines()
            while True:
                line = await asyncio.wait_for(anext(lines), FRAME_TIMEOUT_S)
                if line.startswith("data:"):
                    assert '"a":1' in line.replace(" ", "")
                    break
        await subscribers_become(client, 0)
        families = await scrape(client)
    assert families["ditto_events_delivered_total"].value() >= 2
    assert families["ditto_events_dropped_total"].value() == 0
    # the stream was counted when its headers went out; the WebSocket is not an HTTP request
    assert requests_of(families, "GET", "/api/2/things")["200"] >= 1
    assert "/ws/2" not in {dict(key)["route"] for key in families["ditto_http_requests_total"].values()}
    assert families["process_resident_memory_bytes"].value() > 0
