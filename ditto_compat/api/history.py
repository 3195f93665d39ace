"""The history headers of a retrieve (``basic-history``), which Ditto also takes as query parameters
(gateway.conf ``query-params-as-headers``)."""

from __future__ import annotations

from starlette.requests import Request

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import header_or_param
from ditto_compat.domain.history import AT_REVISION, AT_TIMESTAMP, HistoricalPoint, parse_historical
from ditto_compat.service.history import HistoryService


def historical_point(request: Request) -> HistoricalPoint | None:
    """Where a ``GET`` looks in history; None for the present."""
    return parse_historical(header_or_param(request, AT_REVISION), header_or_param(request, AT_TIMESTAMP))


def history_service(ctx: AppContext) -> HistoryService:
    # stateless over the context's services: built per request rather than kept in the AppContext (app.py)
    return HistoryService(ctx.dispatcher, ctx.policies)
