"""Policy evaluation (``basic-policy`` "Grant and Revoke some Permission", "Namespaces", "Expiring Policy
subjects", "Example"; ``basic-auth-checkpermissions``; inventory §4 "Evaluation algorithm").

The property tests compare the enforcer with a literal transcription of Ditto's weighted tries
(``PolicyTrie``, ``GrantRevokeIndex``, ``PermissionSubjectsMap``, ``TrieBasedPolicyEnforcer``) below.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ditto_compat.domain.enforcer import (
    EXECUTE,
    READ,
    WRITE,
    Enforcer,
    namespace_applies,
    parse_resource,
)
from ditto_compat.errors import PolicyResourceInvalid
from ditto_compat.model.pointer import MISSING, parse_pointer

Entry = dict[str, Any]


def entry(
    subjects: Sequence[str], resources: dict[str, tuple[Sequence[str], Sequence[str]]], **extra: Any
) -> Entry:
    return {
        "subjects": {s: {"type": "test"} for s in subjects},
        "resources": {k: {"grant": list(g), "revoke": list(r)} for k, (g, r) in resources.items()},
        **extra,
    }


def compile_entries(*entries: Entry, namespace: str | None = None, now: datetime | None = None) -> Enforcer:
    return Enforcer.compile(
        [(f"e{i}", e) for i, e in enumerate(entries)],
        namespace=namespace,
        now=now or datetime(2026, 1, 1, tzinfo=UTC),
    )


# ------------------------------------------------------------------------------------- basic-policy "Example"

# The doc's JSON nests the "private" entry's "resources" inside "subjects" (a typo); this is the intended policy.
EXAMPLE_POLICY: dict[str, Any] = {
    "policyId": "my.namespace:policy-a",
    "entries": {
        "owner": {
            "subjects": {"nginx:ditto": {"type": "nginx basic auth user"}},
            "resources": {
                "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
                "message:/": {"grant": ["READ", "WRITE"], "revoke": []},
            },
        },
        "observer": {
            "subjects": {
                "nginx:observer-client": {"type": "technical client"},
                "nginx:some-users": {"type": "a group of users"},
            },
            "resources": {
                "thing:/features/featureX": {"grant": ["READ"], "revoke": []},
                "thing:/features/featureY": {"grant": ["READ"], "revoke": []},
            },
        },
        "private": {
            "subjects": {"nginx:some-users": {"type": "a group of users"}},
            "resources": {
                "thing:/features/featureX/properties/location/city": {"grant": [], "revoke": ["READ"]},
            },
        },
    },
}

EXAMPLE = Enforcer.compile(EXAMPLE_POLICY["entries"].items(), namespace="my.namespace")
CITY = "thing:/features/featureX/properties/location/city"


@pytest.mark.parametrize(
    ("subject", "resource", "permissions", "has", "partial", "unrestricted"),
    [
        ("nginx:ditto", "thing:/", [READ, WRITE], True, True, True),
        ("nginx:ditto", "policy:/", [READ, WRITE], True, True, True),
        ("nginx:ditto", "message:/inbox/messages/hello", [WRITE], True, True, True),
        ("nginx:ditto", CITY, [READ], True, True, True),
        ("nginx:ditto", "thing:/", [EXECUTE], False, False, False),
        ("nginx:observer-client", "thing:/features/featureX", [READ], True, True, True),
        ("nginx:observer-client", CITY, [READ], True, True, True),
        ("nginx:observer-client", "thing:/features/featureY/properties/a", [READ], True, True, True),
        ("nginx:observer-client", "thing:/features/featureX", [WRITE], False, False, False),
        ("nginx:observer-client", "thing:/attributes", [READ], False, False, False),
        # "the subject can access the lower part only": the root is partially readable
        ("nginx:observer-client", "thing:/", [READ], False, True, False),
        ("nginx:observer-client", "thing:/features", [READ], False, True, False),
        ("nginx:observer-client", "policy:/", [READ], False, False, False),
        ("nginx:some-users", CITY, [READ], False, False, False),
        ("nginx:some-users", CITY + "/deeper", [READ], False, False, False),
        ("nginx:some-users", "thing:/features/featureX/properties/location/zip", [READ], True, True, True),
        # "grant read on top-level and revoke at a sub-entity: the subject can read the upper part only"
        ("nginx:some-users", "thing:/features/featureX/properties/location", [READ], True, True, False),
        ("nginx:some-users", "thing:/features/featureX", [READ], True, True, False),
        ("nginx:some-users", "thing:/features/featureY", [READ], True, True, True),
        ("nginx:unknown", "thing:/", [READ], False, False, False),
    ],
)
def test_the_example_policy(
    subject: str, resource: str, permissions: list[str], has: bool, partial: bool, unrestricted: bool
) -> None:
    assert EXAMPLE.has([subject], resource, permissions) is has
    assert EXAMPLE.has_partial([subject], resource, permissions) is partial
    assert EXAMPLE.has_unrestricted([subject], resource, permissions) is unrestricted


def test_the_example_as_printed_grants_nothing_extra_to_a_subject_named_resources() -> None:
    printed = {
        **EXAMPLE_POLICY["entries"],
        "private": {
            "subjects": {
                "nginx:some-users": {"type": "a group of users"},
                "resources": {CITY.removeprefix("thing:"): {"grant": [], "revoke": ["READ"]}},
            }
        },
    }
    enforcer = Enforcer.compile(printed.items())
    assert enforcer.has(["nginx:some-users"], CITY, [READ])  # the misplaced revoke has no effect


def test_the_example_read_views() -> None:
    thing: dict[str, Any] = {
        "attributes": {"owner": "me"},
        "features": {
            "featureX": {"properties": {"location": {"city": "Berlin", "zip": "10115"}, "on": True}},
            "featureY": {"properties": {"temperature": 21}},
            "featureZ": {"properties": {"secret": 1}},
        },
    }
    assert EXAMPLE.read_view(["nginx:ditto"], "thing:/", thing) == thing
    assert EXAMPLE.read_view(["nginx:observer-client"], "thing:/", thing) == {
        "features": {"featureX": thing["features"]["featureX"], "featureY": thing["features"]["featureY"]}
    }
    assert EXAMPLE.read_view(["nginx:some-users"], "thing:/", thing) == {
        "features": {
            "featureX": {"properties": {"location": {"zip": "10115"}, "on": True}},
            "featureY": {"properties": {"temperature": 21}},
        }
    }
    assert EXAMPLE.read_view(["nginx:unknown"], "thing:/", thing) is MISSING
    assert EXAMPLE.read_view(["nginx:some-users"], CITY, "Berlin") is MISSING
    # the location object itself is READ-granted, so it survives empty
    location = "thing:/features/featureX/properties/location"
    assert EXAMPLE.read_view(["nginx:some-users"], location, {"city": "B"}) == {}


# ----------------------------------------------------------------------------- "Grant and Revoke some Permission"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ("thing:/", True),
        ("thing:/attributes", True),
        ("thing:/attributes/a", False),  # revoked at a deeper level
        ("thing:/attributes/a/x", False),
        ("thing:/attributes/a/b", True),  # "except they are granted again such permission at a deeper level"
        ("thing:/attributes/a/b/c", True),
        ("thing:/attributes/b", True),
        ("policy:/", False),  # a thing: grant says nothing about other resource types
    ],
)
def test_deeper_rules_override_shallower_ones(resource: str, expected: bool) -> None:
    enforcer = compile_entries(
        entry(["s"], {"thing:/": ([READ], [])}),
        entry(["s"], {"thing:/attributes/a": ([], [READ])}),
        entry(["s"], {"thing:/attributes/a/b": ([READ], [])}),
    )
    assert enforcer.has(["s"], resource, [READ]) is expected


def test_revoke_beats_grant_at_the_same_node_within_and_across_entries() -> None:
    within = compile_entries(entry(["s"], {"thing:/a": ([READ, WRITE], [WRITE])}))
    assert within.has(["s"], "thing:/a", [READ])
    assert not within.has(["s"], "thing:/a", [WRITE])
    across = compile_entries(
        entry(["s"], {"thing:/a": ([READ], [])}), entry(["s"], {"thing:/a": ([], [READ])})
    )
    assert not across.has(["s"], "thing:/a/b", [READ])


def test_write_does_not_imply_read() -> None:
    enforcer = compile_entries(entry(["s"], {"thing:/": ([WRITE], [])}))
    assert enforcer.has(["s"], "thing:/", [WRITE])
    assert not enforcer.has(["s"], "thing:/", [READ])
    assert not enforcer.has(["s"], "thing:/", [READ, WRITE])


def test_execute_on_a_policy_action() -> None:
    enforcer = compile_entries(
        entry(["s"], {"policy:/entries/a/actions/activateTokenIntegration": ([EXECUTE], [])})
    )
    assert enforcer.has_unrestricted(["s"], "policy:/entries/a/actions/activateTokenIntegration", [EXECUTE])
    assert not enforcer.has(["s"], "policy:/entries/b/actions/activateTokenIntegration", [EXECUTE])


def test_message_inbox_does_not_cover_feature_messages() -> None:
    enforcer = compile_entries(entry(["s"], {"message:/inbox": ([WRITE], [])}))
    assert enforcer.has_unrestricted(["s"], "message:/inbox/messages/hello", [WRITE])
    assert not enforcer.has(["s"], "message:/features/lamp/inbox/messages/toggle", [WRITE])


# --------------------------------------------------------------------------------- several subjects of one caller


@pytest.mark.parametrize(
    ("entries", "resource", "expected"),
    [
        # s1 granted above, s2 revoked deeper: the deeper revoke wins for the caller holding both
        ([entry(["s1"], {"thing:/features": ([READ], [])}), entry(["s2"], {"thing:/features/a": ([], [READ])})],
         "thing:/features/a", False),
        # s2 revoked above, s1 granted deeper: the deeper grant wins
        ([entry(["s2"], {"thing:/features": ([], [READ])}), entry(["s1"], {"thing:/features/a": ([READ], [])})],
         "thing:/features/a/x", True),
        # grant and revoke for different subjects at the same node: the revoke wins
        ([entry(["s1"], {"thing:/a": ([READ], [])}), entry(["s2"], {"thing:/a": ([], [READ])})], "thing:/a", False),
        # only one subject mentioned: the other is irrelevant
        ([entry(["s1"], {"thing:/": ([READ], [])})], "thing:/a", True),
    ],
)  # fmt: skip
def test_several_subjects(entries: list[Entry], resource: str, expected: bool) -> None:
    enforcer = compile_entries(*entries)
    assert enforcer.has(["s1", "s2"], resource, [READ]) is expected
    assert enforcer.has(("s2", "s1"), resource, (READ,)) is expected


def test_a_subject_alone_can_have_more_than_together_with_another() -> None:
    enforcer = compile_entries(
        entry(["s1"], {"thing:/features": ([READ], [])}), entry(["s2"], {"thing:/features/a": ([], [READ])})
    )
    assert enforcer.has(["s1"], "thing:/features/a", [READ])
    assert not enforcer.has(["s1", "s2"], "thing:/features/a", [READ])


def test_no_subjects_or_no_permissions_are_never_allowed() -> None:
    enforcer = compile_entries(entry(["s"], {"thing:/": ([READ], [])}))
    for check in (enforcer.has, enforcer.has_partial, enforcer.has_unrestricted):
        assert not check([], "thing:/", [READ])
        assert not check(["s"], "thing:/", [])
    assert enforcer.read_view([], "thing:/", {"a": 1}) is MISSING


def test_a_bare_permission_string_is_one_permission() -> None:
    enforcer = compile_entries(entry(["s"], {"thing:/": ([READ], [])}))
    assert enforcer.has(["s"], "thing:/", READ)


# ------------------------------------------------------------------------------------- partial vs unrestricted


@pytest.mark.parametrize(
    ("resource", "has", "partial", "unrestricted"),
    [
        ("thing:/", False, True, False),
        ("thing:/attributes", True, True, False),
        ("thing:/attributes/public", True, True, True),
        ("thing:/attributes/secret", False, True, False),  # secret/open below is granted again
        ("thing:/attributes/secret/x", False, False, False),
        ("thing:/attributes/secret/open", True, True, True),
        ("thing:/features", False, True, False),
        ("thing:/features/f", False, True, False),
        ("thing:/features/f/properties", True, True, True),
        ("thing:/features/g", False, False, False),
        ("thing:/features/g/properties", False, False, False),  # below the trie: the nearest ancestor decides
        ("policy:/", False, False, False),
    ],
)
def test_partial_and_unrestricted(resource: str, has: bool, partial: bool, unrestricted: bool) -> None:
    enforcer = compile_entries(
        entry(["s"], {"thing:/attributes": ([READ], []), "thing:/features/f/properties": ([READ], [])}),
        entry(
            ["s"], {"thing:/attributes/secret": ([], [READ]), "thing:/attributes/secret/open": ([READ], [])}
        ),
    )
    assert enforcer.has(["s"], resource, [READ]) is has
    assert enforcer.has_partial(["s"], resource, [READ]) is partial
    assert enforcer.has_unrestricted(["s"], resource, [READ]) is unrestricted
    assert enforcer.readable_by(["s"], resource) is partial


def test_unrestricted_is_spoiled_by_a_revoke_of_any_subject_below() -> None:
    enforcer = compile_entries(
        entry(["s1"], {"thing:/": ([WRITE], [])}), entry(["s2"], {"thing:/a/b": ([], [WRITE])})
    )
    assert enforcer.has_unrestricted(["s1"], "thing:/", [WRITE])
    assert not enforcer.has_unrestricted(["s1", "s2"], "thing:/", [WRITE])
    assert not enforcer.has_unrestricted(["s1", "s2"], "thing:/a", [WRITE])
    assert enforcer.has_unrestricted(["s1", "s2"], "thing:/c", [WRITE])


def test_partial_counts_a_grant_below_that_another_subject_revokes_at_the_same_node() -> None:
    """Ditto's bottom-up grant trie lifts s1's grant at /a up to the root and leaves s2's revoke at /a behind:
    the root is partially readable although /a itself is not readable for the caller holding both."""
    enforcer = compile_entries(
        entry(["s1"], {"thing:/a": ([READ], [])}), entry(["s2"], {"thing:/a": ([], [READ])})
    )
    assert enforcer.has_partial(["s1", "s2"], "thing:/", [READ])
    assert not enforcer.has_partial(["s1", "s2"], "thing:/a", [READ])


def test_several_permissions_must_each_be_allowed() -> None:
    """Ditto's ``hasPermissions`` compares one grant weight and one revoke weight across all requested
    permissions at once; here each permission is evaluated on its own and the answers are AND-ed. The two
    differ only when one permission is decided by a deeper grant and another by a deeper revoke than its grant:
    Ditto would allow READ+WRITE below (READ's deep grant outweighs WRITE's revoke); this enforcer does not."""
    enforcer = compile_entries(
        entry(["s1"], {"thing:/": ([WRITE], [])}),
        entry(["s2"], {"thing:/a": ([], [WRITE])}),
        entry(["s1"], {"thing:/a/b": ([READ], [])}),
    )
    assert enforcer.has(["s1", "s2"], "thing:/a/b", [READ])
    assert not enforcer.has(["s1", "s2"], "thing:/a/b", [WRITE])
    assert not enforcer.has(["s1", "s2"], "thing:/a/b", [READ, WRITE])
    reference = Reference(
        [(["s1"], {("thing",): ({WRITE}, set())}), (["s2"], {("thing", "a"): (set(), {WRITE})}),
         (["s1"], {("thing", "a", "b"): ({READ}, set())})]
    )  # fmt: skip
    assert reference.has({"s1", "s2"}, ("thing", "a", "b"), {READ, WRITE})  # Ditto's combined answer


def test_candidate_subjects() -> None:
    enforcer = compile_entries(
        entry(["root"], {"thing:/": ([READ], [])}),
        entry(["deep"], {"thing:/a/b": ([READ], [])}),
        entry(["revoked"], {"thing:/a": ([READ], [READ])}),
        entry(["writer"], {"thing:/a": ([WRITE], [])}),
    )
    assert enforcer.candidate_subjects("thing:/") == {"root", "deep"}
    assert enforcer.candidate_subjects("thing:/a") == {"root", "deep"}
    assert enforcer.candidate_subjects("thing:/x/y") == {"root"}
    assert enforcer.candidate_subjects("thing:/a", WRITE) == {"writer"}
    assert enforcer.candidate_subjects("policy:/") == frozenset()


# ------------------------------------------------------------------------------------------------ resources


@pytest.mark.parametrize(
    ("resource", "key"),
    [
        ("thing:/", ("thing",)),
        ("thing:", ("thing",)),
        ("thing:/attributes/a/", ("thing", "attributes", "a")),
        ("thing:/attributes/a~1b", ("thing", "attributes", "a/b")),
        ("policy:/entries/owner", ("policy", "entries", "owner")),
        ("message:/inbox/messages/x", ("message", "inbox", "messages", "x")),
    ],
)
def test_parse_resource(resource: str, key: tuple[str, ...]) -> None:
    assert parse_resource(resource) == key


@pytest.mark.parametrize("resource", ["thing", "/attributes", ":/a", "foo:/", "thing:/a//b"])
def test_invalid_resources(resource: str) -> None:
    with pytest.raises(PolicyResourceInvalid):
        parse_resource(resource)


def test_trailing_slashes_and_escapes_in_queries_and_policies() -> None:
    enforcer = compile_entries(entry(["s"], {"thing:/attributes/a~1b/": ([READ], [])}))
    assert enforcer.has(["s"], "thing:/attributes/a~1b", [READ])
    assert enforcer.has(["s"], "thing:/attributes/a~1b/c/", [READ])
    assert not enforcer.has(["s"], "thing:/attributes/a", [READ])
    assert enforcer.read_view(["s"], "thing:/attributes", {"a/b": 1, "a": 2}) == {"a/b": 1}


def test_an_unknown_resource_type_is_never_granted() -> None:
    enforcer = compile_entries(entry(["s"], {"thing:/": ([READ], [])}))
    assert not enforcer.has(["s"], "foo:/", [READ])
    with pytest.raises(PolicyResourceInvalid):
        enforcer.has(["s"], "no-type", [READ])


# ----------------------------------------------------------------------------------------------- namespaces


@pytest.mark.parametrize(
    ("patterns", "namespace", "expected"),
    [
        (None, "com.acme", True),
        ([], "com.acme", True),
        (["com.acme"], "com.acme", True),
        (["com.acme"], "com.acme.vehicles", False),
        (["com.acme"], "com.acmex", False),
        (["com.acme.*"], "com.acme.vehicles", True),
        (["com.acme.*"], "com.acme.vehicles.trucks", True),
        (["com.acme.*"], "com.acme", False),
        (["com.acme.*"], "com.acmex.vehicles", False),
        (["com.acme", "com.acme.*"], "com.acme", True),
        (["com.acme", "com.acme.*"], "com.acme.x", True),
        (["com.acme", "com.acme.*"], "org.acme", False),
        (["com.acme"], None, False),
        ([], None, True),
    ],
)
def test_namespace_patterns(patterns: list[str] | None, namespace: str | None, expected: bool) -> None:
    assert namespace_applies(patterns, namespace) is expected


def test_entries_apply_only_in_their_namespaces() -> None:
    entries = [
        entry(["bob"], {"thing:/": ([READ], [])}, namespaces=["com.acme", "com.acme.*"]),
        entry(["eve"], {"thing:/": ([READ], [])}),
        entry(["eve"], {"thing:/secret": ([], [READ])}, namespaces=["com.acme.*"]),
    ]
    for namespace, bob, eve_secret in [
        ("com.acme", True, True),
        ("com.acme.devices", True, False),
        ("org.other", False, True),
        (None, False, True),
    ]:
        enforcer = compile_entries(*entries, namespace=namespace)
        assert enforcer.has(["bob"], "thing:/a", [READ]) is bob, namespace
        assert enforcer.has(["eve"], "thing:/secret", [READ]) is eve_secret, namespace


# ------------------------------------------------------------------------------------------------- expiry


def test_expired_subjects_are_left_out() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    policy: dict[str, Any] = {
        "e": {
            "subjects": {
                "expired": {"type": "t", "expiry": "2026-12-01T09:00:00Z"},
                "exactly-now": {"type": "t", "expiry": "2026-12-01T10:00:00Z"},
                "later": {"type": "t", "expiry": "2026-12-01T11:00:00Z"},
                "much-later": {"type": "t", "expiry": "2027-01-01T00:00:00+00:00"},
                "forever": {"type": "t"},
                "broken": {"type": "t", "expiry": "tomorrow"},
            },
            "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
        }
    }
    enforcer = Enforcer.compile(policy.items(), now=now)
    allowed = {s: enforcer.has([s], "thing:/", [READ]) for s in policy["e"]["subjects"]}
    assert allowed == {
        "expired": False,
        "exactly-now": False,
        "later": True,
        "much-later": True,
        "forever": True,
        "broken": False,
    }
    assert enforcer.valid_until == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    assert Enforcer.compile(policy.items(), now=datetime(2026, 12, 1, 10, 30)).has(
        ["later"], "thing:/", [READ]
    )
    assert not Enforcer.compile(policy.items(), now=datetime(2026, 12, 1, 11, 30)).has(
        ["later"], "thing:/", READ
    )


def test_an_expired_subject_also_loses_its_revokes() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    policy = {
        "grant": entry(["s"], {"thing:/": ([READ], [])}),
        "revoke": {
            "subjects": {"s": {"type": "t", "expiry": "2026-11-30T00:00:00Z"}},
            "resources": {"thing:/a": {"grant": [], "revoke": ["READ"]}},
        },
    }
    assert Enforcer.compile(policy.items(), now=now).has(["s"], "thing:/a", [READ])
    assert Enforcer.compile(policy.items()).valid_until is None


def test_robust_against_odd_entries() -> None:
    enforcer = Enforcer.compile(
        [
            ("no-subjects", {"resources": {"thing:/": {"grant": ["READ"], "revoke": []}}}),
            ("null-lists", {"subjects": {"s": {"type": "t"}}, "resources": {"thing:/a": {"grant": None}}}),
            ("no-type", {"subjects": {"s": {"type": "t"}}, "resources": {"/b": {"grant": ["READ"]}}}),
            ("not-an-entry", "x"),  # type: ignore[list-item]
            (
                "empty-key",
                {"subjects": {"s": {"type": "t"}}, "resources": {"thing:/c//d": {"revoke": ["READ"]}}},
            ),
            ("ok", {"subjects": {"s": {"type": "t"}}, "resources": {"thing:/": {"grant": ["READ"]}}}),
        ]
    )
    assert enforcer.has(["s"], "thing:/a", [READ])
    assert not enforcer.has(["s"], "thing:/c/d", [READ])  # a malformed revoke still revokes


# ----------------------------------------------------------------------------------------------- read views


READER = compile_entries(
    entry(["s"], {"thing:/": ([READ], [])}),
    entry(["s"], {"thing:/attributes/secret": ([], [READ]), "thing:/attributes/hidden": ([], [READ])}),
    entry(["s"], {"thing:/attributes/secret/open": ([READ], [])}),
    entry(["s"], {"thing:/features/f/properties/list": ([], [READ])}),
    entry(["p"], {"thing:/features/f/properties/x": ([READ], []), "thing:/features/empty": ([READ], [])}),
    entry(["p"], {"thing:/features/f/properties/list": ([READ], [])}),
)
THING = {
    "attributes": {
        "plain": 1,
        "secret": {"closed": 2, "open": {"deep": 3}},
        "hidden": {},
        "empty": {},
    },
    "features": {
        "f": {"properties": {"x": 1, "y": None, "list": [1, {"x": 2}]}},
        "empty": {},
        "g": {"properties": {}},
    },
}


@pytest.mark.parametrize(
    ("subjects", "resource", "value", "expected"),
    [
        (["s"], "thing:/", THING, {
            "attributes": {"plain": 1, "secret": {"open": {"deep": 3}}, "empty": {}},
            "features": {"f": {"properties": {"x": 1, "y": None}}, "empty": {}, "g": {"properties": {}}},
        }),
        (["p"], "thing:/", THING, {
            "features": {"f": {"properties": {"x": 1, "list": [1, {"x": 2}]}}, "empty": {}},
        }),
        (["s", "p"], "thing:/", THING, {
            "attributes": {"plain": 1, "secret": {"open": {"deep": 3}}, "empty": {}},
            # s's revoke and p's grant of the list sit at the same node: the revoke wins
            "features": {"f": {"properties": {"x": 1, "y": None}}, "empty": {}, "g": {"properties": {}}},
        }),
        (["s"], "thing:/attributes", THING["attributes"], {"plain": 1, "secret": {"open": {"deep": 3}}, "empty": {}}),
        (["s"], "thing:/attributes/secret", THING["attributes"]["secret"], {"open": {"deep": 3}}),
        (["s"], "thing:/attributes/secret/closed", 2, MISSING),
        (["s"], "thing:/attributes/hidden", {}, MISSING),  # an empty object that is not granted is gone
        (["s"], "thing:/attributes/plain/below/the/trie", {"a": 1}, {"a": 1}),
        (["p"], "thing:/features/empty", {}, {}),  # an empty object that is granted stays
        (["p"], "thing:/features/f/properties/list", [1, {"x": 2}], [1, {"x": 2}]),  # arrays are leaves
        (["p"], "thing:/attributes", THING["attributes"], MISSING),
        (["nobody"], "thing:/", THING, MISSING),
        (["s"], "policy:/", {"entries": {}}, MISSING),
    ],
)  # fmt: skip
def test_read_view(subjects: list[str], resource: str, value: Any, expected: Any) -> None:
    view = READER.read_view(subjects, resource, value)
    if expected is MISSING:
        assert view is MISSING
    else:
        assert view == expected


def test_read_view_copies_the_top_level_only() -> None:
    value = {"a": {"b": 1}}
    view = READER.read_view(["s"], "thing:/attributes", value)
    assert view == value
    assert view is not value
    assert view["a"] is value["a"]


# ================================================================================= the literal reference algorithm

Weighted = dict[str, dict[str, int]]  # permission -> subject -> weight (PermissionSubjectsMap)
RefEntry = tuple[list[str], dict[tuple[str, ...], tuple[set[str], set[str]]]]


def _add(target: Weighted, source: Weighted, shift: int = 0) -> None:
    for permission, subjects in source.items():
        row = target.setdefault(permission, {})
        for subject, weight in subjects.items():
            row[subject] = max(row.get(subject, weight + shift), weight + shift)


def _remove(target: Weighted, source: Weighted) -> None:
    for permission, subjects in source.items():
        if permission in target:
            for subject in subjects:
                target[permission].pop(subject, None)


def _copy(source: Weighted, shift: int = 0) -> Weighted:
    return {p: {s: w + shift for s, w in row.items()} for p, row in source.items()}


class RefTrie:
    def __init__(self, grant: Weighted | None = None, revoke: Weighted | None = None) -> None:
        self.grant: Weighted = grant if grant is not None else {}
        self.revoke: Weighted = revoke if revoke is not None else {}
        self.children: dict[str, RefTrie] = {}

    def has(self, subjects: set[str], permissions: set[str]) -> bool:
        """GrantRevokeIndex.hasPermissions."""
        per_permission = []
        for p in permissions:
            weights = [w for s, w in self.grant.get(p, {}).items() if s in subjects]
            if not weights:
                return False
            per_permission.append(max(weights))
        if not per_permission:
            return False
        grant_weight = max(per_permission)
        revokes = [w for p in permissions for s, w in self.revoke.get(p, {}).items() if s in subjects]
        return not revokes or max(revokes) < grant_weight

    def exact(self, key: tuple[str, ...]) -> RefTrie | None:
        node: RefTrie | None = self
        for k in key:
            node = node.children.get(k) if node is not None else None
        return node

    def least(self, key: tuple[str, ...]) -> RefTrie:
        node = self
        for k in key:
            if k not in node.children:
                break
            node = node.children[k]
        return node


def _closure(raw: RefTrie, inherited_grant: Weighted, inherited_revoke: Weighted) -> RefTrie:
    """PolicyTrie.getTransitiveClosure: decrement inherited weights, then overrideBy the node's own index."""
    grant, revoke = _copy(inherited_grant, -1), _copy(inherited_revoke, -1)
    _add(grant, raw.grant)
    _remove(grant, raw.revoke)
    _remove(revoke, raw.grant)
    _add(revoke, raw.revoke)
    node = RefTrie(grant, revoke)
    node.children = {k: _closure(child, grant, revoke) for k, child in raw.children.items()}
    return node


