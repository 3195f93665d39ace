"""Thing events (``basic-signals-event``, ``protocol-specification-things``) and how they change a Thing.

An event is what a command did: an action (``created``, ``modified``, ``merged``, ``deleted``) at a path with a
value. The same :func:`apply_event` turns a command's event into the new state and replays the journal, so
history can never disagree with the present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ditto_compat.domain.entity import EntityState
from ditto_compat.model.merge import merge_patch
from ditto_compat.model.pointer import (
    MISSING,
    Pointer,
    delete_at,
    format_pointer,
    get_at,
    parse_pointer,
    set_at,
)

ACTIONS = ("created", "modified", "merged", "deleted")


@dataclass(frozen=True, slots=True)
class ThingEvent:
    type: str  # e.g. "things.events:featurePropertyModified"
    thing_id: str
    action: str
    path: Pointer
    value: Any  # MISSING for deletions
    revision: int
    timestamp: str

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "thingId": self.thing_id,
            "action": self.action,
            "path": format_pointer(self.path),
            "revision": self.revision,
            "timestamp": self.timestamp,
        }
        if self.value is not MISSING:
            body["value"] = self.value
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ThingEvent:
        return cls(
            type=body["type"],
            thing_id=body["thingId"],
            action=body["action"],
            path=parse_pointer(body["path"]),
            value=body.get("value", MISSING),
            revision=int(body["revision"]),
            timestamp=body["timestamp"],
        )


def apply_event(doc: dict[str, Any] | None, event: ThingEvent) -> dict[str, Any] | None:
    """The Thing after ``event``; ``None`` means deleted."""
    path = event.path
    action = event.action
    if not path:
        if action == "deleted":
            return None
        if action == "merged":
            merged = merge_patch(doc or {}, event.value)
            return merged if isinstance(merged, dict) else None
        return dict(event.value)
    base = doc or {}
    if action == "deleted":
        return delete_at(base, path) if get_at(base, path) is not MISSING else base
    if action == "merged":
        merged = merge_patch(get_at(base, path) if get_at(base, path) is not MISSING else None, event.value)
        if merged is None:
            return delete_at(base, path) if get_at(base, path) is not MISSING else base
        return set_at(base, path, merged)
    return set_at(base, path, event.value)


@dataclass(frozen=True, slots=True)
class ThingChange:
    """A committed event with what subscribers need to route it: the Thing after the change (``state.doc`` is
    None after a deletion), the Thing before it (for the policy of a deleted Thing), and the headers of the
    command that caused it (its ``correlation-id`` ties the event to the command's response)."""

    event: ThingEvent
    state: EntityState
    previous: EntityState | None
    headers: dict[str, str]
    channel: str = "twin"  # "live": an event a device announced, not a change of the twin
    # who announced a live event (its WebSocket session): Ditto does not send a live signal back to its sender
    origin: object | None = None

    @property
    def thing(self) -> dict[str, Any] | None:
        """The Thing JSON whose policy governs who sees the event: the new one, or the last one if deleted."""
        if self.state.doc is not None:
            return self.state.doc
        return self.previous.doc if self.previous is not None else None
