"""THE command path (DESIGN.md "One command path").

Every adapter authenticates into an :class:`AuthContext`, parses a :class:`ThingCommand` and calls
:meth:`Dispatcher.handle`. Modifications run under a per-thing lock: load -> pure strategy -> compare-and-set
commit of the new state together with its journal entry -> publish. A lost compare-and-set (another process
wrote first) reloads and re-runs the strategy, so concurrent writers never lose an update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from ditto_compat.domain import things as strategies
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingEvent
from ditto_compat.domain.policies import default_policy, inline_policy, policy_event
from ditto_compat.domain.resources import Kind, thing_not_found
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import (
    DittoError,
    InlinePolicyNotAllowed,
    JsonInvalid,
    PolicyConflicting,
    PolicyIdNotAllowed,
    ThingNotCreatable,
    ThingUnavailable,
)
from ditto_compat.model.ids import check_policy_id
from ditto_compat.model.pointer import MISSING
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, Store

log = logging.getLogger(__name__)

EventListener = Callable[[ThingEvent], None]
MAX_CAS_ATTEMPTS = 8


def utc_now() -> str:
    """ISO-8601 in UTC with millisecond precision, as Ditto renders ``_modified``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _KeyedLocks:
    """One asyncio lock per thing id, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextmanager
    def _ref(self, key: str) -> Iterator[asyncio.Lock]:
        lock, refs = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, refs + 1)
        try:
            yield lock
        finally:
            lock, refs = self._locks[key]
            if refs <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, refs - 1)

    async def run(self, key: str, fn: Callable[[], Any]) -> Any:
        with self._ref(key) as lock:
            async with lock:
                return await fn()


class Dispatcher:
    def __init__(self, store: Store, *, clock: Callable[[], str] = utc_now) -> None:
        self.store = store
        self._clock = clock
        self._locks = _KeyedLocks()
        self._listeners: list[EventListener] = []

    def subscribe(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    async def handle(self, cmd: ThingCommand, auth: AuthContext) -> Outcome:
        if cmd.action == "retrieve":
            state = await self.store.get("things", cmd.thing_id)
            return strategies.retrieve(cmd, state)

        async def modify() -> Outcome:
            return await self._modify(cmd, auth)

        outcome: Outcome = await self._locks.run(cmd.thing_id, modify)
        if outcome.event is not None:
            self._publish(outcome.event)
        return outcome

    async def retrieve_many(self, thing_ids: list[str]) -> list[EntityState]:
        found = await self.store.get_many("things", thing_ids)
        return [found[t] for t in thing_ids if t in found]

    # ------------------------------------------------------------------------------------------ internals
    async def _modify(self, cmd: ThingCommand, auth: AuthContext) -> Outcome:
        for _attempt in range(MAX_CAS_ATTEMPTS):
            state = await self.store.get("things", cmd.thing_id)
            outcome, writes = await self._decide(cmd, auth, state)
            if not writes:
                return outcome
            try:
                await self.store.commit(writes)
            except RevisionConflict:
                log.debug("revision conflict on %s, retrying", cmd.thing_id)
                continue
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
        if not exists:
            raise thing_not_found(cmd.thing_id)
        assert state is not None
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
        return outcome, [self._thing_write(state, outcome, now)]

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
        return EntityWrite("things", state.revision if state is not None else 0, new_state, event.to_json())

    async def _create(
        self, cmd: ThingCommand, auth: AuthContext, state: EntityState | None, revision: int, now: str
    ) -> tuple[Outcome, list[EntityWrite]]:
        """Create a Thing and, unless it names an existing policy, its policy (``basic-policy``: default,
        inline ``_policy`` or ``_copyPolicyFrom``), in one atomic commit."""
        if cmd.action == "merge":
            body = strategies.merge_creation_body(cmd.thing_id, cmd.value)
        else:
            body = strategies.json_body(cmd.value)
        strategies.check_body_thing_id(cmd.thing_id, body)
        policy_writes: list[EntityWrite] = []
        inline = body.get("_policy", MISSING)
        copy_from = body.get("_copyPolicyFrom", MISSING)
        policy_id = body.get("policyId")
        if policy_id is not None and not isinstance(policy_id, str):
            raise JsonInvalid("The Policy ID must be a JSON string.")
        if inline is not MISSING and copy_from is not MISSING:
            raise PolicyConflicting(
                f"The Thing with ID '{cmd.thing_id}' could not be created as it contained both an inline Policy "
                "and a Policy to copy."
            )
        if policy_id is not None:
            check_policy_id(policy_id)
        if inline is not MISSING or copy_from is not MISSING:
            new_policy_id = policy_id or cmd.thing_id
            if inline is not MISSING:
                if isinstance(inline, dict) and "policyId" in inline and inline["policyId"] != new_policy_id:
                    raise PolicyIdNotAllowed()
                policy = inline_policy(new_policy_id, inline, auth)
            else:
                policy = await self._copied_policy(cmd.thing_id, new_policy_id, copy_from, auth)
            policy_writes.append(await self._new_policy_write(cmd.thing_id, new_policy_id, policy, now))
            policy_id = new_policy_id
        elif policy_id is not None:
            existing = await self.store.get("policies", policy_id)
            if existing is None or existing.doc is None:
                raise ThingNotCreatable(
                    f"The Thing with ID '{cmd.thing_id}' could not be created as the Policy with ID "
                    f"'{policy_id}' is not existing.",
                    "Check if the ID of the Policy you created the Thing with is correct.",
                )
        else:
            policy_id = cmd.thing_id
            policy = default_policy(policy_id, auth)
            policy_writes.append(await self._new_policy_write(cmd.thing_id, policy_id, policy, now))
        body = {k: v for k, v in body.items() if not k.startswith("_")}
        body["policyId"] = policy_id
        create_cmd = ThingCommand("create", cmd.thing_id, (), body, cmd.headers, cmd.fields)
        outcome = strategies.create(create_cmd, state, revision, now)
        return outcome, [self._thing_write(state, outcome, now), *policy_writes]

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
        )

    async def _copied_policy(
        self, thing_id: str, policy_id: str, source: Any, auth: AuthContext
    ) -> dict[str, Any]:
        """``_copyPolicyFrom``: a policy id, or ``{{ ref:things/<thingId>/policyId }}``."""
        if not isinstance(source, str):
            raise JsonInvalid("'_copyPolicyFrom' must be a JSON string.")
        source_id = source.strip()
        if source_id.startswith("{{") and source_id.endswith("}}"):
            ref = source_id[2:-2].strip()
            prefix = "ref:things/"
            if not (ref.startswith(prefix) and ref.endswith("/policyId")):
                raise JsonInvalid(f"The placeholder '{source}' in '_copyPolicyFrom' is not supported.")
            ref_thing = ref[len(prefix) : -len("/policyId")]
            referenced = await self.store.get("things", ref_thing)
            if referenced is None or referenced.doc is None:
                raise thing_not_found(ref_thing)
            source_id = str(referenced.doc.get("policyId", ""))
        check_policy_id(source_id)
        found = await self.store.get("policies", source_id)
        if found is None or found.doc is None:
            raise ThingNotCreatable(
                f"The Thing with ID '{thing_id}' could not be created as the Policy with ID '{source_id}' "
                "to copy is not existing."
            )
        return inline_policy(policy_id, found.doc, auth)

    def _publish(self, event: ThingEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken subscriber must never fail the write that was already persisted
                log.exception("event listener failed")


__all__ = ["Dispatcher", "DittoError", "utc_now"]
