"""``at-historical-revision`` / ``at-historical-timestamp`` on Thing and Policy retrieval (``basic-history``),
with and without ``journal_retention``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.api.context import AppContext
from ditto_compat.domain.history import replay
from ditto_compat.persistence.factory import create_store
from ditto_compat.persistence.ports import Collection
from ditto_compat.settings import Settings
from tests.api.conftest import DITTO, new_id

REV = "at-historical-revision"
TS = "at-historical-timestamp"
MERGE = {"Content-Type": "application/merge-patch+json"}


def _ctx(client: httpx.AsyncClient) -> AppContext:
    ctx: AppContext = client._transport.app.state.ctx  # type: ignore[attr-defined]
    return ctx


async def _changes(client: httpx.AsyncClient, url: str, *bodies: Any) -> None:
    """PUT each body in turn, a little apart so that every revision has its own millisecond timestamp."""
    for body in bodies:
        r = await client.put(url, json=body)
        assert r.status_code in (201, 204), r.text
        await asyncio.sleep(0.005)


async def _thing_with_three_revisions(client: httpx.AsyncClient) -> str:
    thing_id = new_id()
    base = f"/api/2/things/{thing_id}"
    await _changes(client, base, {"attributes": {"a": 1}})  # 1
    await _changes(client, f"{base}/attributes/a", 2)  # 2
    await _changes(client, f"{base}/features/f", {"properties": {"p": True}})  # 3
    return thing_id


async def test_thing_at_a_revision(client: httpx.AsyncClient) -> None:
    thing_id = await _thing_with_three_revisions(client)
    base = f"/api/2/things/{thing_id}"
    r = await client.get(base, headers={REV: "1"})
    assert r.status_code == 200, r.text
    assert r.json() == {"thingId": thing_id, "policyId": thing_id, "attributes": {"a": 1}}
    assert r.headers["etag"] == '"rev:1"'
    # as a query parameter, like every header of gateway.conf query-params-as-headers
    r = await client.get(base, params={REV: "2", "fields": "attributes,_revision"})
    assert r.json() == {"attributes": {"a": 2}, "_revision": 2}
    assert r.headers["etag"] == '"rev:2"'
    # the current revision is the present
    r = await client.get(base, headers={REV: "3"})
    assert r.json() == (await client.get(base)).json()
    # sub-resources, with the ETag of the historical value
    r = await client.get(f"{base}/attributes/a", headers={REV: "1"})
    assert (r.status_code, r.json()) == (200, 1)
    assert r.headers["etag"] != (await client.get(f"{base}/attributes/a")).headers["etag"]
    r = await client.get(f"{base}/features", headers={REV: "2"})
    assert (r.status_code, r.json()["error"]) == (404, "things:features.notfound")
    # preconditions apply to the historical ETag
    r = await client.get(base, headers={REV: "1", "If-None-Match": '"rev:1"'})
    assert r.status_code == 304


async def test_thing_at_a_timestamp(client: httpx.AsyncClient) -> None:
    thing_id = await _thing_with_three_revisions(client)
    base = f"/api/2/things/{thing_id}"
    modified = []
    for revision in (1, 2, 3):
        r = await client.get(base, headers={REV: str(revision)}, params={"fields": "_modified"})
        modified.append(r.json()["_modified"])
    assert len(set(modified)) == 3
    r = await client.get(base, headers={TS: modified[0]}, params={"fields": "attributes,_revision"})
    assert r.json() == {"attributes": {"a": 1}, "_revision": 1}
    r = await client.get(base, params={TS: modified[1], "fields": "_revision"})
    assert r.json() == {"_revision": 2}
    r = await client.get(base, headers={TS: "2999-01-01T00:00:00Z"}, params={"fields": "_revision"})
    assert r.json() == {"_revision": 3}
    r = await client.get(base, headers={TS: "2000-01-01T00:00:00+02:00"})
    assert (r.status_code, r.json()["error"]) == (404, "things:thing.history.notfound")
    assert "at timestamp '2000-01-01T00:00:00+02:00'" in r.json()["message"]


@pytest.mark.parametrize("revision", ["0", "-1", "4", "99999999999"])
async def test_a_revision_outside_the_journal(client: httpx.AsyncClient, revision: str) -> None:
    thing_id = await _thing_with_three_revisions(client)
    r = await client.get(f"/api/2/things/{thing_id}/attributes", headers={REV: revision})
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "things:thing.history.notfound"
    assert body["message"] == (
        f"The Thing with ID '{thing_id}' at revision '{revision}' could not be found or requester had "
        "insufficient permissions to access it."
    )


@pytest.mark.parametrize(
    ("header", "value"), [(REV, "one"), (REV, "1.5"), (REV, ""), (TS, "yesterday"), (TS, "2024-13-01T00:00Z")]
)
async def test_unparsable_history_headers(client: httpx.AsyncClient, header: str, value: str) -> None:
    thing_id = await _thing_with_three_revisions(client)
    r = await client.get(f"/api/2/things/{thing_id}", headers={header: value})
    assert (r.status_code, r.json()["error"]) == (400, "header.invalid")
    policy = await client.get(f"/api/2/policies/{thing_id}", headers={header: value})
    assert (policy.status_code, policy.json()["error"]) == (400, "header.invalid")


async def test_unknown_entities_are_not_found(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/api/2/things/{new_id()}", headers={REV: "1"})
    assert r.json()["error"] == "things:thing.notfound"
    r = await client.get(f"/api/2/policies/{new_id()}", headers={REV: "1"})
    assert r.json()["error"] == "policies:policy.notfound"


async def test_history_of_a_deleted_thing(client: httpx.AsyncClient) -> None:
    thing_id = await _thing_with_three_revisions(client)
    base = f"/api/2/things/{thing_id}"
    assert (await client.delete(base)).status_code == 204
    assert (await client.get(base)).status_code == 404
    r = await client.get(base, headers={REV: "2"})
    assert (r.status_code, r.json()["attributes"]) == (200, {"a": 2})
    r = await client.get(f"{base}/features/f/properties/p", headers={REV: "3"})
    assert (r.status_code, r.json()) == (200, True)
    r = await client.get(base, headers={REV: "4"})  # the deletion itself
    assert r.json()["error"] == "things:thing.history.notfound"
    r = await client.get(base, headers={TS: "2999-01-01T00:00:00Z"})
    assert r.json()["error"] == "things:thing.history.notfound"


async def test_the_current_policy_decides_what_history_shows(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    base = f"/api/2/things/{thing_id}"
    await _changes(client, base, {"attributes": {"public": 1, "secret": 2}})
    hide = {
        "subjects": {"nginx:ditto": {"type": "test"}},
        "resources": {"thing:/attributes/secret": {"grant": [], "revoke": ["READ"]}},
    }
    await _changes(client, f"/api/2/policies/{thing_id}/entries/HIDE", hide)
    r = await client.get(base, headers={REV: "1"})
    assert r.json()["attributes"] == {"public": 1}  # revision 1 was readable then, not now
    r = await client.get(f"{base}/attributes/secret", headers={REV: "1"})
    assert (r.status_code, r.json()["error"]) == (404, "things:attribute.notfound")
    # a caller without READ learns nothing about which revisions exist
    r = await client.get(f"{base}/attributes/secret", headers={REV: "7"})
    assert r.json()["error"] == "things:attribute.notfound"


async def test_policy_at_a_revision(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    base = f"/api/2/policies/{policy_id}"
    owner = {
        "subjects": {"nginx:ditto": {"type": "test"}},
        "resources": {"policy:/": {"grant": ["READ", "WRITE"], "revoke": []}},
    }
    await _changes(client, base, {"entries": {"OWNER": owner}})  # 1
    reader = {
        "subjects": {"nginx:reader": {"type": "test"}},
        "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
    }
    await _changes(client, f"{base}/entries/READER", reader)  # 2
    await _changes(client, f"{base}/entries/READER/subjects/nginx:other", {"type": "x"})  # 3
    first = await client.get(base, headers={REV: "1"})
    assert first.status_code == 200, first.text
    assert set(first.json()["entries"]) == {"OWNER"}
    assert first.headers["etag"] == '"rev:1"'
    r = await client.get(f"{base}/entries/READER", params={REV: "2"})
    assert r.json()["subjects"] == {"nginx:reader": {"type": "test"}}
    r = await client.get(f"{base}/entries/READER", headers={REV: "1"})
    assert (r.status_code, r.json()["error"]) == (404, "policies:entry.notfound")
    r = await client.get(base, headers={REV: "4"})
    assert (r.status_code, r.json()["error"]) == (404, "policies:policy.history.notfound")
    r = await client.get(base, headers={REV: "1"}, params={"fields": "_revision"})
    modified = (await client.get(base, headers={REV: "2"}, params={"fields": "_modified"})).json()[
        "_modified"
    ]
    r = await client.get(base, headers={TS: modified}, params={"fields": "_revision"})
    assert r.json() == {"_revision": 2}
    # a deleted policy keeps its history
    assert (await client.delete(base)).status_code == 204
    r = await client.get(base, headers={REV: "3"})
    assert r.status_code == 200
    assert set(r.json()["entries"]["READER"]["subjects"]) == {"nginx:reader", "nginx:other"}


async def _assert_replay_is_the_present(
    client: httpx.AsyncClient, collection: Collection, entity_id: str
) -> None:
    store = _ctx(client).store
    current = await store.get(collection, entity_id)
    assert current is not None
    states = replay(collection, entity_id, await store.journal(collection, entity_id))
    assert states[-1] == current


async def test_replaying_the_journal_reproduces_every_policy_change(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    base = f"/api/2/policies/{policy_id}"
    owner = {
        "subjects": {"nginx:ditto": {"type": "test"}},
        "resources": {"policy:/": {"grant": ["READ", "WRITE"], "revoke": []}, "thing:/": {"grant": ["READ"]}},
    }
    await _changes(client, base, {"entries": {"OWNER": owner}})
    await _changes(client, f"{base}/entries/OWNER/subjects/nginx:x", {"type": "t"})
    await _changes(
        client, f"{base}/entries/OWNER/resources/thing:/features", {"grant": [], "revoke": ["READ"]}
    )
    await _changes(client, f"{base}/entries/OWNER/resources", {"policy:/": {"grant": ["READ", "WRITE"]}})
    await _changes(client, f"{base}/entries/B", {"subjects": {"nginx:b": {"type": "t"}}, "resources": {}})
    assert (await client.delete(f"{base}/entries/OWNER/subjects/nginx:x")).status_code == 204
    assert (await client.delete(f"{base}/entries/B")).status_code == 204
    await _assert_replay_is_the_present(client, "policies", policy_id)
    thing_id = new_id()
    await _changes(client, f"/api/2/things/{thing_id}", {"attributes": {"a": {"b": 1}}})
    r = await client.patch(
        f"/api/2/things/{thing_id}", content=b'{"attributes":{"a":{"b":null,"c":2}}}', headers=MERGE
    )
    assert r.status_code == 204
    await _assert_replay_is_the_present(client, "things", thing_id)
    await _assert_replay_is_the_present(client, "policies", thing_id)


# -- journal_retention ---------------------------------------------------------------------------------------


@pytest.fixture
async def bounded(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server keeping 2 journal entries per entity."""
    settings = dataclasses.replace(settings, journal_retention=2)
    store = create_store(
        data_dir=settings.data_dir,
        mongo_uri=settings.mongo_uri,
        mongo_database=settings.mongo_database,
        journal_retention=settings.journal_retention,
    )
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=DITTO) as c:
            yield c


