"""Shape checks for Thing JSON and its parts (``basic-thing``, ``basic-feature``, ``basic-namespaces-and-names``)."""

from __future__ import annotations

from typing import Any

import pytest

from ditto_compat.domain.resources import resource_of
from ditto_compat.domain.validation import (
    THING_SIZE_LIMIT,
    check_feature,
    check_feature_definition,
    check_features,
    check_keys,
    check_thing_body,
    check_thing_definition,
    check_value,
    is_definition_identifier,
)
from ditto_compat.errors import (
    DittoError,
    FeatureDefinitionEmpty,
    FeatureDefinitionIdentifierInvalid,
    JsonInvalid,
    JsonKeyInvalid,
    PolicyIdInvalid,
    ThingDefinitionInvalid,
)
from ditto_compat.model.pointer import parse_pointer

# the example Thing of basic-thing
EXAMPLE_THING: dict[str, Any] = {
    "thingId": "the.namespace:theName",
    "policyId": "the.namespace:thePolicyName",
    "definition": "org.eclipse.ditto:HeatingDevice:2.1.0",
    "attributes": {"someAttr": 32, "manufacturer": "ACME corp"},
    "features": {
        "heating-no1": {
            "properties": {
                "connected": True,
                "complexProperty": {"street": "my street", "house no": 42},
            },
            "desiredProperties": {"connected": False},
        },
        "switchable": {
            "definition": ["org.eclipse.ditto:Switcher:1.0.0"],
            "properties": {"on": True, "lastToggled": "2017-11-15T18:21Z"},
        },
    },
}


def test_thing_size_limit_is_100_kb() -> None:
    assert THING_SIZE_LIMIT == 100 * 1024


# ------------------------------------------------------------------------------------------ definitions


@pytest.mark.parametrize(
    "value",
    [
        # basic-thing: namespace:name:version or an HTTP(S) URL
        "org.eclipse.ditto:HeatingDevice:2.1.0",
        "org.eclipse.ditto:Switcher:1.0.0",
        "com.acme:lamp_v2:1.0.0-SNAPSHOT",
        "a:b:c",
        "https://models.example.com/thing-definition-1.0.0.tm.jsonld",
        "http://localhost:8080/model.tm.jsonld",
    ],
)
def test_valid_definition_identifiers(value: str) -> None:
    assert is_definition_identifier(value)
    check_thing_definition(value)
    check_feature_definition([value])


@pytest.mark.parametrize(
    "value",
    [
        "",
        "lamp",
        "a:b",
        "a:b:c:d",
        "a::c",
        "a:b c:1",
        "ns/x:name:1",
        "ftp://example.com/model",
        "http://",
        "https://exa mple.com",
        42,
        ["a:b:c"],
        {"a": "b"},
    ],
)
def test_invalid_definition_identifiers(value: Any) -> None:
    assert not is_definition_identifier(value)


@pytest.mark.parametrize("value", ["a:b", "lamp", 42, True, ["a:b:c"]])
def test_invalid_thing_definition(value: Any) -> None:
    with pytest.raises(ThingDefinitionInvalid) as info:
        check_thing_definition(value)
    assert info.value.status == 400
    assert info.value.error_code == "things:definition.identifier.invalid"


def test_thing_definition_may_be_null() -> None:
    check_thing_definition(None)


def test_feature_definition_must_not_be_empty() -> None:
    with pytest.raises(FeatureDefinitionEmpty) as info:
        check_feature_definition([])
    assert info.value.status == 400
    assert info.value.error_code == "things:feature.definition.empty"


@pytest.mark.parametrize("value", [["lamp"], ["a:b:c", "a:b"], [42], [None]])
def test_feature_definition_identifiers_must_be_valid(value: list[Any]) -> None:
    with pytest.raises(FeatureDefinitionIdentifierInvalid) as info:
        check_feature_definition(value)
    assert info.value.status == 400
    assert info.value.error_code == "things:feature.definition.identifier.invalid"


@pytest.mark.parametrize("value", ["a:b:c", None, {"a": "b:c:d"}, 1])
def test_feature_definition_is_an_array(value: Any) -> None:
    with pytest.raises(JsonInvalid):
        check_feature_definition(value)


