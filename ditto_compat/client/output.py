"""What a command prints: JSON for scripts, a table for people, and Ditto's errors on standard error.

A command returns a :class:`Result`; :func:`emit` prints it in the chosen mode. JSON mode prints exactly the
API's JSON (nothing at all for an answer without a body, such as 204), so that ``| jq`` always works. Table
mode prints the command's table, or a one-line note for answers without a body, or indented JSON for values
a table does not fit (a single property, a feature).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ditto_compat.client.api import DittoApiError

JSON_MODE = "json"
TABLE_MODE = "table"

EXIT_OK = 0
EXIT_DITTO_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


@dataclass(frozen=True)
class Result:
    """``data``: the JSON to print (``None``: nothing); ``table``: renders it for a terminal; ``note``: the
    line a terminal shows when there is no data (``deleted org.acme:s1``)."""

    data: Any = None
    table: Callable[[], str] | None = None
    note: str | None = None


def output_mode(requested: str | None, stdout: IO[str]) -> str:
    """``--output`` when given; else a table for a person at a terminal and JSON for a pipe or a file."""
    if requested:
        return requested
    isatty = getattr(stdout, "isatty", None)
    return TABLE_MODE if callable(isatty) and isatty() else JSON_MODE


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def emit(result: Result, mode: str, stdout: IO[str]) -> None:
    if mode == TABLE_MODE:
        if result.data is not None and result.table is not None:
            text: str | None = result.table()
        elif result.data is not None:
            text = to_json(result.data)
        else:
            text = result.note
    else:
        text = to_json(result.data) if result.data is not None else None
    if text is not None:
        stdout.write(text + "\n")


def describe_error(error: DittoApiError) -> str:
    """``things:thing.notfound: The Thing ... could not be found (Check if the ID ...)``: Ditto's error JSON on
    one line; anything else (a proxy's HTML page) as its status and first line."""
    body = error.body
    if isinstance(body, dict) and ("error" in body or "message" in body):
        code = body.get("error") or f"HTTP {error.status}"
        line = f"{code}: {body.get('message') or ''}".rstrip()
        description = body.get("description")
        return f"{line} ({description})" if description else line
    first_line = next((ln.strip() for ln in error.text.splitlines() if ln.strip()), "")
    return f"HTTP {error.status}: {first_line}" if first_line else f"HTTP {error.status}"
