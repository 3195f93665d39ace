"""Search options (``basic-search`` "Sorting and paging options", ``httpapi-search``; ``RqlOptionParser``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ditto_compat.errors import DittoError, SearchOptionInvalid
from ditto_compat.rql.ast import Field, Options, SortKey
from ditto_compat.rql.options import parse_option_params, parse_options
from ditto_compat.rql.parser import render_options, render_sort


def asc(prop: str) -> SortKey:
    return SortKey(Field(tuple(prop.split("/"))), True)


def desc(prop: str) -> SortKey:
    return SortKey(Field(tuple(prop.split("/"))), False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Options()),
        ("  ", Options()),
        ("sort(+thingId)", Options(sort=(asc("thingId"),))),
        ("sort(+attributes/location)", Options(sort=(asc("attributes/location"),))),
        ("sort(-attributes/location,+thingId)", Options(sort=(desc("attributes/location"), asc("thingId")))),
        ("sort(-/attributes/location)", Options(sort=(desc("attributes/location"),))),
        ("size(1)", Options(size=1)),
        ("size(200)", Options(size=200)),
        ("size(0010)", Options(size=10)),  # Integer.valueOf
        ("size(10),cursor(AbC-_09)", Options(size=10, cursor="AbC-_09")),
        ("cursor(AbC-_09)", Options(cursor="AbC-_09")),
        ("limit(0,25)", Options(limit=(0, 25))),
        ("limit(10,10)", Options(limit=(10, 10))),
        ("limit(+0,200)", Options(limit=(0, 200))),
        # the docs' combination of sort and limit
        ("sort(+thingId),limit(0,5)", Options(sort=(asc("thingId"),), limit=(0, 5))),
        (
            "sort(-_modified,+features/lamp/properties/on),size(5),cursor(x)",
            Options(sort=(desc("_modified"), asc("features/lamp/properties/on")), size=5, cursor="x"),
        ),
        (" size( 5 ) , sort( +thingId ) ", Options(sort=(asc("thingId"),), size=5)),
        ("sort(+attributes/a b)", Options(sort=(asc("attributes/a b"),))),
        (r"sort(+attributes/a\u002cb)", Options(sort=(asc("attributes/a,b"),))),
    ],
)
def test_parse_options(text: str, expected: Options) -> None:
    assert parse_options(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("size(0)", "size(n) -- n must be between 1 and 200"),
        ("size(201)", "size(n) -- n must be between 1 and 200"),
        ("size(" + "9" * 5000 + ")", "size(n) -- n must be between 1 and 200"),
        ("size(00000)", "size(n) -- n must be between 1 and 200"),
        ("size(-1)", "Invalid input '-', expected digits (line 1, column 6)"),
        ("size(+5)", "Invalid input '+', expected digits"),
        ("size(5.0)", "Invalid input '.', expected ')'"),
        ("size()", "Invalid input ')', expected digits"),
        ("size(5),size(6)", "The option 'size' must not be given more than once"),
        ("sort(+a),sort(-b)", "The option 'sort' must not be given more than once"),
        ("limit(0,5),size(5)", "The options 'size' and 'limit' must not be used together."),
        ("cursor(x),limit(0,5)", "The options 'cursor' and 'limit' must not be used together."),
        ("limit(-1,5)", "the offset must not be negative"),
        ("limit(0,0)", "the count must be between 1 and 200"),
        ("limit(0,201)", "the count must be between 1 and 200"),
        ("limit(0,-0)", "expected a number other than -0"),
        ("limit(0)", "Invalid input ')', expected ','"),
        ("limit(0.5,1)", "Invalid input '0.5', expected an integer"),
        ("limit(0,99999999999999999999)", "does not fit into a 64-bit integer"),
        ("sort(thingId)", "Invalid input 't', expected '+' or '-' (line 1, column 6)"),
        ("sort( thingId)", "Invalid input 't', expected '+' or '-'"),  # a "+" decoded to a space
        ("sort()", "Invalid input ')', expected '+' or '-'"),
        ("sort(+)", "Invalid input ')', expected a property"),
        ("sort(+a,)", "Invalid input ')', expected '+' or '-'"),
        ("sort(+a//b)", "Invalid property 'a//b'"),
        ("cursor()", "Invalid input ')', expected a property"),
        ("unknown(1)", "Invalid input 'u', expected 'cursor', 'limit', 'size' or 'sort' (line 1, column 1)"),
        ("size(5),", "Unexpected end of input"),
        ("size(5) size(6)", "Invalid input 's', expected ',' or end of input"),
        ("eq(a,1)", "Invalid input 'e'"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(SearchOptionInvalid) as raised:
        parse_options(text)
    assert raised.value.status == 400
    assert raised.value.error_code == "thing-search:search.option.invalid"
    assert message in raised.value.message, raised.value.message


def test_option_params_from_a_query_string_or_form_body() -> None:
    assert parse_option_params(["sort(+thingId)", "size(5)"]) == Options(sort=(asc("thingId"),), size=5)
    assert parse_option_params(["sort(+thingId),size(5)"]) == Options(sort=(asc("thingId"),), size=5)
    assert parse_option_params([]) == Options()
    assert parse_option_params(["", " "]) == Options()
    with pytest.raises(SearchOptionInvalid):
        parse_option_params(["size(5)", "size(6)"])


@pytest.mark.parametrize(
    "options",
    [
        Options(sort=(asc("thingId"),)),
        Options(sort=(desc("attributes/a,b"), asc("features/x/properties/ y")), size=10, cursor="abc"),
        Options(limit=(5, 20), sort=(desc("_modified"),)),
        Options(),
    ],
)
def test_render_options_round_trip(options: Options) -> None:
    assert parse_options(render_options(options)) == options


def test_render_sort_is_the_inside_of_a_sort_option() -> None:
    keys = (desc("attributes/a"), asc("thingId"))
    assert render_sort(keys) == "-attributes/a,+thingId"
    assert parse_options(f"sort({render_sort(keys)})").sort == keys


@given(st.text(max_size=40))
@settings(max_examples=500)
def test_random_text_parses_or_raises_the_ditto_error(text: str) -> None:
    try:
        parse_options(text)
    except DittoError as error:
        assert error.error_code == "thing-search:search.option.invalid"
