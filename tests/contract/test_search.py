"""Search on every backend (``Store.search``/``count``/``set_policy_readers``; ``basic-rql``, ``basic-search``):
each operator on each JSON type, like patterns, the feature wildcard, the stored fields, sorting with keyset
pagination, and the policy readers. Every expectation of a filter is also checked against the in-memory
evaluator, which defines what a filter means."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from ditto_compat.domain.entity import EntityState
from ditto_compat.model.pointer import get_at, parse_pointer
from ditto_compat.persistence import sqlite_bulk
from ditto_compat.persistence.ports import EntityWrite, PolicyReaders, RevisionConflict, SearchRequest, Store
from ditto_compat.persistence.query_common import sort_rank
from ditto_compat.persistence.sqlite import SqliteStore
from ditto_compat.rql.ast import (
    And,
    Compare,
    CompareOp,
    Empty,
    Exists,
    Field,
    In,
    Not,
    Or,
    Query,
    SortKey,
    TimeNow,
    Value,
)
from ditto_compat.rql.evaluator import evaluate
from ditto_compat.rql.fields import searchable_document

T0 = "2024-05-01T10:00:00.000Z"
T1 = "2024-05-02T10:00:00.000Z"
POLICY = "org.test:policy"
READER = "user:alice"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


# -- helpers --------------------------------------------------------------------------------------------


def f(path: str) -> Field:
    return Field(parse_pointer(path))


def cmp(op: CompareOp, path: str, value: Value) -> Compare:
    return Compare(op, f(path), value)


def thing(thing_id: str, policy_id: str | None = POLICY, **parts: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"thingId": thing_id, **parts}
    if policy_id is not None:
        doc["policyId"] = policy_id
    return doc


async def put(
    store: Store, doc: dict[str, Any], *, revision: int = 1, modified: str = T0, expected: int | None = None
) -> None:
    """Store a Thing at ``revision`` (replacing ``revision - 1`` unless ``expected`` says otherwise)."""
    thing_id = doc["thingId"]
    state = EntityState(thing_id, revision, doc, T0, modified)
    previous = revision - 1 if expected is None else expected
    await store.commit([EntityWrite("things", previous, state, {"revision": revision})])


async def readable(store: Store, policy_id: str = POLICY, *subjects: str, uniform: bool = True) -> None:
    await store.set_policy_readers([PolicyReaders(policy_id, subjects or (READER,), uniform)])


async def found(
    store: Store,
    query: Query | None = None,
    *,
    readers: Sequence[str] = (READER,),
    namespaces: Sequence[str] | None = None,
) -> list[str]:
    hits = await store.search(
        SearchRequest(
            readers=tuple(readers),
            filter=query,
            namespaces=None if namespaces is None else tuple(namespaces),
            limit=200,
        )
    )
    return [h.state.entity_id for h in hits]


def evaluated(docs: dict[str, dict[str, Any]], query: Query) -> list[str]:
    """What the in-memory evaluator says: the reference every backend must agree with."""
    return sorted(
        i for i, d in docs.items() if evaluate(query, searchable_document(d, i, 1, T0, T0), now=NOW)
    )


# -- every operator on every type -----------------------------------------------------------------------

# attribute "v" of each Thing, by the name part of its id; "missing" has none
VALUES: dict[str, Any] = {
    "str": "abc",
    "str2": "abd",
    "numstr": "1",
    "int1": 1,
    "float1": 1.0,
    "float15": 1.5,
    "int2": 2,
    "zero": 0,
    "neg": -3,
    "big": 2**62,
    "true": True,
    "false": False,
    "null": None,
    "arr": ["abc", 2, True, None],
    "arrobj": [{"room": "kitchen", "floor": 2}, {"room": "hall"}],
    "nested": [["deep"], "x"],
    "obj": {"room": "kitchen", "in": {"deeper": 7}},
    "emptystr": "",
    "emptyarr": [],
    "emptyobj": {},
    "unicode": "Äpfel",
}
ALL = sorted(["missing", *VALUES])


def _docs() -> dict[str, dict[str, Any]]:
    docs = {"org.test:missing": thing("org.test:missing", attributes={"other": 1})}
    for name, value in VALUES.items():
        docs[f"org.test:{name}"] = thing(f"org.test:{name}", attributes={"v": value})
    return docs


def names(*wanted: str) -> list[str]:
    return sorted(f"org.test:{n}" for n in wanted)


def all_but(*excluded: str) -> list[str]:
    return names(*(n for n in ALL if n not in excluded))


OPERATOR_CASES: list[tuple[Query, list[str]]] = [
    # equality: no coercion, 1 == 1.0, arrays match by element
    (cmp("eq", "attributes/v", "abc"), names("str", "arr")),
    (cmp("eq", "attributes/v", 1), names("int1", "float1")),
    (cmp("eq", "attributes/v", 1.0), names("int1", "float1")),
    (cmp("eq", "attributes/v", "1"), names("numstr")),
    (cmp("eq", "attributes/v", True), names("true", "arr")),
    (cmp("eq", "attributes/v", False), names("false")),
    (cmp("eq", "attributes/v", 0), names("zero")),
    (cmp("eq", "attributes/v", 2**62), names("big")),
    (cmp("eq", "attributes/v", ""), names("emptystr")),
    (cmp("eq", "attributes/v", None), names("null", "arr")),
    (cmp("eq", "attributes/v", "deep"), []),  # nested arrays are not looked into
    # ne: the field must exist, and no value or element may equal
    (cmp("ne", "attributes/v", 1), all_but("missing", "int1", "float1")),
    (cmp("ne", "attributes/v", "abc"), all_but("missing", "str", "arr")),
    (cmp("ne", "attributes/v", None), all_but("missing", "null", "arr")),
    (cmp("ne", "attributes/v", True), all_but("missing", "true", "arr")),
    # ranges stay inside the literal's type
    (cmp("gt", "attributes/v", 1), names("float15", "int2", "arr", "big")),
    (cmp("ge", "attributes/v", 1), names("int1", "float1", "float15", "int2", "arr", "big")),
    (cmp("lt", "attributes/v", 1), names("zero", "neg")),
    (cmp("le", "attributes/v", 1.5), names("int1", "float1", "float15", "zero", "neg")),
    (cmp("gt", "attributes/v", "abc"), names("str2", "nested", "unicode")),  # "x", "Äpfel" > "abc"
    (cmp("ge", "attributes/v", "abc"), names("str", "str2", "arr", "nested", "unicode")),
    (cmp("lt", "attributes/v", "abc"), names("numstr", "emptystr")),  # "Äpfel" > "abc": U+00C4 > "a"
    (cmp("gt", "attributes/v", False), names("true", "arr")),
    (cmp("ge", "attributes/v", False), names("true", "false", "arr")),
    (cmp("lt", "attributes/v", True), names("false")),
    (cmp("gt", "attributes/v", None), []),
    (cmp("lt", "attributes/v", None), []),
    (cmp("ge", "attributes/v", None), names("null", "arr")),
    (cmp("le", "attributes/v", None), names("null", "arr")),
    # in: any value equal to any literal, null only an explicit null
    (In(f("attributes/v"), (1, "abc", None)), names("int1", "float1", "str", "arr", "null")),
    (In(f("attributes/v"), (False, "1")), names("false", "numstr")),
    # like / ilike: strings only
    (cmp("like", "attributes/v", "ab*"), names("str", "str2", "arr")),
    (cmp("like", "attributes/v", "a?c"), names("str", "arr")),
    (
        cmp("like", "attributes/v", "*"),
        names("str", "str2", "numstr", "emptystr", "arr", "unicode", "nested"),
    ),
    (cmp("like", "attributes/v", "1"), names("numstr")),
    (cmp("ilike", "attributes/v", "AB?"), names("str", "str2", "arr")),
    (cmp("ilike", "attributes/v", "äPFEL"), names("unicode")),
    (cmp("like", "attributes/v", "äpfel"), []),
    # exists / empty
    (Exists(f("attributes/v")), all_but("missing")),
    (Empty(f("attributes/v")), names("missing", "null", "emptystr", "emptyarr", "emptyobj")),
    (Not(Empty(f("attributes/v"))), all_but("missing", "null", "emptystr", "emptyarr", "emptyobj")),
    # objects, and objects inside arrays
    (cmp("eq", "attributes/v/room", "kitchen"), names("arrobj", "obj")),
    (Exists(f("attributes/v/floor")), names("arrobj")),
    (cmp("ge", "attributes/v/floor", 2), names("arrobj")),
    (cmp("ne", "attributes/v/room", "hall"), names("obj")),
    (cmp("eq", "attributes/v/in/deeper", 7), names("obj")),
    (Empty(f("attributes/v/room")), all_but("arrobj", "obj")),
    # a decimal key also selects an array element by position
    (cmp("eq", "attributes/v/0", "abc"), names("arr")),
    (cmp("eq", "attributes/v/1/room", "hall"), names("arrobj")),
    (cmp("eq", "attributes/v/0", "deep"), names("nested")),
    (Exists(f("attributes/v/4")), []),
    # logic, with "not" over missing fields
    (Not(cmp("eq", "attributes/v", 1)), all_but("int1", "float1")),
    (Not(cmp("ne", "attributes/v", 1)), names("missing", "int1", "float1")),
    (Not(Exists(f("attributes/v"))), names("missing")),
    (
        And((cmp("ge", "attributes/v", 1), cmp("lt", "attributes/v", 2))),
        names("int1", "float1", "float15"),
    ),
    (Or((cmp("eq", "attributes/v", "abc"), cmp("eq", "attributes/v", 0))), names("str", "arr", "zero")),
    (And(()), names(*ALL)),
    (Or(()), []),
]


@pytest.mark.parametrize(("query", "expected"), OPERATOR_CASES, ids=[repr(c[0]) for c in OPERATOR_CASES])
async def test_operator_semantics(store: Store, query: Query, expected: list[str]) -> None:
    docs = _docs()
    await readable(store)
    for doc in docs.values():
        await put(store, doc)
    # the table is the evaluator's answer (if this fails, the table is wrong, not the store)
    assert evaluated(docs, query) == expected
    assert await found(store, query) == expected


# -- like patterns are literal but for * and ? ----------------------------------------------------------

LIKE_VALUES = [
    "a.c",
    "abc",
    "a%c",
    "a_c",
    "a[b]c",
    "a*c",
    "a\\c",
    "a?c",
    "a\nc",
    "ab\n",
    "ab",
    "^a$",
    "a+c",
    "(a)",
]


@pytest.mark.parametrize(
    "pattern",
    ["a.c", "a%c", "a_c", "a[b]c", "a?c", "a*c", "ab", "^a$", "a+c", "(a)", "a\\c", "*c", "?b*", "a**c"],
)
async def test_like_escapes_everything_but_the_wildcards(store: Store, pattern: str) -> None:
    await readable(store)
    docs = {f"org.test:s{i}": thing(f"org.test:s{i}", attributes={"s": s}) for i, s in enumerate(LIKE_VALUES)}
    for doc in docs.values():
        await put(store, doc)
    query = cmp("like", "attributes/s", pattern)
    expected = evaluated(docs, query)
    assert await found(store, query) == expected
    literal = [i for i, d in docs.items() if d["attributes"]["s"] == pattern]
    assert set(literal) <= set(expected)
    if "*" not in pattern and "?" not in pattern and pattern != "ab":
        assert (
            expected == literal
        )  # no wildcard: only the literal text ("ab" also matches "ab\n", as in Mongo)


# -- the feature wildcard and the stored fields ---------------------------------------------------------


async def test_feature_wildcard(store: Store) -> None:
    await readable(store)
    docs = {
        "org.test:a": thing(
            "org.test:a",
            features={
                "f1": {"properties": {"t": 5}},
                "f2": {"properties": {"t": 10}, "definition": ["d:x:1"]},
            },
        ),
        "org.test:b": thing("org.test:b", features={"f1": {"properties": {"t": 5}}}),
        "org.test:c": thing("org.test:c", features={"x.y": {"properties": {"t": 7}}}),
        "org.test:d": thing("org.test:d", features={}),
        "org.test:e": thing("org.test:e"),
    }
    for doc in docs.values():
        await put(store, doc)
    cases: list[tuple[Query, list[str]]] = [
        (cmp("gt", "features/*/properties/t", 6), ["org.test:a", "org.test:c"]),
        (cmp("ne", "features/*/properties/t", 5), ["org.test:c"]),
        (cmp("eq", "features/*/definition", "d:x:1"), ["org.test:a"]),
        (Exists(f("features/*")), ["org.test:a", "org.test:b", "org.test:c"]),
        (Empty(f("features/*")), ["org.test:d", "org.test:e"]),
        (Exists(f("features/f2/properties/t")), ["org.test:a"]),
        (cmp("eq", "features/x.y/properties/t", 7), ["org.test:c"]),
        (Not(cmp("eq", "features/*/properties/t", 5)), ["org.test:c", "org.test:d", "org.test:e"]),
    ]
    for query, expected in cases:
        assert evaluated(docs, query) == expected, query
        assert await found(store, query) == expected, query


async def test_keys_with_dots_dollars_and_slashes(store: Store) -> None:
    await readable(store)
    doc = thing("org.test:k", attributes={"a.b": {"$c": 1}, "x/y": "slash", "~0": "tilde"})
    await put(store, doc)
    assert await found(store, cmp("eq", "attributes/a.b/$c", 1)) == ["org.test:k"]
    assert await found(store, cmp("eq", "attributes/x~1y", "slash")) == ["org.test:k"]
    assert await found(store, cmp("eq", "attributes/~00", "tilde")) == ["org.test:k"]
    assert await found(store, cmp("eq", "attributes/a/b/$c", 1)) == []


async def test_stored_fields(store: Store) -> None:
    await readable(store)
    await readable(store, "other:policy")
    await put(store, thing("org.test:a", definition="org.test:model:1"), revision=3, modified=T1, expected=0)
    await put(store, thing("org.test:b"))
    await put(store, thing("other:c", policy_id="other:policy"))
    cases: list[tuple[Query, list[str]]] = [
        (cmp("eq", "thingId", "org.test:a"), ["org.test:a"]),
        (cmp("gt", "thingId", "org.test:a"), ["org.test:b", "other:c"]),
        (cmp("like", "thingId", "org.*"), ["org.test:a", "org.test:b"]),
        (cmp("ilike", "thingId", "OTHER:?"), ["other:c"]),
        (cmp("eq", "thingId", 1), []),
        (cmp("ne", "thingId", 1), ["org.test:a", "org.test:b", "other:c"]),
        (cmp("eq", "namespace", "other"), ["other:c"]),
        (In(f("namespace"), ("org.test", "nope")), ["org.test:a", "org.test:b"]),
        (cmp("eq", "policyId", "other:policy"), ["other:c"]),
        (cmp("eq", "definition", "org.test:model:1"), ["org.test:a"]),
        (cmp("gt", "_revision", 1), ["org.test:a"]),
        (cmp("eq", "_revision", 3.0), ["org.test:a"]),
        (cmp("eq", "_revision", "3"), []),
        (cmp("gt", "_modified", T0), ["org.test:a"]),
        (cmp("lt", "_created", TimeNow()), ["org.test:a", "org.test:b", "other:c"]),
        (cmp("gt", "_modified", TimeNow()), []),
        (Exists(f("_revision")), ["org.test:a", "org.test:b", "other:c"]),
        # a leaf of several SQL terms under "not" (found by the agreement test)
        (Not(cmp("like", "thingId", "")), ["org.test:a", "org.test:b", "other:c"]),
        (cmp("like", "_revision", 3), []),
        (Empty(f("thingId")), []),
    ]
    for query, expected in cases:
        assert await found(store, query) == expected, query


async def test_namespaces(store: Store) -> None:
    await readable(store)
    for thing_id in ("a:1", "b:1", "b:2", "c:1"):
        await put(store, thing(thing_id))
    assert await found(store, namespaces=["b"]) == ["b:1", "b:2"]
    assert await found(store, namespaces=["a", "c"]) == ["a:1", "c:1"]
    assert await found(store, namespaces=[]) == []
    assert await found(store, cmp("eq", "thingId", "b:2"), namespaces=["a", "b"]) == ["b:2"]


async def test_updates_and_deletes_reindex(store: Store) -> None:
    await readable(store)
    await put(store, thing("org.test:a", attributes={"x": 1, "tags": ["a", "b"]}))
    assert await found(store, cmp("eq", "attributes/tags", "b")) == ["org.test:a"]
    await put(store, thing("org.test:a", attributes={"x": 2, "tags": ["a"]}), revision=2)
    assert await found(store, cmp("eq", "attributes/x", 1)) == []
    assert await found(store, cmp("eq", "attributes/x", 2)) == ["org.test:a"]
    assert await found(store, cmp("eq", "attributes/tags", "b")) == []
    assert await found(store, cmp("eq", "attributes/tags/0", "a")) == ["org.test:a"]
    # same value, other type
    await put(store, thing("org.test:a", attributes={"x": "2"}), revision=3)
    assert await found(store, cmp("eq", "attributes/x", 2)) == []
    assert await found(store, cmp("eq", "attributes/x", "2")) == ["org.test:a"]
    assert await found(store, Exists(f("attributes/tags"))) == []
    tombstone = EntityState("org.test:a", 4, None, T0, T0)
    await store.commit([EntityWrite("things", 3, tombstone, {"revision": 4})])
    assert await found(store) == []
    assert await found(store, Empty(f("attributes/x"))) == []


async def test_a_lost_compare_and_set_leaves_the_index_alone(store: Store) -> None:
    await readable(store)
    await put(store, thing("org.test:a", attributes={"x": 1}))
    stale = EntityState("org.test:a", 6, thing("org.test:a", attributes={"x": 99}), T0, T0)
    good = EntityState("org.test:b", 1, thing("org.test:b", attributes={"x": 99}), T0, T0)
    with pytest.raises(RevisionConflict):
        await store.commit(
            [EntityWrite("things", 0, good, {}), EntityWrite("things", 5, stale, {"revision": 6})]
        )
    assert await found(store, cmp("eq", "attributes/x", 99)) == []
    assert await found(store, cmp("eq", "attributes/x", 1)) == ["org.test:a"]


# -- sorting and keyset pagination ----------------------------------------------------------------------

SORT_VALUES: list[Any] = [None, 3, 1.5, -1, 3.0, "b", "a", "", "B", True, False, {"x": 1}, {}, [1], [], "ä"]


def reference_order(
    docs: dict[str, dict[str, Any]], sort: Sequence[SortKey], revisions: dict[str, int] | None = None
) -> list[str]:
    """The order of query_common's docstring, computed in Python."""

    def value_key(value: Any) -> tuple[Any, ...]:
        rank = sort_rank(value)
        if rank in (1, 2):
            return (rank, value)
        if rank == 3:
            return (rank, int(value))
        return (rank,)

    items = [searchable_document(d, i, (revisions or {}).get(i, 1), T0, T0) for i, d in sorted(docs.items())]
    # stable sorts from the last key to the first
    for key in reversed([*sort, SortKey(f("thingId"), True)]):
        items.sort(key=lambda d: value_key(get_at(d, key.field.pointer)), reverse=not key.ascending)
    return [d["thingId"] for d in items]


