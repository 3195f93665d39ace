"""Parsing of the history headers and selection of a replayed state (domain/history.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ditto_compat.cli import build_parser
from ditto_compat.domain.history import compact, parse_historical, replay, state_at
from ditto_compat.errors import HeaderInvalid


def entry(revision: int, action: str, path: str, value: object = None, minute: int = 0) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "things.events:x",
        "thingId": "a:b",
        "action": action,
        "path": path,
        "revision": revision,
        "timestamp": f"2024-05-01T10:{minute:02d}:00.000Z",
    }
    if value is not None:
        body["value"] = value
    return body


JOURNAL = [
    entry(1, "created", "/", {"thingId": "a:b"}, minute=1),
    entry(2, "modified", "/attributes/x", 1, minute=2),
    entry(3, "deleted", "/", minute=3),
    entry(4, "created", "/", {"thingId": "a:b", "attributes": {"y": 2}}, minute=4),
]


def test_parse_historical() -> None:
    assert parse_historical(None, None) is None
    point = parse_historical(" 7 ", "2024-01-01T00:00:00Z")  # the revision wins
    assert point is not None and (point.revision, point.timestamp) == (7, None)
    point = parse_historical(None, "2024-01-01T01:00+01:00")
    assert point is not None and point.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    point = parse_historical(None, "2024-01-01T00:00:00")  # no offset: UTC
    assert point is not None and point.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    for bad in ("+1", "1_0", "1.0", "", "٣"):
        with pytest.raises(HeaderInvalid):
            parse_historical(bad, None)
    with pytest.raises(HeaderInvalid):
        parse_historical(None, "now")


def test_replay_and_state_at() -> None:
    states = replay("things", "a:b", JOURNAL)
    assert [s.doc for s in states] == [
        {"thingId": "a:b"},
        {"thingId": "a:b", "attributes": {"x": 1}},
        None,
        {"thingId": "a:b", "attributes": {"y": 2}},
    ]
    # a re-creation starts a new creation time
    assert [s.created for s in states] == [JOURNAL[0]["timestamp"]] * 3 + [JOURNAL[3]["timestamp"]]
    at = parse_historical("2", None)
    assert at is not None and state_at(states, at) == states[1]
    at = parse_historical(None, "2024-05-01T10:02:30Z")
    assert at is not None and state_at(states, at) == states[1]
    at = parse_historical(None, "2024-05-01T10:00:59Z")
    assert at is not None and state_at(states, at) is None


def test_compact_replaces_a_prefix_by_a_snapshot() -> None:
    assert compact("things", "a:b", JOURNAL[:1]) is None
    snapshot = compact("things", "a:b", JOURNAL[:2])
    assert snapshot is not None
    assert replay("things", "a:b", [snapshot, *JOURNAL[2:]]) == replay("things", "a:b", JOURNAL)[1:]
    tombstone = compact("things", "a:b", JOURNAL[:3])
    assert tombstone is not None and (tombstone["action"], "value" in tombstone) == ("deleted", False)


def test_a_negative_retention_option_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["serve", "--journal-retention", "-1"])
