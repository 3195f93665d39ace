"""The pages of a search subscription (``protocol-specification-things-search``), from the same
:class:`~ditto_compat.service.search.SearchService` as ``GET /api/2/search/things``: the items are exactly the
caller's READ views HTTP search answers, page after page along the service's cursor.

``options`` take ``sort`` and ``size`` only (default 25, at most 200); ``cursor`` and ``limit`` are refused with
``thing-search:search.option.invalid``, since the protocol pages by demand.
"""

from __future__ import annotations

from typing import Any

from ditto_compat.api.ws_streaming.commands import SearchSubscription
from ditto_compat.domain.auth import AuthContext
from ditto_compat.errors import SearchOptionInvalid
from ditto_compat.model.fields import FieldSelector, parse_fields
from ditto_compat.model.ids import check_namespace
from ditto_compat.rql.options import parse_options
from ditto_compat.service.search import DEFAULT_SIZE, SearchService


class SearchPages:
    def __init__(self, search: SearchService, auth: AuthContext, query: SearchSubscription) -> None:
        self._search = search
        self._auth = auth
        self._query = query
        self._fields: FieldSelector | None = None
        self._size = DEFAULT_SIZE
        self._cursor: str | None = None
        self._started = False
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    async def pull(self) -> list[dict[str, Any]] | None:
        if self._exhausted:
            return None
        if not self._started:
            option_text = self._checked_options()
            namespaces = [check_namespace(n) for n in self._query.namespaces or ()] or None
            self._fields = parse_fields(self._query.fields) if self._query.fields else None
            page = await self._search.search(
                self._auth,
                filter_text=self._query.filter or None,
                namespaces=namespaces,
                option_text=option_text,
                fields=self._fields,
            )
            self._started = True
        else:
            # the cursor pins the filter, the namespaces and the sort of the first page
            page = await self._search.search(
                self._auth,
                filter_text=None,
                namespaces=None,
                option_text=f"size({self._size}),cursor({self._cursor})",
                fields=self._fields,
            )
        self._cursor = page.cursor
        self._exhausted = page.cursor is None
        return page.items or None

    def _checked_options(self) -> str | None:
        text = self._query.options
        if not text or not text.strip():
            return None
        options = parse_options(text)
        if options.cursor is not None or options.limit is not None:
            raise SearchOptionInvalid(
                f"Invalid option: '{text}'",
                "The search protocol supports the options sort and size only; it pages with 'request'.",
            )
        self._size = options.size or DEFAULT_SIZE
        return text