async def page_through(
    store: Store, sort: tuple[SortKey, ...], size: int, *, reader: str = READER, **kw: Any
) -> list[str]:
    """Every hit, ``size`` at a time, the cursor being the last hit's sort values (as the search service
    builds it from the searchable document)."""
    keys = (*sort, SortKey(f("thingId"), True))
    out: list[str] = []
    after: tuple[Any, ...] | None = None
    for _ in range(100):
        hits = await store.search(SearchRequest(readers=(reader,), sort=keys, after=after, limit=size, **kw))
        out.extend(h.state.entity_id for h in hits)
        if len(hits) < size:
            return out
        last = hits[-1].state
        document = searchable_document(last.doc, last.entity_id, last.revision, last.created, last.modified)
        after = tuple(get_at(document, k.field.pointer) for k in keys)
    raise AssertionError("pagination does not end")


@pytest.mark.parametrize("ascending", [True, False])
async def test_sort_mixed_types_and_missing(store: Store, ascending: bool) -> None:
    await readable(store)
    docs = {
        f"org.test:{i:02}": thing(f"org.test:{i:02}", attributes={"n": v}) for i, v in enumerate(SORT_VALUES)
    }
    docs["org.test:99"] = thing("org.test:99")  # missing: ties with null
    docs["org.test:98"] = thing("org.test:98", attributes={"n": {"deeper": 1}})
    docs["org.test:97"] = thing("org.test:97", attributes=[1])  # "attributes/n" through an array: missing
    for doc in docs.values():
        await put(store, doc)
    sort = (SortKey(f("attributes/n"), ascending),)
    expected = reference_order(docs, sort)
    hits = await store.search(SearchRequest(readers=(READER,), sort=sort, limit=100))
    assert [h.state.entity_id for h in hits] == expected
    for size in (1, 3, 7):
        assert await page_through(store, sort, size) == expected


