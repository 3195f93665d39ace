"""The addressable parts of a Thing and their Ditto names (``basic-thing``, ``protocol-specification-things``,
``basic-errors``; signal names as in Ditto's ``things.model.signals``)."""

from __future__ import annotations

import pytest

from ditto_compat.domain.resources import Kind, ThingResource, resource_of, thing_not_found
from ditto_compat.errors import DittoError, ResourceNotFound
from ditto_compat.model.pointer import Pointer, parse_pointer

THING_ID = "org.eclipse.ditto:thing-1"


@pytest.mark.parametrize(
    ("path", "kind", "feature_id", "inner"),
    [
        ("/", Kind.THING, None, ()),
        ("/policyId", Kind.POLICY_ID, None, ()),
        ("/definition", Kind.DEFINITION, None, ()),
        ("/attributes", Kind.ATTRIBUTES, None, ()),
        ("/attributes/location", Kind.ATTRIBUTE, None, ("location",)),
        ("/attributes/location/latitude", Kind.ATTRIBUTE, None, ("location", "latitude")),
        ("/features", Kind.FEATURES, None, ()),
        ("/features/lamp", Kind.FEATURE, "lamp", ()),
        ("/features/lamp/definition", Kind.FEATURE_DEFINITION, "lamp", ()),
        ("/features/lamp/properties", Kind.FEATURE_PROPERTIES, "lamp", ()),
        ("/features/lamp/properties/on", Kind.FEATURE_PROPERTY, "lamp", ("on",)),
        ("/features/lamp/properties/a/b", Kind.FEATURE_PROPERTY, "lamp", ("a", "b")),
        ("/features/lamp/desiredProperties", Kind.FEATURE_DESIRED_PROPERTIES, "lamp", ()),
        ("/features/lamp/desiredProperties/on", Kind.FEATURE_DESIRED_PROPERTY, "lamp", ("on",)),
        # names that are resource names elsewhere are plain keys below attributes and properties
        ("/attributes/features/x", Kind.ATTRIBUTE, None, ("features", "x")),
        ("/features/properties/properties/definition", Kind.FEATURE_PROPERTY, "properties", ("definition",)),
        ("/features/definition", Kind.FEATURE, "definition", ()),
    ],
)
def test_resource_of(path: str, kind: Kind, feature_id: str | None, inner: Pointer) -> None:
    pointer = parse_pointer(path)
    resource = resource_of(pointer)
    assert resource.kind is kind
    assert resource.path == pointer
    assert resource.feature_id == feature_id
    assert resource.inner == inner


@pytest.mark.parametrize(
    "path",
    [
        "/thingId",
        "/policyId/x",
        "/definition/x",
        "/_revision",
        "/_policy",
        "/unknown",
        "/features/lamp/unknown",
        "/features/lamp/definition/0",
        "/features/lamp/properties2",
    ],
)
def test_unknown_resources_are_not_found(path: str) -> None:
    with pytest.raises(ResourceNotFound) as info:
        resource_of(parse_pointer(path))
    assert info.value.status == 404
    assert path in info.value.message


@pytest.mark.parametrize(
    ("path", "command", "modified"),
    [
        ("/", "Thing", "thingModified"),
        ("/policyId", "PolicyId", "policyIdModified"),
        # Ditto names the Thing definition signals without "Thing": modifyDefinition, definitionModified
        ("/definition", "Definition", "definitionModified"),
        ("/attributes", "Attributes", "attributesModified"),
        ("/attributes/a", "Attribute", "attributeModified"),
        ("/features", "Features", "featuresModified"),
        ("/features/f", "Feature", "featureModified"),
        ("/features/f/definition", "FeatureDefinition", "featureDefinitionModified"),
        ("/features/f/properties", "FeatureProperties", "featurePropertiesModified"),
        ("/features/f/properties/p", "FeatureProperty", "featurePropertyModified"),
        ("/features/f/desiredProperties", "FeatureDesiredProperties", "featureDesiredPropertiesModified"),
        ("/features/f/desiredProperties/p", "FeatureDesiredProperty", "featureDesiredPropertyModified"),
    ],
)
def test_signal_names(path: str, command: str, modified: str) -> None:
    resource = resource_of(parse_pointer(path))
    assert resource.command_name == command
    assert resource.event_type("Modified") == f"things.events:{modified}"


