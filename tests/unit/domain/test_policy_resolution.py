"""Policy imports, entry references, transitive imports and the lockout check (``basic-policy`` "Policy
imports", "Entry references", "Transitive import resolution", "Effective policy view"; Ditto's
``PoliciesValidator``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ditto_compat.domain.enforcer import READ, WRITE, Enforcer
from ditto_compat.domain.policy_resolution import (
    MAX_IMPORT_DEPTH,
    check_policy_lockout,
    import_ids,
    imported_label,
    missing_policy_ids,
    required_policy_ids,
    resolve_entries,
    resolved_view,
)

Policy = dict[str, Any]
Loaded = Mapping[str, Mapping[str, Any] | None]

RW = {"grant": ["READ", "WRITE"], "revoke": []}
R = {"grant": ["READ"], "revoke": []}


def subjects(*ids: str) -> dict[str, Any]:
    return {sid: {"type": "test"} for sid in ids}


def labels(entries: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [label for label, _ in entries]


def by_label(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return dict(entries)


def enforcer_of(policy: Policy, loaded: Loaded, namespace: str | None = None) -> Enforcer:
    return Enforcer.compile(resolve_entries(policy, loaded), namespace=namespace)


# ------------------------------------------------------------------------------------------- basic imports

IMPORTED: Policy = {
    "policyId": "ditto:imported-policy",
    "entries": {
        "DEFAULT": {"subjects": subjects("test:default"), "resources": {"thing:/": R}},
        "IMPLICIT": {
            "subjects": subjects("test:implicit"),
            "resources": {"thing:/": R},
            "importable": "implicit",
        },
        "EXPLICIT": {
            "subjects": subjects("test:explicit"),
            "resources": {"thing:/": R},
            "importable": "explicit",
        },
        "NEVER": {"subjects": subjects("test:never"), "resources": {"thing:/": R}, "importable": "never"},
    },
}
ANOTHER: Policy = {
    "policyId": "ditto:another-imported-policy",
    "entries": {
        "EXPLICIT": {
            "subjects": subjects("test:another"),
            "resources": {"thing:/": R},
            "importable": "explicit",
        },
        "OPEN": {"subjects": subjects("test:open"), "resources": {"thing:/": R}},
    },
}
IMPORTING: Policy = {
    "policyId": "ditto:importing-policy",
    "entries": {"OWN": {"subjects": subjects("test:own"), "resources": {"thing:/": RW, "policy:/": RW}}},
    "imports": {
        "ditto:imported-policy": {"entries": ["EXPLICIT", "NEVER"]},
        "ditto:another-imported-policy": {},
    },
}
LOADED: dict[str, Policy | None] = {
    "ditto:imported-policy": IMPORTED,
    "ditto:another-imported-policy": ANOTHER,
}


def test_import_ids() -> None:
    assert import_ids(IMPORTING) == ["ditto:imported-policy", "ditto:another-imported-policy"]
    assert import_ids({"entries": {}}) == []
    assert import_ids({"imports": None}) == []


def test_imported_labels() -> None:
    assert imported_label("ditto:imported-policy", "EXPLICIT") == "imported-ditto:imported-policy-EXPLICIT"


def test_importable_implicit_explicit_never() -> None:
    resolved = resolve_entries(IMPORTING, LOADED)
    assert labels(resolved) == [
        "OWN",
        "imported-ditto:imported-policy-DEFAULT",  # importable defaults to implicit
        "imported-ditto:imported-policy-IMPLICIT",
        "imported-ditto:imported-policy-EXPLICIT",  # listed
        # NEVER is listed but never imported
        "imported-ditto:another-imported-policy-OPEN",  # its EXPLICIT entry is not listed
    ]
    assert by_label(resolved)["imported-ditto:imported-policy-EXPLICIT"] == IMPORTED["entries"]["EXPLICIT"]


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        ("test:own", True),
        ("test:default", True),
        ("test:implicit", True),
        ("test:explicit", True),
        ("test:never", False),
        ("test:another", False),
        ("test:open", True),
    ],
)
def test_imported_entries_are_evaluated_like_own_ones(subject: str, allowed: bool) -> None:
    assert enforcer_of(IMPORTING, LOADED).has([subject], "thing:/", [READ]) is allowed


def test_missing_or_deleted_imports_contribute_nothing() -> None:
    for loaded in ({}, {"ditto:imported-policy": None, "ditto:another-imported-policy": None}):
        assert labels(resolve_entries(IMPORTING, loaded)) == ["OWN"]


def test_imported_entries_keep_their_namespaces() -> None:
    template = {
        "policyId": "t:template",
        "entries": {
            "reader": {"subjects": subjects("bob"), "resources": {"thing:/": R}, "namespaces": ["com.acme"]}
        },
    }
    policy = {"policyId": "t:p", "entries": {}, "imports": {"t:template": {}}}
    assert enforcer_of(policy, {"t:template": template}, "com.acme").has(["bob"], "thing:/", [READ])
    assert not enforcer_of(policy, {"t:template": template}, "org.other").has(["bob"], "thing:/", [READ])


def test_resolution_does_not_change_its_input() -> None:
    before = copy.deepcopy((IMPORTING, LOADED, PLANT, TEMPLATE))
    resolve_entries(IMPORTING, LOADED)
    resolve_entries(PLANT, {TEMPLATE["policyId"]: TEMPLATE})
    assert before == (IMPORTING, LOADED, PLANT, TEMPLATE)


# ------------------------------------------------------------------------------------------ entry references

TEMPLATE: Policy = {
    "policyId": "energy-corp:power-plant-roles",
    "entries": {
        "operator": {
            "subjects": {},
            "resources": {
                "thing:/features/reactor": RW,
                "thing:/features/turbine": RW,
                "thing:/features/cooling": RW,
            },
            "importable": "implicit",
            "allowedAdditions": ["subjects"],
        },
        "safetyInspector": {
            "subjects": {},
            "resources": {
                "thing:/features/reactor": R,
                "thing:/features/cooling": R,
                "thing:/features/safetyLogs": R,
            },
            "importable": "implicit",
            "allowedAdditions": ["subjects"],
        },
    },
}
PLANT: Policy = {
    "policyId": "energy-corp:plant-42-policy",
    "imports": {"energy-corp:power-plant-roles": {}},
    "entries": {
        "operator": {
            "references": [{"import": "energy-corp:power-plant-roles", "entry": "operator"}],
            "subjects": {"integration:plant42-operators": {"type": "operator-group"}},
        },
        "safetyInspector": {
            "references": [{"import": "energy-corp:power-plant-roles", "entry": "safetyInspector"}],
            "subjects": {"oauth2:frank.grimes@energy-corp.com": {"type": "employee"}},
        },
        "admin": {
            "subjects": {"oauth2:plant-42-admin@energy-corp.com": {"type": "employee"}},
            "resources": {"policy:/": RW},
        },
    },
}


@pytest.mark.parametrize(
    ("subject", "resource", "permission", "allowed"),
    [
        ("integration:plant42-operators", "thing:/features/reactor", WRITE, True),
        ("integration:plant42-operators", "thing:/features/turbine/properties/rpm", READ, True),
        ("integration:plant42-operators", "thing:/features/safetyLogs", READ, False),
        ("oauth2:frank.grimes@energy-corp.com", "thing:/features/reactor", READ, True),
        ("oauth2:frank.grimes@energy-corp.com", "thing:/features/reactor", WRITE, False),
        ("oauth2:frank.grimes@energy-corp.com", "thing:/features/safetyLogs", READ, True),
        ("oauth2:frank.grimes@energy-corp.com", "thing:/features/turbine", READ, False),
        ("oauth2:plant-42-admin@energy-corp.com", "policy:/", WRITE, True),
        ("oauth2:plant-42-admin@energy-corp.com", "thing:/features/reactor", READ, False),
    ],
)
def test_the_power_plant_example(subject: str, resource: str, permission: str, allowed: bool) -> None:
    enforcer = enforcer_of(PLANT, {TEMPLATE["policyId"]: TEMPLATE})
    assert enforcer.has([subject], resource, [permission]) is allowed


def test_a_resolved_reference_merges_the_referenced_content_and_drops_the_references() -> None:
    resolved = by_label(resolve_entries(PLANT, {TEMPLATE["policyId"]: TEMPLATE}))
    assert resolved["operator"] == {
        "subjects": {"integration:plant42-operators": {"type": "operator-group"}},
        "resources": TEMPLATE["entries"]["operator"]["resources"],
    }
    # the template's entries are imported too (implicit), with no subjects they grant nothing
    assert "imported-energy-corp:power-plant-roles-operator" in resolved


def _with_target(target: dict[str, Any], referencing: dict[str, Any]) -> dict[str, Any]:
    """``referencing`` resolved against a local entry ``target``."""
    policy = {
        "policyId": "t:p",
        "entries": {"target": target, "entry": {**referencing, "references": [{"entry": "target"}]}},
    }
    return by_label(resolve_entries(policy, {}))["entry"]


OWN = {
    "subjects": subjects("own"),
    "resources": {"thing:/own": R},
    "namespaces": ["own.ns"],
}


@pytest.mark.parametrize(
    ("allowed_additions", "own_subjects", "own_resources", "own_namespaces"),
    [
        (None, True, True, True),  # absent: no restriction
        ([], False, False, False),  # empty: only the referenced content is effective
        (["subjects"], True, False, False),
        (["resources"], False, True, False),
        (["namespaces"], False, False, True),
        (["subjects", "resources", "namespaces"], True, True, True),
    ],
)
def test_allowed_additions_filter_the_referencing_entrys_own_content(
    allowed_additions: list[str] | None, own_subjects: bool, own_resources: bool, own_namespaces: bool
) -> None:
    target: dict[str, Any] = {
        "subjects": subjects("ref"),
        "resources": {"thing:/ref": R},
        "namespaces": ["ref.ns"],
    }
    if allowed_additions is not None:
        target["allowedAdditions"] = allowed_additions
    resolved = _with_target(target, OWN)
    assert ("own" in resolved["subjects"]) is own_subjects
    assert ("thing:/own" in resolved["resources"]) is own_resources
    assert ("own.ns" in resolved["namespaces"]) is own_namespaces
    assert "ref" in resolved["subjects"]
    assert "thing:/ref" in resolved["resources"]
    assert "ref.ns" in resolved["namespaces"]


def test_the_strictest_allowed_additions_across_references_apply() -> None:
    policy = {
        "policyId": "t:p",
        "entries": {
            "a": {"subjects": {}, "resources": {}, "allowedAdditions": ["subjects", "resources"]},
            "b": {"subjects": {}, "resources": {}, "allowedAdditions": ["subjects"]},
            "c": {"subjects": {}, "resources": {}},  # no restriction of its own
            "entry": {**OWN, "references": [{"entry": "a"}, {"entry": "b"}, {"entry": "c"}]},
        },
    }
    resolved = by_label(resolve_entries(policy, {}))["entry"]
    assert resolved["subjects"] == subjects("own")
    assert resolved["resources"] == {}
    assert "namespaces" not in resolved


def test_resources_merge_as_a_union_and_referenced_revokes_survive() -> None:
    target = {
        "subjects": {},
        "resources": {"thing:/a": {"grant": ["READ"], "revoke": ["WRITE"]}, "thing:/b": R},
    }
    own = {"subjects": subjects("s"), "resources": {"thing:/a": {"grant": ["WRITE"], "revoke": []}}}
    resolved = _with_target(target, own)
    assert resolved["resources"] == {
        "thing:/a": {"grant": ["WRITE", "READ"], "revoke": ["WRITE"]},
        "thing:/b": {"grant": ["READ"], "revoke": []},
    }
    enforcer = Enforcer.compile([("entry", resolved)])
    assert enforcer.has(["s"], "thing:/a", [READ])
    assert not enforcer.has(["s"], "thing:/a", [WRITE])


def test_subjects_merge_and_the_first_listed_reference_wins() -> None:
    policy = {
        "policyId": "t:p",
        "entries": {
            "first": {
                "subjects": {"x": {"type": "first", "expiry": "2030-01-01T00:00:00Z"}, "y": {"type": "y"}}
            },
            "second": {"subjects": {"x": {"type": "second"}, "z": {"type": "z"}}},
            "entry": {
                "subjects": {"x": {"type": "own"}, "own": {"type": "own"}},
                "references": [{"entry": "first"}, {"entry": "second"}],
            },
        },
    }
    resolved = by_label(resolve_entries(policy, {}))["entry"]
    assert resolved["subjects"] == {
        "x": {"type": "first", "expiry": "2030-01-01T00:00:00Z"},
        "own": {"type": "own"},
        "y": {"type": "y"},
        "z": {"type": "z"},
    }


def test_namespaces_merge_additively() -> None:
    resolved = _with_target({"subjects": {}, "namespaces": ["acme.vehicle"]}, {"subjects": subjects("s")})
    assert resolved["namespaces"] == ["acme.vehicle"]
    assert "namespaces" not in _with_target({"subjects": {}}, {"subjects": subjects("s"), "namespaces": []})


def test_local_references_resolve_one_level_deep_to_raw_content() -> None:
    policy = {
        "policyId": "t:p",
        "entries": {
            "a": {"subjects": subjects("sa"), "resources": {"thing:/a": R}, "references": [{"entry": "b"}]},
            "b": {"subjects": subjects("sb"), "resources": {"thing:/b": R}, "references": [{"entry": "a"}]},
            "c": {"subjects": subjects("sc"), "resources": {"thing:/c": R}, "references": [{"entry": "b"}]},
        },
    }
    resolved = by_label(resolve_entries(policy, {}))
    # mutual references terminate after one pass, each side seeing only the other's raw content
    assert resolved["a"]["subjects"].keys() == {"sa", "sb"}
    assert resolved["b"]["resources"].keys() == {"thing:/a", "thing:/b"}
    # c sees b's raw content, not what b inherits from a
    assert resolved["c"]["subjects"].keys() == {"sc", "sb"}
    assert resolved["c"]["resources"].keys() == {"thing:/b", "thing:/c"}


@pytest.mark.parametrize(
    "reference",
    [
        {"entry": "never"},  # importable: never is skipped for local references too
        {"entry": "missing"},
        {"import": "t:template", "entry": "never"},
        {"import": "t:template", "entry": "missing"},
        {"import": "t:not-imported", "entry": "open"},
        {"import": 42, "entry": "open"},
        {"entry": 7},
        "not-a-reference",
    ],
)
def test_unresolvable_references_add_nothing_and_restrict_nothing(reference: Any) -> None:
    template: Policy = {
        "policyId": "t:template",
        "entries": {
            "never": {"subjects": subjects("n"), "resources": {"thing:/n": R}, "importable": "never",
                      "allowedAdditions": []},
            "open": {"subjects": subjects("o"), "resources": {"thing:/o": R}},
        },
    }  # fmt: skip
    policy = {
        "policyId": "t:p",
        "imports": {"t:template": {}},
        "entries": {
            "never": template["entries"]["never"],
            "entry": {**OWN, "references": [reference]},
        },
    }
    resolved = by_label(resolve_entries(policy, {"t:template": template}))["entry"]
    assert resolved == OWN


def test_an_import_reference_may_target_an_explicit_entry_that_is_not_imported() -> None:
    template = {
        "policyId": "t:template",
        "entries": {"role": {"subjects": {}, "resources": {"thing:/r": R}, "importable": "explicit"}},
    }
    policy = {
        "policyId": "t:p",
        "imports": {"t:template": {}},
        "entries": {
            "mine": {"subjects": subjects("s"), "references": [{"import": "t:template", "entry": "role"}]}
        },
    }
    resolved = resolve_entries(policy, {"t:template": template})
    assert labels(resolved) == ["mine"]
    assert enforcer_of(policy, {"t:template": template}).has(["s"], "thing:/r", [READ])


# ------------------------------------------------------------------------------------------ transitive imports

FLEET_ROLES: Policy = {
    "policyId": "acme:fleet-roles",
    "entries": {
        "driver": {
            "subjects": {},
            "resources": {
                "thing:/features/location": {"grant": ["READ"], "revoke": []},
                "thing:/features/fuel": {"grant": ["READ"], "revoke": []},
                "message:/features/fuel/inbox": {"grant": ["WRITE"], "revoke": []},
            },
            "namespaces": ["acme.vehicle"],
            "allowedAdditions": ["subjects"],
            "importable": "implicit",
        }
    },
}
FLEET_WEST: Policy = {
    "policyId": "acme:fleet-west",
    "imports": {"acme:fleet-roles": {}},
    "entries": {
        "driver": {
            "references": [{"import": "acme:fleet-roles", "entry": "driver"}],
            "subjects": {
                "oauth2:alice@acme.com": {"type": "employee"},
                "oauth2:bob@acme.com": {"type": "employee"},
            },
        }
    },
}


def truck(transitive: list[str] | None) -> Policy:
    declaration = {} if transitive is None else {"transitiveImports": transitive}
    return {
        "policyId": "acme.vehicle:truck-42",
        "imports": {"acme:fleet-west": declaration},
        "entries": {
            "driver": {
                "references": [{"import": "acme:fleet-west", "entry": "driver"}],
                "subjects": {"oauth2:charlie@acme.com": {"type": "temp-driver"}},
            },
            "owner": {
                "subjects": {"oauth2:fleet-admin@acme.com": {"type": "admin"}},
                "resources": {"policy:/": {"grant": ["READ", "WRITE"], "revoke": []}},
            },
        },
    }


FLEET: dict[str, Policy | None] = {"acme:fleet-roles": FLEET_ROLES, "acme:fleet-west": FLEET_WEST}
DRIVERS = ["oauth2:alice@acme.com", "oauth2:bob@acme.com", "oauth2:charlie@acme.com"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_transitive_imports_compose_template_resources_with_every_levels_subjects(driver: str) -> None:
    enforcer = enforcer_of(truck(["acme:fleet-roles"]), FLEET, "acme.vehicle")
    assert enforcer.has([driver], "thing:/features/location", [READ])
    assert enforcer.has_unrestricted([driver], "message:/features/fuel/inbox/messages/refill", [WRITE])
    assert not enforcer.has([driver], "thing:/features/location", [WRITE])
    assert not enforcer.has([driver], "policy:/", [READ])
    # the template restricts the composed entry to its namespace
    assert not enforcer_of(truck(["acme:fleet-roles"]), FLEET, "acme.other").has(
        [driver], "thing:/features/location", [READ]
    )


def test_the_composed_driver_entry() -> None:
    driver = by_label(resolve_entries(truck(["acme:fleet-roles"]), FLEET))["driver"]
    assert driver["subjects"].keys() == set(DRIVERS)
    assert driver["resources"].keys() == FLEET_ROLES["entries"]["driver"]["resources"].keys()
    assert driver["namespaces"] == ["acme.vehicle"]


@pytest.mark.parametrize("transitive", [None, [], ["acme:unrelated"]])
def test_without_transitive_imports_the_deeper_reference_resolves_to_nothing(
    transitive: list[str] | None,
) -> None:
    driver = by_label(resolve_entries(truck(transitive), FLEET))["driver"]
    assert driver["subjects"].keys() == set(DRIVERS)
    assert driver["resources"] == {}
    enforcer = enforcer_of(truck(transitive), FLEET, "acme.vehicle")
    assert not any(enforcer.has([d], "thing:/features/location", [READ]) for d in DRIVERS)


def test_transitively_imported_entries_are_visible_through_the_direct_import() -> None:
    assert labels(resolve_entries(truck(["acme:fleet-roles"]), FLEET)) == [
        "driver",
        "owner",
        "imported-acme:fleet-west-driver",
        "imported-acme:fleet-west-imported-acme:fleet-roles-driver",
    ]
    assert labels(resolve_entries(truck(None), FLEET)) == [
        "driver",
        "owner",
        "imported-acme:fleet-west-driver",
    ]


def test_transitive_imports_are_a_whitelist() -> None:
    c = {"policyId": "t:c", "entries": {"x": {"subjects": subjects("sc"), "resources": {"thing:/": R}}}}
    d = {"policyId": "t:d", "entries": {"x": {"subjects": subjects("sd"), "resources": {"thing:/": R}}}}
    b = {"policyId": "t:b", "entries": {}, "imports": {"t:c": {}, "t:d": {}}}
    a = {"policyId": "t:a", "entries": {}, "imports": {"t:b": {"transitiveImports": ["t:c"]}}}
    loaded = {"t:b": b, "t:c": c, "t:d": d}
    assert labels(resolve_entries(a, loaded)) == ["imported-t:b-imported-t:c-x"]
    assert required_policy_ids(a, loaded) == {"t:b", "t:c"}


def test_explicit_entries_of_a_transitive_import_follow_the_intermediate_declaration() -> None:
    c = {
        "policyId": "t:c",
        "entries": {
            "listed": {"subjects": subjects("s1"), "resources": {"thing:/": R}, "importable": "explicit"},
            "unlisted": {"subjects": subjects("s2"), "resources": {"thing:/": R}, "importable": "explicit"},
        },
    }
    b = {"policyId": "t:b", "entries": {}, "imports": {"t:c": {"entries": ["listed"]}}}
    a: Policy = {"policyId": "t:a", "entries": {}, "imports": {"t:b": {"transitiveImports": ["t:c"]}}}
    # c's explicit entry is imported into b, but stays explicit: a would have to list it under its new label
    assert labels(resolve_entries(a, {"t:b": b, "t:c": c})) == []
    a["imports"]["t:b"]["entries"] = ["imported-t:c-listed"]
    assert labels(resolve_entries(a, {"t:b": b, "t:c": c})) == ["imported-t:b-imported-t:c-listed"]


def test_cycles_are_cut() -> None:
    a = {
        "policyId": "t:a",
        "entries": {"own": {"subjects": subjects("sa"), "resources": {"thing:/": R}}},
        "imports": {"t:b": {"transitiveImports": ["t:a", "t:c"]}, "t:a": {}},
    }
    b = {
        "policyId": "t:b",
        "entries": {"own": {"subjects": subjects("sb"), "resources": {"thing:/": R}}},
        "imports": {"t:a": {}, "t:c": {"transitiveImports": ["t:b"]}},
    }
    c = {
        "policyId": "t:c",
        "entries": {"own": {"subjects": subjects("sc"), "resources": {"thing:/": R}}},
        "imports": {"t:b": {}},
    }
    loaded = {"t:a": a, "t:b": b, "t:c": c}
    assert labels(resolve_entries(a, loaded)) == ["own", "imported-t:b-own", "imported-t:b-imported-t:c-own"]
    assert required_policy_ids(a, loaded) == {"t:b", "t:c"}


def _chain(length: int) -> dict[str, Policy]:
    """p0 imports p1 imports p2 ..., every import opening the next level with transitiveImports."""
    policies = {}
    for i in range(length):
        imports = {f"t:p{i + 1}": {"transitiveImports": [f"t:p{i + 2}"]}} if i + 1 < length else {}
        policies[f"t:p{i}"] = {
            "policyId": f"t:p{i}",
            "entries": {"e": {"subjects": subjects(f"s{i}"), "resources": {"thing:/": R}}},
            "imports": imports,
        }
    return policies


def test_import_chains_end_after_the_maximum_depth() -> None:
    policies = _chain(MAX_IMPORT_DEPTH + 3)
    enforcer = enforcer_of(policies["t:p0"], policies)
    reached = [i for i in range(MAX_IMPORT_DEPTH + 3) if enforcer.has([f"s{i}"], "thing:/", [READ])]
    assert reached == list(range(MAX_IMPORT_DEPTH + 1))
    assert required_policy_ids(policies["t:p0"], policies) == {
        f"t:p{i}" for i in range(1, MAX_IMPORT_DEPTH + 1)
    }


def test_loading_in_rounds() -> None:
    policies = _chain(5)
    root = policies["t:p0"]
    loaded: dict[str, Policy | None] = {}
    rounds = 0
    while missing := missing_policy_ids(root, loaded):
        rounds += 1
        loaded.update({pid: policies.get(pid) for pid in missing})
    assert rounds == 4
    assert loaded.keys() == {"t:p1", "t:p2", "t:p3", "t:p4"}
    assert missing_policy_ids(root, {"t:p1": None}) == set()  # known missing is not asked again


def test_a_wide_diamond_shaped_import_graph_stays_small() -> None:
    width, depth = 4, MAX_IMPORT_DEPTH
    policies: dict[str, Policy] = {}
    for level in range(depth + 1):
        for i in range(width):
            pid = f"t:l{level}-{i}"
            nxt = [f"t:l{level + 1}-{j}" for j in range(width)] if level < depth else []
            policies[pid] = {
                "policyId": pid,
                "entries": {"e": {"subjects": subjects(pid), "resources": {"thing:/": R}}},
                "imports": {
                    n: {"transitiveImports": [f"t:l{level + 2}-{j}" for j in range(width)]} for n in nxt
                },
            }
    top = {"policyId": "t:top", "entries": {}, "imports": {f"t:l0-{i}": {} for i in range(width)}}
    top["imports"] = {
        f"t:l0-{i}": {"transitiveImports": [f"t:l1-{j}" for j in range(width)]} for i in range(width)
    }
    # without sharing resolved views this would be width ** depth resolutions and as many entries
    resolved = resolve_entries(top, policies)
    assert len(resolved) == width * MAX_IMPORT_DEPTH  # each entry once (first label found), ten levels deep
    assert "imported-t:l0-0-imported-t:l1-0-e" in labels(resolved)
    enforcer = enforcer_of(top, policies)
    assert enforcer.has(["t:l0-0", "t:l1-3"], "thing:/", [READ])
    assert len(required_policy_ids(top, policies)) == width * MAX_IMPORT_DEPTH


# ------------------------------------------------------------------------------------------ resolved view


def test_resolved_view_keeps_the_first_of_colliding_labels() -> None:
    b: Policy = {
        "policyId": "t:b",
        "entries": {"imported-t:c-x": {"subjects": subjects("first"), "resources": {"thing:/": R}}},
        "imports": {"t:c": {}},
    }
    c = {"policyId": "t:c", "entries": {"x": {"subjects": subjects("second"), "resources": {"thing:/": R}}}}
    a = {"policyId": "t:a", "entries": {}, "imports": {"t:b": {"transitiveImports": ["t:c"]}}}
    loaded = {"t:b": b, "t:c": c}
    resolved = resolve_entries(a, loaded)
    assert labels(resolved) == ["imported-t:b-imported-t:c-x", "imported-t:b-imported-t:c-x"]
    view = resolved_view(a, loaded)
    assert view["policyId"] == "t:a"
    assert view["entries"] == {"imported-t:b-imported-t:c-x": b["entries"]["imported-t:c-x"]}
    # both count for enforcement
    enforcer = enforcer_of(a, loaded)
    assert enforcer.has(["first"], "thing:/", [READ])
    assert enforcer.has(["second"], "thing:/", [READ])


# ------------------------------------------------------------------------------------------------- lockout


def _lockout(entries: dict[str, Any], **extra: Any) -> bool:
    policy = {"policyId": "t:p", "entries": entries, **extra}
    return check_policy_lockout(policy, resolve_entries(policy, {}))


@pytest.mark.parametrize(
    ("entries", "valid"),
    [
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/": RW}}}, True),
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:": {"grant": ["WRITE"]}}}}, True),
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/": R}}}, False),
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/entries": RW}}}, False),
        ({"owner": {"subjects": subjects("a"), "resources": {"thing:/": RW}}}, False),
        ({"owner": {"subjects": {"a": {"type": "t", "expiry": "2099-01-01T00:00:00Z"}},
                    "resources": {"policy:/": RW}}}, False),
        ({"owner": {"subjects": {"a": {"type": "t", "expiry": "2099-01-01T00:00:00Z"}, "b": {"type": "t"}},
                    "resources": {"policy:/": RW}}}, True),
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/": {"grant": ["WRITE"], "revoke": ["WRITE"]}}}},
         False),
        ({"owner": {"subjects": subjects("a", "b"), "resources": {"policy:/": RW}},
          "no": {"subjects": {"a": {"type": "other"}}, "resources": {"policy:/": {"grant": [], "revoke": ["WRITE"]}}}},
         True),
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/": RW}},
          "no": {"subjects": {"a": {"type": "other"}}, "resources": {"policy:/": {"grant": [], "revoke": ["WRITE"]}}}},
         False),
        # a revoke deeper than the root does not count
        ({"owner": {"subjects": subjects("a"), "resources": {"policy:/": RW,
                                                             "policy:/entries": {"grant": [], "revoke": ["WRITE"]}}}},
         True),
        # the grant may come in through a local reference
        ({"admin-role": {"subjects": {}, "resources": {"policy:/": RW}},
          "admin": {"subjects": subjects("a"), "references": [{"entry": "admin-role"}]}}, True),
        ({}, False),
    ],
)  # fmt: skip
def test_policy_lockout(entries: dict[str, Any], valid: bool) -> None:
    assert _lockout(entries) is valid


def test_policies_with_imports_skip_the_lockout_check() -> None:
    assert _lockout({}, imports={"t:other": {}})
    assert not _lockout({}, imports={})
