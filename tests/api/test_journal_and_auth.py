"""What the HTTP layer leaves in the journal, and the authentication options of `ditto-compat serve`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.api.context import AppContext
from ditto_compat.cli import build_parser, settings_from_args
from ditto_compat.settings import Settings
from tests.api.conftest import basic, new_id

MERGE = {"Content-Type": "application/merge-patch+json"}


async def test_every_change_is_journaled_with_its_ditto_event(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    base = f"/api/2/things/{thing_id}"
    assert (await client.put(base, json={"attributes": {"a": 1}})).status_code == 201
    assert (await client.put(f"{base}/attributes/b", json=2)).status_code == 201
    assert (await client.put(f"{base}/attributes/b", json=3)).status_code == 204
    assert (await client.put(f"{base}/features/f", json={})).status_code == 201
    assert (await client.put(f"{base}/features/f/properties/p", json=1)).status_code == 201
    assert (await client.put(f"{base}/features/f/desiredProperties/p", json=2)).status_code == 201
    assert (await client.patch(f"{base}/attributes", content=b'{"a":null}', headers=MERGE)).status_code == 204
    assert (await client.put(f"{base}/definition", json="org.test:d:1")).status_code == 201
    assert (await client.delete(f"{base}/features/f/properties/p")).status_code == 204
    assert (await client.delete(base)).status_code == 204
    assert (await client.get(base)).status_code == 404  # reads leave no trace
    ctx: AppContext = client._transport.app.state.ctx  # type: ignore[attr-defined]
    journal = await ctx.store.journal("things", thing_id)
    assert [e["revision"] for e in journal] == list(range(1, 11))
    assert [(e["type"], e["path"]) for e in journal] == [
        ("things.events:thingCreated", "/"),
        ("things.events:attributeCreated", "/attributes/b"),
        ("things.events:attributeModified", "/attributes/b"),
        ("things.events:featureCreated", "/features/f"),
        ("things.events:featurePropertyCreated", "/features/f/properties/p"),
        ("things.events:featureDesiredPropertyCreated", "/features/f/desiredProperties/p"),
        ("things.events:thingMerged", "/attributes"),
        ("things.events:definitionCreated", "/definition"),
        ("things.events:featurePropertyDeleted", "/features/f/properties/p"),
        ("things.events:thingDeleted", "/"),
    ]
    assert journal[2]["value"] == 3
    assert journal[6]["value"] == {"a": None}
    # the default policy was created in the same commit as the thing
    policy = await ctx.store.get("policies", thing_id)
    assert policy is not None and policy.doc is not None
    entry = policy.doc["entries"]["DEFAULT"]
    assert entry["subjects"] == {"nginx:ditto": {"type": "generated"}}
    assert set(entry["resources"]) == {"thing:/", "policy:/", "message:/"}


@pytest.mark.parametrize(
    ("path", "initial", "patch", "expected"),
    [
        ("definition", "org.test:a:1", '"org.test:b:2"', "org.test:b:2"),
        ("attributes", {"x": {"y": 1}}, '{"x":{"z":2}}', {"x": {"y": 1, "z": 2}}),
        ("features/f/definition", ["org.test:a:1"], '["org.test:c:3"]', ["org.test:c:3"]),
        ("features/f/properties", {"p": 1}, '{"q":2}', {"p": 1, "q": 2}),
        ("features/f/desiredProperties", {"p": 1}, '{"p":null}', {}),
    ],
)
async def test_patch_on_subresources(
    client: httpx.AsyncClient, path: str, initial: object, patch: str, expected: object
) -> None:
    thing_id = new_id()
    assert (await client.put(f"/api/2/things/{thing_id}", json={"features": {"f": {}}})).status_code == 201
    url = f"/api/2/things/{thing_id}/{path}"
    assert (await client.put(url, json=initial)).status_code == 201
    r = await client.patch(url, content=patch.encode(), headers=MERGE)
    assert r.status_code == 204, r.text
    assert r.headers["etag"].startswith('"hash:')
    assert (await client.get(url)).json() == expected


async def test_patch_policy_id_and_thing_id_rules(client: httpx.AsyncClient) -> None:
    owner = new_id()
    assert (await client.put(f"/api/2/things/{owner}", json={})).status_code == 201
    thing_id = new_id()
    assert (await client.put(f"/api/2/things/{thing_id}", json={})).status_code == 201
    url = f"/api/2/things/{thing_id}"
    r = await client.patch(f"{url}/policyId", content=orjson.dumps(owner), headers=MERGE)
    assert r.status_code == 204
    assert (await client.get(f"{url}/policyId")).json() == owner
    r = await client.patch(url, content=b'{"policyId":null}', headers=MERGE)
    assert r.json()["error"] == "things:policyId.notdeletable"
    r = await client.patch(url, content=b'{"thingId":"org.test:other"}', headers=MERGE)
    assert r.json()["error"] == "things:id.notsettable"


@pytest.fixture
async def users_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # alice: apr1 "secret" (openssl passwd -apr1 -salt abcdefgh secret); bob: {SHA} of "builder"
    sha = base64.b64encode(__import__("hashlib").sha1(b"builder").digest()).decode()
    users = tmp_path / "users.htpasswd"
    users.write_text(f"alice:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\nbob:{{SHA}}{sha}\n")
    settings = Settings(data_dir=str(tmp_path), htpasswd=str(users), pre_authenticated=True)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


async def test_htpasswd_users_and_pre_authentication(users_client: httpx.AsyncClient) -> None:
    r = await users_client.get("/api/2/whoami", headers=basic("alice", "secret"))
    assert r.json() == {"defaultSubject": "nginx:alice", "subjects": ["nginx:alice"]}
    r = await users_client.get("/api/2/whoami", headers=basic("bob", "builder"))
    assert r.json()["defaultSubject"] == "nginx:bob"
    assert (await users_client.get("/api/2/whoami", headers=basic("ditto", "ditto"))).status_code == 401
    r = await users_client.get("/api/2/whoami", headers={"x-ditto-pre-authenticated": "nginx:carol,other:x"})
    assert r.json() == {"defaultSubject": "nginx:carol", "subjects": ["nginx:carol", "other:x"]}
    # the creator's subject is what the default policy grants
    thing_id = new_id()
    r = await users_client.put(f"/api/2/things/{thing_id}", json={}, headers=basic("alice", "secret"))
    assert r.status_code == 201


def test_every_serve_option_has_an_environment_variable(tmp_path: Path) -> None:
    env = {
        "DITTO_COMPAT_HOST": "0.0.0.0",
        "DITTO_COMPAT_PORT": "9999",
        "DITTO_COMPAT_DATA_DIR": str(tmp_path),
        "DITTO_COMPAT_MONGO_URI": "mongodb://127.0.0.1:1/",
        "DITTO_COMPAT_MONGO_DATABASE": "twins",
        "DITTO_COMPAT_HTPASSWD": "/etc/users",
        "DITTO_COMPAT_PRE_AUTHENTICATED": "true",
        "DITTO_COMPAT_DEVOPS_PASSWORD": "s3cret",
        "DITTO_COMPAT_SQLITE_SYNCHRONOUS": "full",
        "DITTO_COMPAT_JOURNAL_RETENTION": "100",
        "DITTO_COMPAT_EVENT_QUEUE_SIZE": "50",
    }
    settings = settings_from_args(build_parser(env).parse_args(["serve"]))
    assert settings == Settings(
        host="0.0.0.0",
        port=9999,
        data_dir=str(tmp_path),
        mongo_uri="mongodb://127.0.0.1:1/",
        mongo_database="twins",
        htpasswd="/etc/users",
        pre_authenticated=True,
        devops_password="s3cret",
        sqlite_synchronous="FULL",
        journal_retention=100,
        event_queue_size=50,
    )
    # command-line options win over the environment
    settings = settings_from_args(build_parser(env).parse_args(["serve", "--port", "1234"]))
    assert settings.port == 1234
    assert settings_from_args(build_parser({}).parse_args(["serve"])) == Settings()
