"""Fan-out of Thing events to subscribers (``/ws/2`` sessions, SSE streams), with Ditto's rules.

The dispatcher publishes a :class:`ThingChange` after each commit, still under the Thing's lock, so the hub
sees each Thing's events in revision order; live events that devices send over ``/ws/2`` take the same way,
on the ``live`` channel, to the subscriptions of that channel. Publishing only appends to the hub's own
queue: a writer never waits for subscribers. One task (:meth:`EventHub.run`) takes the changes in order,
resolves the Thing's enforcer once per change, and offers each subscription what it may see:

- nothing, unless the subscription's subjects may READ something at the event's path (``thing:/<path>``);
- the event's value reduced to the subject's READ view (an event whose value is entirely hidden is dropped);
- only for Things in the subscription's namespaces / ids, and whose partial Thing (the changed part, plus the
  ``extraFields`` read from the Thing after the change, as the subscriber may read them) matches its filter.

Every subscription has a bounded queue. When it is full the subscription is *overflowed*: it is closed, the
events it could not take are counted as dropped (:attr:`EventHub.dropped`), and its consumer is told, so that
it can tell its client (an error frame, the end of a stream). A slow subscriber never slows writers or the
other subscribers, and no event is lost without being counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.enforcer import READ, Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingChange
from ditto_compat.model.fields import FieldSelector, parse_fields, project
from ditto_compat.model.ids import namespace_of
from ditto_compat.model.pointer import MISSING, Pointer, set_at
from ditto_compat.rql.evaluator import compile_query
from ditto_compat.rql.fields import searchable_document, validate_query
from ditto_compat.rql.parser import parse_rql

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000

EnforcerOf = Callable[[EntityState], Awaitable[Enforcer | None]]


@dataclass(eq=False, slots=True)
class Delivery:
    """One event as a subscriber may see it. Subscribers with the same subjects and extra fields share one
    Delivery per event, so a consumer renders it once (``rendered``: its memo, by consumer kind)."""

    change: ThingChange
    value: Any  # the event's value reduced to the READ view (MISSING when the event has none)
    extra: dict[str, Any] | None  # the requested extra fields, as readable (None when none were asked for)
    rendered: dict[str, Any] = field(default_factory=dict)


Sink = Callable[[Delivery], bool]  # takes a delivery at once; False when its consumer's buffer is full


@dataclass(eq=False)
class Subscription:
    """What one consumer wants to see. ``matches`` takes the partial Thing (searchable document form) and
    says whether the consumer's filter accepts it.

    Deliveries wait in the subscription's bounded queue for the consumer to take them (:meth:`next`), or, with
    a ``sink``, are handed to the consumer as they are offered: a WebSocket session puts the rendered frame
    straight into its own bounded outbound queue, saving a task switch per frame. A sink that refuses a
    delivery overflows the subscription like a full queue does, and ``on_end`` is called instead of waking
    :meth:`next`."""

    subjects: tuple[str, ...]
    namespaces: frozenset[str] | None = None
    thing_ids: frozenset[str] | None = None
    matches: Callable[[Mapping[str, Any]], bool] | None = None
    filter_text: str | None = None  # the RQL ``matches`` was compiled from: equal filters are evaluated once
    extra_fields: FieldSelector | None = None
    channel: str = "twin"
    queue_size: int = DEFAULT_QUEUE_SIZE
    sink: Sink | None = None
    on_end: Callable[[], None] | None = None
    # the consumer (a WebSocket session): it does not get the live events it announced itself, and it is who
    # the acknowledgement labels it declared belong to (weak acknowledgements, see EventHub)
    owner: object | None = None
    dropped: int = 0
    overflowed: bool = False
    _queue: asyncio.Queue[Delivery | None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.sink is None:
            self._queue = asyncio.Queue(self.queue_size)

    async def next(self) -> Delivery | None:
        """The next delivery; None once the subscription overflowed (everything offered before that first)."""
        queue = self._queue
        if queue is None:
            raise RuntimeError("a subscription with a sink has no queue to take deliveries from")
        if self.overflowed and queue.empty():
            return None
        return await queue.get()

    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _offer(self, delivery: Delivery) -> bool:
        if self.overflowed:
            self.dropped += 1
            return False
        if self.sink is not None:
            accepted = self.sink(delivery)
        else:
            assert self._queue is not None
            try:
                self._queue.put_nowait(delivery)
                accepted = True
            except asyncio.QueueFull:
                accepted = False
        if not accepted:
            self.overflowed = True
            self.dropped += 1
            self._wake_with_end()
        return accepted

    def _wake_with_end(self) -> None:
        if self.on_end is not None:
            self.on_end()
            return
        # The end marker must reach a consumer blocked on an empty queue; with a full queue the consumer is
        # busy and meets ``overflowed`` when it has drained what it holds.
        if self._queue is not None:
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)


def subscription_for(
    subjects: tuple[str, ...],
    *,
    namespaces: frozenset[str] | None = None,
    filter_text: str | None = None,
    extra_fields_text: str | None = None,
    channel: str = "twin",
    queue_size: int = DEFAULT_QUEUE_SIZE,
    sink: Sink | None = None,
    on_end: Callable[[], None] | None = None,
    owner: object | None = None,
) -> Subscription:
    """A subscription from Ditto's textual options (``namespaces``, RQL ``filter``, ``extraFields``), as a
    WebSocket ``START-SEND-EVENTS`` or a connection target's topic gives them. Raises the RQL or fields error."""
    matches = None
    if filter_text:
        query = parse_rql(filter_text)
        validate_query(query)
        matches = compile_query(query)
    return Subscription(
        subjects,
        namespaces=namespaces,
        matches=matches,
        filter_text=filter_text or None,
        extra_fields=parse_fields(extra_fields_text) if extra_fields_text else None,
        channel=channel,
        queue_size=queue_size,
        sink=sink,
        on_end=on_end,
        owner=owner,
    )


