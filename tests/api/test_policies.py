"""The Policies API as Ditto answers it (ditto-testing PolicyIT, ConditionalHeadersPolicy*IT, PolicyImportsIT,
PolicyEntry*SubResourcesIT; inventory §1 "Policies", §4), with enforcement by three users."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from ditto_compat.api.app import create_app
from ditto_compat.api.context import AppContext
from ditto_compat.settings import Settings
from tests.api.conftest import basic, new_id

ME = "nginx:ditto"  # the subject of the `client` fixture
ALL = {"grant": ["READ", "WRITE"], "revoke": []}
READ_ONLY = {"grant": ["READ"], "revoke": []}


def entry(*subjects: str, resources: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "subjects": {s: {"type": "test"} for s in subjects},
        "resources": resources if resources is not None else {"policy:/": ALL, "thing:/": ALL},
    }


def policy(*subjects: str, **entries: dict[str, Any]) -> dict[str, Any]:
    """A policy whose OWNER entry lets ``subjects`` (default: the test client) do everything."""
    return {"entries": {"OWNER": entry(*(subjects or (ME,))), **entries}}


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["error"] == code
    assert body["message"]
    return body


async def put_policy(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> str:
    policy_id = new_id()
    r = await client.put(f"/api/2/policies/{policy_id}", json=body if body is not None else policy())
    assert r.status_code == 201, r.text
    return policy_id


# ----------------------------------------------------------------------------------------- the whole policy
async def test_create_retrieve_modify_delete(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    url = f"/api/2/policies/{policy_id}"
    body = policy()
    r = await client.put(url, json=body)
    assert r.status_code == 201
    assert r.json() == {"policyId": policy_id, **body}
    assert r.headers["etag"] == '"rev:1"'
    assert r.headers["location"] == f"http://testserver{url}"
    r = await client.get(url)
    assert r.status_code == 200
    assert r.json() == {"policyId": policy_id, **body}
    assert r.headers["etag"] == '"rev:1"'
    body["entries"]["OWNER"]["resources"]["thing:/attributes"] = {"grant": [], "revoke": ["WRITE"]}
    r = await client.put(url, json={"policyId": policy_id, **body})
    assert r.status_code == 204
    assert r.headers["etag"] == '"rev:2"'
    assert not r.content
    assert (await client.get(url)).json()["entries"] == body["entries"]
    r = await client.get(url, params={"fields": "policyId,_revision,_namespace,_created,_modified"})
    special = r.json()
    assert special["_revision"] == 2 and special["_namespace"] == "org.test"
    assert set(special) == {"policyId", "_revision", "_namespace", "_created", "_modified"}
    assert (await client.delete(url)).status_code == 204
    assert_error(await client.get(url), 404, "policies:policy.notfound")
    assert_error(await client.delete(url), 404, "policies:policy.notfound")
    assert_error(await client.put(f"{url}/entries/X", json=entry(ME)), 404, "policies:policy.notfound")
    # a deleted policy can be created again; its revisions go on counting
    r = await client.put(url, json=body)
    assert r.status_code == 201
    assert r.headers["etag"] == '"rev:4"'


async def test_unknown_fields_are_dropped_and_grant_revoke_completed(client: httpx.AsyncClient) -> None:
    body = {
        "_revision": 7,
        "nonsense": True,
        "entries": {
            "OWNER": {
                "__schemaVersion": 2,
                "subjects": {ME: {"type": "x", "__schemaVersion": 2}},
                "resources": {
                    "policy:": {"grant": ["WRITE", "READ", "READ"]},
                    "thing:/a/": {"revoke": ["READ"]},
                },
            }
        },
    }
    policy_id = await put_policy(client, body)
    stored = (await client.get(f"/api/2/policies/{policy_id}")).json()
    assert stored == {
        "policyId": policy_id,
        "entries": {
            "OWNER": {
                "subjects": {ME: {"type": "x"}},
                "resources": {
                    "policy:/": {"grant": ["WRITE", "READ"], "revoke": []},
                    "thing:/a": {"grant": [], "revoke": ["READ"]},
                },
            }
        },
    }


async def test_post_generates_the_id(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/2/policies", json=policy())
    assert r.status_code == 201, r.text
    policy_id = r.json()["policyId"]
    assert policy_id.startswith("org.eclipse.ditto:")
    assert r.headers["location"] == f"http://testserver/api/2/policies/{policy_id}"
    assert r.headers["etag"] == '"rev:1"'
    assert (await client.get(f"/api/2/policies/{policy_id}")).status_code == 200
    r = await client.post("/api/2/policies", params={"namespace": "com.acme"}, json=policy())
    assert r.json()["policyId"].startswith("com.acme:")
    r = await client.post("/api/2/policies", json={"policyId": "org.test:x", **policy()})
    assert_error(r, 400, "policies:id.notsettable")
    r = await client.post("/api/2/policies", params={"namespace": "no good"}, json=policy())
    assert_error(r, 400, "policies:id.invalid")


async def test_ids_in_body_and_path(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    r = await client.put(f"/api/2/policies/{policy_id}", json={"policyId": "org.test:other", **policy()})
    assert_error(r, 400, "policies:id.notsettable")
    assert_error(await client.get("/api/2/policies/invalid id"), 400, "policies:id.invalid")
    assert_error(await client.put("/api/2/policies/no-colon", json=policy()), 400, "policies:id.invalid")
    # ids arrive encoded or not
    policy_id = await put_policy(client)
    encoded = policy_id.replace(":", "%3A")
    assert (await client.get(f"/api/2/policies/{encoded}")).json()["policyId"] == policy_id


# ----------------------------------------------------------------------------------------- entries
async def test_entries_crud(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}/entries"
    reader = entry("nginx:reader", resources={"thing:/": READ_ONLY})
    r = await client.put(f"{base}/READER", json=reader)
    assert r.status_code == 201
    assert r.json() == reader
    assert r.headers["location"] == f"http://testserver{base}/READER"
    assert r.headers["etag"].startswith('"hash:')
    r = await client.get(f"{base}/READER")
    assert r.json() == reader
    tag = r.headers["etag"]
    changed = entry("nginx:reader", resources={"thing:/": ALL})
    r = await client.put(f"{base}/READER", json=changed)
    assert r.status_code == 204
    assert r.headers["etag"] != tag
    r = await client.get(base)
    assert r.status_code == 200
    assert set(r.json()) == {"OWNER", "READER"}
    assert r.headers["etag"].startswith('"hash:')
    assert (await client.delete(f"{base}/READER")).status_code == 204
    assert_error(await client.get(f"{base}/READER"), 404, "policies:entry.notfound")
    assert_error(await client.delete(f"{base}/READER"), 404, "policies:entry.notfound")
    r = await client.put(base, json={"OWNER": entry(ME), "OTHER": reader})
    assert r.status_code == 204
    assert set((await client.get(base)).json()) == {"OWNER", "OTHER"}


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("imported-x", "policies:label.invalid"),
        ("importedX", "policies:label.invalid"),
        ("nsimported-x", "policies:label.invalid"),
    ],
)
async def test_reserved_labels(client: httpx.AsyncClient, label: str, code: str) -> None:
    policy_id = await put_policy(client)
    assert_error(await client.put(f"/api/2/policies/{policy_id}/entries/{label}", json=entry(ME)), 400, code)
    r = await client.put(f"/api/2/policies/{new_id()}", json={"entries": {label: entry(ME)}})
    assert_error(r, 400, code)


# ----------------------------------------------------------------------------------------- subjects
async def test_subjects_crud_with_unencoded_ids(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}/entries/OWNER/subjects"
    r = await client.put(f"{base}/nginx:observer-2", json={"type": "observer"})
    assert r.status_code == 201
    assert r.json() == {"type": "observer"}
    assert r.headers["location"] == f"http://testserver{base}/nginx:observer-2"
    r = await client.get(f"{base}/nginx%3Aobserver-2")
    assert r.json() == {"type": "observer"}
    r = await client.put(f"{base}/nginx:observer-2", json={"type": "changed"})
    assert r.status_code == 204
    # subject ids may contain slashes (URLs as issuers)
    r = await client.put(f"{base}/google:https://accounts/x", json={"type": "url"})
    assert r.status_code == 201
    assert (await client.get(f"{base}/google:https://accounts/x")).json() == {"type": "url"}
    subjects = (await client.get(base)).json()
    assert set(subjects) == {ME, "nginx:observer-2", "google:https://accounts/x"}
    assert (await client.delete(f"{base}/nginx:observer-2")).status_code == 204
    assert_error(await client.get(f"{base}/nginx:observer-2"), 404, "policies:subject.notfound")
    r = await client.put(base, json={ME: {"type": "me"}, "nginx:a": {"type": "a"}})
    assert r.status_code == 204
    assert set((await client.get(base)).json()) == {ME, "nginx:a"}
    missing = f"/api/2/policies/{policy_id}/entries/NOPE/subjects"
    assert_error(await client.get(missing), 404, "policies:entry.notfound")
    assert_error(await client.put(f"{missing}/nginx:x", json={"type": "x"}), 404, "policies:entry.notfound")


@pytest.mark.parametrize(
    ("subject_id", "body", "code"),
    [
        ("no-issuer", {"type": "x"}, "policies:subjectid.invalid"),
        ("nginx:x", {}, "json.field.missing"),
        ("nginx:x", {"type": 1}, "json.invalid"),
        ("nginx:x", {"type": "x", "expiry": "yesterday"}, "policies:subjectexpiry.invalid"),
        ("nginx:x", {"type": "x", "expiry": "2001-01-01T00:00:00Z"}, "policies:subjectexpiry.invalid"),
        ("nginx:x", {"type": "x", "expiry": "2099-01-01T00:00:00"}, "policies:subjectexpiry.invalid"),
        ("nginx:x", {"type": "x", "expiry": "9999-12-31T23:30:00Z"}, "policies:subjectexpiry.invalid"),
        ("nginx:x", {"type": "x", "announcement": "soon"}, "json.invalid"),
        ("nginx:x", "x", "json.invalid"),
        ("{{ unknown }}", {"type": "x"}, "placeholder:placeholder.notresolvable"),
        ("${unknown}", {"type": "x"}, "placeholder:placeholder.notresolvable"),
    ],
)
async def test_invalid_subjects(client: httpx.AsyncClient, subject_id: str, body: Any, code: str) -> None:
    policy_id = await put_policy(client)
    url = f"/api/2/policies/{policy_id}/entries/OWNER/subjects/{subject_id}"
    assert_error(await client.put(url, json=body), 400, code)
    whole = policy()
    whole["entries"]["OWNER"]["subjects"][subject_id] = body
    assert_error(await client.put(f"/api/2/policies/{new_id()}", json=whole), 400, code)


async def test_subject_expiry_is_rounded_up_to_the_hour(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    url = f"/api/2/policies/{policy_id}/entries/OWNER/subjects/nginx:temp"
    r = await client.put(url, json={"type": "t", "expiry": "2099-12-31T22:15:30.5+01:00"})
    assert r.status_code == 201
    assert r.json()["expiry"] == "2099-12-31T22:00:00Z"
    r = await client.put(url, json={"type": "t", "expiry": "2099-12-31T23:00:00Z"})
    assert (await client.get(url)).json()["expiry"] == "2099-12-31T23:00:00Z"


# ----------------------------------------------------------------------------------------- resources
async def test_resources_crud_with_slashes_in_keys(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}/entries/OWNER/resources"
    # the JS client sends the key unencoded, with the trailing slash of "thing:/"
    r = await client.get(f"{base}/thing:/")
    assert r.status_code == 200
    assert r.json() == ALL
    r = await client.put(f"{base}/thing:/features/f", json={"grant": ["READ"], "revoke": []})
    assert r.status_code == 201
    assert r.headers["location"] == f"http://testserver{base}/thing:/features/f"
    r = await client.get(f"{base}/thing%3A%2Ffeatures%2Ff")
    assert r.json() == {"grant": ["READ"], "revoke": []}
    r = await client.put(f"{base}/thing:/features/f/", json={"grant": ["WRITE"], "revoke": ["READ"]})
    assert r.status_code == 204
    r = await client.put(f"{base}/message:", json={"grant": ["EXECUTE"]})
    assert r.status_code == 201
    resources = (await client.get(base)).json()
    assert resources["thing:/features/f"] == {"grant": ["WRITE"], "revoke": ["READ"]}
    assert resources["message:/"] == {"grant": ["EXECUTE"], "revoke": []}
    assert (await client.delete(f"{base}/thing:/features/f")).status_code == 204
    assert_error(await client.get(f"{base}/thing:/features/f"), 404, "policies:resource.notfound")
    assert_error(await client.delete(f"{base}/thing:/features/f"), 404, "policies:resource.notfound")
    r = await client.put(base, json={"policy:/": ALL, "thing:/": READ_ONLY})
    assert r.status_code == 204
    assert (await client.get(base)).json() == {"policy:/": ALL, "thing:/": READ_ONLY}
    # a key has one spelling: "thing:" is "thing:/"
    assert (await client.get(f"{base}/thing:")).json() == READ_ONLY


@pytest.mark.parametrize(
    ("key", "body", "code"),
    [
        ("thing:/", {"grant": ["FLY"]}, "policies:entry.invalid"),
        ("thing:/", {"grant": "READ"}, "policies:entry.invalid"),
        ("thing:/", [], "json.invalid"),
        ("foo:/bar", {"grant": ["READ"]}, "policies:entry.invalid"),
        ("nocolon", {"grant": ["READ"]}, "policies:entry.invalid"),
        ("thing:/a//b", {"grant": ["READ"]}, "policies:entry.invalid"),
    ],
)
async def test_invalid_resources(client: httpx.AsyncClient, key: str, body: Any, code: str) -> None:
    policy_id = await put_policy(client)
    url = f"/api/2/policies/{policy_id}/entries/OWNER/resources/{key}"
    assert_error(await client.put(url, json=body), 400, code)


# ----------------------------------------------------------------------------------------- lockout
async def test_minimum_permissions_are_kept(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client, policy(ANOTHER=entry("nginx:other", resources={"thing:/": ALL})))
    base = f"/api/2/policies/{policy_id}"
    # the only entry with WRITE on policy:/ cannot go, nor its only subject, nor its policy:/ resource
    assert_error(await client.delete(f"{base}/entries/OWNER"), 403, "policies:entry.modificationinvalid")
    r = await client.delete(f"{base}/entries/OWNER/subjects/{ME}")
    assert_error(r, 403, "policies:entry.modificationinvalid")
    r = await client.delete(f"{base}/entries/OWNER/resources/policy:/")
    assert_error(r, 403, "policies:entry.modificationinvalid")
    r = await client.put(f"{base}/entries/OWNER/resources/policy:/", json={"grant": [], "revoke": ["WRITE"]})
    assert_error(r, 403, "policies:entry.modificationinvalid")
    r = await client.put(
        f"{base}/entries", json={"ANOTHER": entry("nginx:other", resources={"thing:/": ALL})}
    )
    assert_error(r, 403, "policies:policy.modificationinvalid")
    # a subject that expires does not count
    expiring = {"type": "t", "expiry": "2099-01-01T00:00:00Z"}
    r = await client.put(f"{base}/entries/OWNER/subjects", json={ME: expiring})
    assert_error(r, 403, "policies:entry.modificationinvalid")
    # ... nor a revoke elsewhere of the same subject
    r = await client.put(
        f"{base}/entries/DENY",
        json=entry(ME, resources={"policy:/": {"grant": [], "revoke": ["WRITE"]}}),
    )
    assert_error(r, 403, "policies:entry.modificationinvalid")
    # other entries come and go freely; nothing above changed the policy
    assert (await client.delete(f"{base}/entries/ANOTHER")).status_code == 204
    r = await client.get(base)
    assert r.headers["etag"] == '"rev:2"'


async def test_creating_a_policy_nobody_can_change_is_refused(client: httpx.AsyncClient) -> None:
    body = {"entries": {"READ": entry(ME, resources={"policy:/": READ_ONLY, "thing:/": READ_ONLY})}}
    assert_error(
        await client.put(f"/api/2/policies/{new_id()}", json=body), 403, "policies:policy.notmodifiable"
    )
    r = await client.put(f"/api/2/policies/{new_id()}", json=body, headers={"allow-policy-lockout": "true"})
    assert_error(r, 403, "policies:policy.modificationinvalid")


async def test_allow_policy_lockout(client: httpx.AsyncClient) -> None:
    """The creator must keep WRITE on policy:/ of a new policy, unless allow-policy-lockout is set."""
    body = policy("nginx:somebody-else")
    policy_id = new_id()
    url = f"/api/2/policies/{policy_id}"
    assert_error(await client.put(url, json=body), 403, "policies:policy.notmodifiable")
    assert_error(await client.post("/api/2/policies", json=body), 403, "policies:policy.notmodifiable")
    r = await client.put(url, json=body, headers={"allow-policy-lockout": "true"})
    assert r.status_code == 201
    assert_error(await client.get(url), 404, "policies:policy.notfound")  # locked out indeed
    r = await client.put(f"/api/2/policies/{new_id()}", params={"allow-policy-lockout": "true"}, json=body)
    assert r.status_code == 201
    r = await client.put(url, json=body, headers={"allow-policy-lockout": "maybe"})
    assert_error(r, 400, "header.invalid")


async def test_too_large_policy(client: httpx.AsyncClient) -> None:
    entries = {f"ENTRY-NO{i}": entry(ME) for i in range(800)}
    policy_id = new_id()
    r = await client.put(f"/api/2/policies/{policy_id}", json={"entries": entries})
    assert_error(r, 413, "policies:policy.toolarge")
    assert_error(await client.delete(f"/api/2/policies/{policy_id}"), 404, "policies:policy.notfound")
    policy_id = await put_policy(client)
    r = await client.put(f"/api/2/policies/{policy_id}/entries", json=entries)
    assert_error(r, 413, "policies:policy.toolarge")


# ----------------------------------------------------------------------------------------- placeholders
@pytest.mark.parametrize(
    "placeholder", ["{{ request:subjectId }}", "{{request:subjectId}}", "${request.subjectId}"]
)
async def test_request_subject_placeholder(client: httpx.AsyncClient, placeholder: str) -> None:
    policy_id = await put_policy(client, policy(placeholder))
    stored = (await client.get(f"/api/2/policies/{policy_id}")).json()
    assert stored["entries"]["OWNER"]["subjects"] == {ME: {"type": "test"}}
    r = await client.put(f"/api/2/policies/{policy_id}/entries/SECOND", json=entry(placeholder))
    assert r.json()["subjects"] == {ME: {"type": "test"}}
    r = await client.put(
        f"/api/2/policies/{policy_id}/entries/SECOND/subjects/{placeholder}", json={"type": "y"}
    )
    assert r.status_code == 204  # the resolved subject existed already
    assert (await client.get(f"/api/2/policies/{policy_id}/entries/SECOND/subjects/{ME}")).json() == {
        "type": "y"
    }


# ----------------------------------------------------------------------------------------- conditional headers
async def test_conditional_headers_on_the_policy(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    url = f"/api/2/policies/{policy_id}"
    assert_error(
        await client.put(url, json=policy(), headers={"If-Match": "*"}), 412, "policies:precondition.failed"
    )
    assert_error(await client.get(url, headers={"If-None-Match": "*"}), 404, "policies:policy.notfound")
    r = await client.put(url, json=policy(), headers={"If-None-Match": "*"})
    assert r.status_code == 201
    r = await client.get(url, headers={"If-None-Match": '"rev:1"'})
    assert r.status_code == 304
    assert r.headers["etag"] == '"rev:1"'
    assert not r.content
    assert (await client.get(url, headers={"If-Match": '"rev:1"'})).status_code == 200
    r = await client.get(url, headers={"If-Match": '"rev:2"'})
    assert_error(r, 412, "policies:precondition.failed")
    assert r.headers["etag"] == '"rev:1"'
    r = await client.put(url, json=policy(), headers={"If-None-Match": "*"})
    assert_error(r, 412, "policies:precondition.failed")
    r = await client.put(url, json=policy(), headers={"If-Match": '"rev:1"'})
    assert r.status_code == 204
    r = await client.put(url, json=policy(), headers={"If-Match": '"rev:1"'})
    assert_error(r, 412, "policies:precondition.failed")
    r = await client.put(url, json=policy(), headers={"if-equal": "skip"})
    assert_error(r, 412, "policies:precondition.failed")
    assert_error(
        await client.delete(url, headers={"If-Match": '"rev:1"'}), 412, "policies:precondition.failed"
    )
    assert (await client.delete(url, headers={"If-Match": '"rev:2"'})).status_code == 204


@pytest.mark.parametrize(
    ("path", "value", "changed"),
    [
        ("entries", {"OWNER": entry(ME)}, {"OWNER": entry(ME), "B": entry(ME)}),
        ("entries/OWNER", entry(ME), entry(ME, "nginx:b")),
        ("entries/OWNER/subjects", {ME: {"type": "test"}}, {ME: {"type": "other"}}),
        (f"entries/OWNER/subjects/{ME}", {"type": "test"}, {"type": "other"}),
        ("entries/OWNER/resources", {"policy:/": ALL, "thing:/": ALL}, {"policy:/": ALL}),
        ("entries/OWNER/resources/thing:/", ALL, READ_ONLY),
    ],
)
async def test_conditional_headers_on_sub_resources(
    client: httpx.AsyncClient, path: str, value: Any, changed: Any
) -> None:
    policy_id = await put_policy(client)
    url = f"/api/2/policies/{policy_id}/{path}"
    r = await client.get(url)
    assert r.json() == value
    tag = r.headers["etag"]
    assert tag.startswith('"hash:')
    assert (await client.get(url, headers={"If-None-Match": tag})).status_code == 304
    assert (await client.get(url, headers={"If-Match": tag})).status_code == 200
    assert_error(await client.get(url, headers={"If-Match": '"hash:0"'}), 412, "policies:precondition.failed")
    r = await client.put(url, json=value, headers={"If-None-Match": "*"})
    assert_error(r, 412, "policies:precondition.failed")
    r = await client.put(url, json=changed, headers={"If-Match": tag})
    assert r.status_code == 204, r.text
    new_tag = r.headers["etag"]
    assert new_tag != tag
    assert (await client.get(url)).headers["etag"] == new_tag
    assert_error(
        await client.put(url, json=value, headers={"If-Match": tag}), 412, "policies:precondition.failed"
    )


# ----------------------------------------------------------------------------------------- imports
async def test_imports_crud(client: httpx.AsyncClient) -> None:
    template = await put_policy(
        client, policy(SHARED=entry("nginx:shared", resources={"thing:/": READ_ONLY}))
    )
    other = await put_policy(client)
    policy_id = await put_policy(client, {**policy(), "imports": {template: {}}})
    base = f"/api/2/policies/{policy_id}/imports"
    r = await client.get(base)
    assert r.json() == {template: {}}
    assert r.headers["etag"].startswith('"hash:')
    assert (await client.get(f"{base}/{template}")).json() == {}
    r = await client.put(f"{base}/{other}", json={"entries": ["OWNER"]})
    assert r.status_code == 201
    assert r.json() == {"entries": ["OWNER"]}
    assert r.headers["location"] == f"http://testserver{base}/{other}"
    r = await client.put(f"{base}/{other}", json={"entries": []})
    assert r.status_code == 204
    assert (await client.get(f"{base}/{other}/entries")).json() == []
    assert (await client.put(f"{base}/{other}/entries", json=["OWNER", "OWNER"])).status_code == 204
    assert (await client.get(f"{base}/{other}/entries")).json() == ["OWNER"]
    assert (await client.get(f"{base}/{other}/transitiveImports")).json() == []
    assert (await client.put(f"{base}/{other}/transitiveImports", json=[template])).status_code == 204
    assert (await client.get(f"{base}/{other}")).json() == {
        "entries": ["OWNER"],
        "transitiveImports": [template],
    }
    assert (await client.delete(f"{base}/{other}")).status_code == 204
    assert_error(await client.get(f"{base}/{other}"), 404, "policies:import.notfound")
    assert_error(await client.get(f"{base}/{other}/entries"), 404, "policies:import.notfound")
    assert_error(await client.delete(f"{base}/{other}"), 404, "policies:import.notfound")
    assert (await client.put(base, json={other: {}})).status_code == 204
    assert (await client.get(base)).json() == {other: {}}
    assert (await client.delete(base)).status_code == 204
    assert (await client.get(base)).json() == {}
    assert "imports" not in (await client.get(f"/api/2/policies/{policy_id}")).json()


async def test_invalid_imports(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}/imports"
    assert_error(await client.put(f"{base}/{policy_id}", json={}), 400, "policies:import.invalid")
    assert_error(await client.get(f"{base}/not-an-id"), 400, "policies:id.invalid")
    missing = new_id()
    assert_error(await client.put(f"{base}/{missing}", json={}), 404, "policies:policy.notfound")
    targets = [await put_policy(client) for _ in range(11)]
    r = await client.put(base, json={t: {} for t in targets})
    assert_error(r, 400, "policies:imports.toolarge")
    assert (await client.put(base, json={t: {} for t in targets[:10]})).status_code == 204
    assert_error(await client.put(f"{base}/{targets[10]}", json={}), 400, "policies:imports.toolarge")
    other = targets[0]
    r = await client.put(f"{base}/{other}/transitiveImports", json=[policy_id])
    assert_error(r, 400, "policies:import.invalid")
    assert_error(
        await client.put(f"{base}/{other}/entries", json=["imported-x"]), 400, "policies:label.invalid"
    )
    assert_error(await client.put(f"{base}/{other}", json={"entries": "OWNER"}), 400, "json.invalid")


async def test_imported_policies_must_be_readable(multi_user: httpx.AsyncClient) -> None:
    # the owner's policy lets the reader read only entry PUBLIC
    secret = await put_policy_as(
        multi_user,
        OWNER,
        {
            "entries": {
                "OWNER": entry("nginx:owner"),
                "PUBLIC": {
                    "subjects": {"nginx:reader": {"type": "t"}},
                    "resources": {"policy:/entries/PUBLIC": READ_ONLY},
                    "importable": "explicit",
                },
            }
        },
    )
    own = {"entries": {"OWNER": entry("nginx:reader")}}
    r = await multi_user.put(
        f"/api/2/policies/{new_id()}", json={**own, "imports": {secret: {}}}, headers=READER
    )
    assert_error(r, 404, "policies:policy.notfound")  # OWNER is imported implicitly and not readable
    mine = await put_policy_as(multi_user, READER, own)
    r = await multi_user.put(f"/api/2/policies/{mine}/imports/{secret}", json={}, headers=READER)
    assert_error(r, 404, "policies:policy.notfound")


# ----------------------------------------------------------------------------------------- 3.9 entry fields
async def test_entry_sub_resources(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client, policy(OTHER=entry("nginx:other", resources={"thing:/": READ_ONLY})))
    base = f"/api/2/policies/{policy_id}/entries/OTHER"
    assert (await client.get(f"{base}/importable")).json() == "implicit"
    assert (await client.get(f"{base}/allowedAdditions")).json() == []
    assert (await client.get(f"{base}/namespaces")).json() == []
    assert (await client.get(f"{base}/references")).json() == []
    r = await client.put(f"{base}/importable", json="explicit")
    assert r.status_code == 204
    assert r.headers["etag"].startswith('"hash:')
    assert (await client.get(f"{base}/importable")).json() == "explicit"
    assert (await client.put(f"{base}/allowedAdditions", json=["subjects", "resources"])).status_code == 204
    assert (await client.put(f"{base}/namespaces", json=["com.acme", "com.acme.*"])).status_code == 204
    stored = (await client.get(base)).json()
    assert stored["importable"] == "explicit"
    assert stored["allowedAdditions"] == ["subjects", "resources"]
    assert stored["namespaces"] == ["com.acme", "com.acme.*"]
    assert_error(await client.put(f"{base}/importable", json="sometimes"), 400, "policies:entry.invalid")
    assert_error(
        await client.put(f"{base}/allowedAdditions", json=["friends"]), 400, "policies:entry.invalid"
    )
    assert_error(await client.put(f"{base}/namespaces", json=["com..acme"]), 400, "policies:entry.invalid")
    assert_error(await client.put(f"{base}/namespaces", json="com.acme"), 400, "json.invalid")
    assert_error(await client.delete(f"{base}/importable"), 405, "gateway:method.notallowed")
    missing = f"/api/2/policies/{policy_id}/entries/NOPE/importable"
    assert_error(await client.get(missing), 404, "policies:entry.notfound")


async def test_references(client: httpx.AsyncClient) -> None:
    template = await put_policy(client, policy(ROLE=entry("nginx:role", resources={"thing:/": READ_ONLY})))
    policy_id = await put_policy(
        client, {**policy(OTHER=entry("nginx:other", resources={})), "imports": {template: {}}}
    )
    base = f"/api/2/policies/{policy_id}/entries/OTHER/references"
    refs = [{"import": template, "entry": "ROLE"}, {"entry": "OWNER"}]
    r = await client.put(base, json=refs)
    assert r.status_code == 201
    assert r.json() == refs
    assert (await client.get(base)).json() == refs
    assert (await client.put(base, json=refs[:1])).status_code == 204
    # what is referenced cannot be removed
    r = await client.put(base, json=refs)
    r = await client.delete(f"/api/2/policies/{policy_id}/entries/OWNER")
    assert_error(r, 409, "policies:entry.referenceconflict")
    r = await client.delete(f"/api/2/policies/{policy_id}/imports/{template}")
    assert_error(r, 409, "policies:import.referenceconflict")
    r = await client.delete(f"/api/2/policies/{policy_id}/imports")
    assert_error(r, 409, "policies:import.referenceconflict")
    assert (await client.delete(base)).status_code == 204
    assert (await client.get(base)).json() == []
    assert "references" not in (await client.get(f"/api/2/policies/{policy_id}/entries/OTHER")).json()
    assert (await client.delete(f"/api/2/policies/{policy_id}/imports/{template}")).status_code == 204


@pytest.mark.parametrize(
    "refs",
    [
        [{"entry": "MISSING"}],
        [{"entry": "OTHER"}],
        [{"entry": "OWNER"}, {"entry": "OWNER"}],
        [{"import": "org.test:not-imported", "entry": "X"}],
        [{"entry": "OWNER", "extra": 1}],
        [{"import": "org.test:x"}],
    ],
)
async def test_invalid_references(client: httpx.AsyncClient, refs: list[dict[str, Any]]) -> None:
    policy_id = await put_policy(client, policy(OTHER=entry("nginx:other", resources={})))
    r = await client.put(f"/api/2/policies/{policy_id}/entries/OTHER/references", json=refs)
    assert_error(r, 400, "policies:entry.invalid")


# ----------------------------------------------------------------------------------------- HTTP surface
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", ""),
        ("PATCH", "/entries/OWNER"),
        ("POST", ""),
        ("DELETE", "/entries"),
        ("DELETE", "/entries/OWNER/subjects"),
        ("DELETE", "/entries/OWNER/resources"),
        ("DELETE", "/entries/OWNER/namespaces"),
        ("GET", "/actions/activateTokenIntegration"),
    ],
)
async def test_methods_not_allowed(client: httpx.AsyncClient, method: str, path: str) -> None:
    policy_id = await put_policy(client)
    r = await client.request(method, f"/api/2/policies/{policy_id}{path}", json={})
    assert_error(r, 405, "gateway:method.notallowed")
    assert_error(await client.get("/api/2/policies"), 405, "gateway:method.notallowed")


@pytest.mark.parametrize(
    "path", ["/policyId", "/entries/OWNER/unknown", "/imports/org.test:x/unknown", "/entries//subjects"]
)
async def test_unknown_paths(client: httpx.AsyncClient, path: str) -> None:
    policy_id = await put_policy(client)
    assert (await client.get(f"/api/2/policies/{policy_id}{path}")).status_code == 404


async def test_token_integration_actions_need_a_jwt(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    for path in ("actions/activateTokenIntegration", "entries/OWNER/actions/deactivateTokenIntegration"):
        r = await client.post(f"/api/2/policies/{policy_id}/{path}")
        assert_error(r, 400, "policies:action.failed")
    r = await client.post(f"/api/2/policies/{policy_id}/entries/NOPE/actions/activateTokenIntegration")
    assert_error(r, 404, "policies:entry.notfound")
    r = await client.post(f"/api/2/policies/{new_id()}/actions/activateTokenIntegration")
    assert_error(r, 404, "policies:policy.notfound")


async def test_response_required_false(client: httpx.AsyncClient) -> None:
    policy_id = new_id()
    r = await client.put(f"/api/2/policies/{policy_id}", json=policy(), params={"response-required": "false"})
    assert r.status_code == 202
    assert (await client.get(f"/api/2/policies/{policy_id}")).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("", b"null"),
        ("", b"[]"),
        ("", b"42"),
        ("", b""),
        ("", b"{"),
        ("", b'{"entries": []}'),
        ("", b'{"entries": {"A": []}}'),
        ("", b'{"entries": {"A": {"subjects": []}}}'),
        ("", b'{"entries": {"A": {"subjects": {"nginx:a": null}}}}'),
        ("", b'{"entries": {"A": {"resources": {"thing:/": null}}}}'),
        ("", b'{"entries": {"": {}}}'),
        ("", b'{"imports": []}'),
        ("", b'{"imports": {"org.test:a": []}}'),
        ("", b'{"imports": {"bad id": {}}}'),
        ("", b'{"entries": {"A": {"references": {}}}}'),
        ("", b'{"entries": {"A": {"importable": 1}}}'),
        ("/entries", b"null"),
        ("/entries/OWNER", b'"x"'),
        ("/entries/OWNER/subjects", b"[1]"),
        ("/entries/OWNER/subjects/nginx:x", b"null"),
        ("/entries/OWNER/resources", b'{"x": {}}'),
        ("/entries/OWNER/resources/thing:/", b'{"grant": [null]}'),
        ("/entries/OWNER/references", b"[1]"),
        ("/entries/OWNER/allowedAdditions", b"{}"),
        ("/entries/OWNER/importable", b"null"),
        ("/entries/a%00b", b"{}"),
        ("/entries/OWNER/subjects/nginx:%01", b'{"type": "x"}'),
        ("/imports", b"null"),
        ("/imports/org.test:x", b"[]"),
        ("/imports/org.test:x/entries", b"{}"),
        ("/imports/org.test:x/transitiveImports", b'["bad id"]'),
    ],
)
async def test_bad_input_is_a_ditto_error(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    policy_id = await put_policy(client)
    for target in (policy_id, new_id()):
        r = await client.put(f"/api/2/policies/{target}{path}", content=body)
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"]


async def test_every_change_is_journaled(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}"
    assert (await client.put(f"{base}/entries/B", json=entry("nginx:b", resources={}))).status_code == 201
    assert (await client.put(f"{base}/entries/B/subjects/nginx:c", json={"type": "c"})).status_code == 201
    assert (await client.put(f"{base}/entries/B/resources/thing:/x", json=READ_ONLY)).status_code == 201
    assert (await client.put(f"{base}/entries/B/resources/thing:/x", json=ALL)).status_code == 204
    assert (await client.delete(f"{base}/entries/B/subjects/nginx:c")).status_code == 204
    assert (await client.put(f"{base}/entries/B/importable", json="never")).status_code == 204
    assert (await client.delete(f"{base}/entries/B")).status_code == 204
    assert (await client.delete(base)).status_code == 204
    ctx: AppContext = client._transport.app.state.ctx  # type: ignore[attr-defined]
    journal = await ctx.store.journal("policies", policy_id)
    assert [e["revision"] for e in journal] == list(range(1, 10))
    assert [(e["type"], e["path"]) for e in journal] == [
        ("policies.events:policyCreated", "/"),
        ("policies.events:policyEntryCreated", "/entries/B"),
        ("policies.events:subjectCreated", "/entries/B/subjects/nginx:c"),
        ("policies.events:resourceCreated", "/entries/B/resources/thing:/x"),
        ("policies.events:resourceModified", "/entries/B/resources/thing:/x"),
        ("policies.events:subjectDeleted", "/entries/B/subjects/nginx:c"),
        ("policies.events:policyEntryImportableModified", "/entries/B/importable"),
        ("policies.events:policyEntryDeleted", "/entries/B"),
        ("policies.events:policyDeleted", "/"),
    ]
    assert journal[4]["value"] == ALL
    assert journal[0]["value"]["policyId"] == policy_id


async def test_deleting_a_policy_keeps_its_things(client: httpx.AsyncClient) -> None:
    thing_id = new_id()
    assert (await client.put(f"/api/2/things/{thing_id}", json={"attributes": {"a": 1}})).status_code == 201
    assert (await client.delete(f"/api/2/policies/{thing_id}")).status_code == 204
    assert (await client.get(f"/api/2/things/{thing_id}")).status_code == 404
    ctx: AppContext = client._transport.app.state.ctx  # type: ignore[attr-defined]
    state = await ctx.store.get("things", thing_id)
    assert state is not None and state.doc is not None
    # re-creating the policy gives access back
    r = await client.put(f"/api/2/policies/{thing_id}", json=policy())
    assert r.status_code == 201
    assert (await client.get(f"/api/2/things/{thing_id}")).json()["attributes"] == {"a": 1}


# ----------------------------------------------------------------------------------------- three users
def _sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


OWNER = basic("owner", "owner-pw")
READER = basic("reader", "reader-pw")
STRANGER = basic("stranger", "stranger-pw")


@pytest.fixture
async def multi_user(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the users owner, reader and stranger (subjects ``nginx:<user>``), on either backend."""
    users = tmp_path / "policy-users.htpasswd"
    users.write_text("".join(f"{u}:{_sha(u + '-pw')}\n" for u in ("owner", "reader", "stranger")))
    app = create_app(replace(settings, htpasswd=str(users)))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as c,
    ):
        yield c


