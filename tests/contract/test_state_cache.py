"""The dispatcher writes from its cached Thing states (service/state_cache.py); a state another writer made
stale must cost a retry, never a lost update, on both backends. Two dispatchers on one store stand for two
server processes on one database."""

from __future__ import annotations

from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.things import ThingCommand
from ditto_compat.persistence.ports import Store
from ditto_compat.service.dispatcher import Dispatcher
from ditto_compat.service.state_cache import StateCache

ALICE = AuthContext(("nginx:alice",))
THING = "org.cache:thing-1"


def modify(path: tuple[str, ...], value: object) -> ThingCommand:
    return ThingCommand("modify", THING, path, value)


async def test_a_stale_cached_state_is_retried_not_lost(store: Store) -> None:
    first, second = Dispatcher(store), Dispatcher(store)
    await first.handle(ThingCommand("create", THING, (), {"attributes": {"a": 0}}), ALICE)
    await first.handle(modify(("attributes", "a"), 1), ALICE)  # first now caches revision 2
    await second.handle(modify(("attributes", "b"), 2), ALICE)  # revision 3, unknown to first
    await first.handle(modify(("attributes", "a"), 3), ALICE)  # from a stale cache: missed CAS, retried
    state = await store.get("things", THING)
    assert state is not None and state.doc is not None
    assert state.revision == 4
    assert state.doc["attributes"] == {"a": 3, "b": 2}
    cached = first.states.get(THING)
    assert cached is not None and cached.revision == 4


def test_the_cache_keeps_the_most_recently_used_states() -> None:
    cache = StateCache(max_entries=2)
    for name in ("a", "b"):
        cache.put(EntityState(name, 1, {}, "t", "t"))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put(EntityState("c", 1, {}, "t", "t"))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.discard("a")
    assert cache.get("a") is None and len(cache) == 1


async def test_live_entities_are_counted_by_the_store(store: Store) -> None:
    """``count_live`` (for /metrics) counts what exists, not tombstones."""
    dispatcher = Dispatcher(store)
    for name in ("a", "b", "c"):
        await dispatcher.handle(ThingCommand("create", f"org.count:{name}", (), {}), ALICE)
    await dispatcher.handle(ThingCommand("delete", "org.count:b"), ALICE)
    assert await store.count_live("things") == 2
    assert await store.count_live("policies") == 3  # each thing got its own default policy
