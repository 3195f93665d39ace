"""``/api/2/search/things`` and ``/count`` (``httpapi-search``): GET with query parameters, or POST with the
same parameters as an ``application/x-www-form-urlencoded`` body (as the official JS client sends them)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import correlation_id_of, ditto_endpoint, json_response, read_body
from ditto_compat.errors import MediaTypeUnsupported
from ditto_compat.model.fields import parse_fields
from ditto_compat.model.ids import check_namespace

FORM = "application/x-www-form-urlencoded"


async def _params(request: Request) -> Mapping[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        body = await read_body(request)
        if body.strip():
            if content_type not in (FORM, ""):
                raise MediaTypeUnsupported(
                    f"The Media-Type <{content_type}> is not supported for search requests.", f"Use <{FORM}>."
                )
            params.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def _namespaces(params: Mapping[str, str]) -> list[str] | None:
    text = params.get("namespaces")
    if text is None:
        return None
    return [check_namespace(n.strip()) for n in text.split(",") if n.strip()]


@ditto_endpoint
async def search_things(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    params = await _params(request)
    fields = parse_fields(params["fields"]) if params.get("fields") else None
    page = await ctx.search.search(
        auth,
        filter_text=params.get("filter") or None,
        namespaces=_namespaces(params),
        option_text=params.get("option") or None,
        fields=fields,
    )
    return json_response(200, page.to_json(), {"correlation-id": correlation_id})


@ditto_endpoint
async def count_things(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    params = await _params(request)
    count = await ctx.search.count(
        auth, filter_text=params.get("filter") or None, namespaces=_namespaces(params)
    )
    return json_response(200, count, {"correlation-id": correlation_id})
