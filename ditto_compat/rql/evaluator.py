"""The in-memory RQL evaluator (``basic-rql``, ``basic-search``, ``basic-conditional-requests``,
``basic-changenotifications``): conditions, event and connection filters, and the re-check of search hits.

It reproduces what Ditto's search (RQL translated to a MongoDB filter by ``CreateBsonPredicateVisitor``) answers,
so that a filter means the same in a condition, an event filter and a search, and so that the SQL and MongoDB
translations can be tested against it:

- Paths are resolved as MongoDB resolves dotted paths: through objects, and through arrays, where a key is looked
  up in every element that is an object (``attributes/tags/room`` on a list of objects) and a decimal index
  (``0``, ``12``) also selects the element at that position. Nested arrays are not entered by a key.
- The value found is tested; if it is an array, each of its elements is tested instead (one level): ``eq``,
  ``in``, ``gt``/``ge``/``lt``/``le``, ``like``/``ilike`` match if ANY element matches.
- ``ne(x, v)`` matches if ``x`` exists and NO value/element equals ``v`` (Ditto adds ``$exists``).
- No coercion: a number only equals/compares with numbers (ints and floats numerically, ``1 == 1.0``), a string
  with strings, a boolean with booleans (``false < true``; a boolean is never a number). Objects and arrays
  never equal a literal.
- Strings are ordered as MongoDB orders them: by their UTF-8 bytes, which is code point order.
- ``null`` is matched only by an explicit ``null``: ``eq(x,null)``, ``in(x,...,null)``, ``ge``/``le`` with null.
  ``gt``/``lt`` with null match nothing. (MongoDB alone would also match a missing field; Ditto adds
  ``$exists`` to ``eq(null)`` to avoid exactly that, and this evaluator applies that intent everywhere.)
- ``like``/``ilike``: anchored wildcard patterns, ``*`` any sequence, ``?`` one character, everything else
  literal, ``ilike`` ignoring case; only strings match. As in MongoDB's regular expressions (Ditto's
  ``LikeHelper`` builds ``^...$``), a wildcard does not match a line break and ``$`` also matches before a final
  ``\\n``.
- ``exists(x)``: some value is found (an explicit null counts). ``empty(x)``: nothing is found, or a value found
  is null, ``[]``, ``{}`` or ``""`` (0 and false are not empty).
- ``features/*/...`` looks at every feature; it matches if any feature's value matches (and ``ne`` needs a
  value in some feature and an equal value in none).
- ``time:now`` is the evaluation time as ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.000Z``, the
  format of ``_created``/``_modified``); ``time:now_epoch_millis`` is that instant in epoch milliseconds.

:func:`compile_query` turns a query into a tree of closures once; filters run on every event for every
subscriber, so the per-document work is only dictionary lookups and comparisons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ditto_compat.model.pointer import Pointer
from ditto_compat.rql.ast import And, Compare, CompareOp, Empty, Exists, In, Not, Or, Query, TimeNow, Value

Predicate = Callable[[Mapping[str, Any]], bool]
Resolver = Callable[[Mapping[str, Any]], Sequence[Any]]
Test = Callable[[Any], bool]
Clock = Callable[[], datetime]

_MISSING: Any = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBER_TYPES = (int, float)
_NOTHING: tuple[Any, ...] = ()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def compile_query(query: Query, *, clock: Clock = _utc_now) -> Predicate:
    """The query as a predicate on a searchable document (:func:`ditto_compat.rql.fields.searchable_document`).

    ``clock`` is read at each evaluation of a ``time:now`` literal, so one compiled filter stays right for as
    long as it lives."""
    return _compile(query, clock)


_CACHE_SIZE = 2048
_compiled: dict[str, Predicate] = {}


def _cached(query: Query) -> Predicate:
    # Keyed by repr, not by the query: the AST compares literals with ==, so eq(x,0), eq(x,false) and
    # eq(x,0.0) are equal (and hash alike) as dataclasses but are different filters.
    key = repr(query)
    predicate = _compiled.get(key)
    if predicate is None:
        if len(_compiled) >= _CACHE_SIZE:
            _compiled.clear()
        predicate = _compiled[key] = compile_query(query)
    return predicate


def evaluate(query: Query, doc: Mapping[str, Any], *, now: datetime | None = None) -> bool:
    """Whether ``doc`` matches ``query``; ``now`` is the instant ``time:now`` stands for (default: the current
    time). Compiled queries are cached, so evaluating the same query again is cheap."""
    if now is None:
        return _cached(query)(doc)
    fixed = now
    return compile_query(query, clock=lambda: fixed)(doc)


# --------------------------------------------------------------------------------------------- literals


def iso_instant(moment: datetime) -> str:
    """``time:now`` as text: ISO-8601 in UTC with milliseconds, the format of ``_created``/``_modified``, so that
    string comparisons against those fields order correctly. A naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_millis(moment: datetime) -> int:
    """``time:now_epoch_millis``: whole milliseconds since 1970-01-01T00:00:00Z."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def resolve_literal(value: Value, now: datetime) -> Any:
    """A literal as the JSON value it compares with (``time:now`` resolved against ``now``)."""
    if isinstance(value, TimeNow):
        return epoch_millis(now) if value.epoch_millis else iso_instant(now)
    return value


def like_regex(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """Ditto's ``LikeHelper``: repeated ``*`` collapse, ``*`` -> ``.*``, ``?`` -> ``.``, all else literal,
    anchored with ``^`` and ``$``. Python's ``re`` treats ``.`` and ``$`` as MongoDB's PCRE does."""
    parts: list[str] = []
    for char in re.sub(r"\*{2,}", "*", pattern):
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE if ignore_case else 0)


# --------------------------------------------------------------------------------------------- paths


def _is_index(key: str) -> bool:
    # MongoDB takes a path component as an array position only when it is a plain decimal number
    return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0")


def _step(values: Sequence[Any], key: str) -> list[Any]:
    """One path component applied to every current value, MongoDB style."""
    out: list[Any] = []
    index = int(key) if _is_index(key) else -1
    for value in values:
        if isinstance(value, Mapping):
            found = value.get(key, _MISSING)
            if found is not _MISSING:
                out.append(found)
        elif isinstance(value, list):
            if 0 <= index < len(value):
                out.append(value[index])
            for element in value:
                if isinstance(element, Mapping):
                    found = element.get(key, _MISSING)
                    if found is not _MISSING:
                        out.append(found)
    return out


def _walk(start: Sequence[Any], keys: Sequence[str]) -> Sequence[Any]:
    values = start
    for key in keys:
        if not values:
            return _NOTHING
        values = _step(values, key)
    return values


def _plain_resolver(keys: Pointer) -> Resolver:
    """Objects all the way down is the common case: walk it with plain lookups and fall back to the general
    walk at the first array."""

    def resolve(doc: Mapping[str, Any]) -> Sequence[Any]:
        current: Any = doc
        for position, key in enumerate(keys):
            if type(current) is dict:
                current = current.get(key, _MISSING)
                if current is _MISSING:
                    return _NOTHING
            elif isinstance(current, list | Mapping):
                return _walk([current], keys[position:])
            else:
                return _NOTHING
        return (current,)

    return resolve


def _feature_wildcard_resolver(rest: Pointer) -> Resolver:
    """``features/*/<rest>``: the values of ``<rest>`` in every feature."""

    def resolve(doc: Mapping[str, Any]) -> Sequence[Any]:
        features = doc.get("features")
        if not isinstance(features, Mapping):
            return _NOTHING
        return _walk(list(features.values()), rest)

    return resolve


def resolver(pointer: Pointer) -> Resolver:
    """The values a field denotes in a document: none when it is absent, several through arrays or the feature
    wildcard. Leaf arrays are returned whole; operators look into them."""
    if len(pointer) >= 2 and pointer[0] == "features" and pointer[1] == "*":
        return _feature_wildcard_resolver(pointer[2:])
    return _plain_resolver(pointer)


# --------------------------------------------------------------------------------------------- value tests


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _equals(literal: Any) -> Test:
    if literal is None:
        return lambda v: v is None
    if literal is True or literal is False:
        return lambda v: v is literal
    if _is_number(literal):
        # ``type`` rather than isinstance: bool is an int subclass, and true must not equal 1
        return lambda v: (type(v) is int or type(v) is float) and v == literal
    if isinstance(literal, str):
        return lambda v: type(v) is str and v == literal
    return lambda v: False


def _ordered(op: CompareOp, literal: Any) -> Test:
    if literal is None:
        # null only equals null; nothing is greater or less than it
        return (lambda v: v is None) if op in ("ge", "le") else (lambda v: False)
    if literal is True or literal is False:
        kinds: tuple[type, ...] = (bool,)
    elif _is_number(literal):
        kinds = _NUMBER_TYPES
    elif isinstance(literal, str):
        kinds = (str,)
    else:
        return lambda v: False
    if op == "gt":
        return lambda v: type(v) in kinds and v > literal
    if op == "ge":
        return lambda v: type(v) in kinds and v >= literal
    if op == "lt":
        return lambda v: type(v) in kinds and v < literal
    return lambda v: type(v) in kinds and v <= literal


def _like(literal: Any, ignore_case: bool) -> Test:
    if not isinstance(literal, str):
        return lambda v: False
    match = like_regex(literal, ignore_case=ignore_case).match
    return lambda v: type(v) is str and match(v) is not None


def _member_of(literals: Sequence[Any]) -> Test:
    strings = {v for v in literals if type(v) is str}
    numbers = {v for v in literals if type(v) is int or type(v) is float}
    booleans = {v for v in literals if type(v) is bool}
    has_null = any(v is None for v in literals)

    def test(value: Any) -> bool:
        kind = type(value)
        if kind is str:
            return value in strings
        if kind is int or kind is float:
            return value in numbers
        if kind is bool:
            return value in booleans
        return value is None and has_null

    return test


def _value_test(op: CompareOp, literal: Any) -> Test:
    if op == "eq" or op == "ne":
        return _equals(literal)
    if op == "like":
        return _like(literal, False)
    if op == "ilike":
        return _like(literal, True)
    return _ordered(op, literal)


# --------------------------------------------------------------------------------------------- predicates


def _any_value(resolve: Resolver, test: Test) -> Predicate:
    """Some value found, or some element of an array found, passes ``test``."""

    def predicate(doc: Mapping[str, Any]) -> bool:
        for value in resolve(doc):
            if type(value) is list:
                for element in value:
                    if test(element):
                        return True
            elif test(value):
                return True
        return False

    return predicate


def _none_equal(resolve: Resolver, test: Test) -> Predicate:
    """``ne``: something is found and no value or element equals the literal."""

    def predicate(doc: Mapping[str, Any]) -> bool:
        values = resolve(doc)
        if not values:
            return False
        for value in values:
            if type(value) is list:
                for element in value:
                    if test(element):
                        return False
            elif test(value):
                return False
        return True

    return predicate


def _value_predicate(op: CompareOp, resolve: Resolver, literal: Any) -> Predicate:
    test = _value_test(op, literal)
    return _none_equal(resolve, test) if op == "ne" else _any_value(resolve, test)


def _compile_compare(node: Compare, clock: Clock) -> Predicate:
    resolve = resolver(node.field.pointer)
    value = node.value
    if not isinstance(value, TimeNow):
        return _value_predicate(node.op, resolve, value)
    op, placeholder = node.op, value

    def with_now(doc: Mapping[str, Any]) -> bool:
        literal = resolve_literal(placeholder, clock())
        return _value_predicate(op, resolve, literal)(doc)

    return with_now


def _compile_in(node: In, clock: Clock) -> Predicate:
    resolve = resolver(node.field.pointer)
    values = node.values
    if not any(isinstance(v, TimeNow) for v in values):
        return _any_value(resolve, _member_of(values))

    def with_now(doc: Mapping[str, Any]) -> bool:
        now = clock()
        return _any_value(resolve, _member_of([resolve_literal(v, now) for v in values]))(doc)

    return with_now


def _is_empty_value(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | Mapping) and len(value) == 0)


def _compile_exists(node: Exists) -> Predicate:
    resolve = resolver(node.field.pointer)
    return lambda doc: len(resolve(doc)) > 0


def _compile_empty(node: Empty) -> Predicate:
    resolve = resolver(node.field.pointer)

    def predicate(doc: Mapping[str, Any]) -> bool:
        values = resolve(doc)
        return not values or any(_is_empty_value(v) for v in values)

    return predicate


def _all(children: Sequence[Predicate]) -> Predicate:
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda doc: first(doc) and second(doc)
    parts = tuple(children)

    def predicate(doc: Mapping[str, Any]) -> bool:
        # a plain loop: all() over a generator costs a frame per call, and this runs per event and filter
        for part in parts:  # noqa: SIM110
            if not part(doc):
                return False
        return True

    return predicate


def _any(children: Sequence[Predicate]) -> Predicate:
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda doc: first(doc) or second(doc)
    parts = tuple(children)

    def predicate(doc: Mapping[str, Any]) -> bool:
        for part in parts:  # noqa: SIM110 (see _all)
            if part(doc):
                return True
        return False

    return predicate


def _compile(node: Query, clock: Clock) -> Predicate:
    if isinstance(node, Compare):
        return _compile_compare(node, clock)
    if isinstance(node, In):
        return _compile_in(node, clock)
    if isinstance(node, Exists):
        return _compile_exists(node)
    if isinstance(node, Empty):
        return _compile_empty(node)
    if isinstance(node, And):
        # an empty and() cannot be parsed; built by hand it is the neutral element, as in MongoDB's $and
        return _all([_compile(c, clock) for c in node.children]) if node.children else (lambda doc: True)
    if isinstance(node, Or):
        return _any([_compile(c, clock) for c in node.children]) if node.children else (lambda doc: False)
    if isinstance(node, Not):
        child = _compile(node.child, clock)
        return lambda doc: not child(doc)
    raise TypeError(f"not an RQL query node: {node!r}")
