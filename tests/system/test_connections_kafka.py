"""A Kafka connection end to end, as our users run it: device telemetry on a Kafka topic, mapped by a
JavaScript mapper written for Ditto into feature properties, and twin events published to another Kafka topic.
The server is a real process, the broker a real Tansu; the connection is created through the HTTP API.

Also: a server killed during ingestion and restarted loses no acknowledged message (the offsets it committed
were for durable changes, and what it had not committed is consumed again), and the connection is reopened
from the store on restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.live_server import LiveServer
from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE

DEVOPS = httpx.BasicAuth("devops", "foobar")
DEADLINE_S = 60.0

# The mapping function contract of Ditto's JavaScript mapper (connectivity-mapping), unchanged.
TELEMETRY_SCRIPT = """
function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
    var telemetry = JSON.parse(textPayload);
    var value = { value: telemetry.value, unit: telemetry.unit, timestamp: telemetry.timestamp };
    return Ditto.buildDittoProtocolMsg(
        "org.example", telemetry.deviceId, "things", "twin", "commands", "modify",
        "/features/" + telemetry.sensorType + "/properties", headers, value
    );
}
"""


def telemetry_connection(bootstrap: str, topic: str, events_topic: str) -> dict[str, Any]:
    return {
        "name": "device telemetry",
        "connectionType": "kafka",
        "connectionStatus": "open",
        "uri": f"tcp://{bootstrap}",
        "specificConfig": {
            "bootstrapServers": bootstrap,
            "groupId": f"twins-{uuid.uuid4().hex[:6]}",
            "consumerOffsetReset": "earliest",
        },
        "sources": [
            {
                "addresses": [topic],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
                "payloadMapping": ["telemetry"],
            }
        ],
        "targets": [
            {
                "address": events_topic + "/{{ thing:id }}",
                "topics": ["_/_/things/twin/events?namespaces=org.example"],
                "authorizationContext": ["nginx:alice"],
            }
        ],
        "mappingDefinitions": {
            "telemetry": {"mappingEngine": "JavaScript", "options": {"incomingScript": TELEMETRY_SCRIPT}}
        },
    }


async def wait_until(check: Any, what: str, deadline_s: float = DEADLINE_S) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def kafka_server(server_factory: ServerFactory, tmp_path: Path) -> LiveServer:
    users = tmp_path / "users.htpasswd"
    users.write_text("alice:{PLAIN}alice-pw\n")
    return server_factory(args=["--htpasswd", str(users)])


async def connection_report(http: httpx.AsyncClient, connection_id: str) -> str:
    """Status, metrics and logs of a connection, for the message of a failed wait."""
    parts = []
    for what in ("status", "metrics", "logs"):
        r = await http.get(f"/api/2/connections/{connection_id}/{what}", auth=DEVOPS)
        parts.append(f"{what}: {r.text[:3000]}")
    return "\n".join(parts)


async def create_connection(http: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    r = await http.post("/api/2/connections", json=definition, auth=DEVOPS)
    assert r.status_code == 201, r.text
    connection_id: str = r.json()["id"]

    async def opened() -> bool:
        status = (await http.get(f"/api/2/connections/{connection_id}/status", auth=DEVOPS)).json()
        return bool(status.get("liveStatus") == "open")

    await wait_until(opened, "the connection to open")
    return connection_id


async def test_telemetry_updates_twins_and_twin_events_flow_out(
    server_factory: ServerFactory, tmp_path: Path, kafka_bootstrap: str
) -> None:
    server = kafka_server(server_factory, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    topic, events_topic = f"telemetry-{suffix}", f"twin-events-{suffix}"
    thing_id = "org.example:device-001"
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        thing = {"attributes": {"site": "hall-3"}, "features": {"temperature": {}}}
        assert (await http.put(f"/api/2/things/{thing_id}", json=thing)).is_success
        connection_id = await create_connection(
            http, telemetry_connection(kafka_bootstrap, topic, events_topic)
        )

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            reading = {
                "deviceId": "device-001",
                "sensorType": "temperature",
                "value": 25.5,
                "unit": "°C",
                "timestamp": "2026-12-02T10:00:00Z",
            }
            # an expired reading (creation-time + ttl in the past) is dropped, and says so in the logs
            expired = {**reading, "value": -99.0}
            stale = [("creation-time", b"1000"), ("ttl", b"1000"), ("correlation-id", b"stale-reading")]
            await producer.send_and_wait(
                topic, json.dumps(expired).encode(), key=b"device-001", headers=stale
            )
            await producer.send_and_wait(topic, json.dumps(reading).encode(), key=b"device-001")
        finally:
            await producer.stop()

        async def applied() -> Any:
            r = await http.get(f"/api/2/things/{thing_id}/features/temperature/properties")
            return r.json() if r.status_code == 200 else None

        try:
            properties = await wait_until(applied, "the telemetry to reach the twin")
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{await connection_report(http, connection_id)}") from None
        assert properties == {"value": 25.5, "unit": "°C", "timestamp": "2026-12-02T10:00:00Z"}

        consumer = AIOKafkaConsumer(
            events_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        try:
            async with asyncio.timeout(DEADLINE_S):
                record = await consumer.getone()
        finally:
            await consumer.stop()
        assert record.key == thing_id.encode()
        event = json.loads(record.value)
        assert event["topic"] == "org.example/device-001/things/twin/events/created"
        assert event["path"] == "/features/temperature/properties"
        assert event["value"]["value"] == 25.5

        logs = (await http.get(f"/api/2/connections/{connection_id}/logs", auth=DEVOPS)).json()
        dropped = [e for e in logs["connectionLogs"] if e.get("correlationId") == "stale-reading"]
        assert dropped and dropped[0]["level"] == "failure" and "expired" in dropped[0]["message"]


async def test_a_killed_server_loses_no_acknowledged_message(
    server_factory: ServerFactory, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Each of 10 devices sends its counter 1..N in order; the server is SIGKILLed mid-way and restarted. The
    restarted server resumes from the committed offsets and ends with every counter at N: nothing committed was
    lost, and what was consumed again was applied again in order."""
    server = kafka_server(server_factory, tmp_path)
    topic = f"counters-{uuid.uuid4().hex[:6]}"
    devices, per_device = 10, 300
    things = [f"org.example:counter-{i}" for i in range(devices)]
    script = """
    function mapToDittoProtocolMsg(headers, textPayload, bytePayload, contentType) {
        var m = JSON.parse(textPayload);
        return Ditto.buildDittoProtocolMsg("org.example", m.device, "things", "twin", "commands", "modify",
            "/attributes/counter", headers, m.n);
    }
    """
    definition = telemetry_connection(kafka_bootstrap, topic, f"unused-{topic}")
    definition["targets"] = []
    definition["mappingDefinitions"]["telemetry"]["options"]["incomingScript"] = script
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        for thing_id in things:
            assert (await http.put(f"/api/2/things/{thing_id}", json={})).is_success
        await create_connection(http, definition)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False, linger_ms=5)
        await producer.start()
        try:
            for n in range(1, per_device + 1):
                for i in range(devices):
                    body = json.dumps({"device": f"counter-{i}", "n": n}).encode()
                    await producer.send(topic, body, key=f"counter-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

        async def some_applied() -> bool:
            r = await http.get(f"/api/2/things/{things[0]}/attributes/counter")
            return r.status_code == 200 and r.json() >= 20

        await wait_until(some_applied, "ingestion to start")
    server.kill()
    server.start()  # same data directory: the connection is reopened from the store

    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:

        async def all_applied() -> bool:
            values = []
            for thing_id in things:
                r = await http.get(f"/api/2/things/{thing_id}/attributes/counter")
                values.append(r.json() if r.status_code == 200 else None)
            return values == [per_device] * devices

        await wait_until(all_applied, "every counter to reach its last value after the restart")
        for thing_id in things:
            revision = (await http.get(f"/api/2/things/{thing_id}", params={"fields": "_revision"})).json()
            # created + one revision per message, plus those consumed again after the kill (at least once)
            assert revision["_revision"] >= 1 + per_device