async def put_policy_as(client: httpx.AsyncClient, user: dict[str, str], body: dict[str, Any]) -> str:
    policy_id = new_id()
    r = await client.put(f"/api/2/policies/{policy_id}", json=body, headers=user)
    assert r.status_code == 201, r.text
    return policy_id


SHARED_POLICY: dict[str, Any] = {
    "entries": {
        "OWNER": entry("nginx:owner"),
        "READER": {
            "subjects": {"nginx:reader": {"type": "t"}},
            "resources": {
                "policy:/": READ_ONLY,
                "policy:/entries/OWNER": {"grant": [], "revoke": ["READ"]},
                "thing:/": READ_ONLY,
            },
        },
    }
}


async def test_owner_may_do_everything(multi_user: httpx.AsyncClient) -> None:
    policy_id = await put_policy_as(multi_user, OWNER, SHARED_POLICY)
    url = f"/api/2/policies/{policy_id}"
    assert (await multi_user.get(url, headers=OWNER)).json()["entries"] == SHARED_POLICY["entries"]
    r = await multi_user.put(
        f"{url}/entries/READER/subjects/nginx:stranger", json={"type": "t"}, headers=OWNER
    )
    assert r.status_code == 201
    assert (await multi_user.get(url, headers=STRANGER)).status_code == 200
    assert (await multi_user.delete(f"{url}/entries/READER", headers=OWNER)).status_code == 204
    assert (await multi_user.delete(url, headers=OWNER)).status_code == 204


