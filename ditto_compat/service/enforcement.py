"""Policy enforcers, compiled once per policy revision and cached (``basic-policy``).

Each request re-reads the revision of the policy (and of its imports) — a point read — and compiles a new
enforcer only when one of them changed, so a policy change takes effect for the very next request, also when
another process changed the policy. A batch of commands that arrived together (a Kafka fetch) is one
"request" in this sense: inside :meth:`EnforcerCache.snapshot` each policy is read once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ditto_compat.domain.enforcer import Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.policy_resolution import import_ids, resolve_entries
from ditto_compat.domain.search_index import search_readers
from ditto_compat.persistence.ports import PolicyReaders, Store

MAX_IMPORT_DEPTH = 10
# new policies compiled and not yet known to be stored (see EnforcerCache.saved)
_UNSAVED_CAPACITY = 1024

# The enforcers looked up inside the current snapshot (None: outside any), by (policy id, namespace). A
# context variable, so that the tasks a batch spreads over share it and nothing else does.
_snapshot: ContextVar[dict[tuple[str, str | None], Enforcer | None] | None] = ContextVar(
    "enforcer_snapshot", default=None
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    revisions: tuple[tuple[str, int], ...]
    enforcer: Enforcer


def _expired(enforcer: Enforcer) -> bool:
    """An enforcer compiled before a subject's ``expiry`` must not outlive it."""
    return enforcer.valid_until is not None and datetime.now(UTC) >= enforcer.valid_until


