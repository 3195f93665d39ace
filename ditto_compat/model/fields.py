"""The ``fields`` selector (``httpapi-concepts`` "Partial requests", Ditto's ``ImmutableJsonFieldSelectorFactory``).

``attributes/location,features/f(properties(a,b/c))`` expands to the pointers ``/attributes/location``,
``/features/f/properties/a`` and ``/features/f/properties/b/c``. Parentheses nest; the selector is URL-decoded
by the caller. ``*`` stands for any feature id (``features/*/properties/on``).
"""

from __future__ import annotations

from typing import Any

from ditto_compat.errors import JsonFieldSelectorInvalid
from ditto_compat.model.pointer import MISSING, Pointer, get_at, parse_pointer

FieldSelector = tuple[Pointer, ...]


def parse_fields(text: str) -> FieldSelector:
    """Parse a selector into pointers, keeping their order and dropping duplicates."""
    if text.count("(") != text.count(")"):
        raise JsonFieldSelectorInvalid(f"The field selector <{text}> is invalid: unbalanced parentheses.")
    out: list[Pointer] = []
    for raw in _expand(text, text):
        raw = raw.strip()
        if not raw:
            continue
        pointer = parse_pointer(raw)
        if pointer and pointer not in out:
            out.append(pointer)
    if not out:
        raise JsonFieldSelectorInvalid(f"The field selector <{text}> is invalid: it selects nothing.")
    return tuple(out)


def _split_top_level(text: str, whole: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise JsonFieldSelectorInvalid(
                    f"The field selector <{whole}> is invalid: unbalanced parentheses."
                )
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise JsonFieldSelectorInvalid(f"The field selector <{whole}> is invalid: unbalanced parentheses.")
    parts.append(text[start:])
    return parts


def _expand(text: str, whole: str) -> list[str]:
    result: list[str] = []
    for part in _split_top_level(text, whole):
        open_at = part.find("(")
        if open_at < 0:
            result.append(part)
            continue
        if not part.endswith(")"):
            raise JsonFieldSelectorInvalid(
                f"The field selector <{whole}> is invalid: nothing may follow a closing parenthesis."
            )
        prefix = part[:open_at].rstrip("/")
        for inner in _expand(part[open_at + 1 : -1], whole):
            inner = inner.strip().lstrip("/")
            if inner:
                result.append(f"{prefix}/{inner}" if prefix else inner)
    return result


def _expand_wildcards(doc: dict[str, Any], pointer: Pointer) -> list[Pointer]:
    """Resolve ``features/*/...`` against the features present in ``doc``."""
    if len(pointer) >= 2 and pointer[0] == "features" and pointer[1] == "*":
        features = doc.get("features")
        if not isinstance(features, dict):
            return []
        return [("features", fid, *pointer[2:]) for fid in features]
    return [pointer]


def project(doc: dict[str, Any], selector: FieldSelector) -> dict[str, Any]:
    """Keep only the selected paths, preserving the JSON structure; missing paths are left out."""
    out: dict[str, Any] = {}
    for selected in selector:
        for pointer in _expand_wildcards(doc, selected):
            value = get_at(doc, pointer)
            if value is MISSING:
                continue
            cur = out
            for key in pointer[:-1]:
                nxt = cur.get(key)
                if not isinstance(nxt, dict):
                    nxt = {}
                    cur[key] = nxt
                cur = nxt
            last = pointer[-1]
            existing = cur.get(last)
            if isinstance(existing, dict) and isinstance(value, dict):
                # a broader selector already copied part of it: the whole value wins
                cur[last] = value
            elif existing is None or last not in cur:
                cur[last] = value
    return out