async def test_reader_sees_but_cannot_modify(multi_user: httpx.AsyncClient) -> None:
    policy_id = await put_policy_as(multi_user, OWNER, SHARED_POLICY)
    url = f"/api/2/policies/{policy_id}"
    r = await multi_user.get(url, headers=READER)
    assert r.status_code == 200
    # the revoke on policy:/entries/OWNER hides that entry from the reader
    assert r.json() == {"policyId": policy_id, "entries": {"READER": SHARED_POLICY["entries"]["READER"]}}
    assert set((await multi_user.get(f"{url}/entries", headers=READER)).json()) == {"READER"}
    assert_error(await multi_user.get(f"{url}/entries/OWNER", headers=READER), 404, "policies:entry.notfound")
    r = await multi_user.get(f"{url}/entries/OWNER/subjects", headers=READER)
    assert_error(r, 404, "policies:subjects.notfound")
    r = await multi_user.get(f"{url}/entries/OWNER/resources/policy:/", headers=READER)
    assert_error(r, 404, "policies:resource.notfound")
    assert (await multi_user.get(f"{url}/entries/READER/subjects", headers=READER)).status_code == 200
    assert_error(
        await multi_user.put(url, json=SHARED_POLICY, headers=READER), 403, "policies:policy.notmodifiable"
    )
    assert_error(await multi_user.delete(url, headers=READER), 403, "policies:policy.notmodifiable")
    r = await multi_user.put(f"{url}/entries", json=SHARED_POLICY["entries"], headers=READER)
    assert_error(r, 403, "policies:policy.notmodifiable")
    r = await multi_user.put(f"{url}/entries/X", json=entry("nginx:reader"), headers=READER)
    assert_error(r, 403, "policies:entry.notmodifiable")
    r = await multi_user.put(f"{url}/entries/READER/subjects/nginx:x", json={"type": "t"}, headers=READER)
    assert_error(r, 403, "policies:subject.notmodifiable")
    r = await multi_user.put(f"{url}/entries/READER/subjects", json={}, headers=READER)
    assert_error(r, 403, "policies:subjects.notmodifiable")
    r = await multi_user.put(f"{url}/entries/READER/resources/thing:/", json=ALL, headers=READER)
    assert_error(r, 403, "policies:resource.notmodifiable")
    r = await multi_user.put(f"{url}/entries/READER/resources", json={}, headers=READER)
    assert_error(r, 403, "policies:resources.notmodifiable")
    assert_error(
        await multi_user.put(f"{url}/imports", json={}, headers=READER), 403, "policies:imports.notmodifiable"
    )
    r = await multi_user.put(f"{url}/imports/{new_id()}", json={}, headers=READER)
    assert_error(r, 403, "policies:import.notmodifiable")
    # nothing changed
    assert (await multi_user.get(url, headers=OWNER)).headers["etag"] == '"rev:1"'


