"""Namespaced entity ids and JSON keys (``basic-namespaces-and-names``, Ditto's ``RegexPatterns``)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import JsonKeyInvalid, PolicyIdInvalid, ThingIdInvalid
from ditto_compat.model.ids import (
    DEFAULT_NAMESPACE,
    MAX_ID_LENGTH,
    check_key,
    check_namespace,
    check_policy_id,
    check_thing_id,
    generate_thing_id,
    is_valid_entity_id,
    is_valid_key,
    name_of,
    namespace_of,
)

VALID_IDS = [
    # the "Valid IDs" of basic-namespaces-and-names
    "org.eclipse.ditto:smart-coffee-1",
    "foo:bar",
    "org.eclipse.ditto_42:smart-coffeee",
    "com.some-domain.ditto-rocks:foobar",
    "org.eclipse:admin-policy",
    "org.eclipse:admin policy",
    # the "Valid names" of the same page
    "ns:ditto",
    "ns:smart-coffee-1",
    "ns:foo%2Fbar",
    "ns:foo bar",
    "ns:foo+bar%20",
    # the "Valid namespaces" of the same page
    "com.google:x",
    "foo.bar_42:x",
    # the namespace may be empty in ID_REGEX
    ":foo",
    "org.eclipse.ditto:x",
    # the name may contain colons: the namespace ends at the first one
    "ns:a:b",
    "ns::",
    # names may contain characters above 0xFF
    "ns:€uro",
    "ns:日本",
    # namespace segments start with a letter and continue with \w
    "A:x",
    "a1.b2-c3_d:x",
    "a-b-c:x",
]

INVALID_IDS = [
    "",
    ":",
    "nocolon",
    "ns:",  # empty name
    "1ns:x",  # namespace starts with a digit
    "_ns:x",
    "-ns:x",
    ".ns:x",
    "ns.:x",
    "ns-:x",
    "ns..a:x",
    "ns.-a:x",
    "ns.1a:x",  # every segment starts with a letter
    "ns x:y",
    "ns/x:y",
    "nä:x",  # \w is ASCII-only in Java
    "ns:a/b",  # no slash in the name
    "ns:/",
    "ns:a\x00",
    "ns:a\x1f",
    "ns:a\n",
    "ns:a\t",
    "ns:a\x7f",
    "ns:ä",  # 0x7F-0xFF are excluded
    "ns:\xff",
]


@pytest.mark.parametrize("entity_id", VALID_IDS)
def test_valid_entity_ids(entity_id: str) -> None:
    assert is_valid_entity_id(entity_id)
    assert check_thing_id(entity_id) == entity_id
    assert check_policy_id(entity_id) == entity_id


@pytest.mark.parametrize("entity_id", INVALID_IDS)
def test_invalid_entity_ids(entity_id: str) -> None:
    assert not is_valid_entity_id(entity_id)


@pytest.mark.parametrize("entity_id", INVALID_IDS)
def test_check_thing_id_raises_things_id_invalid(entity_id: str) -> None:
    with pytest.raises(ThingIdInvalid) as info:
        check_thing_id(entity_id)
    assert info.value.status == 400
    assert info.value.error_code == "things:id.invalid"


@pytest.mark.parametrize("entity_id", INVALID_IDS)
def test_check_policy_id_raises_policies_id_invalid(entity_id: str) -> None:
    with pytest.raises(PolicyIdInvalid) as info:
        check_policy_id(entity_id)
    assert info.value.status == 400
    assert info.value.error_code == "policies:id.invalid"


def test_max_id_length_is_256() -> None:
    assert MAX_ID_LENGTH == 256


@pytest.mark.parametrize(
    ("namespace", "name_length"),
    [("ns", 253), ("", 255), ("org.eclipse.ditto", 256 - len("org.eclipse.ditto:"))],
)
def test_id_length_limit_is_inclusive(namespace: str, name_length: int) -> None:
    at_limit = f"{namespace}:{'n' * name_length}"
    assert len(at_limit) == 256
    assert is_valid_entity_id(at_limit)
    over_limit = at_limit + "n"
    assert len(over_limit) == 257
    assert not is_valid_entity_id(over_limit)
    with pytest.raises(ThingIdInvalid):
        check_thing_id(over_limit)


def test_long_namespace_counts_towards_the_limit() -> None:
    namespace = "a" * 250
    assert is_valid_entity_id(f"{namespace}:{'b' * 5}")
    assert not is_valid_entity_id(f"{namespace}:{'b' * 6}")


# ------------------------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize(
    "namespace", ["", "org.eclipse.ditto", "com.some-domain", "com.google", "foo.bar_42"]
)
def test_valid_namespaces(namespace: str) -> None:
    assert check_namespace(namespace) == namespace


@pytest.mark.parametrize("namespace", ["1abc", "a.", ".a", "a..b", "a:b", "a b", "a/b", "ä"])
def test_invalid_namespaces(namespace: str) -> None:
    with pytest.raises(ThingIdInvalid):
        check_namespace(namespace)


def test_check_namespace_raises_the_given_error() -> None:
    with pytest.raises(PolicyIdInvalid):
        check_namespace("1abc", PolicyIdInvalid)


@pytest.mark.parametrize(
    ("entity_id", "namespace", "name"),
    [
        ("org.eclipse.ditto:smart-coffee-1", "org.eclipse.ditto", "smart-coffee-1"),
        (":foo", "", "foo"),
        ("ns:a:b", "ns", "a:b"),
    ],
)
def test_namespace_and_name_split_at_the_first_colon(entity_id: str, namespace: str, name: str) -> None:
    assert namespace_of(entity_id) == namespace
    assert name_of(entity_id) == name


@given(
    st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_]{0,8}(?:[.-][a-zA-Z][a-zA-Z0-9_]{0,8}){0,3}\Z"),
    st.text(
        alphabet=st.characters(exclude_characters="/", exclude_categories=["Cs"]).filter(
            lambda c: not ("\x00" <= c <= "\x1f" or "\x7f" <= c <= "\xff")
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_generated_namespaces_and_names_form_valid_ids(namespace: str, name: str) -> None:
    entity_id = f"{namespace}:{name}"
    assert is_valid_entity_id(entity_id)
    assert namespace_of(entity_id) == namespace
    assert name_of(entity_id) == name


# ------------------------------------------------------------------------------------------- generation


def test_generated_thing_id_uses_the_default_namespace_and_a_uuid() -> None:
    thing_id = generate_thing_id(None)
    assert DEFAULT_NAMESPACE == "org.eclipse.ditto"
    assert namespace_of(thing_id) == "org.eclipse.ditto"
    uuid.UUID(name_of(thing_id))
    assert is_valid_entity_id(thing_id)


def test_generated_thing_id_uses_the_given_namespace() -> None:
    thing_id = generate_thing_id("com.acme")
    assert namespace_of(thing_id) == "com.acme"
    uuid.UUID(name_of(thing_id))


def test_generated_thing_ids_are_unique() -> None:
    assert len({generate_thing_id(None) for _ in range(50)}) == 50


# -------------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "key", ["on", "serialNo", "with space", "a:b", "a.b", "~", "{{ ~x~ }}", "€", "*", "_x"]
)
def test_valid_keys(key: str) -> None:
    assert is_valid_key(key)
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "a/b", "/", "a\x00", "\x1f", "a\n", "\x7f", "ä", "ß"])
def test_invalid_keys(key: str) -> None:
    assert not is_valid_key(key)
    with pytest.raises(JsonKeyInvalid) as info:
        check_key(key)
    assert info.value.status == 400
    assert info.value.error_code == "json.key.invalid"
