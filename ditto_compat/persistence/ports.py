"""The storage port: what the dispatcher needs from a database (DESIGN.md "Storage").

Three collections of entities, ``things``, ``policies`` and ``connections``, each entity with its current
state and a journal of its events. Every change is a compare-and-set on the revision and appends its journal
entry in the same atomic step; a ``commit`` returns only once the change is durable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ditto_compat.domain.entity import EntityState
from ditto_compat.rql.ast import Query, SortKey

Collection = Literal["things", "policies", "connections"]
COLLECTIONS: tuple[Collection, ...] = ("things", "policies", "connections")


class RevisionConflict(Exception):
    """Another writer changed the entity since it was read: reload and retry."""


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the operation."""


@dataclass(frozen=True, slots=True)
class PolicyReaders:
    """The search index of one policy: the subjects that may READ some part of its Things (``subjects``), and
    whether each of them may READ all of every Thing (``uniform``: no revoke, no field-level grant, no
    namespace-scoped entry). Things of a uniform policy need no further check after the database matched
    them; the others are verified against the enforcer in Python."""

    policy_id: str
    subjects: tuple[str, ...]
    uniform: bool


# Not frozen, for speed (a frozen init costs 1.3 us, once per write): treat it as immutable.
@dataclass(slots=True)
class EntityWrite:
    """Replace the state of one entity if its stored revision is still ``expected_revision``.

    ``expected_revision`` is 0 when the id was never stored. ``state.doc is None`` keeps a tombstone (deleted
    entity; its revision goes on counting). ``event`` is the journal entry stored under
    ``(collection, entity_id, state.revision)``.
    """

    collection: Collection
    expected_revision: int
    state: EntityState
    event: dict[str, Any]
    # for policies: their new search index, written in the same atomic step
    readers: PolicyReaders | None = None
    # for things: the document the caller read at ``expected_revision`` (``previous_known``), which the
    # compare-and-set guarantees is the stored one when the write hits; lets a store update its search index
    # from the difference without reading the old document back
    previous_doc: dict[str, Any] | None = None
    previous_known: bool = False
    # for things: the new document differs from ``previous_doc`` only at or below this path (the resource a
    # command changed); None when not known (a whole-Thing change)
    changed_at: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search over live Things, run by the database.

    ``readers``: the caller's subjects; only Things whose policy index names one of them match.
    ``sort`` always ends with ``thingId`` (the tie-breaker). ``after``: the sort values of the last Thing of the
    previous page (one per sort key, taken from ``rql.fields.searchable_document``; an absent value is
    ``ditto_compat.model.pointer.MISSING``), or None for the first page.
    """

    readers: tuple[str, ...]
    filter: Query | None = None
    namespaces: tuple[str, ...] | None = None
    sort: tuple[SortKey, ...] = ()
    after: tuple[Any, ...] | None = None
    limit: int = 25


@dataclass(frozen=True, slots=True)
class SearchHit:
    state: EntityState
    uniform: bool  # see PolicyReaders


class Store(Protocol):
    name: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> dict[str, Any]:
        """``{"status": "UP"|"DOWN", ...}``; never raises."""
        ...

    async def get(self, collection: Collection, entity_id: str) -> EntityState | None:
        """The stored state, tombstones included; ``None`` when the id was never stored."""
        ...

    async def get_many(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, EntityState]:
        """States of the given ids that exist and are not deleted."""
        ...

    async def revisions(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, int]:
        """Revisions of the given ids that exist and are not deleted, without reading their documents (to
        tell whether a cached copy is current)."""
        ...

    async def list_page(
        self,
        collection: Collection,
        *,
        after: str | None,
        limit: int,
        namespaces: Sequence[str] | None = None,
    ) -> list[EntityState]:
        """Live entities ordered by id, strictly after ``after``, at most ``limit``, optionally only in the
        given namespaces (the part of the id before the first ``:``)."""
        ...

    async def count_live(self, collection: Collection) -> int:
        """The number of live (not deleted) entities of the collection; for metrics, so callers cache it."""
        ...

    async def commit(self, writes: Sequence[EntityWrite]) -> None:
        """Apply all writes atomically (all or none) and durably; :class:`RevisionConflict` if any
        ``expected_revision`` does not match."""
        ...

    async def commit_each(self, groups: Sequence[Sequence[EntityWrite]]) -> list[BaseException | None]:
        """Apply independent groups of writes, each atomically and durably, in as few round trips as the
        database allows; per group None or its :class:`RevisionConflict`. Raises :class:`StoreUnavailable`
        when the writes could not be made durable."""
        ...

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        """At most ``request.limit`` live Things matching the filter, in sort order, after ``after``."""
        ...

    async def count(self, request: SearchRequest) -> tuple[int, list[SearchHit]]:
        """``(n, to_verify)``: ``n`` matching Things of uniform policies, plus the matching Things of the other
        policies, which the caller must verify one by one (``limit`` and ``sort`` are ignored)."""
        ...

    async def importers(self, policy_id: str) -> list[str]:
        """Ids of the live policies whose ``imports`` name ``policy_id`` (directly), in id order."""
        ...

    async def set_policy_readers(self, readers: Sequence[PolicyReaders]) -> None:
        """Replace the search index of these policies (after a policy or one of its imports changed)."""
        ...

    async def hold_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``ttl_s`` seconds from now: True when ``owner``
        holds it (it was free, expired or already its own), False while another owner's lease runs. How one
        connection is run by one of several processes sharing the database (connectivity/manager.py)."""
        ...

    async def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up, if ``owner`` holds it."""
        ...

    async def journal(
        self,
        collection: Collection,
        entity_id: str,
        *,
        from_revision: int = 1,
        to_revision: int | None = None,
    ) -> list[dict[str, Any]]:
        """Journal entries of one entity in revision order, both bounds inclusive."""
        ...