class _Audience:
    """The subscriptions that see every event alike: same channel, subjects, namespaces, ids, filter and extra
    fields. The hub decides once per audience and event (1,000 sessions with ten distinct filters cost ten
    filter evaluations per event, not a thousand)."""

    __slots__ = ("members", "sample")

    def __init__(self, sample: Subscription) -> None:
        self.sample = sample  # any member: they differ only in their queues
        self.members: list[Subscription] = []


def _audience_key(subscription: Subscription) -> tuple[Any, ...]:
    # A filter given only as a function cannot be compared with another: such a subscription is its own audience.
    matcher: Any = None
    if subscription.matches is not None:
        matcher = subscription.filter_text if subscription.filter_text is not None else id(subscription)
    return (
        subscription.channel,
        subscription.subjects,
        subscription.namespaces,
        subscription.thing_ids,
        matcher,
        subscription.extra_fields,
    )


WithheldListener = Callable[[ThingChange, set[object]], None]


class EventHub:
    """See the module docstring. ``on_withheld``: told, for an event that requests acknowledgements, which
    subscription owners of its channel did not get it (filtered out, not allowed to READ it, or its sender), so
    that the labels they declared can be answered with weak acknowledgements (``basic-acknowledgements``)."""

    def __init__(self, enforcer_of: EnforcerOf, *, on_withheld: WithheldListener | None = None) -> None:
        self._enforcer_of = enforcer_of
        self._on_withheld = on_withheld
        self._changes: asyncio.Queue[ThingChange] = asyncio.Queue()
        self._audiences: dict[tuple[Any, ...], _Audience] = {}
        self._subscriptions: dict[Subscription, tuple[Any, ...]] = {}  # -> its audience's key
        self.delivered = 0
        self.dropped = 0  # events subscribers could not take (overflow), over the hub's lifetime
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for subscription in list(self._subscriptions):
            subscription._wake_with_end()
        self._subscriptions.clear()
        self._audiences.clear()

    # ------------------------------------------------------------------------------------------ subscribers
    def add(self, subscription: Subscription) -> Subscription:
        if subscription in self._subscriptions:
            return subscription
        key = _audience_key(subscription)
        audience = self._audiences.get(key)
        if audience is None:
            audience = self._audiences[key] = _Audience(subscription)
        audience.members.append(subscription)
        self._subscriptions[subscription] = key
        return subscription

    def remove(self, subscription: Subscription) -> None:
        key = self._subscriptions.pop(subscription, None)
        if key is None:
            return
        audience = self._audiences[key]
        audience.members.remove(subscription)
        if not audience.members:
            del self._audiences[key]
        elif audience.sample is subscription:
            audience.sample = audience.members[0]

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    # ------------------------------------------------------------------------------------------ events
    def publish(self, change: ThingChange) -> None:
        """The dispatcher's listener: never blocks, never fails the write."""
        if self._subscriptions:
            self._changes.put_nowait(change)

    async def run(self) -> None:
        while True:
            change = await self._changes.get()
            try:
                await self._fan_out(change)
            except Exception:  # one bad event must not stop delivery of the next ones
                log.exception("event fan-out failed for %s", change.event.thing_id)
            finally:
                self._changes.task_done()

    async def drain(self) -> None:
        """Wait until every published change has been offered (tests, orderly shutdown)."""
        await self._changes.join()

    async def _fan_out(self, change: ThingChange) -> None:
        if self._on_withheld is None or "requested-acks" not in change.headers:
            await self._offer_all(change, None)
            return
        owners = {s.owner for s in self._subscriptions if s.owner is not None and s.channel == change.channel}
        reached: set[object] = set()
        try:
            await self._offer_all(change, reached)
        finally:
            if owners - reached:
                self._on_withheld(change, owners - reached)

    async def _offer_all(self, change: ThingChange, reached: set[object] | None) -> None:
        """Offer ``change`` to every subscription that may see it; adds to ``reached`` the owners it was for
        (whether or not their buffer could take it)."""
        audiences = [a for a in self._audiences.values() if _wants(a.sample, change)]
        if not audiences:
            return
        thing = change.thing
        if thing is None:
            return
        state = EntityState(change.event.thing_id, change.state.revision, thing, "", "")
        enforcer = await self._enforcer_of(state)
        if enforcer is None:
            return
        # The READ view, extra fields and partial Thing depend on the subjects and extra fields only: computed
        # once per such shape, however many audiences (filters) share it.
        views: dict[tuple[tuple[str, ...], FieldSelector | None], _Seen | None] = {}
        for audience in audiences:
            sample = audience.sample
            shape = (sample.subjects, sample.extra_fields)
            if shape not in views:
                views[shape] = _see(enforcer, sample.subjects, sample.extra_fields, change)
            seen = views[shape]
            if seen is None:
                continue
            delivery, partial = seen
            if sample.matches is not None and not sample.matches(partial):
                continue
            for subscription in list(audience.members):
                if change.origin is not None and subscription.owner is change.origin:
                    continue
                if reached is not None:  # meant for it: an overflow is not a filter, so no weak ack
                    reached.add(subscription.owner)
                if subscription._offer(delivery):
                    self.delivered += 1
                else:
                    self.dropped += 1
                    if subscription.overflowed:
                        self.remove(subscription)


