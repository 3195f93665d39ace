"""The search index diff of a change to one resource (``index_changes`` with ``changed_at``) equals the diff of
the whole documents, for the copy-on-write changes the strategies make (``model/pointer.py``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ditto_compat.model.pointer import MISSING, Pointer, delete_at, get_at, set_at
from ditto_compat.persistence.query_sqlite import index_changes

KEYS = st.sampled_from(["attributes", "features", "definition", "policyId", "a", "b", "properties", "p"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2) | st.text(max_size=3)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
DOCS = st.dictionaries(KEYS, JSON, max_size=4)
PATHS = st.lists(KEYS, min_size=1, max_size=4).map(tuple)


def normalized(diff: tuple[list[Any], dict[Any, Any]]) -> tuple[set[Any], dict[Any, Any]]:
    return set(diff[0]), diff[1]


@settings(max_examples=400, deadline=None)
@given(DOCS, PATHS, JSON, st.booleans())
def test_a_change_at_one_path_diffs_like_the_whole_documents(
    doc: dict[str, Any], path: Pointer, value: Any, delete: bool
) -> None:
    if delete:
        if get_at(doc, path) is MISSING:
            return
        new = delete_at(doc, path)
    else:
        new = set_at(doc, path, value)
    assert normalized(index_changes(doc, new, changed_at=path)) == normalized(index_changes(doc, new))
