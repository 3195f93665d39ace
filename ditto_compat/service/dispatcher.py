"""THE command path for Things (DESIGN.md "One command path").

Every adapter authenticates into an :class:`AuthContext`, parses a :class:`ThingCommand` and calls
:meth:`Dispatcher.handle`:

1. the Thing's policy enforcer (cached per policy revision) authorizes the command;
2. queries load the Thing and answer its READ view;
3. modifications run under a per-thing lock: load -> pure strategy -> compare-and-set commit of the new state
   together with its journal entry -> publish. A lost compare-and-set (another process wrote first) reloads
   and re-runs the strategy, so concurrent writers never lose an update.

A batch of modifications that arrived together (a connection's Kafka fetch) takes the same steps with
:meth:`Dispatcher.handle_many`, but once for the batch: the locks of all its Things, their states and
policies read together, each Thing's commands decided one after the other on the state the previous one left,
and every Thing's writes committed in one store round trip (each Thing atomic on its own). A Thing whose
compare-and-set misses has its commands re-run one by one on the path above.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain import things as strategies
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import READ, WRITE, Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingChange
from ditto_compat.domain.policies import default_policy, inline_policy, policy_event
from ditto_compat.domain.policy_resolution import check_policy_lockout, resolve_entries
from ditto_compat.domain.resources import Kind, thing_not_found
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import (
    InlinePolicyNotAllowed,
    JsonInvalid,
    PolicyConflicting,
    PolicyIdNotAllowed,
    PolicyNotFound,
    PolicyNotModifiable,
    ThingConditionFailed,
    ThingNotCreatable,
    ThingNotModifiable,
    ThingPolicyInvalid,
    ThingUnavailable,
)
from ditto_compat.model.fields import FieldSelector
from ditto_compat.model.ids import check_policy_id, namespace_of
from ditto_compat.model.pointer import MISSING
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, Store, StoreUnavailable
from ditto_compat.rql.evaluator import evaluate
from ditto_compat.rql.fields import searchable_document
from ditto_compat.service.enforcement import EnforcerCache
from ditto_compat.service.locks import MAX_CAS_ATTEMPTS, KeyedLocks
from ditto_compat.service.state_cache import DEFAULT_ENTRIES, StateCache

log = logging.getLogger(__name__)

EventListener = Callable[[ThingChange], None]
# Hears of a policy the dispatcher wrote (a Thing's new default, inline or copied policy): its id and document.
PolicyListener = Callable[[str, Mapping[str, Any] | None], None]
# What handle_many answers per command: its outcome, or the error that refused it.
BatchResult = Outcome | BaseException
# Listing Things scans the store page by page and keeps what the caller may read; this bounds the scan.
MAX_LIST_SCAN_PAGES = 50


class _UtcClock:
    """ISO-8601 in UTC with millisecond precision, as Ditto renders ``_modified``; rendered once per
    millisecond, since a connection's batch stamps thousands of events within a few."""

    __slots__ = ("_millis", "_text")

    def __init__(self) -> None:
        self._millis = -1
        self._text = ""

    def __call__(self) -> str:
        millis = time.time_ns() // 1_000_000
        if millis != self._millis:
            seconds, rest = divmod(millis, 1000)
            moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest * 1000)
            self._millis = millis
            self._text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._text


utc_now = _UtcClock()