async def test_sort_by_several_keys_and_stored_fields(store: Store) -> None:
    await readable(store)
    docs: dict[str, dict[str, Any]] = {}
    revisions: dict[str, int] = {}
    for i in range(24):
        attributes: dict[str, Any] = {"group": ["x", "y", None, 2][i % 4]}
        if i % 5:
            attributes["rank"] = (i * 7) % 6
        thing_id = f"org.test:t{i:02}"
        docs[thing_id] = thing(thing_id, attributes=attributes)
        revisions[thing_id] = 1 + (i * 5) % 3
        await put(store, docs[thing_id], revision=revisions[thing_id], expected=0)
    sorts = [
        (SortKey(f("attributes/group"), True), SortKey(f("attributes/rank"), False)),
        (SortKey(f("attributes/rank"), False), SortKey(f("attributes/group"), False)),
        (SortKey(f("_revision"), False), SortKey(f("attributes/rank"), True)),
        (SortKey(f("thingId"), False),),
        (SortKey(f("namespace"), True), SortKey(f("attributes/nothing"), False)),
    ]
    for sort in sorts:
        expected = reference_order(docs, sort, revisions)
        for size in (4, 5, 200):
            assert await page_through(store, sort, size) == expected, (sort, size)


async def test_pagination_with_a_filter_and_after_a_key_stops(store: Store) -> None:
    await readable(store)
    docs = {
        f"org.test:{i:02}": thing(f"org.test:{i:02}", attributes={"n": i % 4, "odd": i % 2})
        for i in range(20)
    }
    for doc in docs.values():
        await put(store, doc)
    query = cmp("eq", "attributes/odd", 1)
    sort = (SortKey(f("attributes/n"), False),)
    pages = await page_through(store, sort, 3, filter=query)
    matching = {k: v for k, v in docs.items() if v["attributes"]["odd"] == 1}
    assert pages == reference_order(matching, sort)
    # sort keys after thingId decide nothing (it is unique)
    after_id = (SortKey(f("thingId"), True), SortKey(f("attributes/n"), True))
    hits = await store.search(
        SearchRequest(readers=(READER,), sort=after_id, after=("org.test:17", 0), limit=5)
    )
    assert [h.state.entity_id for h in hits] == ["org.test:18", "org.test:19"]