@pytest.mark.parametrize(
    ("path", "created", "deleted"),
    [
        ("/", "thingCreated", "thingDeleted"),
        ("/definition", "definitionCreated", "definitionDeleted"),
        ("/attributes/a", "attributeCreated", "attributeDeleted"),
        ("/features/f/properties/p", "featurePropertyCreated", "featurePropertyDeleted"),
    ],
)
def test_event_types_for_other_verbs(path: str, created: str, deleted: str) -> None:
    resource = resource_of(parse_pointer(path))
    assert resource.event_type("Created") == f"things.events:{created}"
    assert resource.event_type("Deleted") == f"things.events:{deleted}"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/", "things:thing.notfound"),
        ("/policyId", "things:policyId.notfound"),
        ("/definition", "things:definition.notfound"),
        ("/attributes", "things:attributes.notfound"),
        ("/attributes/a", "things:attribute.notfound"),
        ("/features", "things:features.notfound"),
        ("/features/f", "things:feature.notfound"),
        ("/features/f/definition", "things:feature.definition.notfound"),
        ("/features/f/properties", "things:feature.properties.notfound"),
        ("/features/f/properties/p", "things:feature.property.notfound"),
        ("/features/f/desiredProperties", "things:feature.desiredProperties.notfound"),
        ("/features/f/desiredProperties/p", "things:feature.desiredProperty.notfound"),
    ],
)
def test_not_found_errors(path: str, code: str) -> None:
    error = resource_of(parse_pointer(path)).not_found(THING_ID)
    assert isinstance(error, DittoError)
    assert error.status == 404
    assert error.error_code == code
    assert THING_ID in error.message
    body = error.to_json()
    assert body["status"] == 404
    assert body["error"] == code
    assert body["message"] == error.message
    assert body["description"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/", "things:thing.notmodifiable"),
        ("/policyId", "things:policyId.notmodifiable"),
        ("/attributes/a", "things:attribute.notmodifiable"),
        ("/features/f/properties/p", "things:feature.property.notmodifiable"),
        ("/features/f/desiredProperties", "things:feature.desiredProperties.notmodifiable"),
    ],
)
def test_not_modifiable_errors(path: str, code: str) -> None:
    error = resource_of(parse_pointer(path)).not_modifiable(THING_ID)
    assert error.status == 403
    assert error.error_code == code
    assert THING_ID in error.message
    assert "WRITE" in error.message


def test_error_messages_name_the_feature_and_the_pointer() -> None:
    message = resource_of(parse_pointer("/features/lamp/properties/a/b")).not_found(THING_ID).message
    assert "'lamp'" in message
    assert "'/a/b'" in message
    assert "'/location'" in resource_of(parse_pointer("/attributes/location")).not_found(THING_ID).message


def test_the_same_code_gives_the_same_error_class() -> None:
    first = resource_of(parse_pointer("/attributes/a")).not_found(THING_ID)
    second = resource_of(parse_pointer("/attributes/b")).not_found("ns:other")
    assert type(first) is type(second)
    assert type(first) is not type(resource_of(parse_pointer("/attributes")).not_found(THING_ID))


def test_thing_not_found() -> None:
    error = thing_not_found(THING_ID)
    assert error.status == 404
    assert error.error_code == "things:thing.notfound"
    assert f"'{THING_ID}'" in error.message


def test_thing_resource_is_immutable() -> None:
    resource = ThingResource(Kind.ATTRIBUTES, ("attributes",))
    with pytest.raises(AttributeError):
        resource.kind = Kind.THING  # type: ignore[misc]
