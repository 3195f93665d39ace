"""What the store keeps for every entity (Thing or Policy): JSON, revision and timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EntityState:
    """``doc`` is ``None`` once the entity was deleted; the revision keeps counting across deletion, as in
    Ditto, whose journal for an id never restarts."""

    entity_id: str
    revision: int
    doc: dict[str, Any] | None
    created: str
    modified: str

    @property
    def exists(self) -> bool:
        return self.doc is not None
