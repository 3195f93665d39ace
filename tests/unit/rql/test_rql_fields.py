"""Searchable fields (inventory §3, Ditto's ``ThingsFieldExpressionFactoryImpl`` and ``simple-field-mappings``)."""

from __future__ import annotations

import pytest

from ditto_compat.errors import RqlExpressionInvalid, SearchOptionInvalid
from ditto_compat.model.pointer import parse_pointer
from ditto_compat.rql.ast import Field, SortKey
from ditto_compat.rql.fields import field_problem, validate_query, validate_sort
from ditto_compat.rql.options import parse_options
from ditto_compat.rql.parser import parse_rql

# (property, filter, exists/empty, sort)
FIELDS = [
    ("thingId", True, True, True),
    ("namespace", True, True, True),
    ("policyId", True, True, True),
    ("definition", True, True, True),
    ("_revision", True, True, True),
    ("_created", True, True, True),
    ("_modified", True, True, True),
    ("_metadata", True, True, True),
    ("_metadata/attributes/x/issuedBy", True, True, True),
    ("attributes/location", True, True, True),
    ("attributes/a/b/c", True, True, True),
    ("features/lamp/properties/on", True, True, True),
    ("features/lamp/properties/a/b", True, True, True),
    ("features/lamp/desiredProperties/on", True, True, True),
    ("features/*/properties/on", True, True, False),
    ("features/*/desiredProperties/on", True, True, False),
    ("features/lamp/definition", True, True, False),
    ("features/*/definition", True, True, False),
    ("features/lamp", False, True, False),
    ("features/*", False, True, False),
    ("features/lamp/properties", False, True, False),
    ("features/lamp/desiredProperties", False, True, False),
    # unknown
    ("attributes", False, False, False),
    ("features", False, False, False),
    ("features/lamp/other", False, False, False),
    ("features/lamp/definition/x", False, False, False),
    ("thingId/x", False, False, False),
    ("_namespace", False, False, False),  # field selection only
    ("unknown", False, False, False),
    ("unknown/x", False, False, False),
    ("Attributes/x", False, False, False),
    ("topic:action", False, False, False),
]


@pytest.mark.parametrize(("prop", "filter_ok", "exists_ok", "sort_ok"), FIELDS)
def test_field_uses(prop: str, filter_ok: bool, exists_ok: bool, sort_ok: bool) -> None:
    pointer = parse_pointer(prop)
    assert (field_problem(pointer, "filter") is None) is filter_ok
    assert (field_problem(pointer, "exists") is None) is exists_ok
    assert (field_problem(pointer, "sort") is None) is sort_ok


@pytest.mark.parametrize(("prop", "filter_ok", "exists_ok", "sort_ok"), FIELDS)
def test_validate_query(prop: str, filter_ok: bool, exists_ok: bool, sort_ok: bool) -> None:
    for rql, ok in (
        (f"eq({prop},1)", filter_ok),
        (f"in({prop},1,2)", filter_ok),
        (f"like({prop},'x*')", filter_ok),
        (f"exists({prop})", exists_ok),
        (f"empty({prop})", exists_ok),
        (f"and(exists(thingId),or(eq(_revision,1),not(exists({prop}))))", exists_ok),
    ):
        query = parse_rql(rql)
        if ok:
            validate_query(query)
        else:
            with pytest.raises(RqlExpressionInvalid, match="Unknown property name"):
                validate_query(query)


@pytest.mark.parametrize(("prop", "filter_ok", "exists_ok", "sort_ok"), FIELDS)
def test_validate_sort(prop: str, filter_ok: bool, exists_ok: bool, sort_ok: bool) -> None:
    keys = parse_options(f"sort(+thingId,-{prop})").sort
    if sort_ok:
        validate_sort(keys)
    else:
        with pytest.raises(SearchOptionInvalid, match="Unknown property name") as raised:
            validate_sort(keys)
        assert raised.value.status == 400


def test_unknown_property_message_names_the_property() -> None:
    with pytest.raises(RqlExpressionInvalid) as raised:
        validate_query(parse_rql('eq(unknown/x,"y")'))
    assert raised.value.error_code == "rql.expression.invalid"
    assert "unknown/x" in raised.value.message


def test_validate_sort_accepts_an_empty_sort() -> None:
    validate_sort(())
    validate_sort([SortKey(Field(("thingId",)), True)])
