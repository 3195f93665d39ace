"""The in-memory RQL evaluator: Ditto's search semantics (``basic-rql``, ``basic-search``, inventory §3), one case
table per operator and value type, written as RQL text so that the cases read like the docs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ditto_compat.rql.ast import Compare, CompareOp, Field, In, TimeNow
from ditto_compat.rql.evaluator import compile_query, epoch_millis, evaluate, iso_instant, like_regex
from ditto_compat.rql.fields import searchable_document
from ditto_compat.rql.parser import parse_rql

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

THING: dict[str, Any] = {
    "thingId": "org.eclipse.ditto:fancy-thing",
    "policyId": "org.eclipse.ditto:fancy-policy",
    "definition": "org.eclipse.ditto:lamp:1.0.0",
    "attributes": {
        "location": "kitchen",
        "manufacturer": "ACME Corp",
        "serial": "0042",
        "count": 5,
        "ratio": 0.5,
        "big": 9007199254740993,
        "on": True,
        "off": False,
        "nothing": None,
        "zero": 0,
        "emptyString": "",
        "emptyList": [],
        "emptyObject": {},
        "nested": {"deep": {"value": 7, "label": "Deep"}},
        "tags": ["misc", "no-due-date", "high-priority", 2, 3, 5, False, {"room": "kitchen", "floor": 2}],
        "rooms": [{"name": "hall", "size": 12}, {"name": "attic"}, {"name": None}],
        "matrix": [[1, 2], [3]],
        "numbers": [1, 2.5, 10],
        "withNull": [None, "x"],
        "multiline": "first\nsecond",
        "trailingNewline": "abc\n",
        "unicode": "Grüße 😀",
        "lastSeen": "2024-05-01T11:59:59.000Z",
        "seenMillis": 1714564799000,
    },
    "features": {
        "temperature": {
            "definition": ["org.eclipse.ditto:temperature:1.0.0"],
            "properties": {"value": 23.42, "unit": "Celsius", "lastModified": "2021-08-10T15:07:20.398Z"},
            "desiredProperties": {"value": 21},
        },
        "humidity": {"properties": {"value": 90, "unit": "percent", "sensors": ["a", "b"]}},
        "lamp": {"properties": {"on": False}},
        "bare": {},
    },
    "_metadata": {"attributes": {"location": {"issuedBy": "admin"}}},
}

DOC = searchable_document(
    THING, "org.eclipse.ditto:fancy-thing", 42, "2024-01-01T00:00:00.000Z", "2024-05-01T10:00:00.000Z"
)


def check(rql: str, expected: bool, doc: dict[str, Any] | None = None) -> None:
    query = parse_rql(rql)
    target = DOC if doc is None else doc
    assert evaluate(query, target, now=NOW) is expected, rql
    # the cached path (no explicit now) agrees for queries that do not depend on the time
    if "time:" not in rql:
        assert evaluate(query, target) is expected, rql
    assert compile_query(query, clock=lambda: NOW)(target) is expected, rql


# ------------------------------------------------------------------------------------------- eq / ne


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # strings
        ('eq(attributes/location,"kitchen")', True),
        ("eq(attributes/location,'kitchen')", True),
        ('eq(attributes/location,"Kitchen")', False),
        ('eq(attributes/location,"kitchen ")', False),
        ('eq(attributes/serial,"0042")', True),
        ("eq(attributes/serial,42)", False),  # no coercion: "0042" is a string
        ('eq(attributes/count,"5")', False),  # ... and 5 a number
        ('eq(attributes/unicode,"Grüße 😀")', True),
        # numbers: ints and doubles compare numerically
        ("eq(attributes/count,5)", True),
        ("eq(attributes/count,5.0)", True),
        ("eq(attributes/count,4)", False),
        ("eq(attributes/ratio,0.5)", True),
        ("eq(attributes/ratio,0.50)", True),
        ("eq(attributes/big,9007199254740993)", True),
        ("eq(attributes/big,9007199254740992)", False),  # longs are exact, not doubles
        ("eq(attributes/zero,0)", True),
        ("eq(attributes/zero,+0)", True),
        ("eq(attributes/zero,-0.0)", True),
        ("eq(attributes/zero,false)", False),  # a boolean is not a number
        ("eq(attributes/zero,null)", False),
        # booleans
        ("eq(attributes/on,true)", True),
        ("eq(attributes/on,1)", False),
        ("eq(attributes/off,false)", True),
        ("eq(attributes/off,0)", False),
        ('eq(attributes/on,"true")', False),
        # null only matches an explicit null
        ("eq(attributes/nothing,null)", True),
        ("eq(attributes/missing,null)", False),
        ("eq(attributes/emptyString,null)", False),
        ("eq(attributes/withNull,null)", True),  # an array holding null
        ("eq(attributes/rooms/name,null)", True),  # {"name": null} inside the array
        # objects and arrays never equal a literal
        ('eq(attributes/nested,"x")', False),
        ("eq(attributes/emptyList,null)", False),
        ("eq(attributes/emptyObject,null)", False),
        # nested objects
        ("eq(attributes/nested/deep/value,7)", True),
        ("eq(/attributes/nested/deep/value,7)", True),  # a leading slash is optional
        ("eq(attributes/nested/deep/missing,7)", False),
        ("eq(attributes/location/deeper,7)", False),  # through a string: nothing
        # special fields of the searchable document
        ('eq(thingId,"org.eclipse.ditto:fancy-thing")', True),
        ('eq(namespace,"org.eclipse.ditto")', True),
        ('eq(policyId,"org.eclipse.ditto:fancy-policy")', True),
        ('eq(definition,"org.eclipse.ditto:lamp:1.0.0")', True),
        ("eq(_revision,42)", True),
        ('eq(_created,"2024-01-01T00:00:00.000Z")', True),
        ('eq(_metadata/attributes/location/issuedBy,"admin")', True),
    ],
)
def test_eq(rql: str, expected: bool) -> None:
    check(rql, expected)


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ('ne(attributes/location,"kitchen")', False),
        ('ne(attributes/location,"living-room")', True),
        ('ne(attributes/missing,"x")', False),  # ne needs the field to exist
        ("ne(attributes/missing,null)", False),
        ("ne(attributes/nothing,null)", False),
        ("ne(attributes/location,null)", True),
        ("ne(attributes/count,5.0)", False),
        ('ne(attributes/count,"5")', True),  # no coercion
        ("ne(attributes/on,1)", True),
        ("ne(attributes/zero,false)", True),
        ("ne(attributes/nested,1)", True),  # an object exists and does not equal 1
        ("ne(attributes/emptyList,1)", True),  # [] exists and holds nothing equal
        ("ne(attributes/withNull,null)", False),  # it holds a null
        ('ne(attributes/rooms/name,"hall")', False),
        ('ne(attributes/rooms/name,"cellar")', True),
    ],
)
def test_ne(rql: str, expected: bool) -> None:
    check(rql, expected)


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # not(eq) and ne differ exactly on missing fields
        ('not(eq(attributes/missing,"x"))', True),
        ('ne(attributes/missing,"x")', False),
        ('not(ne(attributes/missing,"x"))', True),
    ],
)
def test_ne_is_not_the_negation_of_eq(rql: str, expected: bool) -> None:
    check(rql, expected)


# ------------------------------------------------------------------------------------------- ordering


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # numbers
        ("gt(attributes/count,4)", True),
        ("gt(attributes/count,5)", False),
        ("ge(attributes/count,5)", True),
        ("ge(attributes/count,5.0)", True),
        ("lt(attributes/count,5.5)", True),
        ("le(attributes/count,5)", True),
        ("lt(attributes/count,-1)", False),
        ("gt(attributes/ratio,0.25)", True),
        ("gt(attributes/big,9007199254740992)", True),  # exact, although no double tells them apart
        ('gt(attributes/count,"4")', False),  # a string never compares with a number
        ("gt(attributes/on,0)", False),  # nor a boolean
        # strings: byte (code point) order
        ('gt(attributes/location,"kitchel")', True),
        ('gt(attributes/location,"kitcheo")', False),
        ('lt(attributes/location,"l")', True),
        ('ge(attributes/location,"kitchen")', True),
        ('le(attributes/location,"kitchen")', True),
        ('lt(attributes/location,"kitchen")', False),
        ('gt(attributes/location,"Z")', True),  # lowercase sorts after uppercase
        ('lt(attributes/location,"kitchen\\u0000")', True),  # a prefix sorts first
        ('gt(attributes/unicode,"Gruße")', True),  # ü (U+00FC) after u
        ('lt(attributes/serial,"1")', True),
        ("gt(attributes/serial,1)", False),
        # booleans: false < true
        ("gt(attributes/on,false)", True),
        ("gt(attributes/off,false)", False),
        ("ge(attributes/off,false)", True),
        ("lt(attributes/off,true)", True),
        ("le(attributes/on,true)", True),
        # null: only ge/le match an explicit null
        ("ge(attributes/nothing,null)", True),
        ("le(attributes/nothing,null)", True),
        ("gt(attributes/nothing,null)", False),
        ("lt(attributes/nothing,null)", False),
        ("ge(attributes/missing,null)", False),
        ("ge(attributes/count,null)", False),
        # missing fields and objects never compare
        ("gt(attributes/missing,0)", False),
        ("lt(attributes/nested,100)", False),
        # timestamps as strings (basic-conditional-requests)
        ('gt(features/temperature/properties/lastModified,"2021-08-10T15:07:00.000Z")', True),
        ('gt(features/temperature/properties/lastModified,"2021-08-10T15:10:02.592Z")', False),
        ('lt(_modified,"2024-05-01T10:00:00.001Z")', True),
    ],
)
def test_ordering(rql: str, expected: bool) -> None:
    check(rql, expected)


# ------------------------------------------------------------------------------------------- in


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ('in(thingId,"A000","org.eclipse.ditto:fancy-thing","AZ99")', True),
        ('in(thingId,"A000")', False),
        ('in(attributes/location,"kitchen")', True),
        ("in(attributes/count,1,2,5.0)", True),
        ('in(attributes/count,"5")', False),
        ("in(attributes/on,1,true)", True),
        ("in(attributes/on,1)", False),  # true is not 1
        ("in(attributes/zero,false)", False),  # 0 is not false
        ("in(attributes/zero,false,0)", True),
        ("in(attributes/nothing,1,null)", True),
        ("in(attributes/missing,1,null)", False),  # null does not match a missing field
        ('in(attributes/tags,"misc","something-non-matching")', True),
        ("in(attributes/tags,4,5)", True),
        ('in(attributes/tags/room,"kitchen")', True),
        ("in(attributes/nested,1,2)", False),
    ],
)
def test_in(rql: str, expected: bool) -> None:
    check(rql, expected)


# ------------------------------------------------------------------------------------------- like / ilike


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # the docs' patterns
        ('like(attributes/manufacturer,"*Corp")', True),
        ('like(attributes/manufacturer,"ACME*")', True),
        ('like(attributes/manufacturer,"*ME C*")', True),
        ('like(attributes/manufacturer,"AC?E Co?p")', True),
        ('like(attributes/manufacturer,"ACME")', False),  # anchored: the whole value must match
        ('like(attributes/manufacturer,"Corp")', False),
        ('like(attributes/manufacturer,"ACME Corp")', True),
        ('like(attributes/manufacturer,"acme*")', False),  # like is case sensitive
        ('like(attributes/manufacturer,"*")', True),
        ('like(attributes/manufacturer,"**Corp")', True),  # repeated * collapse
        ('like(attributes/manufacturer,"?")', False),  # ? is exactly one character
        ('like(attributes/emptyString,"*")', True),
        ('like(attributes/emptyString,"?")', False),
        ('like(attributes/unicode,"Gr??e ?")', True),  # ? is one character, also beyond the BMP
        # everything but * and ? is literal
        ('like(attributes/manufacturer,"ACME.Corp")', False),
        ('like(attributes/manufacturer,"^ACME*")', False),
        ('like(attributes/manufacturer,"*Corp$")', False),
        ('like(attributes/manufacturer,"[A]CME*")', False),
        # only strings match
        ('like(attributes/count,"5")', False),
        ('like(attributes/count,"*")', False),
        ('like(attributes/on,"true")', False),
        ('like(attributes/nothing,"*")', False),
        ('like(attributes/missing,"*")', False),
        ('like(attributes/nested,"*")', False),
        # arrays: any element
        ('like(attributes/tags,"*-priority")', True),
        ('like(attributes/tags,"*-nothing")', False),
        ('like(attributes/rooms/name,"at*")', True),
        # MongoDB regex details: a wildcard does not cross a line break, $ also matches before a final \n
        ('like(attributes/multiline,"first*")', False),
        ('like(attributes/multiline,"first?second")', False),
        ('like(attributes/trailingNewline,"abc")', True),
        ('like(attributes/trailingNewline,"abc*")', True),
        # ilike ignores case
        ('ilike(attributes/manufacturer,"acme*")', True),
        ('ilike(attributes/manufacturer,"*CORP")', True),
        ('ilike(attributes/manufacturer,"a?me c?rp")', True),
        ('ilike(attributes/unicode,"GRÜSSE*")', False),  # no multi-character case folding
        ('ilike(attributes/unicode,"grüße*")', True),
        ('ilike(attributes/count,"5")', False),
        ('ilike(features/*/properties/unit,"celsius")', True),
    ],
)
def test_like(rql: str, expected: bool) -> None:
    check(rql, expected)


def test_like_regex_escapes_everything_but_the_wildcards() -> None:
    assert like_regex("a.b*c?d").pattern == r"^a\.b.*c.d$"
    assert like_regex("a***b").pattern == "^a.*b$"
    assert like_regex("A*", ignore_case=True).match("abc")


# ------------------------------------------------------------------------------------------- exists / empty


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ("exists(attributes/location)", True),
        ("exists(attributes/nothing)", True),  # an explicit null exists
        ("exists(attributes/zero)", True),
        ("exists(attributes/emptyList)", True),
        ("exists(attributes/missing)", False),
        ("exists(attributes/nested/deep)", True),
        ("exists(attributes/nested/deep/value)", True),
        ("exists(attributes/nested/other)", False),
        ("exists(attributes/tags/room)", True),  # objects inside arrays are addressable
        ("exists(attributes/tags/cellar)", False),
        ("exists(attributes/rooms/size)", True),
        ("exists(features/temperature)", True),
        ("exists(features/bare)", True),
        ("exists(features/missing)", False),
        ("exists(features/*)", True),
        ("exists(features/lamp/properties)", True),
        ("exists(features/bare/properties)", False),
        ("exists(features/temperature/desiredProperties/value)", True),
        ("exists(features/humidity/desiredProperties)", False),
        ("exists(features/*/desiredProperties)", True),
        ("exists(features/temperature/definition)", True),
        ("exists(_metadata/attributes/location)", True),
        ("exists(thingId)", True),
        ("exists(_modified)", True),
    ],
)
def test_exists(rql: str, expected: bool) -> None:
    check(rql, expected)


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # absent, null, [], {}, "" are empty
        ("empty(attributes/missing)", True),
        ("empty(attributes/nothing)", True),
        ("empty(attributes/emptyList)", True),
        ("empty(attributes/emptyObject)", True),
        ("empty(attributes/emptyString)", True),
        # 0 and false are not
        ("empty(attributes/zero)", False),
        ("empty(attributes/off)", False),
        ("empty(attributes/location)", False),
        ("empty(attributes/tags)", False),
        ("empty(attributes/nested)", False),
        ("empty(attributes/withNull)", False),  # an array holding null has content
        ("not(empty(attributes/tags))", True),
        ('or(empty(attributes/tags),eq(attributes/tags,"default"))', False),
        ("empty(features/bare/properties)", True),
        ("empty(features/*/desiredProperties)", False),
        ("empty(attributes/rooms/name)", True),  # one of the rooms has a null name
        ("empty(attributes/rooms/size)", False),
    ],
)
def test_empty(rql: str, expected: bool) -> None:
    check(rql, expected)


# ------------------------------------------------------------------------------------------- arrays


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        # basic-search "Querying JSON arrays", verbatim
        ('eq(attributes/tags,"high-priority")', True),
        ('ne(attributes/tags,"high-priority")', False),
        ('in(attributes/tags,"misc","something-non-matching")', True),
        ('like(attributes/tags,"*-priority")', True),
        ("ne(attributes/tags,1)", True),
        ("gt(attributes/tags,6)", False),
        ("exists(attributes/tags/room)", True),
        ('eq(attributes/tags/room,"kitchen")', True),
        ("ge(attributes/tags/floor,2)", True),
        # mixed types in one array
        ("eq(attributes/tags,2)", True),
        ("eq(attributes/tags,2.0)", True),
        ("eq(attributes/tags,false)", True),
        ("eq(attributes/tags,0)", False),
        ("eq(attributes/tags,true)", False),
        ("gt(attributes/tags,4)", True),
        ('gt(attributes/tags,"n")', True),
        ('lt(attributes/tags,"a")', False),
        ("lt(attributes/numbers,2)", True),
        ("gt(attributes/numbers,2.4)", True),
        ("gt(attributes/numbers,10)", False),
        ("ge(attributes/numbers,10)", True),
        ("and(gt(attributes/numbers,3),lt(attributes/numbers,5))", True),  # different elements may match
        # arrays of objects
        ('eq(attributes/rooms/name,"hall")', True),
        ("gt(attributes/rooms/size,10)", True),
        ("gt(attributes/rooms/size,12)", False),
        # positions select elements
        ('eq(attributes/tags/0,"misc")', True),
        ('eq(attributes/tags/1,"misc")', False),
        ('eq(attributes/rooms/1/name,"attic")', True),
        ("eq(attributes/tags/99,1)", False),
        ('eq(attributes/tags/00,"misc")', False),  # not a plain decimal
        # only one level of nested arrays is looked into
        ("eq(attributes/matrix,3)", False),
        ("eq(attributes/matrix/0,1)", True),
        ("eq(attributes/matrix/1/0,3)", True),
        ("exists(attributes/matrix/x)", False),
        ("empty(attributes/emptyList/x)", True),
    ],
)
def test_arrays(rql: str, expected: bool) -> None:
    check(rql, expected)


def test_a_key_is_looked_up_in_the_elements_as_well_as_by_position() -> None:
    doc = {"a": [{"0": "key"}, "position"]}
    assert evaluate(parse_rql('eq(a/0,"key")'), doc)
    assert evaluate(parse_rql('eq(a/0,"position")'), doc) is False  # a[0] is the object, not a string
    assert evaluate(parse_rql("exists(a/0)"), doc)
    doc2 = {"a": ["position", {"0": "key"}]}
    assert evaluate(parse_rql('eq(a/0,"position")'), doc2)
    assert evaluate(parse_rql('eq(a/0,"key")'), doc2)


def test_nested_arrays_of_objects_are_walked_at_every_level() -> None:
    doc = {"attributes": {"floors": [{"rooms": [{"name": "a"}, {"name": "b"}]}, {"rooms": [{"name": "c"}]}]}}
    assert evaluate(parse_rql('eq(attributes/floors/rooms/name,"c")'), doc)
    assert evaluate(parse_rql('ne(attributes/floors/rooms/name,"d")'), doc)
    assert not evaluate(parse_rql('ne(attributes/floors/rooms/name,"b")'), doc)


# ------------------------------------------------------------------------------------------- feature wildcard


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ("gt(features/*/properties/value,50)", True),  # humidity
        ("gt(features/*/properties/value,100)", False),
        ('eq(features/*/properties/unit,"percent")', True),
        ('eq(features/*/properties/sensors,"b")', True),  # arrays inside a feature
        ("eq(features/*/properties/on,false)", True),
        ('ne(features/*/properties/unit,"percent")', False),  # one feature has it
        ('ne(features/*/properties/unit,"kelvin")', True),
        ("ne(features/*/properties/missing,1)", False),  # ne needs a value somewhere
        ("exists(features/*/properties/on)", True),
        ("exists(features/*/properties/off)", False),
        ('eq(features/*/definition,"org.eclipse.ditto:temperature:1.0.0")', True),
        ("eq(features/*/desiredProperties/value,21)", True),
        ("in(features/*/properties/value,90,1)", True),
        ('like(features/*/properties/unit,"per*")', True),
        ("empty(features/*/properties/missing)", True),
        ("eq(features/humidity/properties/value,90)", True),
        ("eq(features/temperature/properties/value,90)", False),
    ],
)
def test_feature_wildcard(rql: str, expected: bool) -> None:
    check(rql, expected)


def test_feature_wildcard_without_features() -> None:
    docs: list[dict[str, Any]] = [{}, {"features": None}, {"features": []}, {"features": {}}]
    for doc in docs:
        assert not evaluate(parse_rql("exists(features/*)"), doc)
        assert not evaluate(parse_rql("eq(features/*/properties/x,1)"), doc)
        assert evaluate(parse_rql("empty(features/*/properties/x)"), doc)


# ------------------------------------------------------------------------------------------- logic


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ('and(eq(attributes/location,"kitchen"),lt(attributes/count,10))', True),
        ('and(eq(attributes/location,"kitchen"),lt(attributes/count,1))', False),
        ('and(eq(attributes/location,"kitchen"))', True),
        ("and(exists(thingId),exists(policyId),exists(definition),eq(_revision,42))", True),
        ("and(exists(thingId),exists(policyId),exists(definition),eq(_revision,41))", False),
        ('or(eq(attributes/location,"hall"),lt(attributes/count,10))', True),
        ('or(eq(attributes/location,"hall"),lt(attributes/count,1))', False),
        ('or(eq(attributes/location,"hall"))', False),
        ("or(eq(_revision,1),eq(_revision,2),eq(_revision,42))", True),
        ("or(eq(_revision,1),eq(_revision,2),eq(_revision,3))", False),
        ('not(eq(attributes/location,"hall"))', True),
        ("not(not(exists(attributes/location)))", True),
        ('not(like(thingId,"org.eclipse.ditto:blocked*"))', True),
        ('and(exists(features/lamp),eq(attributes/location,"kitchen"))', True),
        ("not(and(exists(features/lamp),not(or(eq(attributes/count,1),eq(attributes/count,5)))))", True),
    ],
)
def test_logic(rql: str, expected: bool) -> None:
    check(rql, expected)


def test_hand_built_empty_and_or_are_the_neutral_elements() -> None:
    from ditto_compat.rql.ast import And, Or

    assert evaluate(And(()), DOC)
    assert not evaluate(Or(()), DOC)


# ------------------------------------------------------------------------------------------- time:now


def test_time_now_is_iso_utc_with_milliseconds() -> None:
    assert iso_instant(NOW) == "2024-05-01T12:00:00.123Z"
    assert (
        iso_instant(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
        == "2024-05-01T12:00:00.000Z"
    )
    assert iso_instant(datetime(2024, 5, 1, 12, 0)) == "2024-05-01T12:00:00.000Z"  # naive is UTC
    assert epoch_millis(NOW) == 1714564800123
    assert epoch_millis(datetime(1970, 1, 1, 0, 0, 0, 1000)) == 1


@pytest.mark.parametrize(
    ("rql", "expected"),
    [
        ("lt(attributes/lastSeen,time:now)", True),
        ("gt(attributes/lastSeen,time:now)", False),
        ("lt(_modified,time:now)", True),
        ("gt(_created,time:now)", False),
        ("lt(attributes/seenMillis,time:now_epoch_millis)", True),
        ("gt(attributes/seenMillis,time:now_epoch_millis)", False),
        ("lt(attributes/lastSeen,time:now_epoch_millis)", False),  # a string is not a number
        ("in(attributes/seenMillis,1,time:now_epoch_millis)", False),
        ('in(attributes/lastSeen,"x",time:now)', False),
        ("ne(attributes/lastSeen,time:now)", True),
    ],
)
def test_time_now(rql: str, expected: bool) -> None:
    check(rql, expected)


def test_time_now_is_read_at_each_evaluation() -> None:
    moments = iter([datetime(2024, 5, 1, 11, 0, tzinfo=UTC), datetime(2024, 5, 1, 13, 0, tzinfo=UTC)])
    predicate = compile_query(parse_rql("lt(attributes/lastSeen,time:now)"), clock=lambda: next(moments))
    assert predicate(DOC) is False
    assert predicate(DOC) is True
    now_equal = evaluate(
        In(Field(("attributes", "seenMillis")), (TimeNow(epoch_millis=True),)),
        DOC,
        now=datetime(2024, 5, 1, 11, 59, 59, tzinfo=UTC),
    )
    assert now_equal


def test_time_now_default_clock_is_the_current_time() -> None:
    past = {"t": "2000-01-01T00:00:00.000Z", "m": 0}
    assert evaluate(parse_rql("lt(t,time:now)"), past)
    assert evaluate(parse_rql("lt(m,time:now_epoch_millis)"), past)


# ------------------------------------------------------------------------------------------- mechanics


def test_equal_asts_with_different_literal_types_are_not_confused_by_the_cache() -> None:
    doc = {"a": False}
    # Compare("eq", a, 0) == Compare("eq", a, False) as dataclasses (0 == False); the cache must not mix them
    assert evaluate(Compare("eq", Field(("a",)), 0), doc) is False
    assert evaluate(Compare("eq", Field(("a",)), False), doc) is True
    assert evaluate(Compare("eq", Field(("a",)), 0), doc) is False


def test_documents_may_be_any_mapping() -> None:
    from types import MappingProxyType

    doc = MappingProxyType({"attributes": MappingProxyType({"x": [MappingProxyType({"y": 1})]})})
    assert evaluate(parse_rql("eq(attributes/x/y,1)"), doc)
    assert evaluate(parse_rql("exists(attributes/x)"), doc)


def test_the_document_is_not_modified() -> None:
    import copy

    before = copy.deepcopy(DOC)
    for rql in ("eq(attributes/tags/room,1)", "empty(features/*/properties)", "ne(attributes/rooms/name,1)"):
        evaluate(parse_rql(rql), DOC)
    assert before == DOC


def test_searchable_document() -> None:
    doc = searchable_document({"thingId": "x:y", "attributes": {"a": 1}}, "my.ns:thing", 3, "c", "m")
    assert doc == {
        "thingId": "my.ns:thing",
        "namespace": "my.ns",
        "attributes": {"a": 1},
        "_revision": 3,
        "_created": "c",
        "_modified": "m",
    }
    assert searchable_document(None, ":x", 1, None, None) == {
        "thingId": ":x",
        "namespace": "",
        "_revision": 1,
    }


# ------------------------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=5)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8,
)


@given(json_values, json_scalars)
def test_ne_is_exists_and_not_eq(value: Any, literal: Any) -> None:
    doc = {"a": value}
    field = Field(("a",))
    eq = evaluate(Compare("eq", field, literal), doc)
    ne = evaluate(Compare("ne", field, literal), doc)
    assert ne == (not eq)
    assert evaluate(In(field, (literal,)), doc) == eq


@given(json_values, json_scalars)
def test_no_coercion_between_types(value: Any, literal: Any) -> None:
    doc = {"a": value}
    elements = value if isinstance(value, list) else [value]
    ops: tuple[CompareOp, ...] = ("eq", "gt", "ge", "lt", "le")
    for op in ops:
        if evaluate(Compare(op, Field(("a",)), literal), doc):
            assert any(_same_kind(e, literal) for e in elements), (op, value, literal)


def _same_kind(a: Any, b: Any) -> bool:
    def kind(v: Any) -> str:
        if v is None or isinstance(v, bool | str):
            return type(v).__name__
        return "number" if isinstance(v, int | float) else "other"

    return kind(a) == kind(b)


@given(st.text(max_size=8), st.text(alphabet="ab*?.\n", max_size=6))
def test_like_matches_a_reference_implementation(value: str, pattern: str) -> None:
    doc = {"a": value}
    expected = _reference_like(value, pattern)
    assert evaluate(Compare("like", Field(("a",)), pattern), doc) is expected


def _reference_like(value: str, pattern: str) -> bool:
    """A backtracking matcher with MongoDB's rules: * and ? never match a line break, and the end may come
    before a final line break."""

    def match(v: int, p: int) -> bool:
        if p == len(pattern):
            return v == len(value) or (v == len(value) - 1 and value[v] == "\n")
        char = pattern[p]
        if char == "*":
            return any(match(k, p + 1) for k in range(v, len(value) + 1) if "\n" not in value[v:k])
        if v < len(value) and (value[v] == char if char != "?" else value[v] != "\n"):
            return match(v + 1, p + 1)
        return False

    return match(0, 0)
