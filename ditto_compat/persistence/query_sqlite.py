"""RQL search on SQLite (``basic-search``, ``basic-rql``): the search index a Thing write maintains, and the
translation of an RQL AST into SQL over it. Pure: no database access here; :mod:`.sqlite` runs what this builds.

The index (table ``search_values``) holds, per live Thing, one row per distinct value the evaluator
(:mod:`ditto_compat.rql.evaluator`) can find at a path: ``(path, v, thing, k)``, clustered by its key
``(path, v, thing)``, so that the table is its own index: no second copy of the values. A Thing's rows are
found again by computing them from its previous JSON (they are a pure function of it).

- ``path`` is the id of the path text (a JSON pointer, table ``search_paths``, which also keeps the feature
  wildcard form ``/features/*/...`` of feature paths). Paths are resolved as MongoDB and the evaluator resolve
  them: through objects, through arrays into their object elements (``attributes/tags/room``), and by decimal
  position (``attributes/tags/0``).
- ``v`` is the value with its JSON type kept apart by SQLite's storage classes, which never compare equal
  across classes and sort NULL < numbers < TEXT < BLOB: numbers are INTEGER/REAL, strings TEXT, and null,
  false, true, ``{}`` and ``[]`` one-byte BLOB markers. So an equality is one index seek that cannot confuse
  ``"1"``, ``1`` and ``true``, and a range stays inside its type by bounding it with the first value of the
  next storage class (``''`` after numbers, ``x''`` after strings). A non-empty object or array has no row:
  no value test can match it, and that it exists shows in the rows below it, so ``exists`` looks at the path
  and every path under it.
- ``k`` says how the value was found: ``1`` the node at the path through objects only, ``2`` a node reached
  through an array, ``0`` only as an element of an array node (``eq`` and the other value tests look into a
  leaf array, ``empty`` does not). The common case is ``1`` or ``0``, which SQLite stores in no bytes at all.

Predicates become ``t.n IN (SELECT thing FROM search_values WHERE path = ... AND <test on v>)``: the subquery is
one range of the key ``(path, v)`` and yields the matching Things, so an indexed predicate drives the query;
``and``/``or``/``not`` are plain SQL over such two-valued terms (never NULL, so ``NOT`` is exact).

Sorting reads the Thing's JSON with ``json_type``/``json_extract`` (``$."attributes"."x"`` is exactly the path
through objects that a sort key means), or, for a key that such a path cannot spell, the Python function
``rql_sort_value``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from ditto_compat.model.pointer import MISSING, Pointer, format_pointer, get_at, parse_pointer
from ditto_compat.persistence.query_common import (
    INDEXED_ROOTS,
    Column,
    DocPath,
    FeatureWildcard,
    SearchField,
    effective_after,
    effective_sort,
    like_prefix,
    number,
    prefix_upper_bound,
    resolve_field,
)
from ditto_compat.rql.ast import And, Compare, Empty, Exists, In, Not, Or, Query, SortKey
from ditto_compat.rql.evaluator import like_regex, resolve_literal

__all__ = [
    "EMPTY_ARRAY",
    "EMPTY_OBJECT",
    "FALSE",
    "KIND_ELEMENT",
    "KIND_EXACT",
    "KIND_NODE",
    "LIKE_FUNCTION",
    "NULL",
    "SORT_VALUE_FUNCTION",
    "TRUE",
    "IndexEntries",
    "SqlBuilder",
    "encode",
    "index_changes",
    "index_entries",
    "keyset_condition",
    "order_by",
    "path_text",
    "sql_like",
    "sql_sort_value",
    "where",
    "wildcard_text",
]

# Value markers (BLOBs): their byte order is the sort order of their types (null < bool < object < array).
NULL: Final = b"\x00"
FALSE: Final = b"\x01"
TRUE: Final = b"\x02"
EMPTY_OBJECT: Final = b"\x03"
EMPTY_ARRAY: Final = b"\x05"

KIND_ELEMENT: Final = 0
KIND_EXACT: Final = 1
KIND_NODE: Final = 2

LIKE_FUNCTION: Final = "rql_like"
SORT_VALUE_FUNCTION: Final = "rql_sort_value"
# JSON path labels of SQLite 3.40 are compared with the raw JSON text of a key: a key that JSON must escape
# cannot be spelled.
_NOT_IN_JSON_PATH: Final = frozenset('"\\') | frozenset(chr(c) for c in range(0x20))

# ((path keys, encoded value) -> kind): one row of search_values each, duplicates merged (highest kind wins).
IndexEntries = dict[tuple[Pointer, Any], int]

_T = "t"  # alias of the things table in every statement built here
_COLUMN_SQL: Final = {
    "thingId": f"{_T}.id",
    "namespace": f"{_T}.namespace",
    "_revision": f"{_T}.revision",
    "_created": f"{_T}.created",
    "_modified": f"{_T}.modified",
}
# SQLite reads an out-of-range literal as infinity: the sort value of a missing field or null, below every
# number (SQLite's NULL would also sort first, but would make every keyset comparison three-valued).
_MINUS_INFINITY: Final = "-9e999"
_EMPTY_MARKERS: Final = f"x'00', '', x'{EMPTY_OBJECT.hex()}', x'{EMPTY_ARRAY.hex()}'"


# ------------------------------------------------------------------------------------------- the index


def encode(value: Any) -> Any:
    """A literal, or a scalar or empty container of a Thing, as stored in ``search_values.v``."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return NULL
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    if kind is int or kind is float:
        return number(value)
    return EMPTY_OBJECT if isinstance(value, Mapping) else EMPTY_ARRAY


