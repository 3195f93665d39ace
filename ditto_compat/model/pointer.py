"""JSON pointers (RFC 6901) as Ditto uses them for resource paths (``basic-thing``, ``httpapi-concepts``).

A pointer is a tuple of unescaped keys. Ditto accepts pointers with or without a leading ``/`` and ignores a
trailing ``/``; empty keys inside a pointer (``a//b``) are invalid.
"""

from __future__ import annotations

from typing import Any

from ditto_compat.errors import JsonPointerInvalid
from ditto_compat.model.text_cache import cached_by_text

Pointer = tuple[str, ...]

ROOT: Pointer = ()


@cached_by_text(max_length=256, maxsize=4096)  # a device addresses the same few paths over and over
def parse_pointer(text: str) -> Pointer:
    """Parse ``/a/b~1c`` (or ``a/b~1c``) into ``("a", "b/c")``."""
    if text in ("", "/"):
        return ROOT
    body = text[1:] if text.startswith("/") else text
    if body.endswith("/"):
        body = body[:-1]
    parts = body.split("/")
    if any(p == "" for p in parts):
        raise JsonPointerInvalid(f"The JSON pointer <{text}> is invalid: it contains an empty key.")
    if "~" not in body:
        return tuple(parts)
    return tuple(_unescape(p, text) for p in parts)


def _unescape(part: str, whole: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(part):
        ch = part[i]
        if ch == "~":
            nxt = part[i + 1 : i + 2]
            if nxt == "0":
                out.append("~")
            elif nxt == "1":
                out.append("/")
            else:
                # Ditto tolerates a lone tilde in keys; RFC 6901 would reject it. Keep it literally.
                out.append("~")
                i += 1
                continue
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def format_pointer(pointer: Pointer) -> str:
    """``("a", "b/c")`` -> ``/a/b~1c``; the root is ``/``."""
    if not pointer:
        return "/"
    joined = "/".join(pointer)
    if "~" not in joined and joined.count("/") == len(pointer) - 1:
        return "/" + joined  # no key needs escaping (the common case)
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)


_MISSING = object()


def get_at(doc: Any, pointer: Pointer) -> Any:
    """The value at ``pointer`` or :data:`MISSING`."""
    cur = doc
    for key in pointer:
        if not isinstance(cur, dict):
            return MISSING
        cur = cur.get(key, _MISSING)
        if cur is _MISSING:
            return MISSING
    return cur


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def set_at(doc: dict[str, Any], pointer: Pointer, value: Any) -> dict[str, Any]:
    """Return a copy of ``doc`` with ``value`` at ``pointer``; intermediate objects are created (or replace
    non-objects) as Ditto's ``JsonObject.setValue`` does. Copies only along the path."""
    if not pointer:
        if not isinstance(value, dict):
            raise TypeError("the root must be an object")
        return value
    new = dict(doc)
    cur = new
    for key in pointer[:-1]:
        child = cur.get(key)
        child = dict(child) if isinstance(child, dict) else {}
        cur[key] = child
        cur = child
    cur[pointer[-1]] = value
    return new


def delete_at(doc: dict[str, Any], pointer: Pointer) -> dict[str, Any]:
    """Return a copy of ``doc`` without the value at ``pointer`` (which must exist)."""
    if not pointer:
        return {}
    new = dict(doc)
    cur = new
    for key in pointer[:-1]:
        child = dict(cur[key])
        cur[key] = child
        cur = child
    del cur[pointer[-1]]
    return new