# -- policy readers -------------------------------------------------------------------------------------


async def test_readers_and_uniform(store: Store) -> None:
    await store.set_policy_readers(
        [
            PolicyReaders("p:uniform", ("user:a",), True),
            PolicyReaders("p:partial", ("user:a", "user:b"), False),
        ]
    )
    await put(store, thing("t:1", policy_id="p:uniform"))
    await put(store, thing("t:2", policy_id="p:partial"))
    await put(store, thing("t:3", policy_id="p:unknown"))
    await put(store, thing("t:4", policy_id=None))

    hits = await store.search(SearchRequest(readers=("user:a",), limit=10))
    assert [(h.state.entity_id, h.uniform) for h in hits] == [("t:1", True), ("t:2", False)]
    assert await found(store, readers=["user:b"]) == ["t:2"]
    assert await found(store, readers=["user:c"]) == []
    assert await found(store, readers=["user:c", "user:b"]) == ["t:2"]
    assert await found(store, readers=[]) == []

    n, to_verify = await store.count(SearchRequest(readers=("user:a",)))
    assert n == 1 and [h.state.entity_id for h in to_verify] == ["t:2"]
    n, to_verify = await store.count(SearchRequest(readers=("user:a",), filter=cmp("eq", "thingId", "t:2")))
    assert n == 0 and [(h.state.entity_id, h.uniform) for h in to_verify] == [("t:2", False)]

    # a change of readers applies to the next search
    await store.set_policy_readers([PolicyReaders("p:uniform", ("user:c",), True)])
    assert await found(store, readers=["user:a"]) == ["t:2"]
    assert await found(store, readers=["user:c"]) == ["t:1"]
    await store.set_policy_readers([PolicyReaders("p:unknown", ("user:a",), True)])
    assert await found(store, readers=["user:a"]) == ["t:2", "t:3"]
    await store.set_policy_readers([PolicyReaders("p:unknown", (), True)])
    assert await found(store, readers=["user:a"]) == ["t:2"]


