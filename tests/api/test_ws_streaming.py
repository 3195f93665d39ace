"""The reactive-streams machinery of ``/ws/2`` search and streaming subscriptions
(``ditto_compat/api/ws_streaming/subscriptions.py``), driven directly with a list of items as the source and a
queue as the socket: what needs a short idle timeout or a closed session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ditto_compat.api.ws_streaming import SEARCH, STREAMING
from ditto_compat.api.ws_streaming.subscriptions import MAX_ACTIVE, Subscriptions
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Topic

TOPIC = Topic("_", "_", "things", "twin", "search")
WAIT_S = 5.0


class Items:
    """A source of fixed items that counts how often it was pulled."""

    def __init__(self, *items: Any) -> None:
        self._items = list(items)
        self.pulls = 0

    @property
    def exhausted(self) -> bool:
        return not self._items

    async def pull(self) -> Any | None:
        self.pulls += 1
        return self._items.pop(0) if self._items else None


class Socket:
    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, frame: str) -> None:
        await self.frames.put(json.loads(frame))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.frames.get(), WAIT_S)


async def test_an_idle_subscription_fails_with_a_timeout() -> None:
    socket = Socket()
    subscriptions = Subscriptions(SEARCH, socket.send, idle_timeout_s=0.1)
    source = Items(["a"], ["b"])
    sid = subscriptions.subscribe(TOPIC, {"correlation-id": "c-1"}, source)
    assert (await socket.next())["topic"] == "_/_/things/twin/search/created"
    failed = await socket.next()  # no request at all within the idle timeout
    assert failed["topic"] == "_/_/things/twin/search/failed"
    assert failed["headers"] == {"correlation-id": "c-1", "content-type": "application/json"}
    assert failed["value"]["subscriptionId"] == sid
    assert (failed["value"]["error"]["error"], failed["value"]["error"]["status"]) == (
        "thing-search:subscription.timeout",
        408,
    )
    assert source.pulls == 0
    assert subscriptions.active == 0
    # served, then idle again: the timeout counts from the last demand served
    source = Items(["a"], ["b"])
    sid = subscriptions.subscribe(TOPIC, {}, source)
    await socket.next()
    await subscriptions.request(TOPIC, {}, sid, 1)
    assert (await socket.next())["value"] == {"subscriptionId": sid, "items": ["a"]}
    assert (await socket.next())["value"]["error"]["error"] == "thing-search:subscription.timeout"


async def test_complete_follows_the_last_item_without_more_demand() -> None:
    socket = Socket()
    subscriptions = Subscriptions(STREAMING, socket.send)
    topic = Topic("org.x", "t", "things", "twin", "streaming")
    source = Items({"revision": 1}, {"revision": 2})
    sid = subscriptions.subscribe(topic, {}, source)
    await subscriptions.request(topic, {}, sid, 2)
    assert (await socket.next())["topic"] == "org.x/t/things/twin/streaming/created"
    assert (await socket.next())["value"] == {"subscriptionId": sid, "item": {"revision": 1}}
    assert (await socket.next())["value"] == {"subscriptionId": sid, "item": {"revision": 2}}
    complete = await socket.next()
    assert complete["topic"] == "org.x/t/things/twin/streaming/complete"
    assert complete["value"] == {"subscriptionId": sid}
    assert source.pulls == 2  # the source said it was exhausted: not asked again


async def test_closing_the_session_stops_every_subscription() -> None:
    socket = Socket()
    subscriptions = Subscriptions(SEARCH, socket.send)
    source = Items(["a"])
    sid = subscriptions.subscribe(TOPIC, {}, source)
    await socket.next()
    subscriptions.close()
    await subscriptions.request(TOPIC, {}, sid, 1)  # the session forgot it
    failed = await socket.next()
    assert failed["value"]["error"]["error"] == "thing-search:subscription.not.found"
    await asyncio.sleep(0)
    assert socket.frames.empty()
    assert source.pulls == 0
    assert subscriptions.active == 0


async def test_a_session_holds_a_bounded_number_of_subscriptions() -> None:
    socket = Socket()
    subscriptions = Subscriptions(SEARCH, socket.send)
    for _ in range(MAX_ACTIVE):
        subscriptions.subscribe(TOPIC, {}, Items())
    with pytest.raises(DittoError) as refused:
        subscriptions.subscribe(TOPIC, {}, Items())
    assert refused.value.error_code == "thing-search:subscription.protocol.error"
    await subscriptions.cancel(TOPIC, {}, "0")
    assert subscriptions.subscribe(TOPIC, {}, Items()) == str(MAX_ACTIVE)
    subscriptions.close()
