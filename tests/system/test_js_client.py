"""The official Eclipse Ditto JavaScript client (Node.js, 3.9.1) against a real server process.

"Drop-in" means existing Ditto applications work unchanged, so the client's own code paths are the test:
unencoded ids in URLs, ``Content-Type: application/json`` on every request (GET and DELETE included),
``application/merge-patch+json`` PATCHes, and PUT/PATCH promises that resolve only on 201 (body parsed into its
model) or 204 (inventory sections 10-11). ``tests/js/http-client.cjs`` runs the steps and prints one JSON line
per step; the assertions here check what the client actually got back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer
from tests.system.conftest import in_ci

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "http-client.cjs"
CLIENT_PACKAGE = "@eclipse-ditto/ditto-javascript-client-node"
CLIENT_VERSION = "3.9.1"
NPM_CI_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.node


def _missing(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing prerequisite is a failure)")
    pytest.skip(reason)


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    # No proxy variables: this traffic is loopback only, and npm/node must not route it elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def node_client() -> str:
    """Path of ``node``, with the pinned client installed in ``tests/js/node_modules`` (``npm ci`` once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are needed for the official Ditto JS client test")
    assert node is not None and npm is not None
    installed = JS_DIR / "node_modules" / CLIENT_PACKAGE / "package.json"
    if not installed.is_file():
        # npm ci installs exactly the committed package-lock.json: the client version under test is pinned.
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            _missing(f"npm ci in {JS_DIR} failed ({result.returncode}): {result.stderr[-2000:]}")
    version = json.loads(installed.read_text())["version"]
    assert version == CLIENT_VERSION, (
        f"{CLIENT_PACKAGE} {version} installed, {CLIENT_VERSION} expected: run npm ci"
    )
    return node


def run_client(node: str, server: LiveServer, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Runs the script; returns its records by step name. Fails with the whole output when it did not run
    through or a step failed."""
    result = subprocess.run(
        [node, str(SCRIPT), server.base_url],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=_child_env(env),
        check=False,
    )
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    steps = {record["step"]: record for record in records}
    failed = [record for record in records if not record["ok"]]
    detail = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert not failed, f"steps failed: {json.dumps(failed, indent=1)}\n{detail}"
    assert result.returncode == 0, detail
    assert steps.get("done", {}).get("ok") is True, detail
    return steps


def test_official_js_http_client(node_client: str, live_server: LiveServer) -> None:
    thing = f"org.eclipse.ditto.js:thing-{uuid.uuid4().hex[:8]}"
    thing2 = f"org.eclipse.ditto.js:thing-{uuid.uuid4().hex[:8]}"
    steps = run_client(node_client, live_server, {"DITTO_THING_ID": thing, "DITTO_THING_ID_2": thing2})

    initial_attributes = {"manufacturer": "ACME", "location": {"lat": 1.5, "lon": 2}}
    temperature = {
        "definition": ["org.eclipse.ditto.js:temperature:1.0.0"],
        "properties": {"value": 21.5, "unit": "C"},
    }
    expected: dict[str, dict[str, Any]] = {
        "config": {"thingId": thing, "thingId2": thing2},
        # PUT of a new Thing: 201 with the Thing as body, parsed by the client into its model.
        "putThing.create": {
            "status": 201,
            "created": True,
            "body": {
                "thingId": thing,
                "policyId": thing,
                "attributes": initial_attributes,
                "features": {"lamp": {"properties": {"on": False}}},
            },
        },
        "putThing.modify": {"status": 204, "updated": True, "body": None},
        "getThing": {
            "thing": {
                "thingId": thing,
                "policyId": thing,
                "attributes": initial_attributes,
                "features": {"lamp": {"properties": {"on": False}}},
            }
        },
        "getThing.fields": {"thingId": thing, "revision": 2, "attributes": {"manufacturer": "ACME"}},
        "putThing.second": {
            "status": 201,
            "body": {"thingId": thing2, "policyId": thing2, "attributes": {"second": True}},
        },
        # GET /things?ids=a,b answers in the order of the ids.
        "getThings": {"ids": [thing, thing2], "attributes": [initial_attributes, {"second": True}]},
        "patchThing": {"status": 204},
        "getThing.afterPatch": {
            "attributes": {"manufacturer": "ACME", "location": {"lat": 2.5}, "color": "red"}
        },
        "putAttribute.create": {"status": 201, "body": "SN-1"},
        "putAttribute.modify": {"status": 204, "body": None},
        "putAttribute.nested": {"status": 201, "body": 42},
        "getAttribute": {"value": "SN-2"},
        "getAttribute.nested": {"value": {"b": 42}},
        "getAttributes": {
            "value": {
                "manufacturer": "ACME",
                "location": {"lat": 2.5},
                "color": "red",
                "serial": "SN-2",
                "nested": {"a": {"b": 42}},
            }
        },
        "deleteAttribute": {"status": 204},
        "getAttribute.deleted": {"status": 404, "errorCode": "things:attribute.notfound"},
        "putAttributes": {"status": 204},
        "getAttributes.replaced": {"value": {"manufacturer": "Bosch", "model": "X1"}},
        "deleteAttributes": {"status": 204},
        "getAttributes.deleted": {"status": 404, "errorCode": "things:attributes.notfound"},
        "putFeature.create": {"status": 201, "body": temperature},
        "putFeature.modify": {"status": 204},
        "getFeature": {"id": "temperature", **temperature},
        "getFeatures": {"ids": ["lamp", "temperature"]},
        "putProperty.modify": {"status": 204},
        "putProperty.create": {"status": 201, "body": 1},
        "getProperty": {"value": 22},
        "patchProperty": {"status": 204},
        "getProperties": {"value": {"value": 22, "unit": "C", "nested": {"y": 2}}},
        "deleteProperty": {"status": 204},
        "getProperty.deleted": {"status": 404, "errorCode": "things:feature.property.notfound"},
        "getProperties.afterDelete": {"value": {"value": 22, "nested": {"y": 2}}},
        "deleteThing": {"status": 204},
        "getThing.deleted": {"status": 404, "errorCode": "things:thing.notfound"},
        "getThings.afterDelete": {"ids": [thing2]},
    }
    missing = sorted(set(expected) - set(steps))
    assert not missing, f"the script did not report {missing}"
    mismatches = {
        name: {"expected": want, "got": {key: steps[name].get(key) for key in want}}
        for name, want in expected.items()
        if {key: steps[name].get(key) for key in want} != want
    }
    assert not mismatches, json.dumps(mismatches, indent=1)

    # What the client did is what the server stored: read it back without the client.
    with live_server.client() as http:
        assert http.get(f"/api/2/things/{thing}").status_code == 404
        r = http.get(f"/api/2/things/{thing2}", params={"fields": "thingId,attributes,_revision"})
        assert r.status_code == 200, r.text
        assert r.json() == {"thingId": thing2, "attributes": {"second": True}, "_revision": 1}
