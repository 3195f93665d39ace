"""Which subjects a policy announces and when (``basic-policy`` "Subject deletion announcements")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ditto_compat.domain.policy_announcements import (
    announced_subjects,
    format_instant,
    live_subject_ids,
    parse_duration,
    subject_deletion,
)

NOW = datetime(2026, 3, 3, 16, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("5m", 300), ("1h", 3600), ("2d", 172800), ("42", 42), (" 3s ", 3)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1.5h", "-1s", "1w", "h", None, 5])
def test_invalid_durations(text: Any) -> None:
    assert parse_duration(text) is None


def test_instants_render_as_java_instants() -> None:
    assert format_instant(datetime(2021, 3, 3, 16, 5, 55, tzinfo=UTC)) == "2021-03-03T16:05:55Z"
    assert format_instant(datetime(2021, 3, 3, 16, 5, 55, 123456, tzinfo=UTC)) == "2021-03-03T16:05:55.123Z"


def test_subject_deletion_value_is_the_protocol_example() -> None:
    value = subject_deletion(
        "org.eclipse.ditto:the_policy_id",
        datetime(2021, 3, 3, 16, 5, 55, tzinfo=UTC),
        ["integration:some-label:my-aud-1", "integration:some-label:my-aud-2"],
    )
    assert value == {
        "deleteAt": "2021-03-03T16:05:55Z",
        "subjectIds": ["integration:some-label:my-aud-1", "integration:some-label:my-aud-2"],
    }


def _policy(**subjects: Any) -> dict[str, Any]:
    return {
        "policyId": "ns:p",
        "entries": {
            "a": {"subjects": {f"nginx:{k}": v for k, v in subjects.items()}, "resources": {}},
            "b": {"subjects": {"nginx:owner": {"type": "t"}}, "resources": {}},
        },
    }


def test_announced_subjects() -> None:
    doc = _policy(
        before={"type": "t", "expiry": "2026-03-03T17:00:00Z", "announcement": {"beforeExpiry": "10m"}},
        deleted={"type": "t", "announcement": {"whenDeleted": True}},
        quiet={"type": "t", "announcement": {"whenDeleted": False}},
        plain={"type": "t", "expiry": "2026-03-03T17:00:00Z"},
        expired={"type": "t", "expiry": "2026-03-03T15:00:00Z", "announcement": {"whenDeleted": True}},
        bad={"type": "t", "announcement": {"beforeExpiry": "soon"}},
    )
    found = {s.subject_id: s for s in announced_subjects("ns:p", doc, NOW).values()}
    assert set(found) == {"nginx:before", "nginx:deleted"}
    before = found["nginx:before"]
    assert before.announce_at == datetime(2026, 3, 3, 16, 50, tzinfo=UTC)
    assert (before.when_deleted, found["nginx:deleted"].when_deleted) == (False, True)
    assert found["nginx:deleted"].announce_at is None
    assert announced_subjects("ns:p", None, NOW) == {}


def test_a_changed_subject_has_another_key() -> None:
    subject = {"type": "t", "expiry": "2026-03-03T17:00:00Z", "announcement": {"whenDeleted": True}}
    (first,) = announced_subjects("ns:p", _policy(x=subject), NOW)
    (same,) = announced_subjects("ns:p", _policy(x={**subject, "announcement": {"whenDeleted": True}}), NOW)
    (changed,) = announced_subjects("ns:p", _policy(x={**subject, "expiry": "2026-03-03T18:00:00Z"}), NOW)
    assert first == same
    assert first != changed


def test_live_subject_ids_leave_out_expired_ones() -> None:
    doc = _policy(
        gone={"type": "t", "expiry": "2026-03-03T15:00:00Z"},
        here={"type": "t", "expiry": "2026-03-03T17:00:00Z"},
    )
    assert live_subject_ids(doc, NOW) == {"nginx:here", "nginx:owner"}
    assert live_subject_ids(None, NOW) == set()