class EnforcerCache:
    def __init__(self, store: Store, *, capacity: int = 10_000) -> None:
        self._store = store
        self._capacity = capacity
        self._cache: OrderedDict[tuple[str, str | None], _Compiled] = OrderedDict()
        # enforcers of new policies (no imports) that are about to be stored: policy id -> (namespace, document,
        # enforcer), until :meth:`saved` caches them at their revision; bounded, as a creation may fail
        self._unsaved: OrderedDict[str, tuple[str | None, dict[str, Any], Enforcer]] = OrderedDict()

    async def policy(self, policy_id: str) -> EntityState | None:
        """The live policy, or ``None`` when it does not exist (or was deleted)."""
        state = await self._store.get("policies", policy_id)
        return state if state is not None and state.doc is not None else None

    @staticmethod
    @contextmanager
    def snapshot() -> Iterator[None]:
        """Within it (and the tasks started within it), each policy's enforcer is looked up once."""
        token = _snapshot.set({})
        try:
            yield
        finally:
            _snapshot.reset(token)

    async def enforcer(self, policy_id: str, namespace: str | None) -> Enforcer | None:
        """The enforcer of a live policy for entities in ``namespace``; ``None`` when the policy is missing."""
        memo = _snapshot.get()
        key = (policy_id, namespace)
        if memo is not None and key in memo:
            return memo[key]
        state = await self.policy(policy_id)
        enforcer = None if state is None else await self.enforcer_of(state, namespace)
        if memo is not None:
            memo[key] = enforcer
        return enforcer

    async def prefetch(self, keys: Iterable[tuple[str, str | None]]) -> None:
        """Within a :meth:`snapshot`: look the enforcers of these ``(policy id, namespace)`` up now, with one
        query for the policies' revisions; only policies whose compiled enforcer is not current (or that
        import others) are then read, with one more query."""
        memo = _snapshot.get()
        if memo is None:
            return
        wanted = [key for key in dict.fromkeys(keys) if key not in memo]
        if not wanted:
            return
        revisions = await self._store.revisions("policies", list(dict.fromkeys(pid for pid, _ in wanted)))
        to_load: list[tuple[str, str | None]] = []
        for key in wanted:
            revision = revisions.get(key[0])
            if revision is None:
                memo[key] = None
                continue
            cached = self._cache.get(key)
            if (
                cached is not None
                and cached.revisions == ((key[0], revision),)
                and not _expired(cached.enforcer)
            ):
                self._cache.move_to_end(key)
                memo[key] = cached.enforcer
            else:
                to_load.append(key)
        if not to_load:
            return
        found = await self._store.get_many("policies", list(dict.fromkeys(pid for pid, _ in to_load)))
        for key in to_load:
            state = found.get(key[0])
            memo[key] = None if state is None else await self.enforcer_of(state, key[1])

    async def enforcer_of(self, state: EntityState, namespace: str | None) -> Enforcer:
        """The enforcer of a stored policy state."""
        assert state.doc is not None
        imported = await self._load_imports(state)
        revisions = (
            (state.entity_id, state.revision),
            *sorted((pid, s.revision if s is not None else 0) for pid, s in imported.items()),
        )
        key = (state.entity_id, namespace)
        cached = self._cache.get(key)
        if cached is not None and cached.revisions == revisions and not _expired(cached.enforcer):
            self._cache.move_to_end(key)
            return cached.enforcer
        docs = {pid: (s.doc if s is not None else None) for pid, s in imported.items()}
        enforcer = Enforcer.compile(resolve_entries(state.doc, docs), namespace=namespace)
        self._cache[key] = _Compiled(revisions, enforcer)
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return enforcer

    async def compile_unsaved(self, policy_id: str, doc: dict[str, Any], namespace: str | None) -> Enforcer:
        """The enforcer of a policy that is not stored yet (a Thing's new default, inline or copied policy).
        Not cached yet, as the creation may still fail: :meth:`saved` caches it once ``doc`` is committed."""
        imported = await self._load_imports(EntityState(policy_id, 0, doc, "", ""))
        docs = {pid: (s.doc if s is not None else None) for pid, s in imported.items()}
        enforcer = Enforcer.compile(resolve_entries(doc, docs), namespace=namespace)
        if not imported:  # with imports, the cache also keys on the imported revisions
            self._unsaved[policy_id] = (namespace, doc, enforcer)
            self._unsaved.move_to_end(policy_id)
            if len(self._unsaved) > _UNSAVED_CAPACITY:
                self._unsaved.popitem(last=False)
        return enforcer

    def saved(self, state: EntityState) -> None:
        """A policy was committed. If it is the very document :meth:`compile_unsaved` compiled, that enforcer
        is current at this revision: cached, so that the new Thing's first modifications (a device starting to
        send telemetry) do not compile it again."""
        pending = self._unsaved.pop(state.entity_id, None)
        if pending is None or state.doc is None or pending[1] is not state.doc:
            return
        namespace, _doc, enforcer = pending
        key = (state.entity_id, namespace)
        self._cache[key] = _Compiled(((state.entity_id, state.revision),), enforcer)
        self._cache.move_to_end(key)
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)

    async def search_readers(self, policy_id: str, doc: dict[str, Any] | None) -> PolicyReaders:
        """The search index entry of a policy about to be written (``doc is None``: deleted, nobody reads)."""
        if doc is None:
            return PolicyReaders(policy_id, (), True)
        imported = await self._load_imports(EntityState(policy_id, 0, doc, "", ""))
        docs = {pid: (s.doc if s is not None else None) for pid, s in imported.items()}
        subjects, uniform = search_readers(resolve_entries(doc, docs))
        # Imported entries can change without this policy changing: only the enforcer, which re-reads the
        # imports on every request, may vouch for such Things.
        return PolicyReaders(policy_id, subjects, uniform and not imported)

    async def _load_imports(self, state: EntityState) -> dict[str, EntityState | None]:
        """Every policy reachable through ``imports`` (resolution decides which of them count)."""
        assert state.doc is not None
        loaded: dict[str, EntityState | None] = {}
        frontier = [pid for pid in import_ids(state.doc) if pid != state.entity_id]
        for _depth in range(MAX_IMPORT_DEPTH):
            if not frontier:
                break
            found = await self._store.get_many("policies", frontier)
            next_frontier: list[str] = []
            for pid in frontier:
                loaded[pid] = found.get(pid)
                doc = found[pid].doc if pid in found else None
                if doc is not None:
                    next_frontier += [p for p in import_ids(doc) if p not in loaded and p != state.entity_id]
            frontier = list(dict.fromkeys(next_frontier))
        return loaded