def _flatten(keys: Pointer, value: Any, priority: int, out: dict[tuple[Pointer, Any], int]) -> None:
    """Rows of the node ``value`` found at ``keys`` (``priority``: 2 exact, 1 through an array) and of
    everything below it. A non-empty object or array has no row of its own: its existence shows in the rows
    below it (see :func:`where`, ``exists``)."""
    kind = type(value)
    if kind is dict and value:
        for key, child in value.items():
            _flatten((*keys, key), child, priority, out)
        return
    if kind is list and value:
        for position, element in enumerate(value):
            if type(element) not in (dict, list) or not element:
                entry = (keys, encode(element))
                if entry not in out:  # an element is the weakest way to be found (priority 0)
                    out[entry] = 0
            # a decimal key selects by position; the element is a node there (nested arrays included)
            _flatten((*keys, str(position)), element, 1, out)
        for element in value:
            # a key looks into the elements that are objects (not into nested arrays)
            if type(element) is dict:
                for key, child in element.items():
                    _flatten((*keys, key), child, 1, out)
        return
    entry = (keys, encode(value))
    if out.get(entry, -1) < priority:
        out[entry] = priority


_STORED_KIND: Final = (KIND_ELEMENT, KIND_NODE, KIND_EXACT)  # by priority


def _stored(rows: dict[tuple[Pointer, Any], int]) -> IndexEntries:
    return {entry: _STORED_KIND[priority] for entry, priority in rows.items()}


def index_entries(doc: Mapping[str, Any]) -> IndexEntries:
    """The index rows of one Thing JSON: every scalar or empty node the evaluator can reach at every path under
    the indexed roots, and every scalar or empty element of every array node."""
    out: dict[tuple[Pointer, Any], int] = {}
    for root in INDEXED_ROOTS:
        if root in doc:
            _flatten((root,), doc[root], 2, out)
    return _stored(out)


