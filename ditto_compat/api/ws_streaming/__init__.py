"""Ditto's reactive-streams protocols over ``/ws/2``: search (``protocol-specification-things-search``) and
persisted events (``protocol-specification-streaming-subscription``, ``basic-history``).

A :class:`ReactiveStreams` belongs to one WebSocket session; ``ws.py`` hands it every message whose topic has
the criterion ``search`` or ``streaming`` and closes it when the session ends. Commands (``subscribe`` /
``subscribeForPersistedEvents``, ``request``, ``cancel``) are answered with the protocol's events
(``created``, ``next``, ``complete``, ``failed``), sent through the session; a message of the wrong shape is
answered with an error envelope, as any other protocol message.

- search: ``_/_/things/twin/search/<action>``; pages are the caller's READ views from the HTTP search service
  (search_pages.py);
- streaming: ``<ns>/<name>/things/twin/streaming/<action>`` (Thing events) and ``<ns>/<name>/policies/streaming/
  <action>`` (Policy events), from the journal (persisted_events.py).

Subscriptions are per session (another session's ids are unknown to it) and fail with ``*.timeout`` when they
wait for demand longer than 45 seconds, Ditto's default (subscriptions.py).
"""

from __future__ import annotations

from typing import Any

from ditto_compat.api.context import AppContext
from ditto_compat.api.ws_streaming.commands import (
    cancel_of,
    demand_of,
    persisted_events_subscription,
    search_subscription,
)
from ditto_compat.api.ws_streaming.persisted_events import PolicyEvents, ThingEvents
from ditto_compat.api.ws_streaming.search_pages import SearchPages
from ditto_compat.api.ws_streaming.subscriptions import (
    IDLE_TIMEOUT_S,
    Flavour,
    Send,
    Source,
    Subscriptions,
)
from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import DittoError
from ditto_compat.model.ids import check_policy_id, check_thing_id
from ditto_compat.protocol.envelope import PLACEHOLDER, Envelope, Topic


class SubscriptionSignalUnsupported(DittoError):
    status = 400
    error_code = "things:protocol.message.unsupported"
    default_message = "The Ditto Protocol message is not supported on this endpoint."


def _error(code: str, status: int, message: str) -> type[DittoError]:
    return type(code, (DittoError,), {"error_code": code, "status": status, "default_message": message})


# Ditto's thing-search ``Subscription*Exception`` and base model ``StreamingSubscription*Exception``
SEARCH = Flavour(
    item_key="items",
    not_found=_error("thing-search:subscription.not.found", 404, "The subscription does not exist."),
    protocol_error=_error(
        "thing-search:subscription.protocol.error", 400, "The subscription protocol was violated."
    ),
    timeout=_error("thing-search:subscription.timeout", 408, "The subscription timed out."),
)
STREAMING = Flavour(
    item_key="item",
    not_found=_error("streaming.subscription.not.found", 404, "The subscription does not exist."),
    protocol_error=_error(
        "streaming.subscription.protocol.error", 400, "The subscription protocol was violated."
    ),
    timeout=_error("streaming.subscription.timeout", 408, "The subscription timed out."),
)
SEARCH_TOPIC = Topic(PLACEHOLDER, PLACEHOLDER, "things", "twin", "search")


class ReactiveStreams:
    """The search and streaming subscriptions of one WebSocket session."""

    def __init__(self, *, idle_timeout_s: float = IDLE_TIMEOUT_S) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._search: Subscriptions | None = None
        self._streaming: Subscriptions | None = None

    async def handle(
        self, envelope: Envelope, headers: dict[str, Any], ctx: AppContext, auth: AuthContext, send: Send
    ) -> None:
        """``headers``: what the session echoes of the command (its ``correlation-id``)."""
        topic = envelope.topic
        if topic.criterion == "search":
            if self._search is None:
                self._search = Subscriptions(SEARCH, send, idle_timeout_s=self._idle_timeout_s)
            await self._command(self._search, SEARCH_TOPIC, "subscribe", envelope, headers, ctx, auth)
        elif topic.criterion == "streaming" and topic.channel in (None, "twin"):
            if self._streaming is None:
                self._streaming = Subscriptions(STREAMING, send, idle_timeout_s=self._idle_timeout_s)
            base = topic.with_criterion("streaming")
            await self._command(
                self._streaming, base, "subscribeForPersistedEvents", envelope, headers, ctx, auth
            )
        else:
            raise SubscriptionSignalUnsupported(
                f"The Ditto Protocol message with topic '{topic}' is not supported.",
                "Persisted events are streamed on the twin channel.",
            )

    def close(self) -> None:
        for subscriptions in (self._search, self._streaming):
            if subscriptions is not None:
                subscriptions.close()

    async def _command(
        self,
        subscriptions: Subscriptions,
        base: Topic,
        subscribe_action: str,
        envelope: Envelope,
        headers: dict[str, Any],
        ctx: AppContext,
        auth: AuthContext,
    ) -> None:
        action = envelope.topic.action
        if action == subscribe_action:
            subscriptions.subscribe(base, headers, _source(envelope, ctx, auth))
        elif action == "request":
            demand = demand_of(envelope)
            await subscriptions.request(base, headers, demand.subscription_id, demand.demand)
        elif action == "cancel":
            await subscriptions.cancel(base, headers, cancel_of(envelope).subscription_id)
        else:
            raise SubscriptionSignalUnsupported(
                f"The Ditto Protocol message with topic '{envelope.topic}' is not supported.",
                f"Send '{subscribe_action}', 'request' or 'cancel'.",
            )


def _source(envelope: Envelope, ctx: AppContext, auth: AuthContext) -> Source:
    topic = envelope.topic
    if topic.criterion == "search":
        return SearchPages(ctx.search, auth, search_subscription(envelope))
    query = persisted_events_subscription(envelope)
    if topic.group == "policies":
        return PolicyEvents(ctx, auth, check_policy_id(topic.entity_id), query)
    return ThingEvents(ctx, auth, check_thing_id(topic.entity_id), query)


__all__ = ["IDLE_TIMEOUT_S", "ReactiveStreams"]
