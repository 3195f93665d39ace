"""Retrieve a Thing or a Policy as it was (``basic-history``: ``at-historical-revision`` /
``at-historical-timestamp``).

The state at the asked-for point is replayed from the journal (domain/history.py) and then answered exactly as a
current one (same views, ETag of that revision, field selection, preconditions), through the retrieve path of
the Things dispatcher and the Policies service.

Enforcement uses the *current* policy, as Ditto's enforcer actors do: they authorize every command of an entity
with the policy the entity has now, whatever revision the command asks for. A caller who may not READ the
addressed resource today gets that resource's ``*.notfound``, even if an older policy let them read it. A deleted
entity has no current policy; its history stays readable with the last policy it had (the policy of the Thing's
last live revision, resp. the policy's own last live revision, evaluated as it is now for a Thing).

Errors: an entity that never existed answers the usual ``things:thing.notfound`` /
``policies:policy.notfound``; a revision that is not in the journal (below 1, above the current one, pruned by
``journal_retention``), a point in time before the oldest kept entry, or a revision at which the entity was
deleted answer Ditto's ``things:thing.history.notfound`` / ``policies:policy.history.notfound`` (404).
"""

from __future__ import annotations

from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import READ
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.history import (
    HistoricalPoint,
    HistoryCollection,
    parse_timestamp,
    replay,
    state_at,
)
from ditto_compat.domain.policy_commands import PolicyCommand, PolicyOutcome, prepare
from ditto_compat.domain.policy_resources import policy_not_found
from ditto_compat.domain.resources import thing_not_found
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import Store
from ditto_compat.service.dispatcher import Dispatcher
from ditto_compat.service.policies import PolicyService


class HistoryService:
    def __init__(self, dispatcher: Dispatcher, policies: PolicyService) -> None:
        self._dispatcher = dispatcher
        self._policies = policies
        self._store: Store = dispatcher.store

    async def thing_at(self, cmd: ThingCommand, auth: AuthContext, point: HistoricalPoint) -> Outcome:
        current = await self._store.get("things", cmd.thing_id)
        if current is None:
            raise thing_not_found(cmd.thing_id)
        target, last_live = await self._locate("things", current, point)
        enforcer = await self._dispatcher.thing_enforcer(last_live) if last_live is not None else None
        if enforcer is None:  # no policy (any more): nobody may see the Thing, nor its past
            raise thing_not_found(cmd.thing_id)
        if target is None or target.doc is None:
            # only a caller who may READ the resource learns that the revision is missing; others get the
            # resource's not-found, as for any retrieve (retrieve_from checks the same for found states)
            guard.authorize_retrieve(enforcer, auth.subjects, cmd)
            raise point.not_accessible("things", cmd.thing_id)
        return self._dispatcher.retrieve_from(cmd, auth, target, enforcer)

    async def policy_at(self, cmd: PolicyCommand, auth: AuthContext, point: HistoricalPoint) -> PolicyOutcome:
        cmd = prepare(cmd, auth.default_subject)
        current = await self._store.get("policies", cmd.policy_id)
        if current is None:
            raise policy_not_found(cmd.policy_id)
        target, last_live = await self._locate("policies", current, point)
        if last_live is None or last_live.doc is None:
            raise policy_not_found(cmd.policy_id)
        namespace = namespace_of(cmd.policy_id)
        if last_live is current:
            enforcer = await self._policies.enforcers.enforcer_of(current, namespace)
        else:  # deleted: its last live revision governs its past
            enforcer = await self._policies.enforcers.compile_unsaved(cmd.policy_id, last_live.doc, namespace)
        if target is None or target.doc is None:
            # as for Things: only a caller who may READ the resource learns that the revision is missing
            if not enforcer.has_partial(auth.subjects, cmd.resource.enforcement_resource, (READ,)):
                raise cmd.resource.not_found(cmd.policy_id)
            raise point.not_accessible("policies", cmd.policy_id)
        return await self._policies.retrieve_from(cmd, auth, target, enforcer)

    async def _locate(
        self, collection: HistoryCollection, current: EntityState, point: HistoricalPoint
    ) -> tuple[EntityState | None, EntityState | None]:
        """``(state at point, last live state)``: the historical state (None when the journal does not hold
        it) and the state whose policy governs access (the current one, or the last live one if deleted)."""
        if current.doc is not None and (
            point.revision == current.revision
            or (point.timestamp is not None and point.revision is None and _at_or_after(point, current))
        ):
            return current, current  # the present: no replay needed
        out_of_range = point.revision is not None and not 1 <= point.revision <= current.revision
        if out_of_range and current.doc is not None:
            # nothing to replay (a deleted entity still replays: its last live state governs access)
            return None, current
        live = current.doc is not None
        upper = point.revision if live and point.revision is not None else None
        entries = await self._store.journal(collection, current.entity_id, to_revision=upper)
        states = replay(collection, current.entity_id, entries)
        last_live = current if live else next((s for s in reversed(states) if s.doc is not None), None)
        return state_at(states, point), last_live


def _at_or_after(point: HistoricalPoint, current: EntityState) -> bool:
    assert point.timestamp is not None
    return point.timestamp >= parse_timestamp(current.modified)
