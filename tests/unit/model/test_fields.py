"""The ``fields`` selector (``httpapi-concepts`` "Field selectors", Ditto's ``ImmutableJsonFieldSelectorFactory``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import JsonFieldSelectorInvalid, JsonPointerInvalid
from ditto_compat.model.fields import FieldSelector, parse_fields, project
from ditto_compat.model.pointer import get_at

# ------------------------------------------------------------------------------------------------ parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("attributes", (("attributes",),)),
        ("/attributes", (("attributes",),)),
        ("attributes/", (("attributes",),)),
        ("thingId,attributes", (("thingId",), ("attributes",))),
        (
            "attributes/complex/some,attributes/complex/serialNo",
            (("attributes", "complex", "some"), ("attributes", "complex", "serialNo")),
        ),
        (
            "attributes/complex(some,serialNo)",
            (("attributes", "complex", "some"), ("attributes", "complex", "serialNo")),
        ),
        (
            "attributes(a,b/c),features/*/properties/on",
            (("attributes", "a"), ("attributes", "b", "c"), ("features", "*", "properties", "on")),
        ),
        (
            "features(f1(properties(x,y)),f2)",
            (
                ("features", "f1", "properties", "x"),
                ("features", "f1", "properties", "y"),
                ("features", "f2"),
            ),
        ),
        # the example of ImmutableJsonFieldSelectorFactory's Javadoc
        (
            "thingId,attributes(acceleration,someData(foo,bar/baz)),acl,features/key",
            (
                ("thingId",),
                ("attributes", "acceleration"),
                ("attributes", "someData", "foo"),
                ("attributes", "someData", "bar", "baz"),
                ("acl",),
                ("features", "key"),
            ),
        ),
        # a slash before the parenthesis and leading slashes inside it are tolerated
        ("attributes/(a,/b)", (("attributes", "a"), ("attributes", "b"))),
        # pointers are JSON pointers: ~1 and ~0 are unescaped
        ("attributes/a~1b", (("attributes", "a/b"),)),
        # duplicates are dropped, the first occurrence keeps its place
        ("attributes,thingId,attributes", (("attributes",), ("thingId",))),
        ("attributes(a,a),attributes/a", (("attributes", "a"),)),
        # special fields are plain keys for the selector
        ("_revision,_modified,_policy", (("_revision",), ("_modified",), ("_policy",))),
    ],
)
def test_parse_fields(text: str, expected: FieldSelector) -> None:
    assert parse_fields(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "attributes(a",
        "attributes(a,b(c)",
        "attributes)a(",
        "a)",
        "(",
        "features(f1(properties(x,y),f2)",
        "features(f1(properties(x,y))),f2)",
        "a(b))(",
    ],
)
def test_unbalanced_parentheses_are_invalid(text: str) -> None:
    with pytest.raises(JsonFieldSelectorInvalid) as info:
        parse_fields(text)
    assert info.value.status == 400
    assert info.value.error_code == "json.fieldselector.invalid"
    assert text in info.value.message


@pytest.mark.parametrize("text", ["", ",", " , "])
def test_an_empty_selector_is_invalid(text: str) -> None:
    with pytest.raises(JsonFieldSelectorInvalid):
        parse_fields(text)


def test_text_after_a_closing_parenthesis_is_invalid() -> None:
    with pytest.raises(JsonFieldSelectorInvalid):
        parse_fields("attributes(a)b")


def test_an_empty_key_in_a_selected_pointer_is_invalid() -> None:
    with pytest.raises(JsonPointerInvalid):
        parse_fields("attributes//a")


_segment = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_-]{0,6}\Z")


@given(st.lists(st.lists(_segment, min_size=1, max_size=4), min_size=1, max_size=5))
def test_comma_separated_pointers_parse_to_themselves(paths: list[list[str]]) -> None:
    text = ",".join("/".join(path) for path in paths)
    expected = tuple(dict.fromkeys(tuple(path) for path in paths))
    assert parse_fields(text) == expected


@given(
    st.lists(_segment, min_size=1, max_size=3),
    st.lists(st.lists(_segment, min_size=1, max_size=3), min_size=1),
)
def test_parentheses_distribute_the_prefix(prefix: list[str], inner: list[list[str]]) -> None:
    grouped = "/".join(prefix) + "(" + ",".join("/".join(path) for path in inner) + ")"
    flat = ",".join("/".join(prefix + path) for path in inner)
    assert parse_fields(grouped) == parse_fields(flat)


# --------------------------------------------------------------------------------------------- project

# the Thing of httpapi-concepts "Field selectors"
THING: dict[str, Any] = {
    "thingId": "org.eclipse.ditto:thing",
    "policyId": "org.eclipse.ditto:policy",
    "definition": "org.eclipse.ditto:HeatingDevice:2.1.0",
    "attributes": {
        "manufacturer": "ACME corp",
        "complex": {"some": False, "serialNo": 4711, "misc": "foo"},
    },
    "features": {
        "lamp": {"properties": {"on": True, "color": "blue"}},
        "infrared-lamp": {"properties": {"on": False, "color": "red"}},
    },
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # the examples of httpapi-concepts, one by one
        (
            "attributes",
            {
                "attributes": {
                    "manufacturer": "ACME corp",
                    "complex": {"some": False, "serialNo": 4711, "misc": "foo"},
                }
            },
        ),
        ("attributes/manufacturer", {"attributes": {"manufacturer": "ACME corp"}}),
        ("attributes/complex/serialNo", {"attributes": {"complex": {"serialNo": 4711}}}),
        (
            "attributes/complex/some,attributes/complex/serialNo",
            {"attributes": {"complex": {"some": False, "serialNo": 4711}}},
        ),
        ("attributes/complex(some,serialNo)", {"attributes": {"complex": {"some": False, "serialNo": 4711}}}),
        (
            "attributes/complex/misc,features/lamp/properties/on",
            {"attributes": {"complex": {"misc": "foo"}}, "features": {"lamp": {"properties": {"on": True}}}},
        ),
        (
            "features/*/properties/on",
            {
                "features": {
                    "lamp": {"properties": {"on": True}},
                    "infrared-lamp": {"properties": {"on": False}},
                }
            },
        ),
        # more
        ("thingId,policyId", {"thingId": "org.eclipse.ditto:thing", "policyId": "org.eclipse.ditto:policy"}),
        (
            "features(lamp(properties(color)),infrared-lamp/properties/on)",
            {
                "features": {
                    "lamp": {"properties": {"color": "blue"}},
                    "infrared-lamp": {"properties": {"on": False}},
                }
            },
        ),
        ("features/*", {"features": THING["features"]}),
    ],
)
def test_project_doc_examples(fields: str, expected: dict[str, Any]) -> None:
    assert project(THING, parse_fields(fields)) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("attributes/unknown", {}),
        ("attributes/manufacturer,attributes/unknown", {"attributes": {"manufacturer": "ACME corp"}}),
        ("_revision,thingId", {"thingId": "org.eclipse.ditto:thing"}),
        # through a scalar: missing
        ("attributes/manufacturer/x", {}),
        ("features/*/properties/missing", {}),
        ("features/nope/properties/on", {}),
    ],
)
def test_project_leaves_out_missing_paths(fields: str, expected: dict[str, Any]) -> None:
    assert project(THING, parse_fields(fields)) == expected


def test_wildcard_skips_features_without_the_path() -> None:
    doc = {"features": {"a": {"properties": {"on": True}}, "b": {"properties": {}}, "c": None}}
    assert project(doc, parse_fields("features/*/properties/on")) == {
        "features": {"a": {"properties": {"on": True}}}
    }


def test_wildcard_without_features_selects_nothing() -> None:
    assert project({"thingId": "ns:x"}, parse_fields("features/*/properties/on")) == {}
    assert project({"features": None}, parse_fields("features/*/properties/on")) == {}


@pytest.mark.parametrize(
    ("doc", "fields", "expected"),
    [
        # "*" is a wildcard only in the feature-id position; elsewhere it is a literal key
        ({"attributes": {"*": 1, "a": 2}}, "attributes/*", {"attributes": {"*": 1}}),
        ({"attributes": {"a": 2}}, "attributes/*", {}),
        ({"*": 1, "a": 2}, "*", {"*": 1}),
        (
            {"features": {"f": {"properties": {"*": 1, "on": 2}}}},
            "features/f/properties/*",
            {"features": {"f": {"properties": {"*": 1}}}},
        ),
    ],
)
def test_star_is_only_a_feature_wildcard(doc: dict[str, Any], fields: str, expected: dict[str, Any]) -> None:
    assert project(doc, parse_fields(fields)) == expected


def test_project_keeps_null_values() -> None:
    doc = {"attributes": {"a": None, "b": 1}}
    assert project(doc, parse_fields("attributes/a")) == {"attributes": {"a": None}}


@pytest.mark.parametrize(
    "fields", ["attributes/complex,attributes/complex/some", "attributes/complex/some,attributes/complex"]
)
def test_a_broader_selection_wins_over_a_narrower_one(fields: str) -> None:
    assert project(THING, parse_fields(fields)) == {"attributes": {"complex": THING["attributes"]["complex"]}}


def test_project_does_not_mutate_the_document() -> None:
    before = copy.deepcopy(THING)
    project(
        THING, parse_fields("attributes/complex/some,attributes/complex,features/*/properties/on,thingId")
    )
    assert before == THING


_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
_keys = st.sampled_from(["a", "b", "c", "d"])
_docs = st.recursive(
    _json_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4), max_leaves=12
).filter(lambda d: isinstance(d, dict))
_paths = st.lists(st.lists(_keys, min_size=1, max_size=3).map(tuple), min_size=1, max_size=4)


@given(_docs, _paths)
def test_projection_is_a_sub_document_holding_every_selected_value(
    doc: dict[str, Any], paths: list[tuple[str, ...]]
) -> None:
    before = copy.deepcopy(doc)
    selector = tuple(dict.fromkeys(paths))
    result = project(doc, selector)
    assert doc == before
    for path in selector:
        assert get_at(result, path) == get_at(doc, path)
    _assert_sub_document(result, doc)


def _assert_sub_document(part: Any, whole: Any) -> None:
    if isinstance(part, dict):
        assert isinstance(whole, dict)
        for key, value in part.items():
            assert key in whole
            _assert_sub_document(value, whole[key])
    else:
        assert part == whole
