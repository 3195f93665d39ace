"""The addressable parts of a Thing (``basic-thing``, ``protocol-specification-things``) and their Ditto names.

Every Thing command addresses one resource by its path. The kind of resource decides the command and event
names (``modifyFeatureProperty`` -> ``featurePropertyModified``) and the error codes
(``things:feature.property.notfound``); this table is the single place those names live.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from ditto_compat.errors import DittoError, ResourceNotFound
from ditto_compat.model.pointer import Pointer, format_pointer


class Kind(Enum):
    THING = "Thing"
    POLICY_ID = "PolicyId"
    DEFINITION = "Definition"  # Ditto: modifyDefinition / definitionModified, not ...ThingDefinition
    ATTRIBUTES = "Attributes"
    ATTRIBUTE = "Attribute"
    FEATURES = "Features"
    FEATURE = "Feature"
    FEATURE_DEFINITION = "FeatureDefinition"
    FEATURE_PROPERTIES = "FeatureProperties"
    FEATURE_PROPERTY = "FeatureProperty"
    FEATURE_DESIRED_PROPERTIES = "FeatureDesiredProperties"
    FEATURE_DESIRED_PROPERTY = "FeatureDesiredProperty"


# kind -> error-code stem, as in Ditto's exceptions (things:<stem>.notfound / .notmodifiable)
_ERROR_STEM = {
    Kind.THING: "thing",
    Kind.POLICY_ID: "policyId",
    Kind.DEFINITION: "definition",
    Kind.ATTRIBUTES: "attributes",
    Kind.ATTRIBUTE: "attribute",
    Kind.FEATURES: "features",
    Kind.FEATURE: "feature",
    Kind.FEATURE_DEFINITION: "feature.definition",
    Kind.FEATURE_PROPERTIES: "feature.properties",
    Kind.FEATURE_PROPERTY: "feature.property",
    Kind.FEATURE_DESIRED_PROPERTIES: "feature.desiredProperties",
    Kind.FEATURE_DESIRED_PROPERTY: "feature.desiredProperty",
}


@dataclass(frozen=True, slots=True)
class ThingResource:
    """A resource of a Thing: its kind, its full path and, for features, the feature id and inner pointer."""

    kind: Kind
    path: Pointer
    feature_id: str | None = None
    inner: Pointer = ()

    @property
    def command_name(self) -> str:
        return self.kind.value

    def event_type(self, verb: str) -> str:
        """``things.events:featurePropertyModified`` for verb ``Modified``."""
        name = self.kind.value
        return f"things.events:{name[0].lower()}{name[1:]}{verb}"

    def describe(self, thing_id: str) -> str:
        feature = f" of the Feature with ID '{self.feature_id}'" if self.feature_id is not None else ""
        inner = format_pointer(self.inner)
        texts = {
            Kind.THING: f"The Thing with ID '{thing_id}'",
            Kind.POLICY_ID: f"The Policy ID of the Thing with ID '{thing_id}'",
            Kind.DEFINITION: f"The Definition of the Thing with ID '{thing_id}'",
            Kind.ATTRIBUTES: f"The Attributes of the Thing with ID '{thing_id}'",
            Kind.ATTRIBUTE: f"The Attribute with key '{inner}' on the Thing with ID '{thing_id}'",
            Kind.FEATURES: f"The Features on the Thing with ID '{thing_id}'",
            Kind.FEATURE: f"The Feature with ID '{self.feature_id}' on the Thing with ID '{thing_id}'",
            Kind.FEATURE_DEFINITION: f"The Definition{feature} on the Thing with ID '{thing_id}'",
            Kind.FEATURE_PROPERTIES: f"The Properties{feature} on the Thing with ID '{thing_id}'",
            Kind.FEATURE_PROPERTY: (
                f"The Property with JSON Pointer '{inner}'{feature} on the Thing with ID '{thing_id}'"
            ),
            Kind.FEATURE_DESIRED_PROPERTIES: f"The desired properties{feature} on the Thing with ID '{thing_id}'",
            Kind.FEATURE_DESIRED_PROPERTY: (
                f"The desired property with JSON Pointer '{inner}'{feature} on the Thing with ID '{thing_id}'"
            ),
        }
        return texts[self.kind]

    def not_found(self, thing_id: str) -> DittoError:
        error = _resource_error(f"things:{_ERROR_STEM[self.kind]}.notfound", 404)
        return error(
            f"{self.describe(thing_id)} could not be found or the requester had insufficient permissions to access it.",
            "Check if the ID of your requested Thing was correct and you have sufficient permissions.",
        )

    def not_modifiable(self, thing_id: str) -> DittoError:
        error = _resource_error(f"things:{_ERROR_STEM[self.kind]}.notmodifiable", 403)
        return error(
            f"{self.describe(thing_id)} could not be modified as the requester had insufficient permissions "
            "(WRITE is required).",
            "Check if the ID of the Thing was correct and you have sufficient permissions.",
        )


_ERROR_CLASSES: dict[str, type[DittoError]] = {}


def _resource_error(code: str, status: int) -> type[DittoError]:
    cls = _ERROR_CLASSES.get(code)
    if cls is None:
        cls = type(code, (DittoError,), {"error_code": code, "status": status})
        _ERROR_CLASSES[code] = cls
    return cls


def thing_not_found(thing_id: str) -> DittoError:
    return ThingResource(Kind.THING, ()).not_found(thing_id)


@lru_cache(maxsize=4096)  # a few paths are addressed over and over (telemetry); resources are immutable
def resource_of(path: Pointer) -> ThingResource:
    """Classify a path inside a Thing; paths that address nothing Ditto knows answer 404."""
    n = len(path)
    if n == 0:
        return ThingResource(Kind.THING, path)
    head = path[0]
    if head == "policyId" and n == 1:
        return ThingResource(Kind.POLICY_ID, path)
    if head == "definition" and n == 1:
        return ThingResource(Kind.DEFINITION, path)
    if head == "attributes":
        if n == 1:
            return ThingResource(Kind.ATTRIBUTES, path)
        return ThingResource(Kind.ATTRIBUTE, path, inner=path[1:])
    if head == "features":
        if n == 1:
            return ThingResource(Kind.FEATURES, path)
        fid = path[1]
        if n == 2:
            return ThingResource(Kind.FEATURE, path, feature_id=fid)
        part = path[2]
        if part == "definition" and n == 3:
            return ThingResource(Kind.FEATURE_DEFINITION, path, feature_id=fid)
        if part == "properties":
            if n == 3:
                return ThingResource(Kind.FEATURE_PROPERTIES, path, feature_id=fid)
            return ThingResource(Kind.FEATURE_PROPERTY, path, feature_id=fid, inner=path[3:])
        if part == "desiredProperties":
            if n == 3:
                return ThingResource(Kind.FEATURE_DESIRED_PROPERTIES, path, feature_id=fid)
            return ThingResource(Kind.FEATURE_DESIRED_PROPERTY, path, feature_id=fid, inner=path[3:])
    raise ResourceNotFound(f"The resource '{format_pointer(path)}' of a Thing does not exist.")
