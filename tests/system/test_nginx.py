"""The shipped nginx configuration (``nginx/nginx.conf``) for real: Debian's nginx in front of a real
``ditto-compat serve --pre-authenticated`` process.

No container engine runs here, so this is how the deployment's entrance is tested: the very file
docker-compose.yml mounts, with only the upstream and listen addresses, the htpasswd path and the temp path
prefix substituted. nginx authenticates (the shipped ``nginx/htpasswd`` plus test users), forwards
``x-ditto-pre-authenticated: nginx:<user>``, and no client can choose its subject itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests import services
from tests.brokers.mqtt import Mosquitto
from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONF = REPO / "nginx" / "nginx.conf"
SHIPPED_HTPASSWD = REPO / "nginx" / "htpasswd"
POLICIES = REPO / "policies"
CONNECTION_SCRIPT = REPO / "deploy" / "create_connection.py"
CONNECTION_FILE = REPO / "deploy" / "mqtt-connection.json"
NGINX = "/usr/sbin/nginx"
TIMEOUT_S = 10.0
DEADLINE_S = 30.0

# Users besides the shipped ditto/ditto (whose apr1 hash is thereby checked by nginx itself).
TEST_USERS = {"alice": "alice-pw", "bob": "bob-pw", "viewer": "viewer-pw"}
DITTO = ("ditto", "ditto")
ALICE = ("alice", "alice-pw")
BOB = ("bob", "bob-pw")
VIEWER = ("viewer", "viewer-pw")
DEVOPS = ("devops", "foobar")
PRE_AUTH = "x-ditto-pre-authenticated"
JSON = {"Content-Type": "application/json"}


def render_config(text: str, *, upstream_port: int, listen_port: int, htpasswd: Path, prefix: Path) -> str:
    """The shipped configuration with only what differs between the compose network and this machine
    replaced; a replacement that no longer finds its text fails, so the file cannot drift from the test."""
    exactly_once = {
        "server ditto-compat:8080;": f"server {services.LOOPBACK}:{upstream_port};",
        "listen 80;": f"listen {services.LOOPBACK}:{listen_port};",
    }
    at_least_once = {
        "/etc/nginx/htpasswd": str(htpasswd),
        "/tmp/nginx-": f"{prefix}/nginx-",
    }
    for old, new in exactly_once.items():
        assert text.count(old) == 1, f"{SHIPPED_CONF} must contain {old!r} exactly once"
        text = text.replace(old, new)
    for old, new in at_least_once.items():
        assert old in text, f"{SHIPPED_CONF} no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Proxied:
    """ditto-compat behind nginx: ``url`` is nginx's, ``server`` the upstream process."""

    server: LiveServer
    nginx: services.ServiceProcess

    @property
    def url(self) -> str:
        return f"http://{services.LOOPBACK}:{self.nginx.port}"

    def client(self, auth: tuple[str, str] | None = None) -> httpx.Client:
        # trust_env=False: no proxy from the environment between the test and nginx
        return httpx.Client(base_url=self.url, auth=auth, timeout=TIMEOUT_S, trust_env=False)

    def async_client(self, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, auth=auth, timeout=TIMEOUT_S, trust_env=False)