def _wants(subscription: Subscription, change: ThingChange) -> bool:
    thing_id = change.event.thing_id
    if subscription.channel != change.channel:
        return False
    if subscription.thing_ids is not None and thing_id not in subscription.thing_ids:
        return False
    return subscription.namespaces is None or namespace_of(thing_id) in subscription.namespaces


def deliver(enforcer: Enforcer, subscription: Subscription, change: ThingChange) -> Delivery | None:
    """What ``subscription`` sees of ``change`` (None: nothing), by the rules in the module docstring."""
    seen = _see(enforcer, subscription.subjects, subscription.extra_fields, change)
    if seen is None:
        return None
    delivery, partial = seen
    if subscription.matches is not None and not subscription.matches(partial):
        return None
    return delivery


_Seen = tuple[Delivery, dict[str, Any]]  # the delivery, and the partial Thing a filter is evaluated on


def _see(
    enforcer: Enforcer, subjects: tuple[str, ...], extra_fields: FieldSelector | None, change: ThingChange
) -> _Seen | None:
    event = change.event
    if not enforcer.has_partial(subjects, guard.thing_resource(event.path), (READ,)):
        return None
    value: Any = MISSING
    if event.value is not MISSING:
        if event.path:
            value = enforcer.read_view(subjects, guard.thing_resource(event.path), event.value)
        elif isinstance(event.value, dict):
            value = guard.thing_view(enforcer, subjects, event.thing_id, event.value)
        else:
            value = enforcer.read_view(subjects, "thing:/", event.value)
        if value is MISSING:
            return None
    extra = None
    if extra_fields is not None:
        # projected first, then reduced: the view of the few selected fields, not of the whole Thing
        doc = change.state.doc if change.state.doc is not None else {}
        extra = guard.thing_view(enforcer, subjects, event.thing_id, project(doc, extra_fields))
    return Delivery(change, value, extra), partial_thing(change, value, extra)


def partial_thing(change: ThingChange, value: Any, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The event as the part of a Thing it changed, with the extra fields merged in, in the searchable
    document form a filter is evaluated on (``thingId``, ``_revision``, ``_modified`` ...)."""
    event = change.event
    doc: dict[str, Any] = {}
    if extra:
        doc.update(extra)
    if value is not MISSING:
        path: Pointer = event.path
        if path:
            doc = set_at(doc, path, value)
        elif isinstance(value, dict):
            doc.update(value)
    return searchable_document(doc, event.thing_id, event.revision, change.state.created, event.timestamp)
