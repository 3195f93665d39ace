"""MongoDB implementation of the storage port (:class:`ditto_compat.persistence.ports.Store`) for production
and scale-out (DESIGN.md "Storage"), on PyMongo's native ``AsyncMongoClient`` (Motor is deprecated).

Layout in the configured database:

- ``things`` and ``policies``: ``{_id: entity id, revision, deleted, created, modified, namespace, doc}`` where
  ``doc`` is the Thing or Policy JSON as a sub-document (so that RQL search can query it in the database) and
  ``null`` for a tombstone. Index ``live_ns`` on ``(namespace, _id)``, partial on ``deleted: false``, serves
  :meth:`MongoStore.list_page`; its queries must say ``deleted: False`` for the planner to pick it.
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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import pymongo
from pymongo import ASCENDING, AsyncMongoClient, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from ditto_compat.domain.entity import EntityState
from ditto_compat.model.ids import namespace_of
from ditto_compat.persistence.ports import (
    COLLECTIONS,
    Collection,
    EntityWrite,
    RevisionConflict,
    StoreUnavailable,
)

__all__ = ["MongoStore", "escape_key", "escape_keys", "unescape_key", "unescape_keys"]

Document = dict[str, Any]

_WRITE_CONFLICT: Final = 112
_JOURNAL: Final = "journal"
# An acknowledged commit must survive the loss of the primary.
_COMMIT_WRITE_CONCERN: Final = WriteConcern(w="majority")
_HEALTH_TIMEOUT_S: Final = 2.0


def escape_key(key: str) -> str:
    """A JSON key as stored in MongoDB: no ``.`` and no ``$`` (Ditto's ``KeyEscapeUtil`` scheme)."""
    return key.replace("~", "~0").replace("$", "~1").replace(".", "~2")


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    if "~" not in key:
        return key
    # Every "~" of an escaped key starts a two-character token, so "~2" and "~1" only ever match whole tokens;
    # "~0" goes last because it is the one that produces new "~" characters.
    return key.replace("~2", ".").replace("~1", "$").replace("~0", "~")


def escape_keys(value: Any) -> Any:
    """A JSON value with every object key escaped by :func:`escape_key`, at any depth."""
    if isinstance(value, dict):
        return {escape_key(k): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_keys(v) for v in value]
    return value


def unescape_keys(value: Any) -> Any:
    """Inverse of :func:`escape_keys`."""
    if isinstance(value, dict):
        return {unescape_key(k): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


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
    """The stored entity document, without ``_id`` (``replace_one`` keeps the ``_id`` of the match)."""
    state = write.state
    return {
        "revision": state.revision,
        "deleted": state.doc is None,
        "created": state.created,
        "modified": state.modified,
        "namespace": namespace_of(state.entity_id),
        "doc": None if state.doc is None else escape_keys(state.doc),
    }


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

    def __init__(self, uri: str, database: str) -> None:
        self.uri = uri
        self.database = database
        self._client: AsyncMongoClient[Document] | None = None
        self._entities: dict[str, AsyncCollection[Document]] = {}
        self._journal: AsyncCollection[Document] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and create the indexes (idempotent; this also proves the server answers)."""
        if self._client is not None:
            return
        client: AsyncMongoClient[Document] = AsyncMongoClient(self.uri, appname="ditto-compat")
        db = client[self.database]
        entities: dict[str, AsyncCollection[Document]] = {c: db[c] for c in COLLECTIONS}
        journal = db[_JOURNAL]
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
        except PyMongoError as exc:
            await client.close()
            raise StoreUnavailable(f"MongoDB not usable: {exc}") from exc
        self._client, self._entities, self._journal = client, entities, journal

    async def close(self) -> None:
        """Close the client's connections."""
        client, self._client = self._client, None
        self._entities, self._journal = {}, None
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
        try:
            # Leaving the transaction block with an exception aborts the transaction; without one, commits.
            async with (
                self._client.start_session() as session,
                await session.start_transaction(write_concern=_COMMIT_WRITE_CONCERN),
            ):
                for write, fields, event in staged:
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