def start_nginx(prefix: Path, *, upstream_port: int) -> services.ServiceProcess:
    """nginx in the foreground on a free loopback port, everything it writes under ``prefix``."""
    htpasswd = prefix / "htpasswd"
    extra = "".join(f"{user}:{{PLAIN}}{password}\n" for user, password in TEST_USERS.items())
    htpasswd.write_text(SHIPPED_HTPASSWD.read_text() + extra)
    port = services.free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_config(
            SHIPPED_CONF.read_text(),
            upstream_port=upstream_port,
            listen_port=port,
            htpasswd=htpasswd,
            prefix=prefix,
        )
    )
    # Started as root, nginx would run its workers as "nobody", who cannot read the htpasswd in the test's
    # private temp directory; the shipped file names no user, so the official image keeps its own default.
    globals_ = f"daemon off; pid {prefix}/nginx.pid;" + (" user root;" if os.geteuid() == 0 else "")
    log_path = prefix / "nginx.log"
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", globals_],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        log.close()
        raise services.ServiceUnavailable(f"cannot start nginx: {exc}") from exc
    service = services.ServiceProcess("nginx", process, port, log_path, log)
    try:
        services.wait_for_tcp(service, time.monotonic() + services.STARTUP_TIMEOUT_S)
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture
def proxied(server_factory: ServerFactory, tmp_path: Path) -> Iterator[Proxied]:
    if not Path(NGINX).is_file():
        services.service_missing(f"{NGINX} not installed (apt-get install nginx)")
    server = server_factory(args=["--pre-authenticated"])
    assert server.port is not None
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    try:
        nginx = start_nginx(prefix, upstream_port=server.port)
    except services.ServiceUnavailable as exc:
        pytest.fail(f"the shipped nginx configuration does not start: {exc}", pytrace=False)
    try:
        yield Proxied(server, nginx)
    finally:
        nginx.stop()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def run_id() -> str:
    return uuid.uuid4().hex[:8]


# -- authentication ---------------------------------------------------------------------------------------


def test_without_or_with_wrong_credentials_nginx_answers_401(proxied: Proxied) -> None:
    for auth in (None, ("ditto", "wrong"), ("nobody", "ditto")):
        with proxied.client(auth) as client:
            for path in ("/api/2/whoami", "/api/2/things", "/ws/2"):
                r = client.get(path)
                assert r.status_code == 401, (auth, path, r.text)
                assert r.headers["www-authenticate"].startswith("Basic")
                # Ditto's error JSON, as ditto-compat itself would answer
                assert r.json()["error"] == "gateway:authentication.failed"
    with proxied.client() as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "UP"
        assert client.get("/metrics").status_code == 404  # not exposed through the entrance


async def test_websocket_without_credentials_is_refused(proxied: Proxied) -> None:
    url = proxied.url.replace("http://", "ws://") + "/ws/2"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={PRE_AUTH: "nginx:ditto"}, open_timeout=TIMEOUT_S):
            pass
    assert refused.value.response.status_code == 401


def test_the_api_works_as_the_logged_in_user(proxied: Proxied) -> None:
    with proxied.client(DITTO) as client:
        assert client.get("/api/2/whoami").json()["defaultSubject"] == "nginx:ditto"
    thing_id = f"org.acme.test:lamp-{run_id()}"
    with proxied.client(ALICE) as client:
        assert client.get("/api/2/whoami").json() == {
            "defaultSubject": "nginx:alice",
            "subjects": ["nginx:alice"],
        }
        created = client.put(f"/api/2/things/{thing_id}", json={"attributes": {"room": "3.14"}})
        assert created.status_code == 201, created.text
        policy = client.get(f"/api/2/policies/{thing_id}").json()
        assert "nginx:alice" in policy["entries"]["DEFAULT"]["subjects"]
        # a long fields= and a JSON pointer pass through unchanged
        fields = ",".join(["thingId", "attributes/room", *[f"attributes/unused{i}" for i in range(150)]])
        r = client.get(f"/api/2/things/{thing_id}", params={"fields": fields})
        assert r.json() == {"thingId": thing_id, "attributes": {"room": "3.14"}}


def test_a_client_cannot_choose_its_subject(proxied: Proxied) -> None:
    thing_id = f"org.acme.test:safe-{run_id()}"
    with proxied.client(BOB) as bob:
        assert bob.put(f"/api/2/things/{thing_id}", json={"attributes": {"pin": 1234}}).status_code == 201
    with proxied.client(ALICE) as alice:
        forged = {PRE_AUTH: "nginx:bob"}
        assert alice.get("/api/2/whoami", headers=forged).json()["defaultSubject"] == "nginx:alice"
        assert alice.get(f"/api/2/things/{thing_id}", headers=forged).status_code == 404
        # ditto-compat also reads the subject from a query parameter: nginx's header must win over it
        query = {PRE_AUTH: "nginx:bob"}
        assert alice.get("/api/2/whoami", params=query).json()["defaultSubject"] == "nginx:alice"
        assert alice.get(f"/api/2/things/{thing_id}", params=query).status_code == 404
    with proxied.client() as anonymous:
        r = anonymous.get(f"/api/2/things/{thing_id}", headers={PRE_AUTH: "nginx:bob"}, params=query)
        assert r.status_code == 401
    # the connections API is not behind nginx's login: a forged subject must not reach it either
    with proxied.client() as anonymous:
        assert anonymous.get("/api/2/connections", headers={PRE_AUTH: "nginx:devops"}).status_code == 401