class Dispatcher:
    def __init__(
        self,
        store: Store,
        *,
        enforcers: EnforcerCache | None = None,
        clock: Callable[[], str] = utc_now,
        state_cache_size: int = DEFAULT_ENTRIES,
    ) -> None:
        self.store = store
        self.enforcers = enforcers or EnforcerCache(store)
        self._clock = clock
        self._locks = KeyedLocks()
        self.states = StateCache(state_cache_size)
        self._listeners: list[EventListener] = []
        self._policy_listeners: list[PolicyListener] = []

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def on_policy_written(self, listener: PolicyListener) -> None:
        """``listener`` hears of every policy created along with a Thing, once it is committed (policy
        announcements plan from it as from the Policies API's writes)."""
        self._policy_listeners.append(listener)

    async def handle(
        self, cmd: ThingCommand, auth: AuthContext, *, event_headers: Mapping[str, str] | None = None
    ) -> Outcome:
        """``event_headers``: added to the headers of the command's event (e.g. ``requested-acks``)."""
        if cmd.action == "retrieve":
            return await self._retrieve(cmd, auth)

        async def modify() -> Outcome:
            return await self._modify(cmd, auth, event_headers or {})

        return await self._locks.run(cmd.thing_id, modify)

    async def handle_many(self, commands: Sequence[tuple[ThingCommand, AuthContext]]) -> list[BatchResult]:
        """Modifications that arrived together, each Thing's in the order given; per command its outcome or
        its error, in the order given. Raises only :class:`~ditto_compat.persistence.ports.StoreUnavailable`
        (nothing is known to be durable then). See the module docstring."""
        results: list[BatchResult | None] = [None] * len(commands)
        by_thing: dict[str, list[int]] = {}
        for index, (cmd, _auth) in enumerate(commands):
            if cmd.action == "retrieve":
                raise ValueError("handle_many takes modifications only")
            by_thing.setdefault(cmd.thing_id, []).append(index)
        again: list[int] = []
        with self.enforcers.snapshot():
            async with self._locks.holding(by_thing):
                states = await self._current_states(list(by_thing))
                await self.enforcers.prefetch(
                    (policy_id, namespace_of(state.entity_id))
                    for state in states.values()
                    if state.doc is not None and isinstance(policy_id := state.doc.get("policyId"), str)
                )
                plans = [
                    await self._plan(thing_id, indices, commands, states.get(thing_id), results)
                    for thing_id, indices in by_thing.items()
                ]
                try:
                    outcomes = await self.store.commit_each([plan.writes for plan in plans])
                except BaseException:
                    for thing_id in by_thing:  # not known what was applied: read back next time
                        self.states.discard(thing_id)
                    raise
                for plan, error in zip(plans, outcomes, strict=True):
                    if error is None:
                        self._settle(plan)
                    else:  # another process changed the Thing since it was read: decide all again
                        self.states.discard(plan.thing_id)
                        again.extend(plan.indices)
        for index in sorted(again):  # on the one-command path, which reloads and retries
            cmd, auth = commands[index]
            try:
                results[index] = await self.handle(cmd, auth)
            except StoreUnavailable:
                raise
            except Exception as error:  # as in _plan: this command only
                results[index] = error
        return [result if result is not None else ThingUnavailable() for result in results]

    async def _current_states(self, thing_ids: Sequence[str]) -> dict[str, EntityState]:
        states: dict[str, EntityState] = {}
        missing: list[str] = []
        for thing_id in thing_ids:
            state = self.states.get(thing_id)
            if state is None:
                missing.append(thing_id)
            else:
                states[thing_id] = state
        if missing:
            # live Things only: a deleted one is decided as never stored, and its commit then conflicts with
            # the tombstone, which sends its commands to the one-command path
            states.update(await self.store.get_many("things", missing))
        return states

    async def _plan(
        self,
        thing_id: str,
        indices: list[int],
        commands: Sequence[tuple[ThingCommand, AuthContext]],
        state: EntityState | None,
        results: list[BatchResult | None],
    ) -> _Plan:
        """Decide one Thing's commands in order, each on the state the previous one left."""
        plan = _Plan(thing_id, indices, state)
        for index in indices:
            cmd, auth = commands[index]
            try:
                outcome, writes = await self._decide(cmd, auth, plan.state)
            except StoreUnavailable:
                raise
            except Exception as error:  # refused (or a bug): this command only, the next ones go on
                results[index] = error
                continue
            results[index] = outcome
            if not writes:
                continue
            new_state = next(w.state for w in writes if w.collection == "things")
            if outcome.event is not None:
                headers = {"correlation-id": cmd.headers.correlation_id}
                plan.changes.append(ThingChange(outcome.event, new_state, plan.state, headers))
            plan.writes.extend(writes)
            plan.state = new_state
        return plan

    def _settle(self, plan: _Plan) -> None:
        """A plan is durable: cache the Thing's state and publish its events, in order (still under its lock)."""
        if plan.writes and plan.state is not None:
            self.states.put(plan.state)
        self._policies_written(plan.writes)
        for change in plan.changes:
            self._publish(change)

    # ------------------------------------------------------------------------------------------ queries
    async def _retrieve(self, cmd: ThingCommand, auth: AuthContext) -> Outcome:
        state = await self.store.get("things", cmd.thing_id)
        if state is None or state.doc is None:
            raise thing_not_found(cmd.thing_id)
        enforcer = await self.thing_enforcer(state)
        if enforcer is None:  # the Thing's policy was deleted: nobody may see the Thing
            raise thing_not_found(cmd.thing_id)
        return self.retrieve_from(cmd, auth, state, enforcer)

    def retrieve_from(
        self, cmd: ThingCommand, auth: AuthContext, state: EntityState, enforcer: Enforcer
    ) -> Outcome:
        """Answer a retrieve from ``state`` (the current one, or a historical one: service/history.py) as
        ``enforcer`` lets the caller see it."""
        guard.authorize_retrieve(enforcer, auth.subjects, cmd)
        outcome = strategies.retrieve(cmd, state)
        self._check_condition(cmd, auth, state, enforcer)
        if cmd.resource.kind is Kind.THING:
            return replace(
                outcome, value=guard.thing_view(enforcer, auth.subjects, cmd.thing_id, outcome.value)
            )
        value = guard.value_view(enforcer, auth.subjects, cmd.resource, outcome.value)
        if value is MISSING:
            raise cmd.resource.not_found(cmd.thing_id)
        return replace(outcome, value=value)

    async def retrieve_many(
        self, thing_ids: Sequence[str], auth: AuthContext, fields: FieldSelector | None
    ) -> list[dict[str, Any]]:
        """``GET /things?ids=``: the READ views of the Things the caller may see, in the order asked."""
        found = await self.store.get_many("things", thing_ids)
        views = [await self._visible_view(found[t], auth, fields) for t in thing_ids if t in found]
        return [v for v in views if v is not None]

    async def list_visible(
        self,
        auth: AuthContext,
        *,
        after: str | None,
        size: int,
        namespaces: Sequence[str] | None,
        fields: FieldSelector | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the Things the caller may see, ordered by id, and the id to continue after (if more)."""
        views: list[dict[str, Any]] = []
        cursor = after
        for _page in range(MAX_LIST_SCAN_PAGES):
            page = await self.store.list_page("things", after=cursor, limit=size + 1, namespaces=namespaces)
            for state in page[:size]:
                cursor = state.entity_id
                view = await self._visible_view(state, auth, fields)
                if view is not None:
                    views.append(view)
                    if len(views) == size:
                        more = len(page) > size or state is not page[-1]
                        return views, cursor if more else None
            if len(page) <= size:
                return views, None
        return views, cursor

    async def _visible_view(
        self, state: EntityState, auth: AuthContext, fields: FieldSelector | None
    ) -> dict[str, Any] | None:
        enforcer = await self.thing_enforcer(state)
        if enforcer is None or not guard.can_retrieve(enforcer, auth.subjects, ()):
            return None
        return guard.thing_view(
            enforcer, auth.subjects, state.entity_id, strategies.thing_view(state, fields)
        )

    async def visible_thing_enforcer(self, thing_id: str) -> Enforcer:
        """The enforcer of a stored Thing (for messages and live signals); 404 when there is none."""
        state = await self.store.get("things", thing_id)
        if state is None or state.doc is None:
            raise thing_not_found(thing_id)
        enforcer = await self.thing_enforcer(state)
        if enforcer is None:
            raise thing_not_found(thing_id)
        return enforcer

    async def thing_enforcer(self, state: EntityState) -> Enforcer | None:
        policy_id = state.doc.get("policyId") if state.doc else None
        if not isinstance(policy_id, str):
            return None
        return await self.enforcers.enforcer(policy_id, namespace_of(state.entity_id))

    # ------------------------------------------------------------------------------------------ modifications
    async def _modify(
        self, cmd: ThingCommand, auth: AuthContext, event_headers: Mapping[str, str]
    ) -> Outcome:
        for attempt in range(MAX_CAS_ATTEMPTS):
            # the cached state first; after a missed compare-and-set, the store's
            state = self.states.get(cmd.thing_id) if attempt == 0 else None
            if state is None:
                state = await self.store.get("things", cmd.thing_id)
            outcome, writes = await self._decide(cmd, auth, state)
            if not writes:
                return outcome
            try:
                await self.store.commit(writes)
            except RevisionConflict:
                self.states.discard(cmd.thing_id)
                log.debug("revision conflict on %s, retrying", cmd.thing_id)
                continue
            except BaseException:
                # not known whether it was applied (e.g. MongoDB unreachable mid-commit): read it back next time
                self.states.discard(cmd.thing_id)
                raise
            new_state = next(w.state for w in writes if w.collection == "things")
            self.states.put(new_state)
            self._policies_written(writes)
            if outcome.event is not None:
                # still under the Thing's lock: subscribers see each Thing's events in revision order
                self._publish(
                    ThingChange(
                        outcome.event,
                        new_state,
                        state,
                        {**event_headers, "correlation-id": cmd.headers.correlation_id},
                    )
                )
            return outcome
        raise ThingUnavailable(
            f"The Thing with ID '{cmd.thing_id}' is changed concurrently too often, please try again later."
        )

    async def _decide(
        self, cmd: ThingCommand, auth: AuthContext, state: EntityState | None
    ) -> tuple[Outcome, list[EntityWrite]]:
        now = self._clock()
        exists = state is not None and state.doc is not None
        revision = (state.revision if state is not None else 0) + 1
        kind = cmd.resource.kind
        if cmd.action == "create" or (
            not exists and kind is Kind.THING and cmd.action in ("modify", "merge")
        ):
            return await self._create(cmd, auth, state, revision, now)
        if state is None or state.doc is None:
            raise thing_not_found(cmd.thing_id)
        enforcer = await self.thing_enforcer(state)
        if enforcer is None:  # a Thing without policy can be changed by nobody
            raise cmd.resource.not_modifiable(cmd.thing_id)
        guard.authorize_write(enforcer, auth.subjects, cmd)
        if cmd.action == "modify":
            if kind is Kind.THING and isinstance(cmd.value, dict):
                self._refuse_inline_policy(cmd.value)
            outcome = strategies.modify(cmd, state, revision, now)
        elif cmd.action == "merge":
            outcome = strategies.merge(cmd, state, revision, now)
        elif cmd.action == "delete":
            outcome = strategies.delete(cmd, state, revision, now)
        else:
            raise JsonInvalid(f"Unknown command action '{cmd.action}'.")
        self._check_condition(cmd, auth, state, enforcer)
        await self._authorize_policy_change(cmd, auth, state, outcome)
        return outcome, [self._thing_write(state, outcome, now)]

    @staticmethod
    def _check_condition(
        cmd: ThingCommand, auth: AuthContext, state: EntityState, enforcer: Enforcer
    ) -> None:
        """``condition``: evaluated after the ETag preconditions (the strategy ran them), on the caller's READ
        view of the current Thing, so a condition on a field the caller cannot read does not match."""
        if cmd.condition is None:
            return
        readable = guard.thing_view(enforcer, auth.subjects, cmd.thing_id, state.doc or {})
        document = searchable_document(readable, cmd.thing_id, state.revision, state.created, state.modified)
        if not evaluate(cmd.condition, document):
            raise ThingConditionFailed(
                f"The specified condition does not match the state of the requested Thing with ID "
                f"'{cmd.thing_id}' (or the requester may not READ the fields it refers to)."
            )

    async def _authorize_policy_change(
        self, cmd: ThingCommand, auth: AuthContext, state: EntityState, outcome: Outcome
    ) -> None:
        """A Thing moving to another policy needs that policy to exist and to let the caller set it there
        too: otherwise anyone allowed to write ``policyId`` could hand the Thing to a policy they cannot use."""
        old = state.doc.get("policyId") if state.doc else None
        new = outcome.new_doc.get("policyId") if outcome.new_doc else None
        if new is None or new == old:
            return
        enforcer = await self.enforcers.enforcer(new, namespace_of(cmd.thing_id))
        if enforcer is None:
            raise PolicyNotFound(
                f"The Policy with ID '{new}' could not be found or requester had insufficient permissions "
                "to access it."
            )
        if not enforcer.has_unrestricted(auth.subjects, "thing:/policyId", (WRITE,)):
            raise cmd.resource.not_modifiable(cmd.thing_id)

    @staticmethod
    def _refuse_inline_policy(body: dict[str, Any]) -> None:
        if "_policy" in body:
            raise InlinePolicyNotAllowed(
                "The Thing could not be modified as it contained an inline Policy.",
                "Modify the Policy of the Thing through the Policies API instead.",
            )

    def _thing_write(self, state: EntityState | None, outcome: Outcome, now: str) -> EntityWrite:
        assert outcome.event is not None
        event = outcome.event
        created = now if state is None or state.doc is None else state.created
        new_state = EntityState(event.thing_id, event.revision, outcome.new_doc, created, now)
        return EntityWrite(
            "things",
            state.revision if state is not None else 0,
            new_state,
            event.to_json(),
            previous_doc=state.doc if state is not None else None,
            previous_known=state is not None,
            # the strategies copy only along the changed resource's path (model/pointer.py)
            changed_at=event.path or None,
        )

    # ------------------------------------------------------------------------------------------ creation
    async def _create(
        self, cmd: ThingCommand, auth: AuthContext, state: EntityState | None, revision: int, now: str
    ) -> tuple[Outcome, list[EntityWrite]]:
        """Create a Thing and, unless it names an existing policy, its policy (``basic-policy``: default,
        inline ``_policy`` or ``_copyPolicyFrom``), in one atomic commit, authorized by that policy."""
        if cmd.action == "merge":
            body = strategies.merge_creation_body(cmd.thing_id, cmd.value)
        else:
            body = strategies.json_body(cmd.value)
        strategies.check_body_thing_id(cmd.thing_id, body)
        inline = body.get("_policy", MISSING)
        copy_from = body.get("_copyPolicyFrom", MISSING)
        policy_id = body.get("policyId")
        if policy_id is not None and not isinstance(policy_id, str):
            raise JsonInvalid("The Policy ID must be a JSON string.")
        if inline is not MISSING and copy_from is not MISSING:
            raise PolicyConflicting(
                f"The Thing with ID '{cmd.thing_id}' could not be created as it contained both an inline "
                "Policy and a Policy to copy."
            )
        if policy_id is not None:
            check_policy_id(policy_id)
        namespace = namespace_of(cmd.thing_id)
        policy_writes: list[EntityWrite] = []
        if inline is not MISSING or copy_from is not MISSING:
            policy_id = policy_id or cmd.thing_id
            if inline is not MISSING:
                if isinstance(inline, dict) and "policyId" in inline and inline["policyId"] != policy_id:
                    raise PolicyIdNotAllowed()
                policy = inline_policy(policy_id, inline, auth)
            else:
                policy = await self._copied_policy(cmd.thing_id, policy_id, copy_from, auth)
            enforcer = await self._check_new_policy(cmd, auth, policy_id, policy, namespace)
            policy_writes.append(await self._new_policy_write(cmd.thing_id, policy_id, policy, now))
        elif policy_id is not None:
            existing = await self.enforcers.enforcer(policy_id, namespace)
            if existing is None:
                raise ThingNotCreatable(
                    f"The Thing with ID '{cmd.thing_id}' could not be created as the Policy with ID "
                    f"'{policy_id}' is not existing.",
                    "Check if the ID of the Policy you created the Thing with is correct.",
                )
            enforcer = existing
        else:
            policy_id = cmd.thing_id
            policy = default_policy(policy_id, auth)
            enforcer = await self.enforcers.compile_unsaved(policy_id, policy, namespace)
            policy_writes.append(await self._new_policy_write(cmd.thing_id, policy_id, policy, now))
        if not enforcer.has_unrestricted(auth.subjects, "thing:/", (WRITE,)):
            raise ThingNotModifiable(
                f"The Thing with ID '{cmd.thing_id}' could not be created as the requester had insufficient "
                "permissions (WRITE on 'thing:/' of its Policy is required)."
            )
        body = {k: v for k, v in body.items() if not k.startswith("_")}
        body["policyId"] = policy_id
        create_cmd = ThingCommand("create", cmd.thing_id, (), body, cmd.headers, cmd.fields)
        outcome = strategies.create(create_cmd, state, revision, now)
        return outcome, [self._thing_write(state, outcome, now), *policy_writes]

    async def _check_new_policy(
        self, cmd: ThingCommand, auth: AuthContext, policy_id: str, policy: dict[str, Any], namespace: str
    ) -> Enforcer:
        """A new inline or copied policy must keep someone able to change it (``things:policy.invalid``),
        and its creator, unless ``allow-policy-lockout``."""
        enforcer = await self.enforcers.compile_unsaved(policy_id, policy, namespace)
        if not policy.get("imports") and not check_policy_lockout(policy, resolve_entries(policy, {})):
            raise ThingPolicyInvalid(
                f"The Policy of the Thing with ID '{cmd.thing_id}' is invalid: it must grant WRITE on "
                "'policy:/' to at least one subject without expiry."
            )
        if not cmd.headers.allow_policy_lockout and not enforcer.has_unrestricted(
            auth.subjects, "policy:/", (WRITE,)
        ):
            raise PolicyNotModifiable(
                f"The Policy with ID '{policy_id}' could not be created as the requester would not be allowed "
                "to modify it (WRITE on 'policy:/').",
                "Grant yourself WRITE on 'policy:/', or send 'allow-policy-lockout: true'.",
            )
        return enforcer

    async def _new_policy_write(
        self, thing_id: str, policy_id: str, policy: dict[str, Any], now: str
    ) -> EntityWrite:
        existing = await self.store.get("policies", policy_id)
        if existing is not None and existing.doc is not None:
            raise ThingNotCreatable(
                f"The Thing with ID '{thing_id}' could not be created because a Policy with ID '{policy_id}' "
                "already exists.",
                "Use the existing Policy by giving its 'policyId', or choose another ID.",
            )
        revision = (existing.revision if existing is not None else 0) + 1
        state = EntityState(policy_id, revision, policy, now, now)
        return EntityWrite(
            "policies",
            existing.revision if existing is not None else 0,
            state,
            policy_event(policy_id, "created", policy, revision, now),
            await self.enforcers.search_readers(policy_id, policy),
        )

    async def _copied_policy(
        self, thing_id: str, policy_id: str, source: Any, auth: AuthContext
    ) -> dict[str, Any]:
        """``_copyPolicyFrom``: a policy id, or ``{{ ref:things/<thingId>/policyId }}``. What is copied is the
        caller's READ view of that policy, so copying never reveals more than reading it would."""
        if not isinstance(source, str):
            raise JsonInvalid("'_copyPolicyFrom' must be a JSON string.")
        source_id = source.strip()
        if source_id.startswith("{{") and source_id.endswith("}}"):
            source_id = await self._referenced_policy_id(source_id, auth)
        check_policy_id(source_id)
        not_found = PolicyNotFound(
            f"The Policy with ID '{source_id}' could not be found or requester had insufficient permissions "
            "to access it."
        )
        found = await self.enforcers.policy(source_id)
        if found is None or found.doc is None:
            raise not_found
        enforcer = await self.enforcers.enforcer_of(found, namespace_of(source_id))
        view = enforcer.read_view(auth.subjects, "policy:/", found.doc)
        if not isinstance(view, dict) or not view.get("entries"):
            raise not_found
        return inline_policy(policy_id, view, auth)

    async def _referenced_policy_id(self, placeholder: str, auth: AuthContext) -> str:
        ref = placeholder[2:-2].strip()
        prefix = "ref:things/"
        if not (ref.startswith(prefix) and ref.endswith("/policyId")):
            raise JsonInvalid(f"The placeholder '{placeholder}' in '_copyPolicyFrom' is not supported.")
        ref_thing = ref[len(prefix) : -len("/policyId")]
        referenced = await self.store.get("things", ref_thing)
        if referenced is None or referenced.doc is None:
            raise thing_not_found(ref_thing)
        enforcer = await self.thing_enforcer(referenced)
        if enforcer is None or not enforcer.has_partial(auth.subjects, "thing:/policyId", (READ,)):
            raise thing_not_found(ref_thing)
        return str(referenced.doc.get("policyId", ""))

    def _policies_written(self, writes: Sequence[EntityWrite]) -> None:
        for write in writes:
            if write.collection != "policies":
                continue
            self.enforcers.saved(write.state)
            for listener in self._policy_listeners:
                try:
                    listener(write.state.entity_id, write.state.doc)
                except Exception:  # the policy is committed; a listener's failure must not fail the command
                    log.exception("policy listener failed")

    def _publish(self, change: ThingChange) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # a broken subscriber must never fail the write that was already persisted
                log.exception("event listener failed")


@dataclass(eq=False, slots=True)
class _Plan:
    """One Thing's part of a batch: what its commands decided, to be committed together."""

    thing_id: str
    indices: list[int]  # of its commands in the batch
    state: EntityState | None  # after the commands decided so far
    writes: list[EntityWrite] = field(default_factory=list)
    changes: list[ThingChange] = field(default_factory=list)
