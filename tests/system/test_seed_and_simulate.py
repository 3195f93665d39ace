"""``ditto-compat seed`` and ``ditto-compat simulate`` as a user runs them, against a real server process:
seeding twice changes nothing the second time; the simulator changes the twins over HTTP, and over MQTT and
Kafka through the connection it creates; ``scripts/serve`` starts a server with the seeds loaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.brokers.mqtt import Mosquitto
from tests.live_server import LiveServer, free_port, server_env
from tests.system.conftest import ServerFactory

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0
DEVOPS = ("devops", "foobar")


def cli(server: LiveServer, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ditto_compat", *args, "--url", server.base_url],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=server_env(),
        check=False,
    )


def wait_until(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def revisions(http: httpx.Client, namespace: str) -> dict[str, int]:
    r = http.get(
        "/api/2/search/things",
        params={"namespaces": namespace, "fields": "thingId,_revision", "option": "size(200)"},
    )
    assert r.status_code == 200, r.text
    return {item["thingId"]: item["_revision"] for item in r.json()["items"]}


def test_seed_twice_creates_once_with_policies(server_factory: ServerFactory, tmp_path: Path) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("ditto:{PLAIN}ditto\nviewer:{PLAIN}viewer\n")
    server = server_factory(args=["--htpasswd", str(users)])

    first = cli(server, "seed")
    assert first.returncode == 0, first.stderr
    assert "total: 57 created, 0 updated, 0 unchanged, 0 failed" in first.stdout
    second = cli(server, "seed")
    assert second.returncode == 0, second.stderr
    assert "total: 0 created, 0 updated, 57 unchanged, 0 failed" in second.stdout

    with server.client() as http:
        bus = http.get("/api/2/things/org.acme.fleet:bus-vbz-31-01").json()
        assert bus["policyId"] == "org.acme.fleet:policy"
        assert bus["definition"] == "org.acme.fleet:CityBus:2.0.0"
        assert bus["attributes"]["vin"] and bus["features"]["passengers"]["properties"]["capacity"] == 160
        policy = http.get("/api/2/policies/org.acme.fleet:policy").json()
        assert set(policy["entries"]["owner"]["subjects"]) == {"nginx:ditto"}
        assert set(policy["entries"]["viewer"]["subjects"]) == {"nginx:viewer"}
        count = http.get(
            "/api/2/search/things/count",
            params={"namespaces": "org.acme.fleet", "filter": 'eq(attributes/route,"line-31")'},
        )
        assert count.json() == 2
        # a changed attribute is brought back, a live value is kept
        assert http.put("/api/2/things/org.acme.fleet:bus-vbz-31-01/attributes/year", json=1999).is_success
        path = "/api/2/things/org.acme.fleet:bus-vbz-31-01/features/passengers/properties/count"
        assert http.put(path, json=42).is_success
    third = cli(server, "seed", "--only", "vehicles")
    assert "total: 0 created, 1 updated, 12 unchanged, 0 failed" in third.stdout, third.stdout + third.stderr
    with server.client() as http:
        assert http.get("/api/2/things/org.acme.fleet:bus-vbz-31-01/attributes/year").json() == 2020
        assert http.get(path).json() == 42

    # the read-only example subject sees the bus but not its VIN, and cannot change it
    with server.client(auth=("viewer", "viewer")) as viewer:
        seen = viewer.get("/api/2/things/org.acme.fleet:bus-vbz-31-01").json()
        assert "vin" not in seen["attributes"] and seen["attributes"]["route"] == "line-31"
        assert viewer.put(path, json=1).status_code == 403


def test_simulate_over_http_changes_the_twins(live_server: LiveServer) -> None:
    seeded = cli(live_server, "seed", "--only", "vehicles,buildings")
    assert seeded.returncode == 0, seeded.stderr
    with live_server.client() as http:
        before = revisions(http, "org.acme.fleet,org.acme.buildings")
        energy_before = http.get(
            "/api/2/things/org.acme.buildings:hq-zurich/features/energy/properties"
        ).json()
        run = cli(live_server, "simulate", "--via", "http", "--count", "57", "--rate", "200", "--seed", "3")
        assert run.returncode == 0, run.stderr
        assert "57 sent, 57 delivered, 0 errors" in run.stderr
        after = revisions(http, "org.acme.fleet,org.acme.buildings")
        assert len(after) == 19
        assert all(after[thing_id] >= before[thing_id] + 3 for thing_id in before)  # 57 messages, 19 twins
        energy = http.get("/api/2/things/org.acme.buildings:hq-zurich/features/energy/properties").json()
        assert energy["totalKwh"] > energy_before["totalKwh"] and 10 < energy["powerKw"] < 1000
        bus = http.get("/api/2/things/org.acme.fleet:bus-vbz-72-01/features").json()
        assert 47.3 < bus["location"]["properties"]["latitude"] < 47.45
        assert 0 <= bus["passengers"]["properties"]["count"] <= bus["passengers"]["properties"]["capacity"]


def test_simulate_over_mqtt_creates_its_connection(live_server: LiveServer, mosquitto: Mosquitto) -> None:
    assert cli(live_server, "seed", "--only", "sensors").returncode == 0
    with live_server.client() as http:
        before = revisions(http, "org.acme.sensors")
        for _ in range(2):  # the second run finds the connection and reuses it
            run = cli(
                live_server,
                "simulate",
                "--via",
                "mqtt",
                "--broker",
                mosquitto.uri,
                "--count",
                "34",
                "--rate",
                "100",
            )
            assert run.returncode == 0, run.stderr
            assert "34 sent, 34 delivered, 0 errors" in run.stderr
        # one connection, whatever id the server gave it (Ditto's PUT creates with a fixed id, this one may not)
        connections = http.get("/api/2/connections", auth=DEVOPS).json()
        assert [c["name"] for c in connections] == ["ditto-compat simulator (MQTT)"]
        assert connections[0]["uri"] == mosquitto.uri
        assert connections[0]["sources"][0]["authorizationContext"] == ["nginx:ditto"]

        def all_changed() -> bool:
            after = revisions(http, "org.acme.sensors")
            return all(after[thing_id] >= before[thing_id] + 4 for thing_id in before)

        wait_until(all_changed, "every sensor to receive its 4 updates over MQTT")
        value = http.get(
            "/api/2/things/org.acme.sensors:freezer-01/features/temperature/properties/value"
        ).json()
        assert -30 < value < 0


def test_simulate_over_kafka_creates_its_connection(live_server: LiveServer, kafka_bootstrap: str) -> None:
    assert cli(live_server, "seed", "--only", "buildings").returncode == 0
    with live_server.client() as http:
        before = revisions(http, "org.acme.buildings")
        run = cli(
            live_server,
            "simulate",
            "--via",
            "kafka",
            "--bootstrap-servers",
            kafka_bootstrap,
            "--count",
            "14",
            "--rate",
            "100",
        )
        assert run.returncode == 0, run.stderr
        assert "14 sent, 14 delivered, 0 errors" in run.stderr
        [connection] = http.get("/api/2/connections", auth=DEVOPS).json()
        assert connection["name"] == "ditto-compat simulator (Kafka)"
        status = http.get(f"/api/2/connections/{connection['id']}/status", auth=DEVOPS).json()
        assert status.get("liveStatus") == "open", status

        def all_changed() -> bool:
            after = revisions(http, "org.acme.buildings")
            return all(after[thing_id] >= before[thing_id] + 2 for thing_id in before)

        wait_until(all_changed, "every building to receive its 2 updates over Kafka")


def test_scripts_serve_starts_a_seeded_server_and_stops_with_it(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "serve"), "--port", str(port), "--data-dir", str(tmp_path / "data")],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=server_env(),
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", auth=("ditto", "ditto"), trust_env=False
        ) as http:

            def seeded() -> bool:
                # the seed command's summary line: every domain is done (they are loaded concurrently)
                output = (tmp_path / "serve.log").read_text()
                assert process.poll() is None, output
                return "total: " in output

            wait_until(seeded, "scripts/serve to load the seeds", deadline_s=180.0)
            r = http.get("/api/2/search/things/count", params={"namespaces": "org.acme.city"})
            assert r.status_code == 200 and r.json() == 17
        os.kill(process.pid, signal.SIGTERM)
        # the server's own exit code: uvicorn re-raises the signal after its graceful shutdown (128 + 15)
        assert process.wait(timeout=30) in (0, 128 + signal.SIGTERM), (tmp_path / "serve.log").read_text()
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "total: 57 created" in output
    assert "Finished server process" in output  # the script waited for the server's shutdown
