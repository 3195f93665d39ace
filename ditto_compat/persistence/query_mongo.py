"""RQL search on MongoDB (``basic-search``, ``basic-rql``): an RQL AST as a MongoDB filter and sort. Pure: no
driver here; :mod:`.mongo` runs what this builds.

A Thing is stored as ``{_id: thing id, namespace, revision, created, modified, doc: <Thing JSON, keys escaped>,
_wf: [<every feature value>], policy_id, readers, uniform, ...}``. MongoDB's own query semantics are the
evaluator's (:mod:`ditto_compat.rql.evaluator` was written to reproduce them): dotted paths go through objects,
into the object elements of arrays and by decimal position; a leaf array matches if an element matches; there
is no coercion between types, and ranges stay inside a type ("type bracketing"). What MongoDB does differently
is corrected here:

- ``eq(x,null)`` is ``{$type: "null"}``: MongoDB's ``{x: null}`` also matches a missing ``x``.
- ``ne`` adds ``$exists`` (Ditto does the same); ``ne(x,null)`` is ``$not: {$type: "null"}``, because
  ``$ne: null`` would treat an array element without ``x`` as null.
- ``gt``/``lt`` with null match nothing, ``ge``/``le`` with null only an explicit null.
- ``like``/``ilike`` use the evaluator's own anchored regular expression (Ditto's ``LikeHelper``).
- ``empty(x)`` tests the values found at ``x``, not the elements of an array found there (``[""]`` is not
  empty), which no query operator can say: it is a ``$expr`` that resolves the path as the evaluator does.
- ``features/*/...`` reads ``_wf``, the features as an array, kept next to ``doc`` on every write: an object
  key cannot be wildcarded in a MongoDB path, an array element can.

Every key of a path is escaped with :func:`escape_key` (``doc`` is stored escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ditto_compat.model.pointer import MISSING, Pointer
from ditto_compat.persistence.query_common import (
    RANK_BOOL,
    RANK_NUMBER,
    RANK_STRING,
    Column,
    DocPath,
    FeatureWildcard,
    SearchField,
    effective_after,
    effective_sort,
    number,
    resolve_field,
    sort_rank,
)
from ditto_compat.rql.ast import And, Compare, Empty, Exists, In, Not, Or, Query, SortKey
from ditto_compat.rql.evaluator import like_regex, resolve_literal

__all__ = [
    "MongoSort",
    "escape_key",
    "escape_keys",
    "field_path",
    "mongo_filter",
    "sort_plan",
    "unescape_key",
    "unescape_keys",
    "wildcard_features",
]

Document = dict[str, Any]

# {_id: {$in: []}} is the canonical filter that matches nothing (and MongoDB answers it without a scan).
NEVER: Final[Document] = {"_id": {"$in": []}}

COLUMN_PATHS: Final = {
    "thingId": "_id",
    "namespace": "namespace",
    "_revision": "revision",
    "_created": "created",
    "_modified": "modified",
}
WILDCARD_FIELD: Final = "_wf"
_EMPTY_VALUES: Final[list[Any]] = [None, "", [], {}]
_NUMBER_TYPES: Final = ["int", "long", "double", "decimal"]
_TIE: Final = object()


# ------------------------------------------------------------------------------------------- keys


def escape_key(key: str) -> str:
    """A JSON key as stored in MongoDB: no ``.`` and no ``$`` (Ditto's ``KeyEscapeUtil`` scheme)."""
    return key.replace("~", "~0").replace("$", "~1").replace(".", "~2")


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    if "~" not in key:
        return key
    # Every "~" of an escaped key starts a two-character token, so "~2" and "~1" only ever match whole tokens;
    # "~0" goes last because it is the one that produces new "~" characters.
    return key.replace("~2", ".").replace("~1", "$").replace("~0", "~")


def escape_keys(value: Any) -> Any:
    """A JSON value with every object key escaped by :func:`escape_key`, at any depth."""
    if isinstance(value, dict):
        return {escape_key(k): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape_keys(v) for v in value]
    return value


def unescape_keys(value: Any) -> Any:
    """Inverse of :func:`escape_keys`."""
    if isinstance(value, dict):
        return {unescape_key(k): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


def wildcard_features(escaped_doc: Mapping[str, Any]) -> list[Any]:
    """``_wf`` of a stored (escaped) Thing: the values of its features, in order."""
    features = escaped_doc.get("features")
    return list(features.values()) if isinstance(features, Mapping) else []


def field_path(resolved: SearchField) -> str:
    """The dotted MongoDB path of a field."""
    if isinstance(resolved, Column):
        return COLUMN_PATHS[resolved.name]
    if isinstance(resolved, DocPath):
        return "doc." + ".".join(escape_key(k) for k in resolved.keys)
    return ".".join((WILDCARD_FIELD, *(escape_key(k) for k in resolved.rest)))


# ------------------------------------------------------------------------------------------- filters


def mongo_filter(query: Query, now: datetime) -> Document:
    """The filter of an RQL query (``time:now`` resolved against ``now``)."""
    if isinstance(query, And):
        return {"$and": [mongo_filter(c, now) for c in query.children]} if query.children else {}
    if isinstance(query, Or):
        return {"$or": [mongo_filter(c, now) for c in query.children]} if query.children else NEVER
    if isinstance(query, Not):
        return {"$nor": [mongo_filter(query.child, now)]}
    if isinstance(query, Compare):
        resolved = resolve_field(query.field)
        return _compare(resolved, query.op, resolve_literal(query.value, now))
    if isinstance(query, In):
        resolved = resolve_field(query.field)
        return _in(resolved, [resolve_literal(v, now) for v in query.values])
    if isinstance(query, Exists):
        return _exists(resolve_field(query.field))
    if isinstance(query, Empty):
        return _empty(resolve_field(query.field))
    raise TypeError(f"not an RQL query node: {query!r}")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _literal(value: Any) -> Any:
    return number(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _exists(resolved: SearchField) -> Document:
    if _positional(resolved):
        assert not isinstance(resolved, Column)
        return {"$expr": {"$gt": [{"$size": _resolved_values(resolved)}, 0]}}
    if isinstance(resolved, FeatureWildcard) and not resolved.rest:
        # ``features/*``: some feature exists (``_wf`` itself is there even when empty)
        return {f"{WILDCARD_FIELD}.0": {"$exists": True}}
    return {field_path(resolved): {"$exists": True}}


def _positional(resolved: SearchField) -> bool:
    """A path with a decimal key: MongoDB does not look into an array it selects by position
    (``{"a.0": 1}`` does not match ``{a: [[1]]}``), the evaluator does. Such paths are tested with ``$expr``
    on the values the evaluator resolves, which no index serves (they are rare)."""
    keys = (
        resolved.keys
        if isinstance(resolved, DocPath)
        else ()
        if isinstance(resolved, Column)
        else resolved.rest
    )
    return any(_is_index(key) for key in keys)


def _compare(resolved: SearchField, op: str, literal: Any) -> Document:
    if not _is_scalar(literal):
        return NEVER
    if _positional(resolved):
        assert not isinstance(resolved, Column)
        return _expr_compare(resolved, op, literal)
    path = field_path(resolved)
    if op == "eq":
        return {path: {"$type": "null"}} if literal is None else {path: _literal(literal)}
    if op == "ne":
        differs = {"$not": {"$type": "null"}} if literal is None else {"$ne": _literal(literal)}
        return {"$and": [_exists(resolved), {path: differs}]}
    if op in ("like", "ilike"):
        if not isinstance(literal, str):
            return NEVER
        ignore_case = op == "ilike"
        regex: Document = {"$regex": like_regex(literal, ignore_case=ignore_case).pattern}
        if ignore_case:
            regex["$options"] = "i"
        return {path: regex}
    if literal is None:
        return {path: {"$type": "null"}} if op in ("ge", "le") else NEVER
    return {path: {f"${'gte' if op == 'ge' else 'lte' if op == 'le' else op}": _literal(literal)}}


def _in(resolved: SearchField, literals: list[Any]) -> Document:
    if _positional(resolved):
        assert not isinstance(resolved, Column)
        tests = [_value_test("eq", v, "$$x") for v in literals if _is_scalar(v)]
        return {"$expr": _any_value(resolved, {"$or": tests})} if tests else NEVER
    path = field_path(resolved)
    values = [_literal(v) for v in literals if _is_scalar(v) and v is not None]
    parts: list[Document] = []
    if values:
        parts.append({path: {"$in": values}})
    if any(v is None for v in literals):
        # {$in: [null]} would also match a missing field
        parts.append({path: {"$type": "null"}})
    if not parts:
        return NEVER
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _empty(resolved: SearchField) -> Document:
    if isinstance(resolved, Column):
        return {COLUMN_PATHS[resolved.name]: ""} if resolved.is_string else NEVER
    nodes = _resolved_values(resolved)
    is_empty = {
        "$anyElementTrue": [
            {
                "$map": {
                    "input": "$$nodes",
                    "as": "node",
                    "in": {"$in": ["$$node", {"$literal": _EMPTY_VALUES}]},
                }
            }
        ]
    }
    return {
        "$expr": {
            "$let": {"vars": {"nodes": nodes}, "in": {"$or": [{"$eq": [{"$size": "$$nodes"}, 0]}, is_empty]}}
        }
    }


def _expr_compare(resolved: DocPath | FeatureWildcard, op: str, literal: Any) -> Document:
    """A comparison as the evaluator makes it, as an aggregation expression (see :func:`_positional`)."""
    if op == "ne":
        # something found, and no value or element equal
        found = {"$gt": [{"$size": _resolved_values(resolved)}, 0]}
        return {
            "$expr": {"$and": [found, {"$not": [_any_value(resolved, _value_test("eq", literal, "$$x"))]}]}
        }
    return {"$expr": _any_value(resolved, _value_test(op, literal, "$$x"))}


def _any_value(resolved: DocPath | FeatureWildcard, test: Any) -> Document:
    """Some value found, or some element of an array found, passes ``test`` (on ``$$x``)."""
    leaves = {
        "$reduce": {
            "input": _resolved_values(resolved),
            "initialValue": [],
            "in": {"$concatArrays": ["$$value", {"$cond": [{"$isArray": "$$this"}, "$$this", ["$$this"]]}]},
        }
    }
    return {"$anyElementTrue": [{"$map": {"input": leaves, "as": "x", "in": test}}]}


def _value_test(op: str, literal: Any, value: str) -> Any:
    """The evaluator's test of one value against a literal: same type only, then compared."""
    kind = {"$type": value}
    if literal is None:
        return {"$eq": [kind, "null"]} if op in ("eq", "ge", "le") else False
    if op in ("like", "ilike"):
        if not isinstance(literal, str):
            return False
        regex: Document = {"input": value, "regex": like_regex(literal, ignore_case=op == "ilike").pattern}
        if op == "ilike":
            regex["options"] = "i"
        # the type first: $regexMatch refuses anything but a string
        return {"$cond": [{"$eq": [kind, "string"]}, {"$regexMatch": regex}, False]}
    if isinstance(literal, bool):
        same_type: Any = {"$eq": [kind, "bool"]}
    elif isinstance(literal, str):
        same_type = {"$eq": [kind, "string"]}
    else:
        same_type = {"$in": [kind, _NUMBER_TYPES]}
    operator = {"eq": "$eq", "gt": "$gt", "ge": "$gte", "lt": "$lt", "le": "$lte"}[op]
    return {"$cond": [same_type, {operator: [value, {"$literal": _literal(literal)}]}, False]}


# ------------------------------------------------------------------------------------------- path resolution


def _is_index(key: str) -> bool:
    # as the evaluator and MongoDB: a plain decimal number (no sign, no leading zero) is also an array position
    return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0")


def _get(source: Any, key: str, depth: int) -> Document:
    """``[source[key]]`` when present, else ``[]`` (``source`` is an object). Through ``$objectToArray``
    rather than ``$getField``: a lookup that yields no value at all must never be bound to a variable or typed,
    as SecantusDB reports the ``$type`` of such a value as ``"object"``."""
    pair = f"kv{depth}"
    return {
        "$map": {
            "input": {
                "$filter": {
                    "input": {"$objectToArray": source},
                    "as": pair,
                    "cond": {"$eq": [f"$${pair}.k", {"$literal": key}]},
                }
            },
            "as": pair,
            "in": f"$${pair}.v",
        }
    }


def _step(values: Any, key: str, depth: int) -> Document:
    """The evaluator's ``_step`` as an aggregation expression: one key applied to an array of values."""
    value, element = f"v{depth}", f"e{depth}"
    in_elements = {
        "$reduce": {
            "input": {
                "$filter": {
                    "input": f"$${value}",
                    "as": element,
                    "cond": {"$eq": [{"$type": f"$${element}"}, "object"]},
                }
            },
            "initialValue": [],
            "in": {"$concatArrays": ["$$value", _get("$$this", key, depth)]},
        }
    }
    from_array: Any = in_elements
    if _is_index(key):
        position = int(key)
        at_position = {
            "$cond": [
                {"$lt": [position, {"$size": f"$${value}"}]},
                [{"$arrayElemAt": [f"$${value}", position]}],
                [],
            ]
        }
        from_array = {"$concatArrays": [at_position, in_elements]}
    contribution = {
        "$switch": {
            "branches": [
                {
                    "case": {"$eq": [{"$type": f"$${value}"}, "object"]},
                    "then": _get(f"$${value}", key, depth),
                },
                {"case": {"$isArray": f"$${value}"}, "then": from_array},
            ],
            "default": [],
        }
    }
    return {
        "$reduce": {
            "input": values,
            "initialValue": [],
            "in": {"$concatArrays": ["$$value", {"$let": {"vars": {value: "$$this"}, "in": contribution}}]},
        }
    }


def _resolved_values(resolved: DocPath | FeatureWildcard) -> Any:
    """An aggregation expression for the array of values the evaluator finds at a field."""
    keys: Pointer
    if isinstance(resolved, DocPath):
        values: Any = {"$cond": [{"$eq": [{"$type": "$doc"}, "object"]}, ["$doc"], []]}
        keys = resolved.keys
    else:
        values = {"$ifNull": [f"${WILDCARD_FIELD}", []]}
        keys = resolved.rest
    for depth, key in enumerate(keys):
        values = _step(values, escape_key(key), depth)
    return values


# ------------------------------------------------------------------------------------------- sorting


@dataclass(frozen=True, slots=True)
class MongoSort:
    """How to run a sort: ``stages`` (``$addFields``) compute the sort values of JSON paths; ``sort`` is the
    sort specification over stored and computed fields; ``after`` the keyset filter (on the same fields, so
    it goes after ``stages``); ``computed`` the fields to drop from the result. Without ``stages`` the sort
    runs as a plain ``find`` that can walk an index."""

    sort: list[tuple[str, int]]
    stages: list[Document] = field(default_factory=list)
    after: Document | None = None
    computed: list[str] = field(default_factory=list)


def _exact_value(keys: Pointer) -> Any:
    """``[value]`` at a path through objects only (a dotted path would also go through arrays), or ``[]``."""
    found: Any = ["$doc"]
    for depth, key in enumerate(keys):
        found = {
            "$let": {
                "vars": {"found": found},
                # the size first: the type of a missing value is what SecantusDB gets wrong (see _get)
                "in": {
                    "$cond": [
                        {"$eq": [{"$size": "$$found"}, 0]},
                        [],
                        {
                            "$cond": [
                                {"$eq": [{"$type": {"$arrayElemAt": ["$$found", 0]}}, "object"]},
                                _get({"$arrayElemAt": ["$$found", 0]}, escape_key(key), depth),
                                [],
                            ]
                        },
                    ]
                },
            }
        }
    return found


def _rank(found: str) -> Document:
    """The type rank of the ``[value]`` or ``[]`` in the field ``found``."""
    kind = {"$type": {"$arrayElemAt": [found, 0]}}
    return {
        "$cond": [
            {"$eq": [{"$size": found}, 0]},
            0,
            {
                "$switch": {
                    "branches": [
                        {"case": {"$eq": [kind, "null"]}, "then": 0},
                        {"case": {"$in": [kind, _NUMBER_TYPES]}, "then": RANK_NUMBER},
                        {"case": {"$eq": [kind, "string"]}, "then": RANK_STRING},
                        {"case": {"$eq": [kind, "bool"]}, "then": RANK_BOOL},
                        {"case": {"$eq": [kind, "object"]}, "then": 4},
                    ],
                    "default": 5,
                }
            },
        ]
    }


def _scalar(found: str) -> Document:
    """The number, string or boolean in the field ``found``, else null."""
    value = {"$arrayElemAt": [found, 0]}
    return {
        "$cond": [
            {"$eq": [{"$size": found}, 0]},
            None,
            {"$cond": [{"$in": [{"$type": value}, [*_NUMBER_TYPES, "string", "bool"]]}, value, None]},
        ]
    }


def _scalar_of(value: Any) -> Any:
    if value is MISSING or value is None or isinstance(value, Mapping | list):
        return None
    return _literal(value)


def sort_plan(sort: tuple[SortKey, ...], after: tuple[Any, ...] | None) -> MongoSort:
    """The effective sort (ending with ``thingId``) and, with ``after``, the keyset filter past it."""
    keys = effective_sort(sort)
    values = effective_after(sort, after)
    spec: list[tuple[str, int]] = []
    raw: Document = {}
    derived: Document = {}
    # per key: the fields it compares, each with the after value: [(field, value)] for a stored column,
    # [(rank, r), (scalar, s)] for a computed JSON value (s is _TIE for a rank without an order inside)
    compared: list[list[tuple[str, Any]]] = []
    for position, key in enumerate(keys):
        resolved = resolve_field(key.field)
        direction = 1 if key.ascending else -1
        value = values[position] if values is not None else None
        if isinstance(resolved, Column):
            path = COLUMN_PATHS[resolved.name]
            spec.append((path, direction))
            compared.append([(path, _literal(value) if value is not None else None)])
            continue
        if not isinstance(resolved, DocPath):
            raise ValueError("the feature wildcard cannot be sorted by")
        exact, rank, scalar = f"_s{position}x", f"_s{position}r", f"_s{position}v"
        raw[exact] = _exact_value(resolved.keys)
        derived[rank] = _rank(f"${exact}")
        derived[scalar] = _scalar(f"${exact}")
        spec.extend([(rank, direction), (scalar, direction)])
        scalar_value = _scalar_of(value)
        compared.append([(rank, sort_rank(value)), (scalar, _TIE if scalar_value is None else scalar_value)])
    stages = [{"$addFields": raw}, {"$addFields": derived}] if raw else []
    computed = [*raw, *derived]
    keyset = None if values is None else _keyset(keys, compared)
    return MongoSort(sort=spec, stages=stages, after=keyset, computed=computed)


def _keyset(keys: tuple[SortKey, ...], compared: list[list[tuple[str, Any]]]) -> Document:
    """Strictly after the given values: ``k1 > a1 OR (k1 = a1 AND (...))`` over every compared field (``<``
    for descending keys). A computed scalar is null for missing values, objects and arrays: those tie
    within their rank."""
    condition: Document | None = None
    for key, fields in reversed(list(zip(keys, compared, strict=True))):
        operator = "$gt" if key.ascending else "$lt"
        for name, value in reversed(fields):
            if value is _TIE:
                continue  # missing, null, objects and arrays: nothing orders them within their rank
            beyond: Document = {name: {operator: value}}
            condition = (
                beyond if condition is None else {"$or": [beyond, {"$and": [{name: value}, condition]}]}
            )
    assert condition is not None  # the thing id is always compared
    return condition