async def test_readers_follow_policy_writes_and_policy_changes(store: Store) -> None:
    policy_doc = {"policyId": "p:new", "entries": {}}
    policy = EntityState("p:new", 1, policy_doc, T0, T0)
    doc = thing("t:1", policy_id="p:new", attributes={"x": 1})
    # a Thing created together with its policy, in one commit
    await store.commit(
        [
            EntityWrite("policies", 0, policy, {}, PolicyReaders("p:new", ("user:a",), True)),
            EntityWrite("things", 0, EntityState("t:1", 1, doc, T0, T0), {}),
        ]
    )
    assert await found(store, readers=["user:a"]) == ["t:1"]
    # the policy changes, its Things follow
    changed = EntityState("p:new", 2, policy_doc, T0, T0)
    await store.commit([EntityWrite("policies", 1, changed, {}, PolicyReaders("p:new", ("user:b",), False))])
    hits = await store.search(SearchRequest(readers=("user:b",), limit=10))
    assert [(h.state.entity_id, h.uniform) for h in hits] == [("t:1", False)]
    # a policy write without readers keeps the index
    await store.commit([EntityWrite("policies", 2, EntityState("p:new", 3, policy_doc, T0, T0), {})])
    assert await found(store, readers=["user:b"]) == ["t:1"]
    # the Thing moves to another policy
    await readable(store, "p:other", "user:c")
    moved = thing("t:1", policy_id="p:other", attributes={"x": 1})
    await put(store, moved, revision=2)
    assert await found(store, readers=["user:b"]) == []
    assert await found(store, readers=["user:c"]) == ["t:1"]
    # back, then the policy is deleted: nobody finds the Thing
    await put(store, doc, revision=3)
    await store.commit([EntityWrite("policies", 3, EntityState("p:new", 4, None, T0, T0), {})])
    assert await found(store, readers=["user:b"]) == []


