"""An MQTT connection end to end: a device publishes Ditto Protocol telemetry on its own topic (enforced: a
device can only change its own twin), twin events are published to an MQTT topic per Thing, and a change of a
desired property is pushed to the device's topic. Real server process, real Mosquitto, connection created
through the HTTP API."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.brokers.mqtt import Mosquitto
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE
from tests.system.test_connections_kafka import DEADLINE_S, DEVOPS, create_connection, wait_until

Received = queue.Queue[tuple[str, dict[str, Any]]]


@pytest.fixture
def watcher(mosquitto: Mosquitto) -> Iterator[tuple[mqtt.Client, Received]]:
    """A plain MQTT client (like a dashboard or the device) collecting what is published."""
    received: Received = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, json.loads(msg.payload)))
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    yield client, received
    client.loop_stop()
    client.disconnect()


def next_message(received: Received, topic_prefix: str) -> dict[str, Any]:
    while True:
        topic, body = received.get(timeout=DEADLINE_S)
        if topic.startswith(topic_prefix):
            return body


def modify(thing_id: str, path: str, value: Any) -> bytes:
    namespace, name = thing_id.split(":")
    envelope = {
        "topic": f"{namespace}/{name}/things/twin/commands/modify",
        "headers": {"correlation-id": uuid.uuid4().hex},
        "path": path,
        "value": value,
    }
    return json.dumps(envelope).encode()


async def test_device_telemetry_twin_events_and_desired_properties(
    server_factory: ServerFactory,
    tmp_path: Path,
    mosquitto: Mosquitto,
    watcher: tuple[mqtt.Client, Received],
) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    server = server_factory(args=["--htpasswd", str(users)])
    client, received = watcher
    run = uuid.uuid4().hex[:6]
    thing_id, other_id = f"org.example:thermostat-{run}", f"org.example:other-{run}"
    name = thing_id.split(":")[1]
    definition = {
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": mosquitto.uri,
        "sources": [
            {
                "addresses": [f"devices-{run}/+/telemetry"],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
                # a device may only change the Thing named like its topic
                "enforcement": {
                    "input": "{{ source:address }}",
                    "filters": [f"devices-{run}/{{{{ thing:name }}}}/telemetry"],
                },
            }
        ],
        "targets": [
            {
                "address": f"twins-{run}/{{{{ thing:id }}}}/events",
                "topics": ["_/_/things/twin/events"],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
            },
            {
                "address": f"devices-{run}/{{{{ thing:name }}}}/desired",
                "topics": ["_/_/things/twin/events?filter=exists(features/thermostat/desiredProperties)"],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
            },
        ],
    }
    client.subscribe([(f"twins-{run}/#", 1), (f"devices-{run}/+/desired", 1)])
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        for tid in (thing_id, other_id):
            body = {"features": {"thermostat": {"properties": {"temperature": 19.0}}}}
            assert (await http.put(f"/api/2/things/{tid}", json=body)).is_success
        connection_id = await create_connection(http, definition)

        # telemetry from the device reaches its twin, and the twin event goes out
        client.publish(
            f"devices-{run}/{name}/telemetry",
            modify(thing_id, "/features/thermostat/properties/temperature", 21.5),
            qos=1,
        ).wait_for_publish(DEADLINE_S)

        async def applied() -> bool:
            r = await http.get(f"/api/2/things/{thing_id}/features/thermostat/properties/temperature")
            return r.status_code == 200 and r.json() == 21.5

        await wait_until(applied, "the telemetry to reach the twin")
        event = next_message(received, f"twins-{run}/{thing_id}/events")
        assert event["topic"].endswith("/things/twin/events/modified")
        assert event["path"] == "/features/thermostat/properties/temperature"
        assert event["value"] == 21.5

        # the same device cannot write another Thing: enforcement refuses and logs it
        client.publish(
            f"devices-{run}/{name}/telemetry",
            modify(other_id, "/features/thermostat/properties/temperature", 99.0),
            qos=1,
        ).wait_for_publish(DEADLINE_S)

        async def refused_logged() -> bool:
            r = await http.get(f"/api/2/connections/{connection_id}/logs", auth=DEVOPS)
            return "enforcement" in r.text

        await wait_until(refused_logged, "the refused message to be logged")
        r = await http.get(f"/api/2/things/{other_id}/features/thermostat/properties/temperature")
        assert r.json() == 19.0

        # a desired set-point goes to the device's topic
        r = await http.put(f"/api/2/things/{thing_id}/features/thermostat/desiredProperties/target", json=23)
        assert r.status_code == 201
        desired = next_message(received, f"devices-{run}/{name}/desired")
        assert desired["path"] == "/features/thermostat/desiredProperties/target"
        assert desired["value"] == 23

        # counted under the addresses as configured, as Ditto counts them: the source's topic filter rather than
        # each device's topic, a target's address template rather than each Thing's topic
        async def metrics() -> dict[str, Any]:
            r = await http.get(f"/api/2/connections/{connection_id}/metrics", auth=DEVOPS)
            body: dict[str, Any] = r.json()
            return body

        events, desired_out = (
            f"twins-{run}/{{{{ thing:id }}}}/events",
            f"devices-{run}/{{{{ thing:name }}}}/desired",
        )

        async def both_published() -> bool:
            targets = (await metrics())["targetMetrics"]["addressMetrics"]
            return bool(
                targets.get(events, {}).get("published", {}).get("success", {}).get("PT24H") == 2
                and targets.get(desired_out, {}).get("published", {}).get("success", {}).get("PT24H") == 1
            )

        await wait_until(both_published, "the published events to be counted")
        counted = await metrics()
        assert set(counted["targetMetrics"]["addressMetrics"]) == {events, desired_out}
        assert list(counted["sourceMetrics"]["addressMetrics"]) == [f"devices-{run}/+/telemetry"]
        source = counted["sourceMetrics"]["addressMetrics"][f"devices-{run}/+/telemetry"]
        assert source["consumed"]["success"]["PT24H"] == 2
        assert source["enforced"]["failure"]["PT24H"] == 1


async def test_connection_announcements_when_opened_and_closed(
    server_factory: ServerFactory, mosquitto: Mosquitto, watcher: tuple[mqtt.Client, Received]
) -> None:
    """A target subscribed to ``_/_/connections/announcements`` gets the connection's own ``opened`` and, when it
    is closed, ``closed`` (``protocol-specification-connections``)."""
    server = server_factory()
    client, received = watcher
    run = uuid.uuid4().hex[:6]
    definition = {
        "connectionType": "mqtt-5",
        "connectionStatus": "open",
        "uri": mosquitto.uri,
        "sources": [],
        "targets": [
            {
                "address": f"announcements-{run}/{{{{ connection:id }}}}",
                "topics": ["_/_/connections/announcements"],
                "authorizationContext": ["integration:announcements"],
                "qos": 1,
            }
        ],
    }
    client.subscribe([(f"announcements-{run}/#", 1)])
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        connection_id = await create_connection(http, definition)
        opened = next_message(received, f"announcements-{run}/{connection_id}")
        assert opened["topic"] == f"_/{connection_id}/connections/announcements/opened"
        assert opened["path"] == "/"
        assert opened["headers"]["content-type"] == "application/json"
        assert set(opened["value"]) == {"openedAt"} and opened["value"]["openedAt"].endswith("Z")

        r = await http.post(
            f"/api/2/connections/{connection_id}/command",
            content="connectivity.commands:closeConnection",
            headers={"Content-Type": "text/plain"},
            auth=DEVOPS,
        )
        assert r.status_code == 200
        closed = next_message(received, f"announcements-{run}/{connection_id}")
        assert closed["topic"] == f"_/{connection_id}/connections/announcements/closed"
        assert (
            set(closed["value"]) == {"closedAt"}
            and closed["value"]["closedAt"] >= opened["value"]["openedAt"]
        )


async def test_policy_announcements_for_the_target_subjects(
    server_factory: ServerFactory, tmp_path: Path, mosquitto: Mosquitto, watcher: tuple[mqtt.Client, Received]
) -> None:
    """A target subscribed to ``_/_/policies/announcements`` gets the subject deletion announcements of its own
    subjects, as a WebSocket session authenticated with them does (``basic-policy`` "Subject deletion
    announcements")."""
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    server = server_factory(args=["--htpasswd", str(users)])
    client, received = watcher
    run = uuid.uuid4().hex[:6]
    policy_id = f"org.announce:policy-{run}"
    announced = {"type": "t", "announcement": {"whenDeleted": True}}
    body = {
        "entries": {
            "owner": {
                "subjects": {"nginx:alice": {"type": "basic"}},
                "resources": {"policy:/": {"grant": ["READ", "WRITE"], "revoke": []}},
            },
            "ops": {
                "subjects": {"integration:ops": announced, "integration:other": announced},
                "resources": {"thing:/": {"grant": ["READ"], "revoke": []}},
            },
        }
    }
    definition = {
        "connectionType": "mqtt",
        "connectionStatus": "open",
        "uri": mosquitto.uri,
        "sources": [],
        "targets": [
            {
                "address": f"policy-announcements-{run}",
                "topics": ["_/_/policies/announcements?namespaces=org.announce"],
                "authorizationContext": ["integration:ops"],
                "qos": 1,
            }
        ],
    }
    client.subscribe([(f"policy-announcements-{run}", 1)])
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        assert (await http.put(f"/api/2/policies/{policy_id}", json=body)).status_code == 201
        await create_connection(http, definition)
        subjects = f"/api/2/policies/{policy_id}/entries/ops/subjects"
        # another subject first: not the target's, so not published to it
        assert (await http.delete(f"{subjects}/integration:other")).status_code == 204
        assert (await http.delete(f"{subjects}/integration:ops")).status_code == 204
        frame = next_message(received, f"policy-announcements-{run}")
    assert frame["topic"] == f"org.announce/policy-{run}/policies/announcements/subjectDeletion"
    assert frame["value"]["subjectIds"] == ["integration:ops"]
    assert frame["value"]["deleteAt"].endswith("Z")