def index_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, changed_at: Pointer | None = None
) -> tuple[list[tuple[Pointer, Any]], IndexEntries]:
    """``(rows to delete, rows to insert or update)`` to turn the index of ``old`` into that of ``new``.

    Only the subtrees that differ are flattened: below a path through objects only, every row comes from the
    one node at that path, so an unchanged subtree (same JSON text) keeps its rows. A property update costs a
    few comparisons and one or two rows, not a flattening of the whole Thing.

    ``changed_at``: the caller knows that ``new`` differs from ``old`` only at or below this (non-empty) path, as
    a change of one resource does; then only that path is compared."""
    if old is None or new is None:
        return (list(index_entries(old)) if old is not None else []), (
            index_entries(new) if new is not None else {}
        )
    removed: list[tuple[Pointer, Any]] = []
    changed: IndexEntries = {}
    if changed_at:
        if changed_at[0] in INDEXED_ROOTS:
            keys: Pointer = changed_at[:1]
            before, after = old.get(keys[0], MISSING), new.get(keys[0], MISSING)
            # down to the change, while both sides are non-empty objects (as _diff_node descends)
            for key in changed_at[1:]:
                if type(before) is not dict or type(after) is not dict or not before or not after:
                    break
                keys = (*keys, key)
                before, after = before.get(key, MISSING), after.get(key, MISSING)
            _diff_node(keys, before, after, removed, changed)
        return removed, changed
    for root in INDEXED_ROOTS:
        _diff_node((root,), old.get(root, MISSING), new.get(root, MISSING), removed, changed)
    return removed, changed


_SCALARS: Final = (str, int, float, bool, type(None))


def _diff_node(
    keys: Pointer, before: Any, after: Any, removed: list[tuple[Pointer, Any]], changed: IndexEntries
) -> None:
    """Add the rows that differ between the nodes ``before`` and ``after`` at ``keys`` to ``removed`` and
    ``changed``. A module function with explicit accumulators, not a closure: a recursive closure is a reference
    cycle, and one per written Thing kept the cyclic garbage collector busy during ingestion."""
    if before is after:
        return  # a subtree the change did not copy (model/pointer.py copies only along the path)
    before_type, after_type = type(before), type(after)
    if before_type is dict and after_type is dict and before and after:
        for key in before.keys() | after.keys():
            _diff_node((*keys, key), before.get(key, MISSING), after.get(key, MISSING), removed, changed)
        return
    if before_type in _SCALARS and after_type in _SCALARS:
        # the common case (a property's new value): one exact row each
        old_value, new_value = encode(before), encode(after)
        if old_value != new_value:  # as the rows' keys compare in the general case below
            removed.append((keys, old_value))
            changed[(keys, new_value)] = KIND_EXACT
        return
    if before is not MISSING and after is not MISSING and orjson.dumps(before) == orjson.dumps(after):
        return  # JSON text, not ==: in Python 1 == 1.0 == True
    rows_before: dict[tuple[Pointer, Any], int] = {}
    rows_after: dict[tuple[Pointer, Any], int] = {}
    if before is not MISSING:
        _flatten(keys, before, 2, rows_before)
    if after is not MISSING:
        _flatten(keys, after, 2, rows_after)
    stored_before, stored_after = _stored(rows_before), _stored(rows_after)
    removed.extend(entry for entry in stored_before if entry not in stored_after)
    changed.update((e, k) for e, k in stored_after.items() if stored_before.get(e) != k)


def path_text(keys: Pointer) -> str:
    return format_pointer(keys)


def wildcard_text(keys: Pointer) -> str | None:
    """The ``features/*/...`` form of a feature path (None for other paths), kept next to the path so that a
    wildcard query finds all its paths through one index."""
    if len(keys) >= 2 and keys[0] == "features":
        return format_pointer(("features", "*", *keys[2:]))
    return None


# ------------------------------------------------------------------------------------------- like


@functools.lru_cache(maxsize=512)
def _like_match(pattern: str, ignore_case: bool) -> Any:
    return like_regex(pattern, ignore_case=ignore_case).match


def sql_like(value: Any, pattern: Any, ignore_case: Any) -> int:
    """The SQL function ``rql_like(v, pattern, ignore_case)``: the evaluator's own ``like``/``ilike`` (MongoDB
    regular expression semantics, which neither LIKE nor GLOB have: ``?`` does not match a line break, and a
    pattern also matches before a final line break)."""
    if type(value) is not str or type(pattern) is not str:
        return 0
    return 1 if _like_match(pattern, bool(ignore_case))(value) is not None else 0


# ------------------------------------------------------------------------------------------- statements


