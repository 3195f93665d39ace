"""``/health`` (unauthenticated, as Ditto's gateway: storage, event fan-out and each connection),
``/api/2/whoami`` (``basic-auth``) and ``/api/2/checkPermissions`` (``basic-auth-checkpermissions``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import correlation_id_of, ditto_endpoint, json_response, read_body
from ditto_compat.connectivity.manager import ConnectionManager
from ditto_compat.errors import DittoError
from ditto_compat.model.jsonio import loads
from ditto_compat.persistence.ports import StoreUnavailable
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
    connections = await connections_health(ctx.connections)
    components = {"storage": storage, "events": events, "connections": connections}
    return json_response(200 if up else 503, {"status": "UP" if up else "DOWN", "components": components})


async def connections_health(manager: ConnectionManager) -> dict[str, Any]:
    """One entry per connection: ``UP`` when it runs as its ``connectionStatus`` asks (open and connected, or
    closed), ``DOWN`` when it should be open but is not (``failed``), ``UNKNOWN`` while a first attempt runs.

    The component is ``DOWN`` when any connection is, but the server's status is not: a broker outage leaves
    the API, the storage and the other connections working, and connections reconnect by themselves.
    """
    try:
        states = await manager.list_states()
    except StoreUnavailable as exc:
        return {"status": "UNKNOWN", "reason": f"connections cannot be listed: {exc}", "connections": []}
    entries = [_connection_health(manager, state.entity_id, state.doc) for state in states]
    statuses = {entry["status"] for entry in entries}
    overall = "DOWN" if "DOWN" in statuses else "UNKNOWN" if "UNKNOWN" in statuses else "UP"
    return {"status": overall, "connections": entries}


def _connection_health(manager: ConnectionManager, connection_id: str, doc: Any) -> dict[str, Any]:
    try:
        status = manager.status(connection_id)
    except DittoError:
        # stored, but the definition is one this version refuses (logged at start-up): it does not run
        wanted = doc.get("connectionStatus") if isinstance(doc, dict) else None
        return {
            "id": connection_id,
            "status": "DOWN" if wanted == "open" else "UP",
            "connectionStatus": wanted,
            "liveStatus": "closed",
            "statusDetails": "The stored definition is invalid; the connection does not run.",
        }
    wanted, live = status["connectionStatus"], status.get("liveStatus", "unknown")
    health = "UNKNOWN" if live == "unknown" else "UP" if live == wanted else "DOWN"
    entry: dict[str, Any] = {
        "id": connection_id,
        "status": health,
        "connectionStatus": wanted,
        "liveStatus": live,
    }
    details = [c["statusDetails"] for c in status.get("clientStatus", ()) if c.get("statusDetails")]
    if health != "UP" and details:
        entry["statusDetails"] = details[0]
    if "recoveryStatus" in status:
        entry["recoveryStatus"] = status["recoveryStatus"]
    return entry


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