async def test_stranger_sees_nothing(multi_user: httpx.AsyncClient) -> None:
    policy_id = await put_policy_as(multi_user, OWNER, SHARED_POLICY)
    url = f"/api/2/policies/{policy_id}"
    assert_error(await multi_user.get(url, headers=STRANGER), 404, "policies:policy.notfound")
    assert_error(await multi_user.get(f"{url}/entries", headers=STRANGER), 404, "policies:policy.notfound")
    assert_error(
        await multi_user.get(f"{url}/entries/READER", headers=STRANGER), 404, "policies:entry.notfound"
    )
    assert_error(await multi_user.get(f"{url}/imports", headers=STRANGER), 404, "policies:imports.notfound")
    assert_error(
        await multi_user.put(url, json=SHARED_POLICY, headers=STRANGER), 403, "policies:policy.notmodifiable"
    )
    r = await multi_user.post(f"{url}/actions/activateTokenIntegration", headers=STRANGER)
    assert_error(r, 404, "policies:policy.notfound")
    # the stranger's own policies are theirs alone
    mine = await put_policy_as(multi_user, STRANGER, {"entries": {"ME": entry("nginx:stranger")}})
    assert_error(
        await multi_user.get(f"/api/2/policies/{mine}", headers=OWNER), 404, "policies:policy.notfound"
    )


