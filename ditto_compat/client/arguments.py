"""Arguments several commands share: the search query (``--filter``, ``--namespaces``, ``--fields``,
``--size``, ``--sort``, ``--limit``) and request bodies (inline JSON or ``-f FILE``)."""

from __future__ import annotations

import argparse
from typing import Any

from ditto_compat.client.bodies import read_body

# Ditto's largest page (option size(n)).
MAX_PAGE_SIZE = 200
DEFAULT_LIMIT = 200


def _page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PAGE_SIZE}, not {value}")
    return value


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more, not {value}")
    return value


def add_query_arguments(parser: argparse.ArgumentParser, *, paged: bool, sortable: bool) -> None:
    parser.add_argument(
        "--filter", help="RQL filter, e.g. 'and(eq(attributes/type,\"sensor\"),gt(_modified,...))'"
    )
    parser.add_argument("--namespaces", help="only these namespaces, comma-separated")
    if not paged:
        return
    parser.add_argument("--fields", help="Ditto's fields selector, e.g. thingId,attributes")
    parser.add_argument("--size", type=_page_size, help=f"things per request (1 to {MAX_PAGE_SIZE})")
    parser.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        help=f"stop after this many things, following the pages (default {DEFAULT_LIMIT}; 0: all)",
    )
    if sortable:
        parser.add_argument(
            "--sort",
            help="sort keys, e.g. --sort=-_modified,+thingId (write '=' before a leading '-'; sort(...) works too)",
        )


def query_params(args: argparse.Namespace) -> dict[str, str]:
    """The ``filter``, ``namespaces`` and ``fields`` query parameters that were given."""
    params = {}
    for name in ("filter", "namespaces", "fields"):
        value = getattr(args, name, None)
        if value:
            params[name] = value
    return params


def sort_of(text: str | None) -> str | None:
    """``-_modified,+thingId`` from either that or ``sort(-_modified,+thingId)``; a bare key sorts ascending
    (Ditto wants the sign)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("sort(") and text.endswith(")"):
        text = text[len("sort(") : -1]
    keys = [k.strip() for k in text.split(",") if k.strip()]
    return ",".join(k if k[0] in "+-" else "+" + k for k in keys) or None


def add_body_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("body", nargs="?", metavar="JSON", help="the JSON body inline")
    parser.add_argument("-f", "--file", help="read the JSON body from FILE ('-': standard input)")


def body_of(args: argparse.Namespace) -> Any:
    return read_body(args.body, args.file)