class SqlBuilder:
    """Collects named parameters while SQL text is built, so that fragments compose in any order."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name


def where(builder: SqlBuilder, query: Query, now: datetime) -> str:
    """The filter as a SQL condition on the things table aliased ``t``."""
    if isinstance(query, And):
        if not query.children:
            return "1"
        sets, others = _partition(builder, query.children, now, merge_ranges=True)
        terms = [_in_set(_combine(sets, "INTERSECT"))] if sets else []
        terms.extend(where(builder, c, now) for c in others)
        return terms[0] if len(terms) == 1 else "(" + " AND ".join(f"({t})" for t in terms) + ")"
    if isinstance(query, Or):
        if not query.children:
            return "0"
        sets, others = _partition(builder, query.children, now, merge_ranges=False)
        terms = [_in_set(_combine(sets, "UNION"))] if sets else []
        terms.extend(where(builder, c, now) for c in others)
        return terms[0] if len(terms) == 1 else "(" + " OR ".join(f"({t})" for t in terms) + ")"
    if isinstance(query, Not):
        # every operand in parentheses: a leaf may itself be "a AND b", and NOT binds tighter than AND
        return f"(NOT ({where(builder, query.child, now)}))"
    found = _thing_set(builder, query, now)
    if found is not None:
        return _in_set(found)
    if isinstance(query, Compare):
        field = resolve_field(query.field)
        literal = resolve_literal(query.value, now)
        if isinstance(field, Column):
            return _column_compare(builder, field, query.op, literal)
        return "0"  # a non-scalar literal: no value equals or orders against it
    if isinstance(query, In):
        field = resolve_field(query.field)
        literals = [resolve_literal(v, now) for v in query.values]
        if isinstance(field, Column):
            return _column_in(builder, field, literals)
        return "0"  # no scalar among the listed values
    if isinstance(query, Exists):
        return "1"  # a column always exists
    if isinstance(query, Empty):
        field = resolve_field(query.field)
        if isinstance(field, Column):
            return f"{_COLUMN_SQL[field.name]} = ''" if field.is_string else "0"
        # nothing found, or a node (not a mere element of an array) that is null, "", {} or []
        empty = _values(builder, field, f"k <> {KIND_ELEMENT} AND v IN ({_EMPTY_MARKERS})")
        return f"(NOT {_in_set(_values(builder, field, None))} OR {_in_set(empty)})"
    raise TypeError(f"not an RQL query node: {query!r}")


# A set of Things is a SELECT of their keys ``thing`` from ``search_values``, or a compound of such SELECTs.
# Combining the sets of an ``and``/``or`` inside the index (INTERSECT/UNION over the keys) before anything
# reads the things table costs one scan of each predicate's index range; testing them as separate
# ``t.n IN (...)`` terms would fetch a Thing row for every match of whichever predicate the planner drives by.


@dataclass(frozen=True, slots=True)
class _Set:
    sql: str
    compound: (
        bool  # a compound SELECT must be wrapped to be one operand of another (SQLite has no parentheses)
    )


def _in_set(found: _Set) -> str:
    return f"{_T}.n IN ({found.sql})"


def _operand(found: _Set) -> str:
    return f"SELECT thing FROM ({found.sql})" if found.compound else found.sql


def _combine(sets: list[_Set], operator: str) -> _Set:
    if len(sets) == 1:
        return sets[0]
    return _Set(f" {operator} ".join(_operand(s) for s in sets), True)


def _partition(
    builder: SqlBuilder, children: tuple[Query, ...], now: datetime, *, merge_ranges: bool
) -> tuple[list[_Set], list[Query]]:
    """The children that are sets of Things (ranges on one path merged, inside an ``and``), and the rest."""
    sets: list[_Set] = []
    others: list[Query] = []
    remaining: list[Query] = list(children)
    if merge_ranges:
        ranges: dict[Pointer, list[Compare]] = {}
        for child in children:
            key = _range_path(child)
            if key is not None:
                ranges.setdefault(key, []).append(child)  # type: ignore[arg-type]
        for keys, bounds in ranges.items():
            if len(bounds) > 1:
                sets.append(_merged_range(builder, DocPath(keys), bounds, now))
                remaining = [c for c in remaining if not any(c is b for b in bounds)]
    for child in remaining:
        found = _thing_set(builder, child, now)
        if found is None:
            others.append(child)
        else:
            sets.append(found)
    return sets, others


def _range_path(query: Query) -> Pointer | None:
    """The path of a gt/ge/lt/le on a document path (the comparisons one index range can serve)."""
    if not isinstance(query, Compare) or query.op not in _RANGE_SYMBOL:
        return None
    field = resolve_field(query.field)
    return field.keys if isinstance(field, DocPath) else None


def _merged_range(builder: SqlBuilder, field: DocPath, bounds: list[Compare], now: datetime) -> _Set:
    """``and(gt(p,a), lt(p,b))`` as one range of the index. A Thing matches when some value at ``p`` passes
    every bound, or, where ``p`` holds several values (an array: rows not of kind exact), when each bound is
    passed by some value. A path through objects only holds one node, so where it is a scalar its one row
    (kind exact) decides alone; rows of other kinds are few, and a partial index keeps them apart."""
    terms = [_range_terms(builder, bound.op, resolve_literal(bound.value, now)) for bound in bounds]
    if ["0"] in terms:
        return _values(builder, field, "0")  # a bound nothing passes (and "INDEXED BY" refuses a constant)
    tests = [" AND ".join(t) for t in terms]
    # every literal's bound before any type's bound (see _range_terms)
    ordered = [t[0] for t in terms] + list(dict.fromkeys(term for t in terms for term in t[1:]))
    together = _values(builder, field, " AND ".join(ordered))
    spread = [
        _Set(
            _values(builder, field, f"k <> {KIND_EXACT} AND ({t})").sql.replace(_FROM_VALUES, _FROM_SPREAD),
            False,
        )
        for t in tests
    ]
    return _Set(f"{_combine(spread, 'INTERSECT').sql} UNION {together.sql}", True)


def _thing_set(builder: SqlBuilder, query: Query, now: datetime) -> _Set | None:
    """The Things matching ``query`` as a set from the index, or None when it needs the things table (a
    column, ``not``, ``empty``, or a test that is constant)."""
    if isinstance(query, And | Or):
        if not query.children:
            return None
        sets, others = _partition(builder, query.children, now, merge_ranges=isinstance(query, And))
        if others:
            return None
        return _combine(sets, "INTERSECT" if isinstance(query, And) else "UNION")
    if isinstance(query, Compare):
        field = resolve_field(query.field)
        literal = resolve_literal(query.value, now)
        if isinstance(field, Column) or not _is_scalar(literal):
            return None
        return _compare(builder, field, query.op, literal)
    if isinstance(query, In):
        field = resolve_field(query.field)
        if isinstance(field, Column):
            return None
        literals = [resolve_literal(v, now) for v in query.values]
        markers = [encode(v) for v in literals if _is_scalar(v)]
        if not markers:
            return None
        listed = ", ".join(builder.param(m) for m in markers)
        return _values(builder, field, f"v IN ({listed})")
    if isinstance(query, Exists):
        field = resolve_field(query.field)
        return None if isinstance(field, Column) else _values(builder, field, None)
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _values(builder: SqlBuilder, field: DocPath | FeatureWildcard, test: str | None) -> _Set:
    """The Things with some value at the field that passes ``test`` (a condition on ``v``/``k``); with
    ``test`` None: with something at the field, which is a row at its path or at any path below it."""
    if isinstance(field, DocPath):
        column, text = "path", path_text(field.keys)
    else:
        column, text = "wpath", format_pointer(("features", "*", *field.rest))
    if test is not None:
        if column == "path":
            paths = f"path = (SELECT id FROM search_paths WHERE path = {builder.param(text)})"
        else:
            paths = f"path IN (SELECT id FROM search_paths WHERE wpath = {builder.param(text)})"
        condition = f"{paths} AND {test}"
    else:
        # the path itself or one below it: "/a/b" or "/a/b/..." ("0" is the character after "/")
        below = f"{column} >= {builder.param(text + '/')} AND {column} < {builder.param(text + '0')}"
        own = f"{column} = {builder.param(text)}"
        condition = f"path IN (SELECT id FROM search_paths WHERE {own} OR ({below}))"
    return _Set(f"SELECT thing {_FROM_VALUES} WHERE {condition}", False)


def _compare(builder: SqlBuilder, field: DocPath | FeatureWildcard, op: str, literal: Any) -> _Set:
    if op == "eq":
        return _values(builder, field, f"v = {builder.param(encode(literal))}")
    if op == "ne":
        # exists, and no value or element equals the literal
        equal = _values(builder, field, f"v = {builder.param(encode(literal))}")
        return _Set(f"{_values(builder, field, None).sql} EXCEPT {equal.sql}", True)
    if op in ("like", "ilike"):
        if not isinstance(literal, str):
            return _values(builder, field, "0")
        return _values(builder, field, _like_test(builder, "v", literal, op == "ilike"))
    return _values(builder, field, _range_test(builder, op, literal))


_FROM_VALUES: Final = "FROM search_values"
# Without statistics the planner would read the primary key, which holds every value, not just the spread ones.
_FROM_SPREAD: Final = "FROM search_values INDEXED BY search_values_spread"
_RANGE_SYMBOL: Final = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _range_test(builder: SqlBuilder, op: str, literal: Any) -> str:
    """gt/ge/lt/le within the literal's type: bounded by the neighbouring storage classes."""
    return " AND ".join(_range_terms(builder, op, literal))