async def test_write_on_one_entry_only(multi_user: httpx.AsyncClient) -> None:
    """WRITE on policy:/entries/READER lets the reader manage that entry, nothing else."""
    body = {
        "entries": {
            "OWNER": entry("nginx:owner"),
            "READER": {
                "subjects": {"nginx:reader": {"type": "t"}},
                "resources": {"policy:/entries/READER": ALL},
            },
        }
    }
    policy_id = await put_policy_as(multi_user, OWNER, body)
    url = f"/api/2/policies/{policy_id}"
    r = await multi_user.put(
        f"{url}/entries/READER/subjects/nginx:stranger", json={"type": "t"}, headers=READER
    )
    assert r.status_code == 201
    assert (await multi_user.get(f"{url}/entries/READER", headers=STRANGER)).status_code == 200
    r = await multi_user.get(url, headers=READER)
    assert r.json() == {
        "policyId": policy_id,
        "entries": {"READER": (await multi_user.get(f"{url}/entries/READER", headers=OWNER)).json()},
    }
    assert_error(await multi_user.get(f"{url}/entries/OWNER", headers=READER), 404, "policies:entry.notfound")
    r = await multi_user.put(f"{url}/entries/OWNER/subjects/nginx:reader", json={"type": "t"}, headers=READER)
    assert_error(r, 403, "policies:subject.notmodifiable")


