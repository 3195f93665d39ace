"""``EnforcerCache``: a Thing's new policy is compiled once, when the Thing is created, and that enforcer serves
its first modifications; it is never served for a document other than the one stored, nor once the policy
changed. On both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ditto_compat.domain.auth import AuthContext
from ditto_compat.domain.enforcer import Enforcer
from ditto_compat.domain.entity import EntityState
from ditto_compat.domain.things import Outcome, ThingCommand
from ditto_compat.errors import DittoError
from ditto_compat.persistence.ports import EntityWrite, Store
from ditto_compat.service.dispatcher import Dispatcher

ALICE = AuthContext(("nginx:alice",))
T0 = "2024-05-01T10:00:00.000Z"


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | None]]:
    """The namespaces of every enforcer compiled meanwhile."""
    calls: list[str | None] = []
    original = Enforcer.compile

    def counting(entries: object, *, namespace: str | None = None) -> Enforcer:
        calls.append(namespace)
        return original(entries, namespace=namespace)  # type: ignore[arg-type]

    monkeypatch.setattr(Enforcer, "compile", staticmethod(counting))
    yield calls


def prop(thing: str, value: object) -> ThingCommand:
    return ThingCommand("modify", thing, ("features", "f", "properties", "p"), value)


async def test_the_enforcer_compiled_at_creation_serves_the_first_modifications(
    store: Store, compiled: list[str | None]
) -> None:
    dispatcher = Dispatcher(store)
    await dispatcher.handle(ThingCommand("create", "org.cache:a", (), {"features": {"f": {}}}), ALICE)
    assert compiled == ["org.cache"]  # the creation's own authorization
    assert isinstance(await dispatcher.handle(prop("org.cache:a", 1), ALICE), Outcome)
    results = await dispatcher.handle_many([(prop("org.cache:a", 2), ALICE), (prop("org.cache:a", 3), ALICE)])
    assert all(isinstance(r, Outcome) for r in results)
    assert compiled == ["org.cache"]


async def test_a_changed_policy_is_compiled_again(store: Store, compiled: list[str | None]) -> None:
    dispatcher = Dispatcher(store)
    await dispatcher.handle(ThingCommand("create", "org.cache:b", (), {"features": {"f": {}}}), ALICE)
    policy = await store.get("policies", "org.cache:b")
    assert policy is not None and policy.doc is not None
    # another process takes alice's WRITE away (as the Policies API would, one revision on)
    revoked = {
        **policy.doc,
        "entries": {"DEFAULT": {"subjects": {"nginx:bob": {"type": "t"}}, "resources": {}}},
    }
    await store.commit(
        [
            EntityWrite(
                "policies",
                policy.revision,
                EntityState("org.cache:b", policy.revision + 1, revoked, T0, T0),
                {"revision": policy.revision + 1},
            )
        ]
    )
    refused = await dispatcher.handle_many([(prop("org.cache:b", 1), ALICE)])
    assert isinstance(refused[0], DittoError) and refused[0].status == 403
    assert compiled == ["org.cache", "org.cache"]


async def test_only_the_document_compiled_is_cached(store: Store, compiled: list[str | None]) -> None:
    dispatcher = Dispatcher(store)
    enforcers = dispatcher.enforcers
    doc = {"entries": {"o": {"subjects": {"nginx:alice": {"type": "t"}}, "resources": {}}}}
    await enforcers.compile_unsaved("org.cache:c", doc, "org.cache")
    # what is stored is another document (a creation that failed, then one that stored something else)
    other = {"entries": {"o": {"subjects": {"nginx:bob": {"type": "t"}}, "resources": {}}}}
    state = EntityState("org.cache:c", 1, other, T0, T0)
    await store.commit([EntityWrite("policies", 0, state, {"revision": 1})])
    enforcers.saved(state)
    with enforcers.snapshot():
        enforcer = await enforcers.enforcer("org.cache:c", "org.cache")
    assert enforcer is not None and len(compiled) == 2  # compiled from what is stored
