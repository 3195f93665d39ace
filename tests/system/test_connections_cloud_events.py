"""A connection whose payload mapping is ``CloudEvents`` (``connectivity-mapping`` "CloudEvents mapper"), on a
real Kafka broker: binary CloudEvents (``ce-*`` Kafka headers) and structured ones update twins, and twin events
go out as structured CloudEvents. Real server process, real Tansu, connection created through the HTTP API."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.system.conftest import ServerFactory
from tests.system.realtime import ALICE
from tests.system.test_connections_kafka import (
    DEADLINE_S,
    DEVOPS,
    connection_report,
    create_connection,
    kafka_server,
    wait_until,
)


def modify(thing_id: str, value: float) -> dict[str, Any]:
    namespace, name = thing_id.split(":")
    return {
        "topic": f"{namespace}/{name}/things/twin/commands/modify",
        "path": "/features/measurements/properties/temperature",
        "value": value,
    }


async def test_cloud_events_in_and_out(
    server_factory: ServerFactory, tmp_path: Path, kafka_bootstrap: str
) -> None:
    server = kafka_server(server_factory, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    topic, events_topic = f"cloud-events-{suffix}", f"cloud-events-out-{suffix}"
    binary_id, structured_id = f"my.sensors:binary-{suffix}", f"my.sensors:structured-{suffix}"
    definition = {
        "connectionType": "kafka",
        "connectionStatus": "open",
        "uri": f"tcp://{kafka_bootstrap}",
        "specificConfig": {"bootstrapServers": kafka_bootstrap, "consumerOffsetReset": "earliest"},
        "sources": [
            {
                "addresses": [topic],
                "authorizationContext": ["nginx:alice"],
                "qos": 1,
                "payloadMapping": ["CloudEvents"],
            }
        ],
        "targets": [
            {
                "address": events_topic,
                "topics": ["_/_/things/twin/events?namespaces=my.sensors"],
                "authorizationContext": ["nginx:alice"],
                "payloadMapping": ["CloudEvents"],
            }
        ],
    }
    async with httpx.AsyncClient(base_url=server.base_url, headers=ALICE, timeout=30) as http:
        for thing_id in (binary_id, structured_id):
            body = {"features": {"measurements": {"properties": {"temperature": 0}}}}
            assert (await http.put(f"/api/2/things/{thing_id}", json=body)).is_success
        connection_id = await create_connection(http, definition)

        binary_headers = [
            ("ce-specversion", b"1.0"),
            ("ce-id", b"some-id"),
            ("ce-type", b"some-type"),
            ("ce-source", b"generic-producer"),
            ("content-type", b"application/vnd.eclipse.ditto+json"),
        ]
        structured = {
            "specversion": "1.0",
            "id": "3212e",
            "source": "http:somesite.com",
            "type": "com.site.com",
            "data": modify(structured_id, 22.5),
        }
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic, json.dumps(modify(binary_id, 21.5)).encode(), headers=binary_headers
            )
            await producer.send_and_wait(
                topic,
                json.dumps(structured).encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
            # a binary event without its attributes is refused and logged, not applied
            await producer.send_and_wait(
                topic,
                json.dumps(modify(binary_id, -1.0)).encode(),
                headers=[
                    ("content-type", b"application/vnd.eclipse.ditto+json"),
                    ("correlation-id", b"no-ce"),
                ],
            )
        finally:
            await producer.stop()

        async def temperatures() -> Any:
            found = []
            for thing_id in (binary_id, structured_id):
                r = await http.get(f"/api/2/things/{thing_id}/features/measurements/properties/temperature")
                found.append(r.json())
            return found == [21.5, 22.5]

        async def refusal_logged() -> bool:
            logs = (await http.get(f"/api/2/connections/{connection_id}/logs", auth=DEVOPS)).json()
            return any("This is not a CloudEvent" in e["message"] for e in logs["connectionLogs"])

        try:
            await wait_until(temperatures, "both CloudEvents to reach their twins")
            await wait_until(refusal_logged, "the event without attributes to be logged")
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{await connection_report(http, connection_id)}") from None
        r = await http.get(f"/api/2/things/{binary_id}/features/measurements/properties/temperature")
        assert r.json() == 21.5  # the refused one changed nothing

        consumer = AIOKafkaConsumer(
            events_topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        events: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(DEADLINE_S):
                while len(events) < 2:
                    record = await consumer.getone()
                    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
                    events.append(json.loads(record.value))
        finally:
            await consumer.stop()
    assert {e["type"] for e in events} == {"org.eclipse.ditto.outbound"}
    assert {e["source"] for e in events} == {"org.eclipse.ditto"}
    assert len({e["id"] for e in events}) == 2
    assert sorted((e["data"]["topic"], e["data"]["value"]) for e in events) == sorted(
        [
            (f"my.sensors/binary-{suffix}/things/twin/events/modified", 21.5),
            (f"my.sensors/structured-{suffix}/things/twin/events/modified", 22.5),
        ]
    )