def _bottom_up_grant(node: RefTrie) -> RefTrie:
    grant = _copy(node.grant)
    children = {}
    for k, child in node.children.items():
        children[k] = new_child = _bottom_up_grant(child)
        _add(grant, new_child.grant, 1)
    revoke = _copy(node.revoke)
    _remove(revoke, grant)
    result = RefTrie(grant, revoke)
    result.children = children
    return result


def _bottom_up_revoke(node: RefTrie) -> RefTrie:
    revoke = _copy(node.revoke)
    children = {}
    for k, child in node.children.items():
        children[k] = new_child = _bottom_up_revoke(child)
        _add(revoke, new_child.revoke, 1)
    result = RefTrie(_copy(node.grant), revoke)
    result.children = children
    return result


class Reference:
    """TrieBasedPolicyEnforcer, transcribed."""

    def __init__(self, entries: list[RefEntry]) -> None:
        raw = RefTrie()
        for subjects, resources in entries:
            for key, (grants, revokes) in resources.items():
                node = raw
                for k in key:
                    node = node.children.setdefault(k, RefTrie())
                _add(node.grant, {p: dict.fromkeys(subjects, 0) for p in grants})
                _add(node.revoke, {p: dict.fromkeys(subjects, 0) for p in revokes})
        self.inherited = _closure(raw, {}, {})
        self.bottom_up_grant = _bottom_up_grant(self.inherited)
        self.bottom_up_revoke = _bottom_up_revoke(self.inherited)

    def _seek_with_fallback(self, first: RefTrie, key: tuple[str, ...]) -> RefTrie:
        found = first.exact(key)
        return found if found is not None else self.inherited.least(key)

    def has(self, subjects: set[str], key: tuple[str, ...], permissions: set[str]) -> bool:
        return self.inherited.least(key).has(subjects, permissions)

    def partial(self, subjects: set[str], key: tuple[str, ...], permissions: set[str]) -> bool:
        return self._seek_with_fallback(self.bottom_up_grant, key).has(subjects, permissions)

    def unrestricted(self, subjects: set[str], key: tuple[str, ...], permissions: set[str]) -> bool:
        return self._seek_with_fallback(self.bottom_up_revoke, key).has(subjects, permissions)

    def view(self, subjects: set[str], key: tuple[str, ...], value: Any) -> Any:
        """PolicyTrie.buildJsonView with the JSON aligned to its path and arrays as leaves."""
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                kept = self.view(subjects, (*key, k), v)
                if kept is not MISSING:
                    out[k] = kept
            return out if out or self.has(subjects, key, {READ}) else MISSING
        return value if self.has(subjects, key, {READ}) else MISSING


