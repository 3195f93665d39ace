"""What seeding changes on an entity that already exists, as a JSON merge patch (RFC 7396).

The seed owns a thing's ``policyId``, ``definition``, ``attributes`` and the ``definition`` of each seeded
feature, and adds seeded features that are missing. It does not reset feature property values: those belong to
the devices (and the simulator), so that restarting a seeded server keeps the twins' live state. With
``reset`` the whole seed document is the target instead.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


def without_metadata(document: JsonObject) -> JsonObject:
    """The document without Ditto's ``_revision``-like fields and the id, for comparing contents."""
    return {k: v for k, v in document.items() if not k.startswith("_") and k not in ("thingId", "policyId")}


def merge_patch_between(current: Any, desired: Any) -> Any:
    """A merge patch turning ``current`` into ``desired``; ``{}`` when they are equal. Keys of ``current``
    missing from ``desired`` become ``null`` (merge patch's deletion)."""
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return desired
    patch: JsonObject = {}
    for key, value in desired.items():
        if key not in current:
            patch[key] = value
        elif current[key] != value:
            patch[key] = (
                merge_patch_between(current[key], value)
                if isinstance(value, dict) and isinstance(current[key], dict)
                else value
            )
    for key in current:
        if key not in desired:
            patch[key] = None
    return patch


def _present(pairs: dict[str, Any]) -> JsonObject:
    return {k: v for k, v in pairs.items() if v is not None}


def seed_owned_views(current: JsonObject, seed: JsonObject) -> tuple[JsonObject, JsonObject]:
    """The parts of an existing thing the seed owns, as (current, desired) documents of the same shape."""
    have = _present(
        {
            "policyId": current.get("policyId"),
            "definition": current.get("definition"),
            "attributes": current.get("attributes"),
        }
    )
    want = _present(
        {
            "policyId": seed.get("policyId"),
            "definition": seed.get("definition"),
            "attributes": seed.get("attributes"),
        }
    )
    current_features: JsonObject = current.get("features") or {}
    have_features: JsonObject = {}
    want_features: JsonObject = {}
    for feature_id, feature in (seed.get("features") or {}).items():
        if feature_id not in current_features:
            want_features[feature_id] = feature
        elif "definition" in feature:
            have_features[feature_id] = _present(
                {"definition": current_features[feature_id].get("definition")}
            )
            want_features[feature_id] = {"definition": feature["definition"]}
    if want_features:
        have["features"] = have_features
        want["features"] = want_features
    return have, want


def thing_patch(current: JsonObject, seed: JsonObject, *, reset: bool = False) -> JsonObject:
    """The merge patch seeding applies to an existing thing (``{}``: nothing to do)."""
    if reset:
        have = {k: v for k, v in current.items() if not k.startswith("_") and k != "thingId"}
        want = {k: v for k, v in seed.items() if k != "thingId"}
        patch = merge_patch_between(have, want)
    else:
        patch = merge_patch_between(*seed_owned_views(current, seed))
    return patch if isinstance(patch, dict) else {}


def policy_differs(current: JsonObject, desired: JsonObject) -> bool:
    """Whether an existing policy's contents (entries, imports) differ from the seed's."""
    return without_metadata(current) != without_metadata(desired)
