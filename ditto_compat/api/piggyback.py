"""``POST /devops/piggyback/connectivity``: connections managed through DevOps piggyback commands
(``connectivity-manage-connections-piggyback``), for scripts written against Ditto's older docs.

The body is ``{"targetActorSelection": ..., "headers": {...}, "piggybackCommand": {"type": ..., ...}}``; the
target and headers are accepted and ignored (there is one process to address). Each command does what its
counterpart of ``/api/2/connections`` does, through the same :class:`ConnectionManager`, and the answer is the
command's response, ``{"type": "connectivity.responses:<name>", "status": <code>, ...}``, with that status as the
HTTP status (a 204 has no body). Errors are Ditto's error JSON. Only the DevOps user may use it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from ditto_compat.api.context import AppContext
from ditto_compat.api.http import correlation_id_of, ditto_endpoint, json_response, read_body
from ditto_compat.connectivity.errors import ConnectivityCommandInvalid
from ditto_compat.connectivity.manager import COMMANDS, ConnectionManager
from ditto_compat.errors import JsonInvalid, MethodNotAllowed
from ditto_compat.model.jsonio import loads

COMMAND_PREFIX: Final = "connectivity.commands:"
RESPONSE_PREFIX: Final = "connectivity.responses:"

_Handler = Callable[[ConnectionManager, dict[str, Any]], Awaitable[tuple[int, dict[str, Any]]]]


def _connection_id(command: dict[str, Any]) -> str:
    connection_id = command.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        raise JsonInvalid("The piggyback command needs its 'connectionId'.")
    return connection_id


def _connection(command: dict[str, Any]) -> dict[str, Any]:
    connection = command.get("connection")
    if not isinstance(connection, dict):
        raise JsonInvalid("The piggyback command needs its 'connection' object.")
    return connection


async def _create(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection = _connection(command)
    connection_id = connection.get("id")
    state = await manager.create(connection, connection_id if isinstance(connection_id, str) else None)
    return 201, {"connection": state.doc}


async def _modify(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection = _connection(command)
    connection_id = connection.get("id")
    if not isinstance(connection_id, str) or not connection_id:
        raise JsonInvalid("The connection of 'modifyConnection' needs its 'id'.")
    await manager.modify(connection_id, connection)
    return 204, {"connectionId": connection_id}


async def _retrieve(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    state = await manager.retrieve(_connection_id(command))
    return 200, {"connection": state.doc}


async def _delete(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection_id = _connection_id(command)
    await manager.delete(connection_id)
    return 204, {"connectionId": connection_id}


async def _test(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    connection = _connection(command)
    result = await manager.test({k: v for k, v in connection.items() if k != "id"})
    return 200, {"connectionId": connection.get("id"), "testResult": result}


async def _all_ids(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    states = await manager.list_states()
    return 200, {"allConnectionIds": [state.entity_id for state in states]}


async def _tags(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    state = await manager.retrieve(_connection_id(command))
    tags = state.doc.get("tags", []) if state.doc is not None else []
    return 200, {"tags": tags}


async def _ids_by_tag(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    tag = command.get("tag")
    if not isinstance(tag, str):
        raise JsonInvalid("The piggyback command needs its 'tag'.")
    states = await manager.list_states()
    return 200, {
        "connectionIds": [s.entity_id for s in states if s.doc is not None and tag in s.doc.get("tags", [])]
    }


def _report(name: str) -> _Handler:
    """retrieveConnectionStatus, retrieveConnectionMetrics, retrieveConnectionLogs: the body of the matching
    ``/connections/{id}/...`` resource, inline."""

    async def handler(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        connection_id = _connection_id(command)
        await manager.retrieve(connection_id)  # 404 for an unknown id
        report = getattr(manager, name)(connection_id)
        return 200, {"connectionId": connection_id, **report}

    return handler


def _command(name: str) -> _Handler:
    """openConnection, closeConnection, resetConnectionMetrics, enableConnectionLogs, resetConnectionLogs."""

    async def handler(manager: ConnectionManager, command: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        connection_id = _connection_id(command)
        await manager.command(connection_id, COMMAND_PREFIX + name)
        return 200, {"connectionId": connection_id}

    return handler


HANDLERS: Final[dict[str, _Handler]] = {
    "createConnection": _create,
    "modifyConnection": _modify,
    "retrieveConnection": _retrieve,
    "deleteConnection": _delete,
    "testConnection": _test,
    "retrieveAllConnectionIds": _all_ids,
    "retrieveConnectionStatus": _report("status"),
    "retrieveConnectionMetrics": _report("metrics"),
    "retrieveConnectionLogs": _report("logs"),
    **{
        command.removeprefix(COMMAND_PREFIX): _command(command.removeprefix(COMMAND_PREFIX))
        for command in COMMANDS
    },
}


SUDO_PREFIX: Final = "connectivity.sudo.commands:"
SUDO_HANDLERS: Final[dict[str, _Handler]] = {
    "sudoRetrieveConnectionTags": _tags,
    "sudoRetrieveConnectionIdsByTag": _ids_by_tag,
}


def _handler(kind: str) -> tuple[_Handler, str] | None:
    """The handler of a piggyback command type and the type of its response."""
    for prefix, handlers, responses in (
        (COMMAND_PREFIX, HANDLERS, RESPONSE_PREFIX),
        (SUDO_PREFIX, SUDO_HANDLERS, "connectivity.sudo.responses:"),
    ):
        if kind.startswith(prefix) and kind.removeprefix(prefix) in handlers:
            name = kind.removeprefix(prefix)
            return handlers[name], responses + name
    return None


@ditto_endpoint
async def piggyback_connectivity(request: Request) -> Response:
    ctx: AppContext = request.app.state.ctx
    ctx.authenticator.authenticate_devops(request.headers)
    headers = {"correlation-id": correlation_id_of(request)}
    if request.method != "POST":
        raise MethodNotAllowed(f"The method '{request.method}' is not allowed on a piggyback command.")
    body = loads(await read_body(request))
    command = body.get("piggybackCommand") if isinstance(body, dict) else None
    if not isinstance(command, dict) or not isinstance(command.get("type"), str):
        raise JsonInvalid('The body must be a piggyback command: {"piggybackCommand": {"type": ...}}.')
    kind: str = command["type"]
    found = _handler(kind)
    if found is None:
        raise ConnectivityCommandInvalid.of(kind)
    handler, response_type = found
    status, answer = await handler(ctx.connections, command)
    if status == 204:
        return Response(status_code=204, headers=headers)
    return json_response(status, {"type": response_type, "status": status, **answer}, headers)
