"""The reactive-streams machinery the search and the streaming-subscription protocols share
(``protocol-specification-things-search``, ``protocol-specification-streaming-subscription``; Ditto's
``SubscriptionManager`` / ``SubscriptionActor`` and their ``Streaming*`` twins).

One :class:`Subscriptions` per protocol and WebSocket session. ``subscribe`` registers a subscription under the
next id of the session (``"0"``, ``"1"``, ... as Ditto counts them) and starts its runner, one task that sends
every frame of that subscription, so they are in order: ``created``, then one ``next`` per unit of demand,
then ``complete`` or ``failed``. Its source is only asked for items once demand arrived, so nothing but
``created`` (or an idle timeout's ``failed``) can come before the first ``request``, and a query error is a
``failed`` after it. ``complete`` follows the last item at once when the source knows it was the last one
(reactive streams need no demand to complete).

- a demand <= 0 fails the subscription with the protocol error of rule 3.9;
- an id the session does not hold (another session's, a made-up one) answers ``failed`` with ``*.not.found``;
- a subscription that waits for demand longer than the idle timeout (Ditto's ``search-idle-timeout``, 45 s)
  fails with ``*.timeout``;
- a session holds at most :data:`MAX_ACTIVE` subscriptions per protocol (a limit of this server; Ditto has
  none): one more ``subscribe`` is answered with an error;
- after ``cancel``, ``complete`` or ``failed`` the id stays known for :data:`ZOMBIE_LIFETIME_S`, as Ditto's
  zombie actors: a ``request`` is then refused as cancelled, a ``cancel`` is ignored.

Frames go out through the session's send coroutine (its bounded outbound queue): a client that does not read
holds up its runners, never the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import JSON, Envelope, Topic

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 45.0  # Ditto's gateway ``streaming.search-idle-timeout``
ZOMBIE_LIFETIME_S = 10.0  # Ditto's ``SubscriptionActor.ZOMBIE_LIFETIME``
# Each active subscription is a task; a session may not pile them up faster than they time out.
MAX_ACTIVE = 256

Send = Callable[[str], Awaitable[None]]

RULE_3_9 = (
    "Rule 3.9: While the Subscription is not cancelled, Subscription.request(long n) MUST signal onError with a "
    "java.lang.IllegalArgumentException if the argument is <= 0. The cause message SHOULD explain that "
    "non-positive request signals are illegal."
)
RULE_3_9_DESCRIPTION = (
    "The intent of this rule is to prevent faulty implementations to proceed operation without any exceptions "
    "being raised. Requesting a negative or 0 number of elements, since requests are additive, most likely to "
    "be the result of an erroneous calculation on the behalf of the Subscriber."
)
CANCELLED = "This subscription is considered cancelled. No more messages are processed."


class Source(Protocol):
    """Where a subscription's items come from; asked only while there is demand."""

    async def pull(self) -> Any | None:
        """The next item; None when there is none (any more). Raises the DittoError that fails the
        subscription."""
        ...

    @property
    def exhausted(self) -> bool:
        """Known without pulling: no item follows the last one pulled."""
        ...


@dataclass(frozen=True, slots=True)
class Flavour:
    """What differs between the two protocols: the key of an item in ``next`` and the errors."""

    item_key: str  # "items" (search: one page per unit of demand) or "item" (streaming: one event)
    not_found: type[DittoError]
    protocol_error: type[DittoError]
    timeout: type[DittoError]


@dataclass(eq=False)
class _Subscription:
    id: str
    topic: Topic  # the protocol's topic for this subscription (criterion ``search`` / ``streaming``)
    headers: dict[str, Any]  # of the last command: Ditto answers with the headers of what it answers
    source: Source
    demand: int = 0
    failure: DittoError | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None


