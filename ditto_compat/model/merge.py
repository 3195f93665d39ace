"""JSON merge patch (RFC 7396) with Ditto's regex deletion (``httpapi-concepts`` "Merge updates").

A key ``{{ ~regex~ }}`` (or ``{{ /regex/ }}``) whose value is ``null`` deletes every sibling key matching the
regular expression before the rest of the patch is applied.
"""

from __future__ import annotations

import re
from typing import Any

from ditto_compat.errors import MergeInvalid
from ditto_compat.model.jsonio import canonical

_REGEX_KEY = re.compile(r"^\{\{\s*(?:~(?P<tilde>.*)~|/(?P<slash>.*)/)\s*\}\}$")


def regex_of_key(key: str) -> re.Pattern[str] | None:
    match = _REGEX_KEY.match(key)
    if match is None:
        return None
    expr = match.group("tilde") if match.group("tilde") is not None else match.group("slash")
    try:
        return re.compile(expr)
    except re.error as exc:
        raise MergeInvalid(f"The regular expression <{expr}> in the merge patch is invalid: {exc}") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply ``patch`` to ``target`` and return the result (inputs are not modified)."""
    if not isinstance(patch, dict):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    regex_keys = [(k, regex_of_key(k)) for k, v in patch.items() if v is None and k.startswith("{{")]
    for _key, pattern in regex_keys:
        if pattern is not None:
            for existing in [k for k in result if pattern.fullmatch(k)]:
                del result[existing]
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = value
    return result


def remove_nulls(value: Any) -> Any:
    """A patch applied to nothing: the patch without its deletions (what RFC 7396 creates from scratch)."""
    if not isinstance(value, dict):
        return value
    return {k: remove_nulls(v) for k, v in value.items() if v is not None}


def minimized(target: Any, patch: Any) -> tuple[bool, Any]:
    """``(changes_something, reduced_patch)`` for ``patch`` against ``target``."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        # JSON equality, not Python's: ``true`` is not ``1`` and ``false`` is not ``0``
        return (canonical(patch) != canonical(target), patch)
    reduced: dict[str, Any] = {}
    for key, value in patch.items():
        if value is None:
            if key in target or (key.startswith("{{") and regex_of_key(key) is not None):
                reduced[key] = None
            continue
        if key not in target:
            reduced[key] = value
            continue
        changed, sub = minimized(target[key], value)
        if changed:
            reduced[key] = sub
    return (bool(reduced), reduced)