async def test_a_conflicting_policy_commit_changes_no_readers(store: Store) -> None:
    await readable(store, "p:1", "user:a")
    await put(store, thing("t:1", policy_id="p:1"))
    policy = EntityState("p:1", 5, {"policyId": "p:1"}, T0, T0)
    with pytest.raises(RevisionConflict):
        await store.commit([EntityWrite("policies", 4, policy, {}, PolicyReaders("p:1", ("user:z",), True))])
    assert await found(store, readers=["user:a"]) == ["t:1"]
    assert await found(store, readers=["user:z"]) == []


def _telemetry_value(i: int, step: int) -> Any:
    """A value of each JSON type in turn, as a batch of telemetry may bring them."""
    return [i / 10 + step, f"s{i}-{step}", i % 3 == 0, [i, "x", step], None, 2**40 + i][i % 6]


def _document_update(doc: dict[str, Any], expected: int, value: Any) -> tuple[EntityWrite, dict[str, Any]]:
    new = {**doc, "attributes": {**doc["attributes"], "v": value}}
    state = EntityState(new["thingId"], expected + 1, new, T0, T1)
    write = EntityWrite(
        "things",
        expected,
        state,
        {"revision": expected + 1},
        previous_doc=doc,
        previous_known=True,
        changed_at=("attributes", "v"),
    )
    return write, new


