"""The command path for Policies (DESIGN.md "One command path", inventory §4).

The same shape as the Things dispatcher. :meth:`PolicyService.handle`:

1. queries load the policy, check partial READ on the addressed ``policy:/...`` resource (else that
   resource's ``*.notfound``, 404) and answer the caller's READ view;
2. modifications run under a per-policy lock: load -> unrestricted WRITE on the addressed resource (else its
   ``*.notmodifiable``, 403) -> pure strategy -> lockout check -> import pre-enforcement -> compare-and-set
   commit of the new policy together with its journal entry -> publish. A lost compare-and-set reloads and
   re-runs everything, so concurrent writers never lose an update;
3. creation (``PUT`` on a new id, ``POST``) is authorized against the new policy itself: the caller must keep
   unrestricted WRITE on its ``policy:/`` unless ``allow-policy-lockout`` is set.

Policy changes take effect for the next request on any process: enforcers are cached per policy revision
(:class:`EnforcerCache`), and every request reads the current revision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, NoReturn

from ditto_compat.domain import policy_commands as strategies
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import EXECUTE, READ, WRITE, Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.policy_commands import PolicyCommand, PolicyEvent, PolicyOutcome
from ditto_compat.domain.policy_resolution import MAX_IMPORT_DEPTH, import_ids, missing_policy_ids
from ditto_compat.domain.policy_resources import PolicyKind, PolicyResource, policy_not_found
from ditto_compat.domain.policy_validation import EXPIRY_GRANULARITY
from ditto_compat.errors import PolicyActionFailed, PolicyNotFound, PolicyNotModifiable, PolicyUnavailable
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import EntityWrite, RevisionConflict, Store, StoreUnavailable
from ditto_compat.service.dispatcher import utc_now
from ditto_compat.service.enforcement import EnforcerCache
from ditto_compat.service.locks import MAX_CAS_ATTEMPTS, KeyedLocks

log = logging.getLogger(__name__)

PolicyEventListener = Callable[[PolicyEvent], None]
# (policy id, the policy as committed; None when deleted): e.g. service/policy_announcements.py
PolicyWriteListener = Callable[[str, dict[str, Any] | None], None]


class PolicyService:
    def __init__(
        self,
        store: Store,
        enforcers: EnforcerCache,
        *,
        clock: Callable[[], str] = utc_now,
        expiry_granularity: timedelta = EXPIRY_GRANULARITY,
    ) -> None:
        self.store = store
        self.enforcers = enforcers
        self._clock = clock
        self._granularity = expiry_granularity
        self._locks = KeyedLocks()
        self._listeners: list[PolicyEventListener] = []
        self._write_listeners: list[PolicyWriteListener] = []

    def subscribe(self, listener: PolicyEventListener) -> None:
        self._listeners.append(listener)

    def on_written(self, listener: PolicyWriteListener) -> None:
        """``listener`` hears of every committed write with the whole new policy, under the policy's lock (so
        in commit order), before the caller is answered."""
        self._write_listeners.append(listener)

    async def handle(self, cmd: PolicyCommand, auth: AuthContext) -> PolicyOutcome:
        cmd = strategies.prepare(cmd, auth.default_subject)
        if cmd.action == "retrieve":
            return await self._retrieve(cmd, auth)

        async def write() -> PolicyOutcome:
            return await self._write(cmd, auth)

        outcome = await self._locks.run(cmd.policy_id, write)
        if outcome.policy_event is not None:
            self._publish(outcome.policy_event)
        return outcome

    # ------------------------------------------------------------------------------------------ queries
    async def _retrieve(self, cmd: PolicyCommand, auth: AuthContext) -> PolicyOutcome:
        state = await self.store.get("policies", cmd.policy_id)
        if state is None or state.doc is None:
            raise policy_not_found(cmd.policy_id)
        enforcer = await self.enforcers.enforcer_of(state, namespace_of(cmd.policy_id))
        return await self.retrieve_from(cmd, auth, state, enforcer)

    async def retrieve_from(
        self, cmd: PolicyCommand, auth: AuthContext, state: EntityState, enforcer: Enforcer
    ) -> PolicyOutcome:
        """Answer a retrieve from ``state`` (the current one, or a historical one: service/history.py) as
        ``enforcer`` lets the caller see it."""
        assert state.doc is not None
        if not enforcer.has_partial(auth.subjects, cmd.resource.enforcement_resource, (READ,)):
            raise cmd.resource.not_found(cmd.policy_id)
        if cmd.wants_resolved_view:
            # the merged view follows other policies' revisions, so no ETag and no preconditions (Ditto 3.9)
            merged = await self._resolved(state.doc, auth)
            view = strategies.read_view(enforcer, auth.subjects, cmd, state, merged)
            return PolicyOutcome(200, view)
        outcome = strategies.retrieve(cmd, state)
        view = strategies.read_view(enforcer, auth.subjects, cmd, state, outcome.value)
        return replace(outcome, value=view)

    async def _resolved(self, doc: dict[str, Any], auth: AuthContext) -> dict[str, Any]:
        """``doc`` with its imports merged in, loading the imported policies round by round (each round may
        reveal ``transitiveImports`` to follow)."""
        loaded: dict[str, dict[str, Any] | None] = {}
        for _round in range(MAX_IMPORT_DEPTH + 1):
            missing = sorted(missing_policy_ids(doc, loaded))
            if not missing:
                break
            found = await self.store.get_many("policies", missing)
            loaded.update((pid, found[pid].doc if pid in found else None) for pid in missing)
        readable: dict[str, Callable[[str], bool]] = {}
        for import_id in import_ids(doc):
            source = await self.enforcers.enforcer(import_id, namespace_of(import_id))
            readable[import_id] = _entry_readability(source, auth)
        return strategies.resolved_policy(doc, loaded, readable)

    async def run_action(self, policy_id: str, label: str | None, action: str, auth: AuthContext) -> NoReturn:
        """``activateTokenIntegration`` / ``deactivateTokenIntegration`` inject subjects derived from the
        caller's JWT. Requests here never carry a JWT (HTTP Basic or pre-authentication), and Ditto answers
        such callers ``400 policies:action.failed``; a policy or entry the caller cannot see is 404 first."""
        state = await self.store.get("policies", policy_id)
        if state is None or state.doc is None:
            raise policy_not_found(policy_id)
        enforcer = await self.enforcers.enforcer_of(state, namespace_of(policy_id))
        if not any(enforcer.has_partial(auth.subjects, "policy:/", (p,)) for p in (READ, EXECUTE)):
            raise policy_not_found(policy_id)
        if label is not None and label not in (state.doc.get("entries") or {}):
            raise PolicyResource(PolicyKind.ENTRY, label=label).not_found(policy_id)
        raise PolicyActionFailed(
            f"Failed to execute action '{action}'.", "Policy action is only possible with JWT authentication."
        )

    # ------------------------------------------------------------------------------------------ writes
    async def _write(self, cmd: PolicyCommand, auth: AuthContext) -> PolicyOutcome:
        for _attempt in range(MAX_CAS_ATTEMPTS):
            state = await self.store.get("policies", cmd.policy_id)
            outcome = await self._decide(cmd, auth, state)
            event = outcome.policy_event
            if event is None:
                return outcome
            created = event.timestamp if state is None or state.doc is None else state.created
            new_state = EntityState(cmd.policy_id, event.revision, outcome.new_doc, created, event.timestamp)
            write = EntityWrite(
                "policies",
                state.revision if state is not None else 0,
                new_state,
                event.to_json(),
                await self.enforcers.search_readers(cmd.policy_id, outcome.new_doc),
            )
            try:
                await self.store.commit([write])
            except RevisionConflict:
                log.debug("revision conflict on policy %s, retrying", cmd.policy_id)
                continue
            await self._reindex_importers(cmd.policy_id)
            for listener in self._write_listeners:
                try:
                    listener(cmd.policy_id, outcome.new_doc)
                except Exception:  # the write is committed; a listener cannot undo it
                    log.exception("policy write listener failed")
            return outcome
        raise PolicyUnavailable(
            f"The Policy with ID '{cmd.policy_id}' is changed concurrently too often, please try again later."
        )

    async def _reindex_importers(self, policy_id: str) -> None:
        """Policies importing this one (at any depth) take entries from it: re-derive who may find their
        Things in search. After the commit, not with it: the change is acknowledged either way, and a failure
        here leaves the index of those policies as it was (logged) until one of them is written again."""
        try:
            seen = {policy_id}
            frontier = [policy_id]
            updates = []
            for _depth in range(MAX_IMPORT_DEPTH):
                found: list[str] = []
                for pid in frontier:
                    found += [i for i in await self.store.importers(pid) if i not in seen]
                    seen.update(found)
                if not found:
                    break
                for pid, state in (await self.store.get_many("policies", found)).items():
                    updates.append(await self.enforcers.search_readers(pid, state.doc))
                frontier = found
            if updates:
                await self.store.set_policy_readers(updates)
        except StoreUnavailable as exc:
            log.warning("search index of the policies importing %s not updated: %s", policy_id, exc)

    async def _decide(
        self, cmd: PolicyCommand, auth: AuthContext, state: EntityState | None
    ) -> PolicyOutcome:
        now = self._clock()
        revision = (state.revision if state is not None else 0) + 1
        exists = state is not None and state.doc is not None
        if cmd.action == "create" or (
            not exists and cmd.action == "modify" and cmd.resource.kind is PolicyKind.POLICY
        ):
            return await self._create(cmd, auth, state, revision, now)
        if state is None or state.doc is None:
            raise policy_not_found(cmd.policy_id)
        enforcer = await self.enforcers.enforcer_of(state, namespace_of(cmd.policy_id))
        if not enforcer.has_unrestricted(auth.subjects, cmd.resource.enforcement_resource, (WRITE,)):
            raise cmd.resource.not_modifiable(cmd.policy_id)
        if cmd.action == "delete":
            outcome = strategies.delete(cmd, state, revision, now)
        else:
            outcome = strategies.modify(cmd, state, revision, now, self._granularity)
        strategies.check_lockout(cmd, outcome.new_doc)  # a deleted policy (no new_doc) locks nobody out
        await self._authorize_imports(cmd, auth, outcome)
        return outcome

    async def _create(
        self, cmd: PolicyCommand, auth: AuthContext, state: EntityState | None, revision: int, now: str
    ) -> PolicyOutcome:
        create = replace(cmd, action="create")
        outcome = strategies.create(create, state, revision, now, self._granularity)
        assert outcome.new_doc is not None
        await self._authorize_imports(create, auth, outcome)
        # Ditto's PolicyCommandEnforcement#authorizeCreatePolicy: the creator is checked against the policy being
        # created, so nobody creates a policy they are locked out of by accident
        if not cmd.headers.allow_policy_lockout:
            enforcer = await self.enforcers.compile_unsaved(
                cmd.policy_id, outcome.new_doc, namespace_of(cmd.policy_id)
            )
            if not enforcer.has_unrestricted(auth.subjects, "policy:/", (WRITE,)):
                raise PolicyNotModifiable(
                    f"The Policy with ID '{cmd.policy_id}' could not be created as the requester would not be "
                    "allowed to modify it (unrestricted WRITE on 'policy:/').",
                    "Grant yourself WRITE on 'policy:/' in the new policy, or set 'allow-policy-lockout' to "
                    "'true'.",
                )
        strategies.check_lockout(create, outcome.new_doc)
        return outcome

    async def _authorize_imports(self, cmd: PolicyCommand, auth: AuthContext, outcome: PolicyOutcome) -> None:
        """Ditto's ``PolicyImportsPreEnforcer``: declaring an import needs unrestricted READ on every entry it
        takes from the imported policy, so imports cannot be used to copy permissions one cannot see."""
        if not strategies.changes_imports(cmd):
            return
        for import_id, declaration in strategies.declared_imports(cmd, outcome.new_doc).items():
            imported = await self.enforcers.policy(import_id)
            if imported is None or imported.doc is None:
                raise policy_not_found(import_id)
            enforcer = await self.enforcers.enforcer_of(imported, namespace_of(import_id))
            labels = strategies.imported_labels(imported.doc, declaration)
            if not all(
                enforcer.has_unrestricted(auth.subjects, f"policy:/entries/{label}", (READ,))
                for label in labels
            ):
                raise PolicyNotFound(
                    f"The Policy with ID '{import_id}' could not be found or requester had insufficient "
                    "permissions to access it.",
                    "Check if the ID of the imported Policy was correct and you have sufficient permissions on "
                    "all imported policy entries.",
                )

    def _publish(self, event: PolicyEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken subscriber must never fail the write that was already persisted
                log.exception("policy event listener failed")


def _entry_readability(enforcer: Enforcer | None, auth: AuthContext) -> Callable[[str], bool]:
    """Whether the caller may read an entry (by label) of the policy ``enforcer`` belongs to; a missing
    policy shows nothing."""

    def readable(label: str) -> bool:
        return enforcer is not None and enforcer.has_partial(
            auth.subjects, f"policy:/entries/{label}", (READ,)
        )

    return readable
