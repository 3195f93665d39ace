"""``/health`` (unauthenticated, as Ditto's gateway), ``/api/2/whoami`` (``basic-auth``) and
``/api/2/checkPermissions`` (``basic-auth-checkpermissions``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import correlation_id_of, ditto_endpoint, json_response, read_body
from ditto_compat.model.jsonio import loads
from ditto_compat.service.permissions import check_permissions


@ditto_endpoint
async def health(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    storage = await ctx.store.health()
    up = ctx.ready and storage.get("status") == "UP"
    hub = ctx.hub
    events = {
        "status": "UP",
        "subscribers": hub.subscribers,
        "delivered": hub.delivered,
        "dropped": hub.dropped,  # events subscribers could not take; each such subscriber was told and closed
    }
    body = {"status": "UP" if up else "DOWN", "components": {"storage": storage, "events": events}}
    return json_response(200 if up else 503, body)


@ditto_endpoint
async def whoami(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    return json_response(200, auth.to_whoami(), {"correlation-id": correlation_id})


@ditto_endpoint
async def check_permissions_endpoint(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    correlation_id = correlation_id_of(request)
    auth = ctx.authenticator.authenticate(request.headers, request.query_params)
    body = loads(await read_body(request))
    result = await check_permissions(ctx.dispatcher, body, auth)
    return json_response(200, result, {"correlation-id": correlation_id})
