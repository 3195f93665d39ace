"""Shape checks for Thing JSON and its parts (``basic-thing``, ``basic-feature``, JSON schema ``thing_v2``)."""

from __future__ import annotations

import re
from typing import Any

from ditto_compat.domain.resources import Kind, ThingResource
from ditto_compat.errors import (
    FeatureDefinitionEmpty,
    FeatureDefinitionIdentifierInvalid,
    JsonInvalid,
    JsonKeyInvalid,
    ThingDefinitionInvalid,
)
from ditto_compat.model.ids import check_policy_id, is_valid_key

# Ditto's DefinitionIdentifier: "namespace:name:version" or an URL
_IDENTIFIER_RE = re.compile(r"^[_a-zA-Z0-9\-.]+:[_a-zA-Z0-9\-.]+:[_a-zA-Z0-9\-.]+$")
_URL_RE = re.compile(r"^https?://\S+$")

THING_SIZE_LIMIT = 100 * 1024


def is_definition_identifier(value: Any) -> bool:
    return isinstance(value, str) and (
        _IDENTIFIER_RE.match(value) is not None or _URL_RE.match(value) is not None
    )


def check_keys(value: Any, where: str) -> None:
    """Every key of nested objects must be a valid Ditto JSON key (no ``/``, no control characters)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if not is_valid_key(key):
                raise JsonKeyInvalid(f"The JSON key <{key}> in the {where} is invalid.")
            check_keys(inner, where)


def _require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonInvalid(f"The {what} must be a JSON object.")
    return value


def check_thing_definition(value: Any) -> None:
    if value is not None and not is_definition_identifier(value):
        raise ThingDefinitionInvalid(f"Thing Definition <{value}> is invalid!")


def check_feature_definition(value: Any) -> None:
    if not isinstance(value, list):
        raise JsonInvalid("The Feature Definition must be a JSON array of identifiers.")
    if not value:
        raise FeatureDefinitionEmpty()
    for identifier in value:
        if not is_definition_identifier(identifier):
            raise FeatureDefinitionIdentifierInvalid(
                f"Feature Definition Identifier <{identifier}> is invalid!"
            )


def check_feature(value: Any) -> None:
    """A feature is an object with optional ``definition``, ``properties`` and ``desiredProperties``.

    Ditto also accepts ``null`` as a feature (an empty feature without properties)."""
    if value is None:
        return
    feature = _require_object(value, "Feature")
    if "definition" in feature and feature["definition"] is not None:
        check_feature_definition(feature["definition"])
    for part in ("properties", "desiredProperties"):
        if part in feature and feature[part] is not None:
            check_keys(_require_object(feature[part], f"Feature {part}"), f"Feature {part}")


def check_features(value: Any) -> None:
    features = _require_object(value, "Features")
    for fid, feature in features.items():
        if not is_valid_key(fid):
            raise JsonKeyInvalid(f"The Feature ID <{fid}> is invalid.")
        check_feature(feature)


def check_value(resource: ThingResource, value: Any) -> None:
    """Validate the new value of ``resource`` (a PUT body or the result of a merge)."""
    kind = resource.kind
    if kind is Kind.POLICY_ID:
        if not isinstance(value, str):
            raise JsonInvalid("The Policy ID must be a JSON string.")
        check_policy_id(value)
    elif kind is Kind.DEFINITION:
        check_thing_definition(value)
    elif kind is Kind.ATTRIBUTES:
        check_keys(_require_object(value, "Attributes"), "Attributes")
    elif kind is Kind.FEATURES:
        check_features(value)
    elif kind is Kind.FEATURE:
        check_feature(value)
    elif kind is Kind.FEATURE_DEFINITION:
        check_feature_definition(value)
    elif kind in (Kind.FEATURE_PROPERTIES, Kind.FEATURE_DESIRED_PROPERTIES):
        check_keys(_require_object(value, "Feature properties"), "Feature properties")
    elif kind in (Kind.ATTRIBUTE, Kind.FEATURE_PROPERTY, Kind.FEATURE_DESIRED_PROPERTY):
        check_keys(value, "value")
    elif kind is Kind.THING:
        check_thing_body(value)


def check_thing_body(thing: Any) -> None:
    body = _require_object(thing, "Thing")
    if "policyId" in body:
        policy_id = body["policyId"]
        if not isinstance(policy_id, str):
            raise JsonInvalid("The Policy ID must be a JSON string.")
        check_policy_id(policy_id)
    if "definition" in body:
        check_thing_definition(body["definition"])
    if "attributes" in body and body["attributes"] is not None:
        check_keys(_require_object(body["attributes"], "Attributes"), "Attributes")
    if "features" in body and body["features"] is not None:
        check_features(body["features"])