# ------------------------------------------------------------------------------------------ property tests

SUBJECTS = ["s1", "s2", "s3"]
SEGMENTS = ["a", "b", "c"]

paths = st.lists(st.sampled_from(SEGMENTS), max_size=3).map(tuple)
permission_sets = st.sets(st.sampled_from([READ, WRITE]), max_size=2)
ref_entries = st.lists(
    st.tuples(
        st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=3, unique=True),
        st.dictionaries(
            paths.map(lambda p: ("thing", *p)), st.tuples(permission_sets, permission_sets), max_size=3
        ),
    ),
    min_size=1,
    max_size=5,
)
# denser READ rules on shallow paths for the view: most views are then cut somewhere inside the value
read_rules = st.sampled_from([({READ}, set()), (set(), {READ}), ({READ}, {READ}), ({WRITE}, set())])
view_entries = st.lists(
    st.tuples(
        st.lists(st.sampled_from(SUBJECTS), min_size=1, max_size=2, unique=True),
        st.dictionaries(
            st.lists(st.sampled_from(SEGMENTS), max_size=2).map(lambda p: ("thing", *p)),
            read_rules,
            min_size=1,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=5,
)
callers = st.sets(st.sampled_from(SUBJECTS), min_size=1, max_size=3)
json_leaves: st.SearchStrategy[Any] = st.one_of(
    st.integers(0, 3), st.none(), st.lists(st.integers(0, 3), max_size=2), st.just({})
)
# objects shaped like the policies' paths, so that most views are cut somewhere inside
json_objects = st.recursive(
    st.dictionaries(st.sampled_from([*SEGMENTS, "d"]), json_leaves, min_size=1, max_size=4),
    lambda inner: st.dictionaries(
        st.sampled_from([*SEGMENTS, "d"]), st.one_of(json_leaves, inner), min_size=2
    ),
    max_leaves=24,
)


def _compile(entries: list[RefEntry]) -> Enforcer:
    as_json = [
        (
            f"e{i}",
            {
                "subjects": {s: {"type": "t"} for s in subjects},
                "resources": {
                    "thing:/" + "/".join(key[1:]): {"grant": sorted(g), "revoke": sorted(r)}
                    for key, (g, r) in resources.items()
                },
            },
        )
        for i, (subjects, resources) in enumerate(entries)
    ]
    return Enforcer.compile(as_json)


def _resource(path: tuple[str, ...]) -> str:
    return "thing:/" + "/".join(path)


@settings(max_examples=400, deadline=None)
@given(
    ref_entries,
    callers,
    st.lists(st.sampled_from([*SEGMENTS, "d"]), max_size=4).map(tuple),
    st.sampled_from([READ, WRITE]),
)
def test_has_partial_and_unrestricted_agree_with_dittos_weighted_tries(
    entries: list[RefEntry], caller: set[str], path: tuple[str, ...], permission: str
) -> None:
    enforcer, reference = _compile(entries), Reference(entries)
    key, subjects, permissions = ("thing", *path), sorted(caller), {permission}
    assert enforcer.has(subjects, _resource(path), [permission]) == reference.has(caller, key, permissions)
    assert enforcer.has_partial(subjects, _resource(path), [permission]) == reference.partial(
        caller, key, permissions
    )
    assert enforcer.has_unrestricted(subjects, _resource(path), [permission]) == reference.unrestricted(
        caller, key, permissions
    )


@settings(max_examples=300, deadline=None)
@given(ref_entries, callers, paths)
def test_several_permissions_are_the_and_of_single_ones(
    entries: list[RefEntry], caller: set[str], path: tuple[str, ...]
) -> None:
    enforcer, subjects, resource = _compile(entries), sorted(caller), _resource(path)
    for check in (enforcer.has, enforcer.has_partial, enforcer.has_unrestricted):
        assert check(subjects, resource, [READ, WRITE]) == (
            check(subjects, resource, [READ]) and check(subjects, resource, [WRITE])
        )


@settings(max_examples=300, deadline=None)
@given(view_entries, callers, st.lists(st.sampled_from(SEGMENTS), max_size=1).map(tuple), json_objects)
def test_read_view_agrees_with_a_leaf_by_leaf_walk(
    entries: list[RefEntry], caller: set[str], path: tuple[str, ...], value: Any
) -> None:
    expected = Reference(entries).view(caller, ("thing", *path), value)
    view = _compile(entries).read_view(sorted(caller), _resource(path), value)
    if expected is MISSING:
        assert view is MISSING
    else:
        assert view == expected


@settings(max_examples=300, deadline=None)
@given(ref_entries, callers, paths, st.sampled_from([READ, WRITE]))
def test_candidate_subjects_is_a_necessary_condition(
    entries: list[RefEntry], caller: set[str], path: tuple[str, ...], permission: str
) -> None:
    enforcer, resource = _compile(entries), _resource(path)
    if enforcer.has_partial(sorted(caller), resource, [permission]):
        assert caller & enforcer.candidate_subjects(resource, permission)
    assert (
        enforcer.has_unrestricted(sorted(caller), resource, [permission])
        <= enforcer.has(sorted(caller), resource, [permission])
        <= enforcer.has_partial(sorted(caller), resource, [permission])
    )


def test_pointer_parsing_is_shared_with_the_model() -> None:
    assert parse_resource("thing:/a~0b") == ("thing", *parse_pointer("/a~0b"))
