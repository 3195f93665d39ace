"""The Things API as Ditto answers it (ditto-testing ThingsIT, AttributesIT, FeaturesIT, MergeIT, ...)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.conftest import basic, new_id

MERGE = {"Content-Type": "application/merge-patch+json"}

THING: dict[str, Any] = {
    "definition": "org.test:sensor:1.0.0",
    "attributes": {"location": {"lat": 1.5, "lon": 2}, "manufacturer": "ACME", "tags": ["a", "b"]},
    "features": {
        "temperature": {
            "definition": ["org.test:temperature:1.0.0"],
            "properties": {"value": 21.5, "unit": "C"},
            "desiredProperties": {"value": 20},
        },
        "lamp": {"properties": {"on": False}},
    },
}


async def put_thing(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    thing_id = new_id()
    r = await client.put(f"/api/2/things/{thing_id}", json=body if body is not None else THING)
    assert r.status_code == 201, r.text
    return thing_id


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["error"] == code
    assert body["message"]
    return body


# ----------------------------------------------------------------------------------------- create / retrieve
async def test_put_creates_with_default_policy_location_and_etag(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    r = await client.put(f"/api/2/things/{thing_id}", json=THING)
    assert r.status_code == 201
    body = r.json()
    assert body["thingId"] == thing_id
    assert body["policyId"] == thing_id
    assert body["attributes"] == THING["attributes"]
    assert r.headers["etag"] == '"rev:1"'
    assert r.headers["location"] == f"http://testserver/api/2/things/{thing_id}"
    assert r.headers["correlation-id"]
    assert list(body) == ["thingId", "policyId", "definition", "attributes", "features"]


async def test_get_thing_and_special_fields(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.get(f"/api/2/things/{thing_id}")
    assert r.status_code == 200
    assert r.headers["etag"] == '"rev:1"'
    assert "_revision" not in r.json()
    r = await client.get(
        f"/api/2/things/{thing_id}",
        params={"fields": "thingId,_revision,_created,_modified,_namespace,attributes/location/lat"},
    )
    body = r.json()
    assert body["_revision"] == 1
    assert body["_namespace"] == "org.test"
    assert body["_created"] == body["_modified"]
    assert body["_created"].endswith("Z")
    assert body["attributes"] == {"location": {"lat": 1.5}}
    assert "features" not in body


async def test_fields_with_parentheses_and_feature_wildcard(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.get(
        f"/api/2/things/{thing_id}",
        params={"fields": "attributes(manufacturer,location/lon),features/*/properties/on"},
    )
    assert r.json() == {
        "attributes": {"manufacturer": "ACME", "location": {"lon": 2}},
        "features": {"lamp": {"properties": {"on": False}}},
    }
    r = await client.get(f"/api/2/things/{thing_id}", params={"fields": "attributes(manufacturer"})
    assert_error(r, 400, "json.fieldselector.invalid")


async def test_unknown_thing_and_invalid_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/2/things/org.test:missing")
    assert_error(r, 404, "things:thing.notfound")
    r = await client.get("/api/2/things/no-namespace-colon")
    assert_error(r, 400, "things:id.invalid")
    r = await client.put("/api/2/things/" + "a:" + "x" * 300, json={})
    assert_error(r, 400, "things:id.invalid")


async def test_encoded_and_unencoded_ids_address_the_same_thing(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    encoded = thing_id.replace(":", "%3A")
    r = await client.get(f"/api/2/things/{encoded}/attributes/manufacturer")
    assert r.status_code == 200
    assert r.json() == "ACME"


async def test_post_generates_id_in_namespace(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/2/things", params={"namespace": "my.ns"}, json={"attributes": {"a": 1}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["thingId"].startswith("my.ns:")
    assert r.headers["location"].endswith("/api/2/things/" + body["thingId"])
    r = await client.post("/api/2/things", content=b"")
    assert r.status_code == 201
    assert r.json()["thingId"].startswith("org.eclipse.ditto:")
    r = await client.post("/api/2/things", json={"thingId": "a:b"})
    assert_error(r, 400, "things:id.notsettable")
    r = await client.post("/api/2/things", params={"channel": "live"}, json={})
    assert_error(r, 400, "things:thing.notcreatable")


async def test_put_replaces_and_keeps_policy(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"x": 1}})
    assert r.status_code == 204
    assert r.headers["etag"] == '"rev:2"'
    assert r.content == b""
    r = await client.get(f"/api/2/things/{thing_id}")
    assert r.json() == {"thingId": thing_id, "policyId": thing_id, "attributes": {"x": 1}}


async def test_body_thing_id_must_match(client: httpx.AsyncClient) -> None:
    r = await client.put(f"/api/2/things/{new_id()}", json={"thingId": "org.test:other"})
    assert_error(r, 400, "things:id.notsettable")


async def test_malformed_json_and_non_object(client: httpx.AsyncClient) -> None:
    r = await client.put(f"/api/2/things/{new_id()}", content=b"{not json")
    assert_error(r, 400, "json.invalid")
    r = await client.put(f"/api/2/things/{new_id()}", json=[1, 2])
    assert_error(r, 400, "json.invalid")


async def test_list_by_ids_keeps_order_and_skips_missing(client: httpx.AsyncClient) -> None:
    a = await put_thing(client)
    b = await put_thing(client)
    r = await client.get("/api/2/things", params={"ids": f"{b},org.test:none,{a}", "fields": "thingId"})
    assert r.json() == [{"thingId": b}, {"thingId": a}]
    r = await client.get("/api/2/things", params={"ids": ""})
    assert r.status_code == 400


async def test_list_pages_with_cursor_link(client: httpx.AsyncClient) -> None:
    ns = "page" + new_id().split(":")[1].replace("-", "")[:6]
    ids = sorted(
        [
            (await client.post("/api/2/things", params={"namespace": ns}, json={})).json()["thingId"]
            for _ in range(5)
        ]
    )
    seen: list[str] = []
    url: str | None = f"/api/2/things?namespaces={ns}&option=size(2)&fields=thingId"
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        seen += [t["thingId"] for t in r.json()]
        link = r.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert seen == ids
    r = await client.get("/api/2/things", params={"option": "size(500)"})
    assert_error(r, 400, "thing-search:search.option.invalid")


async def test_delete_keeps_policy_and_blocks_recreation_with_default_policy(
    client: httpx.AsyncClient,
) -> None:
    thing_id = await put_thing(client)
    r = await client.delete(f"/api/2/things/{thing_id}")
    assert r.status_code == 204
    assert_error(await client.get(f"/api/2/things/{thing_id}"), 404, "things:thing.notfound")
    assert_error(await client.delete(f"/api/2/things/{thing_id}"), 404, "things:thing.notfound")
    # the policy with the Thing's id survived the Thing (Ditto PolicyEnforcementIT#deleteAndRecreateThing)
    r = await client.put(f"/api/2/things/{thing_id}", json={})
    assert_error(r, 400, "things:thing.notcreatable")
    r = await client.put(f"/api/2/things/{thing_id}", json={"policyId": thing_id})
    assert r.status_code == 201
    # revisions go on counting in the same journal
    assert r.headers["etag"] == '"rev:3"'


async def test_existing_policy_id_and_inline_policy(client: httpx.AsyncClient) -> None:
    owner = await put_thing(client)
    r = await client.put(f"/api/2/things/{new_id()}", json={"policyId": owner})
    assert r.status_code == 201
    assert r.json()["policyId"] == owner
    r = await client.put(f"/api/2/things/{new_id()}", json={"policyId": "org.test:nope"})
    assert_error(r, 400, "things:thing.notcreatable")
    inline = {
        "entries": {
            "OWNER": {
                "subjects": {"{{ request:subjectId }}": {"type": "me"}},
                "resources": {
                    "thing:/": {"grant": ["READ", "WRITE"], "revoke": []},
                    "policy:/": {"grant": ["READ", "WRITE"], "revoke": []},
                },
            }
        }
    }
    thing_id = new_id()
    r = await client.put(f"/api/2/things/{thing_id}", json={"_policy": inline, "attributes": {"a": 1}})
    assert r.status_code == 201, r.text
    assert "_policy" not in r.json()
    r = await client.put(f"/api/2/things/{thing_id}", json={"_policy": inline})
    assert_error(r, 400, "things:policy.notallowed")
    r = await client.put(f"/api/2/things/{new_id()}", json={"_policy": inline, "_copyPolicyFrom": owner})
    assert_error(r, 400, "things:policy.conflicting")


async def test_copy_policy_from_id_and_reference(client: httpx.AsyncClient) -> None:
    source = await put_thing(client)
    r = await client.put(f"/api/2/things/{new_id()}", json={"_copyPolicyFrom": source})
    assert r.status_code == 201, r.text
    copy_id = new_id()
    r = await client.put(
        f"/api/2/things/{copy_id}", json={"_copyPolicyFrom": "{{ ref:things/" + source + "/policyId }}"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["policyId"] == copy_id


async def test_thing_too_large(client: httpx.AsyncClient) -> None:
    r = await client.put(f"/api/2/things/{new_id()}", json={"attributes": {"blob": "x" * 110_000}})
    assert_error(r, 413, "things:thing.toolarge")
    thing_id = await put_thing(client)
    r = await client.put(f"/api/2/things/{thing_id}/attributes/blob", json="x" * 110_000)
    assert_error(r, 413, "things:thing.toolarge")


async def test_body_over_one_mebibyte_is_refused(client: httpx.AsyncClient) -> None:
    r = await client.put(f"/api/2/things/{new_id()}", content=b'"' + b"x" * (1024 * 1024 + 10) + b'"')
    assert r.status_code == 413
    assert r.json()["status"] == 413


# ----------------------------------------------------------------------------------------- sub-resources
SUBRESOURCES = [
    ("attributes", {"a": {"b": 1}}, "things:attributes.notfound"),
    ("attributes/a/b", 42, "things:attribute.notfound"),
    ("definition", "org.test:def:2.0.0", "things:definition.notfound"),
    ("features", {"f": {"properties": {"x": 1}}}, "things:features.notfound"),
    ("features/f", {"properties": {"x": 1}}, "things:feature.notfound"),
]


@pytest.mark.parametrize(("path", "value", "notfound"), SUBRESOURCES)
async def test_subresource_lifecycle(client: httpx.AsyncClient, path: str, value: Any, notfound: str) -> None:
    thing_id = await put_thing(client, {})
    url = f"/api/2/things/{thing_id}/{path}"
    assert_error(await client.get(url), 404, notfound)
    r = await client.put(url, json=value)
    assert r.status_code == 201, r.text
    assert r.json() == value
    assert r.headers["location"] == f"http://testserver{url}"
    tag = r.headers["etag"]
    assert tag.startswith('"hash:')
    r = await client.get(url)
    assert r.json() == value
    assert r.headers["etag"] == tag
    r = await client.put(url, json=value)
    assert r.status_code == 204
    assert r.headers["etag"] == tag
    assert (await client.delete(url)).status_code == 204
    assert_error(await client.get(url), 404, notfound)
    assert_error(await client.delete(url), 404, notfound)


async def test_feature_subresources_need_the_feature(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    base = f"/api/2/things/{thing_id}/features"
    for sub in (
        "missing/properties",
        "missing/properties/x",
        "missing/desiredProperties/x",
        "missing/definition",
    ):
        assert_error(await client.get(f"{base}/{sub}"), 404, "things:feature.notfound")
        assert_error(
            await client.put(f"{base}/{sub}", json={"a": 1} if "/x" not in sub else 1),
            404,
            "things:feature.notfound",
        )
    assert_error(await client.get(f"{base}/lamp/properties/nope"), 404, "things:feature.property.notfound")
    assert_error(
        await client.get(f"{base}/lamp/desiredProperties"), 404, "things:feature.desiredProperties.notfound"
    )
    assert_error(
        await client.get(f"{base}/lamp/desiredProperties/x"), 404, "things:feature.desiredProperty.notfound"
    )
    assert_error(await client.get(f"{base}/lamp/definition"), 404, "things:feature.definition.notfound")
    assert (await client.get(f"{base}/temperature/desiredProperties/value")).json() == 20


async def test_property_put_creates_then_replaces(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    url = f"/api/2/things/{thing_id}/features/lamp/properties/brightness/level"
    r = await client.put(url, json=80)
    assert r.status_code == 201
    assert r.json() == 80
    r = await client.put(url, json=90)
    assert r.status_code == 204
    r = await client.get(f"/api/2/things/{thing_id}/features/lamp/properties")
    assert r.json() == {"on": False, "brightness": {"level": 90}}
    r = await client.get(f"/api/2/things/{thing_id}", params={"fields": "_revision"})
    assert r.json()["_revision"] == 3


async def test_policy_id_resource(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.get(f"/api/2/things/{thing_id}/policyId")
    assert r.json() == thing_id
    r = await client.put(f"/api/2/things/{thing_id}/policyId", json=thing_id)
    assert r.status_code == 204
    assert_error(
        await client.delete(f"/api/2/things/{thing_id}/policyId"), 400, "things:policyId.notdeletable"
    )
    assert_error(await client.put(f"/api/2/things/{thing_id}/policyId", json=42), 400, "json.invalid")


async def test_definitions_are_validated(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.put(f"/api/2/things/{thing_id}/features/lamp/definition", json=[])
    assert_error(r, 400, "things:feature.definition.empty")
    r = await client.put(f"/api/2/things/{thing_id}/features/lamp/definition", json=["foo:bar"])
    assert_error(r, 400, "things:feature.definition.identifier.invalid")
    r = await client.put(f"/api/2/things/{thing_id}/features/lamp/definition", json=["org.test:lamp:1"])
    assert r.status_code == 201
    r = await client.put(f"/api/2/things/{thing_id}/definition", json="not a definition")
    assert_error(r, 400, "things:definition.identifier.invalid")
    r = await client.put(
        f"/api/2/things/{thing_id}/definition", json="https://models.example/lamp-1.0.0.tm.jsonld"
    )
    assert r.status_code == 204


async def test_keys_and_pointers(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.put(f"/api/2/things/{thing_id}/attributes", json={"bad\u0001key": 1})
    assert_error(r, 400, "json.key.invalid")
    r = await client.get(f"/api/2/things/{thing_id}/attributes//location")
    assert_error(r, 400, "json.pointer.invalid")
    r = await client.put(f"/api/2/things/{thing_id}/attributes/with%20space", json="ok")
    assert r.status_code == 201
    r = await client.get(f"/api/2/things/{thing_id}/attributes", params={"fields": "with space"})
    assert r.json() == {"with space": "ok"}
    r = await client.get(f"/api/2/things/{thing_id}/unknown")
    assert r.status_code == 404


# ----------------------------------------------------------------------------------------- merge
async def test_merge_requires_merge_patch_content_type(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.patch(f"/api/2/things/{thing_id}", json={"attributes": {"x": 1}})
    assert_error(r, 415, "mediatype.unsupported")


async def test_merge_patch_semantics_and_regex_deletion(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    patch = {
        "attributes": {"location": {"lat": None, "alt": 3}, "manufacturer": None},
        "features": {"temperature": {"properties": {"{{ ~u.*~ }}": None, "value": 22}}},
    }
    r = await client.patch(f"/api/2/things/{thing_id}", content=_dumps(patch), headers=MERGE)
    assert r.status_code == 204, r.text
    assert r.headers["etag"] == '"rev:2"'
    body = (await client.get(f"/api/2/things/{thing_id}")).json()
    assert body["attributes"] == {"location": {"lon": 2, "alt": 3}, "tags": ["a", "b"]}
    assert body["features"]["temperature"]["properties"] == {"value": 22}
    r = await client.patch(f"/api/2/things/{thing_id}/attributes/tags", content=b"null", headers=MERGE)
    assert r.status_code == 204
    r = await client.patch(f"/api/2/things/{thing_id}/features/new/properties/x", content=b"1", headers=MERGE)
    assert r.status_code == 204
    assert (await client.get(f"/api/2/things/{thing_id}/features/new")).json() == {"properties": {"x": 1}}


async def test_merge_creates_missing_thing_and_refuses_empty(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    r = await client.patch(f"/api/2/things/{thing_id}", content=b"{}", headers=MERGE)
    assert_error(r, 400, "things:merge.invalid")
    r = await client.patch(f"/api/2/things/{thing_id}", content=b"null", headers=MERGE)
    assert_error(r, 400, "things:merge.invalid")
    r = await client.patch(
        f"/api/2/things/{thing_id}", content=_dumps({"attributes": {"a": 1, "gone": None}}), headers=MERGE
    )
    assert r.status_code == 201, r.text
    assert r.json()["attributes"] == {"a": 1}
    r = await client.patch(f"/api/2/things/{new_id()}/attributes/a", content=b"1", headers=MERGE)
    assert_error(r, 404, "things:thing.notfound")


# ----------------------------------------------------------------------------------------- conditional requests
async def test_if_match_and_if_none_match_on_thing(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    url = f"/api/2/things/{thing_id}"
    r = await client.get(url, headers={"If-None-Match": '"rev:1"'})
    assert r.status_code == 304
    assert r.headers["etag"] == '"rev:1"'
    assert r.content == b""
    assert (await client.get(url, headers={"If-None-Match": '"rev:7"'})).status_code == 200
    assert_error(await client.get(url, headers={"If-Match": '"rev:7"'}), 412, "things:precondition.failed")
    r = await client.put(url, json={}, headers={"If-Match": '"rev:2", "rev:1"'})
    assert r.status_code == 204
    assert_error(
        await client.put(url, json={}, headers={"If-Match": '"rev:1"'}), 412, "things:precondition.failed"
    )
    assert_error(
        await client.put(url, json={}, headers={"If-None-Match": "*"}), 412, "things:precondition.failed"
    )
    missing = f"/api/2/things/{new_id()}"
    assert_error(
        await client.put(missing, json={}, headers={"If-Match": "*"}), 412, "things:precondition.failed"
    )
    assert (await client.put(missing, json={}, headers={"If-None-Match": "*"})).status_code == 201
    assert_error(
        await client.get(f"/api/2/things/{new_id()}", headers={"If-Match": "*"}), 404, "things:thing.notfound"
    )
    assert_error(await client.get(url, headers={"If-Match": "garbage"}), 400, "header.invalid")


async def test_conditional_headers_on_subresource(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    url = f"/api/2/things/{thing_id}/attributes/manufacturer"
    tag = (await client.get(url)).headers["etag"]
    assert (await client.get(url, headers={"If-None-Match": tag})).status_code == 304
    assert (await client.put(url, json="Other", headers={"If-Match": tag})).status_code == 204
    assert_error(
        await client.put(url, json="Again", headers={"If-Match": tag}), 412, "things:precondition.failed"
    )
    new = f"/api/2/things/{thing_id}/attributes/newone"
    assert_error(await client.put(new, json=1, headers={"If-Match": "*"}), 412, "things:precondition.failed")
    assert (await client.put(new, json=1, headers={"If-None-Match": "*"})).status_code == 201


async def test_if_equal(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    url = f"/api/2/things/{thing_id}/attributes/manufacturer"
    assert (await client.put(url, json="ACME")).status_code == 204  # update is the default
    r = await client.put(url, json="ACME", headers={"if-equal": "skip"})
    assert_error(r, 412, "things:precondition.failed")
    assert (await client.put(url, json="Other", headers={"if-equal": "skip"})).status_code == 204
    patch = _dumps({"attributes": {"manufacturer": "Other", "new": 1}})
    r = await client.patch(
        f"/api/2/things/{thing_id}", content=patch, headers={**MERGE, "if-equal": "skip-minimizing-merge"}
    )
    assert r.status_code == 204
    r = await client.patch(f"/api/2/things/{thing_id}", content=patch, headers={**MERGE, "if-equal": "skip"})
    assert_error(r, 412, "things:precondition.failed")
    assert_error(await client.put(url, json=1, headers={"if-equal": "maybe"}), 400, "header.invalid")


# ----------------------------------------------------------------------------------------- headers and auth
async def test_correlation_id_echo_and_duplicates(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client)
    r = await client.get(f"/api/2/things/{thing_id}", headers={"correlation-id": "abc"})
    assert r.headers["correlation-id"] == "abc"
    r = await client.get(
        f"/api/2/things/{thing_id}", headers={"x-correlation-id": "xyz", "correlation-id": "abc"}
    )
    assert r.headers["correlation-id"] == "xyz"
    r = await client.get(
        f"/api/2/things/{thing_id}", headers=[("x-correlation-id", "a"), ("x-correlation-id", "b")]
    )
    assert_error(r, 400, "gateway:duplicate.header.field")


async def test_response_required_false_and_timeout(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    r = await client.put(f"/api/2/things/{thing_id}", json={}, params={"response-required": "false"})
    assert r.status_code == 202
    assert (await client.get(f"/api/2/things/{thing_id}")).status_code == 200
    for good in ("42", "42s", "250ms", "1m"):
        assert (await client.get(f"/api/2/things/{thing_id}", params={"timeout": good})).status_code == 200
    assert_error(
        await client.get(f"/api/2/things/{thing_id}", params={"timeout": "2h"}), 400, "timeout.invalid"
    )
    assert_error(
        await client.get(f"/api/2/things/{thing_id}", headers={"timeout": "x"}), 400, "timeout.invalid"
    )


async def test_authentication(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/2/whoami")
    assert r.json() == {"defaultSubject": "nginx:ditto", "subjects": ["nginx:ditto"]}
    r = await client.get("/api/2/things/org.test:x", headers=basic("ditto", "wrong"))
    assert_error(r, 401, "gateway:authentication.failed")
    assert r.headers["www-authenticate"].startswith("Basic")
    r = await client.get("/api/2/whoami", headers={"Authorization": "Bearer abc"})
    assert r.status_code == 401
    # without --pre-authenticated, the proxy header is not trusted
    r = await client.get(
        "/api/2/whoami", headers={"Authorization": "", "x-ditto-pre-authenticated": "nginx:x"}
    )
    assert r.status_code == 401


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.json()["status"] == "UP"
    assert r.json()["components"]["storage"]["status"] == "UP"


async def test_method_not_allowed_and_unknown_route(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"/api/2/things/{new_id()}/attributes", json={})).status_code == 405
    r = await client.get("/api/2/nothing-here")
    assert r.status_code == 404
    assert r.json()["status"] == 404


# ----------------------------------------------------------------------------------------- concurrency
async def test_concurrent_writers_lose_no_update(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client, {"attributes": {}})

    async def write(i: int) -> int:
        r = await client.put(f"/api/2/things/{thing_id}/attributes/k{i}", json=i)
        return r.status_code

    statuses = await asyncio.gather(*(write(i) for i in range(40)))
    assert statuses == [201] * 40
    r = await client.get(f"/api/2/things/{thing_id}", params={"fields": "attributes,_revision"})
    assert r.json()["_revision"] == 41
    assert r.json()["attributes"] == {f"k{i}": i for i in range(40)}


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


async def test_uri_over_8k_is_refused(client: httpx.AsyncClient) -> None:
    ids = ",".join(f"org.test:thing-{i:05d}" for i in range(500))
    r = await client.get("/api/2/things", params={"ids": ids})
    assert r.status_code == 414
    assert r.json()["status"] == 414


async def test_location_of_non_ascii_keys_stays_encoded(client: httpx.AsyncClient) -> None:
    thing_id = await put_thing(client, {})
    r = await client.put(f"/api/2/things/{thing_id}/attributes/%E6%B8%A9%E5%BA%A6", json=21)
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith("/attributes/%E6%B8%A9%E5%BA%A6")
    assert (await client.get(f"/api/2/things/{thing_id}/attributes")).json() == {"温度": 21}
