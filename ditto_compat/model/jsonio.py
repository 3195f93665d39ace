"""JSON in and out, with orjson: thing JSON stays plain dicts on the hot path."""

from __future__ import annotations

from typing import Any

import orjson

from ditto_compat.errors import JsonInvalid


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise JsonInvalid(f"Failed to parse JSON string: {exc}") from None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def canonical(value: Any) -> bytes:
    """A byte form that is equal for equal JSON values (sorted keys); used for content tags and equality."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