def test_feature_definition_with_several_identifiers() -> None:
    check_feature_definition(["org.eclipse.ditto:Switcher:1.0.0", "https://example.com/lamp.tm.jsonld"])


# ------------------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "with space": {"nested:key": [1, 2]}},
        {"€": {"~": {"*": None}}},
        [],
        "scalar",
        None,
        {},
    ],
)
def test_check_keys_accepts_valid_keys(value: Any) -> None:
    check_keys(value, "Attributes")


@pytest.mark.parametrize(
    "value",
    [
        {"a/b": 1},
        {"": 1},
        {"ok": {"deeper": {"bad\x00": 1}}},
        {"ok": {"\x1f": 1}},
        {"ä": 1},
    ],
)
def test_check_keys_rejects_invalid_keys_at_any_depth(value: Any) -> None:
    with pytest.raises(JsonKeyInvalid) as info:
        check_keys(value, "Attributes")
    assert info.value.status == 400
    assert info.value.error_code == "json.key.invalid"
    assert "Attributes" in info.value.message


# ---------------------------------------------------------------------------------------------- features


@pytest.mark.parametrize(
    "feature",
    [
        None,  # Ditto accepts null as an empty feature
        {},
        {"properties": {"on": True}},
        {"properties": None, "desiredProperties": None, "definition": None},
        {
            "definition": ["org.eclipse.ditto:Switcher:1.0.0"],
            "properties": {},
            "desiredProperties": {"on": False},
        },
        EXAMPLE_THING["features"]["heating-no1"],
    ],
)
def test_valid_features(feature: Any) -> None:
    check_feature(feature)


@pytest.mark.parametrize(
    ("feature", "error"),
    [
        (5, JsonInvalid),
        ([], JsonInvalid),
        ("lamp", JsonInvalid),
        ({"properties": 5}, JsonInvalid),
        ({"properties": []}, JsonInvalid),
        ({"desiredProperties": "x"}, JsonInvalid),
        ({"properties": {"a/b": 1}}, JsonKeyInvalid),
        ({"desiredProperties": {"x": {"y\n": 1}}}, JsonKeyInvalid),
        ({"definition": []}, FeatureDefinitionEmpty),
        ({"definition": ["nope"]}, FeatureDefinitionIdentifierInvalid),
        ({"definition": "a:b:c"}, JsonInvalid),
    ],
)
def test_invalid_features(feature: Any, error: type[DittoError]) -> None:
    with pytest.raises(error):
        check_feature(feature)


def test_valid_features_object() -> None:
    check_features(EXAMPLE_THING["features"])
    check_features({})
    check_features({"lamp": None, "sensor-1": {}, "with space": {}})


@pytest.mark.parametrize("feature_id", ["a/b", "", "x\x00", "ä"])
def test_feature_ids_must_be_valid_keys(feature_id: str) -> None:
    with pytest.raises(JsonKeyInvalid) as info:
        check_features({feature_id: {}})
    assert info.value.error_code == "json.key.invalid"


@pytest.mark.parametrize("value", [[], "features", 1])
def test_features_must_be_an_object(value: Any) -> None:
    with pytest.raises(JsonInvalid):
        check_features(value)


def test_every_feature_is_checked() -> None:
    with pytest.raises(FeatureDefinitionEmpty):
        check_features({"ok": {}, "bad": {"definition": []}})


# -------------------------------------------------------------------------------------------- check_value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("/", EXAMPLE_THING),
        ("/", {}),
        ("/policyId", "org.eclipse.ditto:policy"),
        ("/policyId", ":policy"),
        ("/definition", "org.eclipse.ditto:HeatingDevice:2.1.0"),
        ("/definition", None),
        ("/attributes", {"manufacturer": "ACME corp", "location": {"lat": 1.0}}),
        ("/attributes", {}),
        ("/attributes/manufacturer", "ACME corp"),
        ("/attributes/location", {"lat": 1.0, "lon": 2.0}),
        ("/attributes/list", [1, "two", None]),
        ("/attributes/x", None),
        ("/features", EXAMPLE_THING["features"]),
        ("/features/lamp", {"properties": {"on": True}}),
        ("/features/lamp", None),
        ("/features/lamp/definition", ["org.eclipse.ditto:Switcher:1.0.0"]),
        ("/features/lamp/properties", {"on": True}),
        ("/features/lamp/properties/on", True),
        ("/features/lamp/properties/color", {"r": 1, "g": 2}),
        ("/features/lamp/desiredProperties", {"on": False}),
        ("/features/lamp/desiredProperties/on", False),
    ],
)
def test_check_value_accepts(path: str, value: Any) -> None:
    check_value(resource_of(parse_pointer(path)), value)


