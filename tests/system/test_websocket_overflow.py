"""A WebSocket subscriber that stops reading: its bounded queue overflows, it is told with an error frame and
closed with 1013, the dropped events are counted in ``/health``, and writers and other subscribers carry on.

The slow client is made slow for real: it does not read, its socket's receive buffer is small and its library
queues one frame at most, so TCP back-pressure reaches the server as it would from a stalled device."""

from __future__ import annotations

import asyncio
import os
import socket as sockets
import uuid
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE, FRAME_TIMEOUT_S, health_events, receive, socket, subscribe

QUEUE_SIZE = 5
VALUE_CHARS = 60_000  # random, so that permessage-deflate cannot shrink the frames away
MAX_WRITES = 2_000


def slow_socket(server: LiveServer) -> sockets.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = sockets.socket(sockets.AF_INET, sockets.SOCK_STREAM)
    sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_subscriber_that_cannot_keep_up_is_told_and_closed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    server = server_factory(
        args=["--htpasswd", str(users), "--event-queue-size", str(QUEUE_SIZE), "--journal-retention", "2"]
    )
    thing_id = f"org.ws:overflow-{uuid.uuid4().hex[:8]}"
    url = server.base_url.replace("http://", "ws://") + "/ws/2"
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        assert (await http.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
        async with (
            connect(url, sock=slow_socket(server), additional_headers=ALICE, max_queue=1) as slow,
            socket(server, ALICE) as healthy,
        ):
            await subscribe(slow)
            await subscribe(healthy)
            writes = 0
            # Write until the hub reports drops: how much the kernel buffers before that varies by machine.
            while writes < MAX_WRITES:
                value = os.urandom(VALUE_CHARS // 2).hex()
                r = await http.put(f"/api/2/things/{thing_id}/attributes/blob", json=value)
                assert r.status_code in (201, 204), r.text
                writes += 1
                if writes % 20 == 0 and (await health_events(server))["dropped"] > 0:
                    break
            events = await health_events(server)
            assert events["dropped"] > 0, f"no drop after {writes} writes of {VALUE_CHARS} chars"

            # The healthy subscriber was not slowed down or closed: it gets every event, in order.
            revisions = [(await receive(healthy))["revision"] for _ in range(writes)]
            assert revisions == list(range(2, writes + 2))

            # The slow one gets what was queued before the overflow, then the error, then the close.
            frames: list[Any] = []
            with_close = None
            try:
                while True:
                    frames.append(await receive(slow))
            except ConnectionClosed as closed:
                with_close = closed
            assert with_close is not None and with_close.rcvd is not None
            assert with_close.rcvd.code == 1013
            error = frames[-1]
            assert error["topic"] == "unknown/unknown/things/twin/errors"  # no single thing is concerned
            assert error["status"] == 503
            assert error["value"]["error"] == "gateway:websocket.events.overflowed"
            dropped = int(error["headers"]["dropped-events"])
            delivered = frames[:-1]
            assert delivered, "the events queued before the overflow are delivered"
            assert [f["revision"] for f in delivered] == list(range(2, len(delivered) + 2))
            # The event that did not fit is counted; the subscription ends there, so later writes are not
            # the closed subscriber's to count. It resumes from its last revision (SSE or history) when it returns.
            assert dropped >= 1
            assert len(delivered) + dropped <= writes
            events = await health_events(server)
            assert events["dropped"] == dropped
            assert events["subscribers"] == 1

        # Writers were never blocked, and the server still answers.
        r = await asyncio.wait_for(http.get(f"/api/2/things/{thing_id}/attributes/blob"), FRAME_TIMEOUT_S)
        assert r.status_code == 200
