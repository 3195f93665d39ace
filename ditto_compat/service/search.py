"""Search and count (``basic-search``, ``httpapi-search``), run by the database and consistent with writes.

The database applies the RQL filter, the namespaces, the sort and the keyset cursor, and narrows the result to
Things whose policy names one of the caller's subjects as a reader. Hits of *uniform* policies (every reader
reads everything) are answered as they are; the others are checked against the enforcer, and the filter is
evaluated again on the caller's READ view, so a predicate on a field the caller may not read matches nothing.
Because the store commits a Thing and its index entries in one transaction, a Thing is searchable as soon as
its write was acknowledged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ditto_compat.domain import thing_enforcement as guard
from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.things import thing_view
from ditto_compat.errors import SearchOptionInvalid
from ditto_compat.model.fields import FieldSelector
from ditto_compat.model.pointer import MISSING, get_at
from ditto_compat.persistence.ports import SearchHit, SearchRequest
from ditto_compat.rql.ast import Field, Options, Query, SortKey
from ditto_compat.rql.evaluator import compile_query
from ditto_compat.rql.fields import searchable_document, validate_query, validate_sort
from ditto_compat.rql.options import parse_options
from ditto_compat.rql.parser import parse_rql, render_sort
from ditto_compat.service.dispatcher import Dispatcher

DEFAULT_SIZE = 25
MAX_SIZE = 200
THING_ID = Field(("thingId",))
# Hits that fail the per-thing check are replaced by fetching further pages, at most this many times.
MAX_REFILL_ROUNDS = 20


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: list[dict[str, Any]]
    cursor: str | None = None
    next_page_offset: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"items": self.items}
        if self.cursor is not None:
            body["cursor"] = self.cursor
        if self.next_page_offset is not None:
            body["nextPageOffset"] = self.next_page_offset
        return body


def _option_error(message: str) -> SearchOptionInvalid:
    return SearchOptionInvalid(
        message, "See https://www.eclipse.dev/ditto/basic-rql.html for the syntax of sort, size and cursor."
    )


def _encode_cursor(
    filter_text: str | None, namespaces: Sequence[str] | None, sort_text: str, values: list[Any]
) -> str:
    """Opaque to clients: it pins the filter, namespaces and sort it continues, and the last sort values."""
    body = {
        "F": filter_text,
        "N": list(namespaces) if namespaces is not None else None,
        "S": sort_text,
        "V": [{"m": 1} if v is MISSING else {"v": v} for v in values],
    }
    return base64.urlsafe_b64encode(orjson.dumps(body)).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        body = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise _option_error(f"The cursor '{cursor}' is not valid.") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("V"), list)
        or not isinstance(body.get("S"), str)
    ):
        raise _option_error(f"The cursor '{cursor}' is not valid.")
    return body


class SearchService:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._store = dispatcher.store

    async def search(
        self,
        auth: AuthContext,
        *,
        filter_text: str | None,
        namespaces: Sequence[str] | None,
        option_text: str | None,
        fields: FieldSelector | None,
    ) -> SearchPage:
        options = parse_options(option_text) if option_text else Options()
        if options.cursor is not None:
            cursor = _decode_cursor(options.cursor)
            if options.sort:
                raise _option_error("A request with a cursor must not change the sort.")
            if filter_text is not None and filter_text != cursor.get("F"):
                raise _option_error("A request with a cursor must not change the filter.")
            filter_text = cursor.get("F")
            namespaces = cursor.get("N")
            sort = parse_options(f"sort({cursor['S']})").sort
            after: tuple[Any, ...] | None = tuple(MISSING if "m" in v else v["v"] for v in cursor["V"])
        else:
            sort = options.sort
            after = None
        query = self._query(filter_text)
        validate_sort(sort)
        if not any(k.field == THING_ID for k in sort):
            sort = (*sort, SortKey(THING_ID, True))
        if options.limit is not None:
            offset, count = options.limit
            if count > MAX_SIZE:
                raise _option_error(f"The limit count must not exceed {MAX_SIZE}.")
            items = await self._collect(auth, query, namespaces, sort, None, offset + count + 1, fields)
            page = items[offset : offset + count]
            more = len(items) > offset + count
            return SearchPage([v for _, v in page], next_page_offset=offset + count if more else None)
        size = options.size or DEFAULT_SIZE
        items = await self._collect(auth, query, namespaces, sort, after, size + 1, fields)
        page = items[:size]
        next_cursor = None
        if len(items) > size:
            last_doc = page[-1][0]
            values = [get_at(last_doc, k.field.pointer) for k in sort]
            next_cursor = _encode_cursor(filter_text, namespaces, render_sort(sort), values)
        return SearchPage([v for _, v in page], cursor=next_cursor)

    async def count(
        self, auth: AuthContext, *, filter_text: str | None, namespaces: Sequence[str] | None
    ) -> int:
        query = self._query(filter_text)
        request = SearchRequest(
            readers=auth.subjects,
            filter=query,
            namespaces=tuple(namespaces) if namespaces is not None else None,
        )
        counted, to_verify = await self._store.count(request)
        matches = self._matcher(query)
        for hit in to_verify:
            if await self._verified_view(auth, hit, matches, None) is not None:
                counted += 1
        return counted

    @staticmethod
    def _query(filter_text: str | None) -> Query | None:
        if not filter_text:
            return None
        query = parse_rql(filter_text)
        validate_query(query)
        return query

    @staticmethod
    def _matcher(query: Query | None) -> Callable[[Mapping[str, Any]], bool] | None:
        return compile_query(query) if query is not None else None

    async def _collect(
        self,
        auth: AuthContext,
        query: Query | None,
        namespaces: Sequence[str] | None,
        sort: tuple[SortKey, ...],
        after: tuple[Any, ...] | None,
        wanted: int,
        fields: FieldSelector | None,
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``(searchable document, answer)`` of up to ``wanted`` hits the caller may see, in sort order."""
        matches = self._matcher(query)
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for _round in range(MAX_REFILL_ROUNDS):
            request = SearchRequest(
                readers=auth.subjects,
                filter=query,
                namespaces=tuple(namespaces) if namespaces is not None else None,
                sort=sort,
                after=after,
                limit=wanted - len(found),
            )
            hits = await self._store.search(request)
            for hit in hits:
                view = await self._verified_view(auth, hit, matches, fields)
                if view is not None:
                    found.append(view)
            if len(hits) < request.limit or len(found) >= wanted:
                return found[:wanted]
            last = _document(hits[-1].state)
            after = tuple(get_at(last, k.field.pointer) for k in sort)
        return found

    async def _verified_view(
        self,
        auth: AuthContext,
        hit: SearchHit,
        matches: Callable[[Mapping[str, Any]], bool] | None,
        fields: FieldSelector | None,
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        state = hit.state
        document = _document(state)
        if hit.uniform:
            return document, thing_view(state, fields)
        enforcer = await self._dispatcher.thing_enforcer(state)
        if enforcer is None or not guard.can_retrieve(enforcer, auth.subjects, ()):
            return None
        readable = guard.thing_view(enforcer, auth.subjects, state.entity_id, state.doc or {})
        if matches is not None and not matches(_document(state, readable)):
            return None
        return document, guard.thing_view(enforcer, auth.subjects, state.entity_id, thing_view(state, fields))


def _document(state: EntityState, doc: dict[str, Any] | None = None) -> dict[str, Any]:
    return searchable_document(
        state.doc if doc is None else doc, state.entity_id, state.revision, state.created, state.modified
    )
