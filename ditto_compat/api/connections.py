"""``/api/2/connections``: the connections API of Ditto's OpenAPI (``connectivity-manage-connections``).

Only the DevOps user may use it (HTTP Basic ``devops:<password>``, as Ditto's gateway asks for its
``DevOpsBasic`` security scheme); anyone else gets Ditto's 401. Routes stay thin: authenticate, parse, ask the
:class:`~ditto_compat.connectivity.manager.ConnectionManager`, render.

- ``GET /connections[?ids-only=true][&fields=...]``, ``POST /connections[?dry-run=true]``
- ``GET|PUT|DELETE /connections/{id}`` (``GET`` also with ``at-historical-revision|timestamp``)
- ``POST /connections/{id}/command`` (``text/plain``), ``GET /connections/{id}/status|metrics|logs``
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.history import historical_point
from ditto_compat.api.http import (
    correlation_id_of,
    ditto_endpoint,
    fields_param,
    header_or_param,
    json_response,
    path_segments,
    read_body,
    request_uri,
)
from ditto_compat.connectivity.errors import ConnectionIdNotSettable, ConnectionNotAccessible
from ditto_compat.connectivity.manager import ConnectionManager
from ditto_compat.domain.entity import EntityState
from ditto_compat.errors import JsonInvalid, MethodNotAllowed, ResourceNotFound
from ditto_compat.model.fields import FieldSelector, project
from ditto_compat.model.jsonio import loads

PREFIX = "/api/2/connections"
_SUB_RESOURCES = ("status", "metrics", "logs")


def _manager(request: Request) -> tuple[AppContext, ConnectionManager]:
    ctx: AppContext = request.app.state.ctx
    return ctx, ctx.connections


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``ids-only``), or header-like one (``dry-run`` may also be a header)."""
    value = request.query_params.get(name) or header_or_param(request, name)
    return value is not None and value.strip().lower() == "true"


async def _json_object(request: Request) -> dict[str, Any]:
    body = loads(await read_body(request))
    if not isinstance(body, dict):
        raise JsonInvalid("The connection must be a JSON object.")
    return body


def _render(state: EntityState, selector: FieldSelector | None) -> dict[str, Any]:
    """The stored definition; ``_revision``, ``_created`` and ``_modified`` only when ``fields`` asks."""
    assert state.doc is not None
    if selector is None:
        return state.doc
    full = {
        **state.doc,
        "_revision": state.revision,
        "_created": state.created,
        "_modified": state.modified,
    }
    return project(full, selector)


@ditto_endpoint
async def connections_endpoint(request: Request) -> Response:
    ctx, manager = _manager(request)
    correlation_id = correlation_id_of(request)
    ctx.authenticator.authenticate_devops(request.headers)
    headers = {"correlation-id": correlation_id}
    connection_id, segments = path_segments(request, PREFIX)
    method = request.method

    if connection_id is None:
        if method == "GET":
            return await _list(request, manager, headers)
        if method == "POST":
            return await _post(request, manager, headers)
        raise MethodNotAllowed(f"The method '{method}' is not allowed on '/connections'.")

    if not segments or segments == [""]:
        if method == "GET":
            point = historical_point(request)
            if point is not None:
                state = await manager.retrieve_historical(connection_id, point)
            else:
                state = await manager.retrieve(connection_id)
            return json_response(200, _render(state, fields_param(request)), headers)
        if method == "PUT":
            body = await _json_object(request)
            if "id" in body and body["id"] != connection_id:
                raise ConnectionIdNotSettable()
            try:
                await manager.modify(connection_id, body)
            except ConnectionNotAccessible:
                # Ditto's PUT creates a connection under the given id when there is none ("create or update")
                state = await manager.create(body, connection_id)
                return json_response(201, _render(state, None), {**headers, "location": request_uri(request)})
            return Response(status_code=204, headers=headers)
        if method == "DELETE":
            await manager.delete(connection_id)
            return Response(status_code=204, headers=headers)
        raise MethodNotAllowed(f"The method '{method}' is not allowed on a connection.")

    if len(segments) == 1 and segments[0] == "command":
        if method != "POST":
            raise MethodNotAllowed(f"The method '{method}' is not allowed on a connection's command.")
        command = (await read_body(request)).decode("utf-8", errors="replace")
        await manager.command(connection_id, command)
        return Response(status_code=200, headers=headers)

    if len(segments) == 1 and segments[0] in _SUB_RESOURCES:
        if method != "GET":
            raise MethodNotAllowed(f"The method '{method}' is not allowed on a connection's {segments[0]}.")
        await manager.retrieve(connection_id)  # 404 for an unknown id, as for the connection itself
        if segments[0] == "status":
            answer = manager.status(connection_id)
        elif segments[0] == "metrics":
            answer = manager.metrics(connection_id)
        else:
            answer = manager.logs(connection_id)
        return json_response(200, answer, headers)

    raise ResourceNotFound(f"The resource '{request.url.path}' does not exist.")


async def _list(request: Request, manager: ConnectionManager, headers: dict[str, str]) -> Response:
    states = await manager.list_states()
    if _flag(request, "ids-only"):
        return json_response(200, [s.entity_id for s in states], headers)
    selector = fields_param(request)
    return json_response(200, [_render(s, selector) for s in states if s.doc is not None], headers)


async def _post(request: Request, manager: ConnectionManager, headers: dict[str, str]) -> Response:
    body = await _json_object(request)
    if _flag(request, "dry-run"):
        result = await manager.test(body)
        return json_response(200, result, headers)
    if "id" in body:
        raise ConnectionIdNotSettable()
    state = await manager.create(body)
    location = f"{request_uri(request).rstrip('/')}/{state.entity_id}"
    return json_response(201, _render(state, None), {**headers, "location": location})
