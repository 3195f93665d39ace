"""The persisted events of one Thing or Policy, as a streaming subscription delivers them
(``protocol-specification-streaming-subscription``, ``basic-history``).

The journal is read lazily, a chunk of revisions at a time, once the client asked for items; each ``next``
carries one event in Ditto Protocol JSON (``<ns>/<name>/things/twin/events/<action>`` with path, value,
revision and timestamp; policies: ``<ns>/<name>/policies/events/<action>``).

Range: ``fromHistoricalRevision`` 0 (the default) is the oldest kept revision, a negative one is relative to
the current revision (as ``from-historical-revision`` of the SSE stream, api/sse.py); ``toHistoricalRevision``
absent or 0 is the current revision, a negative one is relative to it. ``from/toHistoricalTimestamp`` keep the
events whose own timestamp lies within them, both bounds inclusive. The stream ends at the revision that was
current when the first items were asked for. Snapshot entries of a bounded journal (``journal_retention``)
are not events and are skipped.

Access follows the rule of retrieving history (service/history.py): the entity's *current* policy governs all
of its past (a deleted Thing's: the policy of its last live revision). A caller who may not READ any part of
the Thing gets ``things:thing.notfound`` as ``failed`` (Ditto's ``StreamPersistedEventsIT``); otherwise each
event is reduced to the caller's READ view and checked against the ``filter`` exactly as a live event
(service/hub.py :func:`~ditto_compat.service.hub.deliver`), and an event the caller cannot see is left out.
Policies: their events are streamed only to a caller with unrestricted READ on ``policy:/`` (a policy's events
are not reduced to partial views), others get ``policies:policy.notfound``; ``filter`` applies to Thing
events only, as Ditto documents, and is ignored for policies.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from ditto_compat.api.context import AppContext
from ditto_compat.api.ws_streaming.commands import PersistedEventsSubscription
from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import READ
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingChange, ThingEvent
from ditto_compat.domain.history import HistoryCollection, parse_timestamp, replay
from ditto_compat.domain.policy_commands import PolicyEvent
from ditto_compat.domain.policy_resources import policy_not_found
from ditto_compat.domain.resources import thing_not_found
from ditto_compat.model.ids import namespace_of
from ditto_compat.protocol.envelope import Envelope, Topic
from ditto_compat.service.hub import deliver, subscription_for
from ditto_compat.service.signal_envelopes import event_envelope

CHUNK_REVISIONS = 200  # journal entries read per round trip

Render = Callable[[dict[str, Any]], dict[str, Any] | None]  # journal entry -> protocol JSON (None: hidden)


class _JournalEvents:
    """A :class:`~ditto_compat.api.ws_streaming.subscriptions.Source` of one entity's journal; subclasses say
    who may see what (:meth:`_open`)."""

    collection: HistoryCollection

    def __init__(
        self, ctx: AppContext, auth: AuthContext, entity_id: str, query: PersistedEventsSubscription
    ) -> None:
        self._ctx = ctx
        self._auth = auth
        self._entity_id = entity_id
        self._query = query
        self._render: Render | None = None
        self._next_revision = 1
        self._upper = 0
        self._finished = False
        self._buffer: deque[dict[str, Any]] = deque()

    @property
    def exhausted(self) -> bool:
        return self._finished and not self._buffer

    async def pull(self) -> dict[str, Any] | None:
        if self._render is None:
            current = await self._ctx.store.get(self.collection, self._entity_id)
            self._render = await self._open(current)
            assert current is not None  # _open raised otherwise
            self._next_revision, self._upper = self._bounds(current.revision)
        await self._fill()
        if not self._buffer:
            return None
        item = self._buffer.popleft()
        await self._fill()  # read ahead, so that the last event is followed by ``complete`` at once
        return item

    async def _open(self, current: EntityState | None) -> Render:
        """Check the caller's access (raise the entity's not-found) and say how an entry is shown."""
        raise NotImplementedError

    def _bounds(self, current: int) -> tuple[int, int]:
        query = self._query
        start = query.from_revision
        if start < 0:
            start = current + start
        retention = self._ctx.settings.journal_retention
        if retention > 0:  # older revisions are not kept: no need to ask for them
            start = max(start, current - retention + 1)
        to = query.to_revision
        upper = current if not to else (current + to if to < 0 else min(to, current))
        return max(start, 1), upper

    async def _fill(self) -> None:
        assert self._render is not None
        while not self._buffer and not self._finished:
            if self._next_revision > self._upper:
                self._finished = True
                return
            to = min(self._next_revision + CHUNK_REVISIONS - 1, self._upper)
            entries = await self._ctx.store.journal(
                self.collection, self._entity_id, from_revision=self._next_revision, to_revision=to
            )
            self._next_revision = to + 1
            for entry in entries:
                if entry.get("snapshot"):
                    continue
                timestamp = parse_timestamp(str(entry["timestamp"]))
                if self._query.from_timestamp is not None and timestamp < self._query.from_timestamp:
                    continue
                if self._query.to_timestamp is not None and timestamp > self._query.to_timestamp:
                    self._finished = True  # the journal is in time order: nothing later qualifies
                    break
                rendered = self._render(entry)
                if rendered is not None:
                    self._buffer.append(rendered)


class ThingEvents(_JournalEvents):
    collection: HistoryCollection = "things"

    async def _open(self, current: EntityState | None) -> Render:
        thing_id = self._entity_id
        if current is None:
            raise thing_not_found(thing_id)
        governing = current if current.doc is not None else await self._last_live()
        enforcer = await self._ctx.dispatcher.thing_enforcer(governing) if governing is not None else None
        subjects = self._auth.subjects
        if enforcer is None or not guard.can_retrieve(enforcer, subjects, ()):
            raise thing_not_found(thing_id)
        subscription = subscription_for(subjects, filter_text=self._query.filter)  # raises the RQL error
        created = current.created

        def render(entry: dict[str, Any]) -> dict[str, Any] | None:
            event = ThingEvent.from_json(entry)
            # what deliver() reads of a change: the event, its time of creation (``_created`` in filters)
            state = EntityState(thing_id, event.revision, None, created, event.timestamp)
            delivery = deliver(enforcer, subscription, ThingChange(event, state, None, {}))
            return None if delivery is None else event_envelope(delivery).to_json()

        return render

    async def _last_live(self) -> EntityState | None:
        entries = await self._ctx.store.journal("things", self._entity_id)
        states = replay("things", self._entity_id, entries)
        return next((s for s in reversed(states) if s.doc is not None), None)


class PolicyEvents(_JournalEvents):
    collection: HistoryCollection = "policies"

    async def _open(self, current: EntityState | None) -> Render:
        policy_id = self._entity_id
        if current is None or current.doc is None:
            raise policy_not_found(policy_id)
        enforcer = await self._ctx.policies.enforcers.enforcer_of(current, namespace_of(policy_id))
        if not enforcer.has_unrestricted(self._auth.subjects, "policy:/", (READ,)):
            raise policy_not_found(policy_id)
        return _policy_event_json


def _policy_event_json(entry: dict[str, Any]) -> dict[str, Any]:
    event = PolicyEvent.from_json(entry)
    namespace, _, name = event.policy_id.partition(":")
    envelope = Envelope(
        Topic(namespace, name, "policies", None, "events", event.action),
        {},
        event.path,
        event.value,
        revision=event.revision,
        timestamp=event.timestamp or None,
    )
    return envelope.to_json()