@pytest.mark.parametrize(
    ("path", "value", "error", "code"),
    [
        ("/", [], JsonInvalid, "json.invalid"),
        ("/", "thing", JsonInvalid, "json.invalid"),
        ("/policyId", 42, JsonInvalid, "json.invalid"),
        ("/policyId", "no-colon", PolicyIdInvalid, "policies:id.invalid"),
        ("/policyId", "ns:a/b", PolicyIdInvalid, "policies:id.invalid"),
        ("/definition", "a:b", ThingDefinitionInvalid, "things:definition.identifier.invalid"),
        ("/definition", 1, ThingDefinitionInvalid, "things:definition.identifier.invalid"),
        ("/attributes", [], JsonInvalid, "json.invalid"),
        ("/attributes", "x", JsonInvalid, "json.invalid"),
        ("/attributes", {"a/b": 1}, JsonKeyInvalid, "json.key.invalid"),
        ("/attributes/location", {"la/t": 1}, JsonKeyInvalid, "json.key.invalid"),
        ("/features", [], JsonInvalid, "json.invalid"),
        ("/features", {"f/1": {}}, JsonKeyInvalid, "json.key.invalid"),
        ("/features/lamp", 1, JsonInvalid, "json.invalid"),
        ("/features/lamp", {"definition": []}, FeatureDefinitionEmpty, "things:feature.definition.empty"),
        ("/features/lamp/definition", [], FeatureDefinitionEmpty, "things:feature.definition.empty"),
        (
            "/features/lamp/definition",
            ["x"],
            FeatureDefinitionIdentifierInvalid,
            "things:feature.definition.identifier.invalid",
        ),
        ("/features/lamp/definition", "a:b:c", JsonInvalid, "json.invalid"),
        ("/features/lamp/properties", 1, JsonInvalid, "json.invalid"),
        ("/features/lamp/properties", {"\x00": 1}, JsonKeyInvalid, "json.key.invalid"),
        ("/features/lamp/properties/color", {"r/g": 1}, JsonKeyInvalid, "json.key.invalid"),
        ("/features/lamp/desiredProperties", [], JsonInvalid, "json.invalid"),
        ("/features/lamp/desiredProperties/x", {"a/b": 1}, JsonKeyInvalid, "json.key.invalid"),
    ],
)
def test_check_value_rejects(path: str, value: Any, error: type[DittoError], code: str) -> None:
    with pytest.raises(error) as info:
        check_value(resource_of(parse_pointer(path)), value)
    assert info.value.status == 400
    assert info.value.error_code == code


# -------------------------------------------------------------------------------------------- thing body


@pytest.mark.parametrize(
    "body",
    [
        EXAMPLE_THING,
        {},
        {"attributes": None, "features": None},
        {"definition": None},
        {"policyId": "ns:policy", "attributes": {}, "features": {}},
    ],
)
def test_valid_thing_bodies(body: dict[str, Any]) -> None:
    check_thing_body(body)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], JsonInvalid),
        (None, JsonInvalid),
        ({"policyId": 5}, JsonInvalid),
        ({"policyId": "1bad:x"}, PolicyIdInvalid),
        ({"definition": "bad"}, ThingDefinitionInvalid),
        ({"attributes": []}, JsonInvalid),
        ({"attributes": {"a": {"b/c": 1}}}, JsonKeyInvalid),
        ({"features": []}, JsonInvalid),
        ({"features": {"a/b": {}}}, JsonKeyInvalid),
        ({"features": {"f": {"properties": {"x\x1f": 1}}}}, JsonKeyInvalid),
        ({"features": {"f": {"definition": []}}}, FeatureDefinitionEmpty),
    ],
)
def test_invalid_thing_bodies(body: Any, error: type[DittoError]) -> None:
    with pytest.raises(error):
        check_thing_body(body)
