"""``ditto-compat connections list|get|put|delete|status`` (Ditto's ``/api/2/connections``, devops user)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ditto_compat.client.api import DittoApi, DittoApiError, entity_path
from ditto_compat.client.arguments import add_body_arguments, body_of
from ditto_compat.client.output import TABLE_MODE, Result
from ditto_compat.client.runner import command_group
from ditto_compat.client.tables import connections_table, key_value_table
from ditto_compat.client.usage import UsageError

PREFIX = "/api/2/connections"


def _live_statuses(api: DittoApi, connections: list[Any]) -> dict[str, Mapping[str, Any]]:
    """Each connection's ``/status``, for the liveStatus column; one deleted meanwhile is left blank."""
    statuses: dict[str, Mapping[str, Any]] = {}
    for connection in connections:
        if not isinstance(connection, Mapping) or not isinstance(connection.get("id"), str):
            continue
        try:
            body = api.get(entity_path("connections", connection["id"], "status")).body
        except DittoApiError as exc:
            if exc.status == 404:
                continue
            raise
        if isinstance(body, Mapping):
            statuses[connection["id"]] = body
    return statuses


def list_connections(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    params = {"fields": args.fields} if args.fields else {}
    connections = list(api.get(PREFIX, params).body or [])
    # the live status costs one request per connection: only a table shows it
    statuses = _live_statuses(api, connections) if mode == TABLE_MODE else {}
    return Result(connections, lambda: connections_table(connections, statuses))


def get_connection(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    params = {"fields": args.fields} if args.fields else {}
    body = api.get(entity_path("connections", args.connection_id), params).body
    if mode != TABLE_MODE or not isinstance(body, Mapping) or "connectionType" not in body:
        return Result(body)
    status = _live_statuses(api, [body])
    return Result(body, lambda: connections_table([body], status))


def connection_status(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    body = api.get(entity_path("connections", args.connection_id, "status")).body
    return Result(body, lambda: key_value_table(body))


def put_connection(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    """With an id (argument or the body's ``id``): replace that connection. Without: create one, and the
    server chooses its id (Ditto creates connections only by ``POST``)."""
    body = body_of(args)
    if not isinstance(body, Mapping):
        raise UsageError("a connection must be a JSON object")
    body_id = body.get("id")
    connection_id = args.connection_id or body_id
    if args.connection_id and body_id is not None and body_id != args.connection_id:
        raise UsageError(f"the body's id {body_id!r} differs from the connection id {args.connection_id!r}")
    if connection_id:
        api.put(entity_path("connections", str(connection_id)), body)
        return Result(None, None, f"modified {connection_id}")
    created = api.post(PREFIX, body).body
    table = (lambda: connections_table([created])) if isinstance(created, Mapping) else None
    return Result(created, table, "created")


def delete_connection(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    api.delete(entity_path("connections", args.connection_id))
    return Result(None, None, f"deleted {args.connection_id}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = command_group(sub, "connections", "manage connections (as the devops user)", devops=True)

    listing = verb("list", "list the connections", list_connections)
    listing.add_argument("--fields", help="Ditto's fields selector, e.g. id,name,connectionStatus")
    get = verb("get", "read a connection", get_connection)
    get.add_argument("connection_id", metavar="CONNECTION_ID")
    get.add_argument("--fields", help="Ditto's fields selector, e.g. id,sources")
    put = verb("put", "create or replace a connection (a new id when none is given)", put_connection)
    put.add_argument(
        "--id",
        dest="connection_id",
        help="the connection to create or replace (default: the body's id; none: a generated id)",
    )
    add_body_arguments(put)
    delete = verb("delete", "delete a connection", delete_connection)
    delete.add_argument("connection_id", metavar="CONNECTION_ID")
    status = verb("status", "the connection's desired and live status", connection_status)
    status.add_argument("connection_id", metavar="CONNECTION_ID")
