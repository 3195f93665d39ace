"""Ditto headers that steer a command (``httpapi-concepts`` "Conditional requests", ``basic-acknowledgements``,
``protocol-specification`` headers)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.errors import HeaderInvalid, TimeoutInvalid
from ditto_compat.model.headers import (
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    CommandHeaders,
    IfEqual,
    new_correlation_id,
    parse_bool,
    parse_entity_tags,
    parse_if_equal,
    parse_timeout,
)

# --------------------------------------------------------------------------------------------- timeout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # the documented forms: "42s", "250ms", "1m"; a bare number is seconds
        ("42", 42.0),
        ("42s", 42.0),
        ("250ms", 0.25),
        ("1m", 60.0),
        # 0 is fire-and-forget
        ("0", 0.0),
        ("0s", 0.0),
        ("0ms", 0.0),
        ("1ms", 0.001),
        # the maximum (60 s) itself is allowed
        ("60", 60.0),
        ("60s", 60.0),
        ("60000ms", 60.0),
    ],
)
def test_parse_timeout(text: str, seconds: float) -> None:
    assert parse_timeout(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["61", "61s", "60001ms", "2m", "3600", "999999999"])
def test_timeout_above_60_seconds_is_invalid(text: str) -> None:
    with pytest.raises(TimeoutInvalid) as info:
        parse_timeout(text)
    assert info.value.status == 400
    assert info.value.error_code == "timeout.invalid"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "s",
        "ms",
        "-1",
        "-1s",
        "42x",
        "42sec",
        "4 2",
        "1e3",
        "1h",
        "1d",
        "ms42",
        "NaN",
        "∞",
        # non-ASCII digits
        "\u0664\u0662",
        "\uff14\uff12s",
    ],
)
def test_garbage_timeout_is_invalid(text: str) -> None:
    with pytest.raises(TimeoutInvalid):
        parse_timeout(text)


def test_timeout_maximum_can_be_raised() -> None:
    assert parse_timeout("90", maximum=120.0) == 90.0
    assert parse_timeout("2m", maximum=120.0) == 120.0
    with pytest.raises(TimeoutInvalid):
        parse_timeout("3m", maximum=120.0)


def test_default_and_maximum_timeout_are_60_seconds() -> None:
    assert DEFAULT_TIMEOUT_S == 60.0
    assert MAX_TIMEOUT_S == 60.0


@given(st.integers(min_value=0, max_value=60))
def test_seconds_with_and_without_unit_agree(seconds: int) -> None:
    assert parse_timeout(str(seconds)) == parse_timeout(f"{seconds}s") == parse_timeout(f"{seconds * 1000}ms")


@given(st.integers(min_value=61, max_value=10**9))
def test_every_timeout_above_the_maximum_is_invalid(seconds: int) -> None:
    with pytest.raises(TimeoutInvalid):
        parse_timeout(f"{seconds}s")


# -------------------------------------------------------------------------------------------- if-equal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("update", IfEqual.UPDATE),
        ("skip", IfEqual.SKIP),
        ("skip-minimizing-merge", IfEqual.SKIP_MINIMIZING_MERGE),
    ],
)
def test_parse_if_equal(text: str, expected: IfEqual) -> None:
    assert parse_if_equal(text) is expected


@pytest.mark.parametrize("text", ["", "overwrite", "skip-minimizing", "skip_minimizing_merge", "true"])
def test_invalid_if_equal(text: str) -> None:
    with pytest.raises(HeaderInvalid) as info:
        parse_if_equal(text)
    assert info.value.status == 400
    assert info.value.error_code == "header.invalid"
    assert "if-equal" in info.value.message


# ------------------------------------------------------------------------------------------- booleans


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False)])
def test_parse_bool(text: str, expected: bool) -> None:
    assert parse_bool("response-required", text) is expected


@pytest.mark.parametrize("text", ["", "yes", "no", "1", "0", "truthy"])
def test_invalid_bool(text: str) -> None:
    with pytest.raises(HeaderInvalid) as info:
        parse_bool("response-required", text)
    assert info.value.error_code == "header.invalid"
    assert "response-required" in info.value.message


# -------------------------------------------------------------------------------------- entity tags


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ('"rev:1"', ('"rev:1"',)),
        ('"rev:1", "rev:2"', ('"rev:1"', '"rev:2"')),
        ('"rev:1","rev:2"', ('"rev:1"', '"rev:2"')),
        ('  "rev:1" ,   "rev:2"  ', ('"rev:1"', '"rev:2"')),
        ('"hash:4f2a"', ('"hash:4f2a"',)),
        ('W/"rev:1"', ('W/"rev:1"',)),
        ('"rev:1", W/"rev:2"', ('"rev:1"', 'W/"rev:2"')),
    ],
)
def test_parse_entity_tag_lists(text: str, tags: tuple[str, ...]) -> None:
    matcher = parse_entity_tags("if-match", text)
    assert not matcher.any
    assert matcher.tags == tags


@pytest.mark.parametrize("text", ["*", " * "])
def test_parse_asterisk(text: str) -> None:
    matcher = parse_entity_tags("if-none-match", text)
    assert matcher.any
    assert matcher.tags == ()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "rev:1",
        '"rev:1',
        'rev:1"',
        '"rev:1" "rev:2"',
        ',"rev:1"',
        '"rev:1",,"rev:2"',
        "W/rev:1",
        'w/"rev:1"',
        'W/ "rev:1"',
        '*, "rev:1"',
        '"rev:1", *',
        "**",
        "garbage",
    ],
)
def test_garbage_entity_tags_are_invalid(text: str) -> None:
    with pytest.raises(HeaderInvalid) as info:
        parse_entity_tags("if-match", text)
    assert info.value.status == 400
    assert info.value.error_code == "header.invalid"
    assert "if-match" in info.value.message


def test_if_match_list_matches_any_of_its_tags() -> None:
    matcher = parse_entity_tags("if-match", '"rev:1", "rev:2"')
    assert matcher.matches('"rev:1"')
    assert matcher.matches('"rev:2"')
    assert not matcher.matches('"rev:3"')
    assert not matcher.matches('"hash:rev:1"')


def test_asterisk_matches_any_existing_entity_but_not_a_missing_one() -> None:
    # PUT If-Match: * on a missing entity -> 412; If-None-Match: * on a missing one -> 201
    for header in ("if-match", "if-none-match"):
        matcher = parse_entity_tags(header, "*")
        assert matcher.matches('"rev:7"')
        assert matcher.matches('"hash:abc"')
        assert not matcher.matches(None)


def test_no_tag_matches_a_missing_entity() -> None:
    assert not parse_entity_tags("if-match", '"rev:1"').matches(None)
    assert not parse_entity_tags("if-none-match", '"rev:1"').matches(None)


def test_if_none_match_compares_weakly() -> None:
    # RFC 7232 section 3.2: If-None-Match uses the weak comparison
    assert parse_entity_tags("if-none-match", 'W/"rev:1"').matches('"rev:1"')
    assert parse_entity_tags("if-none-match", '"rev:1"').matches('W/"rev:1"')
    assert parse_entity_tags("if-none-match", '"rev:1"').matches('"rev:1"')
    assert not parse_entity_tags("if-none-match", 'W/"rev:1"').matches('"rev:2"')


@pytest.mark.parametrize("header", ["if-match", "If-Match", "IF-MATCH"])
def test_if_match_compares_strongly(header: str) -> None:
    # RFC 7232 section 3.1 (Ditto's IfMatchPreconditionHeader uses strongMatch): a weak tag never matches
    assert parse_entity_tags(header, '"rev:1"').matches('"rev:1"')
    assert not parse_entity_tags(header, 'W/"rev:1"').matches('"rev:1"')
    assert not parse_entity_tags(header, '"rev:1"').matches('W/"rev:1"')
    assert parse_entity_tags(header, 'W/"rev:1", "rev:1"').matches('"rev:1"')


@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=5, unique=True))
def test_revision_tag_lists(revisions: list[int]) -> None:
    text = ", ".join(f'"rev:{r}"' for r in revisions)
    matcher = parse_entity_tags("if-match", text)
    assert matcher.tags == tuple(f'"rev:{r}"' for r in revisions)
    assert all(matcher.matches(f'"rev:{r}"') for r in revisions)
    assert not matcher.matches(f'"rev:{max(revisions) + 1}"')


# ------------------------------------------------------------------------------------ command headers


def test_command_header_defaults() -> None:
    headers = CommandHeaders()
    assert headers.response_required is True
    assert headers.timeout_s == 60.0
    assert headers.if_match is None
    assert headers.if_none_match is None
    assert headers.if_equal is IfEqual.UPDATE
    assert headers.allow_policy_lockout is False
    assert headers.dry_run is False
    uuid.UUID(headers.correlation_id)


def test_every_command_gets_its_own_correlation_id() -> None:
    assert CommandHeaders().correlation_id != CommandHeaders().correlation_id
    assert new_correlation_id() != new_correlation_id()
    uuid.UUID(new_correlation_id())
