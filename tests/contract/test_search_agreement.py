"""Every backend's search agrees with the in-memory evaluator (``ditto_compat.rql.evaluator``), which defines
what an RQL filter means: for random small Things stored through ``commit`` and random queries, the ids the
database returns are exactly those for which the evaluator says True. A second property pages through random
sorts with the keyset cursor and compares with the order :mod:`ditto_compat.persistence.query_common`
defines."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ditto_compat.domain.entity import EntityState
from ditto_compat.model.pointer import format_pointer, parse_pointer
from ditto_compat.persistence.ports import EntityWrite, PolicyReaders, SearchRequest, Store
from ditto_compat.persistence.query_sqlite import index_changes, index_entries
from ditto_compat.rql.ast import And, Compare, Empty, Exists, Field, In, Not, Or, Query, SortKey
from ditto_compat.rql.evaluator import evaluate
from ditto_compat.rql.fields import searchable_document
from tests.contract.test_search import NOW, T0, page_through, reference_order

READER = "user:agree"
# Examples share the store of one test: each gets its own namespace, and searches only there.
_examples = itertools.count()

# Keys that stress paths: decimal keys (array positions), and keys MongoDB must escape or SQLite's JSON paths
# cannot spell.
KEYS = st.sampled_from(["a", "b", "0", "1", "a.b", "$c", "x~y", 'q"k', "s/l"])
STRINGS = st.sampled_from(["", "a", "b", "ab", "A", "a\n", "ä", "Ä", "1", "a.b", "a*", "b?", "%_"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.0, 1.0, 1.5, -2.5, 2**53, 2**62]),
    STRINGS,
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=8,
)
FEATURE = st.fixed_dictionaries(
    {},
    optional={
        "properties": st.dictionaries(KEYS, JSON, max_size=3),
        "desiredProperties": st.dictionaries(KEYS, JSON, max_size=2),
        "definition": st.lists(st.sampled_from(["d:a:1", "d:b:2"]), max_size=2),
    },
)
THING = st.fixed_dictionaries(
    {},
    optional={
        "attributes": st.dictionaries(KEYS, JSON, max_size=4),
        "features": st.dictionaries(st.sampled_from(["f1", "f2", "0"]), FEATURE, max_size=2),
        "definition": st.sampled_from(["d:x:1", "d:y:1"]),
    },
)

# JSON pointers of the keys above (so "x~y" is x~0y, "s/l" is s~1l)
_K = [format_pointer((k,))[1:] for k in ["a", "b", "0", "1", "a.b", "$c", "x~y", 'q"k', "s/l"]]
VALUE_PATHS = [
    *(f"attributes/{k}" for k in _K),
    "attributes/a/a",
    "attributes/a/b",
    "attributes/a/0",
    "attributes/0/a",
    "attributes/a/0/b",
    "attributes/a.b/$c",
    "features/f1/properties/a",
    "features/0/properties/0",
    "features/*/properties/a",
    "features/*/properties/a/b",
    "features/*/desiredProperties/b",
    "features/*/definition",
    "features/f1/definition",
    "definition",
    "policyId",
    "thingId",
    "namespace",
    "_revision",
    "_modified",
]
EXISTS_PATHS = [*VALUE_PATHS, "features/f1", "features/*", "features/*/properties", "features/f2/properties"]
LITERALS = st.one_of(
    SCALARS, st.sampled_from(["*", "a*", "?", "a?", "*b", "A*", "*.*", "?*", "d:*", "agree*"])
)


def _field(path: str) -> Field:
    return Field(parse_pointer(path))


LEAF: st.SearchStrategy[Query] = st.one_of(
    st.builds(
        Compare,
        st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "like", "ilike"]),
        st.sampled_from(VALUE_PATHS).map(_field),
        LITERALS,
    ),
    st.builds(
        In, st.sampled_from(VALUE_PATHS).map(_field), st.lists(LITERALS, min_size=1, max_size=3).map(tuple)
    ),
    st.builds(Exists, st.sampled_from(EXISTS_PATHS).map(_field)),
    st.builds(Empty, st.sampled_from(EXISTS_PATHS).map(_field)),
)
QUERY: st.SearchStrategy[Query] = st.recursive(
    LEAF,
    lambda q: st.one_of(
        st.builds(Not, q),
        st.lists(q, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(q, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
    ),
    max_leaves=5,
)

AGREEMENT = settings(
    max_examples=60,
    deadline=None,
    # one store for all examples of a test, on purpose: every example has its own namespace
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _modified(i: int) -> str:
    return f"2024-05-0{1 + i % 2}T10:00:00.000Z"


async def _store_things(
    store: Store, bodies: list[dict[str, Any]], updates: list[dict[str, Any] | None] | None = None
) -> tuple[str, dict[str, dict[str, Any]], dict[str, int]]:
    """Commit the Things (then, where ``updates`` has a body, replace it): the namespace, the final JSON and
    revision of each Thing."""
    namespace = f"agree.e{next(_examples)}"
    # a policy per example: a change of readers rewrites only that example's Things
    policy_id = f"{namespace}:policy"
    await store.set_policy_readers([PolicyReaders(policy_id, (READER,), True)])
    docs: dict[str, dict[str, Any]] = {}
    revisions: dict[str, int] = {}
    for i, body in enumerate(bodies):
        thing_id = f"{namespace}:t{i}"
        doc = {"thingId": thing_id, "policyId": policy_id, **body}
        # revisions and timestamps vary too, so that _revision and _modified discriminate
        state = EntityState(thing_id, 1 + i % 3, doc, T0, _modified(i))
        await store.commit([EntityWrite("things", 0, state, {"revision": state.revision})])
        update = updates[i] if updates is not None and i < len(updates) else None
        if update is not None:
            # an update is indexed as the difference to the stored JSON: it must end where a create would
            doc = {"thingId": thing_id, "policyId": policy_id, **update}
            state = EntityState(thing_id, state.revision + 1, doc, T0, _modified(i))
            await store.commit(
                [EntityWrite("things", state.revision - 1, state, {"revision": state.revision})]
            )
        docs[thing_id] = doc
        revisions[thing_id] = state.revision
    return namespace, docs, revisions


@AGREEMENT
@given(
    bodies=st.lists(THING, min_size=1, max_size=5),
    updates=st.lists(st.none() | THING, max_size=5),
    query=QUERY,
)
async def test_search_returns_what_the_evaluator_accepts(
    store: Store, bodies: list[dict[str, Any]], updates: list[dict[str, Any] | None], query: Query
) -> None:
    namespace, docs, revisions = await _store_things(store, bodies, updates)
    expected = sorted(
        thing_id
        for i, (thing_id, doc) in enumerate(docs.items())
        if evaluate(query, searchable_document(doc, thing_id, revisions[thing_id], T0, _modified(i)), now=NOW)
    )
    hits = await store.search(
        SearchRequest(readers=(READER,), filter=query, namespaces=(namespace,), limit=50)
    )
    assert [h.state.entity_id for h in hits] == expected
    counted, to_verify = await store.count(
        SearchRequest(readers=(READER,), filter=query, namespaces=(namespace,))
    )
    assert counted == len(expected) and to_verify == []


# Several bounds on one path, over values that are scalars or arrays of them: the SQLite translation serves
# these with one index range, which must still let different elements of an array pass different bounds.
RANGE_VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3))
RANGE_BOUND: st.SearchStrategy[Query] = st.builds(
    Compare,
    st.sampled_from(["gt", "ge", "lt", "le"]),
    st.just(_field("attributes/a")),
    st.one_of(st.integers(-3, 3), st.sampled_from([1.5, -2.5, "a", "b", True, False, None])),
)


@AGREEMENT
@given(
    values=st.lists(RANGE_VALUES, min_size=1, max_size=6),
    bounds=st.lists(RANGE_BOUND, min_size=2, max_size=3),
    extra=st.none() | LEAF,
)
async def test_bounds_on_one_path_agree_with_the_evaluator(
    store: Store, values: list[Any], bounds: list[Query], extra: Query | None
) -> None:
    query = And((*bounds, extra) if extra is not None else tuple(bounds))
    namespace, docs, revisions = await _store_things(store, [{"attributes": {"a": v}} for v in values])
    expected = sorted(
        thing_id
        for i, (thing_id, doc) in enumerate(docs.items())
        if evaluate(query, searchable_document(doc, thing_id, revisions[thing_id], T0, _modified(i)), now=NOW)
    )
    hits = await store.search(
        SearchRequest(readers=(READER,), filter=query, namespaces=(namespace,), limit=50)
    )
    assert [h.state.entity_id for h in hits] == expected


SORT_PATHS = [
    "attributes/a",
    "attributes/a/b",
    "attributes/0",
    f"attributes/{_K[7]}",
    "definition",
    "_revision",
]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bodies=st.lists(THING, min_size=1, max_size=7),
    sort=st.lists(
        st.builds(SortKey, st.sampled_from(SORT_PATHS).map(_field), st.booleans()), min_size=1, max_size=2
    ).map(tuple),
    size=st.integers(1, 4),
)
@example(  # found in CI on MongoDB: a field sorted twice must not lose the first key's direction
    bodies=[{}, {}],
    sort=(SortKey(_field("_revision"), False), SortKey(_field("_revision"), True)),
    size=1,
)
async def test_keyset_pages_follow_the_defined_order(
    store: Store, bodies: list[dict[str, Any]], sort: tuple[SortKey, ...], size: int
) -> None:
    namespace, docs, revisions = await _store_things(store, bodies)
    expected = reference_order(docs, sort, revisions)
    assert await page_through(store, sort, size, reader=READER, namespaces=(namespace,)) == expected


@settings(max_examples=300, deadline=None)
@given(before=THING, after=THING)
def test_index_changes_turn_one_index_into_the_other(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The SQLite writer updates a Thing's rows by :func:`index_changes`; applied to the rows of ``before``
    they must give exactly the rows of ``after``."""
    rows = index_entries(before)
    removed, changed = index_changes(before, after)
    for entry in removed:
        del rows[entry]
    rows.update(changed)
    assert rows == index_entries(after)
    assert not set(removed) & set(changed)
