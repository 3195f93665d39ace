"""Policy enforcement on the Things API with three users (ditto-testing PolicyEnforcementIT,
ThingsWithPoliciesIT, ThingsWithCopiedPoliciesIT), on both storage backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.settings import Settings
from tests.api.conftest import basic, new_id

ALICE = basic("alice", "alice-pw")  # owner
BOB = basic("bob", "bob-pw")  # reader, where granted
CAROL = basic("carol", "carol-pw")  # granted little or nothing
MERGE = {"Content-Type": "application/merge-patch+json"}
RW = {"grant": ["READ", "WRITE"], "revoke": []}


def entry(subject: str, resources: dict[str, Any]) -> dict[str, Any]:
    return {"subjects": {subject: {"type": "test"}}, "resources": resources}


OWNER_ENTRY = entry("nginx:alice", {"thing:/": RW, "policy:/": RW, "message:/": RW})

THING = {
    "attributes": {"public": "yes", "secret": "s3cr3t", "nested": {"open": 1, "closed": 2}},
    "features": {
        "lamp": {"properties": {"on": True, "watts": 60}},
        "private": {"properties": {"pin": 1234}},
    },
}


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\ncarol:{PLAIN}carol-pw\n")
    app = create_app(Settings(**{**_fields(settings), "htpasswd": str(users), "pre_authenticated": True}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__dataclass_fields__}


async def create(api: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] = ALICE) -> str:
    thing_id = new_id()
    r = await api.put(f"/api/2/things/{thing_id}", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return thing_id


def error_of(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    code: str = r.json()["error"]
    return code


async def test_default_policy_keeps_others_out(api: httpx.AsyncClient) -> None:
    thing_id = await create(api, THING)
    url = f"/api/2/things/{thing_id}"
    assert (await api.get(url, headers=ALICE)).json()["attributes"]["secret"] == "s3cr3t"
    assert error_of(await api.get(url, headers=BOB), 404) == "things:thing.notfound"
    assert (
        error_of(await api.get(f"{url}/attributes/public", headers=BOB), 404) == "things:attribute.notfound"
    )
    assert (
        error_of(await api.put(f"{url}/attributes/x", json=1, headers=BOB), 403)
        == "things:attribute.notmodifiable"
    )
    assert error_of(await api.delete(url, headers=BOB), 403) == "things:thing.notdeletable"
    assert error_of(await api.put(url, json={}, headers=BOB), 403) == "things:thing.notmodifiable"
    r = await api.get("/api/2/things", params={"ids": thing_id}, headers=BOB)
    assert r.json() == []


async def test_partial_read_views(api: httpx.AsyncClient) -> None:
    policy = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "READER": entry(
                "nginx:bob",
                {
                    "thing:/": {"grant": ["READ"], "revoke": []},
                    "thing:/attributes/secret": {"grant": [], "revoke": ["READ"]},
                    "thing:/attributes/nested/closed": {"grant": [], "revoke": ["READ"]},
                    "thing:/features/private": {"grant": [], "revoke": ["READ"]},
                },
            ),
            "LAMP": entry(
                "nginx:carol", {"thing:/features/lamp/properties/on": {"grant": ["READ"], "revoke": []}}
            ),
        }
    }
    thing_id = await create(api, {**THING, "_policy": policy})
    url = f"/api/2/things/{thing_id}"
    r = await api.get(url, headers=BOB)
    assert r.status_code == 200
    assert r.json() == {
        "thingId": thing_id,
        "policyId": thing_id,
        "attributes": {"public": "yes", "nested": {"open": 1}},
        "features": {"lamp": {"properties": {"on": True, "watts": 60}}},
    }
    assert (
        error_of(await api.get(f"{url}/attributes/secret", headers=BOB), 404) == "things:attribute.notfound"
    )
    assert error_of(await api.get(f"{url}/features/private", headers=BOB), 404) == "things:feature.notfound"
    assert (await api.get(f"{url}/attributes/nested", headers=BOB)).json() == {"open": 1}
    r = await api.get(url, params={"fields": "thingId,_revision,attributes"}, headers=BOB)
    assert r.json() == {
        "thingId": thing_id,
        "_revision": 1,
        "attributes": {"public": "yes", "nested": {"open": 1}},
    }
    # carol sees one leaf and the thingId, nothing else
    assert (await api.get(url, headers=CAROL)).json() == {
        "thingId": thing_id,
        "features": {"lamp": {"properties": {"on": True}}},
    }
    assert error_of(await api.get(f"{url}/attributes", headers=CAROL), 404) == "things:attributes.notfound"
    assert (await api.get(f"{url}/features/lamp", headers=CAROL)).json() == {"properties": {"on": True}}
    # readers cannot write
    r = await api.put(f"{url}/features/lamp/properties/on", json=False, headers=BOB)
    assert error_of(r, 403) == "things:feature.property.notmodifiable"
    # the owner still sees everything
    assert (await api.get(f"{url}/attributes/secret", headers=ALICE)).json() == "s3cr3t"


async def test_write_without_read_and_unrestricted_write(api: httpx.AsyncClient) -> None:
    policy = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "INBOX": entry(
                "nginx:carol",
                {
                    "thing:/attributes/inbox": {"grant": ["WRITE"], "revoke": []},
                    "thing:/features": {"grant": ["WRITE"], "revoke": []},
                    "thing:/features/private": {"grant": [], "revoke": ["WRITE"]},
                },
            ),
        }
    }
    thing_id = await create(api, {**THING, "_policy": policy})
    url = f"/api/2/things/{thing_id}"
    assert (await api.put(f"{url}/attributes/inbox", json="hello", headers=CAROL)).status_code == 201
    assert (
        error_of(await api.get(f"{url}/attributes/inbox", headers=CAROL), 404) == "things:attribute.notfound"
    )
    assert (await api.get(f"{url}/attributes/inbox", headers=ALICE)).json() == "hello"
    # a revoke below the target forbids replacing the whole target
    assert (
        error_of(await api.put(f"{url}/features", json={}, headers=CAROL), 403)
        == "things:features.notmodifiable"
    )
    assert (await api.put(f"{url}/features/lamp/properties/on", json=False, headers=CAROL)).status_code == 204


async def test_merge_needs_write_on_every_leaf(api: httpx.AsyncClient) -> None:
    policy = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "A": entry("nginx:bob", {"thing:/attributes/public": RW, "thing:/attributes/nested/open": RW}),
        }
    }
    thing_id = await create(api, {**THING, "_policy": policy})
    url = f"/api/2/things/{thing_id}"
    ok = {"attributes": {"public": "no", "nested": {"open": None}}}
    r = await api.patch(url, content=orjson.dumps(ok), headers={**BOB, **MERGE})
    assert r.status_code == 204, r.text
    bad = {"attributes": {"public": "again", "secret": None}}
    r = await api.patch(url, content=orjson.dumps(bad), headers={**BOB, **MERGE})
    assert error_of(r, 403) == "things:thing.notmodifiable"
    regex = {"attributes": {"{{ ~.*~ }}": None}}
    r = await api.patch(url, content=orjson.dumps(regex), headers={**BOB, **MERGE})
    assert error_of(r, 403) == "things:thing.notmodifiable"
    attributes = (await api.get(f"{url}/attributes", headers=ALICE)).json()
    assert attributes == {"public": "no", "secret": "s3cr3t", "nested": {"closed": 2}}


async def test_moving_a_thing_to_another_policy_applies_at_once(api: httpx.AsyncClient) -> None:
    shared_policy = new_id()
    shared = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "READ": entry("nginx:bob", {"thing:/": {"grant": ["READ"], "revoke": []}}),
        }
    }
    await create(api, {"policyId": shared_policy, "_policy": shared})
    thing_id = await create(api, THING)
    url = f"/api/2/things/{thing_id}"
    assert (await api.get(url, headers=BOB)).status_code == 404
    assert (await api.put(f"{url}/policyId", json=shared_policy, headers=ALICE)).status_code == 204
    assert (await api.get(url, headers=BOB)).status_code == 200
    # bob may not move it back: no WRITE on thing:/policyId
    assert (
        error_of(await api.put(f"{url}/policyId", json=thing_id, headers=BOB), 403)
        == "things:policyId.notmodifiable"
    )
    # a policy that does not exist
    r = await api.put(f"{url}/policyId", json="org.test:no-such-policy", headers=ALICE)
    assert error_of(r, 404) == "policies:policy.notfound"
    # a policy in which alice may not set policyId
    foreign = new_id()
    await create(
        api,
        {
            "policyId": foreign,
            "_policy": {"entries": {"B": entry("nginx:bob", {"thing:/": RW, "policy:/": RW})}},
        },
        BOB,
    )
    r = await api.put(f"{url}/policyId", json=foreign, headers=ALICE)
    assert error_of(r, 403) == "things:policyId.notmodifiable"


async def test_creation_rules(api: httpx.AsyncClient) -> None:
    # an inline policy that does not let the creator write the thing
    no_write = {
        "entries": {
            "OWNER": entry("nginx:alice", {"policy:/": RW, "thing:/": {"grant": ["READ"], "revoke": []}})
        }
    }
    r = await api.put(f"/api/2/things/{new_id()}", json={"_policy": no_write}, headers=ALICE)
    assert error_of(r, 403) == "things:thing.notmodifiable"
    # nobody could ever change the policy again
    nobody = {"entries": {"OWNER": entry("nginx:alice", {"thing:/": RW})}}
    r = await api.put(f"/api/2/things/{new_id()}", json={"_policy": nobody}, headers=ALICE)
    assert error_of(r, 400) == "things:policy.invalid"
    # only someone else could change it: refused unless the creator accepts the lockout
    other = {
        "entries": {"T": entry("nginx:alice", {"thing:/": RW}), "P": entry("nginx:bob", {"policy:/": RW})}
    }
    r = await api.put(f"/api/2/things/{new_id()}", json={"_policy": other}, headers=ALICE)
    assert error_of(r, 403) == "policies:policy.notmodifiable"
    r = await api.put(
        f"/api/2/things/{new_id()}",
        json={"_policy": other},
        params={"allow-policy-lockout": "true"},
        headers=ALICE,
    )
    assert r.status_code == 201
    # reusing an existing policy needs WRITE on its thing:/
    alices = await create(api, {})
    r = await api.put(f"/api/2/things/{new_id()}", json={"policyId": alices}, headers=BOB)
    assert error_of(r, 403) == "things:thing.notmodifiable"
    assert (
        await api.put(f"/api/2/things/{new_id()}", json={"policyId": alices}, headers=ALICE)
    ).status_code == 201


async def test_copy_policy_needs_read(api: httpx.AsyncClient) -> None:
    source = await create(api, THING)
    r = await api.put(f"/api/2/things/{new_id()}", json={"_copyPolicyFrom": source}, headers=BOB)
    assert error_of(r, 404) == "policies:policy.notfound"
    ref = "{{ ref:things/" + source + "/policyId }}"
    r = await api.put(f"/api/2/things/{new_id()}", json={"_copyPolicyFrom": ref}, headers=BOB)
    assert error_of(r, 404) == "things:thing.notfound"
    copy_id = new_id()
    r = await api.put(
        f"/api/2/things/{copy_id}", json={"_copyPolicyFrom": ref, "attributes": {"a": 1}}, headers=ALICE
    )
    assert r.status_code == 201, r.text
    assert (await api.get(f"/api/2/things/{copy_id}/attributes/a", headers=ALICE)).json() == 1
    assert (await api.get(f"/api/2/things/{copy_id}", headers=BOB)).status_code == 404


async def test_listing_shows_only_readable_things(api: httpx.AsyncClient) -> None:
    ns = "vis" + new_id().split(":")[1][:6]
    shared = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "R": entry("nginx:bob", {"thing:/attributes": {"grant": ["READ"], "revoke": []}}),
        }
    }
    visible = [f"{ns}:v{i}" for i in range(3)]
    hidden = [f"{ns}:h{i}" for i in range(4)]
    for i, thing_id in enumerate(visible):
        body: dict[str, Any] = {"attributes": {"i": i}, "features": {"f": {}}}
        body["_policy"] = shared if i == 0 else None
        if i:
            body = {"policyId": visible[0], "attributes": {"i": i}}
        r = await api.put(
            f"/api/2/things/{thing_id}", json={k: v for k, v in body.items() if v is not None}, headers=ALICE
        )
        assert r.status_code == 201, r.text
    for thing_id in hidden:
        assert (await api.put(f"/api/2/things/{thing_id}", json={}, headers=ALICE)).status_code == 201
    seen: list[dict[str, Any]] = []
    url: str | None = f"/api/2/things?namespaces={ns}&option=size(2)"
    while url:
        r = await api.get(url, headers=BOB)
        assert r.status_code == 200
        seen += r.json()
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert [t["thingId"] for t in seen] == sorted(visible)
    assert all(set(t) == {"thingId", "attributes"} for t in seen)
    r = await api.get("/api/2/things", params={"ids": ",".join(hidden + visible[:1])}, headers=BOB)
    assert [t["thingId"] for t in r.json()] == visible[:1]


async def test_pre_authenticated_subjects_combine(api: httpx.AsyncClient) -> None:
    thing_id = await create(api, THING)
    url = f"/api/2/things/{thing_id}"
    assert (await api.get(url, headers={"x-ditto-pre-authenticated": "google:x"})).status_code == 404
    r = await api.get(url, headers={"x-ditto-pre-authenticated": "google:x,nginx:alice"})
    assert r.status_code == 200


async def test_check_permissions(api: httpx.AsyncClient) -> None:
    policy = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "LAMP": entry(
                "nginx:bob",
                {
                    "thing:/features/lamp": {"grant": ["READ", "WRITE"], "revoke": []},
                    "thing:/features/lamp/properties/watts": {"grant": [], "revoke": ["WRITE"]},
                    "message:/features/lamp/inbox/messages/toggle": {"grant": ["WRITE"], "revoke": []},
                },
            ),
        }
    }
    thing_id = await create(api, {**THING, "_policy": policy})

    def check(resource: str, entity: str, *perms: str) -> dict[str, Any]:
        return {"resource": resource, "entityId": entity, "hasPermissions": list(perms)}

    body = {
        "readOn": check("thing:/features/lamp/properties/on", thing_id, "READ"),
        "writeLamp": check("thing:/features/lamp", thing_id, "WRITE"),
        "writeOn": check("thing:/features/lamp/properties/on", thing_id, "READ", "WRITE"),
        "toggle": check("message:/features/lamp/inbox/messages/toggle", thing_id, "WRITE"),
        "readAttributes": check("thing:/attributes", thing_id, "READ"),
        "editPolicy": check("policy:/", thing_id, "WRITE"),
        "unknownThing": check("thing:/", "org.test:none", "READ"),
    }
    r = await api.post("/api/2/checkPermissions", json=body, headers=BOB)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "readOn": True,
        "writeLamp": False,  # revoked below: not unrestricted
        "writeOn": True,
        "toggle": True,
        "readAttributes": False,
        "editPolicy": False,
        "unknownThing": False,
    }
    r = await api.post("/api/2/checkPermissions", json={"editPolicy": body["editPolicy"]}, headers=ALICE)
    assert r.json() == {"editPolicy": True}
    bad_id = {"x": check("thing:/", "not-an-id", "READ")}
    assert (
        error_of(await api.post("/api/2/checkPermissions", json=bad_id, headers=BOB), 400)
        == "things:id.invalid"
    )
    bad_type = {"x": check("foo:/", thing_id, "READ")}
    r = await api.post("/api/2/checkPermissions", json=bad_type, headers=BOB)
    assert error_of(r, 400) == "policies:resource.invalid"
    bad_perm = {"x": check("thing:/", thing_id, "FLY")}
    assert (
        error_of(await api.post("/api/2/checkPermissions", json=bad_perm, headers=BOB), 400) == "json.invalid"
    )


async def test_expired_subjects_grant_nothing(api: httpx.AsyncClient) -> None:
    read = {"thing:/": {"grant": ["READ"], "revoke": []}}
    policy = {
        "entries": {
            "OWNER": OWNER_ENTRY,
            "PAST": {
                "subjects": {"nginx:bob": {"type": "t", "expiry": "2020-01-01T00:00:00Z"}},
                "resources": read,
            },
            "FUTURE": {
                "subjects": {"nginx:carol": {"type": "t", "expiry": "2999-01-01T00:00:00Z"}},
                "resources": read,
            },
        }
    }
    thing_id = await create(api, {**THING, "_policy": policy})
    assert (await api.get(f"/api/2/things/{thing_id}", headers=BOB)).status_code == 404
    assert (await api.get(f"/api/2/things/{thing_id}", headers=CAROL)).status_code == 200


async def test_access_through_imported_entries_follows_the_imported_policy(api: httpx.AsyncClient) -> None:
    template_id = new_id()
    template = {
        "entries": {
            "ADMIN": OWNER_ENTRY,
            "READERS": {
                **entry("nginx:bob", {"thing:/": {"grant": ["READ"], "revoke": []}}),
                "importable": "implicit",
            },
            "WRITERS": {**entry("nginx:carol", {"thing:/": RW}), "importable": "explicit"},
        }
    }
    r = await api.put(f"/api/2/policies/{template_id}", json=template, headers=ALICE)
    assert r.status_code == 201, r.text
    thing_policy = {"entries": {"OWNER": OWNER_ENTRY}, "imports": {template_id: {}}}
    thing_id = await create(api, {**THING, "_policy": thing_policy})
    url = f"/api/2/things/{thing_id}"
    assert (await api.get(url, headers=BOB)).status_code == 200
    # explicit entries are imported only when listed
    assert (await api.put(f"{url}/attributes/x", json=1, headers=CAROL)).status_code == 403
    r = await api.put(
        f"/api/2/policies/{thing_id}/imports/{template_id}", json={"entries": ["WRITERS"]}, headers=ALICE
    )
    assert r.status_code == 204, r.text
    assert (await api.put(f"{url}/attributes/x", json=1, headers=CAROL)).status_code == 201
    # a change of the imported policy applies to the very next request
    r = await api.delete(f"/api/2/policies/{template_id}/entries/READERS/subjects/nginx:bob", headers=ALICE)
    assert r.status_code == 204, r.text
    assert (await api.get(url, headers=BOB)).status_code == 404