# ----------------------------------------------------------------------------------------- policy-view (3.9)
async def test_resolved_policy_view(client: httpx.AsyncClient) -> None:
    shared = entry("nginx:shared", resources={"thing:/": READ_ONLY})
    template = await put_policy(client, policy(SHARED=shared, HIDDEN={**shared, "importable": "never"}))
    policy_id = await put_policy(client, {**policy(), "imports": {template: {}}})
    url = f"/api/2/policies/{policy_id}"
    r = await client.get(url, params={"policy-view": "resolved"}, headers={"If-None-Match": "*"})
    assert r.status_code == 200  # preconditions are ignored on the resolved view
    assert "etag" not in r.headers
    assert set(r.json()["entries"]) == {"OWNER", f"imported-{template}-OWNER", f"imported-{template}-SHARED"}
    assert r.json()["entries"][f"imported-{template}-SHARED"]["subjects"] == shared["subjects"]
    r = await client.get(url, headers={"policy-view": "RESOLVED"}, params={"fields": "entries/OWNER"})
    assert r.json() == {"entries": {"OWNER": entry(ME)}}
    r = await client.get(url, params={"policy-view": "original"})
    assert set(r.json()["entries"]) == {"OWNER"}
    assert r.headers["etag"] == '"rev:1"'
    assert_error(await client.get(url, params={"policy-view": "merged"}), 400, "policies:view.invalid")
    # sub-resources are not affected
    r = await client.get(f"{url}/entries", params={"policy-view": "resolved"})
    assert set(r.json()) == {"OWNER"}