# -- real time ---------------------------------------------------------------------------------------------


async def test_websocket_through_nginx_gets_events(proxied: Proxied) -> None:
    thing_id = f"org.acme.test:meter-{run_id()}"
    url = proxied.url.replace("http://", "ws://") + "/ws/2"
    async with proxied.async_client(ALICE) as http:
        body = {"features": {"power": {"properties": {"watts": 10}}}}
        assert (await http.put(f"/api/2/things/{thing_id}", json=body)).status_code == 201
        headers = {**basic(*ALICE), PRE_AUTH: "nginx:bob"}
        async with connect(url, additional_headers=headers, open_timeout=TIMEOUT_S) as ws:
            await ws.send("START-SEND-EVENTS")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT_S) == "START-SEND-EVENTS:ACK"
            r = await http.put(f"/api/2/things/{thing_id}/features/power/properties/watts", json=42)
            assert r.status_code == 204
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
            # the event of alice's thing reached the socket: it is alice's, whatever header was sent
            assert frame["topic"] == f"{thing_id.replace(':', '/')}/things/twin/events/modified"
            assert frame["path"] == "/features/power/properties/watts"
            assert frame["value"] == 42


async def test_server_sent_events_stream_through_nginx(proxied: Proxied) -> None:
    thing_id = f"org.acme.test:door-{run_id()}"
    async with proxied.async_client(ALICE) as http:
        assert (await http.put(f"/api/2/things/{thing_id}", json={"attributes": {"open": False}})).is_success
        sse_headers = {"Accept": "text/event-stream"}
        async with http.stream("GET", f"/api/2/things?ids={thing_id}", headers=sse_headers) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            # the stream is open end to end once its first line arrives: a stream of several things opens with
            # its resume position (an id), a single thing's with a heartbeat
            assert (await asyncio.wait_for(anext(lines), TIMEOUT_S)).startswith(("id:", ":"))
            r = await http.put(f"/api/2/things/{thing_id}/attributes/open", json=True)
            assert r.status_code == 204

            async def next_data() -> Any:
                while True:
                    line = await anext(lines)
                    if line.startswith("data:"):
                        return json.loads(line[len("data:") :])

            data = await asyncio.wait_for(next_data(), TIMEOUT_S)
            assert data == {"thingId": thing_id, "attributes": {"open": True}}


# -- shipped policies and the example connection -----------------------------------------------------------


