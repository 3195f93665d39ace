"""JSON merge patch (RFC 7396) with Ditto's regex deletion (``httpapi-concepts`` "Merge updates")."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import MergeInvalid
from ditto_compat.model.jsonio import canonical
from ditto_compat.model.merge import merge_patch, minimized, regex_of_key, remove_nulls

# ----------------------------------------------------------------------------------- RFC 7396 Appendix A

RFC_7396_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7396_APPENDIX_A)
def test_rfc_7396_appendix_a(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_7396_APPENDIX_A)
def test_merge_patch_does_not_mutate_its_inputs(target: Any, patch: Any, expected: Any) -> None:
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert target == target_before
    assert patch == patch_before


def test_rfc_7396_section_3_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_httpapi_concepts_merge_update_example() -> None:
    thing = {
        "thingId": "ns:thing",
        "policyId": "ns:policy",
        "attributes": {"location": {"longitude": 47.682170, "latitude": 9.386372}, "serialNo": "0000000"},
        "features": {
            "temperature": {"properties": {"value": 25.43, "unit": "°C"}},
            "pressure": {"properties": {"value": 1013.25, "unit": "hPa"}},
        },
    }
    patch = {
        "attributes": {"location": None, "manufacturer": "Bosch", "serialNo": "23091861"},
        "features": {
            "temperature": {"properties": {"value": 26.89}},
            "pressure": {"properties": {"unit": None}},
            "humidity": {"properties": {"value": 55, "unit": "%"}},
        },
    }
    assert merge_patch(thing, patch) == {
        "thingId": "ns:thing",
        "policyId": "ns:policy",
        "attributes": {"manufacturer": "Bosch", "serialNo": "23091861"},
        "features": {
            "temperature": {"properties": {"value": 26.89, "unit": "°C"}},
            "pressure": {"properties": {"value": 1013.25}},
            "humidity": {"properties": {"value": 55, "unit": "%"}},
        },
    }


def test_merging_into_nothing_drops_the_deletions() -> None:
    assert merge_patch(None, {"a": {"b": None, "c": 1}, "d": None}) == {"a": {"c": 1}}


# --------------------------------------------------------------------------------------- regex deletion


def test_httpapi_concepts_regex_example() -> None:
    target = {
        "features": {
            "aggregated-history": {
                "properties": {"2021-12": 99.1, "2022-01": 100.2, "2022-02": 101.5, "2023-02": 104.0}
            }
        }
    }
    patch = {"features": {"aggregated-history": {"properties": {"{{ ~2022-.*~ }}": None, "2023-03": 105.21}}}}
    assert merge_patch(target, patch) == {
        "features": {
            "aggregated-history": {"properties": {"2021-12": 99.1, "2023-02": 104.0, "2023-03": 105.21}}
        }
    }


@pytest.mark.parametrize(
    "key", ["{{ ~^temp.*~ }}", "{{ /^temp.*/ }}", "{{~^temp.*~}}", "{{   /^temp.*/   }}"]
)
def test_regex_key_deletes_matching_siblings(key: str) -> None:
    target = {"temp": 1, "temperature": 2, "temp_2": 3, "humidity": 4, "atemp": 5}
    assert merge_patch(target, {key: None}) == {"humidity": 4, "atemp": 5}


@pytest.mark.parametrize("key", ["{{ ~^temp~ }}", "{{ /^temp/ }}"])
def test_anchored_regex_key(key: str) -> None:
    target = {"temp": 1, "xtemp": 2, "humidity": 3}
    assert merge_patch(target, {key: None}) == {"xtemp": 2, "humidity": 3}


def test_regex_deletion_happens_before_the_rest_of_the_patch() -> None:
    target = {"2022-01": 1, "2022-02": 2, "other": 3}
    patch = {"{{ ~2022-.*~ }}": None, "2022-03": 30}
    assert merge_patch(target, patch) == {"other": 3, "2022-03": 30}


def test_regex_deletion_only_affects_its_own_level() -> None:
    target = {"temp": 1, "nested": {"temp": 2}}
    assert merge_patch(target, {"{{ ~temp~ }}": None}) == {"nested": {"temp": 2}}
    assert merge_patch(target, {"nested": {"{{ ~temp~ }}": None}}) == {"temp": 1, "nested": {}}


def test_regex_key_matching_nothing_changes_nothing() -> None:
    target = {"a": 1}
    assert merge_patch(target, {"{{ ~zzz~ }}": None}) == {"a": 1}


def test_regex_key_with_a_non_null_value_is_a_plain_key() -> None:
    target = {"temp": 1}
    assert merge_patch(target, {"{{ ~temp~ }}": 5}) == {"temp": 1, "{{ ~temp~ }}": 5}


def test_regex_key_in_a_patch_applied_to_nothing() -> None:
    assert merge_patch(None, {"{{ ~x~ }}": None, "a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("{{ ~2022-.*~ }}", "2022-.*"),
        ("{{ /2022-.*/ }}", "2022-.*"),
        ("{{~a~}}", "a"),
        ("{{ ~a/b~ }}", "a/b"),
    ],
)
def test_regex_of_key(key: str, pattern: str) -> None:
    compiled = regex_of_key(key)
    assert compiled is not None
    assert compiled.pattern == pattern


@pytest.mark.parametrize("key", ["temp", "{{ temp }}", "{ ~temp~ }", "{{ ~temp }}", "~temp~", "{{ ~temp/ }}"])
def test_plain_keys_are_no_regex(key: str) -> None:
    assert regex_of_key(key) is None


def test_invalid_regex_is_a_merge_error() -> None:
    with pytest.raises(MergeInvalid) as info:
        merge_patch({"a": 1}, {"{{ ~(unclosed~ }}": None})
    assert info.value.status == 400
    assert info.value.error_code == "things:merge.invalid"


# ------------------------------------------------------------------------------------------ remove_nulls


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"a": None, "b": 1}, {"b": 1}),
        ({"a": {"b": None, "c": {"d": None}}}, {"a": {"c": {}}}),
        ({"{{ ~x~ }}": None, "a": [None, 1]}, {"a": [None, 1]}),
        (5, 5),
        ([None], [None]),
    ],
)
def test_remove_nulls(patch: Any, expected: Any) -> None:
    assert remove_nulls(patch) == expected


# ------------------------------------------------------------------------------------------- minimized


@pytest.mark.parametrize(
    ("target", "patch", "changed", "reduced"),
    [
        # nothing changes
        ({"a": 1}, {"a": 1}, False, {}),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}, False, {}),
        ({"a": 1}, {"b": None}, False, {}),
        ({"a": {"x": 1}}, {"a": {}}, False, {}),
        ({"a": {"x": 1}}, {}, False, {}),
        # only the changing parts stay
        ({"a": 1, "b": 2}, {"a": 1, "b": 3}, True, {"b": 3}),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, True, {"a": {"c": 3}}),
        ({"a": 1}, {"a": None, "b": None}, True, {"a": None}),
        ({"a": 1}, {"b": {"c": 1}}, True, {"b": {"c": 1}}),
        ({"a": 5}, {"a": {"b": 1}}, True, {"a": {"b": 1}}),
        ({"a": 5}, {"a": {}}, True, {"a": {}}),
        ({"a": [1, 2]}, {"a": [2, 1]}, True, {"a": [2, 1]}),
        # deleting an existing null is a change (the key disappears)
        ({"a": None}, {"a": None}, True, {"a": None}),
        # JSON types are compared strictly: true is not 1, false is not 0
        ({"a": True}, {"a": 1}, True, {"a": 1}),
        ({"a": 0}, {"a": False}, True, {"a": False}),
        ({"a": [True]}, {"a": [1]}, True, {"a": [1]}),
        ({"a": {"b": 1}}, {"a": {"b": True}}, True, {"a": {"b": True}}),
        # regex deletions are kept
        ({"a": 1}, {"{{ ~a~ }}": None, "b": 2}, True, {"{{ ~a~ }}": None, "b": 2}),
        # non-objects
        (1, 1, False, 1),
        (1, 2, True, 2),
        (None, {"a": 1}, True, {"a": 1}),
        ({"a": 1}, [1], True, [1]),
    ],
)
def test_minimized(target: Any, patch: Any, changed: bool, reduced: Any) -> None:
    assert minimized(target, patch) == (changed, reduced)


# ------------------------------------------------------------------------------------ merge properties

_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["x", "y"])
_keys = st.sampled_from(["a", "b", "c"])
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=8,
)
_objects = st.dictionaries(_keys, _values, max_size=3)


@given(_objects, _objects)
def test_minimized_patch_has_the_same_effect(target: dict[str, Any], patch: dict[str, Any]) -> None:
    changed, reduced = minimized(target, patch)
    merged = merge_patch(target, patch)
    # canonical(): JSON equality, where true is not 1
    assert canonical(merge_patch(target, reduced)) == canonical(merged)
    assert changed == (canonical(merged) != canonical(target))


@given(_objects, _objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


@given(_values, _objects)
def test_merge_patch_result_has_no_nulls_from_the_patch(target: Any, patch: dict[str, Any]) -> None:
    merged = merge_patch(target, patch)
    for key, value in patch.items():
        if value is None:
            assert key not in merged
        elif not isinstance(value, dict):
            assert merged[key] == value
