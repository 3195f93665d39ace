"""Search, count and ``condition`` over HTTP (ditto-testing QueryThingsIT, CountThingsIT, QueryThingsPagingIT,
AuthorizationV2IT, ConditionHttpIT), on both storage backends."""

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

ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")
RW = {"grant": ["READ", "WRITE"], "revoke": []}


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\nbob:{PLAIN}bob-pw\n")
    fields = {name: getattr(settings, name) for name in Settings.__dataclass_fields__}
    app = create_app(Settings(**{**fields, "htpasswd": str(users)}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as c,
    ):
        yield c


def sensor(i: int, hall: str, temp: float, **extra: Any) -> dict[str, Any]:
    return {
        "attributes": {"location": hall, "serial": f"SN-{i:03d}", "tags": ["sensor", hall], **extra},
        "features": {"temperature": {"properties": {"value": temp, "unit": "C"}}},
    }


async def seed(api: httpx.AsyncClient, ns: str) -> list[str]:
    ids = []
    for i, (hall, temp) in enumerate(
        [("hall-3", 31.5), ("hall-3", 22.0), ("hall-1", 35.0), ("hall-2", 18.25)]
    ):
        thing_id = f"{ns}:sensor-{i}"
        r = await api.put(f"/api/2/things/{thing_id}", json=sensor(i, hall, temp), headers=ALICE)
        assert r.status_code == 201, r.text
        ids.append(thing_id)
    return ids


def fresh_ns() -> str:
    return "s" + new_id().split(":")[1][:8]


async def search(api: httpx.AsyncClient, headers: dict[str, str] = ALICE, **params: str) -> dict[str, Any]:
    r = await api.get("/api/2/search/things", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [item["thingId"] for item in body["items"]]


async def test_filters_run_immediately_after_writes(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    ids = await seed(api, ns)
    body = await search(
        api,
        namespaces=ns,
        filter='and(eq(attributes/location,"hall-3"),gt(features/temperature/properties/value,30))',
    )
    assert ids_of(body) == [ids[0]]
    assert "cursor" not in body
    assert (
        ids_of(await search(api, namespaces=ns, filter="ge(features/temperature/properties/value,22)"))
        == ids[:3]
    )
    assert ids_of(await search(api, namespaces=ns, filter='like(attributes/serial,"SN-00?")')) == ids
    assert (
        ids_of(await search(api, namespaces=ns, filter='in(attributes/location,"hall-1","hall-2")'))
        == ids[2:]
    )
    assert ids_of(await search(api, namespaces=ns, filter='eq(attributes/tags,"hall-2")')) == [ids[3]]
    assert ids_of(await search(api, namespaces=ns, filter='not(eq(attributes/location,"hall-3"))')) == ids[2:]
    assert ids_of(await search(api, namespaces=ns, filter="exists(attributes/missing)")) == []
    # a write is visible to the very next search (read-your-writes)
    r = await api.put(f"/api/2/things/{ids[3]}/features/temperature/properties/value", json=40, headers=ALICE)
    assert r.status_code == 204
    assert ids_of(
        await search(api, namespaces=ns, filter="gt(features/temperature/properties/value,39)")
    ) == [ids[3]]


async def test_sort_size_cursor_fields(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    ids = await seed(api, ns)
    by_temp_desc = [ids[2], ids[0], ids[1], ids[3]]
    seen: list[str] = []
    option = "sort(-features/temperature/properties/value),size(3)"
    body = await search(api, namespaces=ns, option=option, fields="thingId,attributes/location")
    assert body["items"][0] == {"thingId": ids[2], "attributes": {"location": "hall-1"}}
    seen += ids_of(body)
    assert "cursor" in body
    body = await search(api, option=f"size(3),cursor({body['cursor']})", fields="thingId")
    seen += ids_of(body)
    assert "cursor" not in body
    assert seen == by_temp_desc
    body = await search(api, namespaces=ns, option="sort(+attributes/location,-thingId),limit(1,2)")
    assert ids_of(body) == [ids[3], ids[1]]
    assert body["nextPageOffset"] == 3


async def test_bad_filters_and_options(api: httpx.AsyncClient) -> None:
    for params, code in [
        ({"filter": "eq(attributes/x"}, "rql.expression.invalid"),
        ({"filter": 'eq(unknown/x,"y")'}, "rql.expression.invalid"),
        ({"option": "size(201)"}, "thing-search:search.option.invalid"),
        ({"option": "size(0)"}, "thing-search:search.option.invalid"),
        ({"option": "sort(attributes/x)"}, "thing-search:search.option.invalid"),
        ({"option": "cursor(!!!)"}, "thing-search:search.option.invalid"),
    ]:
        r = await api.get("/api/2/search/things", params=params, headers=ALICE)
        assert r.status_code == 400, (params, r.text)
        assert r.json()["error"] == code, params


async def test_count_and_post_form(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    await seed(api, ns)
    r = await api.get(
        "/api/2/search/things/count",
        params={"namespaces": ns, "filter": 'eq(attributes/location,"hall-3")'},
        headers=ALICE,
    )
    assert r.status_code == 200
    assert r.json() == 2
    form = {
        "namespaces": ns,
        "filter": "lt(features/temperature/properties/value,30)",
        "option": "sort(+thingId)",
    }
    r = await api.post("/api/2/search/things", data=form, headers=ALICE)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2
    r = await api.post("/api/2/search/things/count", data={"namespaces": ns}, headers=ALICE)
    assert r.content == b"4"


async def test_search_respects_policies(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    ids = await seed(api, ns)  # default policies: only alice
    assert ids_of(await search(api, BOB, namespaces=ns)) == []
    r = await api.get("/api/2/search/things/count", params={"namespaces": ns}, headers=BOB)
    assert r.json() == 0
    policy_id = f"{ns}:shared"
    policy = {
        "entries": {
            "OWNER": {
                "subjects": {"nginx:alice": {"type": "t"}},
                "resources": {"thing:/": RW, "policy:/": RW},
            },
            "READER": {
                "subjects": {"nginx:bob": {"type": "t"}},
                "resources": {
                    "thing:/": {"grant": ["READ"], "revoke": []},
                    "thing:/attributes/serial": {"grant": [], "revoke": ["READ"]},
                },
            },
        }
    }
    assert (await api.put(f"/api/2/policies/{policy_id}", json=policy, headers=ALICE)).status_code == 201
    for thing_id in ids[:2]:
        r = await api.put(f"/api/2/things/{thing_id}/policyId", json=policy_id, headers=ALICE)
        assert r.status_code == 204
    body = await search(api, BOB, namespaces=ns)
    assert ids_of(body) == ids[:2]
    assert all("serial" not in item["attributes"] for item in body["items"])
    # a predicate on a field bob may not read matches nothing for him
    assert ids_of(await search(api, BOB, namespaces=ns, filter='like(attributes/serial,"SN*")')) == []
    assert ids_of(await search(api, ALICE, namespaces=ns, filter='like(attributes/serial,"SN*")')) == ids
    r = await api.get(
        "/api/2/search/things/count",
        params={"namespaces": ns, "filter": "exists(attributes/serial)"},
        headers=BOB,
    )
    assert r.json() == 0
    # ... and so its negation matches wherever he may not read it, as on his view of the Things
    hidden = 'not(eq(attributes/serial,"SN-000"))'
    assert ids_of(await search(api, BOB, namespaces=ns, filter=hidden)) == ids[:2]
    assert ids_of(await search(api, ALICE, namespaces=ns, filter=hidden)) == ids[1:]
    r = await api.get("/api/2/search/things/count", params={"namespaces": ns, "filter": hidden}, headers=BOB)
    assert r.json() == 2
    # a policy change applies to the next search
    r = await api.delete(f"/api/2/policies/{policy_id}/entries/READER", headers=ALICE)
    assert r.status_code == 204
    assert ids_of(await search(api, BOB, namespaces=ns)) == []


async def test_subjects_added_through_an_import_find_things_at_once(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    ids = await seed(api, ns)
    template_id = f"{ns}:template"
    template = {
        "entries": {
            "OWNER": {"subjects": {"nginx:alice": {"type": "t"}}, "resources": {"policy:/": RW}},
            "VIEWERS": {
                "subjects": {"nginx:nobody": {"type": "t"}},
                "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
                "importable": "implicit",
            },
        }
    }
    assert (await api.put(f"/api/2/policies/{template_id}", json=template, headers=ALICE)).status_code == 201
    # a policy importing the template, and one importing that policy (imports reach two levels deep here)
    policy_id = f"{ns}:importer"
    outer_id = f"{ns}:outer"
    owner = {"subjects": {"nginx:alice": {"type": "t"}}, "resources": {"thing:/": RW, "policy:/": RW}}
    for pid, imported in ((policy_id, template_id), (outer_id, policy_id)):
        body = {"entries": {"OWNER": owner}, "imports": {imported: {}}}
        assert (await api.put(f"/api/2/policies/{pid}", json=body, headers=ALICE)).status_code == 201
    r = await api.put(f"/api/2/things/{ids[0]}/policyId", json=policy_id, headers=ALICE)
    assert r.status_code == 204
    assert ids_of(await search(api, BOB, namespaces=ns)) == []
    # bob joins the template's entry: the importing policy's Things are his to find, without touching it
    r = await api.put(
        f"/api/2/policies/{template_id}/entries/VIEWERS/subjects/nginx:bob", json={"type": "t"}, headers=ALICE
    )
    assert r.status_code == 201, r.text
    assert ids_of(await search(api, BOB, namespaces=ns)) == [ids[0]]
    r = await api.get("/api/2/search/things/count", params={"namespaces": ns}, headers=BOB)
    assert r.json() == 1
    r = await api.delete(f"/api/2/policies/{template_id}/entries/VIEWERS/subjects/nginx:bob", headers=ALICE)
    assert r.status_code == 204
    assert ids_of(await search(api, BOB, namespaces=ns)) == []


async def test_condition_header_and_parameter(api: httpx.AsyncClient) -> None:
    ns = fresh_ns()
    ids = await seed(api, ns)
    url = f"/api/2/things/{ids[0]}/attributes/location"
    r = await api.put(
        url,
        json="hall-9",
        params={"condition": "gt(features/temperature/properties/value,40)"},
        headers=ALICE,
    )
    assert r.status_code == 412
    assert r.json()["error"] == "things:condition.failed"
    assert (await api.get(url, headers=ALICE)).json() == "hall-3"
    r = await api.put(url, json="hall-9", headers={**ALICE, "condition": 'eq(attributes/location,"hall-3")'})
    assert r.status_code == 204
    r = await api.get(
        f"/api/2/things/{ids[0]}", params={"condition": 'eq(attributes/location,"hall-3")'}, headers=ALICE
    )
    assert r.status_code == 412
    r = await api.patch(
        f"/api/2/things/{ids[0]}",
        content=orjson.dumps({"attributes": {"x": 1}}),
        params={"condition": "eq(attributes/x"},
        headers={**ALICE, "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "rql.expression.invalid"