def test_shipped_policies_are_accepted_and_mean_what_they_say(proxied: Proxied) -> None:
    run = run_id()
    files = sorted(POLICIES.rglob("*.json"))
    assert {f.stem for f in files} >= {
        "default",
        "read-only-viewer",
        "device-features-only",
        "namespace-wide",
    }
    with proxied.client(DITTO) as ditto:
        for file in files:
            policy_id = f"org.acme:{file.stem}-{run}"
            r = ditto.put(f"/api/2/policies/{policy_id}", content=file.read_bytes(), headers=JSON)
            assert r.status_code == 201, (file.name, r.text)
            stored = json.dumps(ditto.get(f"/api/2/policies/{policy_id}").json())
            # {{ request:subjectId }} became the sender: the owner keeps full access
            assert "nginx:ditto" in stored and "request:subjectId" not in stored

        viewer_thing = f"org.acme.sensors:probe-{run}"
        body = {"policyId": f"org.acme:read-only-viewer-{run}", "attributes": {"maintenance": "due", "k": 1}}
        assert ditto.put(f"/api/2/things/{viewer_thing}", json=body).status_code == 201
        city_thing, other_thing = f"org.acme.city:district-{run}", f"org.acme.sensors:other-{run}"
        for thing_id in (city_thing, other_thing):
            body = {"policyId": f"org.acme:namespace-wide-{run}", "attributes": {"name": thing_id}}
            assert ditto.put(f"/api/2/things/{thing_id}", json=body).status_code == 201

    with proxied.client(VIEWER) as viewer:
        seen = viewer.get(f"/api/2/things/{viewer_thing}")
        assert seen.status_code == 200
        assert seen.json()["attributes"] == {"k": 1}  # maintenance notes are revoked
        assert viewer.put(f"/api/2/things/{viewer_thing}/attributes/k", json=2).status_code == 403
        # the namespace-wide policy lets the viewer into org.acme.city only
        assert viewer.get(f"/api/2/things/{city_thing}/attributes/name").json() == city_thing
        assert viewer.get(f"/api/2/things/{other_thing}").status_code == 404


def test_example_connection_is_created_once_through_nginx_and_carries_telemetry(
    proxied: Proxied, mosquitto: Mosquitto
) -> None:
    with proxied.client(DITTO) as ditto:
        # the connections API is the DevOps user's: nginx's users are refused by ditto-compat itself
        refused = ditto.get("/api/2/connections")
        assert refused.status_code == 401
        assert refused.json()["error"] == "gateway:authentication.failed"

    command = [
        sys.executable,
        str(CONNECTION_SCRIPT),
        str(CONNECTION_FILE),
        "--url",
        proxied.url,
        "--uri",
        mosquitto.uri,
    ]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    outputs = [
        subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        for _ in range(2)
    ]
    for out in outputs:
        assert out.returncode == 0, out.stderr
    first, second = (json.loads(out.stdout) for out in outputs)
    assert first["liveStatus"] == "open"
    assert second["id"] == first["id"]  # the second run found it again by name
    with proxied.client(DEVOPS) as devops:
        listed = devops.get("/api/2/connections", params={"fields": "id,name"}).json()
        assert [c["id"] for c in listed if c["name"] == "example-mqtt"] == [first["id"]]
        # and as a piggyback command, through the same entrance
        piggyback = {"piggybackCommand": {"type": "connectivity.commands:retrieveAllConnectionIds"}}
        ids = devops.post("/devops/piggyback/connectivity", json=piggyback)
        assert ids.status_code == 200 and first["id"] in ids.json()["allConnectionIds"]
    with proxied.client(DITTO) as ditto:
        assert ditto.post("/devops/piggyback/connectivity", json=piggyback).status_code == 401

    # a device publishes Ditto Protocol telemetry on its topic; the twin owned by nginx:ditto changes
    namespace, name = "org.acme.sensors", f"probe-{run_id()}"
    thing_id = f"{namespace}:{name}"
    with proxied.client(DITTO) as ditto:
        body = {"features": {"temperature": {"properties": {"value": 20.0}}}}
        assert ditto.put(f"/api/2/things/{thing_id}", json=body).status_code == 201
        device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"device-{name}")
        device.connect(services.LOOPBACK, mosquitto.port)
        device.loop_start()
        try:
            envelope = {
                "topic": f"{namespace}/{name}/things/twin/commands/modify",
                "headers": {"correlation-id": uuid.uuid4().hex},
                "path": "/features/temperature/properties/value",
                "value": 23.5,
            }
            info = device.publish(f"telemetry/{namespace}/{name}", json.dumps(envelope), qos=1)
            info.wait_for_publish(TIMEOUT_S)
            deadline = time.monotonic() + DEADLINE_S
            path = f"/api/2/things/{thing_id}/features/temperature/properties/value"
            while ditto.get(path).json() != 23.5:
                assert time.monotonic() < deadline, "the telemetry did not reach the twin"
                time.sleep(0.1)
        finally:
            device.loop_stop()
            device.disconnect()