async def test_a_batch_of_document_updates_keeps_the_index_right(store: Store) -> None:
    """commit_each() with hundreds of one-write groups, as a connection's batch makes them (the SQLite store
    applies those together, a chunk of rows per statement): each group's compare-and-set on its own, and the
    search index of every written Thing, values of every type, agrees with the evaluator."""
    await readable(store)
    docs = {
        f"org.test:{i:03}": thing(f"org.test:{i:03}", attributes={"v": i, "keep": i % 4}) for i in range(180)
    }
    for doc in docs.values():
        await put(store, doc)
    groups: list[list[EntityWrite]] = []
    stale = {f"org.test:{i:03}" for i in range(0, 180, 10)}
    revision = {thing_id: 1 for thing_id in docs}
    for i, (thing_id, doc) in enumerate(docs.items()):
        # a stale one expects revision 5 of a Thing at revision 1
        expected = 5 if thing_id in stale else 1
        write, new = _document_update(doc, expected, _telemetry_value(i, 1))
        group = [write]
        if i % 7 == 3:  # several messages for one Thing: a value, another, the first again
            for value in ("other", _telemetry_value(i, 1)):
                write, new = _document_update(new, expected + len(group), value)
                group.append(write)
        if thing_id not in stale:
            docs[thing_id], revision[thing_id] = new, 1 + len(group)
        groups.append(group)
    # a later group of the same batch for a Thing already written: applied after the first one
    again, docs["org.test:001"] = _document_update(docs["org.test:001"], 2, "again")
    groups.append([again])
    revision["org.test:001"] = 3

    outcomes = await store.commit_each(groups)

    assert [i for i, o in enumerate(outcomes) if o is not None] == [int(t[-3:]) for t in sorted(stale)]
    assert all(isinstance(o, RevisionConflict) for o in outcomes if o is not None)
    written = await store.get_many("things", list(docs))
    assert {i: (s.revision, s.doc) for i, s in written.items()} == {
        i: (revision[i], d) for i, d in docs.items()
    }
    assert [e["revision"] for e in await store.journal("things", "org.test:001")] == [1, 2, 3]
    assert [e["revision"] for e in await store.journal("things", "org.test:003")] == [1, 2, 3, 4]
    assert [e["revision"] for e in await store.journal("things", "org.test:010")] == [1]
    assert [e["revision"] for e in await store.journal("things", "org.test:080")] == [1]  # a stale chain
    queries: list[Query] = [
        cmp("eq", "attributes/v", 0.1 + 1),
        cmp("eq", "attributes/v", 12.1),
        cmp("eq", "attributes/v", "s7-1"),
        cmp("eq", "attributes/v", "again"),
        cmp("eq", "attributes/v", "other"),
        cmp("eq", "attributes/v", True),
        cmp("eq", "attributes/v", False),
        cmp("eq", "attributes/v", "x"),
        cmp("eq", "attributes/v", 2**40 + 5),
        cmp("eq", "attributes/v", 20),
        cmp("eq", "attributes/v", 17),  # the value a chain replaced
        cmp("gt", "attributes/v", 250),
        cmp("lt", "attributes/v", 3),
        Exists(f("attributes/v")),
        Not(Exists(f("attributes/v"))),
        cmp("eq", "attributes/keep", 3),
    ]
    for query in queries:
        assert await found(store, query) == evaluated(docs, query), query


async def test_limit(store: Store) -> None:
    await readable(store)
    for i in range(7):
        await put(store, thing(f"org.test:{i}"))
    assert len(await store.search(SearchRequest(readers=(READER,), limit=3))) == 3
    assert await store.search(SearchRequest(readers=(READER,), limit=0)) == []


# -- SQLite: indexes do the work, and the index stays small ---------------------------------------------


async def test_sqlite_predicates_use_the_index(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        await readable(store)
        for i in range(50):
            features = {"f": {"properties": {"t": i}}}
            await put(store, thing(f"org.test:{i}", attributes={"x": i, "s": f"s{i}"}, features=features))
        queries: list[Query] = [
            cmp("eq", "attributes/x", 3),
            cmp("gt", "features/f/properties/t", 40),
            cmp("lt", "features/*/properties/t", 2),
            cmp("like", "attributes/s", "s4*"),
            In(f("attributes/s"), ("s1", "s2")),
        ]
        for query in queries:
            plan = "\n".join(await store.explain(SearchRequest(readers=(READER,), filter=query)))
            # the predicate is a range of the (path, v) key, and it drives the lookup of the Things
            assert "SEARCH search_values USING PRIMARY KEY (path=? AND v" in plan, plan
            assert "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
            assert "SCAN" not in plan, plan
        sort = (SortKey(f("attributes/x"), False),)
        plan = "\n".join(await store.explain(SearchRequest(readers=(READER,), filter=queries[1], sort=sort)))
        # the sort value is read from the candidate's JSON, the filter still drives
        assert "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
        assert "SCAN" not in plan, plan
    finally:
        await store.close()


async def test_sqlite_bulk_statements_seek_every_row(sqlite_path: str) -> None:
    """The writer's statements of many rows (sqlite_bulk) find each row through a key, never by scanning."""
    store = SqliteStore(sqlite_path)
    await store.open()  # the schema
    await store.close()
    conn = sqlite3.connect(sqlite_path)
    try:
        for statement, width in (
            (sqlite_bulk.update_docs_statement, 5),
            (sqlite_bulk.delete_values_statement, 3),
        ):
            for rows in (1, 7, sqlite_bulk.CHUNK):
                params = [f"x{i}" if i % width == 0 else i for i in range(rows * width)]
                plan = "\n".join(
                    row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement(rows)}", params)
                )
                assert "SCAN things" not in plan and "SCAN search_values" not in plan, plan
                assert "USING INDEX sqlite_autoindex_things_1 (id=?)" in plan or (
                    "USING PRIMARY KEY (path=? AND v=? AND thing=?)" in plan
                ), plan
    finally:
        conn.close()