async def test_retention_keeps_the_last_revisions_retrievable(bounded: httpx.AsyncClient) -> None:
    thing_id = new_id()
    base = f"/api/2/things/{thing_id}"
    await _changes(bounded, base, {"attributes": {"n": 1}})
    for n in (2, 3, 4, 5):
        await _changes(bounded, f"{base}/attributes/n", n)
    store = _ctx(bounded).store
    journal = await store.journal("things", thing_id)
    assert [e["revision"] for e in journal] == [4, 5]
    assert journal[0]["snapshot"] is True and journal[0]["path"] == "/"
    await _assert_replay_is_the_present(bounded, "things", thing_id)
    created = (await bounded.get(base, params={"fields": "_created"})).json()["_created"]
    r = await bounded.get(base, headers={REV: "4"}, params={"fields": "attributes,_revision,_created"})
    assert r.json() == {"attributes": {"n": 4}, "_revision": 4, "_created": created}
    r = await bounded.get(base, headers={REV: "3"})
    assert (r.status_code, r.json()["error"]) == (404, "things:thing.history.notfound")
    assert "retention" in r.json()["description"]
    r = await bounded.get(base, headers={TS: created})  # revision 1's time: pruned
    assert r.json()["error"] == "things:thing.history.notfound"
    # the policy's journal is bounded as well
    hide = {"subjects": {"nginx:x": {"type": "t"}}, "resources": {"thing:/": {"grant": ["READ"]}}}
    for label in ("A", "B", "C"):
        await _changes(bounded, f"/api/2/policies/{thing_id}/entries/{label}", hide)
    policy_journal = await store.journal("policies", thing_id)
    assert [e["revision"] for e in policy_journal] == [3, 4]
    r = await bounded.get(f"/api/2/policies/{thing_id}/entries", headers={REV: "3"})
    assert set(r.json()) == {"DEFAULT", "A", "B"}
    r = await bounded.get(f"/api/2/policies/{thing_id}", headers={REV: "2"})
    assert r.json()["error"] == "policies:policy.history.notfound"
