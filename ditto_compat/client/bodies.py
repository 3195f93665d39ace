"""Request bodies of ``put`` and ``patch``: inline JSON, or ``-f FILE`` (``-f -`` reads standard input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from ditto_compat.client.usage import UsageError


def read_body(inline: str | None, file: str | None, stdin: IO[str] | None = None) -> Any:
    """The parsed JSON body from exactly one of ``inline`` and ``file``; a :class:`UsageError` otherwise."""
    if inline is not None and file is not None:
        raise UsageError("give the body either inline or with -f/--file, not both")
    if inline is None and file is None:
        raise UsageError("a JSON body is needed: inline, with -f FILE, or with -f - for standard input")
    if file is not None:
        source = "standard input" if file == "-" else file
        try:
            text = (stdin or sys.stdin).read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from exc
    else:
        assert inline is not None
        source, text = "the inline body", inline
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
