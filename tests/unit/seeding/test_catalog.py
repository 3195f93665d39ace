"""The seed files expand into complete Ditto things and policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ditto_compat.seeding.catalog import SeedError, deep_merge, load_catalog, load_domain

DOMAINS = {"sensors", "vehicles", "buildings", "city"}


def test_every_domain_expands_into_complete_things() -> None:
    domains = load_catalog()
    assert {d.name for d in domains} == DOMAINS
    all_ids = [thing_id for d in domains for thing_id in d.thing_ids]
    assert len(all_ids) == len(set(all_ids)) >= 40
    for domain in domains:
        assert domain.policy_id.startswith(domain.namespace + ":")
        for thing in domain.things:
            assert thing["thingId"].startswith(domain.namespace + ":")
            assert thing["policyId"] == domain.policy_id
            assert thing["definition"].count(":") == 2, thing["thingId"]
            attributes = thing["attributes"]
            # devices name their maker; districts are places, not devices
            assert attributes.get("manufacturer") or attributes.get("population"), thing["thingId"]
            # where it is: fixed (attributes) or moving (a feature)
            assert {"location", "address"} & (set(attributes) | set(thing["features"])), thing["thingId"]
            assert thing["features"], thing["thingId"]
            for feature in thing["features"].values():
                assert feature.get("properties"), thing["thingId"]


def test_thing_fields_override_their_kind() -> None:
    fleet = next(d for d in load_catalog(only=["vehicles"]))
    bus = next(t for t in fleet.things if t["thingId"] == "org.acme.fleet:bus-vbz-33-01")
    assert bus["attributes"]["manufacturer"] == "Solaris"  # own value wins
    assert bus["attributes"]["depot"] == "Zurich Hardau"  # kept from the kind
    assert bus["features"]["passengers"]["properties"] == {
        "count": 12,
        "capacity": 145,
        "boarded": 0,
        "alighted": 0,
    }
    assert bus["features"]["climate"]["desiredProperties"] == {"targetTemperature": 21.0}
    assert set(fleet.routes) >= {"line-31", "line-33", "line-72"}
    assert bus["attributes"]["route"] in fleet.routes


def test_policy_subjects_are_filled_in() -> None:
    domain = load_catalog(only=["org.acme.buildings"], owner="nginx:alice", viewer="nginx:bob")[0]
    assert "policyId" not in domain.policy
    assert domain.policy["entries"]["owner"]["subjects"] == {
        "nginx:alice": {"type": "owner of the example buildings"}
    }
    assert set(domain.policy["entries"]["viewer"]["subjects"]) == {"nginx:bob"}
    assert domain.policy["entries"]["viewer"]["resources"]["thing:/"]["grant"] == ["READ"]
    assert "{{" not in json.dumps(domain.policy)


def test_owner_as_viewer_keeps_one_entry() -> None:
    domain = load_catalog(only=["city"], owner="nginx:ditto", viewer="nginx:ditto")[0]
    assert set(domain.policy["entries"]) == {"owner"}


def test_unknown_domain_and_bad_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="unknown domain"):
        load_catalog(only=["sensors", "spaceships"])
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "namespace": "x.y",
                "policy": {"policyId": "x.y:p", "entries": {}},
                "things": [{"id": "a", "kind": "nope"}],
            }
        )
    )
    with pytest.raises(SeedError, match="unknown kind"):
        load_domain(bad)
    with pytest.raises(SeedError, match="no seed files"):
        load_catalog(tmp_path / "empty")


def test_deep_merge_replaces_lists_and_merges_objects() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    merged = deep_merge(base, {"a": {"y": [3]}, "c": 2})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}