class Subscriptions:
    def __init__(self, flavour: Flavour, send: Send, *, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self._flavour = flavour
        self._send = send
        self._idle_timeout_s = idle_timeout_s
        self._active: dict[str, _Subscription] = {}
        self._zombies: dict[str, float] = {}  # id -> monotonic time it is forgotten
        self._next_id = 0

    @property
    def active(self) -> int:
        return len(self._active)

    # ------------------------------------------------------------------------------------------ commands
    def subscribe(self, topic: Topic, headers: dict[str, Any], source: Source) -> str:
        """Raises the protocol error when the session already holds :data:`MAX_ACTIVE` subscriptions."""
        if len(self._active) >= MAX_ACTIVE:
            raise self._flavour.protocol_error(
                f"A session may hold at most {MAX_ACTIVE} active subscriptions.",
                "Cancel subscriptions, or request them to their end, before subscribing again.",
            )
        subscription_id = str(self._next_id)
        self._next_id += 1
        subscription = _Subscription(subscription_id, topic, headers, source)
        self._active[subscription_id] = subscription
        subscription.runner = asyncio.create_task(self._run(subscription))
        return subscription_id

    async def request(self, topic: Topic, headers: dict[str, Any], subscription_id: str, demand: int) -> None:
        subscription = self._active.get(subscription_id)
        if subscription is None:
            await self._refuse(topic, headers, subscription_id, cancelled=self._is_zombie(subscription_id))
            return
        subscription.headers = headers
        if demand <= 0:
            subscription.failure = self._flavour.protocol_error(RULE_3_9, RULE_3_9_DESCRIPTION)
        else:
            subscription.demand += demand
        subscription.wake.set()

    async def cancel(self, topic: Topic, headers: dict[str, Any], subscription_id: str) -> None:
        subscription = self._active.get(subscription_id)
        if subscription is None:
            if not self._is_zombie(subscription_id):
                await self._refuse(topic, headers, subscription_id, cancelled=False)
            return
        self._end(subscription)
        if subscription.runner is not None:
            subscription.runner.cancel()

    def close(self) -> None:
        """The session ended: stop every runner (nothing more is sent)."""
        for subscription in list(self._active.values()):
            if subscription.runner is not None:
                subscription.runner.cancel()
        self._active.clear()
        self._zombies.clear()

    # ------------------------------------------------------------------------------------------ runner
    async def _run(self, subscription: _Subscription) -> None:
        try:
            await self._frame(subscription, "created", {})
            while True:
                if subscription.failure is not None:
                    await self._fail(subscription, subscription.failure)
                    return
                if subscription.demand <= 0:
                    subscription.wake.clear()
                    try:
                        async with asyncio.timeout(self._idle_timeout_s):
                            await subscription.wake.wait()
                    except TimeoutError:
                        await self._fail(subscription, self._timed_out(subscription.id))
                        return
                    continue
                try:
                    item = await subscription.source.pull()
                except DittoError as error:
                    await self._fail(subscription, error)
                    return
                if item is None:
                    await self._frame(subscription, "complete", {})
                    return
                subscription.demand -= 1
                await self._frame(subscription, "next", {self._flavour.item_key: item})
                if subscription.source.exhausted:
                    await self._frame(subscription, "complete", {})
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("subscription %s failed", subscription.id)
            with contextlib.suppress(Exception):
                await self._fail(subscription, DittoError())
        finally:
            self._end(subscription)

    def _timed_out(self, subscription_id: str) -> DittoError:
        return self._flavour.timeout(
            f"The subscription '{subscription_id}' stopped due to a lack of interaction.",
            f"Request more with 'request' within {self._idle_timeout_s:g} seconds, or cancel it.",
        )

    async def _fail(self, subscription: _Subscription, error: DittoError) -> None:
        await self._frame(subscription, "failed", {"error": error.to_json()})

    async def _frame(self, subscription: _Subscription, action: str, value: dict[str, Any]) -> None:
        await self._send(_frame(subscription.topic, action, subscription.headers, subscription.id, value))

    async def _refuse(
        self, topic: Topic, headers: dict[str, Any], subscription_id: str, *, cancelled: bool
    ) -> None:
        error = (
            self._flavour.protocol_error(CANCELLED)
            if cancelled
            else self._flavour.not_found(f"No subscription with ID '{subscription_id}' exists.")
        )
        await self._send(_frame(topic, "failed", headers, subscription_id, {"error": error.to_json()}))

    # ------------------------------------------------------------------------------------------ zombies
    def _end(self, subscription: _Subscription) -> None:
        if self._active.get(subscription.id) is subscription:
            del self._active[subscription.id]
            self._forget_expired()
            self._zombies[subscription.id] = time.monotonic() + ZOMBIE_LIFETIME_S

    def _is_zombie(self, subscription_id: str) -> bool:
        self._forget_expired()
        return subscription_id in self._zombies

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for expired in [sid for sid, until in self._zombies.items() if until <= now]:
            del self._zombies[expired]


def _frame(
    topic: Topic, action: str, headers: dict[str, Any], subscription_id: str, value: dict[str, Any]
) -> str:
    envelope = Envelope(
        topic.with_criterion(topic.criterion, action),
        {**headers, "content-type": JSON},
        "/",
        {"subscriptionId": subscription_id, **value},
    )
    return orjson.dumps(envelope.to_json()).decode()