def _range_terms(builder: SqlBuilder, op: str, literal: Any) -> list[str]:
    """The terms of :func:`_range_test`, the comparison with the literal first: SQLite bounds an index range by
    the first lower and the first upper bound it meets, and the literal's is the tight one."""
    if literal is None:
        # null is only equal to null: ge/le match an explicit null, gt/lt nothing
        return [f"v = {builder.param(NULL)}"] if op in ("ge", "le") else ["0"]
    if not _is_scalar(literal):
        return ["0"]
    own = f"v {_RANGE_SYMBOL[op]} {builder.param(encode(literal))}"
    if isinstance(literal, bool):
        return [own, f"v >= x'{FALSE.hex()}'", f"v <= x'{TRUE.hex()}'"]
    if isinstance(literal, str):
        # TEXT sorts after every number and before every BLOB
        return [own, "v >= ''", "v < x''"]
    # numbers sort before everything else (no NULL is stored)
    return [own, "v < ''"]


def _like_test(builder: SqlBuilder, expression: str, pattern: str, ignore_case: bool) -> str:
    matches = f"{LIKE_FUNCTION}({expression}, {builder.param(pattern)}, {int(ignore_case)})"
    if ignore_case:
        return f"typeof({expression}) = 'text' AND {matches}"
    # Every match starts with the pattern's literal prefix: that range lets the index narrow the candidates
    # before the (Python) matcher runs.
    prefix = like_prefix(pattern)
    if not prefix:
        return f"typeof({expression}) = 'text' AND {matches}"
    upper = prefix_upper_bound(prefix)
    upper_sql = f"{expression} < {builder.param(upper)}" if upper is not None else f"{expression} < x''"
    return f"{expression} >= {builder.param(prefix)} AND {upper_sql} AND {matches}"


