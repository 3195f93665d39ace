"""What the real-time system tests share: two users, a WebSocket client speaking text frames, and waiting for
frames with a deadline (never a blind sleep)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.live_server import LiveServer

FRAME_TIMEOUT_S = 10.0
QUIET_S = 0.5  # how long "nothing arrives" is watched for


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")


@asynccontextmanager
async def socket(
    server: LiveServer, headers: dict[str, str], query: str = ""
) -> AsyncIterator[ClientConnection]:
    url = server.base_url.replace("http://", "ws://") + "/ws/2" + query
    async with connect(url, additional_headers=headers, open_timeout=FRAME_TIMEOUT_S) as ws:
        yield ws


async def receive(ws: ClientConnection) -> Any:
    text = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT_S)
    assert isinstance(text, str)
    return json.loads(text) if text.startswith("{") else text


async def nothing_arrives(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        frame = await asyncio.wait_for(ws.recv(), QUIET_S)
        pytest.fail(f"unexpected frame {frame!r}")


async def subscribe(ws: ClientConnection, params: str = "") -> None:
    await ws.send("START-SEND-EVENTS" + (f"?{params}" if params else ""))
    assert await receive(ws) == "START-SEND-EVENTS:ACK"


async def health_events(server: LiveServer) -> dict[str, Any]:
    """The ``events`` component of ``/health``: the hub's subscriber and delivery counters."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        body: dict[str, Any] = (await client.get("/health")).json()
    events: dict[str, Any] = body["components"]["events"]
    return events
