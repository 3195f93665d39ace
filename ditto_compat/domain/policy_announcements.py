"""When a Policy announces the deletion of its subjects (``basic-policy`` "Subject deletion announcements",
``protocol-specification-policies`` "Announcements"); pure, the timing is done by
service/policy_announcements.py.

A subject may carry ``"announcement": {"beforeExpiry": "1h", "whenDeleted": true}`` next to its ``expiry``.
Following Ditto's ``SubjectExpiryActor``, each such subject (a subject id with its whole value: a subject whose
expiry or announcement changes is a new one) is announced at most once:

- ``beforeExpiry`` (with an ``expiry``): at ``expiry - beforeExpiry``, or at once when that moment has passed
  when the subject is written (or when the server starts: Ditto's actors re-announce after a restart too);
  ``deleteAt`` is the expiry;
- ``whenDeleted``: when the subject is deleted before it was announced, by a policy modification (its id is no
  longer among the policy's unexpired subjects; ``deleteAt`` is the time of the write), or by reaching its
  expiry (``deleteAt`` is the expiry).

Only the policy's own entries count, as in Ditto, not what it imports. ``requestedAcks`` are not supported:
an announcement counts as done once it was published, as Ditto treats one that requests no acknowledgement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ditto_compat.model.jsonio import canonical

# DittoDuration: a number with an optional unit (seconds when none)
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: Any) -> timedelta | None:
    """``"250ms"``, ``"10s"``, ``"5m"``, ``"1h"``, ``"1d"`` (a plain number is seconds); ``None`` when it is not
    one of them."""
    if not isinstance(text, str):
        return None
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_instant(text: Any) -> datetime | None:
    """A stored ``expiry`` (ISO-8601 with a zone) as an aware datetime; ``None`` when it cannot be read."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_instant(moment: datetime) -> str:
    """As Java's ``Instant#toString``: UTC, ``Z``, fractions only when there are any (milliseconds here)."""
    utc = moment.astimezone(UTC)
    if utc.microsecond // 1000:
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class AnnouncedSubject:
    """A subject of a policy that asks to be announced. ``key`` tells a subject from a changed one of the
    same id (Ditto keys its subject expiry actors by the whole subject)."""

    policy_id: str
    subject_id: str
    key: str
    expiry: datetime | None
    before_expiry: timedelta | None
    when_deleted: bool

    @property
    def announce_at(self) -> datetime | None:
        """When the ``beforeExpiry`` announcement is due (``None``: there is none)."""
        if self.expiry is None or self.before_expiry is None:
            return None
        return self.expiry - self.before_expiry

    def expired(self, now: datetime) -> bool:
        return self.expiry is not None and self.expiry <= now


def _subjects(doc: Mapping[str, Any] | None) -> Iterator[tuple[str, Any]]:
    entries = doc.get("entries") if isinstance(doc, Mapping) else None
    if not isinstance(entries, Mapping):
        return
    for entry in entries.values():
        subjects = entry.get("subjects") if isinstance(entry, Mapping) else None
        if isinstance(subjects, Mapping):
            yield from subjects.items()


def announced_subjects(
    policy_id: str, doc: Mapping[str, Any] | None, now: datetime
) -> dict[str, AnnouncedSubject]:
    """The unexpired subjects of ``doc`` (``None``: deleted) that have an announcement, by key; the same
    subject in several entries is one."""
    out: dict[str, AnnouncedSubject] = {}
    for subject_id, subject in _subjects(doc):
        if not isinstance(subject, Mapping):
            continue
        announcement = subject.get("announcement")
        if not isinstance(announcement, Mapping):
            continue
        expiry = parse_instant(subject.get("expiry"))
        if subject.get("expiry") is not None and (expiry is None or expiry <= now):
            continue  # expired (or unreadable, which Ditto's validation never stores): gone already
        before = parse_duration(announcement.get("beforeExpiry"))
        when_deleted = announcement.get("whenDeleted") is True
        if before is None and not when_deleted:
            continue
        key = subject_id + "\n" + canonical(subject).decode()
        out[key] = AnnouncedSubject(policy_id, subject_id, key, expiry, before, when_deleted)
    return out


def live_subject_ids(doc: Mapping[str, Any] | None, now: datetime) -> set[str]:
    """The ids of the subjects of ``doc`` that have not expired: a subject whose id is among them after a write
    was changed, not deleted."""
    live: set[str] = set()
    for subject_id, subject in _subjects(doc):
        expiry = parse_instant(subject.get("expiry")) if isinstance(subject, Mapping) else None
        if expiry is None or expiry > now:
            live.add(subject_id)
    return live


def subject_deletion(policy_id: str, delete_at: datetime, subject_ids: list[str]) -> dict[str, Any]:
    """The value of a ``SubjectDeletionAnnouncement`` (``protocol-examples-policies-announcement-subjectDeletion``)."""
    return {"deleteAt": format_instant(delete_at), "subjectIds": subject_ids}
