"""Following Ditto's two kinds of pages up to a limit.

- ``GET /api/2/things`` answers a JSON array and, when more follow, ``Link: <...?option=size(n),cursor(X)>;
  rel="next"``. Only the cursor is taken from that link and the next request is built against the URL the user
  gave: behind a proxy the server's idea of its own address is often not reachable from the client.
- ``/api/2/search/things`` answers ``{"items": [...], "cursor": "X"}``; the next page repeats the filter and
  namespaces (Ditto checks they did not change) and sends ``size`` and ``cursor`` but not ``sort`` (the cursor
  carries it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ditto_compat.client.api import DittoApi

_NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)
_CURSOR = re.compile(r"cursor\(([^)]*)\)")
# Ditto's page size when none is asked for.
SERVER_DEFAULT_SIZE = 25


def next_cursor_of_link(link_header: str | None) -> str | None:
    """The ``cursor(...)`` of the ``rel="next"`` link of a ``Link`` header, or ``None`` on the last page."""
    if not link_header:
        return None
    match = _NEXT_LINK.search(link_header)
    if match is None:
        return None
    for option in parse_qs(urlsplit(match.group(1)).query).get("option", []):
        cursor = _CURSOR.search(option)
        if cursor is not None and cursor.group(1):
            return cursor.group(1)
    return None


def page_option(size: int | None, cursor: str | None = None, sort: str | None = None) -> str | None:
    """Ditto's ``option`` parameter: ``sort(...)``, ``size(n)`` and ``cursor(...)`` joined by commas."""
    parts = []
    if sort:
        parts.append(f"sort({sort})")
    if size is not None:
        parts.append(f"size({size})")
    if cursor:
        parts.append(f"cursor({cursor})")
    return ",".join(parts) or None


def _page_size(size: int | None, limit: int | None, taken: int) -> int | None:
    """Ask for no more than is still wanted, so that a small ``--limit`` costs one small page."""
    if limit is None:
        return size
    remaining = limit - taken
    if size is not None:
        return min(size, remaining)
    return remaining if remaining < SERVER_DEFAULT_SIZE else None


def list_things(
    api: DittoApi, base_params: Mapping[str, str], *, size: int | None, limit: int | None
) -> Iterator[dict[str, Any]]:
    """The things the caller may read, page after page through ``GET /api/2/things``, at most ``limit``."""
    taken, cursor = 0, None
    while limit is None or taken < limit:
        params = dict(base_params)
        option = page_option(_page_size(size, limit, taken), cursor)
        if option:
            params["option"] = option
        response = api.get("/api/2/things", params)
        items = response.body if isinstance(response.body, list) else []
        for item in items:
            if limit is not None and taken >= limit:
                return
            taken += 1
            yield item
        cursor = next_cursor_of_link(response.headers.get("link"))
        if cursor is None or not items:
            return


def search_things(
    api: DittoApi,
    base_params: Mapping[str, str],
    *,
    size: int | None,
    sort: str | None,
    limit: int | None,
) -> Iterator[dict[str, Any]]:
    """The hits of ``/api/2/search/things`` in order, following the cursor, at most ``limit``."""
    taken, cursor = 0, None
    while limit is None or taken < limit:
        params = dict(base_params)
        page_size = _page_size(size, limit, taken)
        option = page_option(page_size, cursor, None if cursor else sort)
        if option:
            params["option"] = option
        response = api.get("/api/2/search/things", params)
        body = response.body if isinstance(response.body, dict) else {}
        items = body.get("items") or []
        for item in items:
            if limit is not None and taken >= limit:
                return
            taken += 1
            yield item
        cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
        if cursor is None or not items:
            return
