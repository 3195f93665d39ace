"""History from the journal (``basic-history``): an entity as it was at a revision or a point in time, and the
snapshot that lets a bounded journal still be replayed.

Every journal entry is the event of one revision, and :func:`replay` applies them with the same functions the
strategies use to compute new states, so a replayed revision is exactly what was stored then.

With a retention of N revisions per entity (``journal_retention``), the stores keep the last N entries only and
rewrite the oldest kept one as a *snapshot*: an event at ``path "/"`` whose value is the whole entity at that
revision (action ``created``; ``deleted`` for a tombstone), marked ``"snapshot": true`` and carrying the
entity's ``created`` timestamp, which the events it replaces would otherwise have taken with them. Replay from
a snapshot then gives the same states as replay from revision 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.events import ThingEvent, apply_event
from ditto_compat.domain.policy_commands import PolicyEvent, apply_policy_event
from ditto_compat.errors import DittoError, HeaderInvalid

HistoryCollection = Literal["things", "policies"]
AT_REVISION = "at-historical-revision"
AT_TIMESTAMP = "at-historical-timestamp"
_RETENTION_HINT = (
    "ensure that the asked for revision/timestamp does not exceed the history retention (journal_retention)."
)


class ThingHistoryNotAccessible(DittoError):
    """Ditto 3.2's ``ThingHistoryNotAccessibleException``: the revision or timestamp is outside the kept
    journal, or the Thing did not exist then."""

    status = 404
    error_code = "things:thing.history.notfound"
    default_message = "The Thing at the requested revision or timestamp could not be found."
    default_description = (
        "Check if the ID of your requested Thing was correct, you have sufficient permissions and "
        + _RETENTION_HINT
    )


class PolicyHistoryNotAccessible(DittoError):
    """Ditto 3.2's ``PolicyHistoryNotAccessibleException``."""

    status = 404
    error_code = "policies:policy.history.notfound"
    default_message = "The Policy at the requested revision or timestamp could not be found."
    default_description = (
        "Check if the ID of your requested Policy was correct, you have sufficient permissions and "
        + _RETENTION_HINT
    )


@dataclass(frozen=True, slots=True)
class HistoricalPoint:
    """Where in an entity's history a retrieve looks: a revision, or else the last revision at or before a
    point in time. ``text`` is the value as the client sent it (for error messages)."""

    revision: int | None
    timestamp: datetime | None
    text: str

    _errors: ClassVar[dict[str, type[DittoError]]] = {
        "things": ThingHistoryNotAccessible,
        "policies": PolicyHistoryNotAccessible,
    }

    def not_accessible(self, collection: HistoryCollection, entity_id: str) -> DittoError:
        entity = "Thing" if collection == "things" else "Policy"
        at = "revision" if self.revision is not None else "timestamp"
        return self._errors[collection](
            f"The {entity} with ID '{entity_id}' at {at} '{self.text}' could not be found or requester had "
            "insufficient permissions to access it."
        )


def parse_historical(revision: str | None, timestamp: str | None) -> HistoricalPoint | None:
    """The ``at-historical-revision`` / ``at-historical-timestamp`` headers (or query parameters); None when
    neither is given. The revision wins when both are, as in Ditto, which looks at it first."""
    if revision is not None:
        text = revision.strip()
        # int() would also take "+1", "1_0" or " 1": a revision is plain decimal digits, optionally negative
        # (Ditto's long header validator accepts those; a negative revision then simply does not exist)
        digits = text[1:] if text.startswith("-") else text
        if not digits.isascii() or not digits.isdigit():
            raise HeaderInvalid(
                f"The value '{revision}' of the header '{AT_REVISION}' is not a valid long.",
                "Provide the revision as a whole number.",
            )
        return HistoricalPoint(int(text), None, text)
    if timestamp is not None:
        return HistoricalPoint(None, parse_timestamp(timestamp), timestamp.strip())
    return None


def parse_timestamp(text: str) -> datetime:
    """ISO-8601 as Ditto takes it (``2022-10-24T03:11:15Z``, ``2022-10-24T07:11Z``, offsets); a time without
    offset is read as UTC, the zone of every timestamp this server writes."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise HeaderInvalid(
            f"The value '{text}' of the header '{AT_TIMESTAMP}' is not a valid ISO-8601 timestamp.",
            "Provide a timestamp like '2022-10-24T03:11:15Z'.",
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _instant(timestamp: str) -> datetime:
    value = datetime.fromisoformat(timestamp)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def apply_entry(collection: HistoryCollection, doc: dict[str, Any] | None, entry: dict[str, Any]) -> Any:
    """The entity after one journal entry (``None``: deleted)."""
    if collection == "things":
        return apply_event(doc, ThingEvent.from_json(entry))
    return apply_policy_event(doc, PolicyEvent.from_json(entry))


def replay(
    collection: HistoryCollection, entity_id: str, entries: Sequence[dict[str, Any]]
) -> list[EntityState]:
    """The entity after each entry, in journal order. The first entry must be revision 1 or a snapshot;
    ``created`` is the time of the latest creation (a snapshot carries it), ``modified`` that of the entry."""
    states: list[EntityState] = []
    doc: dict[str, Any] | None = None
    created = ""
    for entry in entries:
        after: dict[str, Any] | None = apply_entry(collection, doc, entry)
        timestamp = str(entry["timestamp"])
        if entry.get("snapshot"):
            created = str(entry.get("created") or timestamp)
        elif doc is None and after is not None:
            created = timestamp
        doc = after
        states.append(EntityState(entity_id, int(entry["revision"]), doc, created, timestamp))
    return states


def state_at(states: Sequence[EntityState], point: HistoricalPoint) -> EntityState | None:
    """The replayed state at ``point``, None when the journal does not reach back that far (or not forward:
    a revision after the last entry)."""
    if point.revision is not None:
        return next((s for s in states if s.revision == point.revision), None)
    assert point.timestamp is not None
    found: EntityState | None = None
    for state in states:
        if _instant(state.modified) > point.timestamp:
            break
        found = state
    return found


def snapshot_entry(collection: HistoryCollection, state: EntityState) -> dict[str, Any]:
    """The journal entry that stands for everything up to ``state.revision`` (see the module docs)."""
    kind, id_key = ("things", "thingId") if collection == "things" else ("policies", "policyId")
    entity = "thing" if collection == "things" else "policy"
    deleted = state.doc is None
    entry: dict[str, Any] = {
        "type": f"{kind}.events:{entity}{'Deleted' if deleted else 'Created'}",
        id_key: state.entity_id,
        "action": "deleted" if deleted else "created",
        "path": "/",
        "revision": state.revision,
        "timestamp": state.modified,
        "snapshot": True,
        "created": state.created,
    }
    if not deleted:
        entry["value"] = state.doc
    return entry


def compact(
    collection: HistoryCollection, entity_id: str, entries: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """The snapshot entry replacing ``entries`` (the journal from its oldest entry, revision 1 or a snapshot,
    up to the new oldest kept one, in order), or None when there is nothing to compact: a single entry is
    already revision 1 or a snapshot."""
    if len(entries) < 2:
        return None
    return snapshot_entry(collection, replay(collection, entity_id, entries)[-1])
