"""Search options (``basic-search`` "Sorting and paging options", ``httpapi-search``; Ditto's
``RqlOptionParser.scala``, ``ThingsSearchCursor`` and the page size check of the search actors)::

    Options := Option ("," Option)*
    Option  := sort((+|-)Property ("," (+|-)Property)*) | size(Digits) | cursor(Characters) | limit(Long,Long)

The same text arrives as the ``option`` query parameter of ``GET /search/things`` and as the ``option`` field of
a ``POST`` form body; :func:`parse_option_params` takes every ``option`` value given.

Rules, all answered with ``400 thing-search:search.option.invalid``: ``size`` is 1..200; ``limit(offset,count)``
(deprecated) needs ``offset >= 0`` and ``count`` 1..200 and cannot be combined with ``size`` or ``cursor``; a sort
key needs ``+`` or ``-``; each option may appear once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lark import Token

from ditto_compat.errors import SearchOptionInvalid
from ditto_compat.rql.ast import Field, Options, SortKey
from ditto_compat.rql.parser import RqlSyntaxError, long_value, parse_tree, property_pointer, unescape

MAX_PAGE_SIZE = 200
_DESCRIPTION = (
    "See https://www.eclipse.dev/ditto/basic-search.html#sorting-and-paging-options for the options."
)


def _invalid(message: str) -> SearchOptionInvalid:
    return SearchOptionInvalid(message, _DESCRIPTION)


def parse_options(text: str) -> Options:
    """Parse ``sort(+thingId,-attributes/x),size(25),cursor(...)`` or ``limit(0,25)``; blank text means no
    options."""
    if not text.strip():
        return Options()
    try:
        tree = parse_tree(text, "options")
        return _check(_options(text, tree))
    except RqlSyntaxError as error:
        raise _invalid(error.message) from None


def parse_option_params(values: Iterable[str]) -> Options:
    """Every ``option`` parameter of a request (``?option=sort(+thingId)&option=size(5)``) as one option list."""
    return parse_options(",".join(v for v in values if v.strip()))


def _options(text: str, tree: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for option in tree.children:
        name: str = option.data
        if name in seen:
            raise _invalid(f"The option '{name}' must not be given more than once: {text}")
        if name == "sort":
            seen[name] = tuple(_sort_key(text, key) for key in option.children)
        elif name == "size":
            seen[name] = _size(option.children[0])
        elif name == "cursor":
            seen[name] = _cursor(text, option.children[0])
        else:
            seen[name] = (long_value(text, option.children[0]), long_value(text, option.children[1]))
    return seen


def _sort_key(text: str, tree: Any) -> SortKey:
    sign, prop = tree.children
    return SortKey(Field(property_pointer(text, prop)), sign.value == "+")


def _size(token: Token) -> int:
    digits = token.value.lstrip("0")
    # Integer.valueOf("0005") is 5; the length check keeps int() away from absurdly long digit strings
    size = int(digits) if 0 < len(digits) <= 4 else 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid(
            f"Invalid option: 'size({token.value})': size(n) -- n must be between 1 and {MAX_PAGE_SIZE}"
        )
    return size


def _cursor(text: str, token: Token) -> str:
    value = unescape(token.value)
    if value is None:
        raise _invalid(f"The option 'cursor' is not valid: {text}")
    return value


def _check(parsed: dict[str, Any]) -> Options:
    limit: tuple[int, int] | None = parsed.get("limit")
    if limit is not None:
        if "cursor" in parsed:
            raise _invalid("The options 'cursor' and 'limit' must not be used together.")
        if "size" in parsed:
            raise _invalid("The options 'size' and 'limit' must not be used together.")
        offset, count = limit
        if offset < 0:
            raise _invalid(f"Invalid option: 'limit({offset},{count})': the offset must not be negative")
        if not 1 <= count <= MAX_PAGE_SIZE:
            raise _invalid(
                f"Invalid option: 'limit({offset},{count})': the count must be between 1 and {MAX_PAGE_SIZE}"
            )
    return Options(
        sort=parsed.get("sort", ()), size=parsed.get("size"), cursor=parsed.get("cursor"), limit=limit
    )
