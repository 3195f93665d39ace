"""JSON in and out (``basic-errors``: unparsable JSON is ``400 json.invalid``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import JsonInvalid
from ditto_compat.model.jsonio import canonical, dumps, loads


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"thingId":"ns:x","attributes":{"a":1}}', {"thingId": "ns:x", "attributes": {"a": 1}}),
        ('{"a": [1, 2.5, true, false, null, "s"]}', {"a": [1, 2.5, True, False, None, "s"]}),
        (b"42", 42),
        (b'"text"', "text"),
        (b"null", None),
        (b"true", True),
        ('{"unit": "°C"}'.encode(), {"unit": "°C"}),
        (b'{"a": "\\u00e4"}', {"a": "ä"}),
    ],
)
def test_loads(data: bytes | str, expected: Any) -> None:
    assert loads(data) == expected


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"{'a': 1}", b'{"a": 1,}', b"[1, 2", b"undefined", b"NaN", b'{"a": 1} x', b"\xff\xfe", "{"],
)
def test_invalid_json_is_json_invalid(data: bytes | str) -> None:
    with pytest.raises(JsonInvalid) as info:
        loads(data)
    assert info.value.status == 400
    assert info.value.error_code == "json.invalid"


def test_dumps_is_compact_utf8() -> None:
    assert dumps({"a": [1, None, True], "unit": "°C"}) == '{"a":[1,null,true],"unit":"°C"}'.encode()


def test_dumps_keeps_key_order() -> None:
    assert dumps({"b": 1, "a": 2}) == b'{"b":1,"a":2}'


def test_canonical_sorts_keys_at_every_level() -> None:
    assert canonical({"b": {"y": 1, "x": 2}, "a": 3}) == b'{"a":3,"b":{"x":2,"y":1}}'
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})


@pytest.mark.parametrize(
    ("left", "right"), [(True, 1), (False, 0), ([True], [1]), ({"a": 1}, {"a": "1"}), (None, {})]
)
def test_canonical_distinguishes_json_types(left: Any, right: Any) -> None:
    assert canonical(left) != canonical(right)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=15,
)


@given(_json)
def test_dumps_then_loads_round_trips(value: Any) -> None:
    assert loads(dumps(value)) == value
    assert loads(dumps(value).decode()) == value


@given(st.dictionaries(st.text(max_size=6), _json, max_size=6))
def test_canonical_ignores_insertion_order(value: dict[str, Any]) -> None:
    reversed_order = dict(reversed(list(value.items())))
    assert canonical(reversed_order) == canonical(value)
    assert loads(canonical(value)) == value
