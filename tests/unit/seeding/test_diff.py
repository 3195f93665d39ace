"""What seeding changes on an existing thing: what the seed owns, never the live property values."""

from __future__ import annotations

from typing import Any

import pytest

from ditto_compat.seeding.diff import merge_patch_between, policy_differs, thing_patch

SEED: dict[str, Any] = {
    "thingId": "org.acme:s1",
    "policyId": "org.acme:policy",
    "definition": "org.acme:Sensor:1.0.0",
    "attributes": {"model": "X", "location": {"room": "A"}},
    "features": {
        "temperature": {"definition": ["org.acme:Temperature:1.0.0"], "properties": {"value": 20.0}},
        "battery": {"properties": {"level": 100}},
    },
}


@pytest.mark.parametrize(
    ("current", "desired", "patch"),
    [
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1}, {"a": 2}, {"a": 2}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 3}}, {"a": {"y": 3}}),
        ({"a": [1]}, {"a": [1, 2]}, {"a": [1, 2]}),
        ({"a": 1}, {"a": {"x": 1}}, {"a": {"x": 1}}),
    ],
)
def test_merge_patch_between(current: Any, desired: Any, patch: Any) -> None:
    assert merge_patch_between(current, desired) == patch


def live(**changes: Any) -> dict[str, Any]:
    thing = {**SEED, "_revision": 9}
    thing["features"] = {
        "temperature": {"definition": ["org.acme:Temperature:1.0.0"], "properties": {"value": 23.4}},
        "battery": {"properties": {"level": 71}},
        "extra": {"properties": {"added": "by a user"}},
    }
    thing.update(changes)
    return thing


def test_live_values_and_extra_features_are_kept() -> None:
    assert thing_patch(live(), SEED) == {}


def test_seed_owned_parts_are_brought_back() -> None:
    current = live(attributes={"model": "Y", "location": {"room": "A"}, "note": "x"}, definition=None)
    del current["features"]["battery"]
    patch = thing_patch(current, SEED)
    assert patch == {
        "attributes": {"model": "X", "note": None},
        "definition": "org.acme:Sensor:1.0.0",
        "features": {"battery": {"properties": {"level": 100}}},
    }


def test_reset_restores_everything() -> None:
    patch = thing_patch(live(), SEED, reset=True)
    assert patch == {
        "features": {
            "temperature": {"properties": {"value": 20.0}},
            "battery": {"properties": {"level": 100}},
            "extra": None,
        }
    }


def test_policy_comparison_ignores_id_and_metadata() -> None:
    entries = {"owner": {"subjects": {"nginx:ditto": {"type": "t"}}, "resources": {}}}
    assert not policy_differs({"policyId": "a:b", "_revision": 3, "entries": entries}, {"entries": entries})
    assert policy_differs({"policyId": "a:b", "entries": {}}, {"entries": entries})
