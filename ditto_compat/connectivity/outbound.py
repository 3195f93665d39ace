"""The hub's events, messages and live commands out to a connection's targets (``basic-connections``
"Targets", ``connectivity-header-mapping``, ``basic-placeholders``).

Each target topic is a subscription like a WebSocket client's, under the target's ``authorizationContext``:
``_/_/things/twin/events`` and ``_/_/things/live/events`` (with ``namespaces``, ``filter``, ``extraFields``)
subscribe to the event hub, ``_/_/things/live/messages`` and ``_/_/things/live/commands`` register with the
message router, ``_/_/policies/announcements`` receives the subject deletion announcements for the target's
subjects (as a ``/ws/2`` session does), and ``_/_/connections/announcements`` the connection's own ``opened``
and ``closed`` announcements (:meth:`OutboundPipeline.announce`). Every signal is mapped by the target's payload
mappers, its address and mapped headers are resolved from placeholders (an address that cannot be resolved drops
the message, as in Ditto), and it is published by the client adapter. Each target publishes in order, from its
own task, so a slow broker delays only its own target; a target that falls behind by more than its queue is
resubscribed, and what it missed is counted and logged as dropped.

Acknowledgements (``basic-acknowledgements``, "issued by connection targets"). A target with an
``issuedAcknowledgementLabel`` declares that label while the connection is open; an event that requests it is
acknowledged once the target published it: 200 when every message the mappers made was published, 503 with
the error when one was not, and a weak acknowledgement when the target's filter, namespaces or mapping let
nothing out, so the requester never waits for its timeout because of a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ditto_compat.connectivity.definition import CONNECTION_ID_PLACEHOLDER
from ditto_compat.connectivity.external import ExternalMessage
from ditto_compat.connectivity.mapping.base import MessageMapper
from ditto_compat.connectivity.model import Connection, Target, TargetTopic
from ditto_compat.connectivity.monitor import ConnectionMonitor
from ditto_compat.connectivity.placeholders import PlaceholderSource, Template, compile_template
from ditto_compat.errors import DittoError
from ditto_compat.protocol.envelope import Envelope, parse_envelope, parse_topic
from ditto_compat.service.acks import Ack, AckRouter, requested_labels
from ditto_compat.service.hub import EventHub, Subscription, subscription_for
from ditto_compat.service.messages import MessageRouter, ThingMessage
from ditto_compat.service.policy_announcements import PolicyAnnouncer
from ditto_compat.service.signal_envelopes import event_envelope, message_envelope

log = logging.getLogger(__name__)

Publisher = Callable[[ExternalMessage, Target], Awaitable[None]]
Clock = Callable[[], str]
# Events a target may fall behind by before it is resubscribed (and the missed ones counted as dropped).
TARGET_QUEUE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class TargetRoute:
    """One target, compiled once when the connection opens."""

    target: Target
    mappers: tuple[MessageMapper, ...]
    address: Template
    header_mapping: tuple[tuple[str, Template], ...]


def compile_target(target: Target, mappers: Sequence[MessageMapper]) -> TargetRoute:
    return TargetRoute(
        target=target,
        mappers=tuple(mappers),
        address=compile_template(target.address),
        header_mapping=tuple((k, compile_template(v)) for k, v in target.header_mapping.items()),
    )


@dataclass(eq=False)
class _Signals:
    """Messages and live commands for one target: the message router offers them here (a receiver)."""

    subjects: tuple[str, ...]
    namespaces: frozenset[str] | None
    live_namespaces: frozenset[str] | None
    on_dropped: Callable[[Envelope], None]
    queue: asyncio.Queue[Envelope] = field(default_factory=lambda: asyncio.Queue(TARGET_QUEUE_SIZE))

    def offer_message(self, message: ThingMessage) -> bool:
        return self._offer(message_envelope(message))

    def offer_live_command(self, frame: dict[str, Any]) -> bool:
        try:
            envelope = parse_envelope(frame)
        except DittoError:
            return False
        return self._offer(envelope)

    def _offer(self, envelope: Envelope) -> bool:
        try:
            self.queue.put_nowait(envelope)
        except asyncio.QueueFull:
            self.on_dropped(envelope)
            return False
        return True


class _NothingPublished:
    """The target's mappers made nothing of the signal, or its address could not be resolved."""


_NOTHING_PUBLISHED = _NothingPublished()


@dataclass(eq=False, slots=True)
class _Issuer:
    """A target that issues an acknowledgement label: the owner of that label in the ack router."""

    label: str


def _requested(envelope: Envelope) -> tuple[str, ...]:
    try:
        return requested_labels(envelope.header("requested-acks")) or ()
    except DittoError:  # an event's headers are its command's, already checked
        return ()


