"""JSON pointers as Ditto uses them for resource paths (RFC 6901, ``httpapi-concepts``, ``basic-thing``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import JsonPointerInvalid
from ditto_compat.model.pointer import (
    MISSING,
    ROOT,
    Pointer,
    delete_at,
    format_pointer,
    get_at,
    parse_pointer,
    set_at,
)

# ------------------------------------------------------------------------------------------------ parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the root
        ("", ()),
        ("/", ()),
        # a leading slash is optional, a trailing slash is ignored
        ("attributes", ("attributes",)),
        ("/attributes", ("attributes",)),
        ("attributes/", ("attributes",)),
        ("/attributes/", ("attributes",)),
        ("/features/lamp/properties/on", ("features", "lamp", "properties", "on")),
        ("features/lamp/properties/on/", ("features", "lamp", "properties", "on")),
        ("/attributes/complex/serialNo", ("attributes", "complex", "serialNo")),
        # RFC 6901 escaping: ~0 is "~", ~1 is "/"
        ("/a~0b", ("a~b",)),
        ("/a~1b", ("a/b",)),
        ("/~0~1", ("~/",)),
        # "~01" is "~1" (not "/"): ~0 is decoded once, the result is not decoded again
        ("/~01", ("~1",)),
        ("/~10", ("/0",)),
        # a tilde not followed by 0 or 1 is kept literally
        ("/a~", ("a~",)),
        ("/a~2b", ("a~2b",)),
        # keys are taken as they are: spaces, colons, non-ASCII
        ("/ spaced key /x", (" spaced key ", "x")),
        ("/org.eclipse:key/€", ("org.eclipse:key", "€")),
    ],
)
def test_parse_pointer(text: str, expected: Pointer) -> None:
    assert parse_pointer(text) == expected


@pytest.mark.parametrize("text", ["//", "a//b", "/a//b", "///", "//a", "/a//", "a/b//c/d"])
def test_parse_pointer_rejects_empty_keys(text: str) -> None:
    with pytest.raises(JsonPointerInvalid) as info:
        parse_pointer(text)
    assert info.value.status == 400
    assert info.value.error_code == "json.pointer.invalid"
    assert text in info.value.message


# ----------------------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ((), "/"),
        (("attributes",), "/attributes"),
        (("features", "lamp", "properties", "on"), "/features/lamp/properties/on"),
        (("a~b",), "/a~0b"),
        (("a/b",), "/a~1b"),
        (("~1",), "/~01"),
        (("~/",), "/~0~1"),
    ],
)
def test_format_pointer(pointer: Pointer, expected: str) -> None:
    assert format_pointer(pointer) == expected


_keys = st.text(min_size=1, max_size=12)
_pointers = st.lists(_keys, max_size=6).map(tuple)


@given(_pointers)
def test_format_then_parse_round_trips(pointer: Pointer) -> None:
    text = format_pointer(pointer)
    assert text.startswith("/")
    assert parse_pointer(text) == pointer


@given(st.lists(_keys, min_size=1, max_size=6).map(tuple))
def test_leading_and_trailing_slash_are_optional(pointer: Pointer) -> None:
    text = format_pointer(pointer)
    assert parse_pointer(text[1:]) == pointer
    assert parse_pointer(text + "/") == pointer
    assert parse_pointer(text[1:] + "/") == pointer


# ---------------------------------------------------------------------------------------------- get_at

_THING: dict[str, Any] = {
    "thingId": "org.eclipse.ditto:lamp",
    "attributes": {
        "manufacturer": "ACME corp",
        "complex": {"some": False, "serialNo": 4711},
        "nothing": None,
        "list": [1, {"a": 2}],
    },
    "features": {"lamp": {"properties": {"on": True, "color": "blue"}}},
}


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ((), _THING),
        (("thingId",), "org.eclipse.ditto:lamp"),
        (("attributes", "complex", "serialNo"), 4711),
        (("attributes", "complex", "some"), False),
        (("features", "lamp", "properties"), {"on": True, "color": "blue"}),
        # a JSON null is a value, not a missing one
        (("attributes", "nothing"), None),
    ],
)
def test_get_at_existing(pointer: Pointer, expected: Any) -> None:
    assert get_at(_THING, pointer) == expected
    assert get_at(_THING, pointer) is not MISSING


@pytest.mark.parametrize(
    "pointer",
    [
        ("policyId",),
        ("attributes", "unknown"),
        ("features", "lamp", "properties", "on", "deeper"),  # through a boolean
        ("attributes", "manufacturer", "x"),  # through a string
        ("attributes", "nothing", "x"),  # through null
        ("attributes", "list", "0"),  # pointers do not index arrays
        ("attributes", "list", "1", "a"),
    ],
)
def test_get_at_missing(pointer: Pointer) -> None:
    assert get_at(_THING, pointer) is MISSING


def test_missing_is_falsy_and_named() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"


# ---------------------------------------------------------------------------------------------- set_at


def test_set_at_replaces_an_existing_value() -> None:
    doc = {"attributes": {"a": 1, "b": 2}}
    assert set_at(doc, ("attributes", "a"), 10) == {"attributes": {"a": 10, "b": 2}}


def test_set_at_creates_intermediate_objects() -> None:
    doc = {"thingId": "ns:x"}
    result = set_at(doc, ("features", "lamp", "properties", "on"), True)
    assert result == {"thingId": "ns:x", "features": {"lamp": {"properties": {"on": True}}}}


def test_set_at_replaces_non_object_intermediates() -> None:
    doc = {"attributes": {"location": "unknown", "list": [1, 2]}}
    result = set_at(doc, ("attributes", "location", "lat"), 47.6)
    result = set_at(result, ("attributes", "list", "x"), 1)
    assert result == {"attributes": {"location": {"lat": 47.6}, "list": {"x": 1}}}


def test_set_at_can_store_null() -> None:
    assert set_at({}, ("attributes", "a"), None) == {"attributes": {"a": None}}


def test_set_at_does_not_mutate_its_input() -> None:
    doc = {"attributes": {"a": {"b": 1}}, "features": {"f": {"properties": {"x": 1}}}}
    before = copy.deepcopy(doc)
    result = set_at(doc, ("attributes", "a", "c"), 2)
    assert doc == before
    assert result == {"attributes": {"a": {"b": 1, "c": 2}}, "features": {"f": {"properties": {"x": 1}}}}


def test_set_at_copies_only_along_the_path() -> None:
    doc = {"attributes": {"a": 1}, "features": {"f": {"properties": {}}}}
    result = set_at(doc, ("attributes", "a"), 2)
    assert result["features"] is doc["features"]
    assert result["attributes"] is not doc["attributes"]


def test_set_at_root_replaces_the_document() -> None:
    new = {"thingId": "ns:y"}
    assert set_at({"thingId": "ns:x"}, ROOT, new) == new


@pytest.mark.parametrize("value", [1, "x", None, [1], True])
def test_set_at_root_requires_an_object(value: Any) -> None:
    with pytest.raises(TypeError):
        set_at({}, ROOT, value)


_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
_docs = st.dictionaries(st.text(min_size=1, max_size=4), _json, max_size=4)


@given(_docs, st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4).map(tuple), _json)
def test_set_at_then_get_at_reads_the_value_back(doc: dict[str, Any], pointer: Pointer, value: Any) -> None:
    before = copy.deepcopy(doc)
    result = set_at(doc, pointer, value)
    assert get_at(result, pointer) == value
    assert doc == before


# ------------------------------------------------------------------------------------------- delete_at


def test_delete_at_removes_only_the_addressed_value() -> None:
    doc = {"attributes": {"a": 1, "b": {"c": 2, "d": 3}}}
    assert delete_at(doc, ("attributes", "b", "c")) == {"attributes": {"a": 1, "b": {"d": 3}}}


def test_delete_at_keeps_an_emptied_parent_object() -> None:
    assert delete_at({"attributes": {"a": 1}}, ("attributes", "a")) == {"attributes": {}}


def test_delete_at_does_not_mutate_its_input() -> None:
    doc = {"attributes": {"a": {"b": 1, "c": 2}}}
    before = copy.deepcopy(doc)
    result = delete_at(doc, ("attributes", "a", "b"))
    assert doc == before
    assert result == {"attributes": {"a": {"c": 2}}}


def test_delete_at_root_empties_the_document() -> None:
    assert delete_at({"thingId": "ns:x", "attributes": {}}, ROOT) == {}


@given(_docs, st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=4).map(tuple), _json)
def test_delete_at_undoes_set_at_on_a_new_key(doc: dict[str, Any], pointer: Pointer, value: Any) -> None:
    result = delete_at(set_at(doc, pointer, value), pointer)
    assert get_at(result, pointer) is MISSING


def test_parsing_is_cached_but_never_an_invalid_pointer_or_a_long_one() -> None:
    """Pointers are parsed once per text (model/pointer.py); an invalid text raises every time, and a text too long
    for the cache is parsed all the same."""
    assert parse_pointer("/features/f/properties/p") is parse_pointer("/features/f/properties/p")
    for _ in range(2):
        with pytest.raises(JsonPointerInvalid):
            parse_pointer("/a//b")
    long_key = "k" * 300
    assert parse_pointer(f"/attributes/{long_key}") == ("attributes", long_key)


def test_formatting_escapes_only_keys_that_need_it() -> None:
    assert format_pointer(("a", "b")) == "/a/b"
    assert format_pointer(("a/b", "c~d")) == "/a~1b/c~0d"
    assert format_pointer(("x", "")) == "/x/"