def _column_type_matches(field: Column, literal: Any) -> bool:
    if field.is_string:
        return isinstance(literal, str)
    return isinstance(literal, int | float) and not isinstance(literal, bool)


def _column_compare(builder: SqlBuilder, field: Column, op: str, literal: Any) -> str:
    """A column always exists and is never null, with one type."""
    column = _COLUMN_SQL[field.name]
    same_type = _column_type_matches(field, literal)
    if op == "ne":
        return f"{column} <> {builder.param(number(literal))}" if same_type else "1"
    if not same_type:
        return "0"
    if op in ("like", "ilike"):
        # only strings match a pattern (not the revision, even with a number as the pattern)
        if not isinstance(literal, str):
            return "0"
        return _like_test(builder, column, literal, op == "ilike")
    symbol = {"eq": "=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}[op]
    return f"{column} {symbol} {builder.param(number(literal))}"


def _column_in(builder: SqlBuilder, field: Column, literals: list[Any]) -> str:
    values = [number(v) for v in literals if _column_type_matches(field, v)]
    if not values:
        return "0"
    return f"{_COLUMN_SQL[field.name]} IN ({', '.join(builder.param(v) for v in values)})"


# ------------------------------------------------------------------------------------------- sorting


def _sort_expression(builder: SqlBuilder, field: SearchField) -> str:
    """The sort value of a field as one totally ordered SQL value (see :mod:`.query_common`): missing and
    null are minus infinity, all objects one marker, all arrays another."""
    if isinstance(field, Column):
        return _COLUMN_SQL[field.name]
    if not isinstance(field, DocPath):
        raise ValueError("the feature wildcard cannot be sorted by")
    if any(_NOT_IN_JSON_PATH.intersection(key) for key in field.keys):
        return f"{SORT_VALUE_FUNCTION}({_T}.doc, {builder.param(path_text(field.keys))})"
    path = builder.param("$" + "".join(f'."{key}"' for key in field.keys))
    return (
        f"CASE json_type({_T}.doc, {path}) "
        f"WHEN 'integer' THEN json_extract({_T}.doc, {path}) WHEN 'real' THEN json_extract({_T}.doc, {path}) "
        f"WHEN 'text' THEN json_extract({_T}.doc, {path}) "
        f"WHEN 'false' THEN x'{FALSE.hex()}' WHEN 'true' THEN x'{TRUE.hex()}' "
        f"WHEN 'object' THEN x'{EMPTY_OBJECT.hex()}' WHEN 'array' THEN x'{EMPTY_ARRAY.hex()}' "
        f"ELSE {_MINUS_INFINITY} END"
    )


def sql_sort_value(doc: Any, pointer: Any) -> Any:
    """The SQL function ``rql_sort_value(doc, pointer)``: what :func:`_sort_expression` computes, for keys a
    JSON path cannot spell."""
    if type(doc) is not str or type(pointer) is not str:
        return float("-inf")
    value = get_at(orjson.loads(doc), parse_pointer(pointer))
    return _sort_value(value)


def _sort_parameter(field: SearchField, value: Any) -> Any:
    """A sort value (as :func:`ditto_compat.model.pointer.get_at` reads it from the searchable document) in
    the domain of :func:`_sort_expression`."""
    if isinstance(field, Column):
        return number(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    return _sort_value(value)


def _sort_value(value: Any) -> Any:
    if value is None or value is MISSING:
        return float("-inf")
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, int | float):
        return number(value)
    if isinstance(value, str):
        return value
    return EMPTY_OBJECT if isinstance(value, Mapping) else EMPTY_ARRAY


def order_by(builder: SqlBuilder, sort: tuple[SortKey, ...]) -> str:
    """``ORDER BY`` terms of the effective sort (ending with the thing id)."""
    terms = []
    for key in effective_sort(sort):
        expression = _sort_expression(builder, resolve_field(key.field))
        terms.append(f"{expression} {'ASC' if key.ascending else 'DESC'}")
    return ", ".join(terms)


def keyset_condition(builder: SqlBuilder, sort: tuple[SortKey, ...], after: tuple[Any, ...]) -> str:
    """Rows strictly after ``after`` in the effective sort: ``k1 > a1 OR (k1 = a1 AND (k2 > a2 OR ...))``,
    with ``<`` for descending keys."""
    keys = effective_sort(sort)
    values = effective_after(sort, after)
    assert values is not None
    condition = ""
    for key, value in reversed(list(zip(keys, values, strict=True))):
        field = resolve_field(key.field)
        expression = _sort_expression(builder, field)
        symbol = ">" if key.ascending else "<"
        beyond = f"{expression} {symbol} {builder.param(_sort_parameter(field, value))}"
        if not condition:
            condition = beyond
        else:
            tie = f"{_sort_expression(builder, field)} = {builder.param(_sort_parameter(field, value))}"
            condition = f"({beyond} OR ({tie} AND {condition}))"
    return condition