class OutboundPipeline:
    def __init__(
        self,
        connection: Connection,
        routes: Sequence[TargetRoute],
        hub: EventHub,
        messages: MessageRouter,
        monitor: ConnectionMonitor,
        publish: Publisher,
        clock: Clock,
        *,
        acks: AckRouter | None = None,
        announcer: PolicyAnnouncer | None = None,
    ) -> None:
        self._connection = connection
        self._routes = tuple(routes)
        self._hub = hub
        self._messages = messages
        self._monitor = monitor
        self._publish = publish
        self._clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[Subscription] = []
        self._receivers: list[_Signals] = []
        self._acks = acks
        self._issuers: dict[int, _Issuer] = {}  # by target index
        self._announcer = announcer
        self._announcement_keys: list[object] = []

    def start(self) -> None:
        self._declare_labels()
        for route in self._routes:
            for topic in route.target.topics:
                if topic.kind in ("twin/events", "live/events"):
                    self._tasks.append(asyncio.create_task(self._pump_events(route, topic)))
                elif topic.kind in ("live/messages", "live/commands"):
                    self._tasks.append(asyncio.create_task(self._pump_signals(route, topic)))
                elif topic.kind == "policies/announcements" and self._announcer is not None:
                    self._tasks.append(asyncio.create_task(self._pump_policy_announcements(route, topic)))
                # connection announcements: announce()

    async def announce(self, name: str, value: dict[str, Any]) -> None:
        """A connection announcement (``protocol-specification-connections``: ``opened`` with ``openedAt``,
        ``closed`` with ``closedAt``) to the targets subscribed to ``_/_/connections/announcements``, mapped and
        published like any signal; a failure is counted and logged like any other."""
        routes = [
            r for r in self._routes if any(t.kind == "connections/announcements" for t in r.target.topics)
        ]
        if not routes:
            return
        try:
            topic = parse_topic(f"_/{self._connection.id}/connections/announcements/{name}")
        except DittoError as error:  # an id that cannot be the name of a topic
            for route in routes:
                self._log(
                    "failure", "dispatched", f"{error.error_code}: {error.message}", route.target.address
                )
            return
        envelope = Envelope(topic, {"content-type": "application/json"}, "/", value)
        for route in routes:
            await self._publish_mapped(route, envelope)

    def _declare_labels(self) -> None:
        if self._acks is None:
            return
        for route in self._routes:
            label = route.target.issued_acknowledgement_label
            if label is None:
                continue
            issuer = _Issuer(CONNECTION_ID_PLACEHOLDER.sub(f"{self._connection.id}:", label))
            try:
                self._acks.declare([issuer.label], issuer)
            except (
                DittoError
            ) as error:  # e.g. a WebSocket session declared it first: the target issues nothing
                self._log(
                    "failure", "dispatched", f"{error.error_code}: {error.message}", route.target.address
                )
                continue
            self._issuers[route.target.index] = issuer

    async def stop(self) -> None:
        if self._announcer is not None:
            for key in self._announcement_keys:
                self._announcer.remove(key)
        self._announcement_keys.clear()
        if self._acks is not None:
            for issuer in self._issuers.values():
                self._acks.release(issuer)
        self._issuers.clear()
        for subscription in self._subscriptions:
            self._hub.remove(subscription)
        for receiver in self._receivers:
            self._messages.remove(receiver)
            self._messages.remove_live(receiver)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._subscriptions.clear()
        self._receivers.clear()

    # ------------------------------------------------------------------------------------------ events
    def _subscribe(self, route: TargetRoute, topic: TargetTopic) -> Subscription:
        subscription = subscription_for(
            route.target.authorization_context,
            namespaces=topic.namespaces,
            filter_text=topic.filter,
            extra_fields_text=topic.extra_fields,
            channel="live" if topic.kind == "live/events" else "twin",
            queue_size=TARGET_QUEUE_SIZE,
            owner=self._issuers.get(route.target.index),
        )
        self._hub.add(subscription)
        self._subscriptions.append(subscription)
        return subscription

    async def _pump_events(self, route: TargetRoute, topic: TargetTopic) -> None:
        subscription = self._subscribe(route, topic)
        while True:
            delivery = await subscription.next()
            if delivery is None:
                # Fell behind by a whole queue: say so, count what was lost, and carry on with a new one.
                self._monitor.record("outbound", "dropped", False, route.target.address, subscription.dropped)
                self._log(
                    "failure",
                    "dispatched",
                    f"The target could not keep up: {subscription.dropped} events were dropped.",
                    route.target.address,
                )
                self._subscriptions.remove(subscription)
                subscription = self._subscribe(route, topic)
                continue
            await self._send(route, event_envelope(delivery))

    # ------------------------------------------------------------------------------------------ messages
    async def _pump_signals(self, route: TargetRoute, topic: TargetTopic) -> None:
        def dropped(envelope: Envelope) -> None:
            # the target fell a whole queue behind: the signal is not sent, and that is counted and logged
            self._monitor.record("outbound", "dropped", False, route.target.address)
            self._log(
                "failure",
                "dispatched",
                f"The target could not keep up: the signal {envelope.topic} was dropped.",
                route.target.address,
                envelope,
            )

        receiver = _Signals(route.target.authorization_context, topic.namespaces, topic.namespaces, dropped)
        self._receivers.append(receiver)
        if topic.kind == "live/messages":
            self._messages.add(receiver)
        else:
            self._messages.add_live(receiver)
        while True:
            envelope = await receiver.queue.get()
            await self._send(route, envelope)

    # ------------------------------------------------------------------------------------------ announcements
    async def _pump_policy_announcements(self, route: TargetRoute, topic: TargetTopic) -> None:
        """Subject deletion announcements (service/policy_announcements.py) for the target's own subjects, of
        policies in the topic's ``namespaces``, as a ``/ws/2`` session gets them."""
        assert self._announcer is not None
        # a full queue: the announcer counts the announcement as dropped
        queue: asyncio.Queue[str] = asyncio.Queue(TARGET_QUEUE_SIZE)
        key = object()
        self._announcement_keys.append(key)
        self._announcer.add(key, route.target.authorization_context, topic.namespaces, queue.put_nowait)
        while True:
            frame = await queue.get()
            await self._send(route, parse_envelope(frame))

    # ------------------------------------------------------------------------------------------ sending
    async def _send(self, route: TargetRoute, envelope: Envelope) -> None:
        issuer = self._issuers.get(route.target.index)
        if issuer is None or issuer.label not in _requested(envelope):
            await self._publish_mapped(route, envelope)
            return
        failure = await self._publish_mapped(route, envelope)
        correlation_id = envelope.correlation_id or ""
        headers: dict[str, Any] = {"correlation-id": correlation_id}
        if failure is None:
            ack = Ack(issuer.label, 200, headers)
        elif isinstance(failure, _NothingPublished):
            ack = Ack(issuer.label, 200, {**headers, "ditto-weak-ack": True})
        else:
            error = {"status": 503, "error": "connectivity:message.sending.failed", "message": failure}
            ack = Ack(issuer.label, 503, headers, error)
        assert self._acks is not None
        self._acks.issue(correlation_id, ack)

    async def _publish_mapped(self, route: TargetRoute, envelope: Envelope) -> str | _NothingPublished | None:
        """Map, address and publish one signal; None when every message went out, else what went wrong."""
        target = route.target
        self._monitor.record("outbound", "dispatched", True, target.address)
        try:
            outgoing: list[ExternalMessage] = []
            for mapper in route.mappers:
                outgoing.extend(mapper.map_outgoing(envelope))
        except DittoError as error:
            self._monitor.record("outbound", "mapped", False, target.address)
            self._log("failure", "mapped", f"{error.error_code}: {error.message}", target.address, envelope)
            return f"The signal could not be mapped: {error.message}"
        self._monitor.record("outbound", "mapped", True, target.address)
        if not outgoing:
            return _NOTHING_PUBLISHED
        placeholders = PlaceholderSource.for_envelope(envelope, connection_id=self._connection.id)
        address = route.address.resolve(placeholders)
        if address is None:  # Ditto drops a message whose target address cannot be resolved
            self._monitor.record("outbound", "dropped", True, target.address)
            return _NOTHING_PUBLISHED
        failure: str | None = None
        for message in outgoing:
            message.address = address
            for name, template in route.header_mapping:
                value = template.resolve(placeholders)
                if value is not None:
                    message.headers[name] = value
            try:
                await self._publish(message, target)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # logged and counted; the next signal is tried
                # counted under the target's address as configured, as Ditto does (one series per resolved
                # address would grow with the Things); the log names the resolved one
                self._monitor.record("outbound", "published", False, target.address)
                self._log("failure", "published", f"Publishing failed: {error}", address, envelope)
                failure = f"Publishing to '{address}' failed: {error}"
                continue
            self._monitor.record("outbound", "published", True, target.address)
        return failure

    def _log(self, level: Any, step: str, text: str, address: str, envelope: Envelope | None = None) -> None:
        self._monitor.log(
            "target",
            step,
            level,
            text,
            timestamp=self._clock(),
            address=address,
            correlation_id=envelope.correlation_id if envelope is not None else None,
            entity_id=envelope.topic.entity_id if envelope is not None else None,
        )
