"""RQL parsing and rendering (``basic-rql``; Ditto's ``RqlPredicateParser`` / ``RqlParserBase``)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ditto_compat.errors import DittoError, RqlExpressionInvalid
from ditto_compat.rql.ast import And, Compare, Empty, Exists, Field, In, Not, Or, Query, TimeNow
from ditto_compat.rql.parser import MAX_DEPTH, parse_rql, render, render_literal, render_property


def f(prop: str) -> Field:
    return Field(tuple(prop.split("/")))


# ------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the docs' examples
        (
            'and(eq(foo,"ditto"),lt(bar,10))',
            And((Compare("eq", f("foo"), "ditto"), Compare("lt", f("bar"), 10))),
        ),
        ('eq(attributes/location,"kitchen")', Compare("eq", f("attributes/location"), "kitchen")),
        ('eq(/attributes/location,"kitchen")', Compare("eq", f("attributes/location"), "kitchen")),
        ('ne(attributes/owner,"SID123")', Compare("ne", f("attributes/owner"), "SID123")),
        ('gt(thingId,"A000")', Compare("gt", f("thingId"), "A000")),
        ('ge(thingId,"A000")', Compare("ge", f("thingId"), "A000")),
        ('lt(thingId,"A000")', Compare("lt", f("thingId"), "A000")),
        ('le(thingId,"A000")', Compare("le", f("thingId"), "A000")),
        ('in(thingId,"A000","AB00","AZ99")', In(f("thingId"), ("A000", "AB00", "AZ99"))),
        ('in(thingId,"A000")', In(f("thingId"), ("A000",))),
        (
            'like(attributes/key1,"*known-chars-at-end")',
            Compare("like", f("attributes/key1"), "*known-chars-at-end"),
        ),
        (
            'ilike(attributes/key1,"just-som?-char?-unkn?wn")',
            Compare("ilike", f("attributes/key1"), "just-som?-char?-unkn?wn"),
        ),
        ("exists(features/feature_1)", Exists(f("features/feature_1"))),
        ("empty(attributes/tags)", Empty(f("attributes/tags"))),
        ("not(empty(attributes/tags))", Not(Empty(f("attributes/tags")))),
        (
            'or(empty(attributes/tags),eq(attributes/tags,"default"))',
            Or((Empty(f("attributes/tags")), Compare("eq", f("attributes/tags"), "default"))),
        ),
        ("or(exists(a))", Or((Exists(f("a")),))),
        # literals
        ("eq(a,0)", Compare("eq", f("a"), 0)),
        ("eq(a,+0)", Compare("eq", f("a"), 0)),
        ("eq(a,-1)", Compare("eq", f("a"), -1)),
        ("eq(a,+42)", Compare("eq", f("a"), 42)),
        ("eq(a,9223372036854775807)", Compare("eq", f("a"), 2**63 - 1)),
        ("eq(a,-9223372036854775808)", Compare("eq", f("a"), -(2**63))),
        ("eq(a,0.5)", Compare("eq", f("a"), 0.5)),
        ("eq(a,-0.5)", Compare("eq", f("a"), -0.5)),
        ("eq(a,-0.0)", Compare("eq", f("a"), -0.0)),
        ("eq(a,23.42)", Compare("eq", f("a"), 23.42)),
        ("eq(a,true)", Compare("eq", f("a"), True)),
        ("eq(a,false)", Compare("eq", f("a"), False)),
        ("eq(a,null)", Compare("eq", f("a"), None)),
        ('eq(a,"")', Compare("eq", f("a"), "")),
        ("eq(a,'')", Compare("eq", f("a"), "")),
        ("eq(a,'single \"quoted\"')", Compare("eq", f("a"), 'single "quoted"')),
        ('eq(a,"it\'s")', Compare("eq", f("a"), "it's")),
        ("gt(_modified,time:now)", Compare("gt", f("_modified"), TimeNow())),
        ("gt(a,time:now_epoch_millis)", Compare("gt", f("a"), TimeNow(epoch_millis=True))),
        (
            "in(a,1,2.5,'x',\"y\",true,false,null,time:now)",
            In(f("a"), (1, 2.5, "x", "y", True, False, None, TimeNow())),
        ),
        # string escapes
        (r'eq(a,"\"\\\/\b\f\n\r\t")', Compare("eq", f("a"), '"\\/\b\f\n\r\t')),
        (r"eq(a,'\'\\\/\b\f\n\r\t')", Compare("eq", f("a"), "'\\/\b\f\n\r\t")),
        (r'eq(a,"\u00fc\u00DF")', Compare("eq", f("a"), "üß")),
        (r'eq(a,"\uD83D\uDE00")', Compare("eq", f("a"), "😀")),  # a surrogate pair is one character
        ('eq(a,"😀 raw")', Compare("eq", f("a"), "😀 raw")),
        ('eq(a,"a,b)c(d")', Compare("eq", f("a"), "a,b)c(d")),
        # whitespace around tokens
        (" eq( a , 1 ) ", Compare("eq", f("a"), 1)),
        ("\tand(\n eq(a,1) ,\r\n\f exists(b)\n)\n", And((Compare("eq", f("a"), 1), Exists(f("b"))))),
        ("in( a , 1 , 2 )", In(f("a"), (1, 2))),
        # properties: anything but , ) " \ ; escapes; inner whitespace kept
        ("eq(attributes/a b,1)", Compare("eq", f("attributes/a b"), 1)),
        ("eq(attributes/a(b,1)", Compare("eq", f("attributes/a(b"), 1)),
        ("eq(attributes/it's,1)", Compare("eq", f("attributes/it's"), 1)),
        ("eq(attributes/ümlaut,1)", Compare("eq", f("attributes/ümlaut"), 1)),
        ("eq(attributes/x:y;z=*?,1)", Compare("eq", f("attributes/x:y;z=*?"), 1)),
        (r"eq(attributes/a\"b,1)", Compare("eq", f('attributes/a"b'), 1)),
        (r"eq(attributes/a\\b,1)", Compare("eq", f("attributes/a\\b"), 1)),
        (r"eq(attributes/a\u002cb,1)", Compare("eq", f("attributes/a,b"), 1)),
        (r"eq(attributes/a\u0029b,1)", Compare("eq", f("attributes/a)b"), 1)),
        (r"eq(attributes/\u0020x\u0020,1)", Compare("eq", f("attributes/ x "), 1)),
        (r"eq(attributes\/x,1)", Compare("eq", f("attributes/x"), 1)),  # \/ is a plain slash
        ("eq(attributes/a~1b,1)", Compare("eq", Field(("attributes", "a/b")), 1)),  # JSON pointer escapes
        ("eq(attributes/a~0b,1)", Compare("eq", Field(("attributes", "a~b")), 1)),
        ("eq(attributes/x/,1)", Compare("eq", f("attributes/x"), 1)),  # a trailing slash is ignored
        ("exists(features/*)", Exists(f("features/*"))),
        ("eq(topic:action,'created')", Compare("eq", Field(("topic:action",)), "created")),
    ],
)
def test_parse(text: str, expected: Query) -> None:
    parsed = parse_rql(text)
    assert parsed == expected
    assert repr(parsed) == repr(expected)  # == alone would take 1 for true and 1.0 for 1


def test_numbers_keep_their_kind() -> None:
    assert type(_value("eq(a,1)")) is int
    assert type(_value("eq(a,1.0)")) is float
    assert _value("eq(a,true)") is True
    assert type(_value("eq(a,12345678901234567890.5)")) is float


def _value(text: str) -> Any:
    query = parse_rql(text)
    assert isinstance(query, Compare)
    return query.value


def test_parsing_is_cached_and_returns_the_same_immutable_ast() -> None:
    assert parse_rql("eq(attributes/cached,1)") is parse_rql("eq(attributes/cached,1)")


# ------------------------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Unexpected end of input, expected 'and', "),
        ("   ", "Unexpected end of input"),
        ("eq(attributes/x", "Unexpected end of input, expected ',' (line 1, column 16)"),
        (
            "eq(attributes/x,",
            "Unexpected end of input, expected a number, a string, 'false', 'null', 'time:now' or 'true'"
            " (line 1, column 17)",
        ),
        ('eq(attributes/x,"open', "Invalid input '\"', expected a number"),
        (
            "eq(attributes/x,x)",
            "Invalid input 'x', expected a number, a string, 'false', 'null', 'time:now' or 'true' (line 1, column 17)",
        ),
        (
            "foo(a,1)",
            "Invalid input 'f', expected 'and', 'empty', 'eq', 'exists', 'ge', 'gt', 'ilike', 'in', 'le', 'like',"
            " 'lt', 'ne', 'not' or 'or' (line 1, column 1)",
        ),
        ("EQ(a,1)", "Invalid input 'E'"),  # operators are lower case
        ("eq (a,1) x", "Invalid input 'x', expected end of input (line 1, column 10)"),
        ("eq(a,1))", "Invalid input ')', expected end of input (line 1, column 8)"),
        ("eq(a,1),eq(b,2)", "Invalid input ',', expected end of input (line 1, column 8)"),
        ("eq(a)", "Invalid input ')', expected ',' (line 1, column 5)"),
        ("eq(a,1,2)", "Invalid input ',', expected ')' (line 1, column 7)"),
        ("in(a)", "Invalid input ')', expected ',' (line 1, column 5)"),
        ("in(a,)", "Invalid input ')', expected a number"),
        ("exists()", "Invalid input ')', expected a property (line 1, column 8)"),
        ("exists(a,b)", "Invalid input ',', expected ')' (line 1, column 9)"),
        ("eq(,1)", "Invalid input ',', expected a property (line 1, column 4)"),
        ("and()", "Invalid input ')', expected 'and'"),
        ("and(eq(a,1),)", "Invalid input ')', expected 'and'"),
        ("not(eq(a,1),eq(b,2))", "Invalid input ',', expected ')' (line 1, column 12)"),
        ("not()", "Invalid input ')', expected 'and'"),
        ("nor(eq(a,1))", "Invalid input 'n'"),  # nor is internal to Ditto
        ("eq(a,-0)", "Invalid input '-0', expected a number other than -0 (line 1, column 6)"),
        ("eq(a,01)", "Invalid input '1', expected ')' (line 1, column 7)"),
        ("eq(a,-05)", "Invalid input '5', expected ')' (line 1, column 8)"),
        ("eq(a,1.)", "Invalid input '.', expected ')' (line 1, column 7)"),
        ("eq(a,.5)", "Invalid input '.'"),
        ("eq(a,1e5)", "Invalid input 'e', expected ')'"),
        ("eq(a,0x1F)", "Invalid input 'x'"),
        ("eq(a,9223372036854775808)", "does not fit into a 64-bit integer (line 1, column 6)"),
        ("eq(a,-9223372036854775809)", "does not fit into a 64-bit integer"),
        ("eq(a," + "9" * 5000 + ")", "does not fit into a 64-bit integer"),
        ("eq(a," + "9" * 400 + ".0)", "the number is too large"),
        ("eq(a,True)", "Invalid input 'T'"),
        ("eq(a,nulls)", "Invalid input 's', expected ')'"),
        ("eq(a,kitchen)", "Invalid input 'k'"),  # strings need quotes
        ("gt(a,2021-08-10T15:10:02.592Z)", "Invalid input '-', expected ')'"),
        ("eq(a,time:later)", "Unknown placeholder 'time:later'"),
        ("eq(a,header:x)", "Invalid input 'h'"),
        (r'eq(a,"\x")', "Invalid input '\"'"),  # unknown escape
        (r'eq(a,"\'")', "Invalid input '\"'"),  # \' belongs to single-quoted strings
        (r"eq(a,'\"')", "Invalid input '''"),  # and \" to double-quoted ones
        (r'eq(a,"\u12")', "Invalid input '\"'"),
        (r'eq(a,"\uD800")', "unpaired surrogate (line 1, column 6)"),
        (r'eq(a,"\uDE00\uD83D")', "unpaired surrogate"),
        (r"eq(attributes/\uD800,1)", "unpaired surrogate"),
        (r"eq(attributes/a\x,1)", "Invalid input"),
        ('eq(attributes/a"b,1)', "Invalid input '\"', expected ','"),
        ("eq(attributes//x,1)", "Invalid property 'attributes//x'"),
        ("eq(/,1)", "Invalid property '/': it names no field"),
        ("like(a,1)", "in the like predicate only string values are allowed (line 1, column 8)"),
        ("ilike(a,null)", "in the ilike predicate only string values are allowed"),
        ("like(a,time:now)", "in the like predicate only string values are allowed"),
        ("eq(a,1)\neq(b,2)", "Invalid input 'e', expected end of input (line 2, column 1):\neq(b,2)\n^"),
        ("and(eq(a,1),\n  eq(b,))", "(line 2, column 8):\n  eq(b,))\n       ^"),
        ("eq(a,\x00)", "Invalid input '\\u0000'"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(RqlExpressionInvalid) as raised:
        parse_rql(text)
    error = raised.value
    assert error.status == 400
    assert error.error_code == "rql.expression.invalid"
    assert message in error.message, error.message
    assert error.description  # Ditto's hint about parentheses
    if text.strip():
        assert "^" in error.message  # the caret under the position


def test_error_message_shows_the_line_and_a_caret() -> None:
    with pytest.raises(RqlExpressionInvalid) as raised:
        parse_rql('eq(attributes/x,"a"')
    assert raised.value.message == (
        "Unexpected end of input, expected ')' (line 1, column 20):\n"
        + 'eq(attributes/x,"a"\n'
        + " " * 19
        + "^"
    )


def test_nesting_is_limited() -> None:
    deep_ok = "not(" * (MAX_DEPTH - 1) + "exists(a)" + ")" * (MAX_DEPTH - 1)
    parse_rql(deep_ok)
    too_deep = "not(" * MAX_DEPTH + "exists(a)" + ")" * MAX_DEPTH
    with pytest.raises(RqlExpressionInvalid, match="nests deeper than"):
        parse_rql(too_deep)
    very_deep = "and(" * 100_000 + "exists(a)" + ")" * 100_000
    with pytest.raises(RqlExpressionInvalid):
        parse_rql(very_deep)


def test_wide_queries_are_fine() -> None:
    wide = "or(" + ",".join(f"eq(attributes/a{i},{i})" for i in range(5000)) + ")"
    query = parse_rql(wide)
    assert isinstance(query, Or)
    assert len(query.children) == 5000
    many = "in(thingId," + ",".join(f'"ns:t{i}"' for i in range(5000)) + ")"
    assert len(parse_rql(many).values) == 5000  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- render


@pytest.mark.parametrize(
    ("query", "text"),
    [
        (Compare("eq", f("attributes/location"), "kitchen"), 'eq(attributes/location,"kitchen")'),
        (Compare("gt", f("a"), 1.5), "gt(a,1.5)"),
        (Compare("gt", f("a"), 1e20), "gt(a,100000000000000000000.0)"),
        (Compare("gt", f("a"), 1e-7), "gt(a,0.0000001)"),
        (Compare("gt", f("a"), 3.0), "gt(a,3.0)"),
        (Compare("eq", f("a"), None), "eq(a,null)"),
        (Compare("eq", f("a"), True), "eq(a,true)"),
        (Compare("eq", f("a"), 'q"b\\s\n'), r'eq(a,"q\"b\\s\n")'),
        (
            In(f("a"), (1, "x", TimeNow(), TimeNow(epoch_millis=True))),
            'in(a,1,"x",time:now,time:now_epoch_millis)',
        ),
        (And((Exists(f("a")), Not(Empty(f("b"))))), "and(exists(a),not(empty(b)))"),
        (
            Or((Exists(Field(("attributes", "a/b,c)d", " e "))),)),
            r"or(exists(attributes/a~1b\u002cc\u0029d/ e\u0020))",  # only edge whitespace is escaped
        ),
    ],
)
def test_render(query: Query, text: str) -> None:
    assert render(query) == text
    assert repr(parse_rql(text)) == repr(query)


def test_render_refuses_what_rql_cannot_express() -> None:
    for value in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError):
            render_literal(value)


def test_render_property_escapes() -> None:
    assert render_property(("attributes", 'a"b\\c')) == r"attributes/a\"b\\c"
    assert render_property(("attributes", "tab\there")) == r"attributes/tab\there"
    assert render_property(("attributes", "\u00a0")) == r"attributes/\u00a0"


# ------------------------------------------------------------------------------------------- properties

keys = st.text(min_size=1, max_size=6)
pointers = st.lists(keys, min_size=1, max_size=4).map(tuple)
fields = pointers.map(Field)
literals: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.builds(TimeNow, st.booleans())
)
leaves = (
    st.builds(Compare, st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]), fields, literals)
    | st.builds(Compare, st.sampled_from(["like", "ilike"]), fields, st.text(max_size=10))
    | st.builds(In, fields, st.lists(literals, min_size=1, max_size=4).map(tuple))
    | st.builds(Exists, fields)
    | st.builds(Empty, fields)
)
queries: st.SearchStrategy[Query] = st.recursive(
    leaves,
    lambda inner: (
        st.builds(And, st.lists(inner, min_size=1, max_size=3).map(tuple))
        | st.builds(Or, st.lists(inner, min_size=1, max_size=3).map(tuple))
        | st.builds(Not, inner)
    ),
    max_leaves=12,
)


@given(queries)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_parse_render_round_trip(query: Query) -> None:
    text = render(query)
    parsed = parse_rql(text)
    assert repr(parsed) == repr(query), text
    assert render(parsed) == text


@given(st.text(max_size=60))
@settings(max_examples=1000)
def test_random_text_parses_or_raises_the_ditto_error(text: str) -> None:
    _parse_or_ditto_error(text)


RQL_PIECES = [
    *"(),\"'\\/ *?.-+0123456789aeilnqtuxyz:_~\n\t",
    *("eq", "ne", "in", "and", "or", "not", "exists", "empty", "like", "true", "null", "time:now"),
    *("\\u", "\\uD83D", "attributes/", "features/*/"),
]
rql_alphabet = st.sampled_from(RQL_PIECES)


@given(st.lists(rql_alphabet, max_size=40).map("".join))
@settings(max_examples=2000)
def test_rql_like_text_parses_or_raises_the_ditto_error(text: str) -> None:
    _parse_or_ditto_error(text)


@given(queries, st.integers(min_value=0), st.text(max_size=3))
@settings(max_examples=500)
def test_mutated_queries_parse_or_raise_the_ditto_error(query: Query, position: int, insert: str) -> None:
    text = render(query)
    cut = position % (len(text) + 1)
    _parse_or_ditto_error(text[:cut] + insert + text[cut + 1 :])


def _parse_or_ditto_error(text: str) -> None:
    try:
        result = parse_rql(text)
    except DittoError as error:
        assert error.error_code == "rql.expression.invalid"
        return
    assert isinstance(result, Compare | In | Exists | Empty | And | Or | Not)
