"""The last known state of recently written Things, so that a write does not read its Thing back from the
store first (DESIGN.md "One command path", step 3).

Safe because every write is a compare-and-set on the revision: a cached state that another process made stale
makes the commit miss, and the dispatcher then evicts it and reads the store. Only writes use it; reads go to
the store, so they see other processes' writes (MongoDB scale-out). States are immutable by convention:
strategies copy along the path they change (model/pointer.py ``set_at``), so a cached document is never
changed in place.
"""

from __future__ import annotations

from collections import OrderedDict

from ditto_compat.domain.entity import EntityState

DEFAULT_ENTRIES = 10_000


class StateCache:
    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        self._max = max_entries
        self._states: OrderedDict[str, EntityState] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, entity_id: str) -> EntityState | None:
        state = self._states.get(entity_id)
        if state is None:
            self.misses += 1
            return None
        self._states.move_to_end(entity_id)
        self.hits += 1
        return state

    def put(self, state: EntityState) -> None:
        if self._max <= 0:
            return
        self._states[state.entity_id] = state
        self._states.move_to_end(state.entity_id)
        if len(self._states) > self._max:
            self._states.popitem(last=False)

    def discard(self, entity_id: str) -> None:
        self._states.pop(entity_id, None)

    def __len__(self) -> int:
        return len(self._states)
