"""The official Eclipse Ditto JavaScript client's WebSocket client (Node.js, 3.9.1) against a real server process.

``tests/js/ws-client.cjs`` builds the client as an application would (``DittoNodeClient.newWebSocketClient()``,
``withoutTls()``, Basic auth on the upgrade), sends Thing commands over ``/ws/2``, subscribes to twin events with
the bare ``START-SEND-EVENTS`` the client sends (it filters in the client, by topic and path prefix), receives the
events of its own commands and of an HTTP write, and on a live-channel client receives a message POSTed to the
Thing's inbox over HTTP and answers it. It prints one JSON line per step; the assertions here check what the
client got (inventory sections 10-11).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from tests.live_server import LiveServer
from tests.system.test_js_client import JS_DIR, RUN_TIMEOUT_S, _child_env, node_client  # noqa: F401  (fixture)

SCRIPT = JS_DIR / "ws-client.cjs"

pytestmark = pytest.mark.node


def run_ws_client(node: str, server: LiveServer, env: dict[str, str]) -> dict[str, dict[str, Any]]:
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


def test_official_js_websocket_client(node_client: str, live_server: LiveServer) -> None:  # noqa: F811
    thing = f"org.eclipse.ditto.js:ws-{uuid.uuid4().hex[:8]}"
    namespace, name = thing.split(":", 1)
    steps = run_ws_client(node_client, live_server, {"DITTO_THING_ID": thing})

    stored = {
        "thingId": thing,
        "policyId": thing,
        "attributes": {"manufacturer": "ACME"},
        "features": {"lamp": {"properties": {"on": False}}},
    }
    events_topic = f"{namespace}/{name}/things/twin/events"
    expected: dict[str, dict[str, Any]] = {
        "config": {"thingId": thing},
        "requestEvents": {"ok": True},
        # twin commands over the socket resolve like HTTP: 201 with the body parsed into the model, or 204
        "putThing.create": {"status": 201, "created": True, "body": stored},
        "event.created": {"action": "created", "topic": f"{events_topic}/created", "path": "/"},
        "putThing.modify": {"status": 204, "updated": True, "body": None},
        "putAttribute.create": {"status": 201, "body": "SN-1"},
        "putAttribute.modify": {"status": 204, "body": None},
        "getAttribute": {"value": "SN-2"},
        "getAttributes": {"value": {"manufacturer": "ACME", "serial": "SN-2"}},
        "getThing": {"thing": {**stored, "attributes": {"manufacturer": "ACME", "serial": "SN-2"}}},
        "getAttribute.missing": {"status": 404, "errorCode": "things:attribute.notfound"},
        "event.attributeModified": {
            "action": "modified",
            "topic": f"{events_topic}/modified",
            "path": "/attributes/serial",
            "value": "SN-2",
        },
        # an HTTP write reaches the socket as a twin event, with the HTTP request's correlation-id
        "http.putAttribute": {"status": 201},
        "event.fromHttp": {
            "action": "created",
            "topic": f"{events_topic}/created",
            "path": "/attributes/fromHttp",
            "value": {"n": 1},
            "correlationId": "js-ws-http-1",
        },
        "event.all": {
            "actions": ["created", "modified", "created", "modified", "created"],
            "paths": ["/", "/", "/attributes/serial", "/attributes/serial", "/attributes/fromHttp"],
        },
        "stopEvents": {"ok": True},
        # a message POSTed to the inbox over HTTP reaches the live client, and its reply answers the POST
        "requestMessages": {"ok": True},
        "message.received": {
            "action": "ask",
            "topic": f"{namespace}/{name}/things/live/messages/ask",
            "path": "/inbox/messages/ask",
            "value": {"question": "temperature?"},
            "correlationId": "js-ws-msg-1",
        },
        "message.reply": {"ok": True},
        "http.messageAnswered": {"status": 200, "body": {"temperature": 21.5}},
    }
    missing = sorted(set(expected) - set(steps))
    assert not missing, f"the script did not report {missing}"
    mismatches = {
        step: {"expected": want, "got": {key: steps[step].get(key) for key in want}}
        for step, want in expected.items()
        if {key: steps[step].get(key) for key in want} != want
    }
    assert not mismatches, mismatches
    assert steps["http.messageAnswered"]["contentType"].startswith("application/json")

    # What the client did over the socket is what the server stored: read it back over HTTP.
    with live_server.client() as http:
        r = http.get(f"/api/2/things/{thing}/attributes")
        assert r.status_code == 200, r.text
        assert r.json() == {"manufacturer": "ACME", "serial": "SN-2", "fromHttp": {"n": 1}}
