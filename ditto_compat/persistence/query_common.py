"""What both search translations share (``basic-search``, ``basic-rql``): which searchable field a query names,
and the order search sorts in.

Filters mean exactly what the in-memory evaluator (:mod:`ditto_compat.rql.evaluator`) says they mean; the SQL
(:mod:`.query_sqlite`) and MongoDB (:mod:`.query_mongo`) translations are tested against it.

Sorting (the evaluator does not sort, so it is defined here, once for both databases). A sort key's value is
the value at its path through objects only, as :func:`ditto_compat.model.pointer.get_at` reads it from the
searchable document; a path through an array has no value. Values of different types are ordered by type as
MongoDB orders BSON types, with Ditto's "missing values first when ascending":

    missing = null  <  numbers  <  strings  <  booleans  <  objects  <  arrays

Numbers compare numerically (``1 == 1.0``), strings by their UTF-8 bytes, ``false < true``. All objects tie
with each other, and so do all arrays (MongoDB would order arrays by their smallest or largest element, which
makes a keyset cursor over them ill-defined); a tie falls through to the next key and finally to ``thingId``.
Descending reverses the whole order (missing last).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ditto_compat.errors import RqlExpressionInvalid, SearchOptionInvalid
from ditto_compat.model.pointer import MISSING, Pointer, format_pointer
from ditto_compat.rql.ast import And, Empty, Field, Not, Or, Query, SortKey

ColumnName = Literal["thingId", "namespace", "_revision", "_created", "_modified"]
COLUMNS: Final[frozenset[str]] = frozenset({"thingId", "namespace", "_revision", "_created", "_modified"})

# The roots of the Thing JSON that search indexes (``thingId`` is the entity id, kept as a column).
INDEXED_ROOTS: Final = ("policyId", "definition", "attributes", "features", "_metadata")

THING_ID_KEY: Final = SortKey(Field(("thingId",)), True)

# Sort ranks by type (see the module docstring).
RANK_MISSING: Final = 0
RANK_NUMBER: Final = 1
RANK_STRING: Final = 2
RANK_BOOL: Final = 3
RANK_OBJECT: Final = 4
RANK_ARRAY: Final = 5

# SQLite and BSON integers are signed 64-bit; a larger JSON integer is compared as a double, as MongoDB would
# store it.
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Column:
    """A field kept outside the Thing JSON, always present with one type: the id and its namespace (strings),
    the revision (an integer), the timestamps (ISO-8601 strings)."""

    name: ColumnName

    @property
    def is_string(self) -> bool:
        return self.name != "_revision"


@dataclass(frozen=True, slots=True)
class DocPath:
    """A path inside the Thing JSON: ``policyId``, ``definition``, ``attributes/...``, ``features/<id>/...``,
    ``_metadata/...``."""

    keys: Pointer


@dataclass(frozen=True, slots=True)
class FeatureWildcard:
    """``features/*/<rest>``: ``rest`` in every feature."""

    rest: Pointer


SearchField = Column | DocPath | FeatureWildcard


def over_views(query: Query) -> Query | None:
    """A filter that the database can apply to the full Thing and that matches every Thing whose READ view
    the original filter matches (None: every Thing), for policies that hide parts of a Thing from some readers.

    A view is the Thing with some subtrees removed. Every test but ``empty`` can only stop matching when a
    subtree goes, so it is kept; ``empty`` and ``not`` can start matching, so they are dropped (the search
    service evaluates the original filter on each candidate's view)."""
    if isinstance(query, Not | Empty):
        return None
    if isinstance(query, And):
        kept = tuple(c for c in (over_views(child) for child in query.children) if c is not None)
        return And(kept) if kept else None
    if isinstance(query, Or):
        relaxed = [over_views(child) for child in query.children]
        return None if any(c is None for c in relaxed) else Or(tuple(c for c in relaxed if c is not None))
    return query


def resolve_field(field: Field) -> SearchField:
    """Where a query field lives. The caller validated the field (:func:`ditto_compat.rql.fields.validate_query`);
    a root search does not know is refused here as well, as Ditto refuses it."""
    pointer = field.pointer
    if not pointer:
        raise RqlExpressionInvalid("Unknown property name: (the property is empty).")
    root = pointer[0]
    if root in COLUMNS:
        if len(pointer) != 1:
            raise RqlExpressionInvalid(f"Unknown property name: {format_pointer(pointer)[1:]}.")
        return Column(root)  # type: ignore[arg-type]  # membership in COLUMNS is the Literal's set
    if root == "features" and len(pointer) >= 2 and pointer[1] == "*":
        return FeatureWildcard(pointer[2:])
    if root in INDEXED_ROOTS:
        return DocPath(pointer)
    raise RqlExpressionInvalid(f"Unknown property name: {format_pointer(pointer)[1:]}.")


def _effective_positions(sort: tuple[SortKey, ...]) -> tuple[list[int], bool]:
    """Positions of the keys that decide the order: up to and including ``thingId`` (keys after the unique id
    never decide anything), each field once (a repeated field is already decided by its first key; MongoDB's
    sort document could not even hold it twice); and whether ``+thingId`` must be appended."""
    positions: list[int] = []
    seen: set[tuple[str, ...]] = set()
    for index, key in enumerate(sort):
        if isinstance(resolve_field(key.field), FeatureWildcard):
            raise SearchOptionInvalid(
                f"Unknown property name: {format_pointer(key.field.pointer)[1:]} "
                "(the feature wildcard '*' cannot be sorted by)."
            )
        if key.field.pointer in seen:
            continue
        seen.add(key.field.pointer)
        positions.append(index)
        if key.field.pointer == ("thingId",):
            return positions, False
    return positions, True


def effective_sort(sort: tuple[SortKey, ...]) -> tuple[SortKey, ...]:
    """The sort as run (see :func:`_effective_positions`). Refuses keys that cannot be sorted by."""
    positions, append_id = _effective_positions(sort)
    keys = [sort[i] for i in positions]
    return (*keys, THING_ID_KEY) if append_id else tuple(keys)


def effective_after(sort: tuple[SortKey, ...], after: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """``after`` (one value per key of ``sort``, plus the id of the last hit when the sort lacks ``thingId``)
    reduced to the keys of :func:`effective_sort`."""
    if after is None:
        return None
    positions, append_id = _effective_positions(sort)
    needed = (positions[-1] + 1 if positions else 0) + (1 if append_id else 0)
    if append_id:
        needed = max(needed, len(sort) + 1)
    if len(after) < needed:
        raise ValueError(f"'after' holds {len(after)} values, the sort needs {needed}")
    values = [after[i] for i in positions]
    if append_id:
        values.append(after[len(sort)])
    return tuple(values)


def is_missing(value: Any) -> bool:
    return value is MISSING


def sort_rank(value: Any) -> int:
    """The type rank of a sort value (see the module docstring); ``MISSING`` and ``None`` rank first."""
    if value is None or value is MISSING:
        return RANK_MISSING
    if value is True or value is False:
        return RANK_BOOL
    if isinstance(value, int | float):
        return RANK_NUMBER
    if isinstance(value, str):
        return RANK_STRING
    if isinstance(value, Mapping):
        return RANK_OBJECT
    return RANK_ARRAY


def number(value: int | float) -> int | float:
    """A JSON number as both databases store it: integers beyond 64 bits become doubles."""
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        return float(value)
    return value


def like_prefix(pattern: str) -> str:
    """The literal text every match of a ``like`` pattern starts with (up to the first wildcard)."""
    for position, char in enumerate(pattern):
        if char in "*?":
            return pattern[:position]
    return pattern


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (code point order, which is
    UTF-8 byte order), or None when there is none. Turns a literal prefix into an index range."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates are not characters of valid text; skip past them
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
