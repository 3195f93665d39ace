"""Reading ``specificConfig`` values: Ditto writes every value as a string (``"60s"``, ``"true"``, ``"1"``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ditto_compat.connectivity.clients.base import ConnectionFailed

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def duration_s(config: Mapping[str, object], key: str, default: float) -> float:
    """A duration such as ``"60s"``, ``"500ms"``, ``"2m"`` or a plain number of seconds."""
    raw = config.get(key)
    if raw is None or raw == "":
        return default
    match = _DURATION.match(str(raw))
    if match is None:
        raise ConnectionFailed(f"specificConfig '{key}' is not a duration: {raw!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def flag(config: Mapping[str, object], key: str, default: bool) -> bool:
    raw = config.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ConnectionFailed(f"specificConfig '{key}' must be true or false: {raw!r}")


def integer(config: Mapping[str, object], key: str, default: int, low: int, high: int) -> int:
    raw = config.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConnectionFailed(f"specificConfig '{key}' must be an integer: {raw!r}") from None
    if not low <= value <= high:
        raise ConnectionFailed(f"specificConfig '{key}' must be between {low} and {high}: {value}")
    return value