async def test_resolved_view_hides_imported_entries_the_caller_cannot_read(
    multi_user: httpx.AsyncClient,
) -> None:
    template = await put_policy_as(
        multi_user,
        OWNER,
        {
            "entries": {
                "OWNER": {**entry("nginx:owner"), "importable": "never"},
                "PUBLIC": {
                    "subjects": {"nginx:reader": {"type": "t"}},
                    "resources": {"policy:/entries/PUBLIC": READ_ONLY, "thing:/": READ_ONLY},
                },
            }
        },
    )
    mine = await put_policy_as(
        multi_user, READER, {"entries": {"OWNER": entry("nginx:reader")}, "imports": {template: {}}}
    )
    r = await multi_user.put(
        f"/api/2/policies/{template}/entries/SECRET", json=entry("nginx:owner"), headers=OWNER
    )
    assert r.status_code == 201
    r = await multi_user.get(f"/api/2/policies/{mine}", params={"policy-view": "resolved"}, headers=READER)
    assert set(r.json()["entries"]) == {"OWNER", f"imported-{template}-PUBLIC"}


async def test_location_is_the_uri_as_sent(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    url = f"/api/2/policies/{policy_id}/entries/%C3%A4%20x"
    r = await client.put(url, json=entry(ME))
    assert r.status_code == 201
    assert r.headers["location"] == f"http://testserver{url}"
    assert "ä x" in (await client.get(f"/api/2/policies/{policy_id}/entries")).json()


async def test_concurrent_writes_are_all_applied(client: httpx.AsyncClient) -> None:
    policy_id = await put_policy(client)
    base = f"/api/2/policies/{policy_id}/entries/OWNER/subjects"
    responses = await asyncio.gather(
        *(client.put(f"{base}/nginx:user-{i}", json={"type": "t"}) for i in range(20))
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert len((await client.get(base)).json()) == 21
    assert (await client.get(f"/api/2/policies/{policy_id}")).headers["etag"] == '"rev:21"'
