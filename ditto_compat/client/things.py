"""``ditto-compat things list|get|put|patch|delete|search|count`` (Ditto's ``/api/2/things`` and
``/api/2/search/things``)."""

from __future__ import annotations

import argparse
from typing import Any

from ditto_compat.client import paging
from ditto_compat.client.api import DittoApi, entity_path
from ditto_compat.client.arguments import (
    add_body_arguments,
    add_query_arguments,
    body_of,
    query_params,
    sort_of,
)
from ditto_compat.client.output import Result
from ditto_compat.client.runner import command_group
from ditto_compat.client.tables import is_thing, thing_detail_table, things_table


def _target(args: argparse.Namespace) -> str:
    """``org.acme:s1`` or ``org.acme:s1/features/temperature``: what a note says was changed."""
    path = (getattr(args, "path", None) or "").strip("/")
    return f"{args.thing_id}/{path}" if path else args.thing_id


def _things_result(items: list[Any], args: argparse.Namespace) -> Result:
    return Result(items, lambda: things_table(items, selected_fields=bool(args.fields)))


def list_things(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    """Every thing the user may read, through ``GET /things`` paging; ``--filter``/``--sort`` need the
    search API, so with them this is ``things search``."""
    if args.filter or args.sort:
        return search_things(api, args, mode)
    params = query_params(args)
    if args.ids:
        params["ids"] = args.ids
        items = api.get("/api/2/things", params).body or []
        return _things_result(list(items), args)
    items = list(paging.list_things(api, params, size=args.size, limit=args.limit or None))
    return _things_result(items, args)


def search_things(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    items = list(
        paging.search_things(
            api, query_params(args), size=args.size, sort=sort_of(args.sort), limit=args.limit or None
        )
    )
    return _things_result(items, args)


def count_things(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    count = api.get("/api/2/search/things/count", query_params(args)).body
    return Result(count, lambda: str(count))


def get_thing(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    params = {"fields": args.fields} if args.fields else {}
    body = api.get(entity_path("things", args.thing_id, args.path), params).body
    return Result(body, (lambda: thing_detail_table(body)) if is_thing(body) else None)


def put_thing(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    body = body_of(args)
    response = api.put(entity_path("things", args.thing_id, args.path), body)
    verb = "created" if response.status == 201 else "modified"
    table = (lambda: thing_detail_table(response.body)) if is_thing(response.body) else None
    return Result(response.body, table, f"{verb} {_target(args)}")


def patch_thing(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    body = body_of(args)
    response = api.patch(entity_path("things", args.thing_id, args.path), body)
    return Result(response.body, None, f"patched {_target(args)}")


def delete_thing(api: DittoApi, args: argparse.Namespace, mode: str) -> Result:
    api.delete(entity_path("things", args.thing_id, args.path))
    return Result(None, None, f"deleted {_target(args)}")


def _thing_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("thing_id", metavar="THING_ID", help="e.g. org.acme:sensor-1")


def _path(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--path", help=f"{what} a part of the thing, e.g. attributes/location or features/temperature"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verb = command_group(sub, "things", "list, read, change and search things", devops=False)

    listing = verb("list", "list the things you may read (all pages, up to --limit)", list_things)
    add_query_arguments(listing, paged=True, sortable=True)
    listing.add_argument("--ids", help="only these things: a comma-separated list of thing ids")

    get = verb("get", "read a thing or a part of it", get_thing)
    _thing_id(get)
    _path(get, "read only")
    get.add_argument("--fields", help="Ditto's fields selector, e.g. thingId,attributes/location")

    put = verb("put", "create or replace a thing (or a part of it)", put_thing)
    _thing_id(put)
    _path(put, "replace only")
    add_body_arguments(put)

    patch = verb("patch", "change a thing (or a part of it) with a JSON merge patch", patch_thing)
    _thing_id(patch)
    _path(patch, "patch only")
    add_body_arguments(patch)

    delete = verb("delete", "delete a thing (or a part of it)", delete_thing)
    _thing_id(delete)
    _path(delete, "delete only")

    search = verb("search", "search things with an RQL filter (all pages, up to --limit)", search_things)
    add_query_arguments(search, paged=True, sortable=True)

    count = verb("count", "count the things matching an RQL filter", count_things)
    add_query_arguments(count, paged=False, sortable=False)
