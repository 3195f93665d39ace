"""MongoDB implementation of the storage port (:class:`ditto_compat.persistence.ports.Store`) for production
and scale-out (DESIGN.md "Storage"), on PyMongo's native ``AsyncMongoClient`` (Motor is deprecated).

Layout in the configured database:

- ``things``, ``policies`` and ``connections``: ``{_id: entity id, revision, deleted, created, modified,
  namespace, doc}`` where ``doc`` is the Thing, Policy or Connection JSON as a sub-document (so that RQL
  search can query it in the database) and ``null`` for a tombstone. Index ``live_ns`` on
  ``(namespace, _id)``, partial on ``deleted: false``, serves :meth:`MongoStore.list_page`;
  its queries must say ``deleted: False`` for the planner to pick it.
- Things carry their search fields as well: ``policy_id``; ``_wf``, the feature values as an array (the
  feature wildcard ``features/*/...`` of :mod:`.query_mongo`); and a copy of their policy's search index,
  ``readers`` (null when nobody reads), ``uniform`` and ``readers_v``. Indexes: ``readers`` (multikey, with
  ``_id``), ``policy_id``, ``modified`` and ``created`` (each with ``_id``), and ``search_values``, a wildcard
  index over the searchable parts of ``doc`` and ``_wf`` (RQL predicates on any path).
- ``search_policies``: ``{_id: policy id, readers, uniform, v}``, the search index of each policy
  (:class:`~ditto_compat.persistence.ports.PolicyReaders`); ``v`` counts its changes.
- ``meta``: ``{_id: "search-layout"}`` once Things stored before search have been given their search fields.
- ``journal``: ``{c: collection, i: entity id, r: revision, e: event}`` with the unique index
  ``entity_revision`` on ``(c, i, r)``, which both rejects a second event for one revision and serves range
  reads. (Not a compound ``_id``: a range on an embedded ``_id`` document is correct in MongoDB's ordering
  but SecantusDB answers it with a collection scan.)

Key escaping: keys inside ``doc`` and the event ``e`` are escaped reversibly, with Eclipse Ditto's own search
index scheme (``KeyEscapeUtil``): ``~`` -> ``~0``, ``$`` -> ``~1``, ``.`` -> ``~2``. SecantusDB and MongoDB >= 5
do store ``.`` and ``$`` in field names, but MongoDB can then neither index such a field nor address it in a
query path (``doc.attributes.a.b`` means nested ``a`` then ``b``; only ``$getField`` reaches ``"a.b"``), which
would break RQL search on keys Ditto allows. A query translator must therefore escape every path segment with
:func:`escape_key` and prefix ``doc.``. (Ditto keys cannot contain control characters; a NUL byte in a key is
refused by BSON.)

Every :meth:`MongoStore.commit` is one multi-document transaction (write concern ``majority``): compare-and-set
by ``replace_one({_id, revision: expected})`` or ``insert_one`` (duplicate key = conflict), plus the journal
inserts. A write conflict with a concurrent transaction (error 112) is a :class:`RevisionConflict` too: the
caller reloads and retries, as for a CAS miss. Any other driver error is :class:`StoreUnavailable`.

Readers of a Thing are copied from ``search_policies`` inside the Thing's transaction, and a change of a
policy's readers rewrites its Things with ``update_many`` inside the policy's transaction. Snapshot isolation
leaves one gap: a Thing inserted (or moved to the policy) by a transaction that read the old readers and
commits after the policy's ``update_many`` ran is not touched by it, and no write conflict tells either side.
Both sides therefore check after their commit, by ``readers_v``, and bring stale copies up to date (a copy
only ever moves to a newer ``v``). So a search may, for the instant between the two, see the previous readers
of a policy, as Ditto's own eventually consistent index does; it never keeps them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pymongo
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.history import compact
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import (
    COLLECTIONS,
    Collection,
    EntityWrite,
    PolicyReaders,
    RevisionConflict,
    SearchHit,
    SearchRequest,
    StoreUnavailable,
)
from ditto_compat.persistence.query_common import over_views
from ditto_compat.persistence.query_mongo import (
    escape_key,
    escape_keys,
    mongo_filter,
    sort_plan,
    unescape_key,
    unescape_keys,
    wildcard_features,
)
from ditto_compat.rql.ast import Query

__all__ = ["MongoStore", "escape_key", "escape_keys", "unescape_key", "unescape_keys"]

Document = dict[str, Any]

_log = logging.getLogger(__name__)

_WRITE_CONFLICT: Final = 112
_JOURNAL: Final = "journal"
_SEARCH_POLICIES: Final = "search_policies"
# An acknowledged commit must survive the loss of the primary.
_COMMIT_WRITE_CONCERN: Final = WriteConcern(w="majority")
_HEALTH_TIMEOUT_S: Final = 2.0
# set_policy_readers retries a transaction that lost a write conflict this often (commit() instead reports
# the conflict: its caller re-runs the command).
_READERS_ATTEMPTS: Final = 8
# What a search hit does not need back from the database.
_HIT_PROJECTION: Final = {"_wf": 0, "readers": 0, "readers_v": 0, "policy_id": 0}
# A Thing whose policy has no index (unknown, deleted, or nobody reads): no search finds it. null rather than
# []: an empty array is a key of the multikey index too, and SecantusDB reports concurrent inserts of equal
# array keys as write conflicts (null keys it does not).
_NO_READERS: Final[Document] = {"readers": None, "uniform": False, "readers_v": 0}
_META: Final = "meta"
# leases of work that one of several processes sharing the database does (ports.Store.hold_lease)
_LEASES: Final = "leases"
_WILDCARD_PROJECTION: Final = {
    "doc.policyId": 1,
    "doc.definition": 1,
    "doc.attributes": 1,
    "doc.features": 1,
    "doc._metadata": 1,
    "_wf": 1,
}
_SEARCH_LAYOUT: Final = "search-layout"


def _to_state(doc: Mapping[str, Any]) -> EntityState:
    body = doc.get("doc")
    return EntityState(
        entity_id=doc["_id"],
        revision=doc["revision"],
        doc=None if body is None else unescape_keys(body),
        created=doc["created"],
        modified=doc["modified"],
    )


def _entity_fields(write: EntityWrite) -> Document:
    """The stored entity document, without ``_id`` (``replace_one`` keeps the ``_id`` of the match). A Thing
    also gets its search fields, except the readers (copied inside the transaction)."""
    state = write.state
    doc = None if state.doc is None else escape_keys(state.doc)
    fields: Document = {
        "revision": state.revision,
        "deleted": state.doc is None,
        "created": state.created,
        "modified": state.modified,
        "namespace": namespace_of(state.entity_id),
        "doc": doc,
    }
    if write.collection == "things":
        policy_id = doc.get("policyId") if doc is not None else None
        fields["policy_id"] = policy_id if isinstance(policy_id, str) else None
        fields["_wf"] = wildcard_features(doc) if doc is not None else []
    return fields


def _policy_index(write: EntityWrite) -> PolicyReaders | None:
    """The new search index a policy write carries (a deleted policy's: nobody reads)."""
    if write.collection != "policies":
        return None
    if write.readers is None and write.state.doc is None:
        return PolicyReaders(write.state.entity_id, (), True)
    return write.readers


def _readers_fields(index: Mapping[str, Any] | None) -> Document:
    """What a Thing copies of its policy's ``search_policies`` document."""
    if index is None:
        return dict(_NO_READERS)
    return {
        "readers": list(index["readers"]) or None,
        "uniform": bool(index["uniform"]),
        "readers_v": int(index["v"]),
    }


def _hit(doc: Mapping[str, Any]) -> SearchHit:
    return SearchHit(state=_to_state(doc), uniform=bool(doc.get("uniform")))


def _check(write: EntityWrite) -> None:
    if write.collection not in COLLECTIONS:
        raise ValueError(f"unknown collection {write.collection!r}")
    if write.expected_revision < 0 or write.state.revision <= write.expected_revision:
        raise ValueError(
            f"revision of {write.state.entity_id!r} must grow: "
            f"expected {write.expected_revision}, new {write.state.revision}"
        )


class MongoStore:
    """The storage port on a MongoDB database (a replica set: commits use multi-document transactions)."""

    name: str = "mongodb"

    def __init__(self, uri: str, database: str, *, journal_retention: int = 0) -> None:
        if journal_retention < 0:
            raise ValueError(f"journal_retention must be 0 (unbounded) or more, not {journal_retention}")
        self.uri = uri
        self.database = database
        # revisions kept in the journal per entity; 0 keeps all
        self.journal_retention = journal_retention
        self._client: AsyncMongoClient[Document] | None = None
        self._entities: dict[str, AsyncCollection[Document]] = {}
        self._journal: AsyncCollection[Document] | None = None
        self._search_policies: AsyncCollection[Document] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and create the indexes (idempotent; this also proves the server answers)."""
        if self._client is not None:
            return
        client: AsyncMongoClient[Document] = AsyncMongoClient(self.uri, appname="ditto-compat")
        db = client[self.database]
        entities: dict[str, AsyncCollection[Document]] = {c: db[c] for c in COLLECTIONS}
        journal = db[_JOURNAL]
        things = entities["things"]
        try:
            for coll in entities.values():
                await coll.create_index(
                    [("namespace", ASCENDING), ("_id", ASCENDING)],
                    name="live_ns",
                    partialFilterExpression={"deleted": False},
                )
            await journal.create_index(
                [("c", ASCENDING), ("i", ASCENDING), ("r", ASCENDING)], name="entity_revision", unique=True
            )
            # search: who may read (multikey; with _id, a reader's Things come in thingId order, the default
            # sort), the Things of a policy (readers updates), and stored sort keys a search can walk in order
            for name, field in (("readers", "readers"), ("policy_id", "policy_id"), ("modified", "modified")):
                await things.create_index([(field, ASCENDING), ("_id", ASCENDING)], name=name)
            await things.create_index([("created", ASCENDING), ("_id", ASCENDING)], name="created")
            # every searchable value of the Thing JSON: a wildcard index serves an equality, range, $in or
            # anchored regex on any one path, as Ditto's own flattened search index does
            await things.create_index(
                [("$**", ASCENDING)], name="search_values", wildcardProjection=_WILDCARD_PROJECTION
            )
            if await db[_META].find_one({"_id": _SEARCH_LAYOUT}) is None:
                await self._backfill(things, db[_SEARCH_POLICIES])
                await db[_META].update_one({"_id": _SEARCH_LAYOUT}, {"$set": {"version": 1}}, upsert=True)
        except PyMongoError as exc:
            await client.close()
            raise StoreUnavailable(f"MongoDB not usable: {exc}") from exc
        self._client, self._entities, self._journal = client, entities, journal
        self._search_policies = db[_SEARCH_POLICIES]

    @staticmethod
    async def _backfill(things: AsyncCollection[Document], policies: AsyncCollection[Document]) -> None:
        """Things stored before search existed get their search fields (once per database: the ``meta``
        document ``search-layout`` records that it ran)."""
        async for old in things.find({"readers_v": {"$exists": False}}):
            doc = old.get("doc")
            policy_id = doc.get("policyId") if isinstance(doc, dict) else None
            policy_id = policy_id if isinstance(policy_id, str) else None
            index = await policies.find_one({"_id": policy_id}) if policy_id is not None else None
            fields = {
                "policy_id": policy_id,
                "_wf": wildcard_features(doc) if isinstance(doc, dict) else [],
                **_readers_fields(index),
            }
            await things.update_one({"_id": old["_id"], "readers_v": {"$exists": False}}, {"$set": fields})

    async def close(self) -> None:
        """Close the client's connections."""
        client, self._client = self._client, None
        self._entities, self._journal, self._search_policies = {}, None, None
        if client is not None:
            await client.close()

    async def health(self) -> dict[str, Any]:
        """``UP`` when the server answers a ping within 2 s; never raises. The URI is left out on purpose:
        it may carry credentials."""
        base = {"backend": self.name, "database": self.database}
        if self._client is None:
            return {"status": "DOWN", **base, "reason": "store is not open"}
        try:
            with pymongo.timeout(_HEALTH_TIMEOUT_S):
                await self._client[self.database].command("ping")
        except Exception as exc:  # health must describe any failure, not raise it
            return {"status": "DOWN", **base, "reason": f"{type(exc).__name__}: {exc}"}
        return {"status": "UP", **base}

    def _coll(self, collection: Collection) -> AsyncCollection[Document]:
        if self._client is None:
            raise StoreUnavailable("MongoDB store is not open")
        try:
            return self._entities[collection]
        except KeyError:
            raise ValueError(f"unknown collection {collection!r}") from None

    def _journal_coll(self) -> AsyncCollection[Document]:
        if self._journal is None:
            raise StoreUnavailable("MongoDB store is not open")
        return self._journal

    def _index_coll(self) -> AsyncCollection[Document]:
        if self._search_policies is None:
            raise StoreUnavailable("MongoDB store is not open")
        return self._search_policies

    # -- reads -------------------------------------------------------------------------------------------

    async def get(self, collection: Collection, entity_id: str) -> EntityState | None:
        """The stored state, tombstones included; ``None`` when the id was never stored."""
        coll = self._coll(collection)
        try:
            doc = await coll.find_one({"_id": entity_id})
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc
        return None if doc is None else _to_state(doc)

    async def get_many(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, EntityState]:
        """States of the given ids that exist and are not deleted, in the order asked for."""
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return {}
        coll = self._coll(collection)
        try:
            found = {d["_id"]: _to_state(d) async for d in coll.find({"_id": {"$in": ids}, "deleted": False})}
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc
        return {i: found[i] for i in ids if i in found}

    async def revisions(self, collection: Collection, entity_ids: Sequence[str]) -> dict[str, int]:
        """Revisions of the given ids that exist and are not deleted (their documents are not read)."""
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return {}
        coll = self._coll(collection)
        query = {"_id": {"$in": ids}, "deleted": False}
        try:
            return {d["_id"]: int(d["revision"]) async for d in coll.find(query, {"revision": 1})}
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc

    async def list_page(
        self,
        collection: Collection,
        *,
        after: str | None,
        limit: int,
        namespaces: Sequence[str] | None = None,
    ) -> list[EntityState]:
        """Live entities ordered by id, strictly after ``after``, at most ``limit``, optionally only in the
        given namespaces."""
        if limit <= 0 or (namespaces is not None and not namespaces):
            return []
        coll = self._coll(collection)
        query: Document = {"deleted": False}
        if namespaces is not None:
            query["namespace"] = {"$in": list(dict.fromkeys(namespaces))}
        if after is not None:
            query["_id"] = {"$gt": after}
        try:
            cursor = coll.find(query).sort("_id", ASCENDING).limit(limit)
            return [_to_state(d) async for d in cursor]
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc

    async def count_live(self, collection: Collection) -> int:
        """The number of live (not deleted) entities. ``deleted: False`` literally, as the partial index
        ``live_ns`` requires, so that the server can count over that index rather than the documents."""
        try:
            return await self._coll(collection).count_documents({"deleted": False})
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc

    async def importers(self, policy_id: str) -> list[str]:
        """Ids of the live policies whose ``imports`` name ``policy_id`` (directly), in id order."""
        query = {"deleted": False, f"doc.imports.{escape_key(policy_id)}": {"$exists": True}}
        try:
            cursor = self._coll("policies").find(query, {"_id": 1}).sort("_id", 1)
            return [d["_id"] async for d in cursor]
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc

    async def journal(
        self,
        collection: Collection,
        entity_id: str,
        *,
        from_revision: int = 1,
        to_revision: int | None = None,
    ) -> list[dict[str, Any]]:
        """Journal entries of one entity in revision order, both bounds inclusive."""
        journal = self._journal_coll()
        revisions: Document = {"$gte": from_revision}
        if to_revision is not None:
            revisions["$lte"] = to_revision
        query = {"c": collection, "i": entity_id, "r": revisions}
        try:
            cursor = journal.find(query, {"_id": 0, "e": 1}).sort("r", ASCENDING)
            return [unescape_keys(d["e"]) async for d in cursor]
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB read failed: {exc}") from exc

    # -- search ------------------------------------------------------------------------------------------

    @classmethod
    def _search_filter(cls, request: SearchRequest, uniform: bool | None = None) -> Document:
        """Live Things a reader may read, in the namespaces, matching the filter; of (non-)uniform policies
        only, if asked. Policies that hide fields from some readers get the filter relaxed (``over_views``)."""
        query: Document = {"deleted": False, "readers": {"$in": list(dict.fromkeys(request.readers))}}
        if request.namespaces is not None:
            query["namespace"] = {"$in": list(dict.fromkeys(request.namespaces))}
        if uniform is not None:
            query["uniform"] = uniform
        if request.filter is None:
            return query
        relaxed = over_views(request.filter)
        if relaxed == request.filter or uniform is True:
            return cls._with_filter(query, request.filter)
        loose = query if relaxed is None else cls._with_filter(dict(query), relaxed)
        if uniform is False:
            return loose
        strict = cls._with_filter({**query, "uniform": True}, request.filter)
        return {"$or": [strict, {**loose, "uniform": False}]}

    @staticmethod
    def _with_filter(query: Document, rql: Query) -> Document:
        """``query`` and the RQL filter."""
        # The filter's own fields join the base document where they can: a planner (SecantusDB's at least)
        # picks an index among the fields of one document more readily than through "$and".
        parts = [mongo_filter(rql, datetime.now(UTC))]
        nested: list[Document] = []
        while parts:
            part = parts.pop(0)
            if set(part) == {"$and"}:
                parts = [*part["$and"], *parts]
            elif query.keys().isdisjoint(part):
                query.update(part)
            else:
                nested.append(part)
        if nested:
            query["$and"] = nested
        return query

    async def search(self, request: SearchRequest) -> list[SearchHit]:
        """At most ``request.limit`` live Things matching the filter, in sort order, after ``after``."""
        if request.limit <= 0 or not request.readers or request.namespaces == ():
            return []
        things = self._coll("things")
        query = self._search_filter(request)
        plan = sort_plan(request.sort, request.after)
        try:
            if not plan.stages:
                # only stored fields: a plain find, which can walk an index in sort order
                if plan.after is not None:
                    query = {"$and": [query, plan.after]}
                cursor = things.find(query, _HIT_PROJECTION).sort(plan.sort).limit(request.limit)
                return [_hit(d) async for d in cursor]
            pipeline: list[Document] = [{"$match": query}, *plan.stages]
            if plan.after is not None:
                pipeline.append({"$match": plan.after})
            pipeline += [
                {"$sort": dict(plan.sort)},
                {"$limit": request.limit},
                {"$project": {**_HIT_PROJECTION, **dict.fromkeys(plan.computed, 0)}},
            ]
            return [_hit(d) async for d in await things.aggregate(pipeline)]
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB search failed: {exc}") from exc

    async def count(self, request: SearchRequest) -> tuple[int, list[SearchHit]]:
        """``(n, to_verify)``: matches of uniform policies counted by the database, matches of the others
        returned for the caller to check (``limit``, ``sort`` and ``after`` are ignored)."""
        if not request.readers or request.namespaces == ():
            return 0, []
        things = self._coll("things")
        try:
            counted = await things.count_documents(self._search_filter(request, True))
            unverified = self._search_filter(request, False)
            cursor = things.find(unverified, _HIT_PROJECTION).sort("_id", ASCENDING)
            return counted, [_hit(d) async for d in cursor]
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB count failed: {exc}") from exc

    def _lease_coll(self) -> AsyncCollection[Document]:
        if self._client is None:
            raise StoreUnavailable("MongoDB store is not open")
        return self._client[self.database][_LEASES]

    async def hold_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """One document per lease, taken with a conditional upsert: when another owner's unexpired lease exists,
        the filter misses and the upsert collides with its ``_id``. Expiry is by the holders' clocks (processes
        on hosts whose clocks differ by more than the TTL could both hold it)."""
        now = datetime.now(UTC)
        try:
            doc = await self._lease_coll().find_one_and_update(
                {"_id": name, "$or": [{"owner": owner}, {"expires": {"$lt": now}}]},
                {"$set": {"owner": owner, "expires": now + timedelta(seconds=ttl_s)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return False
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB lease {name!r} failed: {exc}") from exc
        return doc is not None and doc.get("owner") == owner

    async def release_lease(self, name: str, owner: str) -> None:
        try:
            await self._lease_coll().delete_one({"_id": name, "owner": owner})
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB lease {name!r} failed: {exc}") from exc

    async def set_policy_readers(self, readers: Sequence[PolicyReaders]) -> None:
        """Replace the search index of these policies and of their Things, in one transaction."""
        if not readers:
            return
        if self._client is None:
            raise StoreUnavailable("MongoDB store is not open")
        for attempt in range(_READERS_ATTEMPTS):
            try:
                async with (
                    self._client.start_session() as session,
                    await session.start_transaction(write_concern=_COMMIT_WRITE_CONCERN),
                ):
                    versions = {r.policy_id: await self._write_readers(session, r) for r in readers}
                break
            except OperationFailure as exc:
                if exc.code != _WRITE_CONFLICT or attempt == _READERS_ATTEMPTS - 1:
                    raise StoreUnavailable(f"MongoDB readers update failed: {exc}") from exc
                # a Thing of the policy was written meanwhile: start over on the new snapshot
                await asyncio.sleep(0.005 * (attempt + 1))
            except PyMongoError as exc:
                raise StoreUnavailable(f"MongoDB readers update failed: {exc}") from exc
        await self._catch_up_policies(versions)

    async def _write_readers(self, session: AsyncClientSession, index: PolicyReaders) -> int:
        """The policy's index and the copies on its live Things; returns the index's new version."""
        subjects = list(dict.fromkeys(index.subjects))
        stored = await self._index_coll().find_one_and_update(
            {"_id": index.policy_id},
            {"$set": {"readers": subjects, "uniform": index.uniform}, "$inc": {"v": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if stored is None:  # an upsert always returns the document; only a broken server would not
            raise StoreUnavailable(f"MongoDB did not return the search index of {index.policy_id!r}")
        version = int(stored["v"])
        await self._coll("things").update_many(
            {"policy_id": index.policy_id, "deleted": False},
            {"$set": {"readers": subjects or None, "uniform": index.uniform, "readers_v": version}},
            session=session,
        )
        return version

    async def _catch_up_policies(self, versions: Mapping[str, int]) -> None:
        """After a readers change committed: Things a concurrent transaction wrote with older readers."""
        try:
            for policy_id, version in versions.items():
                index = await self._index_coll().find_one({"_id": policy_id})
                if index is None or int(index["v"]) != version:
                    continue  # a newer change runs its own catch-up
                await self._coll("things").update_many(
                    {"policy_id": policy_id, "deleted": False, "readers_v": {"$lt": version}},
                    {"$set": _readers_fields(index)},
                )
        except PyMongoError as exc:  # the change is committed; the next change or write of the Thing repairs
            _log.warning("search readers catch-up failed: %s", exc)

    async def _catch_up_things(self, copied: Mapping[str, tuple[str, int]]) -> None:
        """After Things committed: those whose policy's readers changed since they copied them."""
        by_policy: dict[str, list[str]] = {}
        for thing_id, (policy_id, _version) in copied.items():
            by_policy.setdefault(policy_id, []).append(thing_id)
        try:
            current = {d["_id"]: d async for d in self._index_coll().find({"_id": {"$in": list(by_policy)}})}
            for policy_id, thing_ids in by_policy.items():
                index = current.get(policy_id)
                version = int(index["v"]) if index is not None else 0
                if all(copied[t][1] >= version for t in thing_ids):
                    continue
                await self._coll("things").update_many(
                    {"_id": {"$in": thing_ids}, "policy_id": policy_id, "readers_v": {"$lt": version}},
                    {"$set": _readers_fields(index)},
                )
        except PyMongoError as exc:  # as above: committed; repaired by the policy's next change
            _log.warning("search readers catch-up failed: %s", exc)

    # -- writes ------------------------------------------------------------------------------------------

    async def commit(self, writes: Sequence[EntityWrite]) -> None:
        """Apply all writes and their journal entries in one transaction; :class:`RevisionConflict` when
        any ``expected_revision`` does not match (or a concurrent transaction wrote the same entity), in
        which case nothing of this call was written."""
        if not writes:
            return
        for w in writes:
            _check(w)
        if self._client is None:
            raise StoreUnavailable("MongoDB store is not open")
        # Escaping happens before the transaction so that the transaction stays as short as possible.
        staged = [
            (
                w,
                _entity_fields(w),
                {"c": w.collection, "i": w.state.entity_id, "r": w.state.revision, "e": escape_keys(w.event)},
            )
            for w in writes
        ]
        policy_indexes = [index for w in writes if (index := _policy_index(w)) is not None]
        # thing id -> (policy id, readers version copied): checked again after the commit
        copied: dict[str, tuple[str, int]] = {}
        try:
            # Leaving the transaction block with an exception aborts the transaction; without one, commits.
            async with (
                self._client.start_session() as session,
                await session.start_transaction(write_concern=_COMMIT_WRITE_CONCERN),
            ):
                # Policies first: a Thing created with its policy in this commit copies the new readers.
                versions = {p.policy_id: await self._write_readers(session, p) for p in policy_indexes}
                indexes: dict[str, Document | None] = {}
                for write, fields, event in staged:
                    if write.collection == "things":
                        await self._copy_readers(session, fields, indexes)
                        if fields["policy_id"] is not None and not fields["deleted"]:
                            copied[write.state.entity_id] = (fields["policy_id"], fields["readers_v"])
                    await self._write_one(session, write, fields, event)
        except RevisionConflict:
            raise
        except DuplicateKeyError as exc:
            raise RevisionConflict(f"already stored: {exc}") from exc
        except OperationFailure as exc:
            if exc.code == _WRITE_CONFLICT:
                raise RevisionConflict(f"concurrent write: {exc}") from exc
            raise StoreUnavailable(f"MongoDB commit failed: {exc}") from exc
        except PyMongoError as exc:
            raise StoreUnavailable(f"MongoDB commit failed: {exc}") from exc
        if versions:
            await self._catch_up_policies(versions)
        if copied:
            await self._catch_up_things(copied)

    async def commit_each(self, groups: Sequence[Sequence[EntityWrite]]) -> list[BaseException | None]:
        """Each group in its own transaction, concurrently: a group that loses its compare-and-set gets its
        :class:`RevisionConflict`, the others are applied. Raises :class:`StoreUnavailable` when any group
        could not be written (others may have been), as a single failed commit does: the caller does not
        acknowledge, and its broker redelivers."""
        outcomes = await asyncio.gather(*(self.commit(group) for group in groups), return_exceptions=True)
        results: list[BaseException | None] = []
        for outcome in outcomes:
            if isinstance(outcome, StoreUnavailable):
                raise outcome
            if isinstance(outcome, BaseException) and not isinstance(outcome, RevisionConflict):
                raise outcome
            results.append(outcome)
        return results

    async def _copy_readers(
        self, session: AsyncClientSession, fields: Document, indexes: dict[str, Document | None]
    ) -> None:
        """A Thing's copy of its policy's readers, read in the transaction (once per policy and commit)."""
        policy_id = fields["policy_id"]
        if fields["deleted"] or policy_id is None:
            fields.update(_NO_READERS)
            return
        if policy_id not in indexes:
            indexes[policy_id] = await self._index_coll().find_one({"_id": policy_id}, session=session)
        fields.update(_readers_fields(indexes[policy_id]))

    async def _write_one(
        self, session: AsyncClientSession, write: EntityWrite, fields: Document, event: Document
    ) -> None:
        coll = self._coll(write.collection)
        entity_id = write.state.entity_id
        if write.expected_revision == 0:
            await coll.insert_one({"_id": entity_id, **fields}, session=session)
        else:
            result = await coll.replace_one(
                {"_id": entity_id, "revision": write.expected_revision}, fields, session=session
            )
            if result.matched_count != 1:
                raise RevisionConflict(
                    f"{write.collection} {entity_id!r} is not at revision {write.expected_revision}"
                )
        await self._journal_coll().insert_one(event, session=session)
        await self._prune_journal(session, write)

    async def _prune_journal(self, session: AsyncClientSession, write: EntityWrite) -> None:
        """``journal_retention`` N: after revision r, keep revisions r-N+1..r, the oldest rewritten as the
        snapshot of the entity at that revision (domain/history.py), in the transaction of the write. Each
        commit moves the window by one, so this replays two entries: the old snapshot and the next event."""
        keep_from = write.state.revision - self.journal_retention + 1
        if self.journal_retention <= 0 or keep_from <= 1:
            return
        journal = self._journal_coll()
        key = {"c": write.collection, "i": write.state.entity_id}
        if write.collection == "connections":
            # every connection event carries the whole definition: older entries are simply dropped
            await journal.delete_many({**key, "r": {"$lt": keep_from}}, session=session)
            return
        cursor = journal.find({**key, "r": {"$lte": keep_from}}, {"_id": 0, "e": 1}, session=session)
        entries = [unescape_keys(d["e"]) async for d in cursor.sort("r", ASCENDING)]
        try:
            snapshot = compact(write.collection, write.state.entity_id, entries)
        except Exception:
            # a journal entry this version cannot replay: keep the journal longer rather than fail the write
            _log.exception("journal of %s %r not pruned", write.collection, write.state.entity_id)
            return
        if snapshot is None:
            return
        await journal.update_one(
            {**key, "r": keep_from}, {"$set": {"e": escape_keys(snapshot)}}, session=session
        )
        await journal.delete_many({**key, "r": {"$lt": keep_from}}, session=session)