@pytest.mark.parametrize("count", [0, 1, 5, 255, 256, 257, 300, 1000, 1025])
def test_sqlite_bulk_chunks_cover_every_row_in_few_statements(count: int) -> None:
    split = list(sqlite_bulk.chunks(count))
    assert sum(taken for taken, _ in split) == count
    assert all(taken <= size <= sqlite_bulk.CHUNK and size & (size - 1) == 0 for taken, size in split)
    assert all(size < 2 * taken for taken, size in split)  # less padding than rows
    assert len(split) == -(-count // sqlite_bulk.CHUNK)


async def test_sqlite_storage_per_typical_thing(sqlite_path: str) -> None:
    store = SqliteStore(sqlite_path)
    await store.open()
    count = 400
    try:
        await readable(store)
        for i in range(count):
            await put(store, typical_thing(i))
    finally:
        await store.close()
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("VACUUM")
        sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall())
    # the Thing (doc and columns) and its search index, with all their indexes; not the journal of events
    thing_storage = sum(size for name, size in sizes.items() if "things" in name or "search_" in name)
    assert thing_storage / count <= 2048, sizes


def typical_thing(i: int) -> dict[str, Any]:
    """A Thing as the seeds have them: a few attributes, two features with some properties."""
    return thing(
        f"org.eclipse.ditto.sensors:sensor-{i:05}",
        policy_id="org.eclipse.ditto.sensors:policy",
        definition="org.eclipse.ditto:sensor:1.0.0",
        attributes={
            "manufacturer": "ACME",
            "model": f"T-{i % 7}",
            "serial": f"SN-{i:08}",
            "location": {"building": f"B{i % 3}", "floor": i % 5, "room": f"R{i % 40}"},
            "installed": "2024-03-01T08:00:00Z",
            "tags": ["indoor", "temperature"],
        },
        features={
            "temperature": {
                "definition": ["org.eclipse.ditto:temperature:1.0.0"],
                "properties": {"value": 20.5 + i % 10, "unit": "°C", "lastUpdate": "2024-05-01T10:00:00Z"},
            },
            "battery": {"properties": {"level": 80 + i % 20, "charging": i % 2 == 0}},
        },
    )


async def test_sqlite_file_of_the_layout_before_search_is_migrated(sqlite_path: str) -> None:
    """A file written before search existed (``things`` keyed by id, no index) gains the search layout and
    an index of its live Things when opened; they are found once their policy's readers are set."""
    os.makedirs(os.path.dirname(sqlite_path), exist_ok=True)
    old = sqlite3.connect(sqlite_path)
    for table in ("things", "policies"):
        old.execute(
            f"CREATE TABLE {table} (id TEXT PRIMARY KEY, namespace TEXT NOT NULL, revision INTEGER NOT NULL, "
            "deleted INTEGER NOT NULL, created TEXT NOT NULL, modified TEXT NOT NULL, doc TEXT)"
        )
        old.execute(f"CREATE INDEX {table}_live_ns ON {table} (namespace, id) WHERE deleted = 0")
    old.execute(
        "CREATE TABLE journal (collection TEXT NOT NULL, entity_id TEXT NOT NULL, revision INTEGER NOT NULL, "
        "event TEXT NOT NULL, PRIMARY KEY (collection, entity_id, revision)) WITHOUT ROWID"
    )
    rows = [
        ("org.test:a", 0, '{"thingId":"org.test:a","policyId":"org.test:policy","attributes":{"x":1}}'),
        ("org.test:b", 0, '{"thingId":"org.test:b","policyId":"org.test:policy","attributes":{"x":2}}'),
        ("org.test:gone", 1, None),
    ]
    for thing_id, deleted, doc in rows:
        old.execute(
            "INSERT INTO things VALUES (?, 'org.test', 2, ?, ?, ?, ?)", (thing_id, deleted, T0, T0, doc)
        )
    old.commit()
    old.close()

    store = SqliteStore(sqlite_path)
    await store.open()
    try:
        assert await found(store) == []  # no policy index yet
        await readable(store)
        assert await found(store) == ["org.test:a", "org.test:b"]
        assert await found(store, cmp("eq", "attributes/x", 2)) == ["org.test:b"]
        # the migrated Things go on as any other: an update re-indexes from the stored JSON
        await put(store, thing("org.test:a", attributes={"x": 3}), revision=3)
        assert await found(store, cmp("eq", "attributes/x", 1)) == []
        assert await found(store, cmp("eq", "attributes/x", 3)) == ["org.test:a"]
        got = await store.get("things", "org.test:gone")
        assert got is not None and got.revision == 2 and got.doc is None
    finally:
        await store.close()
